-- The waitlist: patients who want an earlier or any time for a kind of
-- visit. A freed time (a cancellation) is offered to the first who fits it.
CREATE TABLE waitlist (
    id TEXT PRIMARY KEY NOT NULL,
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    patient_id TEXT NOT NULL REFERENCES patients(id),
    type_code TEXT NOT NULL,
    from_date TEXT NOT NULL,
    to_date TEXT NOT NULL,
    note TEXT,
    status TEXT NOT NULL CHECK (status IN ('waiting', 'offered', 'booked', 'removed')),
    offered_start BIGINT,
    offered_at BIGINT,
    created_at BIGINT NOT NULL,
    created_by TEXT
);
CREATE INDEX waitlist_clinic ON waitlist (clinic_id, status, created_at);
