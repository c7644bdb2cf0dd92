//! Rolling replacement: a deployment's nodes replaced one batch at a time by instances of a new
//! image, each replacement taking over its node's identity (secondary network interfaces, data
//! volumes, Elastic IP) before the old instance is terminated.

use crate::state::RollState;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Body of `POST /v1/deployments/{id}/roll`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollRequest {
    /// The new image.
    pub image_id: String,
    /// A new instance type (default: the deployment's).
    #[serde(default)]
    pub instance_type: Option<String>,
    /// Nodes replaced at once, at most (default 1): never more are out of service.
    #[serde(default)]
    pub batch: Option<u32>,
    /// When a replacement counts as healthy: `status-checks` (default), `agent` (its agent
    /// refreshed through the console), or `http:PORT/PATH` (a 2xx from the instance's private
    /// address).
    #[serde(default)]
    pub health: Option<String>,
    /// Seconds to wait for health before rolling the node back (default 600).
    #[serde(default)]
    pub health_timeout_seconds: Option<u32>,
    /// Only answer with the plan; change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// Where one node is in the roll.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum NodeStep {
    /// Not started.
    Waiting,
    /// Launching the replacement.
    Launch,
    /// Stopping the old instance.
    StopOld,
    /// Moving the node's identity (interfaces, volumes, address) to the replacement.
    MoveIdentity,
    /// Waiting for the replacement to be healthy.
    Health,
    /// Terminating the old instance.
    TerminateOld,
    /// Replaced.
    Done,
    /// Moving the identity back to the old instance, starting it, terminating the replacement.
    RollBack,
    /// Rolled back: the old instance serves again.
    RolledBack,
}

/// A secondary network interface that is part of a node's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IdentityInterface {
    /// `eni-…`.
    pub network_interface_id: String,
    /// Its device index on the node (1 or more).
    pub device_index: i32,
    /// Its private address.
    pub private_ip: Option<String>,
}

/// A data volume that is part of a node's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IdentityVolume {
    /// `vol-…`.
    pub volume_id: String,
    /// Its device name on the node.
    pub device: String,
}

/// One node of the roll.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NodeRoll {
    /// The instance being replaced.
    pub old_instance_id: String,
    /// Its replacement, once launched.
    pub new_instance_id: Option<String>,
    /// The old instance's subnet, where the replacement goes.
    pub subnet_id: Option<String>,
    /// Where it is.
    pub step: NodeStep,
    /// Secondary interfaces moved with the node.
    pub interfaces: Vec<IdentityInterface>,
    /// Non-root volumes moved with the node.
    pub volumes: Vec<IdentityVolume>,
    /// The Elastic IP of its primary interface (`eipalloc-…`).
    pub allocation_id: Option<String>,
    /// Why it stopped.
    pub error: Option<String>,
}

/// A roll as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RollView {
    /// `roll-…`.
    pub id: String,
    /// The deployment.
    pub deployment_id: String,
    /// The new image.
    pub image_id: String,
    /// The new instance type.
    pub instance_type: String,
    /// Nodes at once.
    pub batch: u32,
    /// The health signal.
    pub health: String,
    /// Seconds.
    pub health_timeout_seconds: u32,
    /// Where it is.
    pub state: RollState,
    /// Why it stopped, when it did.
    pub error: Option<String>,
    /// Who rolls (every step is decided with their permissions).
    pub created_by: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// Its nodes, in the order they are replaced.
    pub nodes: Vec<NodeRoll>,
}
