-- The Schedule III record: each clinic is a registered location with its DEA
-- registration and storage places; products and their lots; the perpetual
-- ledger (append-only and hash-chained: the triggers refuse UPDATE and
-- DELETE); balances and open draws kept with every entry in the same
-- transaction (derivable from the ledger, never negative); blind counts,
-- inventories, and loss or theft cases.

CREATE TABLE cs_registrations (
    clinic_id TEXT PRIMARY KEY NOT NULL REFERENCES clinics(id),
    dea_number TEXT NOT NULL,
    expires_on TEXT NOT NULL,
    updated_by TEXT NOT NULL REFERENCES users(id),
    updated_at BIGINT NOT NULL
);

CREATE TABLE cs_storage (
    id TEXT PRIMARY KEY NOT NULL,
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    name TEXT NOT NULL,
    UNIQUE (clinic_id, name)
);

CREATE TABLE cs_products (
    id TEXT PRIMARY KEY NOT NULL,
    org_id TEXT NOT NULL REFERENCES organisations(id),
    name TEXT NOT NULL,
    ndc TEXT NOT NULL,
    form TEXT NOT NULL,
    strength_mg_per_ml BIGINT NOT NULL CHECK (strength_mg_per_ml > 0),
    container_ul BIGINT NOT NULL CHECK (container_ul > 0),
    created_at BIGINT NOT NULL,
    UNIQUE (org_id, ndc)
);

CREATE TABLE cs_lots (
    id TEXT PRIMARY KEY NOT NULL,
    product_id TEXT NOT NULL REFERENCES cs_products(id),
    lot_number TEXT NOT NULL,
    expires_on TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (product_id, lot_number)
);

CREATE TABLE cs_ledger (
    seq BIGINT PRIMARY KEY NOT NULL,
    id TEXT NOT NULL UNIQUE,
    at BIGINT NOT NULL,
    recorded_at BIGINT NOT NULL,
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    lot_id TEXT NOT NULL REFERENCES cs_lots(id),
    kind TEXT NOT NULL CHECK (kind IN ('receipt', 'draw', 'administered', 'waste', 'transfer_out',
        'transfer_in', 'breakage', 'return', 'destruction', 'adjustment')),
    change_ul BIGINT NOT NULL,
    quantity_ul BIGINT NOT NULL CHECK (quantity_ul > 0),
    balance_after_ul BIGINT NOT NULL CHECK (balance_after_ul >= 0),
    draw_id TEXT,
    dose_order_id TEXT REFERENCES dose_orders(id),
    patient_id TEXT REFERENCES patients(id),
    actor_user_id TEXT NOT NULL REFERENCES users(id),
    witness_user_id TEXT REFERENCES users(id),
    witness2_user_id TEXT REFERENCES users(id),
    counterparty TEXT,
    reason TEXT,
    reference_id TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    CHECK (witness_user_id IS NULL OR witness_user_id <> actor_user_id)
);
-- (at, seq) is the order every report reads in: no sort of wide rows.
CREATE INDEX cs_ledger_clinic_time ON cs_ledger (clinic_id, at, seq);
CREATE INDEX cs_ledger_lot ON cs_ledger (lot_id, seq);
CREATE INDEX cs_ledger_patient ON cs_ledger (patient_id, at, seq);
CREATE INDEX cs_ledger_draw ON cs_ledger (draw_id);

