-- Retired topics finish their deletion first (foreign keys still on: the cascade runs).
DELETE FROM topics WHERE deleted_at IS NOT NULL;
PRAGMA foreign_keys = OFF;
BEGIN;
DROP TRIGGER topic_subscribers_counted_in;
DROP TRIGGER topic_subscribers_counted_out;
CREATE TEMP TABLE topics_sequence AS SELECT seq FROM sqlite_sequence WHERE name = 'topics';

CREATE TABLE topics_rebuilt (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    name TEXT NOT NULL COLLATE NOCASE UNIQUE
        CHECK (length(name) BETWEEN 1 AND 100),
    subscriber_count BIGINT NOT NULL DEFAULT 0
);
INSERT INTO topics_rebuilt (id, name, subscriber_count)
SELECT id, name, subscriber_count FROM topics;
DROP TABLE topics;
ALTER TABLE topics_rebuilt RENAME TO topics;
UPDATE sqlite_sequence SET seq = max(seq, (SELECT coalesce(max(seq), 0) FROM temp.topics_sequence))
WHERE name = 'topics';
DROP TABLE temp.topics_sequence;

CREATE TRIGGER topic_subscribers_counted_in AFTER INSERT ON topic_subscribers
BEGIN
    UPDATE topics SET subscriber_count = subscriber_count + 1 WHERE id = NEW.topic_id;
END;
CREATE TRIGGER topic_subscribers_counted_out AFTER DELETE ON topic_subscribers
BEGIN
    UPDATE topics SET subscriber_count = subscriber_count - 1 WHERE id = OLD.topic_id;
END;
COMMIT;
PRAGMA foreign_keys = ON;
