DELETE FROM topics WHERE name IN ('Python', 'Django', 'DevOps');
