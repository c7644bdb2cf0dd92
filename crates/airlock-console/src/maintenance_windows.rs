//! Maintenance windows: when the schedule opens a window, its tasks (EBS snapshots of the
//! targets' volumes, a command, a reboot) run in order on the running instances its tag
//! selects, until the cutoff, the way Systems Manager's maintenance windows patch a `Patch
//! Group`.
//!
//! Every task acts through the same paths a user's request takes ([`crate::commands::send_as`],
//! [`crate::instances::act_as`], [`crate::fleet::run_as`]) as the window's creator
//! ([`Caller::acting_for`]), so it is decided by the authorization core with their permissions as
//! they are when the window opens: a window can never do what its owner could not do by hand.
//! An execution records each task's result per instance; a command's output stays behind
//! `airlock:ReadCommandOutput` (`airlock command show`), never copied into the history.

use crate::accounts;
use crate::auth::Caller;
use crate::authz::{authorize, authorize_one, console_arn};
use crate::error::{ApiError, ApiResult};
use crate::json::Body;
use crate::schedules::Scheduled;
use crate::state::AppState;
use crate::validate;
use airlock_access::ops;
use airlock_api::commands::SendCommandRequest;
use airlock_api::instances::InstanceActionRequest;
use airlock_api::maintenance_windows::{
    CreateMaintenanceWindowRequest, ExecutionList, ExecutionView, MaintenanceWindowList,
    MaintenanceWindowView, TaskExecution, TaskInstanceResult, WindowTask,
};
use airlock_api::state::{CommandStatus, ExecutionState, TaskState};
use airlock_cloud::{Filter, StateAction, Tag};
use airlock_command::Limit;
use airlock_fleet::snapshot::{CreateSnapshot, SnapshotRequest};
use airlock_fleet::FleetRequest;
use airlock_schedule::Schedule;
use airlock_store::{ExecutionRow, MaintenanceWindowRow};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// The tag on every snapshot a window takes, with the window's name.
pub const WINDOW_TAG: &str = "airlock:maintenance-window";
/// A window stays open from one hour to a day, as in Systems Manager.
const MIN_DURATION: u32 = 3600;
const MAX_DURATION: u32 = 86_400;
/// Tasks per window, at most.
const MAX_TASKS: usize = 10;
/// Executions shown.
const EXECUTIONS_SHOWN: i64 = 20;
/// How often a command task looks whether its command finished.
const COMMAND_LOOK: Duration = Duration::from_secs(1);

fn window_arn(name: &str) -> String {
    console_arn("maintenance-window", name)
}

fn seconds(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn validate_request(req: &CreateMaintenanceWindowRequest) -> ApiResult<()> {
    validate::name("name", &req.name)?;
    validate::tag_target("target", &req.target)?;
    req.schedule
        .parse::<Schedule>()
        .map_err(|e| ApiError::field("schedule", e.to_string()))?;
    if !(MIN_DURATION..=MAX_DURATION).contains(&req.duration_seconds) {
        return Err(ApiError::field(
            "duration_seconds",
            "a window stays open from 1 to 24 hours (3600 to 86400 seconds)",
        ));
    }
    if req.cutoff_seconds >= req.duration_seconds {
        return Err(ApiError::field(
            "cutoff_seconds",
            "the cutoff must be shorter than the window, or no task could ever start",
        ));
    }
    if req.tasks.is_empty() || req.tasks.len() > MAX_TASKS {
        return Err(ApiError::field(
            "tasks",
            format!("give 1 to {MAX_TASKS} tasks"),
        ));
    }
    for (field, text, default) in [
        ("max_concurrency", &req.max_concurrency, "1"),
        ("max_errors", &req.max_errors, "0"),
    ] {
        text.as_deref()
            .unwrap_or(default)
            .parse::<Limit>()
            .map_err(|e| ApiError::field(field, e.to_string()))?;
    }
    for task in &req.tasks {
        if let WindowTask::Command {
            command,
            timeout_seconds,
        } = task
        {
            crate::commands::validate_request(&command_request(
                &req.account,
                &req.target,
                command,
                *timeout_seconds,
            ))?;
        }
    }
    Ok(())
}

/// The command a window's command task sends (its targets narrowed to the window's instances
/// when it runs).
fn command_request(
    account: &str,
    target: &str,
    command: &[String],
    timeout_seconds: u32,
) -> SendCommandRequest {
    SendCommandRequest {
        account: account.to_owned(),
        targets: vec![target.to_owned()],
        instance_ids: Vec::new(),
        command: command.to_vec(),
        timeout_seconds,
        max_concurrency: None,
        max_errors: None,
    }
}

fn scheduled(row: &MaintenanceWindowRow) -> Scheduled<'_> {
    Scheduled {
        schedule: &row.schedule,
        last_scheduled_at: row.last_scheduled_at.as_deref(),
        created_at: &row.created_at,
    }
}

