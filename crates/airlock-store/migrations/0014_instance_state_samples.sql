-- How many instances each account had in each state, sampled once a minute by the console
-- holding the schedules lease, for the instances page's trend. A day is kept. at_ms is the
-- sample's minute in epoch milliseconds.
CREATE TABLE instance_state_samples (
    account TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    state TEXT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (account, at_ms, state)
);
CREATE INDEX instance_state_samples_at ON instance_state_samples (at_ms);
