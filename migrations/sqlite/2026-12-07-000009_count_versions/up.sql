-- Each topic's count carries a version that moves with it, in the same statement: an open
-- page told counts out of order (by several instances, say) keeps a row's newest count by
-- comparing versions, instead of refetching the list to be sure.
ALTER TABLE topics ADD COLUMN count_version BIGINT NOT NULL DEFAULT 0;

DROP TRIGGER topic_subscribers_counted_in;
DROP TRIGGER topic_subscribers_counted_out;
CREATE TRIGGER topic_subscribers_counted_in AFTER INSERT ON topic_subscribers
BEGIN
    UPDATE topics
    SET subscriber_count = subscriber_count + 1, count_version = count_version + 1
    WHERE id = NEW.topic_id;
END;
CREATE TRIGGER topic_subscribers_counted_out AFTER DELETE ON topic_subscribers
BEGIN
    UPDATE topics
    SET subscriber_count = subscriber_count - 1, count_version = count_version + 1
    WHERE id = OLD.topic_id;
END;
