-- Before the first dose: the two parts of the pre-treatment assessment
-- (each change a new version), consent documents per clinic and route
-- (published versions never change), signatures bound to the SHA-256 of the
-- exact text with the PDF of what was signed, single-use links for the
-- patient's part and consent, and treatment plans (each change a new
-- version with a reason, keeping the protocol version it was made under).
CREATE TABLE assessments (
    id TEXT PRIMARY KEY NOT NULL,
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    patient_id TEXT NOT NULL REFERENCES patients(id),
    part TEXT NOT NULL CHECK (part IN ('patient', 'clinical')),
    version BIGINT NOT NULL,
    data TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('link', 'staff', 'api')),
    entered_by TEXT REFERENCES users(id),
    created_at BIGINT NOT NULL,
    UNIQUE (patient_id, part, version)
);

CREATE TABLE consent_documents (
    id TEXT PRIMARY KEY NOT NULL,
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    route TEXT NOT NULL,
    version BIGINT NOT NULL,
    title TEXT NOT NULL,
    source TEXT NOT NULL,
    body TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    witness_required BOOLEAN NOT NULL,
    published_by TEXT NOT NULL REFERENCES users(id),
    published_at BIGINT NOT NULL,
    UNIQUE (clinic_id, route, version)
);

CREATE TABLE patient_links (
    id TEXT PRIMARY KEY NOT NULL,
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    patient_id TEXT NOT NULL REFERENCES patients(id),
    purpose TEXT NOT NULL CHECK (purpose IN ('assessment', 'consent')),
    route TEXT,
    token_hash TEXT NOT NULL UNIQUE,
    created_by TEXT REFERENCES users(id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX patient_links_patient ON patient_links (patient_id, created_at);

CREATE TABLE consents (
    id TEXT PRIMARY KEY NOT NULL,
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    patient_id TEXT NOT NULL REFERENCES patients(id),
    document_id TEXT NOT NULL REFERENCES consent_documents(id),
    route TEXT NOT NULL,
    document_version BIGINT NOT NULL,
    document_sha256 TEXT NOT NULL,
    typed_name TEXT NOT NULL,
    signed_at BIGINT NOT NULL,
    channel TEXT NOT NULL CHECK (channel IN ('clinic', 'link')),
    recorded_by TEXT REFERENCES users(id),
    link_id TEXT REFERENCES patient_links(id),
    witness_required BOOLEAN NOT NULL,
    witnessed_by TEXT REFERENCES users(id),
    witnessed_at BIGINT,
    pdf BYTEA NOT NULL,
    pdf_sha256 TEXT NOT NULL,
    withdrawn_at BIGINT,
    withdrawn_by TEXT REFERENCES users(id),
    withdrawal_reason TEXT
);
CREATE INDEX consents_patient ON consents (patient_id, route, signed_at);

CREATE TABLE treatment_plans (
    id TEXT PRIMARY KEY NOT NULL,
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    patient_id TEXT NOT NULL REFERENCES patients(id),
    version BIGINT NOT NULL,
    protocol_id TEXT NOT NULL,
    protocol_version BIGINT NOT NULL,
    protocol_hash TEXT NOT NULL,
    route TEXT NOT NULL,
    course TEXT NOT NULL,
    doses BIGINT NOT NULL,
    targets TEXT NOT NULL,
    goal TEXT NOT NULL CHECK (goal IN ('response', 'remission')),
    modality TEXT NOT NULL,
    notes TEXT NOT NULL,
    reason TEXT NOT NULL,
    eligibility_version BIGINT NOT NULL,
    consent_id TEXT NOT NULL REFERENCES consents(id),
    created_by TEXT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL,
    UNIQUE (patient_id, version)
);
