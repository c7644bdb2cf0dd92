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

use crate::accounts;
use crate::audit::Entry;
use crate::auth::Caller;
use crate::authz::authorize;
use crate::deployments::{self, Replacement};
use crate::error::{ApiError, ApiResult};
use crate::json::Body;
use crate::state::AppState;
use crate::validate;
use airlock_access::ops::{self, RollNode};
use airlock_api::instances::InstanceActionRequest;
use airlock_api::rolls::{
    IdentityInterface, IdentityVolume, NodeRoll, NodeStep, RollRequest, RollView,
};
use airlock_api::state::RollState;
use airlock_cloud::{Ec2, Filter, Instance, StateAction};
use airlock_fleet::address::{AddressRequest, MoveAddress};
use airlock_fleet::interface::{AttachNetworkInterface, DetachNetworkInterface, InterfaceRequest};
use airlock_fleet::volume::{AttachVolume, DetachVolume, VolumeRequest};
use airlock_fleet::FleetRequest;
use airlock_roll::{Health, Move, Whereabouts};
use airlock_store::{DeploymentRow, RollRow};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A claim not refreshed for this long is taken for a console that died.
const STALE_MS: i64 = 20_000;
/// How often the console driving a roll refreshes its claim.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// How long an instance may take to stop, start or free an interface or volume.
const SETTLE: Duration = Duration::from_secs(600);
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
    let nodes = identities(ec2.as_ref(), &row).await?;
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
    tokio::spawn(drive(state.clone(), roll.clone()));
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

/// What the roll knows of a node before it starts, for deciding who may roll it.
struct NodeFacts {
    old: Instance,
    interfaces: Vec<(String, Vec<airlock_cloud::Tag>)>,
    volumes: Vec<(String, Vec<airlock_cloud::Tag>)>,
    allocation_id: Option<String>,
}

impl NodeFacts {
    fn as_roll_node<'a>(&'a self, new_tags: &'a [airlock_cloud::Tag]) -> RollNode<'a> {
        RollNode {
            old: &self.old,
            interfaces: &self.interfaces,
            volumes: &self.volumes,
            allocation_id: self.allocation_id.as_deref(),
            new_tags,
        }
    }
}

/// Each running node of the deployment with its identity: secondary interfaces, volumes other
/// than the root, and the Elastic IP. A node not running refuses the roll: it would be taken
/// out of service with nothing to check its replacement against.
async fn identities(ec2: &dyn Ec2, row: &DeploymentRow) -> ApiResult<Vec<(NodeRoll, NodeFacts)>> {
    let mut live = ec2
        .describe_instances(&deployments::live_filters(&row.id), &[])
        .await?;
    if live.is_empty() {
        return Err(ApiError::Conflict(format!(
            "deployment {} has no instance to roll",
            row.id
        )));
    }
    if let Some(other) = live.iter().find(|i| i.state != "running") {
        return Err(ApiError::Conflict(format!(
            "{} is {}: a roll starts from a deployment whose every node runs",
            other.instance_id, other.state
        )));
    }
    live.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
    let mut out = Vec::new();
    for old in live {
        let on_old = [Filter::new("attachment.instance-id", &old.instance_id)];
        let interfaces: Vec<_> = ec2
            .describe_network_interfaces(&on_old, &[])
            .await?
            .into_iter()
            .filter_map(|eni| {
                let index = eni.attachment.as_ref()?.device_index?;
                (index >= 1).then_some((eni, index))
            })
            .collect();
        let volumes: Vec<_> = ec2
            .describe_volumes(&on_old)
            .await?
            .into_iter()
            .filter_map(|v| {
                let device = v
                    .attachments
                    .iter()
                    .find(|a| a.instance_id == old.instance_id)?
                    .device
                    .clone()?;
                (!is_root(&old, &device)).then_some((v, device))
            })
            .collect();
        let address = ec2
            .describe_addresses(&[Filter::new("instance-id", &old.instance_id)])
            .await?
            .into_iter()
            .find(|a| {
                // The primary interface's address; one on a secondary interface moves with it.
                !interfaces.iter().any(|(eni, _)| {
                    a.network_interface_id.as_ref() == Some(&eni.network_interface_id)
                })
            })
            .and_then(|a| a.allocation_id);
        let node = NodeRoll {
            old_instance_id: old.instance_id.clone(),
            new_instance_id: None,
            subnet_id: old.subnet_id.clone(),
            step: NodeStep::Waiting,
            interfaces: interfaces
                .iter()
                .map(|(eni, index)| IdentityInterface {
                    network_interface_id: eni.network_interface_id.clone(),
                    device_index: *index,
                    private_ip: eni.private_ip.clone(),
                })
                .collect(),
            volumes: volumes
                .iter()
                .map(|(v, device)| IdentityVolume {
                    volume_id: v.volume_id.clone(),
                    device: device.clone(),
                })
                .collect(),
            allocation_id: address.clone(),
            error: None,
        };
        let facts = NodeFacts {
            interfaces: interfaces
                .into_iter()
                .map(|(eni, _)| (eni.network_interface_id, eni.tags))
                .collect(),
            volumes: volumes
                .into_iter()
                .map(|(v, _)| (v.volume_id, v.tags))
                .collect(),
            allocation_id: address,
            old,
        };
        out.push((node, facts));
    }
    Ok(out)
}

