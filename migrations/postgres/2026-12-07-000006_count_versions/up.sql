-- Each topic's count carries a version that moves with it, in the same statement: an open
-- page told counts out of order (by several instances, say) keeps a row's newest count by
-- comparing versions, instead of refetching the list to be sure. One step per statement
-- that moves the count (a purge batch is one step): the version only has to grow.
ALTER TABLE topics ADD COLUMN count_version BIGINT NOT NULL DEFAULT 0;

CREATE OR REPLACE FUNCTION topic_subscribers_count_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE topics t
    SET subscriber_count = t.subscriber_count + added.n,
        count_version = t.count_version + 1
    FROM (SELECT topic_id, count(*) AS n FROM added_rows GROUP BY topic_id) added
    WHERE t.id = added.topic_id;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION topic_subscribers_count_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE topics t
    SET subscriber_count = t.subscriber_count - removed.n,
        count_version = t.count_version + 1
    FROM (SELECT topic_id, count(*) AS n FROM removed_rows GROUP BY topic_id) removed
    WHERE t.id = removed.topic_id;
    RETURN NULL;
END
$$;
