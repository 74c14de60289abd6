-- The audit trail moves to a file of its own (migrations/sqlite_trail). The
-- store copies the rows and the head into that file before this migration
-- runs (`audit::carry_trail_over`) and does not run it unless the copy agrees.
DROP TABLE audit_events;
DROP TABLE audit_head;

-- Audit events of writes to this file commit here, in the same transaction
-- as the data they describe; the audit writer moves them into the chain in
-- the trail file (in `oid` order, recording how far it got there) and then
-- deletes them here. AUTOINCREMENT: an `oid` is never reused, even after the
-- table has been emptied.
CREATE TABLE audit_outbox (
    oid INTEGER PRIMARY KEY AUTOINCREMENT,
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
    detail TEXT
);
