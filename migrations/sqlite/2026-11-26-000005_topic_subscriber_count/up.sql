-- Each topic carries its subscriber count, kept exact by triggers in the same transaction as
-- the subscription change (cascades included), so that the catalog every user sees is read
-- from 10,000 topic rows instead of aggregating 1,000,000 subscription rows.
ALTER TABLE topics ADD COLUMN subscriber_count BIGINT NOT NULL DEFAULT 0;

UPDATE topics
SET subscriber_count = (SELECT count(*) FROM topic_subscribers s WHERE s.topic_id = topics.id);

CREATE TRIGGER topic_subscribers_counted_in AFTER INSERT ON topic_subscribers
BEGIN
    UPDATE topics SET subscriber_count = subscriber_count + 1 WHERE id = NEW.topic_id;
END;

CREATE TRIGGER topic_subscribers_counted_out AFTER DELETE ON topic_subscribers
BEGIN
    UPDATE topics SET subscriber_count = subscriber_count - 1 WHERE id = OLD.topic_id;
END;