/// Whether a volume at `device` is the instance's root volume, which stays with it: the device
/// its image names as root, or one of the two names EC2 gives root devices (EC2-compatible
/// servers do not always report the former as the device they attached).
fn is_root(instance: &Instance, device: &str) -> bool {
    instance.root_device_name.as_deref() == Some(device)
        || ["/dev/sda1", "/dev/xvda"].contains(&device)
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
            tokio::spawn(drive(state.clone(), roll));
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
                        tokio::spawn(drive(state.clone(), roll));
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot look for rolls to resume"),
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Drives a roll to its end on this console: batches of nodes, each node step by step, saved
/// after every step.
async fn drive(state: AppState, roll: RollRow) {
    let id = roll.id.clone();
    if let Ok(mut rolling) = state.rolling.lock() {
        if !rolling.insert(id.clone()) {
            return;
        }
    }
    // The claim is refreshed while the roll is driven here, long waits included, so no other
    // console takes it for abandoned; a console that dies stops refreshing it.
    let heartbeat = {
        let (state, id, node) = (
            state.clone(),
            id.clone(),
            state.cluster.node_id().to_owned(),
        );
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(HEARTBEAT).await;
                match state.store.claim_roll(&id, &node, STALE_MS).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(roll = %id, "another console took this roll over");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(roll = %id, error = %e, "cannot refresh the roll's claim")
                    }
                }
            }
        })
    };
    let ended = Driver::new(&state, roll).await.run().await;
    heartbeat.abort();
    if let Err(e) = state.store.release_roll(&id, state.cluster.node_id()).await {
        tracing::warn!(roll = %id, error = %e, "cannot release the roll's claim");
    }
    if let Ok(mut rolling) = state.rolling.lock() {
        rolling.remove(&id);
    }
    match ended {
        Ok(state_now) => tracing::info!(roll = %id, state = state_now.as_str(), "roll ended"),
        Err(e) => tracing::warn!(roll = %id, error = %e, "roll stopped on this console"),
    }
}

/// One roll being driven.
struct Driver {
    state: AppState,
    roll: tokio::sync::Mutex<RollRow>,
    node: String,
    caller: Caller,
    health: Health,
}

impl Driver {
    async fn new(state: &AppState, roll: RollRow) -> Arc<Driver> {
        let health = roll.health.parse().unwrap_or(Health::StatusChecks);
        Arc::new(Driver {
            state: state.clone(),
            node: state.cluster.node_id().to_owned(),
            caller: Caller::acting_for(&roll.created_by),
            roll: tokio::sync::Mutex::new(roll),
            health,
        })
    }
}

