-- The front door and measurement-based care: leads from the public
-- self-assessment, questionnaire responses (each with the instrument version
-- and file hash it was scored under), single-use questionnaire links (only
-- a hash of the token is kept), and safety tasks that stay open until a
-- clinician closes them with a note.
CREATE TABLE leads (
    id TEXT PRIMARY KEY NOT NULL,
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    status TEXT NOT NULL CHECK (status IN ('new', 'contacted', 'consultation_booked', 'declined', 'became_patient')),
    given_name TEXT NOT NULL,
    family_name TEXT NOT NULL,
    email TEXT,
    phone TEXT,
    date_of_birth TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('likely', 'maybe', 'not_right')),
    gad7_total BIGINT NOT NULL,
    phq2_total BIGINT NOT NULL,
    safety BOOLEAN NOT NULL,
    detail TEXT NOT NULL,
    result_token_hash TEXT NOT NULL UNIQUE,
    patient_id TEXT REFERENCES patients(id),
    appointment_id TEXT REFERENCES appointments(id),
    note TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX leads_clinic_status ON leads (clinic_id, status, created_at);

CREATE TABLE questionnaire_links (
    id TEXT PRIMARY KEY NOT NULL,
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    patient_id TEXT NOT NULL REFERENCES patients(id),
    instrument_id TEXT NOT NULL,
    instrument_version BIGINT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    reason TEXT NOT NULL,
    rule_key TEXT UNIQUE,
    created_at BIGINT NOT NULL,
    created_by TEXT,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    response_id TEXT
);
CREATE INDEX questionnaire_links_patient ON questionnaire_links (patient_id, created_at);

CREATE TABLE questionnaire_responses (
    id TEXT PRIMARY KEY NOT NULL,
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    patient_id TEXT REFERENCES patients(id),
    lead_id TEXT REFERENCES leads(id),
    instrument_id TEXT NOT NULL,
    instrument_version BIGINT NOT NULL,
    instrument_hash TEXT NOT NULL,
    answers TEXT NOT NULL,
    total BIGINT,
    band TEXT,
    band_level TEXT,
    subscales TEXT NOT NULL,
    flags TEXT NOT NULL,
    safety BOOLEAN NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('public', 'link', 'staff', 'api')),
    link_id TEXT REFERENCES questionnaire_links(id),
    appointment_id TEXT REFERENCES appointments(id),
    entered_by TEXT REFERENCES users(id),
    started_at BIGINT,
    submitted_at BIGINT NOT NULL,
    CHECK (patient_id IS NOT NULL OR lead_id IS NOT NULL)
);
CREATE INDEX questionnaire_responses_patient ON questionnaire_responses (patient_id, instrument_id, submitted_at);
CREATE INDEX questionnaire_responses_lead ON questionnaire_responses (lead_id);

CREATE TABLE tasks (
    id TEXT PRIMARY KEY NOT NULL,
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    patient_id TEXT REFERENCES patients(id),
    lead_id TEXT REFERENCES leads(id),
    kind TEXT NOT NULL CHECK (kind IN ('safety')),
    title TEXT NOT NULL,
    response_id TEXT REFERENCES questionnaire_responses(id),
    status TEXT NOT NULL CHECK (status IN ('open', 'closed')),
    opened_at BIGINT NOT NULL,
    closed_at BIGINT,
    closed_by TEXT REFERENCES users(id),
    close_note TEXT,
    CHECK (status = 'open' OR (closed_by IS NOT NULL AND close_note IS NOT NULL))
);
CREATE INDEX tasks_clinic_status ON tasks (clinic_id, status, opened_at);
CREATE INDEX tasks_patient ON tasks (patient_id, status);
