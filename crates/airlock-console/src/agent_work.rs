//! Run command, the agent's side: an instance's agent fetches its part of a command by
//! long-polling, and reports how it ended.
//!
//! No console login: the agent shows the agent token its last refresh answer carried, and the
//! request must come from the address that refresh came from (which the refresh checked against
//! EC2). A token works only for its own instance: it fetches that instance's parts and reports
//! only on them. Revoking an instance's refresh secrets (termination, `deployment revoke`)
//! deletes its tokens too.

use crate::auth::token_hash;
use crate::error::{ApiError, ApiResult};
use crate::json::Body;
use crate::state::AppState;
use airlock_api::commands::{AgentOutcome, AgentReport, AgentWork, MAX_OUTPUT};
use airlock_api::refresh::AGENT_TOKEN_PREFIX;
use airlock_api::state::CommandStatus;
use airlock_store::{AgentTokenRow, CommandReport};
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use secrecy::{ExposeSecret, SecretString};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// The longest an agent's fetch waits for work.
pub const MAX_WAIT: Duration = Duration::from_secs(20);
/// How often a waiting fetch looks in the store, for work released by another console.
const LOOK_EVERY: Duration = Duration::from_secs(2);
/// Fetches waiting at once on one console, at most; beyond, agents are asked to come back.
const MAX_WAITING: usize = 10_000;
/// The largest report body: both outputs at their limit, every byte escaped in JSON.
pub const MAX_REPORT_BODY: usize = 2 * 6 * MAX_OUTPUT + 4096;

/// Waiting fetches, and the signal that wakes them when this console releases work.
#[derive(Default)]
pub struct Waiters {
    released: Notify,
    waiting: AtomicUsize,
}

impl Waiters {
    /// Wakes every waiting fetch: some instance has work.
    pub fn released(&self) {
        self.released.notify_waiters();
    }
}

/// Counts a waiting fetch for as long as it lives.
struct Waiting(Arc<Waiters>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The instance whose agent makes the request, proven by its agent token and address.
pub struct AgentCaller {
    token: AgentTokenRow,
}

fn refused(why: &str) -> ApiError {
    ApiError::Unauthorized(format!("agent token refused: {why}"))
}

impl FromRequestParts<AppState> for AgentCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let source = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_canonical())
            .ok_or_else(|| ApiError::Internal("no peer address".into()))?;
        let nodes = state.cluster.live_nodes();
        if let Err(wait) = state.agent_requests.admit(source, Instant::now(), nodes) {
            return Err(ApiError::TooManyRequests {
                message: "too many agent requests from this address: try again later".into(),
                retry_after: wait,
            });
        }
        let presented = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .filter(|t| t.starts_with(AGENT_TOKEN_PREFIX) && t.len() <= 128)
            .map(|t| SecretString::from(t.to_owned()))
            .ok_or_else(|| refused("send `Authorization: Bearer alt_…`"))?;
        let token = state
            .store
            .agent_token(&token_hash(presented.expose_secret()))
            .await?
            .ok_or_else(|| refused("unknown, expired or revoked"))?;
        if token.source_ip.parse::<IpAddr>().ok() != Some(source) {
            tracing::warn!(instance = %token.instance_id, source_ip = %source, "an agent token was presented from another address than the instance's");
            return Err(refused("not from the instance's address"));
        }
        Ok(AgentCaller { token })
    }
}

/// `GET /v1/agent/commands/next` query.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
pub struct NextQuery {
    /// Seconds to wait for work (at most 20).
    #[serde(default)]
    pub wait: Option<u64>,
}

