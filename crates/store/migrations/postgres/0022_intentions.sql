-- What a patient means to hold in mind during a dosing session, written by
-- them before it: on the clinic's tablet at check-in (`encounter_id`) or in
-- the portal ahead of a booked visit (`appointment_id`). A later one for the
-- same visit supersedes the earlier; none is ever changed.
CREATE TABLE intentions (
    id TEXT PRIMARY KEY NOT NULL,
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    patient_id TEXT NOT NULL REFERENCES patients(id),
    appointment_id TEXT REFERENCES appointments(id),
    encounter_id TEXT REFERENCES encounters(id),
    body TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('tablet', 'portal')),
    written_at BIGINT NOT NULL,
    CHECK (appointment_id IS NOT NULL OR encounter_id IS NOT NULL)
);
CREATE INDEX intentions_patient ON intentions (patient_id, written_at);
CREATE INDEX intentions_encounter ON intentions (encounter_id);
CREATE INDEX intentions_appointment ON intentions (appointment_id);
