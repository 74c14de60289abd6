-- Foundation schema (PostgreSQL). Kept column-for-column equal to the SQLite
-- migration; a test compares the two.

CREATE TABLE organisations (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE clinics (
    id TEXT PRIMARY KEY NOT NULL,
    org_id TEXT NOT NULL REFERENCES organisations(id),
    name TEXT NOT NULL,
    slug TEXT NOT NULL UNIQUE,
    address_line1 TEXT NOT NULL,
    address_line2 TEXT,
    city TEXT NOT NULL,
    region TEXT NOT NULL,
    postal_code TEXT NOT NULL,
    country TEXT NOT NULL,
    phone TEXT NOT NULL,
    email TEXT,
    time_zone TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE clinic_hours (
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    weekday INTEGER NOT NULL CHECK (weekday BETWEEN 1 AND 7),
    opens_min INTEGER NOT NULL,
    closes_min INTEGER NOT NULL,
    PRIMARY KEY (clinic_id, weekday),
    CHECK (opens_min >= 0 AND closes_min <= 1440 AND opens_min < closes_min)
);

CREATE TABLE clinic_closures (
    id TEXT PRIMARY KEY NOT NULL,
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    closed_on TEXT NOT NULL,
    reason TEXT NOT NULL,
    UNIQUE (clinic_id, closed_on)
);

CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    org_id TEXT NOT NULL REFERENCES organisations(id),
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    email TEXT,
    password_hash TEXT NOT NULL,
    totp_secret TEXT,
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until BIGINT,
    password_changed_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE role_grants (
    user_id TEXT NOT NULL REFERENCES users(id),
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    role TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    granted_by TEXT,
    PRIMARY KEY (user_id, clinic_id, role)
);

CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id),
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    absolute_expires_at BIGINT NOT NULL,
    source_ip TEXT
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('user', 'device')),
    user_id TEXT REFERENCES users(id),
    clinic_id TEXT REFERENCES clinics(id),
    created_at BIGINT NOT NULL,
    created_by TEXT,
    revoked_at BIGINT,
    CHECK ((kind = 'user' AND user_id IS NOT NULL) OR (kind = 'device' AND clinic_id IS NOT NULL))
);

CREATE TABLE patients (
    id TEXT PRIMARY KEY NOT NULL,
    org_id TEXT NOT NULL REFERENCES organisations(id),
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    mrn TEXT NOT NULL,
    given_name TEXT NOT NULL,
    family_name TEXT NOT NULL,
    preferred_name TEXT,
    date_of_birth TEXT NOT NULL,
    sex_at_birth TEXT,
    pronouns TEXT,
    phone TEXT,
    email TEXT,
    address_line1 TEXT,
    address_line2 TEXT,
    city TEXT,
    region TEXT,
    postal_code TEXT,
    emergency_contact_name TEXT,
    emergency_contact_phone TEXT,
    emergency_contact_relation TEXT,
    escort_name TEXT,
    escort_phone TEXT,
    search_text TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    created_by TEXT,
    UNIQUE (org_id, mrn)
);
CREATE INDEX patients_clinic_name ON patients (clinic_id, family_name, given_name);

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

CREATE FUNCTION audit_events_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();

CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
