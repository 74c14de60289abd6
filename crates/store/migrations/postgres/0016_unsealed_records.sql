-- Records made before seals existed: `stillwater verify` counts them apart.
-- Any other signed note, addendum, billing entry or invoice whose seal is
-- not in the audit chain is a fault (its audit event never reached it).
CREATE TABLE unsealed_records (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (kind, id)
);
INSERT INTO unsealed_records (kind, id) SELECT 'entry', id FROM billing_entries;
INSERT INTO unsealed_records (kind, id) SELECT 'invoice', id FROM invoices;
INSERT INTO unsealed_records (kind, id) SELECT 'note', encounter_id FROM session_notes;
INSERT INTO unsealed_records (kind, id) SELECT 'addendum', id FROM note_addenda;
CREATE FUNCTION unsealed_records_closed() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the list of records from before seals is closed';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER unsealed_records_closed BEFORE INSERT OR UPDATE ON unsealed_records
    FOR EACH ROW EXECUTE FUNCTION unsealed_records_closed();
