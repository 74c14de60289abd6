-- The trail, compacted (about 860 bytes per audited read before, under 300
-- after; BENCHMARKS.md). What an event says is unchanged, and so is its
-- hash; only how it is stored changes:
--   * the words that recur (organisation, actor, role, clinic, patient,
--     action, object, outcome, address) are kept once in `audit_terms` and
--     referred to by number from the `*_t` columns;
--   * an event's hash is 32 bytes, not 64 hex characters, and the previous
--     event's hash is not repeated in the next row (it is that row's hash);
--   * `seq` is the table's own row number, so it needs no index of its own,
--     and the event id (a ULID that is never looked up) none either.
-- Rows up to `audit_base` have been archived (`stillwater audit archive`)
-- and may be removed; every later row is append-only.

CREATE TABLE audit_terms (
    id INTEGER PRIMARY KEY NOT NULL,
    term TEXT NOT NULL UNIQUE
);

INSERT INTO audit_terms (term)
SELECT v FROM (
    SELECT org_id AS v FROM audit_events
    UNION SELECT actor_user_id FROM audit_events
    UNION SELECT actor_label FROM audit_events
    UNION SELECT actor_role FROM audit_events
    UNION SELECT clinic_id FROM audit_events
    UNION SELECT patient_id FROM audit_events
    UNION SELECT action FROM audit_events
    UNION SELECT object_type FROM audit_events
    UNION SELECT object_id FROM audit_events
    UNION SELECT outcome FROM audit_events
    UNION SELECT source_ip FROM audit_events
) WHERE v IS NOT NULL ORDER BY v;

CREATE TABLE audit_events_compact (
    seq INTEGER PRIMARY KEY NOT NULL,
    id TEXT NOT NULL,
    at BIGINT NOT NULL,
    org_t BIGINT,
    actor_t BIGINT,
    label_t BIGINT NOT NULL,
    role_t BIGINT,
    clinic_t BIGINT,
    patient_t BIGINT,
    action_t BIGINT NOT NULL,
    object_type_t BIGINT,
    object_t BIGINT,
    outcome_t BIGINT NOT NULL,
    ip_t BIGINT,
    request_id TEXT,
    detail TEXT,
    hash BLOB NOT NULL
);

INSERT INTO audit_events_compact
SELECT e.seq, e.id, e.at,
    (SELECT id FROM audit_terms WHERE term = e.org_id),
    (SELECT id FROM audit_terms WHERE term = e.actor_user_id),
    (SELECT id FROM audit_terms WHERE term = e.actor_label),
    (SELECT id FROM audit_terms WHERE term = e.actor_role),
    (SELECT id FROM audit_terms WHERE term = e.clinic_id),
    (SELECT id FROM audit_terms WHERE term = e.patient_id),
    (SELECT id FROM audit_terms WHERE term = e.action),
    (SELECT id FROM audit_terms WHERE term = e.object_type),
    (SELECT id FROM audit_terms WHERE term = e.object_id),
    (SELECT id FROM audit_terms WHERE term = e.outcome),
    (SELECT id FROM audit_terms WHERE term = e.source_ip),
    e.request_id, e.detail, unhex(e.hash)
FROM audit_events e ORDER BY e.seq;

DROP TABLE audit_events;
ALTER TABLE audit_events_compact RENAME TO audit_events;

CREATE INDEX audit_events_patient ON audit_events (patient_t, seq);
CREATE INDEX audit_events_actor ON audit_events (actor_t, seq);
CREATE INDEX audit_events_action ON audit_events (action_t, seq);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_org ON audit_events (org_t, seq);

-- Where the live trail begins: rows up to `seq` are in archives, `hash` is
-- the last archived row's. Only moves forward.
CREATE TABLE audit_base (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_base (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TRIGGER audit_base_forward BEFORE UPDATE ON audit_base
WHEN NEW.seq < OLD.seq OR NEW.id <> OLD.id
BEGIN
    SELECT RAISE(ABORT, 'the audit archive base only moves forward');
END;
CREATE TRIGGER audit_base_no_delete BEFORE DELETE ON audit_base
BEGIN
    SELECT RAISE(ABORT, 'the audit archive base only moves forward');
END;

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
WHEN OLD.seq > (SELECT seq FROM audit_base WHERE id = 1)
    OR NOT EXISTS (SELECT 1 FROM audit_base WHERE id = 1)
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;
-- An INSERT OR REPLACE would delete a chained row without firing the
-- delete trigger; refuse the insert instead.
CREATE TRIGGER audit_events_no_replace BEFORE INSERT ON audit_events
WHEN EXISTS (SELECT 1 FROM audit_events WHERE seq = NEW.seq)
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;

-- A term, once written, is what every row naming it says: never changed.
CREATE TRIGGER audit_terms_no_update BEFORE UPDATE ON audit_terms
BEGIN
    SELECT RAISE(ABORT, 'audit_terms is append-only');
END;
CREATE TRIGGER audit_terms_no_delete BEFORE DELETE ON audit_terms
BEGIN
    SELECT RAISE(ABORT, 'audit_terms is append-only');
END;
-- (So a term is added only where it is missing, never with ON CONFLICT.)
CREATE TRIGGER audit_terms_no_replace BEFORE INSERT ON audit_terms
WHEN EXISTS (SELECT 1 FROM audit_terms WHERE id = NEW.id OR term = NEW.term)
BEGIN
    SELECT RAISE(ABORT, 'audit_terms is append-only');
END;
