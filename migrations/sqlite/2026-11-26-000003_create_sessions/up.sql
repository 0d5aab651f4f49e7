-- Login sessions, kept in the database so that a restart logs nobody out.
CREATE TABLE sessions (
    id TEXT PRIMARY KEY NOT NULL,
    data BLOB NOT NULL,
    -- Unix seconds.
    expiry_date BIGINT NOT NULL
);
CREATE INDEX sessions_expiry_date ON sessions (expiry_date);
