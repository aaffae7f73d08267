-- The users table of the Go original, with time zones and defaults.
-- Idempotent: safe on a database that already has the table.
CREATE TABLE IF NOT EXISTS users (
    id          serial PRIMARY KEY,
    email       varchar(255) UNIQUE NOT NULL,
    first_name  varchar(255) NOT NULL DEFAULT '',
    last_name   varchar(255) NOT NULL DEFAULT '',
    password    varchar(60) NOT NULL,
    user_active integer NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Logins look e-mail addresses up case-insensitively; this index serves them and makes
-- addresses that differ only in case one address.
CREATE UNIQUE INDEX IF NOT EXISTS users_email_lower_key ON users (lower(email));