fn view(row: MaintenanceWindowRow) -> MaintenanceWindowView {
    MaintenanceWindowView {
        next_run_at: scheduled(&row).next_run_at(),
        name: row.name,
        account: row.account,
        target: row.target,
        schedule: row.schedule,
        duration_seconds: seconds(row.duration_seconds),
        cutoff_seconds: seconds(row.cutoff_seconds),
        tasks: row.tasks,
        max_concurrency: row.max_concurrency,
        max_errors: row.max_errors,
        created_by: row.created_by,
        created_at: row.created_at,
        last_scheduled_at: row.last_scheduled_at,
    }
}

fn execution_view(run: ExecutionRow) -> ExecutionView {
    ExecutionView {
        id: run.id,
        window: run.window,
        trigger: run.trigger,
        state: run.state,
        started_at: run.started_at,
        cutoff_at: run.cutoff_at,
        ends_at: run.ends_at,
        finished_at: run.finished_at,
        instance_ids: run.instance_ids,
        tasks: run.tasks,
    }
}

async fn stored(state: &AppState, name: &str) -> ApiResult<MaintenanceWindowRow> {
    state
        .store
        .maintenance_window(name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no maintenance window {name:?}")))
}

/// `POST /v1/maintenance-windows`.
#[utoipa::path(
    post,
    path = "/v1/maintenance-windows",
    summary = "Create a maintenance window (airlock:CreateMaintenanceWindow on the window, airlock:UseAccount on its account); its tasks act with the creator's permissions",
    request_body = CreateMaintenanceWindowRequest,
    responses(
        (status = 201, description = "Created", body = MaintenanceWindowView),
        (status = 400, description = "Error", body = airlock_api::ErrorBody),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
        (status = 409, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Body(req): Body<CreateMaintenanceWindowRequest>,
) -> ApiResult<(StatusCode, Json<MaintenanceWindowView>)> {
    validate_request(&req)?;
    let checks = vec![
        ops::console(
            "airlock:CreateMaintenanceWindow",
            "maintenance-window",
            &req.name,
        ),
        ops::use_account(&req.account),
    ];
    authorize(&state, &caller, checks).await?;
    accounts::row_for_request(&state, &req.account).await?;
    let row = MaintenanceWindowRow {
        name: req.name.clone(),
        account: req.account.clone(),
        target: req.target.clone(),
        schedule: req.schedule.trim().to_owned(),
        duration_seconds: i64::from(req.duration_seconds),
        cutoff_seconds: i64::from(req.cutoff_seconds),
        max_concurrency: req.max_concurrency.clone().unwrap_or_else(|| "1".into()),
        max_errors: req.max_errors.clone().unwrap_or_else(|| "0".into()),
        tasks: req.tasks.clone(),
        created_by: caller.user.clone(),
        created_at: crate::now(),
        last_scheduled_at: None,
    };
    state.store.insert_maintenance_window(&row).await?;
    tracing::info!(window = %row.name, user = %caller.user, account = %row.account, target = %row.target, schedule = %row.schedule, "maintenance window created");
    Ok((StatusCode::CREATED, Json(view(row))))
}

/// `GET /v1/maintenance-windows`.
#[utoipa::path(
    get,
    path = "/v1/maintenance-windows",
    summary = "Every maintenance window (airlock:ListMaintenanceWindows)",
    responses(
        (status = 200, description = "The windows", body = MaintenanceWindowList),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<MaintenanceWindowList>> {
    authorize_one(
        &state,
        &caller,
        "airlock:ListMaintenanceWindows",
        &window_arn("*"),
    )
    .await?;
    let windows = state
        .store
        .maintenance_windows()
        .await?
        .into_iter()
        .map(view)
        .collect();
    Ok(Json(MaintenanceWindowList { windows }))
}

/// `GET /v1/maintenance-windows/{name}`.
#[utoipa::path(
    get,
    path = "/v1/maintenance-windows/{name}",
    summary = "A maintenance window (airlock:GetMaintenanceWindow)",
    params(("name" = String, Path)),
    responses(
        (status = 200, description = "The window", body = MaintenanceWindowView),
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
) -> ApiResult<Json<MaintenanceWindowView>> {
    authorize_one(
        &state,
        &caller,
        "airlock:GetMaintenanceWindow",
        &window_arn(&name),
    )
    .await?;
    Ok(Json(view(stored(&state, &name).await?)))
}

/// `DELETE /v1/maintenance-windows/{name}`.
#[utoipa::path(
    delete,
    path = "/v1/maintenance-windows/{name}",
    summary = "Delete a maintenance window and its history (airlock:DeleteMaintenanceWindow)",
    params(("name" = String, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
        (status = 404, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    authorize_one(
        &state,
        &caller,
        "airlock:DeleteMaintenanceWindow",
        &window_arn(&name),
    )
    .await?;
    if !state.store.delete_maintenance_window(&name).await? {
        return Err(ApiError::NotFound(format!(
            "no maintenance window {name:?}"
        )));
    }
    tracing::info!(window = %name, user = %caller.user, "maintenance window deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/maintenance-windows/{name}/executions`.
#[utoipa::path(
    get,
    path = "/v1/maintenance-windows/{name}/executions",
    summary = "A window's latest executions with each task's result per instance, newest first (airlock:GetMaintenanceWindow)",
    params(("name" = String, Path)),
    responses(
        (status = 200, description = "The executions", body = ExecutionList),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
        (status = 404, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn executions(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<ExecutionList>> {
    authorize_one(
        &state,
        &caller,
        "airlock:GetMaintenanceWindow",
        &window_arn(&name),
    )
    .await?;
    stored(&state, &name).await?;
    let executions = state
        .store
        .executions(&name, EXECUTIONS_SHOWN)
        .await?
        .into_iter()
        .map(execution_view)
        .collect();
    Ok(Json(ExecutionList { executions }))
}

/// `POST /v1/maintenance-windows/{name}/run`.
#[utoipa::path(
    post,
    path = "/v1/maintenance-windows/{name}/run",
    summary = "Open a maintenance window now, for its duration, with its creator's permissions (airlock:RunMaintenanceWindow); answered once it opened",
    params(("name" = String, Path)),
    responses(
        (status = 202, description = "Opened", body = ExecutionView),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
        (status = 404, description = "Error", body = airlock_api::ErrorBody),
        (status = 409, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn run_now(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<(StatusCode, Json<ExecutionView>)> {
    authorize_one(
        &state,
        &caller,
        "airlock:RunMaintenanceWindow",
        &window_arn(&name),
    )
    .await?;
    let row = stored(&state, &name).await?;
    let now = crate::schedules::now(&state).await;
    let run = open(&state, &row, &caller.user, now, None).await?;
    Ok((StatusCode::ACCEPTED, Json(execution_view(run))))
}

/// Opens the windows whose schedule is due at `now` (on the schedules lease holder).
pub async fn open_due(state: &AppState, now: DateTime<Utc>) -> ApiResult<()> {
    for row in state.store.maintenance_windows().await? {
        if !scheduled(&row).due(now) {
            continue;
        }
        let at = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        match open(state, &row, "scheduled", now, Some(&at)).await {
            Ok(_) | Err(ApiError::Conflict(_)) => {}
            Err(e) => {
                tracing::warn!(window = %row.name, error = %e, "cannot open the maintenance window")
            }
        }
    }
    Ok(())
}

/// Claims the window for a new execution opening at `now` and runs its tasks in the background.
async fn open(
    state: &AppState,
    row: &MaintenanceWindowRow,
    trigger: &str,
    now: DateTime<Utc>,
    scheduled_at: Option<&str>,
) -> ApiResult<ExecutionRow> {
    let time = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let ends = now + chrono::Duration::seconds(row.duration_seconds);
    let cutoff = ends - chrono::Duration::seconds(row.cutoff_seconds);
    let run = ExecutionRow {
        id: crate::random_id("exec", 8),
        window: row.name.clone(),
        trigger: trigger.to_owned(),
        state: ExecutionState::Running,
        started_at: time(now),
        cutoff_at: time(cutoff),
        ends_at: time(ends),
        finished_at: None,
        instance_ids: Vec::new(),
        tasks: row
            .tasks
            .iter()
            .enumerate()
            .map(|(index, task)| TaskExecution {
                index,
                task: task.clone(),
                state: TaskState::Pending,
                command_id: None,
                detail: None,
                results: Vec::new(),
            })
            .collect(),
    };
    // A node that died mid-execution leaves its claim; it is taken over an hour after the
    // window would have closed.
    let stale_ms = (row.duration_seconds + 3600) * 1000;
    if !state
        .store
        .claim_execution(&run, scheduled_at, stale_ms)
        .await?
    {
        return Err(ApiError::Conflict(format!(
            "maintenance window {:?} is open already",
            row.name
        )));
    }
    tracing::info!(window = %row.name, execution = %run.id, trigger, "maintenance window opened");
    let (state, row, started) = (state.clone(), row.clone(), run.clone());
    tokio::spawn(async move {
        let mut run = started;
        execute(&state, &row, &mut run, cutoff).await;
        if let Err(e) = state.store.save_execution(&run).await {
            tracing::error!(window = %row.name, execution = %run.id, error = %e, "cannot record the end of the execution");
        }
        tracing::info!(window = %row.name, execution = %run.id, state = run.state.as_str(), "maintenance window execution ended");
    });
    Ok(run)
}

/// Runs the tasks in order as the window's owner, recording each, until one would start after
/// the cutoff.
async fn execute(
    state: &AppState,
    row: &MaintenanceWindowRow,
    run: &mut ExecutionRow,
    cutoff: DateTime<Utc>,
) {
    let owner = Caller::acting_for(&row.created_by);
    let on = Window {
        state,
        row,
        owner: &owner,
    };
    match on.targets().await {
        Ok(ids) => run.instance_ids = ids,
        Err(e) => {
            skip_from(run, 0, &format!("the targets could not be found: {e}"));
            finish(run);
            return;
        }
    }
    for index in 0..run.tasks.len() {
        let now = crate::schedules::now(state).await;
        if now >= cutoff {
            skip_from(
                run,
                index,
                &format!("the window's cutoff ({}) had passed", run.cutoff_at),
            );
            break;
        }
        let Some(task) = run.tasks.get_mut(index) else {
            break;
        };
        task.state = TaskState::Running;
        let _ = state.store.save_execution(run).await;
        let ids = run.instance_ids.clone();
        let Some(task) = run.tasks.get_mut(index) else {
            break;
        };
        on.run_task(task, &ids).await;
        let _ = state.store.save_execution(run).await;
    }
    finish(run);
}

fn skip_from(run: &mut ExecutionRow, index: usize, why: &str) {
    for task in run.tasks.iter_mut().skip(index) {
        task.state = TaskState::Skipped;
        task.detail = Some(why.to_owned());
    }
}

fn finish(run: &mut ExecutionRow) {
    run.state = if run.tasks.iter().all(|t| t.state == TaskState::Succeeded) {
        ExecutionState::Succeeded
    } else {
        ExecutionState::Failed
    };
    run.finished_at = Some(crate::now());
}

/// One window's tasks, acting as its owner.
struct Window<'a> {
    state: &'a AppState,
    row: &'a MaintenanceWindowRow,
    owner: &'a Caller,
}

impl Window<'_> {
    /// The running instances the window's tag selects, looked up as its owner.
    async fn targets(&self) -> ApiResult<Vec<String>> {
        let filter = validate::tag_target("target", &self.row.target)?;
        let account = accounts::row(self.state, &self.row.account).await?;
        let checks = vec![
            ops::use_account(&account.name),
            ops::describe_call("DescribeInstances", &account.region),
        ];
        authorize(self.state, self.owner, checks).await?;
        let (_, target) = accounts::target(self.state, &self.row.account).await?;
        let ec2 = self.state.cloud.ec2(&target).await?;
        let running = Filter::new("instance-state-name", "running");
        let mut ids: Vec<String> = ec2
            .describe_instances(&[filter, running], &[])
            .await?
            .into_iter()
            .map(|i| i.instance_id)
            .collect();
        if ids.len() > airlock_command::MAX_TARGETS {
            return Err(ApiError::Conflict(format!(
                "{} matches {} running instances; a window maintains at most {}",
                self.row.target,
                ids.len(),
                airlock_command::MAX_TARGETS
            )));
        }
        ids.sort();
        Ok(ids)
    }

    fn limits(&self, targets: usize) -> (usize, usize) {
        let read = |t: &str| t.parse::<Limit>().unwrap_or(Limit::Count(0));
        (
            read(&self.row.max_concurrency).concurrency(targets),
            read(&self.row.max_errors).errors(targets),
        )
    }

    async fn run_task(&self, task: &mut TaskExecution, ids: &[String]) {
        if ids.is_empty() {
            task.state = TaskState::Succeeded;
            task.detail = Some("no running instance matched the target".into());
            return;
        }
        match task.task.clone() {
            WindowTask::Command {
                command,
                timeout_seconds,
            } => self.command(task, ids, &command, timeout_seconds).await,
            WindowTask::Reboot => self.in_batches(task, ids, Kind::Reboot).await,
            WindowTask::Snapshot => self.in_batches(task, ids, Kind::Snapshot).await,
        }
        if task.state == TaskState::Running {
            task.state = if task
                .results
                .iter()
                .all(|r| r.status == CommandStatus::Success)
            {
                TaskState::Succeeded
            } else {
                TaskState::Failed
            };
        }
    }

    /// Sends the command to the targets with the window's limits and waits for it to finish.
    async fn command(
        &self,
        task: &mut TaskExecution,
        ids: &[String],
        command: &[String],
        timeout_seconds: u32,
    ) {
        let mut req = command_request(
            &self.row.account,
            &self.row.target,
            command,
            timeout_seconds,
        );
        req.instance_ids = ids.to_vec();
        req.max_concurrency = Some(self.row.max_concurrency.clone());
        req.max_errors = Some(self.row.max_errors.clone());
        let sent = match crate::commands::send_as(self.state, self.owner, &req).await {
            Ok(sent) => sent,
            Err(e) => {
                task.state = TaskState::Failed;
                task.detail = Some(e.to_string());
                return;
            }
        };
        task.command_id = Some(sent.id.clone());
        loop {
            match self.state.store.command(&sent.id).await {
                Ok(Some(c)) if c.finished_at.is_some() => break,
                Ok(None) => break,
                _ => tokio::time::sleep(COMMAND_LOOK).await,
            }
        }
        match self.state.store.command_results(&sent.id).await {
            Ok(results) => {
                task.results = results
                    .into_iter()
                    .map(|r| TaskInstanceResult {
                        instance_id: r.instance_id,
                        status: r.status,
                        exit_code: r.exit_code.and_then(|c| i32::try_from(c).ok()),
                        detail: None,
                    })
                    .collect();
            }
            Err(e) => {
                task.state = TaskState::Failed;
                task.detail = Some(e.to_string());
            }
        }
    }

    /// Reboots or snapshots the targets a batch of `max_concurrency` at a time; one error more
    /// than `max_errors` cancels the instances not yet reached.
    async fn in_batches(&self, task: &mut TaskExecution, ids: &[String], kind: Kind) {
        let (concurrency, max_errors) = self.limits(ids.len());
        let mut errors = 0;
        for batch in ids.chunks(concurrency) {
            if errors > max_errors {
                task.results
                    .extend(batch.iter().map(|id| TaskInstanceResult {
                        instance_id: id.clone(),
                        status: CommandStatus::Cancelled,
                        exit_code: None,
                        detail: Some("not reached: more errors than the window allows".into()),
                    }));
                continue;
            }
            let done = match kind {
                Kind::Reboot => self.reboot(batch).await,
                Kind::Snapshot => self.snapshot(batch).await,
            };
            errors += done
                .iter()
                .filter(|r| r.status != CommandStatus::Success)
                .count();
            task.results.extend(done);
        }
    }

    async fn reboot(&self, batch: &[String]) -> Vec<TaskInstanceResult> {
        let req = InstanceActionRequest {
            account: self.row.account.clone(),
            instance_ids: batch.to_vec(),
        };
        let done =
            crate::instances::act_as(self.state, self.owner, StateAction::Reboot, &req).await;
        batch
            .iter()
            .map(|id| match &done {
                Ok(_) => result(id, CommandStatus::Success, "rebooted".into()),
                Err(e) => result(id, CommandStatus::Failed, e.to_string()),
            })
            .collect()
    }

    /// A snapshot of every volume attached to each instance, tagged with the window's name.
    async fn snapshot(&self, batch: &[String]) -> Vec<TaskInstanceResult> {
        let mut out = Vec::new();
        for id in batch {
            out.push(match self.snapshot_one(id).await {
                Ok(snapshots) => result(id, CommandStatus::Success, snapshots.join(" ")),
                Err(e) => result(id, CommandStatus::Failed, e.to_string()),
            });
        }
        out
    }

    async fn snapshot_one(&self, instance_id: &str) -> ApiResult<Vec<String>> {
        let account = accounts::row(self.state, &self.row.account).await?;
        authorize(
            self.state,
            self.owner,
            vec![ops::describe_call("DescribeVolumes", &account.region)],
        )
        .await?;
        let (_, target) = accounts::target(self.state, &self.row.account).await?;
        let ec2 = self.state.cloud.ec2(&target).await?;
        let volumes = ec2
            .describe_volumes(&[Filter::new("attachment.instance-id", instance_id)])
            .await?;
        let mut taken = Vec::new();
        for volume in volumes {
            let request = FleetRequest::Snapshot(SnapshotRequest::Create(CreateSnapshot {
                volume_id: volume.volume_id.clone(),
                description: Some(format!(
                    "airlock maintenance window {} for {instance_id}",
                    self.row.name
                )),
                tags: vec![Tag::new(WINDOW_TAG, &self.row.name)],
            }));
            let outcome =
                crate::fleet::run_as(self.state, self.owner, &self.row.account, &request).await?;
            taken.extend(outcome.resource_id);
        }
        Ok(taken)
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Reboot,
    Snapshot,
}

fn result(id: &str, status: CommandStatus, detail: String) -> TaskInstanceResult {
    TaskInstanceResult {
        instance_id: id.to_owned(),
        status,
        exit_code: None,
        detail: Some(detail),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn request() -> CreateMaintenanceWindowRequest {
        CreateMaintenanceWindowRequest {
            name: "patch".into(),
            account: "dev".into(),
            target: "tag:Patch Group=Linux Servers".into(),
            schedule: "cron(0 3 ? * SUN *)".into(),
            duration_seconds: 7200,
            cutoff_seconds: 1800,
            tasks: vec![WindowTask::Reboot],
            max_concurrency: None,
            max_errors: None,
        }
    }

    #[test]
    fn a_window_is_refused_naming_its_bad_field() {
        assert!(validate_request(&request()).is_ok());
        type Spoil = fn(&mut CreateMaintenanceWindowRequest);
        let cases: [(&str, Spoil); 6] = [
            ("duration_seconds", |r| r.duration_seconds = 60),
            ("cutoff_seconds", |r| r.cutoff_seconds = r.duration_seconds),
            ("tasks", |r| r.tasks.clear()),
            ("schedule", |r| r.schedule = "every sunday".into()),
            ("max_errors", |r| r.max_errors = Some("lots".into())),
            ("command", |r| {
                r.tasks = vec![WindowTask::Command {
                    command: Vec::new(),
                    timeout_seconds: 60,
                }]
            }),
        ];
        for (field, spoil) in cases {
            let mut req = request();
            spoil(&mut req);
            match validate_request(&req).unwrap_err() {
                ApiError::BadRequest { field: f, .. } => assert_eq!(f.as_deref(), Some(field)),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn tasks_past_the_cutoff_are_skipped_and_the_execution_fails() {
        let mut run = ExecutionRow {
            id: "exec-1".into(),
            window: "patch".into(),
            trigger: "scheduled".into(),
            state: ExecutionState::Running,
            started_at: String::new(),
            cutoff_at: "2026-12-06T04:30:00Z".into(),
            ends_at: String::new(),
            finished_at: None,
            instance_ids: Vec::new(),
            tasks: [WindowTask::Snapshot, WindowTask::Reboot]
                .into_iter()
                .enumerate()
                .map(|(index, task)| TaskExecution {
                    index,
                    task,
                    state: TaskState::Succeeded,
                    command_id: None,
                    detail: None,
                    results: Vec::new(),
                })
                .collect(),
        };
        skip_from(&mut run, 1, "cutoff");
        finish(&mut run);
        assert_eq!(run.tasks[0].state, TaskState::Succeeded);
        assert_eq!(run.tasks[1].state, TaskState::Skipped);
        assert_eq!(run.state, ExecutionState::Failed);
    }
}
