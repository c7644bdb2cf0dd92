-- Limits every console node sharing this database must enforce together, so that N consoles
-- behind a load balancer are as strict as one. Times here are epoch milliseconds (BIGINT): the
-- same integer comparisons on SQLite and PostgreSQL, and waits of a second need sub-second
-- precision that RFC 3339 text would have to be parsed for.

-- A one-time code works once: the last TOTP step the user logged in with, raised only by an
-- atomic conditional update, so a code used at one node is refused at every other.
ALTER TABLE users ADD COLUMN totp_last_step BIGINT;

-- Failed logins and refused signatures per throttle key ('user:NAME', 'source:ADDRESS'):
-- how many, the last one, and until when attempts wait. Rows unused for 15 minutes are
-- forgotten; the consoles delete them as they go.
CREATE TABLE login_failures (
    throttle_key TEXT PRIMARY KEY,
    failures BIGINT NOT NULL,
    last_ms BIGINT NOT NULL,
    wait_until_ms BIGINT NOT NULL
);
CREATE INDEX login_failures_by_age ON login_failures (last_ms);

-- The answer of a recent refresh exchange, for a retry whose answer was lost (possibly sent to
-- another node). It holds a refresh secret and AWS credentials, so it is sealed by the vault
-- under the record id 'refresh-answer/' || presented_hash || '/' || instance_id. Kept 120 s.
CREATE TABLE refresh_answers (
    presented_hash TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    source_ip TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    key_id TEXT NOT NULL,
    sealed TEXT NOT NULL,
    PRIMARY KEY (presented_hash, instance_id)
);
CREATE INDEX refresh_answers_by_age ON refresh_answers (at_ms);
