-- Airlock access keys: what AWS tools sign requests to the console's EC2 endpoint with. The
-- secret is sealed in vault_records as 'access-key/' || access_key_id (SigV4 needs the secret
-- itself, so a hash would not do).

CREATE TABLE access_keys (
    access_key_id TEXT PRIMARY KEY,
    user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    -- 'Active' or 'Inactive'.
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    last_used_at TEXT
);
CREATE INDEX access_keys_by_user ON access_keys (user_name);
