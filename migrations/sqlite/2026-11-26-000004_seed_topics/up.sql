INSERT INTO topics (name) VALUES ('Python'), ('Django'), ('DevOps')
ON CONFLICT DO NOTHING;
