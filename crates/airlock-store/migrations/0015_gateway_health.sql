-- The endpoints each gateway following the console reported last, with their health: what the
-- Gateway page shows of each gateway. One row per gateway name; reports older than an hour go.
-- endpoints is the report's JSON array.
CREATE TABLE gateway_health (
    gateway TEXT PRIMARY KEY,
    reported_at_ms BIGINT NOT NULL,
    endpoints TEXT NOT NULL
);
