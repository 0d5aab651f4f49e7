CREATE OR REPLACE FUNCTION topic_subscribers_count_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE topics t
    SET subscriber_count = t.subscriber_count + added.n
    FROM (SELECT topic_id, count(*) AS n FROM added_rows GROUP BY topic_id) added
    WHERE t.id = added.topic_id;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION topic_subscribers_count_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE topics t
    SET subscriber_count = t.subscriber_count - removed.n
    FROM (SELECT topic_id, count(*) AS n FROM removed_rows GROUP BY topic_id) removed
    WHERE t.id = removed.topic_id;
    RETURN NULL;
END
$$;

ALTER TABLE topics DROP COLUMN count_version;
