//! What every request handler shares: the store, the vault, the cloud and the settings.

use crate::vault::Vault;
use airlock_cloud::Cloud;
use airlock_store::Store;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Settings of a running console.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// The URL instances and clients reach this console at (written into payloads).
    pub public_url: String,
    /// How long an API token from `login` stays valid.
    pub token_ttl: Duration,
    /// How often a launching deployment's instances are looked at.
    pub poll_interval: Duration,
    /// How long a launch may take before the deployment is marked failed.
    pub launch_timeout: Duration,
    /// Rotate account keys older than this, checked hourly (`None`: only on request).
    pub rotate_keys_after: Option<Duration>,
    /// Endpoints besides AWS's own that accounts may use (`--allow-endpoint`).
    pub allowed_endpoints: Vec<crate::endpoints::AllowedEndpoint>,
    /// The machine's name, part of this node's id among several consoles.
    pub hostname: String,
    /// A file holding the time schedules see, instead of the system clock (tests).
    pub schedule_clock: Option<std::path::PathBuf>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            public_url: "http://127.0.0.1:7070".into(),
            token_ttl: Duration::from_secs(12 * 3600),
            poll_interval: Duration::from_secs(2),
            launch_timeout: Duration::from_secs(15 * 60),
            rotate_keys_after: None,
            allowed_endpoints: Vec::new(),
            hostname: "localhost".into(),
            schedule_clock: None,
        }
    }
}

/// Shared state of the console, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// Sealed secrets.
    pub vault: Arc<Vault>,
    /// EC2 and STS.
    pub cloud: Arc<dyn Cloud>,
    /// Settings.
    pub config: Arc<ConsoleConfig>,
    /// Deployments whose instances a background task is watching, or a request is launching.
    pub watching: Arc<Mutex<HashSet<String>>>,
    /// The audit log's key, and this console's appends one at a time.
    pub audit: Arc<crate::audit::Chain>,
    /// Password hashing and checking, a few at a time off the async workers.
    pub passwords: Arc<crate::auth::PasswordChecks>,
    /// Refresh requests and refusals per source address.
    pub refreshes: Arc<crate::refresh_guard::RefreshGuard>,
    /// Agents' command fetches and reports per source address.
    pub agent_requests: Arc<crate::refresh_guard::RefreshGuard>,
    /// Agents waiting for commands.
    pub commands: Arc<crate::agent_work::Waiters>,
    /// Rolls this console drives now.
    pub rolling: Arc<Mutex<HashSet<String>>>,
    /// The shared pollers of instance watches.
    pub pollers: Arc<crate::poller::Pollers>,
    /// Instance look-ups by id (refresh checks) sharing `DescribeInstances` calls per account.
    pub lookups: Arc<airlock_cloud::Coalescer>,
    /// Short-lived answers of listings, shared by listings and watches asking the same.
    pub snapshots: Arc<crate::snapshots::Snapshots>,
    /// Open event and watch streams per user.
    pub streams: Arc<crate::streams::Streams>,
    /// Which login throttle keys this console knows to wait (the counts are in the store).
    pub logins: Arc<crate::throttle::Throttle>,
    /// Users' parsed policies, kept while their documents are unchanged.
    pub policies: Arc<crate::authz::PolicyCache>,
    /// Current tags of EC2 resources, for `ec2:ResourceTag/*`.
    pub tags: Arc<crate::authz::TagCache>,
    /// What the console changed, pushed to watchers of `GET /v1/events` (gateways).
    pub events: Arc<crate::events::EventBus>,
    /// This node among the consoles sharing the database: its leases, whether it drains.
    pub cluster: Arc<crate::cluster::Cluster>,
}
