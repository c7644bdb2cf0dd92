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

mod execute;

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
use airlock_api::maintenance_windows::{
    CreateMaintenanceWindowRequest, ExecutionList, ExecutionView, MaintenanceWindowList,
    MaintenanceWindowView, WindowTask,
};
use airlock_command::Limit;
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
pub(crate) const COMMAND_LOOK: Duration = Duration::from_secs(1);

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
pub(crate) fn command_request(
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
    let run = execute::open(&state, &row, &caller.user, now, None).await?;
    Ok((StatusCode::ACCEPTED, Json(execution_view(run))))
}

/// Opens the windows whose schedule is due at `now` (on the schedules lease holder).
pub async fn open_due(state: &AppState, now: DateTime<Utc>) -> ApiResult<()> {
    for row in state.store.maintenance_windows().await? {
        if !scheduled(&row).due(now) {
            continue;
        }
        let at = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        match execute::open(state, &row, "scheduled", now, Some(&at)).await {
            Ok(_) | Err(ApiError::Conflict(_)) => {}
            Err(e) => {
                tracing::warn!(window = %row.name, error = %e, "cannot open the maintenance window")
            }
        }
    }
    Ok(())
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
}
