-- The treatment day: the visit (encounter) opened at check-in, its
-- checklist saves, the dose order, the administration timeline, monitoring
-- readings (manual and from devices, idempotent by source key), alerts and
-- their responses, medicines, adverse events, recovery scores, discharge,
-- and the signed session note with its addenda (never changed).

CREATE TABLE encounters (
    id TEXT PRIMARY KEY NOT NULL,
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    patient_id TEXT NOT NULL REFERENCES patients(id),
    appointment_id TEXT UNIQUE REFERENCES appointments(id),
    resource_id TEXT REFERENCES resources(id),
    plan_id TEXT NOT NULL,
    plan_version BIGINT NOT NULL,
    protocol_id TEXT NOT NULL,
    protocol_version BIGINT NOT NULL,
    route TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'discharged')),
    opened_by TEXT NOT NULL REFERENCES users(id),
    opened_at BIGINT NOT NULL,
    discharged_by TEXT REFERENCES users(id),
    discharged_at BIGINT,
    discharge_note TEXT,
    CHECK (status = 'open' OR (discharged_by IS NOT NULL AND discharged_at IS NOT NULL))
);
CREATE INDEX encounters_clinic_open ON encounters (clinic_id, opened_at);
CREATE INDEX encounters_patient ON encounters (patient_id, opened_at);
CREATE INDEX encounters_chair ON encounters (resource_id, status);

CREATE TABLE encounter_checklists (
    encounter_id TEXT NOT NULL REFERENCES encounters(id),
    version BIGINT NOT NULL,
    data TEXT NOT NULL,
    recorded_by TEXT NOT NULL REFERENCES users(id),
    recorded_at BIGINT NOT NULL,
    PRIMARY KEY (encounter_id, version)
);

CREATE TABLE dose_orders (
    id TEXT PRIMARY KEY NOT NULL,
    encounter_id TEXT NOT NULL UNIQUE REFERENCES encounters(id),
    maths TEXT NOT NULL,
    mg DOUBLE PRECISION NOT NULL,
    ordered_by TEXT NOT NULL REFERENCES users(id),
    ordered_at BIGINT NOT NULL,
    second_check BOOLEAN NOT NULL,
    checked_by TEXT REFERENCES users(id),
    checked_at BIGINT,
    vial_lot TEXT,
    vial_expires TEXT,
    CHECK (checked_by IS NULL OR checked_by <> ordered_by)
);

CREATE TABLE administration_events (
    encounter_id TEXT NOT NULL REFERENCES encounters(id),
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('start', 'pause', 'resume', 'rate_change', 'stop', 'given')),
    at BIGINT NOT NULL,
    rate_ml_h DOUBLE PRECISION,
    reason TEXT,
    recorded_by TEXT NOT NULL REFERENCES users(id),
    recorded_at BIGINT NOT NULL,
    PRIMARY KEY (encounter_id, seq)
);

CREATE TABLE observations (
    id TEXT PRIMARY KEY NOT NULL,
    encounter_id TEXT NOT NULL REFERENCES encounters(id),
    source_key TEXT NOT NULL UNIQUE,
    taken_at BIGINT NOT NULL,
    hr BIGINT,
    sbp BIGINT,
    dbp BIGINT,
    spo2 BIGINT,
    rr BIGINT,
    temp_c DOUBLE PRECISION,
    moaas BIGINT,
    cadss6 BIGINT,
    nausea BIGINT,
    distress BIGINT,
    recorded_by TEXT REFERENCES users(id),
    device_token_id TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX observations_encounter_time ON observations (encounter_id, taken_at);

CREATE TABLE alerts (
    id TEXT PRIMARY KEY NOT NULL,
    encounter_id TEXT NOT NULL REFERENCES encounters(id),
    observation_id TEXT NOT NULL REFERENCES observations(id),
    parameter TEXT NOT NULL,
    severity TEXT NOT NULL CHECK (severity IN ('warn', 'pause', 'stop')),
    message TEXT NOT NULL,
    raised_at BIGINT NOT NULL,
    ack_by TEXT REFERENCES users(id),
    ack_at BIGINT,
    response TEXT,
    note TEXT,
    CHECK (ack_at IS NULL OR (ack_by IS NOT NULL AND response IS NOT NULL))
);
CREATE INDEX alerts_encounter ON alerts (encounter_id, raised_at);

CREATE TABLE encounter_medications (
    id TEXT PRIMARY KEY NOT NULL,
    encounter_id TEXT NOT NULL REFERENCES encounters(id),
    name TEXT NOT NULL,
    dose TEXT NOT NULL,
    route TEXT NOT NULL,
    reason TEXT NOT NULL,
    given_at BIGINT NOT NULL,
    given_by TEXT NOT NULL REFERENCES users(id)
);
CREATE INDEX encounter_medications_encounter ON encounter_medications (encounter_id);

CREATE TABLE adverse_events (
    id TEXT PRIMARY KEY NOT NULL,
    encounter_id TEXT NOT NULL REFERENCES encounters(id),
    patient_id TEXT NOT NULL REFERENCES patients(id),
    kind TEXT NOT NULL,
    severity TEXT NOT NULL CHECK (severity IN ('mild', 'moderate', 'severe')),
    serious BOOLEAN NOT NULL,
    description TEXT NOT NULL,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL,
    follow_up BOOLEAN NOT NULL,
    recorded_by TEXT NOT NULL REFERENCES users(id),
    recorded_at BIGINT NOT NULL
);
CREATE INDEX adverse_events_encounter ON adverse_events (encounter_id);
CREATE INDEX adverse_events_patient ON adverse_events (patient_id, recorded_at);

CREATE TABLE recovery_scores (
    id TEXT PRIMARY KEY NOT NULL,
    encounter_id TEXT NOT NULL REFERENCES encounters(id),
    aldrete TEXT NOT NULL,
    total BIGINT NOT NULL,
    scored_by TEXT NOT NULL REFERENCES users(id),
    scored_at BIGINT NOT NULL
);
CREATE INDEX recovery_scores_encounter ON recovery_scores (encounter_id, scored_at);

-- Signed notes and their addenda never change: the triggers refuse it.
CREATE TABLE session_notes (
    id TEXT PRIMARY KEY NOT NULL,
    encounter_id TEXT NOT NULL UNIQUE REFERENCES encounters(id),
    body TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    signed_by TEXT NOT NULL REFERENCES users(id),
    signed_at BIGINT NOT NULL
);

CREATE TABLE note_addenda (
    id TEXT PRIMARY KEY NOT NULL,
    note_id TEXT NOT NULL REFERENCES session_notes(id),
    body TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    signed_by TEXT NOT NULL REFERENCES users(id),
    signed_at BIGINT NOT NULL
);
CREATE INDEX note_addenda_note ON note_addenda (note_id, signed_at);

CREATE FUNCTION signed_notes_never_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'a signed note never changes: write an addendum';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER session_notes_no_update BEFORE UPDATE OR DELETE ON session_notes
    FOR EACH ROW EXECUTE FUNCTION signed_notes_never_change();
CREATE TRIGGER session_notes_no_truncate BEFORE TRUNCATE ON session_notes
    FOR EACH STATEMENT EXECUTE FUNCTION signed_notes_never_change();
CREATE TRIGGER note_addenda_no_update BEFORE UPDATE OR DELETE ON note_addenda
    FOR EACH ROW EXECUTE FUNCTION signed_notes_never_change();
CREATE TRIGGER note_addenda_no_truncate BEFORE TRUNCATE ON note_addenda
    FOR EACH STATEMENT EXECUTE FUNCTION signed_notes_never_change();
