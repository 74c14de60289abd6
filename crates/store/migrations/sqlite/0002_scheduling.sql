-- Scheduling: chairs and rooms, appointment types, staff hours, visits,
-- series, and the claims that make a double booking impossible.

CREATE TABLE scheduling_rules (
    clinic_id TEXT PRIMARY KEY NOT NULL REFERENCES clinics(id),
    nurse_ratio INTEGER NOT NULL,
    monitor_ratio INTEGER NOT NULL,
    slot_step_min INTEGER NOT NULL,
    min_notice_min INTEGER NOT NULL,
    horizon_days INTEGER NOT NULL,
    late_cancel_hours INTEGER NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE resources (
    id TEXT PRIMARY KEY NOT NULL,
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    kind TEXT NOT NULL CHECK (kind IN ('chair', 'room', 'telehealth')),
    name TEXT NOT NULL,
    iv BOOLEAN NOT NULL DEFAULT FALSE,
    monitored BOOLEAN NOT NULL DEFAULT FALSE,
    private BOOLEAN NOT NULL DEFAULT FALSE,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    created_at BIGINT NOT NULL,
    UNIQUE (clinic_id, name)
);

-- The definition is the domain's AppointmentType as JSON, validated on the
-- way in and on the way out.
CREATE TABLE appointment_types (
    id TEXT PRIMARY KEY NOT NULL,
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    code TEXT NOT NULL,
    name TEXT NOT NULL,
    definition TEXT NOT NULL,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    updated_at BIGINT NOT NULL,
    UNIQUE (clinic_id, code)
);

CREATE TABLE staff_hours (
    user_id TEXT NOT NULL REFERENCES users(id),
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    weekday INTEGER NOT NULL CHECK (weekday BETWEEN 1 AND 7),
    start_min INTEGER NOT NULL,
    end_min INTEGER NOT NULL,
    PRIMARY KEY (user_id, clinic_id, weekday),
    CHECK (start_min >= 0 AND end_min <= 1440 AND start_min < end_min)
);

CREATE TABLE staff_time_off (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id),
    starts_at BIGINT NOT NULL,
    ends_at BIGINT NOT NULL,
    reason TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    CHECK (starts_at < ends_at)
);
CREATE INDEX staff_time_off_user ON staff_time_off (user_id, ends_at);

CREATE TABLE series (
    id TEXT PRIMARY KEY NOT NULL,
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    patient_id TEXT NOT NULL REFERENCES patients(id),
    kind TEXT NOT NULL,
    spec TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT
);
CREATE INDEX series_patient ON series (patient_id);

CREATE TABLE appointments (
    id TEXT PRIMARY KEY NOT NULL,
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    patient_id TEXT NOT NULL REFERENCES patients(id),
    type_code TEXT NOT NULL,
    type_name TEXT NOT NULL,
    series_id TEXT REFERENCES series(id),
    series_index INTEGER,
    series_role TEXT CHECK (series_role IN ('dose', 'integration')),
    starts_at BIGINT NOT NULL,
    ends_at BIGINT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('booked', 'checked_in', 'completed', 'cancelled', 'no_show')),
    resource_id TEXT REFERENCES resources(id),
    plan TEXT NOT NULL,
    sequence INTEGER NOT NULL DEFAULT 0,
    cancel_reason TEXT,
    late_cancel BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    created_by TEXT,
    CHECK (starts_at < ends_at)
);
CREATE INDEX appointments_clinic_time ON appointments (clinic_id, starts_at);
CREATE INDEX appointments_patient_time ON appointments (patient_id, starts_at);
CREATE INDEX appointments_resource_time ON appointments (resource_id, starts_at);
CREATE INDEX appointments_series ON appointments (series_id);

CREATE TABLE appointment_staff (
    appointment_id TEXT NOT NULL REFERENCES appointments(id),
    user_id TEXT NOT NULL REFERENCES users(id),
    PRIMARY KEY (appointment_id, user_id)
);
CREATE INDEX appointment_staff_user ON appointment_staff (user_id, appointment_id);

-- One row per 5-minute granule and seat that a booked visit takes of a chair
-- or room ('r:<id>'), a person ('s:<id>') or a patient ('p:<id>'). The
-- primary key is what refuses a double booking, on both backends and under
-- any concurrency: two transactions cannot both insert the same seat.
CREATE TABLE slot_claims (
    claim_key TEXT NOT NULL,
    granule BIGINT NOT NULL,
    seat INTEGER NOT NULL,
    appointment_id TEXT NOT NULL REFERENCES appointments(id),
    PRIMARY KEY (claim_key, granule, seat)
);
CREATE INDEX slot_claims_appointment ON slot_claims (appointment_id);

-- iCalendar feeds behind unguessable, revocable tokens (stored hashed).
CREATE TABLE calendar_feeds (
    id TEXT PRIMARY KEY NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    subject_kind TEXT NOT NULL CHECK (subject_kind IN ('staff', 'resource')),
    subject_id TEXT NOT NULL,
    label TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT,
    revoked_at BIGINT
);
