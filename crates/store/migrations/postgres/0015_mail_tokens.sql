-- A link's e-mailed secret is made when its e-mail is sent, not when the
-- link is created: the outbox job names the link, never its token, so a
-- copy of the database (a backup, a dump) holds no way to sign in as a
-- patient. The token handed to staff at creation keeps working beside it;
-- both are stored only as hashes.
ALTER TABLE questionnaire_links ADD COLUMN mail_token_hash TEXT;
CREATE UNIQUE INDEX questionnaire_links_mail_token ON questionnaire_links (mail_token_hash);
ALTER TABLE patient_links ADD COLUMN mail_token_hash TEXT;
CREATE UNIQUE INDEX patient_links_mail_token ON patient_links (mail_token_hash);
ALTER TABLE portal_links ADD COLUMN mail_token_hash TEXT;
CREATE UNIQUE INDEX portal_links_mail_token ON portal_links (mail_token_hash);

-- Jobs queued before: their tokens go; the worker makes new ones at sending.
UPDATE outbox SET payload = (payload::jsonb - 'token')::text
WHERE kind IN ('questionnaire_link', 'patient_link') AND payload LIKE '{%';
