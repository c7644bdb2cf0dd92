//! Deployments: what is asked for, what is kept, what the API shows, and their credentials.

use airlock_cloud::Tag;
use airlock_payload::BootTask;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /v1/deployments`.
///
/// `Task` is how boot tasks are held: the console reads [`BootTask`]s; a client may pass a
/// file's tasks through as JSON, so that the console is the one to check them and names the
/// field at fault.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, bound(deserialize = "Task: Deserialize<'de>"))]
#[schema(bound = "")]
pub struct DeployRequest<Task = BootTask> {
    /// Idempotency token: the same token returns the same deployment instead of launching again.
    #[serde(default)]
    pub client_token: Option<String>,
    /// The account to deploy in.
    pub account: String,
    /// The AMI id.
    pub image_id: String,
    /// The instance type.
    pub instance_type: String,
    /// How many instances (default 1).
    #[serde(default = "one")]
    pub count: u32,
    /// The subnet.
    #[serde(default)]
    pub subnet_id: Option<String>,
    /// Security group ids.
    #[serde(default)]
    pub security_group_ids: Vec<String>,
    /// Key pair name.
    #[serde(default)]
    pub key_name: Option<String>,
    /// Tags for the instances and volumes, applied on creation.
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// The user's own script or cloud-config, run by cloud-init next to the payload.
    #[serde(default)]
    pub user_script: Option<String>,
    /// IMDSv2 hop limit: 1 (default) or 2 for containers on the instance.
    #[serde(default = "one_u8")]
    pub metadata_hop_limit: u8,
    /// Boot tasks the agent runs on every instance (see docs/payload.md).
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub tasks: Vec<Task>,
    /// What credentials the instances get (default `scoped`).
    #[serde(default = "CredentialMode::safe_default")]
    pub credentials: CredentialMode,
    /// Lifetime of scoped credentials in seconds (default 3600; STS limits apply).
    #[serde(default)]
    pub credentials_duration_seconds: Option<u32>,
    /// Extra IAM statements for the instances' session policy, beyond the generated ones.
    #[serde(default)]
    pub policy_statements: Vec<serde_json::Value>,
    /// Availability Zones the instances are spread over evenly (each launch in the zone with
    /// the fewest); not with `subnet_id`, which fixes the zone.
    #[serde(default)]
    pub availability_zones: Vec<String>,
    /// Shared (`default`) or `dedicated` hardware.
    #[serde(default)]
    pub tenancy: Option<airlock_cloud::Tenancy>,
    /// The placement group to launch into.
    #[serde(default)]
    pub placement_group: Option<String>,
}

/// What credentials a deployment's instances receive.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CredentialMode {
    /// Temporary STS credentials limited to the deployment's own resources, refreshed by the
    /// agent through the console.
    Scoped,
    /// No credentials in the user data: a one-time token the agent exchanges at first boot for
    /// scoped credentials limited to its own instance.
    Bootstrap,
    /// The account's stored long-term key in the user data: the pattern as published, risky.
    /// What deployments made before credential modes existed used.
    #[default]
    Account,
    /// No credentials and no payload: only the user's script.
    None,
    /// No AWS credentials at all: a one-time token the agent exchanges at first boot for an
    /// Airlock access key, bound to the deployment's session policy and the instance's address,
    /// that reaches EC2 only through the console's EC2 endpoint.
    Proxy,
}

impl CredentialMode {
    /// The default of a new deployment request.
    pub fn safe_default() -> CredentialMode {
        CredentialMode::Scoped
    }

    /// Its name as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialMode::Scoped => "scoped",
            CredentialMode::Bootstrap => "bootstrap",
            CredentialMode::Account => "account",
            CredentialMode::None => "none",
            CredentialMode::Proxy => "proxy",
        }
    }

    /// Whether the instances refresh their credentials at the console.
    pub fn refreshes(self) -> bool {
        matches!(
            self,
            CredentialMode::Scoped | CredentialMode::Bootstrap | CredentialMode::Proxy
        )
    }
}

fn one() -> u32 {
    1
}

fn one_u8() -> u8 {
    1
}

/// The part of a deployment request kept with the deployment (the user script is sealed apart).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct DeploymentSpec {
    /// The AMI id.
    pub image_id: String,
    /// The instance type.
    pub instance_type: String,
    /// The subnet.
    pub subnet_id: Option<String>,
    /// Security group ids.
    pub security_group_ids: Vec<String>,
    /// Key pair name.
    pub key_name: Option<String>,
    /// User tags.
    pub tags: Vec<Tag>,
    /// Whether a user script was given.
    pub has_user_script: bool,
    /// IMDSv2 hop limit.
    pub metadata_hop_limit: u8,
    /// Boot tasks carried in the payload.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub tasks: Vec<BootTask>,
    /// What credentials the instances get (`account` for deployments stored before modes).
    #[serde(default)]
    pub credentials: CredentialMode,
    /// Lifetime of scoped credentials in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_duration_seconds: Option<u32>,
    /// Extra statements asked for in the session policy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policy_statements: Vec<serde_json::Value>,
    /// Availability Zones the instances are spread over.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub availability_zones: Vec<String>,
    /// Shared or dedicated hardware.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenancy: Option<airlock_cloud::Tenancy>,
    /// The placement group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement_group: Option<String>,
}

/// A deployment as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
#[schema(as = Deployment)]
pub struct DeploymentView {
    /// e.g. `dep-3f9a…`.
    pub id: String,
    /// The account.
    pub account: String,
    /// `pending`, `launching`, `running` or `failed`.
    pub state: String,
    /// Why it failed.
    pub error: Option<String>,
    /// Desired instance count.
    pub count: i64,
    /// What was asked for.
    pub spec: DeploymentSpec,
    /// Its instances as last seen.
    pub instances: Vec<DeploymentInstance>,
    /// Who deployed it.
    pub created_by: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// A warning when the instances hold the account's long-term key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<String>,
}

/// One instance of a deployment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct DeploymentInstance {
    /// The instance id.
    pub instance_id: String,
    /// EC2 state name.
    pub state: String,
    /// Private IPv4.
    pub private_ip: Option<String>,
    /// Public IPv4.
    pub public_ip: Option<String>,
}

/// `POST /v1/deployments/{id}/scale`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScaleRequest {
    /// The new instance count (0 terminates them all).
    pub count: u32,
}

/// `GET /v1/deployments/{id}/policy`: the session policy of a scoped deployment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct DeploymentPolicy {
    /// The deployment.
    pub deployment_id: String,
    /// `scoped`, `bootstrap` or `proxy`.
    pub credentials: CredentialMode,
    /// Lifetime of each issue of credentials, seconds.
    pub duration_seconds: u32,
    /// The IAM session policy STS is given.
    pub policy: serde_json::Value,
}

/// `POST /v1/deployments/{id}/revoke`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct RevokeResult {
    /// The deployment.
    pub deployment_id: String,
    /// How many refresh secrets were revoked.
    pub revoked: u64,
    /// How many instance access keys (`proxy` mode) were deleted.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub deleted_keys: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}
