//! The Airlock console: an HTTP JSON API over a vault of AWS credentials, the accounts they
//! belong to, and the deployments launched with them.
//!
//! [`router`] builds the API; [`serve`] opens the store and vault, creates the first user on an
//! empty database, resumes unsettled deployments and listens.

#![warn(missing_docs)]

mod access_keys;
mod accounts;
mod agent_work;
pub mod api;
pub mod audit;
mod auth;
pub mod authz;
pub mod cluster;
mod commands;
mod deployments;
pub mod ec2;
pub mod endpoints;
mod error;
pub mod events;
mod fleet;
pub mod gateway;
mod instance_keys;
mod instances;
mod json;
mod maintenance_windows;
mod openapi;
mod poller;
pub mod queues;
mod refresh;
mod refresh_guard;
mod refresh_retry;
mod rolls;
mod schedules;
mod session;
mod snapshot_policies;
mod snapshots;
mod state;
mod streams;
mod subnets;
mod tags;
mod throttle;
mod trend;
mod users;
mod validate;
pub mod vault;
mod web;

pub use error::{ApiError, ErrorBody, ErrorDetail};
pub use state::{AppState, ConsoleConfig};

use axum::extract::DefaultBodyLimit;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::Router;
use std::sync::{Arc, OnceLock};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

/// The OpenAPI document of this API, served at `/openapi.json`: generated from the handlers
/// the router is built from, serialized once.
pub fn openapi() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| openapi::serialize(api().into_openapi()))
}

/// A fresh id: `prefix`, a dash and `bytes` random bytes in hex (`dep-…`, `run-…`).
pub(crate) fn random_id(prefix: &str, bytes: usize) -> String {
    use rand::RngCore;
    let mut random = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut random);
    format!("{prefix}-{}", hex::encode(random))
}

/// The time now, RFC 3339 in UTC, as the store keeps times.
pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The API's routes, each with its documentation.
fn api() -> OpenApiRouter<AppState> {
    use refresh::MAX_BODY;
    OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(healthz))
        .routes(routes!(cluster::readyz))
        .routes(routes!(cluster::status))
        .routes(routes!(openapi_json))
        .routes(routes!(session::login))
        .routes(routes!(session::logout))
        .routes(routes!(session::whoami))
        .routes(routes!(accounts::list, accounts::add))
        .routes(routes!(accounts::remove))
        .routes(routes!(accounts::verify))
        .routes(routes!(accounts::rotate_key))
        .routes(routes!(deployments::list, deployments::create))
        .routes(routes!(deployments::get))
        .routes(routes!(deployments::scale))
        .routes(routes!(deployments::policy))
        .routes(routes!(rolls::start, rolls::status))
        .routes(routes!(rolls::control))
        .routes(routes!(refresh::revoke))
        .routes(routes!(refresh::refresh).layer(DefaultBodyLimit::max(MAX_BODY)))
        .routes(routes!(instances::list))
        .routes(routes!(trend::get))
        .routes(routes!(subnets::list))
        .routes(routes!(instances::watch))
        .routes(routes!(instances::act))
        .routes(routes!(tags::add))
        .routes(routes!(tags::remove))
        .routes(routes!(access_keys::list, access_keys::create))
        .routes(routes!(access_keys::remove))
        .routes(routes!(access_keys::update))
        .routes(routes!(users::list, users::add))
        .routes(routes!(users::remove))
        .routes(routes!(users::attach))
        .routes(routes!(users::detach))
        .routes(routes!(users::enable_mfa))
        .routes(routes!(users::list_policies))
        .routes(routes!(users::simulate))
        .routes(routes!(
            users::get_policy,
            users::put_policy,
            users::delete_policy
        ))
        .routes(routes!(audit::read::page))
        .routes(routes!(audit::read::verify))
        .routes(routes!(audit::read::head))
        .routes(routes!(events::stream))
        .routes(routes!(gateway::list))
        .routes(routes!(gateway::get, gateway::put, gateway::remove))
        .routes(routes!(gateway::discover))
        .routes(routes!(gateway::upstreams::list))
        .routes(
            routes!(gateway::health::report)
                .layer(DefaultBodyLimit::max(gateway::health::MAX_BODY)),
        )
        .routes(routes!(snapshot_policies::create, snapshot_policies::list))
        .routes(routes!(snapshot_policies::get, snapshot_policies::remove))
        .routes(routes!(snapshot_policies::run_now))
        .routes(routes!(commands::send, commands::list))
        .routes(routes!(commands::get))
        .routes(routes!(
            maintenance_windows::create,
            maintenance_windows::list
        ))
        .routes(routes!(
            maintenance_windows::get,
            maintenance_windows::remove
        ))
        .routes(routes!(maintenance_windows::executions))
        .routes(routes!(maintenance_windows::run_now))
        .routes(routes!(agent_work::next))
        .routes(
            routes!(agent_work::report).layer(DefaultBodyLimit::max(agent_work::MAX_REPORT_BODY)),
        )
        .merge(fleet::routes())
        .merge(web::api())
}

