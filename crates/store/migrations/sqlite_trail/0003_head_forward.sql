-- The chain's head only moves forward: moving it back (to hide removed
-- rows) is refused here, and found by the anchors where the guard is gone.
CREATE TRIGGER audit_head_forward BEFORE UPDATE ON audit_head
WHEN NEW.seq < OLD.seq OR NEW.id <> OLD.id
BEGIN
    SELECT RAISE(ABORT, 'the audit chain head only moves forward');
END;
CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
BEGIN
    SELECT RAISE(ABORT, 'the audit chain head only moves forward');
END;
