-- Each topic carries its subscriber count, kept exact in the same transaction as the
-- subscription change (cascades included), so that the catalog every user sees is read from
-- the topic rows instead of aggregating every subscription. Statement-level triggers with
-- transition tables: a purge batch of 2,000 rows updates its topic once, not 2,000 times.
CREATE FUNCTION topic_subscribers_count_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE topics t
    SET subscriber_count = t.subscriber_count + added.n
    FROM (SELECT topic_id, count(*) AS n FROM added_rows GROUP BY topic_id) added
    WHERE t.id = added.topic_id;
    RETURN NULL;
END
$$;

CREATE FUNCTION topic_subscribers_count_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE topics t
    SET subscriber_count = t.subscriber_count - removed.n
    FROM (SELECT topic_id, count(*) AS n FROM removed_rows GROUP BY topic_id) removed
    WHERE t.id = removed.topic_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER topic_subscribers_counted_in
AFTER INSERT ON topic_subscribers
REFERENCING NEW TABLE AS added_rows
FOR EACH STATEMENT EXECUTE FUNCTION topic_subscribers_count_added();

CREATE TRIGGER topic_subscribers_counted_out
AFTER DELETE ON topic_subscribers
REFERENCING OLD TABLE AS removed_rows
FOR EACH STATEMENT EXECUTE FUNCTION topic_subscribers_count_removed();
