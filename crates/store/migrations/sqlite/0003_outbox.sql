-- The outbox: work done after a request commits (reminder e-mails now;
-- questionnaires and reports later). A job is inserted in the same
-- transaction as what caused it, claimed by a worker for a few minutes,
-- and marked done with its outcome. Nothing is sent from inside a request.
CREATE TABLE outbox (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    dedupe_key TEXT UNIQUE,
    payload TEXT NOT NULL,
    run_at BIGINT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    claimed_until BIGINT,
    done_at BIGINT,
    outcome TEXT,
    last_error TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX outbox_due ON outbox (done_at, run_at);
