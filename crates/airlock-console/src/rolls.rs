//! Rolling replacement of a deployment's nodes, keeping each node's identity: for each node in
//! turn, a replacement of the new image is launched in its subnet, the old instance stopped, its
//! secondary interfaces (same device index, same address), data volumes (same device name) and
//! Elastic IP moved over, the replacement's health awaited, and the old instance terminated.
//! A node that fails before that is rolled back (its identity moved back, the old instance
//! started again, the replacement terminated) and the roll stops.
//!
//! Who may roll is decided before anything changes, for every call the roll may make on every
//! node ([`airlock_access::ops::roll_node`]); each call is then made through the paths a user's
//! request takes ([`crate::fleet::run_as`], [`crate::instances::act_as`]), so the authorization
//! core decides it again with the roller's current permissions, and the audit log records it.
//!
//! The roll is a state machine persisted after every step (the rules are in `airlock-roll`);
//! every step looks at EC2 before it acts, so a console that takes a roll over after a crash
//! repeats at most the step it was in and moves nothing twice.

mod drive;
mod identity;

use crate::accounts;
use crate::auth::Caller;
use crate::authz::authorize;
use crate::deployments;
use crate::error::{ApiError, ApiResult};
use crate::json::Body;
use crate::state::AppState;
use crate::validate;
use airlock_access::ops;
use airlock_api::rolls::{NodeStep, RollRequest, RollView};
use airlock_api::state::RollState;
use airlock_roll::Health;
use airlock_store::RollRow;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use std::time::Duration;

/// A claim not refreshed for this long is taken for a console that died.
const STALE_MS: i64 = 20_000;
/// The default health timeout, and the longest.
const DEFAULT_HEALTH_TIMEOUT: u32 = 600;
const MAX_HEALTH_TIMEOUT: u32 = 86_400;
/// The most nodes replaced at once.
const MAX_BATCH: u32 = 100;

