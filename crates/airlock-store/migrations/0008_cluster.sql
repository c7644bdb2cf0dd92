-- Several consoles on one database: each node says it is alive (heartbeat), and work that must
-- run on one node at a time (deployment watching, the key-rotation schedule) is held by a lease
-- that expires unless its holder renews it. Times are milliseconds since the Unix epoch by the
-- database's own clock, so nodes with skewed clocks still agree on who holds what.

CREATE TABLE cluster_nodes (
    id TEXT PRIMARY KEY,
    hostname TEXT NOT NULL,
    pid BIGINT NOT NULL,
    url TEXT NOT NULL,
    version TEXT NOT NULL,
    started_at_ms BIGINT NOT NULL,
    heartbeat_at_ms BIGINT NOT NULL,
    state TEXT NOT NULL
);

CREATE TABLE cluster_leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    term BIGINT NOT NULL,
    acquired_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
