-- The audit outbox is guarded like the chain it feeds. Its rows never
-- change, and leave only once the writer has chained them: the writer moves
-- `audit_outbox_cleared` up to the last chained row (it only moves forward)
-- before deleting, and a row above the mark refuses to go.
CREATE TABLE audit_outbox_cleared (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    upto INTEGER NOT NULL
);
INSERT INTO audit_outbox_cleared (id, upto)
VALUES (1, COALESCE((SELECT MIN(oid) - 1 FROM audit_outbox),
                    (SELECT seq FROM sqlite_sequence WHERE name = 'audit_outbox'), 0));
CREATE TRIGGER audit_outbox_cleared_forward BEFORE UPDATE ON audit_outbox_cleared
WHEN NEW.upto < OLD.upto OR NEW.id <> OLD.id
BEGIN
    SELECT RAISE(ABORT, 'the audit outbox mark only moves forward');
END;
CREATE TRIGGER audit_outbox_cleared_no_delete BEFORE DELETE ON audit_outbox_cleared
BEGIN
    SELECT RAISE(ABORT, 'the audit outbox mark only moves forward');
END;
CREATE TRIGGER audit_outbox_cleared_no_insert BEFORE INSERT ON audit_outbox_cleared
BEGIN
    SELECT RAISE(ABORT, 'the audit outbox mark only moves forward');
END;
CREATE TRIGGER audit_outbox_no_update BEFORE UPDATE ON audit_outbox
BEGIN
    SELECT RAISE(ABORT, 'audit_outbox is append-only');
END;
CREATE TRIGGER audit_outbox_no_delete BEFORE DELETE ON audit_outbox
WHEN OLD.oid > (SELECT upto FROM audit_outbox_cleared WHERE id = 1)
BEGIN
    SELECT RAISE(ABORT, 'audit_outbox rows leave only once chained');
END;
CREATE TRIGGER audit_outbox_no_replace BEFORE INSERT ON audit_outbox
WHEN EXISTS (SELECT 1 FROM audit_outbox WHERE oid = NEW.oid)
BEGIN
    SELECT RAISE(ABORT, 'audit_outbox is append-only');
END;

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
CREATE TRIGGER unsealed_records_closed BEFORE INSERT ON unsealed_records
BEGIN
    SELECT RAISE(ABORT, 'the list of records from before seals is closed');
END;
CREATE TRIGGER unsealed_records_no_update BEFORE UPDATE ON unsealed_records
BEGIN
    SELECT RAISE(ABORT, 'the list of records from before seals is closed');
END;
