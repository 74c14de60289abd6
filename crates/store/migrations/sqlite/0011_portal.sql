-- The patient portal: single-use sign-in links (the token itself is never
-- stored, only its SHA-256), the sessions they open, and which visits a
-- patient booked themselves (the portal limits how many they hold at once).

CREATE TABLE portal_links (
    id TEXT PRIMARY KEY NOT NULL,
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    patient_id TEXT NOT NULL REFERENCES patients(id),
    token_hash TEXT NOT NULL UNIQUE,
    created_by TEXT REFERENCES users(id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX portal_links_patient ON portal_links (patient_id, created_at);

CREATE TABLE portal_sessions (
    id_hash TEXT PRIMARY KEY NOT NULL,
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    patient_id TEXT NOT NULL REFERENCES patients(id),
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    absolute_expires_at BIGINT NOT NULL,
    ended_at BIGINT
);
CREATE INDEX portal_sessions_patient ON portal_sessions (patient_id);

ALTER TABLE appointments ADD COLUMN self_booked BOOLEAN NOT NULL DEFAULT FALSE;
