-- Keys as `names::key` computes them (ASCII names: lower case).
INSERT INTO topics (name, name_key) VALUES ('Python', 'python'), ('Django', 'django'), ('DevOps', 'devops')
ON CONFLICT DO NOTHING;
