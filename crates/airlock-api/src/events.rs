//! The console's event stream (`GET /v1/events`, Server-Sent Events): what changed, never
//! credentials, tags or request bodies.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What an event is about; also the SSE `event:` name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum EventKind {
    /// EC2 instances changed state or tags.
    Instances,
    /// A stored gateway configuration was written or deleted.
    GatewayConfig,
    /// The watcher may have missed events (it just connected, or fell behind): look again.
    Resync,
}

impl EventKind {
    /// The SSE event name.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Instances => "instances",
            EventKind::GatewayConfig => "gatewayConfig",
            EventKind::Resync => "resync",
        }
    }

    /// The kind an SSE event name stands for (`None` for names of later versions).
    pub fn from_name(name: &str) -> Option<EventKind> {
        [
            EventKind::Instances,
            EventKind::GatewayConfig,
            EventKind::Resync,
        ]
        .into_iter()
        .find(|k| k.name() == name)
    }
}

/// One change, as watchers receive it (the `data` of an SSE event, JSON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = GatewayEvent)]
pub struct Event {
    /// Increases by one per event of this console process.
    pub seq: u64,
    /// RFC 3339.
    pub at: String,
    /// What it is about.
    pub kind: EventKind,
    /// The action, e.g. `ec2:StopInstances` or `airlock:PutGatewayConfig`.
    pub action: String,
    /// The AWS account id, for EC2 changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The region, for EC2 changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Resource ids (`i-…`, a deployment id, a configuration name).
    #[serde(default)]
    pub resources: Vec<String>,
}