/// Where a step leaves its node.
type StepResult = ApiResult<()>;

impl Driver {
    async fn run(self: Arc<Self>) -> ApiResult<RollState> {
        loop {
            let (batch, ids) = {
                let roll = self.roll.lock().await;
                let batch = usize::try_from(roll.batch).unwrap_or(1).max(1);
                let open: Vec<usize> = (0..roll.nodes.len())
                    .filter(|i| {
                        roll.nodes
                            .get(*i)
                            .is_some_and(|n| !airlock_roll::settled(n.step))
                    })
                    .take(batch)
                    .collect();
                (batch, open)
            };
            let _ = batch;
            if ids.is_empty() {
                return self.finish(RollState::Succeeded, None).await;
            }
            let runs = ids.into_iter().map(|i| {
                let me = self.clone();
                tokio::spawn(async move { me.node(i).await })
            });
            for run in runs {
                run.await
                    .map_err(|e| ApiError::Internal(format!("a node's task failed: {e}")))??;
            }
            let roll = self.roll.lock().await;
            if roll.state != RollState::Running {
                // Ended by a node (a failed termination) or by an operator's abort: saved.
                return Ok(roll.state);
            }
            if let Some(node) = roll.nodes.iter().find(|n| n.step == NodeStep::RolledBack) {
                let why = format!(
                    "{} was rolled back: {}",
                    node.old_instance_id,
                    node.error.as_deref().unwrap_or("?")
                );
                drop(roll);
                return self.finish(RollState::Failed, Some(why)).await;
            }
            drop(roll);
            if self.state.store.roll_state(&self.id().await).await? == Some(RollState::Aborted) {
                return Ok(RollState::Aborted);
            }
        }
    }

    async fn id(&self) -> String {
        self.roll.lock().await.id.clone()
    }

    async fn finish(&self, end: RollState, error: Option<String>) -> ApiResult<RollState> {
        let mut roll = self.roll.lock().await;
        roll.state = end;
        roll.error = error;
        roll.updated_at = crate::now();
        if end == RollState::Succeeded {
            let row = self.deployment(&roll.deployment_id).await?;
            deployments::rolled(&self.state, &row, &roll.image_id, &roll.instance_type).await?;
        }
        self.state.store.save_roll(&roll, &self.node).await?;
        Ok(end)
    }

