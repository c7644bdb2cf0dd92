//! `POST /v1/gateway/health`: what each gateway following the console sees of its endpoints
//! (healthy, ejected by its passive health, unhealthy by its active checks), reported every
//! few seconds and shown beside each upstream's instances on the Gateway page. Only the latest
//! report of each gateway is kept, for an hour; a report is bounded in size and in the number
//! of gateway names.

use crate::auth::Caller;
use crate::authz::precheck;
use crate::error::{ApiError, ApiResult};
use crate::json::Body;
use crate::state::AppState;
use airlock_access::ops;
use airlock_api::gateway::{GatewayHealthReport, GatewaySeen, MAX_REPORTED_ENDPOINTS};
use airlock_store::GatewayHealthRow;
use axum::extract::State;
use axum::Json;
use std::collections::HashMap;

/// The largest report body: a few thousand endpoints.
pub const MAX_BODY: usize = 1 << 20;
/// Reports older than this are not shown.
const FRESH_MS: i64 = 60_000;
/// Reports older than this are deleted.
const KEPT_MS: i64 = 60 * 60 * 1000;
/// Gateway names reporting within [`KEPT_MS`] at most.
const MAX_GATEWAYS: i64 = 100;
/// The health words a gateway may report.
const HEALTH: [&str; 3] = ["healthy", "ejected", "unhealthy"];

/// The answer to a report.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ReportAccepted {
    /// Endpoints kept.
    pub endpoints: usize,
}

/// `POST /v1/gateway/health`.
#[utoipa::path(
    post,
    path = "/v1/gateway/health",
    summary = "A gateway's endpoints and their health, as it sees them (airlock:ReportGatewayHealth on gateway/NAME)",
    request_body = airlock_api::gateway::GatewayHealthReport,
    responses(
        (status = 200, description = "Kept", body = ReportAccepted),
        (status = 400, description = "Error", body = airlock_api::ErrorBody),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
        (status = 409, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn report(
    State(state): State<AppState>,
    caller: Caller,
    Body(report): Body<GatewayHealthReport>,
) -> ApiResult<Json<ReportAccepted>> {
    validate(&report)?;
    // Decided on every report, but only a refusal is audited: a gateway reports every few
    // seconds, and its allowed reports change nothing anyone acts on.
    precheck(
        &state,
        &caller,
        vec![ops::report_gateway_health(&report.gateway)],
    )
    .await?;
    let now = airlock_store::epoch_ms(std::time::SystemTime::now());
    let row = GatewayHealthRow {
        gateway: report.gateway.clone(),
        reported_at_ms: now,
        endpoints: serde_json::to_string(&report.endpoints)
            .map_err(|e| ApiError::Internal(e.to_string()))?,
    };
    if !state
        .store
        .record_gateway_health(&row, now - KEPT_MS, MAX_GATEWAYS)
        .await?
    {
        return Err(ApiError::Conflict(format!(
            "{MAX_GATEWAYS} gateways already report to this console; gateway {:?} is not kept",
            report.gateway
        )));
    }
    Ok(Json(ReportAccepted {
        endpoints: report.endpoints.len(),
    }))
}

/// The report's form: a name of letters, digits, `.`, `_` and `-`, at most
/// [`MAX_REPORTED_ENDPOINTS`] endpoints, each with an `ip:port` and a known health word.
fn validate(report: &GatewayHealthReport) -> ApiResult<()> {
    if !airlock_api::gateway::valid_gateway_name(&report.gateway) {
        return Err(ApiError::field(
            "gateway",
            "1 to 128 letters, digits, '.', '_' or '-'",
        ));
    }
    if report.endpoints.len() > MAX_REPORTED_ENDPOINTS {
        return Err(ApiError::field(
            "endpoints",
            format!("at most {MAX_REPORTED_ENDPOINTS} endpoints in one report"),
        ));
    }
    for (i, e) in report.endpoints.iter().enumerate() {
        if e.address.parse::<std::net::SocketAddr>().is_err() {
            return Err(ApiError::field(
                format!("endpoints[{i}].address"),
                format!("{:?} is not an ip:port", e.address),
            ));
        }
        if !HEALTH.contains(&e.health.as_str()) {
            return Err(ApiError::field(
                format!("endpoints[{i}].health"),
                format!("{:?} is not healthy, ejected or unhealthy", e.health),
            ));
        }
        if e.upstream.len() > 512 || e.instance_id.len() > 64 {
            return Err(ApiError::field(
                format!("endpoints[{i}]"),
                "an upstream name is at most 512 characters, an instance id 64",
            ));
        }
    }
    Ok(())
}

/// What the gateways reported in the last minute, by upstream (`namespace/name`) and address.
pub(crate) async fn seen(
    state: &AppState,
) -> ApiResult<HashMap<(String, String), Vec<GatewaySeen>>> {
    let since = airlock_store::epoch_ms(std::time::SystemTime::now()) - FRESH_MS;
    let mut out: HashMap<(String, String), Vec<GatewaySeen>> = HashMap::new();
    for row in state.store.gateway_health_since(since).await? {
        let Ok(endpoints) =
            serde_json::from_str::<Vec<airlock_api::gateway::ReportedEndpoint>>(&row.endpoints)
        else {
            continue;
        };
        let at = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(row.reported_at_ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default();
        for e in endpoints {
            out.entry((e.upstream, e.address))
                .or_default()
                .push(GatewaySeen {
                    gateway: row.gateway.clone(),
                    health: e.health,
                    reported_at: at.clone(),
                });
        }
    }
    Ok(out)
}