/// Liveness.
#[utoipa::path(get, path = "/healthz", summary = "Liveness", responses((status = 200, description = "ok")))]
async fn healthz() -> &'static str {
    "ok\n"
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    summary = "This document",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json"))
)]
async fn openapi_json() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], openapi())
}

/// The API's routes, the web console's pages, and the answer to any other path.
pub fn router(state: AppState) -> Router {
    // The EC2 and STS endpoints speak AWS's Query protocol (SigV4, XML), not this API's JSON:
    // they are documented in docs/ec2-endpoint.md, not in the OpenAPI document.
    ec2::routes(Router::from(api()))
        .merge(web::pages())
        .fallback(|| async { ApiError::NotFound("no such API path: see /openapi.json".into()) })
        .with_state(state)
        .layer(axum::middleware::from_fn(web::security_headers))
}

/// Builds the shared state and makes sure the first user exists.
///
/// Returns the state and, on a first start without `admin_password`, the generated password of
/// `admin` (for the caller to show once).
pub async fn prepare(
    store: airlock_store::Store,
    vault: vault::Vault,
    cloud: Arc<dyn airlock_cloud::Cloud>,
    config: ConsoleConfig,
    admin_password: Option<secrecy::SecretString>,
) -> Result<(AppState, Option<secrecy::SecretString>), ApiError> {
    let (audit, key_origin) = audit::open_chain(&store, &vault).await?;
    let cluster = cluster::Cluster::new(&config.public_url, &config.hostname);
    let state = AppState {
        store,
        vault: Arc::new(vault),
        cloud,
        config: Arc::new(config),
        watching: Default::default(),
        audit: Arc::new(audit),
        policies: Default::default(),
        passwords: Default::default(),
        logins: Default::default(),
        streams: Default::default(),
        refreshes: Default::default(),
        agent_requests: Default::default(),
        commands: Default::default(),
        rolling: Default::default(),
        pollers: Default::default(),
        lookups: Default::default(),
        snapshots: Default::default(),
        tags: Default::default(),
        events: Default::default(),
        cluster: Arc::new(cluster),
    };
    audit::record_key_origin(&state, key_origin).await;
    let generated = session::bootstrap_admin(&state, admin_password).await?;
    Ok((state, generated))
}

/// Serves the API on `listener` until `shutdown` resolves, then drains: readiness fails, leases
/// are given up (another node takes their work at once), event streams end, no connection is
/// accepted, and requests in flight get up to `drain_timeout` to finish.
///
/// Before listening, the node heartbeats once and takes the leases no other node holds; the
/// holder of the deployments lease resumes what was left unsettled.
pub async fn serve(
    state: AppState,
    listener: tokio::net::TcpListener,
    options: airlock_listen::Options,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    drain_timeout: std::time::Duration,
) -> std::io::Result<()> {
    cluster::beat(&state).await;
    tokio::spawn(cluster::run(state.clone()));
    tokio::spawn(deployments::keep_watching(state.clone()));
    tokio::spawn(schedules::keep_scheduling(state.clone()));
    tokio::spawn(commands::keep_advancing(state.clone()));
    tokio::spawn(rolls::keep_resuming(state.clone()));
    tokio::spawn(events::join_nodes(state.clone()));
    tokio::spawn(snapshots::forget_on_change(
        state.snapshots.clone(),
        state.events.subscribe(),
    ));
    if let Some(max_age) = state.config.rotate_keys_after {
        tokio::spawn(accounts::rotation_schedule(state.clone(), max_age));
    }
    let draining = state.clone();
    let drain = async move {
        shutdown.await;
        tracing::info!(node = draining.cluster.node_id(), "draining");
        draining.cluster.drain();
    };
    let served = airlock_listen::serve_until(
        router(state.clone()),
        listener,
        options,
        drain,
        drain_timeout,
    )
    .await;
    cluster::stopped(&state).await;
    served
}
