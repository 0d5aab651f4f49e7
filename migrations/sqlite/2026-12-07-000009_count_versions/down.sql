DROP TRIGGER topic_subscribers_counted_in;
DROP TRIGGER topic_subscribers_counted_out;
CREATE TRIGGER topic_subscribers_counted_in AFTER INSERT ON topic_subscribers
BEGIN
    UPDATE topics SET subscriber_count = subscriber_count + 1 WHERE id = NEW.topic_id;
END;
CREATE TRIGGER topic_subscribers_counted_out AFTER DELETE ON topic_subscribers
BEGIN
    UPDATE topics SET subscriber_count = subscriber_count - 1 WHERE id = OLD.topic_id;
END;
ALTER TABLE topics DROP COLUMN count_version;
