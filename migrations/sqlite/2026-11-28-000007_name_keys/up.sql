-- Names are unique regardless of letter case in the Unicode sense ("ZOË" is "zoë", "ß" is
-- "ss", a full-width "Ａ" is "a"): the key is computed in the application (NFKC, case-folded)
-- and kept beside the name, so that both database backends compare it the same way. Rows
-- written before this migration get their keys when the server starts.
ALTER TABLE users ADD COLUMN username_key TEXT;
ALTER TABLE topics ADD COLUMN name_key TEXT;
CREATE UNIQUE INDEX users_username_key ON users (username_key);
CREATE UNIQUE INDEX topics_name_key ON topics (name_key) WHERE deleted_at IS NULL;
