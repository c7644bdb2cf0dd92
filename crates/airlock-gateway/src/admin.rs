//! The admin listener: `/metrics` in Prometheus text, `/endpoints` as JSON (each upstream's
//! instances, addresses, health and matched filters, plus warnings such as an instance in several
//! upstreams), and `/healthz`. Kept off the proxy port so it can stay private.

use crate::runtime::Shared;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use serde_json::json;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The admin routes.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/endpoints", get(endpoints))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(shared)
}

async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let mut out = String::new();
    let now = shared.now_ms();
    out.push_str("# TYPE airlock_gateway_requests_total counter\n# TYPE airlock_gateway_request_duration_seconds histogram\n# TYPE airlock_gateway_endpoints gauge\n# TYPE airlock_gateway_endpoints_healthy gauge\n# TYPE airlock_gateway_retries_total counter\n# TYPE airlock_gateway_ejections_total counter\n");
    for (id, state) in shared.upstreams.load().iter() {
        crate::metrics::render_upstream(
            &mut out,
            &id.to_string(),
            &state.metrics,
            state.set.endpoints.len(),
            state.set.available(now),
        );
    }
    out.push_str("# TYPE airlock_gateway_discovery_calls_total counter\n# TYPE airlock_gateway_discovery_errors_total counter\n# TYPE airlock_gateway_discovery_stale gauge\n# TYPE airlock_gateway_discovery_age_seconds gauge\n");
    for (group, stats) in shared.group_stats() {
        crate::metrics::render_group(&mut out, &group, &stats);
    }
    let g = &shared.metrics;
    let _ = writeln!(
        out,
        "airlock_gateway_no_route_total {}",
        g.no_route.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "airlock_gateway_config_reloads_total {}",
        g.reloads.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "airlock_gateway_config_reload_failures_total {}",
        g.reload_failures.load(Ordering::Relaxed)
    );
    if shared.console.is_some() {
        let _ = writeln!(
            out,
            "# TYPE airlock_gateway_console_connected gauge\nairlock_gateway_console_connected {}\n# TYPE airlock_gateway_console_events_total counter\nairlock_gateway_console_events_total {}",
            g.console_connected.load(Ordering::Relaxed),
            g.console_events.load(Ordering::Relaxed)
        );
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

async fn endpoints(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let now = shared.now_ms();
    let mut ups = serde_json::Map::new();
    for (id, state) in shared.upstreams.load().iter() {
        let eps: Vec<_> = state
            .set
            .endpoints
            .iter()
            .map(|e| {
                let health = e.health.word(now);
                json!({
                    "instanceId": e.instance_id,
                    "address": e.addr.ip().to_string(),
                    "port": e.addr.port(),
                    "state": e.state,
                    "health": health,
                    "inFlight": e.health.in_flight.load(Ordering::Relaxed),
                    "matchedFilters": e.matched_filters.iter().map(ToString::to_string).collect::<Vec<_>>(),
                })
            })
            .collect();
        ups.insert(
            id.to_string(),
            json!({
                "discovered": state.upstream.discovered,
                "region": state.upstream.region,
                "filters": state.upstream.filters.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "endpoints": eps,
            }),
        );
    }
    let warnings = shared
        .warnings
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let discovery: serde_json::Map<String, serde_json::Value> = shared
        .group_stats()
        .into_iter()
        .map(|(k, s)| {
            (
                k,
                json!({"calls": s.calls, "errors": s.errors, "stale": s.stale, "ageSeconds": s.age_seconds}),
            )
        })
        .collect();
    axum::Json(json!({ "upstreams": ups, "warnings": warnings, "discovery": discovery }))
}
