-- Scoped instance credentials: the secrets instances present to refresh them, and which
-- instances have already exchanged an enrolment (or bootstrap) secret. Only SHA-256 hashes
-- are stored, so a copy of the database cannot be replayed.

CREATE TABLE refresh_secrets (
    secret_hash TEXT PRIMARY KEY,
    deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
    -- NULL for an enrolment secret (shared by one launch); the instance for a per-instance one.
    instance_id TEXT,
    -- 'enrolment' or 'instance'.
    kind TEXT NOT NULL,
    -- 'active', 'used' (rotated away: presenting it again is a replay) or 'revoked'.
    state TEXT NOT NULL,
    expires_at TEXT,
    created_at TEXT NOT NULL,
    used_at TEXT
);
CREATE INDEX refresh_secrets_by_instance ON refresh_secrets (instance_id);
CREATE INDEX refresh_secrets_by_deployment ON refresh_secrets (deployment_id);

-- An instance enrols once: the primary key makes a second exchange fail even when two race.
CREATE TABLE enrolled_instances (
    instance_id TEXT PRIMARY KEY,
    deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
    enrolled_at TEXT NOT NULL
);

-- When IAM created the account's current key (rotation shows its age).
ALTER TABLE accounts ADD COLUMN key_created_at TEXT;

-- The session policy a scoped deployment's credentials are issued with (no secrets).
ALTER TABLE deployments ADD COLUMN session_policy TEXT;
