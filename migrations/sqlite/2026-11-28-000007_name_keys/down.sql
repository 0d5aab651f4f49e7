DROP INDEX topics_name_key;
DROP INDEX users_username_key;
ALTER TABLE topics DROP COLUMN name_key;
ALTER TABLE users DROP COLUMN username_key;