/// `POST /v1/deployments/{id}/roll`.
#[utoipa::path(
    post,
    path = "/v1/deployments/{id}/roll",
    summary = "Replace the deployment's nodes with instances of a new image, a batch at a time, each taking over its node's interfaces, volumes and Elastic IP (airlock:RollDeployment, and every EC2 call of the roll on every node, decided before anything changes)",
    params(("id" = String, Path)),
    request_body = RollRequest,
    responses(
        (status = 202, description = "Started", body = RollView),
        (status = 200, description = "The plan (dry run)", body = RollView),
        (status = 400, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
        (status = 404, description = "Error", body = airlock_api::ErrorBody),
        (status = 409, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn start(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(req): Body<RollRequest>,
) -> ApiResult<(StatusCode, Json<RollView>)> {
    let health = validate_request(&req)?;
    let row = deployments::find_for(&state, &caller, "airlock:RollDeployment", &id).await?;
    let spec = deployments::stored_spec(&row)?;
    let instance_type = req
        .instance_type
        .clone()
        .unwrap_or(spec.instance_type.clone());
    if health == Health::Agent && !spec.credentials.refreshes() {
        return Err(ApiError::field(
            "health",
            "agent health needs a deployment whose agents refresh through the console (scoped, bootstrap or proxy credentials)",
        ));
    }
    let (account, target) = accounts::target(&state, &row.account).await?;
    let ec2 = state.cloud.ec2(&target).await?;
    let nodes = identity::identities(ec2.as_ref(), &row).await?;
    // Every call of the roll, on every node, decided before anything changes.
    let scope = accounts::scope_of(&account);
    let mut checks = vec![ops::use_account(&account.name)];
    let mut new_spec = spec.clone();
    new_spec.image_id = req.image_id.clone();
    new_spec.instance_type = instance_type.clone();
    new_spec.availability_zones.clear();
    for (node, facts) in &nodes {
        new_spec.subnet_id = node.subnet_id.clone();
        checks.extend(deployments::run_checks(&state, ec2.as_ref(), &account, &new_spec).await?);
        checks.extend(ops::roll_node(&scope, &facts.as_roll_node(&spec.tags)));
    }
    authorize(&state, &caller, checks).await?;
    let now = crate::now();
    let mut roll = RollRow {
        id: crate::random_id("roll", 8),
        deployment_id: row.id.clone(),
        image_id: req.image_id.clone(),
        instance_type,
        batch: i64::from(req.batch.unwrap_or(1)),
        health: health.to_string(),
        health_timeout_seconds: i64::from(
            req.health_timeout_seconds.unwrap_or(DEFAULT_HEALTH_TIMEOUT),
        ),
        state: RollState::Running,
        error: None,
        nodes: nodes.into_iter().map(|(node, _)| node).collect(),
        created_by: caller.user.clone(),
        created_at: now.clone(),
        updated_at: now,
    };
    if req.dry_run {
        roll.id = "dry-run".into();
        return Ok((StatusCode::OK, Json(view(roll))));
    }
    let node = state.cluster.node_id().to_owned();
    state.store.insert_roll(&roll, &node).await?;
    tracing::info!(roll = %roll.id, deployment = %row.id, user = %caller.user, image = %roll.image_id, nodes = roll.nodes.len(), "roll started");
    tokio::spawn(drive::drive(state.clone(), roll.clone()));
    Ok((StatusCode::ACCEPTED, Json(view(roll))))
}

fn validate_request(req: &RollRequest) -> ApiResult<Health> {
    validate::ec2_id("image_id", &req.image_id, "ami-")?;
    if let Some(t) = &req.instance_type {
        deployments::validate_instance_type(t)?;
    }
    if req.batch.is_some_and(|b| !(1..=MAX_BATCH).contains(&b)) {
        return Err(ApiError::field(
            "batch",
            format!("from 1 to {MAX_BATCH} nodes at once"),
        ));
    }
    if req
        .health_timeout_seconds
        .is_some_and(|t| !(1..=MAX_HEALTH_TIMEOUT).contains(&t))
    {
        return Err(ApiError::field(
            "health_timeout_seconds",
            format!("from 1 to {MAX_HEALTH_TIMEOUT} seconds"),
        ));
    }
    req.health
        .as_deref()
        .unwrap_or("status-checks")
        .parse()
        .map_err(|e: airlock_roll::BadHealth| ApiError::field("health", e.to_string()))
}
fn view(row: RollRow) -> RollView {
    RollView {
        id: row.id,
        deployment_id: row.deployment_id,
        image_id: row.image_id,
        instance_type: row.instance_type,
        batch: u32::try_from(row.batch).unwrap_or(1),
        health: row.health,
        health_timeout_seconds: u32::try_from(row.health_timeout_seconds).unwrap_or(0),
        state: row.state,
        error: row.error,
        created_by: row.created_by,
        created_at: row.created_at,
        updated_at: row.updated_at,
        nodes: row.nodes,
    }
}

/// `GET /v1/deployments/{id}/roll`.
#[utoipa::path(
    get,
    path = "/v1/deployments/{id}/roll",
    summary = "The deployment's latest roll: each node's step, identity and error (airlock:GetDeployment)",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The roll", body = RollView),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
        (status = 404, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn status(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<RollView>> {
    deployments::find_for(&state, &caller, "airlock:GetDeployment", &id).await?;
    let roll = latest(&state, &id).await?;
    Ok(Json(view(roll)))
}

async fn latest(state: &AppState, id: &str) -> ApiResult<RollRow> {
    state
        .store
        .latest_roll(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("deployment {id} was never rolled")))
}

/// `POST /v1/deployments/{id}/roll/{action}` (`resume` or `abort`).
#[utoipa::path(
    post,
    path = "/v1/deployments/{id}/roll/{action}",
    summary = "Resume a failed roll from where it stopped, or abort a running one after its current step (airlock:RollDeployment)",
    params(("id" = String, Path), ("action" = String, Path)),
    responses(
        (status = 200, description = "The roll", body = RollView),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
        (status = 404, description = "Error", body = airlock_api::ErrorBody),
        (status = 409, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn control(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, action)): Path<(String, String)>,
) -> ApiResult<Json<RollView>> {
    deployments::find_for(&state, &caller, "airlock:RollDeployment", &id).await?;
    let mut roll = latest(&state, &id).await?;
    match (action.as_str(), roll.state) {
        ("abort", RollState::Running) => {
            state
                .store
                .set_roll_state(&roll.id, RollState::Aborted, Some(&format!("aborted by {}", caller.user)), &crate::now())
                .await?;
        }
        ("resume", RollState::Failed | RollState::Aborted) => {
            // The node that stopped it starts over: its old instance serves again.
            for node in &mut roll.nodes {
                if node.step == NodeStep::RolledBack {
                    node.step = NodeStep::Waiting;
                    node.new_instance_id = None;
                    node.error = None;
                }
            }
            roll.state = RollState::Running;
            roll.error = None;
            roll.updated_at = crate::now();
            let node = state.cluster.node_id().to_owned();
            state.store.set_roll_state(&roll.id, RollState::Running, None, &roll.updated_at).await?;
            if !state.store.claim_roll(&roll.id, &node, STALE_MS).await? || !state.store.save_roll(&roll, &node).await? {
                return Err(ApiError::Conflict("another console drives this roll".into()));
            }
            tokio::spawn(drive::drive(state.clone(), roll));
        }
        ("abort" | "resume", now) => {
            return Err(ApiError::Conflict(format!(
                "the roll is {}: only a running roll can be aborted, and only a failed or aborted one resumed",
                now.as_str()
            )))
        }
        (other, _) => {
            return Err(ApiError::NotFound(format!(
                "unknown roll action {other:?}: use resume or abort"
            )))
        }
    }
    tracing::info!(deployment = %id, user = %caller.user, action, "roll controlled");
    Ok(Json(view(latest(&state, &id).await?)))
}

/// While this node holds the deployments lease, takes over rolls whose console stopped.
pub async fn keep_resuming(state: AppState) {
    loop {
        state
            .cluster
            .gained(crate::cluster::Lease::Deployments)
            .await;
        let node = state.cluster.node_id().to_owned();
        match state.store.claimable_rolls(&node, STALE_MS).await {
            Ok(rolls) => {
                for roll in rolls {
                    let mine = state
                        .rolling
                        .lock()
                        .map(|r| r.contains(&roll.id))
                        .unwrap_or(true);
                    if mine {
                        continue;
                    }
                    if let Ok(true) = state.store.claim_roll(&roll.id, &node, STALE_MS).await {
                        tracing::warn!(roll = %roll.id, deployment = %roll.deployment_id, "resuming a roll its console left");
                        tokio::spawn(drive::drive(state.clone(), roll));
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot look for rolls to resume"),
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
