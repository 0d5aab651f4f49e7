DROP TRIGGER topic_subscribers_counted_out;
DROP TRIGGER topic_subscribers_counted_in;
ALTER TABLE topics DROP COLUMN subscriber_count;
