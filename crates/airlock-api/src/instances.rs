//! Instances and the tags of any resource: listing, acting on instances, tagging.

use airlock_cloud::{Instance, InstanceStatus, Tag};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /v1/instances` answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InstanceList {
    /// The instances, with the account each belongs to.
    pub instances: Vec<AccountInstance>,
    /// When EC2 was asked (RFC 3339; the oldest account's look when several were listed):
    /// listings within a moment of one another share one look at EC2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub described_at: Option<String>,
}

/// An instance and the account it was listed with.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AccountInstance {
    /// The account name.
    pub account: String,
    /// The instance, as `DescribeInstances` reports it (its fields beside `account`).
    #[serde(flatten)]
    pub instance: Instance,
    /// Its status checks, when asked for (`status=true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<InstanceStatus>,
}

/// `POST /v1/instances/{action}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceActionRequest {
    /// The account the instances belong to.
    pub account: String,
    /// Instance ids.
    pub instance_ids: Vec<String>,
}

/// The answer to an instance action.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InstanceActionResponse {
    /// `start`, `stop`, `reboot` or `terminate`.
    pub action: String,
    /// The instances acted on.
    pub instance_ids: Vec<String>,
    /// AWS's request id.
    pub aws_request_id: Option<String>,
}

/// `POST /v1/tags` and `POST /v1/tags/remove`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagRequest {
    /// The account the resource is in.
    pub account: String,
    /// The EC2 resource id (`i-…`, `vol-…`, `ami-…`, `sg-…`, …).
    pub resource_id: String,
    /// Tags to add, or (for removal) to remove; an empty value removes the key whatever its value.
    pub tags: Vec<Tag>,
}

/// Tags of a resource after a change.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = Tags)]
pub struct TagsView {
    /// The resource id.
    pub resource_id: String,
    /// Its tags now.
    pub tags: Vec<Tag>,
    /// AWS's request id.
    pub aws_request_id: Option<String>,
}

/// `GET /v1/instances/trend`: instances by state over the last minutes, summed over the
/// accounts whose every instance the reader may describe.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InstanceTrend {
    /// The accounts counted.
    pub accounts: Vec<String>,
    /// One point a minute, oldest first.
    pub samples: Vec<TrendPoint>,
}

/// Instances by state at one minute.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TrendPoint {
    /// The minute (RFC 3339).
    pub at: String,
    /// How many instances were in each state then.
    pub counts: std::collections::BTreeMap<String, i64>,
}
