-- Maintenance windows: tasks run on the instances a tag selects when the schedule opens the
-- window, with the creator's permissions. tasks is the window's JSON array of tasks.
CREATE TABLE maintenance_windows (
    name TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    target TEXT NOT NULL,
    schedule TEXT NOT NULL,
    duration_seconds BIGINT NOT NULL,
    cutoff_seconds BIGINT NOT NULL,
    max_concurrency TEXT NOT NULL,
    max_errors TEXT NOT NULL,
    tasks TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_scheduled_at TEXT,
    -- The execution under way, claimed by one node at a time; a claim older than the window's
    -- duration plus an hour is taken for a node that died (epoch milliseconds, database clock).
    running_execution TEXT,
    running_since_ms BIGINT
);

-- Each opening; instance_ids and tasks (per-task, per-instance results) are JSON.
CREATE TABLE maintenance_executions (
    id TEXT PRIMARY KEY,
    window_name TEXT NOT NULL,
    run_trigger TEXT NOT NULL,
    state TEXT NOT NULL,
    started_at TEXT NOT NULL,
    cutoff_at TEXT NOT NULL,
    ends_at TEXT NOT NULL,
    finished_at TEXT,
    instance_ids TEXT NOT NULL,
    tasks TEXT NOT NULL
);
CREATE INDEX maintenance_executions_by_window ON maintenance_executions (window_name, started_at);
