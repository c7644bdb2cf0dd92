//! Driving a roll on this console: batches of nodes, each node step by step through EC2 as the
//! roller, saved after every step, the claim kept alive while it runs.

use super::STALE_MS;
use crate::accounts;
use crate::audit::Entry;
use crate::auth::Caller;
use crate::authz::authorize;
use crate::deployments::{self, Replacement};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use airlock_api::instances::InstanceActionRequest;
use airlock_api::rolls::{IdentityInterface, IdentityVolume, NodeRoll, NodeStep};
use airlock_api::state::RollState;
use airlock_cloud::{Ec2, Filter, StateAction};
use airlock_fleet::address::{AddressRequest, MoveAddress};
use airlock_fleet::interface::{AttachNetworkInterface, DetachNetworkInterface, InterfaceRequest};
use airlock_fleet::volume::{AttachVolume, DetachVolume, VolumeRequest};
use airlock_fleet::FleetRequest;
use airlock_roll::{Health, Move, Whereabouts};
use airlock_store::{DeploymentRow, RollRow};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the console driving a roll refreshes its claim.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// How long an instance may take to stop, start or free an interface or volume.
const SETTLE: Duration = Duration::from_secs(600);

/// Drives a roll to its end on this console: batches of nodes, each node step by step, saved
/// after every step.
pub(super) async fn drive(state: AppState, roll: RollRow) {
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
    /// The roll's id (it never changes; the rest of the row does).
    id: String,
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
            id: roll.id.clone(),
            node: state.cluster.node_id().to_owned(),
            caller: Caller::acting_for(&roll.created_by),
            roll: tokio::sync::Mutex::new(roll),
            health,
        })
    }
}

impl Driver {
    async fn run(self: Arc<Self>) -> ApiResult<RollState> {
        loop {
            let ids: Vec<usize> = {
                let roll = self.roll.lock().await;
                let batch = usize::try_from(roll.batch).unwrap_or(1).max(1);
                (0..roll.nodes.len())
                    .filter(|i| {
                        roll.nodes
                            .get(*i)
                            .is_some_and(|n| !airlock_roll::settled(n.step))
                    })
                    .take(batch)
                    .collect()
            };
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
            if self.state.store.roll_state(&self.id).await? == Some(RollState::Aborted) {
                return Ok(RollState::Aborted);
            }
        }
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
            let stored = self.state.store.roll_state(&self.id).await?;
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
            let Some(entry) = roll.nodes.get_mut(i) else {
                return Ok(());
            };
            let stuck = match done {
                Ok(()) => {
                    entry.step = airlock_roll::after(step);
                    tracing::info!(roll = %self.id, node = %entry.old_instance_id, step = ?entry.step, "roll step");
                    None
                }
                Err(e) => {
                    tracing::warn!(roll = %self.id, node = %entry.old_instance_id, step = ?step, error = %e, "roll step failed");
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
            } else if self.state.store.roll_state(&self.id).await? == Some(RollState::Aborted) {
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

    async fn step(&self, i: usize, step: NodeStep) -> ApiResult<()> {
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
