//! Snapshot policies: EBS snapshots of the volumes a tag selects, on a schedule, with retention.

use crate::state::SnapshotRunState;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Body of `POST /v1/snapshot-policies`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSnapshotPolicyRequest {
    /// The policy's name (1–64 of letters, digits, `.`, `_`, `-`).
    pub name: String,
    /// The console account whose volumes it snapshots.
    pub account: String,
    /// The volumes: `tag:KEY=VALUE`.
    pub target: String,
    /// `cron(...)` or `rate(...)`, as EventBridge writes them (UTC).
    pub schedule: String,
    /// How many of the policy's snapshots of each volume are kept (newest first).
    #[serde(default)]
    pub retain: Option<u32>,
    /// Snapshots younger than this many days are kept.
    #[serde(default)]
    pub retain_days: Option<u32>,
}

/// A snapshot policy as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SnapshotPolicyView {
    /// Its name.
    pub name: String,
    /// The console account.
    pub account: String,
    /// `tag:KEY=VALUE`.
    pub target: String,
    /// The schedule expression.
    pub schedule: String,
    /// Snapshots kept per volume, newest first.
    pub retain: Option<u32>,
    /// Snapshots younger than this many days are kept.
    pub retain_days: Option<u32>,
    /// The user whose permissions every snapshot and deletion is decided with.
    pub created_by: String,
    /// RFC 3339.
    pub created_at: String,
    /// When the schedule last fired (RFC 3339).
    pub last_scheduled_at: Option<String>,
    /// When the schedule fires next (RFC 3339), if ever.
    pub next_run_at: Option<String>,
    /// The latest runs, newest first (in `GET /v1/snapshot-policies/{name}` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<SnapshotRunView>,
}

/// `GET /v1/snapshot-policies`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SnapshotPolicyList {
    /// Every policy, by name.
    pub policies: Vec<SnapshotPolicyView>,
}

/// One run of a policy.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SnapshotRunView {
    /// `run-…`.
    pub id: String,
    /// The policy.
    pub policy: String,
    /// `scheduled` or the user who asked for it.
    pub trigger: String,
    /// Where it is.
    pub state: SnapshotRunState,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339, when it ended.
    pub finished_at: Option<String>,
    /// The snapshots it created.
    pub created: Vec<String>,
    /// The policy's older snapshots retention deleted.
    pub deleted: Vec<String>,
    /// What failed, per volume or snapshot, if anything.
    pub errors: Vec<String>,
}
