DROP TABLE account_changes;
ALTER TABLE users DROP COLUMN session_epoch;
