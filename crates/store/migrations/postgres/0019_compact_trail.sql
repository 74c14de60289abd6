-- The trail, compacted: see 0004_compact.sql of the SQLite trail. What an
-- event says and its hash are unchanged; the words that recur are kept once
-- in `audit_terms`, the hash is 32 bytes, the previous hash is not repeated.
-- Rows up to `audit_base` have been archived and may be removed.

CREATE TABLE audit_terms (
    id BIGSERIAL PRIMARY KEY NOT NULL,
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
) AS t WHERE v IS NOT NULL ORDER BY v;

CREATE TABLE audit_events_compact (
    seq BIGINT PRIMARY KEY NOT NULL,
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
    hash BYTEA NOT NULL
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
    e.request_id, e.detail, decode(e.hash, 'hex')
FROM audit_events e ORDER BY e.seq;

DROP TABLE audit_events;
ALTER TABLE audit_events_compact RENAME TO audit_events;
ALTER INDEX audit_events_compact_pkey RENAME TO audit_events_pkey;

CREATE INDEX audit_events_patient ON audit_events (patient_t, seq);
CREATE INDEX audit_events_actor ON audit_events (actor_t, seq);
CREATE INDEX audit_events_action ON audit_events (action_t, seq);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_org ON audit_events (org_t, seq);

CREATE TABLE audit_base (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_base (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
CREATE TRIGGER audit_base_forward BEFORE UPDATE OR DELETE ON audit_base
    FOR EACH ROW EXECUTE FUNCTION head_moves_forward();

-- Updates never; deletes only of archived rows (at or below the base).
CREATE FUNCTION audit_events_guard() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE'
       AND OLD.seq <= (SELECT seq FROM audit_base WHERE id = 1) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_events is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_guard();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

CREATE FUNCTION audit_terms_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_terms is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_terms_no_update BEFORE UPDATE OR DELETE ON audit_terms
    FOR EACH ROW EXECUTE FUNCTION audit_terms_append_only();
CREATE TRIGGER audit_terms_no_truncate BEFORE TRUNCATE ON audit_terms
    FOR EACH STATEMENT EXECUTE FUNCTION audit_terms_append_only();
