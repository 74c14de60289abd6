-- Maintenance memberships: a package product that renews monthly, and the
-- patients enrolled in one. Each month's renewal is an invoice selling that
-- month's sessions as a package that ends with the month; `periods` counts
-- the months billed, so a renewal is applied once however many workers run.

ALTER TABLE package_products ADD COLUMN monthly BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE memberships (
    id TEXT PRIMARY KEY NOT NULL,
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    patient_id TEXT NOT NULL REFERENCES patients(id),
    product_id TEXT NOT NULL REFERENCES package_products(id),
    started_on TEXT NOT NULL,
    periods BIGINT NOT NULL CHECK (periods >= 1),
    status TEXT NOT NULL CHECK (status IN ('active', 'cancelled')),
    cancelled_on TEXT,
    cancel_reason TEXT,
    created_by TEXT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL
);
CREATE INDEX memberships_patient ON memberships (patient_id);
CREATE INDEX memberships_status ON memberships (status, clinic_id);
-- One running membership of a kind per patient.
CREATE UNIQUE INDEX memberships_one_active ON memberships (patient_id, product_id) WHERE status = 'active';

ALTER TABLE packages ADD COLUMN membership_id TEXT REFERENCES memberships(id);
