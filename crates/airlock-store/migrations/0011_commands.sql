-- Run command. An agent token lets one instance's agent fetch its commands from the address it
-- refreshed from, until the credentials issued with it expire (only its hash is kept).
CREATE TABLE agent_tokens (
    token_hash TEXT PRIMARY KEY,
    deployment_id TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    source_ip TEXT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX agent_tokens_by_instance ON agent_tokens (instance_id);

-- A command sent to instances; command, targets and instance_ids are JSON arrays of strings.
CREATE TABLE commands (
    id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    command TEXT NOT NULL,
    targets TEXT NOT NULL,
    instance_ids TEXT NOT NULL,
    max_concurrency TEXT NOT NULL,
    max_errors TEXT NOT NULL,
    timeout_seconds BIGINT NOT NULL,
    -- Set once no instance is pending or running.
    finished_at TEXT
);
CREATE INDEX commands_by_time ON commands (created_at);

-- Each instance's part. Times are epoch milliseconds of the database's clock; tags (a JSON
-- object) are the instance's when the command was sent, which decide who may read the output.
CREATE TABLE command_results (
    command_id TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    tags TEXT NOT NULL,
    status TEXT NOT NULL,
    released_at_ms BIGINT,
    started_at_ms BIGINT,
    ended_at_ms BIGINT,
    exit_code BIGINT,
    output TEXT,
    error_output TEXT,
    truncated BIGINT NOT NULL,
    PRIMARY KEY (command_id, instance_id)
);
CREATE INDEX command_results_by_instance ON command_results (instance_id, status);
