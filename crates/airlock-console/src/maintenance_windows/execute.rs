//! An execution of a maintenance window: claimed, its targets found, its tasks run in order as
//! the window's owner until the cutoff, each recorded per instance.

use super::{command_request, COMMAND_LOOK, WINDOW_TAG};
use crate::accounts;
use crate::auth::Caller;
use crate::authz::authorize;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::validate;
use airlock_access::ops;
use airlock_api::instances::InstanceActionRequest;
use airlock_api::maintenance_windows::{TaskExecution, TaskInstanceResult, WindowTask};
use airlock_api::state::{CommandStatus, ExecutionState, TaskState};
use airlock_cloud::{Filter, StateAction, Tag};
use airlock_fleet::snapshot::{CreateSnapshot, SnapshotRequest};
use airlock_fleet::FleetRequest;
use airlock_store::{ExecutionRow, MaintenanceWindowRow};
use chrono::{DateTime, Utc};

/// Claims the window for a new execution opening at `now` and runs its tasks in the background.
pub(super) async fn open(
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
        let (concurrency, max_errors) =
            airlock_command::resolve(&self.row.max_concurrency, &self.row.max_errors, ids.len());
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
