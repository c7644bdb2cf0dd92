-- Authorization: named IAM-style policies attached to users, an optional TOTP second factor
-- (its secret sealed in vault_records), and the hash-chained audit log.

CREATE TABLE policies (
    name TEXT PRIMARY KEY,
    document TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE user_policies (
    user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    policy_name TEXT NOT NULL REFERENCES policies(name),
    PRIMARY KEY (user_name, policy_name)
);

ALTER TABLE users ADD COLUMN totp_record TEXT;

-- Append-only: each record carries the hash of the one before it, so an edit or a deletion
-- anywhere breaks the chain from that point on.
CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    at TEXT NOT NULL,
    user_name TEXT NOT NULL,
    source_ip TEXT,
    action TEXT NOT NULL,
    resources TEXT NOT NULL,
    decision TEXT NOT NULL,
    aws_request_id TEXT,
    outcome TEXT NOT NULL,
    detail TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_log_user ON audit_log (user_name, seq);

-- Whether the login that made a token passed a second factor (aws:MultiFactorAuthPresent).
ALTER TABLE api_tokens ADD COLUMN mfa BIGINT NOT NULL DEFAULT 0;
