-- The versions of cached data, one row per cache key (`topics:catalog`, `user:*:topics`,
-- `user:{id}:topics`): the one source of truth every server instance consults. A change moves
-- the versions of what it makes stale inside its own transaction, so that an instance that
-- reads a version after the commit can never serve what the change replaced. A missing row is
-- version 0.
CREATE TABLE cache_versions (
    key TEXT PRIMARY KEY,
    version BIGINT NOT NULL
);
