-- Consistency guards on what the append-only tables hang from: the chains'
-- heads and the Schedule III balances only move forward and are never
-- deleted; an issued invoice never changes and never goes (it is corrected
-- by a credit, not rewritten).
CREATE FUNCTION head_moves_forward() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' OR NEW.seq < OLD.seq OR NEW.id <> OLD.id THEN
        RAISE EXCEPTION '% only moves forward', TG_TABLE_NAME;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_head_forward BEFORE UPDATE OR DELETE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION head_moves_forward();
CREATE TRIGGER cs_head_forward BEFORE UPDATE OR DELETE ON cs_head
    FOR EACH ROW EXECUTE FUNCTION head_moves_forward();

CREATE FUNCTION cs_balance_moves_with_ledger() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' OR NEW.last_seq < OLD.last_seq
       OR NEW.clinic_id <> OLD.clinic_id OR NEW.lot_id <> OLD.lot_id THEN
        RAISE EXCEPTION 'a Schedule III balance moves only with its ledger';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER cs_balances_forward BEFORE UPDATE OR DELETE ON cs_balances
    FOR EACH ROW EXECUTE FUNCTION cs_balance_moves_with_ledger();

CREATE FUNCTION invoice_never_changes() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' OR ROW(NEW.*) IS DISTINCT FROM ROW(OLD.*) THEN
        RAISE EXCEPTION 'an issued invoice never changes';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER invoices_no_update BEFORE UPDATE OR DELETE ON invoices
    FOR EACH ROW EXECUTE FUNCTION invoice_never_changes();
