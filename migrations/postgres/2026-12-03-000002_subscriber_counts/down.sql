DROP TRIGGER topic_subscribers_counted_out ON topic_subscribers;
DROP TRIGGER topic_subscribers_counted_in ON topic_subscribers;
DROP FUNCTION topic_subscribers_count_removed();
DROP FUNCTION topic_subscribers_count_added();
