-- The demo user admin@example.com / verysecret. $1 is its bcrypt hash, computed at start-up
-- with the configured cost. A database that already has the address keeps its row.
INSERT INTO users (email, first_name, last_name, password, user_active)
VALUES ('admin@example.com', 'Admin', 'User', $1, 1)
ON CONFLICT DO NOTHING
