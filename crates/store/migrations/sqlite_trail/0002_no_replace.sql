-- An INSERT OR REPLACE would delete a chained row without firing the
-- delete trigger (SQLite's REPLACE does not, unless recursive triggers are
-- on); refuse the insert instead.
CREATE TRIGGER audit_events_no_replace BEFORE INSERT ON audit_events
WHEN EXISTS (SELECT 1 FROM audit_events WHERE seq = NEW.seq OR id = NEW.id)
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;
