//! The gateway configurations a console stores, and listing instances through a console
//! account for a gateway (so the account's key never leaves the console).

use airlock_cloud::{Filter, Instance};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A stored configuration as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = GatewayConfig)]
pub struct GatewayConfigView {
    /// Its name.
    pub name: String,
    /// The YAML text.
    pub yaml: String,
    /// Who wrote it last.
    pub updated_by: String,
    /// When (RFC 3339).
    pub updated_at: String,
}

/// `GET /v1/gateway/configs`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GatewayConfigList {
    /// Every stored configuration, by name.
    pub configs: Vec<GatewayConfigView>,
}

/// Body of `PUT /v1/gateway/configs/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutGatewayConfigRequest {
    /// Gloo YAML: Upstream and VirtualService documents.
    pub yaml: String,
}

/// Body of `POST /v1/gateway/discover`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscoverRequest {
    /// The console account to list with.
    pub account: String,
    /// The region to list (default: the account's).
    #[serde(default)]
    pub region: Option<String>,
    /// Server-side EC2 filters.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub filters: Vec<Filter>,
}

/// Answer of `POST /v1/gateway/discover`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DiscoverResponse {
    /// The instances, as `DescribeInstances` reports them.
    pub instances: Vec<Instance>,
}

/// `GET /v1/gateway/upstreams`: the stored configurations' upstreams, each with the instances
/// that back it now and why others near it do not.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UpstreamList {
    /// Every upstream of the stored configurations, by namespace and name.
    pub upstreams: Vec<UpstreamView>,
    /// Why the stored configurations could not be read together, when they cannot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One upstream as the console sees it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UpstreamView {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The region listed.
    pub region: String,
    /// The console account it is listed through; `None` when the gateway lists it with its
    /// own credentials, which the console does not have.
    pub account: Option<String>,
    /// Its tag filters, as EC2 filters (`tag:team=web`, `tag-key=gloo`).
    pub filters: Vec<String>,
    /// The port, unless the port tag says otherwise.
    pub port: u16,
    /// The tag that overrides the port per instance.
    pub port_tag: String,
    /// Whether it routes to public addresses.
    pub public_ip: bool,
    /// Why its instances are not shown, when they are not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// When EC2 was asked (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub described_at: Option<String>,
    /// The instances that back it now.
    pub members: Vec<UpstreamMember>,
    /// Instances that carry one of its filters' tag keys but do not back it, with the reason
    /// (at most [`MAX_EXCLUDED`]).
    pub excluded: Vec<UpstreamExcluded>,
    /// How many such instances there are in all.
    pub excluded_total: usize,
}

/// Instances that do not back an upstream listed with their reason, at most.
pub const MAX_EXCLUDED: usize = 50;

/// An instance behind an upstream.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UpstreamMember {
    /// The instance.
    pub instance_id: String,
    /// Where the gateway sends requests (`ip:port`).
    pub address: String,
    /// What each gateway following the console reported of it in the last minute.
    #[serde(default)]
    pub gateways: Vec<GatewaySeen>,
    /// EC2's instance status check (`ok`, `impaired`, …), when the reader may see it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_status: Option<String>,
    /// EC2's system status check, when the reader may see it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_status: Option<String>,
}

/// An instance near an upstream that does not back it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UpstreamExcluded {
    /// The instance.
    pub instance_id: String,
    /// Its state.
    pub state: String,
    /// Why it is not routed to.
    pub reason: String,
}

/// What one gateway reported of an endpoint.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GatewaySeen {
    /// The gateway's name.
    pub gateway: String,
    /// `healthy`, `ejected` (by its passive health) or `unhealthy` (by its active checks).
    pub health: String,
    /// When it reported (RFC 3339).
    pub reported_at: String,
}

/// Body of `POST /v1/gateway/health`: a gateway's endpoints and their health, sent every few
/// seconds by a gateway following the console.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GatewayHealthReport {
    /// The gateway's name (`--name`, by default its machine's).
    pub gateway: String,
    /// Every endpoint of every upstream it routes to (at most [`MAX_REPORTED_ENDPOINTS`]).
    pub endpoints: Vec<ReportedEndpoint>,
}

/// Whether `name` may name a gateway in its reports: 1 to 128 letters, digits, `.`, `_` or `-`.
/// The gateway checks its `--name` with it at start, the console every report.
pub fn valid_gateway_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Endpoints one report may carry at most.
pub const MAX_REPORTED_ENDPOINTS: usize = 5_000;

/// One endpoint as a gateway sees it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportedEndpoint {
    /// The upstream (`namespace/name`).
    pub upstream: String,
    /// The instance.
    pub instance_id: String,
    /// Where it sends requests (`ip:port`).
    pub address: String,
    /// `healthy`, `ejected` or `unhealthy`.
    pub health: String,
}
