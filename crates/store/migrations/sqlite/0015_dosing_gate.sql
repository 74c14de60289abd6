-- The dosing gate on every path (the safety review of 2026-12-07):
-- * a dose order is bound to the weight it was computed from; a later weight
--   voids it and a new order is written, so a visit may hold voided orders
--   beside the one that stands (one standing order per visit);
-- * the order keeps the pre-dose state as it was when ordered, and the
--   volume worked out from the lot actually drawn;
-- * a visit records when its check-in was entered, may end without a dose
--   (with the reason), may carry a second person's attestation of a paper
--   record of earlier times, and marks visits imported as history;
-- * protocol versions belong to an organisation and are drafts until a
--   medical director approves them;
-- * an INSERT OR REPLACE can no longer rewrite a signed note, an addendum,
--   the Schedule III ledger or billing entries (SQLite's REPLACE deletes
--   without firing delete triggers; these refuse the insert instead).
-- SQLite cannot drop a UNIQUE constraint, so dose_orders is rebuilt. Other
-- tables refer to it, so its foreign keys are checked at commit (when every
-- order is back under its own id), not when the old table is dropped.
PRAGMA defer_foreign_keys = ON;
CREATE TEMP TABLE dose_orders_before AS SELECT * FROM dose_orders;
DROP TABLE dose_orders;

CREATE TABLE dose_orders (
    id TEXT PRIMARY KEY NOT NULL,
    encounter_id TEXT NOT NULL REFERENCES encounters(id),
    maths TEXT NOT NULL,
    mg DOUBLE PRECISION NOT NULL,
    ordered_by TEXT NOT NULL REFERENCES users(id),
    ordered_at BIGINT NOT NULL,
    second_check BOOLEAN NOT NULL,
    checked_by TEXT REFERENCES users(id),
    checked_at BIGINT,
    vial_lot TEXT,
    vial_expires TEXT,
    prepared TEXT,
    prepared_at BIGINT,
    pre_dose TEXT,
    voided_at BIGINT,
    voided_by TEXT REFERENCES users(id),
    void_reason TEXT,
    CHECK (checked_by IS NULL OR checked_by <> ordered_by),
    CHECK (voided_at IS NULL OR (voided_by IS NOT NULL AND void_reason IS NOT NULL))
);
INSERT INTO dose_orders (id, encounter_id, maths, mg, ordered_by, ordered_at, second_check,
    checked_by, checked_at, vial_lot, vial_expires)
SELECT id, encounter_id, maths, mg, ordered_by, ordered_at, second_check,
    checked_by, checked_at, vial_lot, vial_expires FROM dose_orders_before;
DROP TABLE dose_orders_before;
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
-- Versions added before versions had an organisation: their author's.
UPDATE protocol_versions SET org_id = (SELECT u.org_id FROM users u WHERE u.id = created_by);

ALTER TABLE users ADD COLUMN medical_director BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TRIGGER session_notes_no_replace BEFORE INSERT ON session_notes
WHEN EXISTS (SELECT 1 FROM session_notes WHERE id = NEW.id OR encounter_id = NEW.encounter_id)
BEGIN
    SELECT RAISE(ABORT, 'a signed note never changes: write an addendum');
END;
CREATE TRIGGER note_addenda_no_replace BEFORE INSERT ON note_addenda
WHEN EXISTS (SELECT 1 FROM note_addenda WHERE id = NEW.id)
BEGIN
    SELECT RAISE(ABORT, 'a signed addendum never changes');
END;
CREATE TRIGGER cs_ledger_no_replace BEFORE INSERT ON cs_ledger
WHEN EXISTS (SELECT 1 FROM cs_ledger WHERE seq = NEW.seq OR id = NEW.id)
BEGIN
    SELECT RAISE(ABORT, 'the Schedule III ledger is append-only');
END;
CREATE TRIGGER invoice_lines_no_replace BEFORE INSERT ON invoice_lines
WHEN EXISTS (SELECT 1 FROM invoice_lines WHERE invoice_id = NEW.invoice_id AND seq = NEW.seq)
BEGIN
    SELECT RAISE(ABORT, 'an invoice line never changes');
END;
CREATE TRIGGER billing_entries_no_replace BEFORE INSERT ON billing_entries
WHEN EXISTS (SELECT 1 FROM billing_entries WHERE id = NEW.id OR seq = NEW.seq)
BEGIN
    SELECT RAISE(ABORT, 'billing entries are append-only');
END;

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
