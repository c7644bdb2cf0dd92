//! What the console offers gateways (`airlock gateway --console URL`):
//!
//! * stored gateway configurations — named Gloo YAML texts (Upstream, VirtualService),
//!   validated with the gateway's own parser against every other stored configuration before
//!   they are kept, so a gateway loading all of them never meets a broken set; Secret documents
//!   are refused (keys belong in the vault, not in configurations);
//! * discovery through a console account (`POST /v1/gateway/discover`): the gateway names the
//!   account, the region and the server-side filters, the console lists the instances with the
//!   account's key, and the key never leaves the console.
//!
//! Every change publishes an event, which is how following gateways reload at once. What the
//! stored upstreams route to is shown by [`upstreams`].

pub mod health;
pub mod upstreams;

use crate::accounts;
use crate::audit::{self, Entry};
use crate::auth::Caller;
use crate::authz::{authorize, authorize_one, console_arn, precheck};
use crate::error::{ApiError, ApiResult};
use crate::events::EventKind;
use crate::json::Body;
use crate::state::AppState;
use crate::validate;
use airlock_access::ops;
use airlock_api::gateway::{
    DiscoverRequest, DiscoverResponse, GatewayConfigList, GatewayConfigView,
    PutGatewayConfigRequest,
};
use airlock_gateway_config::config::{self as gwconfig, LoadOptions};
use airlock_store::GatewayConfigRow;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

fn view(row: GatewayConfigRow) -> GatewayConfigView {
    GatewayConfigView {
        name: row.name,
        yaml: row.yaml,
        updated_by: row.updated_by,
        updated_at: row.updated_at,
    }
}

/// Largest configuration text accepted.
const MAX_YAML: usize = 1 << 20;

fn load_options() -> LoadOptions {
    LoadOptions {
        stored_in_console: true,
        ..LoadOptions::default()
    }
}

/// Loads the stored configurations with `name` replaced by `yaml` (or removed when `None`),
/// as a gateway would load them all; every problem in one error. Also gives the upstreams
/// that are new or different from what is stored now: what the writer brings in.
async fn check_set(
    state: &AppState,
    name: &str,
    yaml: Option<&str>,
) -> ApiResult<Vec<gwconfig::Upstream>> {
    let stored: Vec<(String, String)> = state
        .store
        .gateway_configs()
        .await?
        .into_iter()
        .map(|c| (c.name, c.yaml))
        .collect();
    let mut sources: Vec<(String, String)> =
        stored.iter().filter(|(n, _)| n != name).cloned().collect();
    if let Some(y) = yaml {
        sources.push((name.to_owned(), y.to_owned()));
    }
    let after = gwconfig::load(&sources, &load_options())
        .map_err(|e| ApiError::field("yaml", e.to_string()))?;
    let before = gwconfig::load(&stored, &load_options())
        .map(|c| c.upstreams)
        .unwrap_or_default();
    Ok(after
        .upstreams
        .into_values()
        .filter(|u| before.get(&u.id) != Some(u))
        .collect())
}

