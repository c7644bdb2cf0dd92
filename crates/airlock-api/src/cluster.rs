//! `GET /v1/cluster`: the console nodes sharing one database and who holds each lease.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The cluster as the answering node sees it in the database.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClusterStatus {
    /// The node that answered.
    pub answered_by: String,
    /// Nodes seen in the last day, oldest first.
    pub nodes: Vec<ClusterNode>,
    /// Work that runs on one node at a time, and who does it.
    pub leases: Vec<ClusterLease>,
}

/// One console node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClusterNode {
    /// Chosen by the node when it started.
    pub id: String,
    /// The machine it runs on.
    pub hostname: String,
    /// Its process id.
    pub pid: i64,
    /// The URL it serves at.
    pub url: String,
    /// Airlock's version.
    pub version: String,
    /// `serving`, `draining` or `stopped`.
    pub state: String,
    /// RFC 3339.
    pub started_at: String,
    /// Its last heartbeat, RFC 3339.
    pub last_heartbeat: String,
    /// Seconds since that heartbeat, by the database's clock.
    pub heartbeat_age_seconds: f64,
    /// Serving, with a heartbeat recent enough to hold a lease.
    pub alive: bool,
}

/// A lease.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClusterLease {
    /// `deployments` (watching and resuming deployments) or `key-rotation`.
    pub name: String,
    /// The node holding it.
    pub holder: String,
    /// Raised each time the lease changes hands.
    pub term: i64,
    /// When the holder took it, RFC 3339.
    pub acquired_at: String,
    /// When it lapses unless renewed, RFC 3339.
    pub expires_at: String,
    /// Whether it has lapsed (no node holds it until one takes it).
    pub expired: bool,
}
