-- A topic with more subscriptions than one request should delete is *retired*: `deleted_at`
-- hides it from every query at once and a background purge removes its subscriptions in
-- batches, then the row. Its name is free again at once, so uniqueness moves from the column
-- to an index over live topics. SQLite cannot alter a constraint: the table is rebuilt
-- (https://www.sqlite.org/lang_altertable.html#otheralter).
PRAGMA foreign_keys = OFF;
BEGIN;
DROP TRIGGER topic_subscribers_counted_in;
DROP TRIGGER topic_subscribers_counted_out;
-- AUTOINCREMENT must not hand out the ids of topics deleted before the rebuild.
CREATE TEMP TABLE topics_sequence AS SELECT seq FROM sqlite_sequence WHERE name = 'topics';

CREATE TABLE topics_rebuilt (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    name TEXT NOT NULL COLLATE NOCASE CHECK (length(name) BETWEEN 1 AND 100),
    subscriber_count BIGINT NOT NULL DEFAULT 0,
    deleted_at TIMESTAMP
);
INSERT INTO topics_rebuilt (id, name, subscriber_count)
SELECT id, name, subscriber_count FROM topics;
DROP TABLE topics;
ALTER TABLE topics_rebuilt RENAME TO topics;
UPDATE sqlite_sequence SET seq = max(seq, (SELECT coalesce(max(seq), 0) FROM temp.topics_sequence))
WHERE name = 'topics';
DROP TABLE temp.topics_sequence;

-- NOCASE comes from the column: "python" still clashes with a live "Python".
CREATE UNIQUE INDEX topics_name ON topics (name) WHERE deleted_at IS NULL;
-- The catalog's order, so a full rebuild reads rows in order instead of sorting them.
CREATE INDEX topics_listed ON topics (lower(name), id) WHERE deleted_at IS NULL;
-- What the purge has left to do.
CREATE INDEX topics_retired ON topics (id) WHERE deleted_at IS NOT NULL;

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
