CREATE TABLE topics (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    -- NOCASE makes the uniqueness case-insensitive ("python" clashes with "Python").
    name TEXT NOT NULL COLLATE NOCASE UNIQUE
        CHECK (length(name) BETWEEN 1 AND 100)
);

CREATE TABLE topic_subscribers (
    topic_id INTEGER NOT NULL REFERENCES topics (id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (topic_id, user_id)
);
-- The primary key serves lookups by topic; this one serves "the topics of a user".
CREATE INDEX topic_subscribers_user_id ON topic_subscribers (user_id);

-- topic_id is nullable: a "deleted" row outlives its topic as a tombstone that keeps topic_name.
CREATE TABLE topic_activities (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    topic_id INTEGER REFERENCES topics (id) ON DELETE CASCADE,
    topic_name TEXT NOT NULL,
    action VARCHAR(20) NOT NULL CHECK (action IN ('created', 'deleted', 'updated')),
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX topic_activities_topic_id ON topic_activities (topic_id);
CREATE INDEX topic_activities_created_at ON topic_activities (created_at);
