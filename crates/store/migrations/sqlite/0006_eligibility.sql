-- Eligibility decisions: each a new version per patient with the facts it
-- rested on, the engine's findings, the prescriber's decision and rationale,
-- and the nurse's sign-off. Decisions are never edited; a change is a new
-- version.
CREATE TABLE eligibility_decisions (
    id TEXT PRIMARY KEY NOT NULL,
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    patient_id TEXT NOT NULL REFERENCES patients(id),
    version BIGINT NOT NULL,
    facts TEXT NOT NULL,
    findings TEXT NOT NULL,
    suggestion TEXT NOT NULL,
    decision TEXT NOT NULL CHECK (decision IN ('eligible', 'eligible_with_conditions', 'not_eligible', 'needs_more_information')),
    conditions TEXT NOT NULL,
    rationale TEXT NOT NULL,
    treatment_resistant BOOLEAN NOT NULL,
    decided_by TEXT NOT NULL REFERENCES users(id),
    decided_at BIGINT NOT NULL,
    signed_off_by TEXT REFERENCES users(id),
    signed_off_at BIGINT,
    UNIQUE (patient_id, version)
);