    async fn deployment(&self, id: &str) -> ApiResult<DeploymentRow> {
        self.state
            .store
            .deployment(id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("deployment {id} is gone")))
    }

    /// Takes node `i` through its steps until it is settled or the roll is no longer this
    /// console's (or no longer running).
    async fn node(self: Arc<Self>, i: usize) -> ApiResult<()> {
        loop {
            let Some(node) = self.roll.lock().await.nodes.get(i).cloned() else {
                return Ok(());
            };
            if airlock_roll::settled(node.step) {
                return Ok(());
            }
            let stored = self.state.store.roll_state(&self.id().await).await?;
            let step = match (stored, node.step) {
                (Some(RollState::Running), NodeStep::Waiting) => NodeStep::Launch,
                (Some(RollState::Running), step) => step,
                // Aborted (or failed by another node): a node not started stays as it is, one
                // in flight is rolled back, so nothing is left half-moved or out of service; one
                // whose replacement is healthy finishes.
                (_, NodeStep::Waiting) => return Ok(()),
                (_, step @ (NodeStep::TerminateOld | NodeStep::RollBack)) => step,
                (_, _) => NodeStep::RollBack,
            };
            let done = self.step(i, step).await;
            let mut roll = self.roll.lock().await;
            let roll_id = roll.id.clone();
            let Some(entry) = roll.nodes.get_mut(i) else {
                return Ok(());
            };
            let stuck = match done {
                Ok(()) => {
                    entry.step = airlock_roll::after(step);
                    tracing::info!(roll = %roll_id, node = %entry.old_instance_id, step = ?entry.step, "roll step");
                    None
                }
                Err(e) => {
                    tracing::warn!(roll = %roll_id, node = %entry.old_instance_id, step = ?step, error = %e, "roll step failed");
                    entry.error = Some(format!("{step:?}: {e}"));
                    entry.step = airlock_roll::after_failure(step);
                    // A termination or roll back that failed is not retried in a loop: the
                    // roll stops, and `--resume` tries again.
                    (entry.step == step).then(|| entry.error.clone())
                }
            };
            let is_stuck = stuck.is_some();
            if let Some(error) = stuck {
                roll.state = RollState::Failed;
                roll.error = error;
            } else if self.state.store.roll_state(&roll_id).await? == Some(RollState::Aborted) {
                // An operator's abort, made while the step ran, is kept rather than overwritten.
                roll.state = RollState::Aborted;
                roll.error = Some("aborted".into());
            }
            roll.updated_at = crate::now();
            if !self.state.store.save_roll(&roll, &self.node).await? {
                return Err(ApiError::Conflict(
                    "the roll was taken over by another console".into(),
                ));
            }
            if is_stuck {
                return Ok(());
            }
        }
    }

    async fn step(&self, i: usize, step: NodeStep) -> StepResult {
        let (roll, node) = {
            let roll = self.roll.lock().await;
            let node = roll
                .nodes
                .get(i)
                .cloned()
                .ok_or_else(|| ApiError::Internal("no such node".into()))?;
            (roll.clone(), node)
        };
        let row = self.deployment(&roll.deployment_id).await?;
        let on = Node {
            driver: self,
            row: &row,
            node: &node,
        };
        match step {
            NodeStep::Launch => {
                let launched = on.launch(&roll).await?;
                let mut roll = self.roll.lock().await;
                if let Some(entry) = roll.nodes.get_mut(i) {
                    entry.new_instance_id = Some(launched);
                }
                Ok(())
            }
            NodeStep::StopOld => on.stop_old().await,
            NodeStep::MoveIdentity => on.move_identity(true).await,
            NodeStep::Health => on.healthy(&roll).await,
            NodeStep::TerminateOld => {
                on.instances(StateAction::Terminate, &node.old_instance_id)
                    .await
            }
            NodeStep::RollBack => on.roll_back().await,
            NodeStep::Waiting | NodeStep::Done | NodeStep::RolledBack => Ok(()),
        }
    }
}

/// One node's steps.
struct Node<'a> {
    driver: &'a Driver,
    row: &'a DeploymentRow,
    node: &'a NodeRoll,
}

