-- The dosing gate on every path (see the SQLite migration of the same name):
-- voided dose orders beside the standing one, the pre-dose state and the
-- drawn volume kept with the order, check-in entry times, visits ended
-- without a dose, attested paper records, imported history, protocol
-- versions per organisation approved by a medical director. On PostgreSQL
-- an upsert fires the UPDATE triggers that already refuse rewrites.
ALTER TABLE dose_orders DROP CONSTRAINT dose_orders_encounter_id_key;
ALTER TABLE dose_orders ADD COLUMN prepared TEXT;
ALTER TABLE dose_orders ADD COLUMN prepared_at BIGINT;
ALTER TABLE dose_orders ADD COLUMN pre_dose TEXT;
ALTER TABLE dose_orders ADD COLUMN voided_at BIGINT;
ALTER TABLE dose_orders ADD COLUMN voided_by TEXT REFERENCES users(id);
ALTER TABLE dose_orders ADD COLUMN void_reason TEXT;
ALTER TABLE dose_orders ADD CONSTRAINT dose_orders_void_check
    CHECK (voided_at IS NULL OR (voided_by IS NOT NULL AND void_reason IS NOT NULL));
CREATE UNIQUE INDEX dose_orders_standing ON dose_orders (encounter_id) WHERE voided_at IS NULL;
CREATE INDEX dose_orders_encounter ON dose_orders (encounter_id, ordered_at);

ALTER TABLE encounters ADD COLUMN recorded_at BIGINT;
ALTER TABLE encounters ADD COLUMN no_dose_reason TEXT;
ALTER TABLE encounters ADD COLUMN historical BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE encounters ADD COLUMN attested_by TEXT REFERENCES users(id);
ALTER TABLE encounters ADD COLUMN attested_at BIGINT;
ALTER TABLE encounters ADD COLUMN attestation TEXT;

ALTER TABLE protocol_versions ADD COLUMN org_id TEXT REFERENCES organisations(id);
ALTER TABLE protocol_versions ADD COLUMN status TEXT NOT NULL DEFAULT 'approved'
    CHECK (status IN ('draft', 'approved'));
ALTER TABLE protocol_versions ADD COLUMN approved_by TEXT REFERENCES users(id);
ALTER TABLE protocol_versions ADD COLUMN approved_at BIGINT;
UPDATE protocol_versions v SET org_id = u.org_id FROM users u WHERE u.id = v.created_by;

ALTER TABLE users ADD COLUMN medical_director BOOLEAN NOT NULL DEFAULT FALSE;

-- A blind count in progress: until the counter records it, the expected
-- figures (balances, the ledger, the reconciliation) are hidden from them.
CREATE TABLE cs_blind_counts (
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    user_id TEXT NOT NULL REFERENCES users(id),
    started_at BIGINT NOT NULL,
    PRIMARY KEY (clinic_id, user_id)
);

-- The last two-step code's time step a user signed in with: a code is
-- accepted once (RFC 6238 section 5.2).
ALTER TABLE users ADD COLUMN totp_last_step BIGINT;
