-- How each audit record was chained: 'sha256' (plain, before the console held an audit key) or
-- 'hmac-sha256' (under the audit key sealed in vault_records). Records written before this
-- migration are plain; verification checks each by its own kind and refuses a plain record
-- after a keyed one.
ALTER TABLE audit_log ADD COLUMN chain TEXT NOT NULL DEFAULT 'sha256';