impl Node<'_> {
    fn state(&self) -> &AppState {
        &self.driver.state
    }

    fn caller(&self) -> &Caller {
        &self.driver.caller
    }

    async fn ec2(&self) -> ApiResult<Arc<dyn Ec2>> {
        let (_, target) = accounts::target(self.state(), &self.row.account).await?;
        Ok(self.state().cloud.ec2(&target).await?)
    }

    fn new_id(&self) -> ApiResult<&str> {
        self.node
            .new_instance_id
            .as_deref()
            .ok_or_else(|| ApiError::Internal("the replacement was never launched".into()))
    }

    /// Launches the replacement (its client token makes a repeated launch return it again) and
    /// waits until it runs.
    async fn launch(&self, roll: &RollRow) -> ApiResult<String> {
        let account = accounts::row(self.state(), &self.row.account).await?;
        let ec2 = self.ec2().await?;
        let mut spec = deployments::stored_spec(self.row)?;
        spec.image_id = roll.image_id.clone();
        spec.instance_type = roll.instance_type.clone();
        spec.subnet_id = self.node.subnet_id.clone();
        spec.availability_zones.clear();
        let checks = deployments::run_checks(self.state(), ec2.as_ref(), &account, &spec).await?;
        authorize(self.state(), self.caller(), checks).await?;
        let mut actor = Entry::for_caller(self.caller(), "ec2:RunInstances", Vec::new());
        actor.detail = Some(format!(
            "roll {} replacing {}",
            roll.id, self.node.old_instance_id
        ));
        let token = format!("{}-{}", roll.id, self.node.old_instance_id);
        let replacement = Replacement {
            image_id: &roll.image_id,
            instance_type: &roll.instance_type,
            subnet_id: self.node.subnet_id.as_deref(),
            token: &token,
        };
        let launched =
            deployments::launch_replacement(self.state(), self.row, &actor, &replacement).await?;
        wait_state(ec2.as_ref(), &launched.instance_id, "running").await?;
        Ok(launched.instance_id)
    }

    async fn instances(&self, act: StateAction, id: &str) -> ApiResult<()> {
        let req = InstanceActionRequest {
            account: self.row.account.clone(),
            instance_ids: vec![id.to_owned()],
        };
        crate::instances::act_as(self.state(), self.caller(), act, &req).await?;
        Ok(())
    }

    async fn stop_old(&self) -> ApiResult<()> {
        let ec2 = self.ec2().await?;
        let old = &self.node.old_instance_id;
        if state_of(ec2.as_ref(), old).await?.as_deref() != Some("stopped") {
            self.instances(StateAction::Stop, old).await?;
        }
        wait_state(ec2.as_ref(), old, "stopped").await
    }

    /// Moves every piece of the node's identity to the replacement (`forward`) or back to the
    /// old instance, each only if it is not already there.
    async fn move_identity(&self, forward: bool) -> ApiResult<()> {
        let to = if forward {
            self.new_id()?.to_owned()
        } else {
            self.node.old_instance_id.clone()
        };
        let ec2 = self.ec2().await?;
        for eni in &self.node.interfaces {
            self.move_interface(ec2.as_ref(), eni, &to).await?;
        }
        for volume in &self.node.volumes {
            self.move_volume(ec2.as_ref(), volume, &to).await?;
        }
        if let Some(allocation) = &self.node.allocation_id {
            let now = ec2
                .describe_addresses(&[Filter::new("allocation-id", allocation)])
                .await?;
            if now.first().and_then(|a| a.instance_id.as_deref()) != Some(to.as_str()) {
                let request = FleetRequest::Address(AddressRequest::Move(MoveAddress {
                    allocation_id: allocation.clone(),
                    to_instance_id: to.clone(),
                }));
                crate::fleet::run_as(self.state(), self.caller(), &self.row.account, &request)
                    .await?;
            }
        }
        Ok(())
    }

    async fn move_interface(
        &self,
        ec2: &dyn Ec2,
        eni: &IdentityInterface,
        to: &str,
    ) -> ApiResult<()> {
        let id = &eni.network_interface_id;
        let deadline = Instant::now() + SETTLE;
        let mut pause = FIRST_PAUSE;
        loop {
            let found = ec2
                .describe_network_interfaces(&[], std::slice::from_ref(id))
                .await?;
            let now = found
                .first()
                .ok_or_else(|| ApiError::Conflict(format!("{id} is gone")))?;
            let attached = now
                .attachment
                .as_ref()
                .filter(|a| !matches!(a.status.as_deref(), Some("detached")));
            let whereabouts = match (attached, now.status.as_deref()) {
                (Some(a), _) if matches!(a.status.as_deref(), Some("detaching")) => {
                    Whereabouts::Busy
                }
                (Some(a), _) => a
                    .instance_id
                    .as_deref()
                    .map_or(Whereabouts::Busy, Whereabouts::On),
                (None, Some("available")) => Whereabouts::Free,
                (None, _) => Whereabouts::Busy,
            };
            let request = match airlock_roll::move_to(whereabouts, to) {
                Move::Nothing => return Ok(()),
                Move::Attach => InterfaceRequest::Attach(AttachNetworkInterface {
                    network_interface_id: id.clone(),
                    instance_id: to.to_owned(),
                    device_index: eni.device_index,
                }),
                Move::DetachThenAttach => InterfaceRequest::Detach(DetachNetworkInterface {
                    network_interface_id: id.clone(),
                    force: false,
                }),
                Move::Wait => {
                    settle_or_fail(deadline, id, &mut pause).await?;
                    continue;
                }
            };
            crate::fleet::run_as(
                self.state(),
                self.caller(),
                &self.row.account,
                &request.into(),
            )
            .await?;
        }
    }

    async fn move_volume(&self, ec2: &dyn Ec2, volume: &IdentityVolume, to: &str) -> ApiResult<()> {
        let id = &volume.volume_id;
        let deadline = Instant::now() + SETTLE;
        let mut pause = FIRST_PAUSE;
        loop {
            let found = ec2
                .describe_volumes(&[Filter::new("volume-id", id)])
                .await?;
            let now = found
                .first()
                .ok_or_else(|| ApiError::Conflict(format!("{id} is gone")))?;
            let whereabouts = match (now.state.as_deref(), now.attachments.first()) {
                (Some("available"), _) => Whereabouts::Free,
                (Some("in-use"), Some(a)) if a.state.as_deref() == Some("attached") => {
                    Whereabouts::On(&a.instance_id)
                }
                _ => Whereabouts::Busy,
            };
            let request = match airlock_roll::move_to(whereabouts, to) {
                Move::Nothing => return Ok(()),
                Move::Attach => VolumeRequest::Attach(AttachVolume {
                    volume_id: id.clone(),
                    instance_id: to.to_owned(),
                    device: volume.device.clone(),
                }),
                Move::DetachThenAttach => VolumeRequest::Detach(DetachVolume {
                    volume_id: id.clone(),
                    force: false,
                }),
                Move::Wait => {
                    settle_or_fail(deadline, id, &mut pause).await?;
                    continue;
                }
            };
            crate::fleet::run_as(
                self.state(),
                self.caller(),
                &self.row.account,
                &request.into(),
            )
            .await?;
        }
    }

    /// Waits for the replacement's health signal, up to the roll's health timeout.
    async fn healthy(&self, roll: &RollRow) -> ApiResult<()> {
        let id = self.new_id()?.to_owned();
        let ec2 = self.ec2().await?;
        let timeout = Duration::from_secs(u64::try_from(roll.health_timeout_seconds).unwrap_or(0));
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.signal(ec2.as_ref(), &id).await {
                Ok(()) => return Ok(()),
                Err(why) => why,
            };
            // An abort while waiting rolls the node back rather than waiting the timeout out.
            if self.state().store.roll_state(&roll.id).await? == Some(RollState::Aborted) {
                return Err(ApiError::Conflict(format!(
                    "the roll was aborted while {id} was not healthy yet: {last}"
                )));
            }
            if Instant::now() >= deadline {
                return Err(ApiError::Conflict(format!(
                    "{id} was not healthy ({}) within {} s: {last}",
                    self.driver.health,
                    timeout.as_secs()
                )));
            }
            tokio::time::sleep(look(self.state())).await;
        }
    }

    async fn signal(&self, ec2: &dyn Ec2, id: &str) -> Result<(), String> {
        match &self.driver.health {
            Health::StatusChecks => {
                let status = ec2
                    .describe_instance_status(&[id.to_owned()])
                    .await
                    .map_err(|e| e.to_string())?;
                let s = status.first().ok_or("no status yet")?;
                let ok = |v: &Option<String>| v.as_deref() == Some("ok");
                if ok(&s.instance_status) && ok(&s.system_status) {
                    Ok(())
                } else {
                    Err(format!(
                        "instance status {}, system status {}",
                        s.instance_status.as_deref().unwrap_or("?"),
                        s.system_status.as_deref().unwrap_or("?")
                    ))
                }
            }
            Health::Agent => match self.state().store.instance_enrolled(id).await {
                Ok(true) => Ok(()),
                Ok(false) => Err("its agent has not refreshed through the console yet".into()),
                Err(e) => Err(e.to_string()),
            },
            Health::Http { port, path } => {
                let found = ec2
                    .describe_instances(&[], &[id.to_owned()])
                    .await
                    .map_err(|e| e.to_string())?;
                let ip = found
                    .first()
                    .and_then(|i| i.private_ip.clone())
                    .ok_or("no private address yet")?;
                let url = format!("http://{ip}:{port}{path}");
                let client = reqwest::Client::builder()
                    .no_proxy()
                    .timeout(Duration::from_secs(3))
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|e| e.to_string())?;
                match client.get(&url).send().await {
                    Ok(r) if r.status().is_success() => Ok(()),
                    Ok(r) => Err(format!("{url} answered {}", r.status())),
                    Err(e) => Err(format!("{url}: {e}")),
                }
            }
        }
    }

    /// Moves the identity back to the old instance, starts it, and terminates the replacement.
    async fn roll_back(&self) -> ApiResult<()> {
        let ec2 = self.ec2().await?;
        let old = &self.node.old_instance_id;
        if self.node.new_instance_id.is_some() {
            self.move_identity(false).await?;
        }
        match state_of(ec2.as_ref(), old).await?.as_deref() {
            Some("running") => {}
            Some("stopping") => {
                wait_state(ec2.as_ref(), old, "stopped").await?;
                self.instances(StateAction::Start, old).await?;
            }
            _ => self.instances(StateAction::Start, old).await?,
        }
        wait_state(ec2.as_ref(), old, "running").await?;
        if let Some(new) = &self.node.new_instance_id {
            if !matches!(
                state_of(ec2.as_ref(), new).await?.as_deref(),
                Some("terminated") | None
            ) {
                self.instances(StateAction::Terminate, new).await?;
            }
        }
        Ok(())
    }
}

