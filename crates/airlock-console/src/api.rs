//! The console API's fleet listing body; every other body is in `airlock_api`.

use serde::{Deserialize, Serialize};

/// `GET /v1/{family}` (addresses, volumes, snapshots…): each item as EC2 describes it, with
/// the `account` it was listed in.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FleetList {
    /// The resources.
    pub items: Vec<serde_json::Value>,
}
