//! The Airlock console: an HTTP JSON API over a vault of AWS credentials, the accounts they
//! belong to, and the deployments launched with them.
//!
//! [`router`] builds the API; [`serve`] opens the store and vault, creates the first user on an
//! empty database, resumes unsettled deployments and listens.

#![warn(missing_docs)]

mod access_keys;
mod accounts;
pub mod api;
pub mod audit;
mod auth;
pub mod authz;
mod deployments;
pub mod ec2;
pub mod endpoints;
mod error;
pub mod events;
mod fleet;
pub mod gateway;
mod instances;
mod json;
mod poller;
mod refresh;
mod refresh_guard;
mod refresh_retry;
mod session;
mod state;
mod streams;
mod tags;
mod throttle;
mod users;
mod validate;
pub mod vault;
mod web;

pub use error::{ApiError, ErrorBody, ErrorDetail};
pub use state::{AppState, ConsoleConfig};

use axum::routing::{delete, get, post, put};
use axum::Router;
use std::sync::Arc;

/// The OpenAPI document of this API, served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// The time now, RFC 3339 in UTC, as the store keeps times.
pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The API's routes.
pub fn router(state: AppState) -> Router {
    ec2::routes(fleet::routes(Router::new()))
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/openapi.json",
            get(|| async {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    OPENAPI,
                )
            }),
        )
        .route("/v1/login", post(session::login))
        .route("/v1/logout", post(session::logout))
        .route("/v1/whoami", get(session::whoami))
        .route("/v1/accounts", get(accounts::list).post(accounts::add))
        .route("/v1/accounts/{name}", delete(accounts::remove))
        .route("/v1/accounts/{name}/verify", post(accounts::verify))
        .route("/v1/accounts/{name}/rotate-key", post(accounts::rotate_key))
        .route(
            "/v1/deployments",
            get(deployments::list).post(deployments::create),
        )
        .route("/v1/deployments/{id}", get(deployments::get))
        .route("/v1/deployments/{id}/scale", post(deployments::scale))
        .route("/v1/deployments/{id}/policy", get(deployments::policy))
        .route("/v1/deployments/{id}/revoke", post(refresh::revoke))
        .route(
            "/v1/refresh",
            post(refresh::refresh).layer(axum::extract::DefaultBodyLimit::max(refresh::MAX_BODY)),
        )
        .route("/v1/instances", get(instances::list))
        .route("/v1/instances/watch", get(instances::watch))
        .route("/v1/instances/{action}", post(instances::act))
        .route("/v1/tags", post(tags::add))
        .route("/v1/tags/remove", post(tags::remove))
        .route(
            "/v1/access-keys",
            get(access_keys::list).post(access_keys::create),
        )
        .route("/v1/access-keys/{id}", delete(access_keys::remove))
        .route("/v1/access-keys/{id}/status", put(access_keys::update))
        .route("/v1/users", get(users::list).post(users::add))
        .route("/v1/users/{name}", delete(users::remove))
        .route("/v1/users/{name}/policies", post(users::attach))
        .route("/v1/users/{name}/policies/{policy}", delete(users::detach))
        .route("/v1/users/{name}/mfa", post(users::enable_mfa))
        .route("/v1/policies", get(users::list_policies))
        .route("/v1/policies/simulate", post(users::simulate))
        .route(
            "/v1/policies/{name}",
            get(users::get_policy)
                .put(users::put_policy)
                .delete(users::delete_policy),
        )
        .route("/v1/audit", get(audit::read::page))
        .route("/v1/audit/verify", get(audit::read::verify))
        .route("/v1/audit/head", get(audit::read::head))
        .route("/v1/events", get(events::stream))
        .route("/v1/gateway/configs", get(gateway::list))
        .route(
            "/v1/gateway/configs/{name}",
            get(gateway::get).put(gateway::put).delete(gateway::remove),
        )
        .route("/v1/gateway/discover", post(gateway::discover))
        .merge(web::router())
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
        recent_exchanges: Default::default(),
        pollers: Default::default(),
        totp_steps: Default::default(),
        tags: Default::default(),
        events: Default::default(),
    };
    audit::record_key_origin(&state, key_origin).await;
    let generated = session::bootstrap_admin(&state, admin_password).await?;
    Ok((state, generated))
}

/// Serves the API on `listener` until the process ends, after resuming unsettled deployments.
pub async fn serve(
    state: AppState,
    listener: tokio::net::TcpListener,
    options: airlock_listen::Options,
) -> std::io::Result<()> {
    if let Some(max_age) = state.config.rotate_keys_after {
        tokio::spawn(accounts::rotation_schedule(state.clone(), max_age));
    }
    match deployments::resume_all(&state).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(deployments = n, "resuming unsettled deployments"),
        Err(e) => tracing::warn!(error = %e, "cannot resume unsettled deployments"),
    }
    airlock_listen::serve(router(state.clone()), listener, options).await
}
