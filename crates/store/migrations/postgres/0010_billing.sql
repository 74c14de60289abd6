-- Cash-pay billing: each clinic's billing identity, price lists by
-- effective date (a new list replaces the old from its date, the old stays),
-- offers as rules, package products and the packages patients hold, invoices
-- with their lines (never changed), and the append-only entries that move an
-- invoice's balance: payments, refunds and credit notes. Balances are
-- derived from lines and entries, never stored.

CREATE TABLE billing_settings (
    clinic_id TEXT PRIMARY KEY NOT NULL REFERENCES clinics(id),
    legal_name TEXT NOT NULL,
    npi TEXT NOT NULL,
    tax_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    refund_fee_minor BIGINT NOT NULL CHECK (refund_fee_minor >= 0),
    updated_by TEXT NOT NULL REFERENCES users(id),
    updated_at BIGINT NOT NULL
);

CREATE TABLE price_lists (
    id TEXT PRIMARY KEY NOT NULL,
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    effective_from TEXT NOT NULL,
    currency TEXT NOT NULL,
    prices TEXT NOT NULL,
    created_by TEXT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL,
    UNIQUE (clinic_id, effective_from)
);

CREATE TABLE offers (
    id TEXT PRIMARY KEY NOT NULL,
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    name TEXT NOT NULL,
    rules TEXT NOT NULL,
    valid_from TEXT NOT NULL,
    valid_to TEXT,
    new_patients_only BOOLEAN NOT NULL,
    first_n BIGINT,
    stackable BOOLEAN NOT NULL,
    active BOOLEAN NOT NULL,
    created_by TEXT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL
);
CREATE INDEX offers_clinic ON offers (clinic_id, active);

CREATE TABLE package_products (
    id TEXT PRIMARY KEY NOT NULL,
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    name TEXT NOT NULL,
    service TEXT NOT NULL,
    sessions BIGINT NOT NULL CHECK (sessions > 0),
    price_minor BIGINT NOT NULL CHECK (price_minor >= 0),
    currency TEXT NOT NULL,
    valid_days BIGINT,
    active BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (clinic_id, name)
);

-- The last invoice number of each clinic (numbers have no gaps).
CREATE TABLE invoice_counters (
    clinic_id TEXT PRIMARY KEY NOT NULL REFERENCES clinics(id),
    last BIGINT NOT NULL
);

CREATE TABLE invoices (
    id TEXT PRIMARY KEY NOT NULL,
    number TEXT NOT NULL,
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    patient_id TEXT NOT NULL REFERENCES patients(id),
    appointment_id TEXT UNIQUE REFERENCES appointments(id),
    kind TEXT NOT NULL CHECK (kind IN ('visit', 'package', 'fee')),
    currency TEXT NOT NULL,
    service_date TEXT NOT NULL,
    issued_by TEXT NOT NULL REFERENCES users(id),
    issued_at BIGINT NOT NULL,
    UNIQUE (clinic_id, number)
);
CREATE INDEX invoices_patient ON invoices (patient_id, issued_at);
CREATE INDEX invoices_clinic ON invoices (clinic_id, issued_at);

CREATE TABLE invoice_lines (
    invoice_id TEXT NOT NULL REFERENCES invoices(id),
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('charge', 'discount')),
    service TEXT NOT NULL,
    description TEXT NOT NULL,
    codes TEXT NOT NULL,
    amount_minor BIGINT NOT NULL CHECK (amount_minor >= 0),
    offer_id TEXT REFERENCES offers(id),
    PRIMARY KEY (invoice_id, seq)
);

CREATE TABLE packages (
    id TEXT PRIMARY KEY NOT NULL,
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    patient_id TEXT NOT NULL REFERENCES patients(id),
    product_id TEXT NOT NULL REFERENCES package_products(id),
    name TEXT NOT NULL,
    service TEXT NOT NULL,
    sessions BIGINT NOT NULL CHECK (sessions > 0),
    price_minor BIGINT NOT NULL,
    currency TEXT NOT NULL,
    invoice_id TEXT NOT NULL UNIQUE REFERENCES invoices(id),
    purchased_at BIGINT NOT NULL,
    expires_on TEXT,
    refunded_at BIGINT
);
CREATE INDEX packages_patient ON packages (patient_id, purchased_at);

CREATE TABLE billing_entries (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    patient_id TEXT NOT NULL REFERENCES patients(id),
    invoice_id TEXT NOT NULL REFERENCES invoices(id),
    kind TEXT NOT NULL CHECK (kind IN ('payment', 'refund', 'credit')),
    method TEXT CHECK (method IN ('cash', 'card', 'package_credit', 'transfer')),
    reference TEXT,
    amount_minor BIGINT NOT NULL CHECK (amount_minor > 0),
    currency TEXT NOT NULL,
    refund_of TEXT REFERENCES billing_entries(id),
    package_id TEXT REFERENCES packages(id),
    reason TEXT,
    at BIGINT NOT NULL,
    recorded_by TEXT NOT NULL REFERENCES users(id),
    CHECK (kind <> 'payment' OR method IS NOT NULL),
    CHECK (kind <> 'refund' OR refund_of IS NOT NULL),
    CHECK (method <> 'package_credit' OR package_id IS NOT NULL)
);
CREATE INDEX billing_entries_invoice ON billing_entries (invoice_id, seq);
CREATE INDEX billing_entries_clinic_time ON billing_entries (clinic_id, at);
CREATE INDEX billing_entries_package ON billing_entries (package_id);

CREATE TABLE estimates (
    id TEXT PRIMARY KEY NOT NULL,
    clinic_id TEXT NOT NULL REFERENCES clinics(id),
    patient_id TEXT NOT NULL REFERENCES patients(id),
    input TEXT NOT NULL,
    estimate TEXT NOT NULL,
    total_minor BIGINT NOT NULL,
    currency TEXT NOT NULL,
    created_by TEXT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL
);
CREATE INDEX estimates_patient ON estimates (patient_id, created_at);

CREATE FUNCTION invoice_lines_never_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'invoice lines never change: issue a credit note';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER invoice_lines_no_update BEFORE UPDATE OR DELETE ON invoice_lines
    FOR EACH ROW EXECUTE FUNCTION invoice_lines_never_change();
CREATE TRIGGER invoice_lines_no_truncate BEFORE TRUNCATE ON invoice_lines
    FOR EACH STATEMENT EXECUTE FUNCTION invoice_lines_never_change();

CREATE FUNCTION billing_entries_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'billing entries are append-only: record a refund or a credit note';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER billing_entries_no_update BEFORE UPDATE OR DELETE ON billing_entries
    FOR EACH ROW EXECUTE FUNCTION billing_entries_append_only();
CREATE TRIGGER billing_entries_no_truncate BEFORE TRUNCATE ON billing_entries
    FOR EACH STATEMENT EXECUTE FUNCTION billing_entries_append_only();
