-- Rolling replacements of deployments: a persisted state machine per node (nodes is the JSON
-- list of each node's step and identity), claimed by one console node at a time; a claim not
-- refreshed for a while is taken over by another (or the same, restarted) console.
CREATE TABLE rolls (
    id TEXT PRIMARY KEY,
    deployment_id TEXT NOT NULL,
    image_id TEXT NOT NULL,
    instance_type TEXT NOT NULL,
    batch BIGINT NOT NULL,
    health TEXT NOT NULL,
    health_timeout_seconds BIGINT NOT NULL,
    state TEXT NOT NULL,
    error TEXT,
    nodes TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    claimed_by TEXT,
    claimed_at_ms BIGINT
);
CREATE INDEX rolls_by_deployment ON rolls (deployment_id, created_at);
