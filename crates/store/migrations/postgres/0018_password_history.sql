-- The passwords a user has had, so that a new one cannot be an old one
-- again. Only the Argon2 hashes are kept; a row is added when a password is
-- replaced.
CREATE TABLE password_history (
    user_id TEXT NOT NULL REFERENCES users(id),
    password_hash TEXT NOT NULL,
    replaced_at BIGINT NOT NULL
);
CREATE INDEX password_history_user ON password_history (user_id, replaced_at);
