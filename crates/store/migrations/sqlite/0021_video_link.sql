-- Where a clinic's patients join a video visit: an https link, in which
-- "{visit}" becomes each visit's own code. NULL: no video room set up.
ALTER TABLE clinics ADD COLUMN video_link TEXT;
