-- Consistency guards on what the append-only tables hang from: the
-- Schedule III ledger's head and the balances only move forward along the
-- ledger and are never deleted; an issued invoice never changes and never
-- goes (it is corrected by a credit, not rewritten).
CREATE TRIGGER cs_head_forward BEFORE UPDATE ON cs_head
WHEN NEW.seq < OLD.seq OR NEW.id <> OLD.id
BEGIN
    SELECT RAISE(ABORT, 'the Schedule III ledger head only moves forward');
END;
CREATE TRIGGER cs_head_no_delete BEFORE DELETE ON cs_head
BEGIN
    SELECT RAISE(ABORT, 'the Schedule III ledger head only moves forward');
END;
CREATE TRIGGER cs_balances_forward BEFORE UPDATE ON cs_balances
WHEN NEW.last_seq < OLD.last_seq OR NEW.clinic_id <> OLD.clinic_id OR NEW.lot_id <> OLD.lot_id
BEGIN
    SELECT RAISE(ABORT, 'a Schedule III balance moves only with its ledger');
END;
CREATE TRIGGER cs_balances_no_delete BEFORE DELETE ON cs_balances
BEGIN
    SELECT RAISE(ABORT, 'a Schedule III balance moves only with its ledger');
END;
CREATE TRIGGER invoices_no_update BEFORE UPDATE ON invoices
WHEN NEW.id IS NOT OLD.id OR NEW.number IS NOT OLD.number OR NEW.clinic_id IS NOT OLD.clinic_id
  OR NEW.patient_id IS NOT OLD.patient_id OR NEW.appointment_id IS NOT OLD.appointment_id
  OR NEW.kind IS NOT OLD.kind OR NEW.currency IS NOT OLD.currency
  OR NEW.service_date IS NOT OLD.service_date OR NEW.issued_by IS NOT OLD.issued_by
  OR NEW.issued_at IS NOT OLD.issued_at
BEGIN
    SELECT RAISE(ABORT, 'an issued invoice never changes');
END;
CREATE TRIGGER invoices_no_delete BEFORE DELETE ON invoices
BEGIN
    SELECT RAISE(ABORT, 'an issued invoice never changes');
END;
CREATE TRIGGER invoices_no_replace BEFORE INSERT ON invoices
WHEN EXISTS (SELECT 1 FROM invoices WHERE id = NEW.id)
BEGIN
    SELECT RAISE(ABORT, 'an issued invoice never changes');
END;
