-- Instance access keys (credential mode 'proxy'): the console issues an Airlock access key to
-- each instance of a proxy deployment when it refreshes, acting as the deploying user, bound to
-- the deployment's session policy and usable only from the address the refresh came from.
-- All three are NULL for a user's own keys.

ALTER TABLE access_keys ADD COLUMN deployment_id TEXT REFERENCES deployments(id) ON DELETE CASCADE;
ALTER TABLE access_keys ADD COLUMN instance_id TEXT;
ALTER TABLE access_keys ADD COLUMN source_ip TEXT;
CREATE INDEX access_keys_by_deployment ON access_keys (deployment_id, instance_id);