fn look(state: &AppState) -> Duration {
    state.config.poll_interval.min(Duration::from_secs(1))
}

/// Waits a little before looking at EC2 again: 50 ms at first (EC2 often settles at once),
/// doubling up to a second, so a long wait costs few calls; an error past `deadline`.
async fn settle_or_fail(deadline: Instant, id: &str, pause: &mut Duration) -> ApiResult<()> {
    if Instant::now() >= deadline {
        return Err(ApiError::Conflict(format!(
            "{id} did not settle in {} s",
            SETTLE.as_secs()
        )));
    }
    tokio::time::sleep(*pause).await;
    *pause = (*pause * 2).min(Duration::from_secs(1));
    Ok(())
}

/// The first pause of [`settle_or_fail`].
const FIRST_PAUSE: Duration = Duration::from_millis(50);

async fn state_of(ec2: &dyn Ec2, id: &str) -> ApiResult<Option<String>> {
    Ok(ec2
        .describe_instances(&[], &[id.to_owned()])
        .await?
        .into_iter()
        .next()
        .map(|i| i.state))
}

async fn wait_state(ec2: &dyn Ec2, id: &str, wanted: &str) -> ApiResult<()> {
    let deadline = Instant::now() + SETTLE;
    let mut pause = FIRST_PAUSE;
    loop {
        let now = state_of(ec2, id).await?;
        if now.as_deref() == Some(wanted) {
            return Ok(());
        }
        if matches!(now.as_deref(), Some("terminated") | None) {
            return Err(ApiError::Conflict(format!(
                "{id} is terminated, not {wanted}"
            )));
        }
        settle_or_fail(deadline, id, &mut pause).await?;
    }
}
