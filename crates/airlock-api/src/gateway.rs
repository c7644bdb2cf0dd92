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
