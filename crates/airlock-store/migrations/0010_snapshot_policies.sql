-- Snapshot policies: EBS snapshots of the volumes a tag selects, on a schedule, kept by count
-- and/or age. Every snapshot and deletion is decided with the permissions of created_by.
CREATE TABLE snapshot_policies (
    name TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    target TEXT NOT NULL,
    schedule TEXT NOT NULL,
    retain_count BIGINT,
    retain_days BIGINT,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    -- When the schedule last fired (RFC 3339); the next time is counted from it.
    last_scheduled_at TEXT,
    -- The run under way, claimed by one node at a time; a claim older than 15 minutes is
    -- taken for a node that died (epoch milliseconds, the database's clock).
    running_run TEXT,
    running_since_ms BIGINT
);

-- What each run did. created/deleted/errors are JSON arrays of strings.
CREATE TABLE snapshot_policy_runs (
    id TEXT PRIMARY KEY,
    policy TEXT NOT NULL,
    run_trigger TEXT NOT NULL,
    state TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    created TEXT NOT NULL,
    deleted TEXT NOT NULL,
    errors TEXT NOT NULL
);
CREATE INDEX snapshot_policy_runs_by_policy ON snapshot_policy_runs (policy, started_at);