CREATE TABLE cs_head (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO cs_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE cs_balances (
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    lot_id TEXT NOT NULL REFERENCES cs_lots(id),
    balance_ul BIGINT NOT NULL CHECK (balance_ul >= 0),
    storage_id TEXT REFERENCES cs_storage(id),
    last_seq BIGINT NOT NULL,
    PRIMARY KEY (clinic_id, lot_id)
);

CREATE TABLE cs_draws (
    id TEXT PRIMARY KEY NOT NULL,
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    lot_id TEXT NOT NULL REFERENCES cs_lots(id),
    dose_order_id TEXT NOT NULL REFERENCES dose_orders(id),
    patient_id TEXT NOT NULL REFERENCES patients(id),
    drawn_ul BIGINT NOT NULL CHECK (drawn_ul > 0),
    administered_ul BIGINT NOT NULL,
    wasted_ul BIGINT NOT NULL,
    drawn_by TEXT NOT NULL REFERENCES users(id),
    drawn_at BIGINT NOT NULL,
    closed_at BIGINT,
    CHECK (administered_ul >= 0 AND wasted_ul >= 0 AND administered_ul + wasted_ul <= drawn_ul)
);
CREATE INDEX cs_draws_open ON cs_draws (clinic_id, closed_at, drawn_at);
CREATE INDEX cs_draws_order ON cs_draws (dose_order_id);

CREATE TABLE cs_counts (
    id TEXT PRIMARY KEY NOT NULL,
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    counted_at BIGINT NOT NULL,
    counted_by TEXT NOT NULL REFERENCES users(id),
    ledger_seq BIGINT NOT NULL,
    note TEXT
);
CREATE INDEX cs_counts_clinic ON cs_counts (clinic_id, counted_at);

CREATE TABLE cs_count_lines (
    count_id TEXT NOT NULL REFERENCES cs_counts(id),
    lot_id TEXT NOT NULL REFERENCES cs_lots(id),
    expected_ul BIGINT NOT NULL,
    counted_ul BIGINT NOT NULL CHECK (counted_ul >= 0),
    PRIMARY KEY (count_id, lot_id)
);

CREATE TABLE cs_inventories (
    id TEXT PRIMARY KEY NOT NULL,
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    kind TEXT NOT NULL CHECK (kind IN ('initial', 'biennial')),
    taken_on TEXT NOT NULL,
    business TEXT NOT NULL CHECK (business IN ('opening', 'close')),
    taken_by TEXT NOT NULL REFERENCES users(id),
    taken_at BIGINT NOT NULL,
    ledger_seq BIGINT NOT NULL,
    lines TEXT NOT NULL,
    sha256 TEXT NOT NULL
);
CREATE INDEX cs_inventories_clinic ON cs_inventories (clinic_id, taken_on);

CREATE TABLE cs_cases (
    id TEXT PRIMARY KEY NOT NULL,
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    kind TEXT NOT NULL CHECK (kind IN ('discrepancy', 'loss', 'theft')),
    status TEXT NOT NULL CHECK (status IN ('open', 'resolved')),
    opened_by TEXT NOT NULL REFERENCES users(id),
    opened_at BIGINT NOT NULL,
    discovered_on TEXT NOT NULL,
    count_id TEXT REFERENCES cs_counts(id),
    lot_id TEXT REFERENCES cs_lots(id),
    difference_ul BIGINT NOT NULL,
    description TEXT NOT NULL,
    resolution TEXT CHECK (resolution IS NULL OR resolution IN ('found', 'documented_loss', 'theft')),
    resolution_note TEXT,
    resolved_by TEXT REFERENCES users(id),
    resolved_at BIGINT,
    dea_notified_on TEXT,
    form106_filed_on TEXT,
    form106 TEXT,
    CHECK (status = 'open' OR (resolution IS NOT NULL AND resolved_by IS NOT NULL))
);
CREATE INDEX cs_cases_clinic ON cs_cases (clinic_id, status, opened_at);

CREATE FUNCTION cs_ledger_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'cs_ledger is append-only: record a correction as a new entry';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER cs_ledger_no_update BEFORE UPDATE OR DELETE ON cs_ledger
    FOR EACH ROW EXECUTE FUNCTION cs_ledger_append_only();
CREATE TRIGGER cs_ledger_no_truncate BEFORE TRUNCATE ON cs_ledger
    FOR EACH STATEMENT EXECUTE FUNCTION cs_ledger_append_only();
