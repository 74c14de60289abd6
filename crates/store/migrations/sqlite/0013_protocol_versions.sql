-- Protocol versions added by a clinic admin (in the admin pages or through
-- the API), beside the shipped ones and the files in the data folder. A
-- version is never changed or removed: records name the version they were
-- made under.

CREATE TABLE protocol_versions (
    id TEXT PRIMARY KEY NOT NULL,
    protocol_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    file_name TEXT NOT NULL,
    body TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    created_by TEXT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL,
    UNIQUE (protocol_id, version)
);
