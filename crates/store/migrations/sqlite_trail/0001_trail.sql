-- The audit trail on SQLite lives in a file of its own (`<data>-audit.db`),
-- written only by the audit writer, so that committing audit events does not
-- change the data file that patient reads use (every change to a SQLite file
-- makes each reader connection drop its cached pages and memory map).
--
-- The tables are those of the trail in 0001_foundation.sql of the data
-- file's migrations; PostgreSQL keeps them beside the data.

-- The audit trail. Append-only: the triggers below refuse UPDATE and DELETE.
CREATE TABLE audit_events (
    seq BIGINT PRIMARY KEY NOT NULL,
    id TEXT NOT NULL UNIQUE,
    at BIGINT NOT NULL,
    org_id TEXT,
    actor_user_id TEXT,
    actor_label TEXT NOT NULL,
    actor_role TEXT,
    clinic_id TEXT,
    patient_id TEXT,
    action TEXT NOT NULL,
    object_type TEXT,
    object_id TEXT,
    outcome TEXT NOT NULL,
    source_ip TEXT,
    request_id TEXT,
    detail TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_events_patient ON audit_events (patient_id, seq);
CREATE INDEX audit_events_actor ON audit_events (actor_user_id, seq);
CREATE INDEX audit_events_action ON audit_events (action, seq);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_org ON audit_events (org_id, seq);

-- The chain's tip. Every append locks this one row first, which serialises
-- appends on both backends and across app instances.
CREATE TABLE audit_head (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;

CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;

-- How far the data file's `audit_outbox` has been moved into the chain: the
-- highest outbox `oid` appended. It commits with the appended events, so a
-- crash between the two files' commits never appends an event twice.
CREATE TABLE audit_outbox_moved (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    oid INTEGER NOT NULL
);
INSERT INTO audit_outbox_moved (id, oid) VALUES (1, 0);