/// `GET /v1/agent/commands/next`.
#[utoipa::path(
    get,
    path = "/v1/agent/commands/next",
    summary = "An instance's agent fetches its next command, waiting up to `wait` seconds (agent token, from the instance's address); 204 when there is none",
    params(NextQuery),
    responses(
        (status = 200, description = "Work", body = AgentWork),
        (status = 204, description = "No work"),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 429, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn next(
    State(state): State<AppState>,
    agent: AgentCaller,
    Query(q): Query<NextQuery>,
) -> ApiResult<Response> {
    let wait = Duration::from_secs(q.wait.unwrap_or(0)).min(MAX_WAIT);
    let deadline = tokio::time::Instant::now() + wait;
    let waiters = state.commands.clone();
    if waiters.waiting.fetch_add(1, Ordering::SeqCst) >= MAX_WAITING {
        waiters.waiting.fetch_sub(1, Ordering::SeqCst);
        return Err(ApiError::TooManyRequests {
            message: "too many agents waiting: try again later".into(),
            retry_after: LOOK_EVERY,
        });
    }
    let _counted = Waiting(waiters.clone());
    let instance = &agent.token.instance_id;
    loop {
        // Registered before looking, so a release between the look and the wait still wakes.
        let woken = waiters.released.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        if let Some((command, part)) = state.store.fetch_part(instance).await? {
            tracing::info!(command = %command.id, instance = %part.instance_id, "command fetched by its agent");
            let work = AgentWork {
                command_id: command.id,
                command: command.command,
                timeout_seconds: u32::try_from(command.timeout_seconds).unwrap_or(1),
            };
            return Ok(Json(work).into_response());
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        tokio::select! {
            () = woken => {}
            () = tokio::time::sleep_until(deadline.min(now + LOOK_EVERY)) => {}
        }
    }
}

/// How a report reads as a part's final status.
fn reported(report: &AgentReport) -> CommandStatus {
    match (report.outcome, report.exit_code) {
        (AgentOutcome::Exited, Some(0)) => CommandStatus::Success,
        (AgentOutcome::TimedOut, _) => CommandStatus::TimedOut,
        _ => CommandStatus::Failed,
    }
}

/// `POST /v1/agent/commands/{id}`.
#[utoipa::path(
    post,
    path = "/v1/agent/commands/{id}",
    summary = "An instance's agent reports how its part of a command ended (agent token, from the instance's address); output beyond the limit is cut",
    params(("id" = String, Path)),
    request_body = AgentReport,
    responses(
        (status = 204, description = "Recorded"),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 409, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn report(
    State(state): State<AppState>,
    agent: AgentCaller,
    Path(id): Path<String>,
    Body(report): Body<AgentReport>,
) -> ApiResult<StatusCode> {
    let (output, cut_out) = airlock_command::bounded(report.output.as_bytes(), MAX_OUTPUT);
    let (error_output, cut_err) =
        airlock_command::bounded(report.error_output.as_bytes(), MAX_OUTPUT);
    let record = CommandReport {
        status: reported(&report),
        exit_code: report.exit_code.map(i64::from),
        output,
        error_output,
        truncated: report.truncated || cut_out || cut_err,
    };
    let instance = &agent.token.instance_id;
    if !state.store.report_part(&id, instance, &record).await? {
        return Err(ApiError::Conflict(format!(
            "instance {instance} is not running command {id:?} (never fetched, already reported, or given up)"
        )));
    }
    tracing::info!(command = %id, instance = %instance, status = record.status.as_str(), exit_code = ?record.exit_code, "command reported");
    metrics::counter!("airlock_command_results_total", "status" => record.status.as_str())
        .increment(1);
    crate::commands::advance(&state, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(outcome: AgentOutcome, exit_code: Option<i32>) -> AgentReport {
        AgentReport {
            outcome,
            exit_code,
            output: String::new(),
            error_output: String::new(),
            truncated: false,
        }
    }

    #[test]
    fn only_an_exit_code_of_zero_is_success() {
        assert_eq!(
            reported(&report(AgentOutcome::Exited, Some(0))),
            CommandStatus::Success
        );
        assert_eq!(
            reported(&report(AgentOutcome::Exited, Some(3))),
            CommandStatus::Failed
        );
        // A hostile agent claiming success without an exit code is not believed.
        assert_eq!(
            reported(&report(AgentOutcome::Exited, None)),
            CommandStatus::Failed
        );
        assert_eq!(
            reported(&report(AgentOutcome::TimedOut, Some(0))),
            CommandStatus::TimedOut
        );
        assert_eq!(
            reported(&report(AgentOutcome::NotStarted, None)),
            CommandStatus::Failed
        );
    }
}
