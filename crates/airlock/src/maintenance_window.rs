//! `airlock maintenance-window`: tasks run on the instances a tag selects when the schedule
//! opens the window, with the creator's permissions (docs/maintenance-windows.md).

use crate::cli::{MaintenanceWindowCommand, Output};
use crate::client::Client;
use crate::output::print;
use airlock_api::maintenance_windows::{
    CreateMaintenanceWindowRequest, ExecutionView, MaintenanceWindowView, WindowTask,
};
use airlock_api::state::{ExecutionState, TaskState};
use anyhow::{bail, Context, Result};
use std::time::Duration;

const HEADERS: [&str; 7] = [
    "NAME", "ACCOUNT", "TARGET", "SCHEDULE", "OPEN", "TASKS", "NEXT RUN",
];

fn span(seconds: u32) -> String {
    match (seconds / 3600, seconds % 3600 / 60) {
        (h, 0) => format!("{h}h"),
        (0, m) => format!("{m}m"),
        (h, m) => format!("{h}h{m}m"),
    }
}

fn row(w: &MaintenanceWindowView) -> Vec<String> {
    vec![
        w.name.clone(),
        w.account.clone(),
        w.target.clone(),
        w.schedule.clone(),
        format!(
            "{} (cutoff {})",
            span(w.duration_seconds),
            span(w.cutoff_seconds)
        ),
        w.tasks
            .iter()
            .map(WindowTask::kind)
            .collect::<Vec<_>>()
            .join(", "),
        w.next_run_at.clone().unwrap_or_else(|| "never".into()),
    ]
}

const EXECUTION_HEADERS: [&str; 7] = [
    "EXECUTION",
    "STARTED",
    "TASK",
    "STATE",
    "INSTANCE",
    "RESULT",
    "DETAIL",
];

/// One line per task and instance (one per task when it reached none).
fn execution_rows(e: &ExecutionView) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for t in &e.tasks {
        let task = format!("{} {}", t.index + 1, t.task.kind());
        let state = format!("{:?}", t.state).to_lowercase();
        let mut line = |instance: &str, result: &str, detail: &str| {
            rows.push(vec![
                e.id.clone(),
                e.started_at.clone(),
                task.clone(),
                state.clone(),
                instance.to_owned(),
                result.to_owned(),
                detail.to_owned(),
            ]);
        };
        if t.results.is_empty() {
            line("-", "-", t.detail.as_deref().unwrap_or(""));
        }
        for r in &t.results {
            let result = match r.exit_code {
                Some(code) => format!("{} (exit {code})", r.status.as_str()),
                None => r.status.as_str().to_owned(),
            };
            let detail = r
                .detail
                .clone()
                .or_else(|| {
                    t.command_id
                        .clone()
                        .map(|c| format!("airlock command show {c}"))
                })
                .unwrap_or_default();
            line(&r.instance_id, &result, &detail);
        }
    }
    rows
}

/// The window's tasks from the flags, in the order a patch window takes them.
fn tasks(
    snapshot: bool,
    commands: &[std::path::PathBuf],
    timeout: u32,
    reboot: bool,
) -> Result<Vec<WindowTask>> {
    let mut tasks = Vec::new();
    if snapshot {
        tasks.push(WindowTask::Snapshot);
    }
    for path in commands {
        let script = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read --task-command {}", path.display()))?;
        tasks.push(WindowTask::Command {
            command: vec!["sh".into(), "-c".into(), script],
            timeout_seconds: timeout,
        });
    }
    if reboot {
        tasks.push(WindowTask::Reboot);
    }
    if tasks.is_empty() {
        bail!("give the window a task: --task-snapshot, --task-command FILE and/or --task-reboot");
    }
    Ok(tasks)
}

/// Runs a `maintenance-window` subcommand.
pub async fn run(client: &Client, cmd: MaintenanceWindowCommand, output: Output) -> Result<()> {
    match cmd {
        MaintenanceWindowCommand::Create {
            name,
            account,
            target,
            schedule,
            duration,
            cutoff,
            task_commands,
            task_timeout,
            task_snapshot,
            task_reboot,
            max_concurrency,
            max_errors,
        } => {
            let req = CreateMaintenanceWindowRequest {
                name,
                account,
                target,
                schedule,
                duration_seconds: duration,
                cutoff_seconds: cutoff,
                tasks: tasks(task_snapshot, &task_commands, task_timeout, task_reboot)?,
                max_concurrency: Some(max_concurrency),
                max_errors: Some(max_errors),
            };
            let created = client.create_maintenance_window(&req).await?;
            print(output, &created, &HEADERS, || vec![row(&created)])
        }
        MaintenanceWindowCommand::List => {
            let list = client.maintenance_windows().await?;
            print(output, &list.windows, &HEADERS, || {
                list.windows.iter().map(row).collect()
            })
        }
        MaintenanceWindowCommand::Show { name } => {
            let window = client.maintenance_window(&name).await?;
            print(output, &window, &HEADERS, || vec![row(&window)])
        }
        MaintenanceWindowCommand::Executions { name } => {
            let list = client.executions(&name).await?;
            print(output, &list.executions, &EXECUTION_HEADERS, || {
                list.executions.iter().flat_map(execution_rows).collect()
            })
        }
        MaintenanceWindowCommand::RunNow { name, wait } => {
            let opened = client.run_maintenance_window(&name).await?;
            let shown = if wait {
                wait_ended(client, &name, &opened.id).await?
            } else {
                opened
            };
            print(output, &shown, &EXECUTION_HEADERS, || {
                execution_rows(&shown)
            })?;
            if shown.state == ExecutionState::Failed {
                bail!("execution {} of {name} failed", shown.id);
            }
            Ok(())
        }
        MaintenanceWindowCommand::Delete { name } => {
            client.delete_maintenance_window(&name).await?;
            if output == Output::Table {
                println!("deleted maintenance window {name}");
            }
            Ok(())
        }
    }
}

/// Waits until the execution is no longer running, saying which task runs when it changes.
async fn wait_ended(client: &Client, name: &str, id: &str) -> Result<ExecutionView> {
    let mut said = None;
    loop {
        let list = client.executions(name).await?;
        let Some(now) = list.executions.into_iter().find(|e| e.id == id) else {
            bail!("execution {id} of {name} is no longer listed");
        };
        let running = now
            .tasks
            .iter()
            .find(|t| t.state == TaskState::Running)
            .map(|t| t.index);
        if said != Some(running) {
            if let Some(index) = running {
                eprintln!("{id}: task {} of {} running", index + 1, now.tasks.len());
            }
            said = Some(running);
        }
        if now.state != ExecutionState::Running {
            return Ok(now);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
