-- Gateway configurations: Gloo YAML documents (Upstream, VirtualService) that gateways started
-- with `airlock gateway --console URL` load and follow. Validated by the console before they
-- are stored; they hold no keys (Secret documents are refused).

CREATE TABLE gateway_configs (
    name TEXT PRIMARY KEY,
    yaml TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