/// `GET /v1/gateway/configs`.
#[utoipa::path(
    get,
    path = "/v1/gateway/configs",
    summary = "Every stored gateway configuration (airlock:ListGatewayConfigs)",
    responses(
        (status = 200, description = "The configurations", body = airlock_api::gateway::GatewayConfigList),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<GatewayConfigList>> {
    authorize_one(
        &state,
        &caller,
        "airlock:ListGatewayConfigs",
        &console_arn("gateway-config", "*"),
    )
    .await?;
    let configs = state
        .store
        .gateway_configs()
        .await?
        .into_iter()
        .map(view)
        .collect();
    Ok(Json(GatewayConfigList { configs }))
}

/// `GET /v1/gateway/configs/{name}`.
#[utoipa::path(
    get,
    path = "/v1/gateway/configs/{name}",
    summary = "A stored gateway configuration (airlock:GetGatewayConfig)",
    params(("name" = String, Path)),
    responses(
        (status = 200, description = "The configuration", body = airlock_api::gateway::GatewayConfigView),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
        (status = 404, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<GatewayConfigView>> {
    let arn = console_arn("gateway-config", &name);
    authorize_one(&state, &caller, "airlock:GetGatewayConfig", &arn).await?;
    let row = state
        .store
        .gateway_config(&name)
        .await?
        .ok_or_else(|| unknown(&name))?;
    Ok(Json(view(row)))
}

fn unknown(name: &str) -> ApiError {
    ApiError::NotFound(format!(
        "unknown gateway configuration {name:?}: see `airlock gateway-config list`"
    ))
}

/// `PUT /v1/gateway/configs/{name}`: validated with the gateway's parser together with every
/// other stored configuration, then stored; following gateways reload.
#[utoipa::path(
    put,
    path = "/v1/gateway/configs/{name}",
    summary = "Store or replace a gateway configuration (Gloo Upstream and VirtualService YAML) after validating it, with every other stored one, with the gateway's parser; Secret documents are refused (airlock:PutGatewayConfig)",
    params(("name" = String, Path)),
    request_body = airlock_api::gateway::PutGatewayConfigRequest,
    responses(
        (status = 200, description = "Stored", body = airlock_api::gateway::GatewayConfigView),
        (status = 400, description = "Error", body = airlock_api::ErrorBody),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Body(req): Body<PutGatewayConfigRequest>,
) -> ApiResult<Json<GatewayConfigView>> {
    validate::name("name", &name)?;
    let arn = console_arn("gateway-config", &name);
    precheck(
        &state,
        &caller,
        vec![ops::console(
            "airlock:PutGatewayConfig",
            "gateway-config",
            &name,
        )],
    )
    .await?;
    if req.yaml.len() > MAX_YAML {
        return Err(ApiError::field(
            "yaml",
            format!(
                "{} bytes is more than the {MAX_YAML} accepted",
                req.yaml.len()
            ),
        ));
    }
    // Every gateway following this console lists and routes with its own rights: whoever
    // writes an upstream must hold the rights it uses.
    let brought_in = check_set(&state, &name, Some(&req.yaml)).await?;
    let mut checks = vec![ops::console(
        "airlock:PutGatewayConfig",
        "gateway-config",
        &name,
    )];
    checks.extend(brought_in.iter().flat_map(ops::gateway_upstream));
    authorize(&state, &caller, checks).await?;
    let row = GatewayConfigRow {
        name: name.clone(),
        yaml: req.yaml,
        updated_by: caller.user.clone(),
        updated_at: crate::now(),
    };
    state.store.put_gateway_config(&row).await?;
    audit::record_ok(
        &state,
        Entry::for_caller(&caller, "airlock:PutGatewayConfig", vec![arn]),
        None,
    )
    .await;
    state.events.publish(
        EventKind::GatewayConfig,
        "airlock:PutGatewayConfig",
        None,
        None,
        vec![name.clone()],
    );
    tracing::info!(user = %caller.user, config = %name, "gateway configuration stored");
    Ok(Json(view(row)))
}

/// `DELETE /v1/gateway/configs/{name}`: refused while another configuration routes to an
/// upstream only this one defines.
#[utoipa::path(
    delete,
    path = "/v1/gateway/configs/{name}",
    summary = "Delete a gateway configuration no other one depends on (airlock:DeleteGatewayConfig)",
    params(("name" = String, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
        (status = 404, description = "Error", body = airlock_api::ErrorBody),
        (status = 409, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let arn = console_arn("gateway-config", &name);
    authorize_one(&state, &caller, "airlock:DeleteGatewayConfig", &arn).await?;
    if state.store.gateway_config(&name).await?.is_none() {
        return Err(unknown(&name));
    }
    check_set(&state, &name, None).await.map_err(|e| {
        ApiError::Conflict(format!(
            "the other gateway configurations need {name:?}: {e}"
        ))
    })?;
    state.store.delete_gateway_config(&name).await?;
    audit::record_ok(
        &state,
        Entry::for_caller(&caller, "airlock:DeleteGatewayConfig", vec![arn]),
        None,
    )
    .await;
    state.events.publish(
        EventKind::GatewayConfig,
        "airlock:DeleteGatewayConfig",
        None,
        None,
        vec![name.clone()],
    );
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/gateway/discover`: one `DescribeInstances` (every page) with a console account's
/// key, authorized as `ec2:DescribeInstances` plus `airlock:UseAccount` on the account.
#[utoipa::path(
    post,
    path = "/v1/gateway/discover",
    summary = "List instances with a console account's key for a gateway, which never sees the key (ec2:DescribeInstances with ec2:Region, and airlock:UseAccount on the account)",
    request_body = airlock_api::gateway::DiscoverRequest,
    responses(
        (status = 200, description = "The instances", body = airlock_api::gateway::DiscoverResponse),
        (status = 400, description = "Error", body = airlock_api::ErrorBody),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
        (status = 502, description = "Error", body = airlock_api::ErrorBody),
        (status = 503, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn discover(
    State(state): State<AppState>,
    caller: Caller,
    Body(req): Body<DiscoverRequest>,
) -> ApiResult<Json<DiscoverResponse>> {
    for (i, f) in req.filters.iter().enumerate() {
        if f.name.is_empty() {
            return Err(ApiError::field(
                format!("filters[{i}].name"),
                "the filter name is empty",
            ));
        }
    }
    precheck(&state, &caller, vec![ops::use_account(&req.account)]).await?;
    let (account, mut target) = accounts::target_for_request(&state, &req.account).await?;
    if let Some(region) = req.region.as_deref().filter(|r| !r.is_empty()) {
        target.region = region.to_owned();
    }
    let checks = vec![
        ops::discover(&target.region),
        ops::use_account(&account.name),
    ];
    authorize(&state, &caller, checks).await?;
    let ec2 = state.cloud.ec2(&target).await?;
    let instances = ec2.describe_instances(&req.filters, &[]).await?;
    Ok(Json(DiscoverResponse { instances }))
}
