DROP TABLE sessions;
DROP TABLE topic_activities;
DROP TABLE topic_subscribers;
DROP TABLE topics;
DROP TABLE users;
