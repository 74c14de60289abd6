-- A session handed to a patient on a clinic tablet: the one page it may
-- show (`kiosk_path`) and where staff return once they take it back
-- (`kiosk_return`). Anything else the session asks for meets a locked
-- screen until a staff member unlocks it with their password.
ALTER TABLE sessions ADD COLUMN kiosk_path TEXT;
ALTER TABLE sessions ADD COLUMN kiosk_return TEXT;
