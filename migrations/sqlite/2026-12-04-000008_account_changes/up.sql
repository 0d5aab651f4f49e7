-- Sessions are bound to this beside the password hash: moving it ends every session of the
-- user at once, on every server.
ALTER TABLE users ADD COLUMN session_epoch BIGINT NOT NULL DEFAULT 0;

-- Account changes made by the command line (staff granted or taken, sessions ended, account
-- deleted): every running server reads the new rows and drops what it remembers of the user.
-- No foreign key: the row outlives a deleted account. AUTOINCREMENT: ids are never reused, so
-- a reader can follow the table by its last id.
CREATE TABLE account_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL,
    change TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
