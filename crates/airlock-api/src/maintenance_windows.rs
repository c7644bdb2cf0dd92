//! Maintenance windows: a schedule, a duration and a cutoff, and tasks (snapshots, commands,
//! reboots) run on the instances a tag selects, with the creator's permissions.

use crate::state::{CommandStatus, ExecutionState, TaskState};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One task of a window, run on every target instance in turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum WindowTask {
    /// EBS snapshots of the volumes attached to each instance.
    Snapshot,
    /// A command line run by each instance's agent, as `airlock command run` sends it.
    Command {
        /// The program and its arguments.
        command: Vec<String>,
        /// Seconds it may run on each instance.
        timeout_seconds: u32,
    },
    /// `RebootInstances`.
    Reboot,
}

impl WindowTask {
    /// Its name in listings: `snapshot`, `command` or `reboot`.
    pub fn kind(&self) -> &'static str {
        match self {
            WindowTask::Snapshot => "snapshot",
            WindowTask::Command { .. } => "command",
            WindowTask::Reboot => "reboot",
        }
    }
}

/// Body of `POST /v1/maintenance-windows`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateMaintenanceWindowRequest {
    /// The window's name (1–64 of letters, digits, `.`, `_`, `-`).
    pub name: String,
    /// The console account whose instances it maintains.
    pub account: String,
    /// The instances: `tag:KEY=VALUE`.
    pub target: String,
    /// When it opens: `cron(...)` or `rate(...)` (UTC).
    pub schedule: String,
    /// How long it stays open, in seconds.
    pub duration_seconds: u32,
    /// How long before it closes no new task starts, in seconds.
    pub cutoff_seconds: u32,
    /// Its tasks, in the order they run.
    pub tasks: Vec<WindowTask>,
    /// Instances a task works on at once: `N` or `N%` (default `1`).
    #[serde(default)]
    pub max_concurrency: Option<String>,
    /// Errors a task allows before it stops: `N` or `N%` (default `0`).
    #[serde(default)]
    pub max_errors: Option<String>,
}

/// A window as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MaintenanceWindowView {
    /// Its name.
    pub name: String,
    /// The console account.
    pub account: String,
    /// `tag:KEY=VALUE`.
    pub target: String,
    /// The schedule expression.
    pub schedule: String,
    /// Seconds it stays open.
    pub duration_seconds: u32,
    /// Seconds before closing when no new task starts.
    pub cutoff_seconds: u32,
    /// Its tasks, in order.
    pub tasks: Vec<WindowTask>,
    /// As given.
    pub max_concurrency: String,
    /// As given.
    pub max_errors: String,
    /// Whose permissions every task acts with.
    pub created_by: String,
    /// RFC 3339.
    pub created_at: String,
    /// When it last opened on schedule (RFC 3339).
    pub last_scheduled_at: Option<String>,
    /// When it opens next (RFC 3339), if ever.
    pub next_run_at: Option<String>,
}

/// `GET /v1/maintenance-windows`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MaintenanceWindowList {
    /// Every window, by name.
    pub windows: Vec<MaintenanceWindowView>,
}

/// What one task did on one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TaskInstanceResult {
    /// The instance.
    pub instance_id: String,
    /// `success`, `failed`, `cancelled`, or a command's status.
    pub status: CommandStatus,
    /// A command's exit code.
    pub exit_code: Option<i32>,
    /// What happened (snapshot ids, EC2's error); a command's output is read with
    /// `airlock command show`, under `airlock:ReadCommandOutput`.
    pub detail: Option<String>,
}

/// One task within an execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TaskExecution {
    /// Its position in the window's tasks.
    pub index: usize,
    /// The task.
    pub task: WindowTask,
    /// Where it is.
    pub state: TaskState,
    /// For a command task, the command it sent.
    pub command_id: Option<String>,
    /// Why it failed or was skipped.
    pub detail: Option<String>,
    /// Per instance.
    pub results: Vec<TaskInstanceResult>,
}

/// One opening of a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExecutionView {
    /// `exec-…`.
    pub id: String,
    /// The window.
    pub window: String,
    /// `scheduled`, or the user who ran it now.
    pub trigger: String,
    /// Where it is.
    pub state: ExecutionState,
    /// When it opened (RFC 3339; the schedule's time when scheduled).
    pub started_at: String,
    /// When no new task may start any more (RFC 3339).
    pub cutoff_at: String,
    /// When it closes (RFC 3339).
    pub ends_at: String,
    /// When its last task ended (RFC 3339).
    pub finished_at: Option<String>,
    /// The targets it found.
    pub instance_ids: Vec<String>,
    /// Its tasks.
    pub tasks: Vec<TaskExecution>,
}

/// `GET /v1/maintenance-windows/{name}/executions`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExecutionList {
    /// The latest executions, newest first.
    pub executions: Vec<ExecutionView>,
}
