//! Run command, the operator's side: sending a command line to the instances a tag (or a list
//! of ids) selects, and reading what each instance made of it.
//!
//! The console never reaches into an instance: it records the command, releases it to as many
//! instances at once as `max_concurrency` allows, and each instance's agent fetches its part
//! over its own outbound channel ([`crate::agent_work`]). [`advance`] moves every command on
//! (releases, timeouts, cancellation after too many errors) with the pure rules of
//! `airlock-command`, from a tick and from every fetch and report.
//!
//! Who may do what is decided here, before anything is recorded or sent: `airlock:SendCommand`
//! on every target instance with its current tags (looked up in EC2, never taken from the
//! caller), and `airlock:ReadCommandOutput` on an instance, with its tags as they were when
//! the command was sent, to see its output.

use crate::accounts;
use crate::audit::{self, Entry};
use crate::auth::Caller;
use crate::authz::{authorize, console_arn, ec2_arn, permits, policies_of, precheck, principal};
use crate::error::{ApiError, ApiResult};
use crate::json::Body;
use crate::state::AppState;
use crate::validate;
use airlock_access::{ops, Check};
use airlock_api::commands::{
    CommandList, CommandResultView, CommandView, SendCommandRequest, MAX_OUTPUT,
};
use airlock_api::state::{CommandStatus, InvocationStatus};
use airlock_cloud::{Filter, Instance, Tag};
use airlock_command::{Limit, Limits, Part, Step, MAX_TARGETS};
use airlock_store::{CommandResultRow, CommandRow, PartChange};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use std::time::Duration;

/// The longest timeout: a day, as Systems Manager's longest execution timeout is two.
pub const MAX_TIMEOUT_SECONDS: u32 = 86_400;
/// The most arguments, and bytes over all of them, a command line may have.
const MAX_ARGS: usize = 256;
const MAX_COMMAND_BYTES: usize = 16 * 1024;
/// Commands `GET /v1/commands` shows.
const LISTED: i64 = 50;
/// How often unfinished commands are moved on.
const TICK: Duration = Duration::from_secs(1);
/// Defaults, as Systems Manager's.
const DEFAULT_CONCURRENCY: &str = "50";
const DEFAULT_ERRORS: &str = "0";

fn command_arn(id: &str) -> String {
    console_arn("command", id)
}

/// The command's limits, read from the request, with what was sent kept as written.
fn limits(req: &SendCommandRequest) -> ApiResult<(Limit, Limit)> {
    let read = |field: &str, text: Option<&str>, default: &str| {
        text.unwrap_or(default)
            .parse::<Limit>()
            .map_err(|e| ApiError::field(field, e.to_string()))
    };
    Ok((
        read(
            "max_concurrency",
            req.max_concurrency.as_deref(),
            DEFAULT_CONCURRENCY,
        )?,
        read("max_errors", req.max_errors.as_deref(), DEFAULT_ERRORS)?,
    ))
}

/// Checks everything in the request that needs nothing looked up; returns the EC2 filters of
/// its targets.
pub(crate) fn validate_request(req: &SendCommandRequest) -> ApiResult<Vec<Filter>> {
    validate::name("account", &req.account)?;
    if req.command.first().is_none_or(String::is_empty) {
        return Err(ApiError::field("command", "name the program to run"));
    }
    let bytes: usize = req.command.iter().map(String::len).sum();
    if req.command.len() > MAX_ARGS || bytes > MAX_COMMAND_BYTES {
        return Err(ApiError::field(
            "command",
            format!("at most {MAX_ARGS} arguments and {MAX_COMMAND_BYTES} bytes in all"),
        ));
    }
    if req.command.iter().any(|a| a.contains('\0')) {
        return Err(ApiError::field("command", "an argument holds a NUL byte"));
    }
    if !(1..=MAX_TIMEOUT_SECONDS).contains(&req.timeout_seconds) {
        return Err(ApiError::field(
            "timeout_seconds",
            format!("from 1 to {MAX_TIMEOUT_SECONDS} seconds"),
        ));
    }
    if req.targets.is_empty() && req.instance_ids.is_empty() {
        return Err(ApiError::field(
            "targets",
            "name the instances: tag:KEY=VALUE targets and/or instance ids",
        ));
    }
    if req.targets.len() > 10 || req.instance_ids.len() > MAX_TARGETS {
        return Err(ApiError::field(
            "targets",
            format!("at most 10 targets and {MAX_TARGETS} instance ids"),
        ));
    }
    for id in &req.instance_ids {
        validate::ec2_id("instance_ids", id, "i-")?;
    }
    limits(req)?;
    req.targets
        .iter()
        .map(|t| validate::tag_target("targets", t))
        .collect()
}

/// The running instances the request selects; an id that names none of them is the request's
/// fault, named.
fn selected(req: &SendCommandRequest, found: Vec<Instance>) -> ApiResult<Vec<Instance>> {
    let running: Vec<Instance> = found.into_iter().filter(|i| i.state == "running").collect();
    let missing: Vec<&String> = req
        .instance_ids
        .iter()
        .filter(|id| !running.iter().any(|i| &&i.instance_id == id))
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::field(
            "instance_ids",
            format!(
                "not running instances of account {} matching the targets: {}",
                req.account,
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    if running.is_empty() {
        return Err(ApiError::field(
            "targets",
            "no running instance matches the targets",
        ));
    }
    if running.len() > MAX_TARGETS {
        return Err(ApiError::field(
            "targets",
            format!(
                "{} instances match; a command targets at most {MAX_TARGETS}",
                running.len()
            ),
        ));
    }
    Ok(running)
}

/// `POST /v1/commands`.
#[utoipa::path(
    post,
    path = "/v1/commands",
    summary = "Send a command to the running instances the targets select (airlock:UseAccount, and airlock:SendCommand on every instance with its tags); their agents fetch and run it",
    request_body = SendCommandRequest,
    responses(
        (status = 201, description = "Sent", body = CommandView),
        (status = 400, description = "Error", body = airlock_api::ErrorBody),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn send(
    State(state): State<AppState>,
    caller: Caller,
    Body(req): Body<SendCommandRequest>,
) -> ApiResult<(StatusCode, Json<CommandView>)> {
    let row = send_as(&state, &caller, &req).await?;
    let view = view_for(&state, &caller, row).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Sends a command as `caller` (a user, or a maintenance window acting for its owner): decided,
/// recorded, audited and its first instances released.
pub(crate) async fn send_as(
    state: &AppState,
    caller: &Caller,
    req: &SendCommandRequest,
) -> ApiResult<CommandRow> {
    let filters = validate_request(req)?;
    precheck(state, caller, vec![ops::use_account(&req.account)]).await?;
    let (account, target) = accounts::target_for_request(state, &req.account).await?;
    let ec2 = state.cloud.ec2(&target).await?;
    let found = ec2.describe_instances(&filters, &req.instance_ids).await?;
    let instances = selected(req, found)?;
    let scope = accounts::scope_of(&account);
    let mut checks = vec![ops::use_account(&req.account)];
    checks.extend(instances.iter().map(|i| ops::send_command(&scope, i)));
    authorize(state, caller, checks).await?;

    let (concurrency, max_errors) = limits(req)?;
    let row = CommandRow {
        id: crate::random_id("cmd", 8),
        account: req.account.clone(),
        created_by: caller.user.clone(),
        created_at: crate::now(),
        command: req.command.clone(),
        targets: req.targets.clone(),
        instance_ids: req.instance_ids.clone(),
        max_concurrency: concurrency.to_string(),
        max_errors: max_errors.to_string(),
        timeout_seconds: i64::from(req.timeout_seconds),
        finished_at: None,
    };
    let parts: Vec<CommandResultRow> = instances.iter().map(|i| new_part(&row.id, i)).collect();
    state.store.insert_command(&row, &parts).await?;
    let resources = std::iter::once(command_arn(&row.id))
        .chain(instances.iter().map(|i| {
            ec2_arn(
                &account.region,
                &account.aws_account_id,
                "instance",
                &i.instance_id,
            )
        }))
        .collect();
    audit::record_ok(
        state,
        Entry::for_caller(caller, "airlock:SendCommand", resources),
        Some(format!(
            "{} on {} instances: {}",
            row.id,
            parts.len(),
            shown_command(&row.command)
        )),
    )
    .await;
    tracing::info!(command = %row.id, user = %caller.user, account = %row.account, instances = parts.len(), "command sent");
    advance(state, &row.id).await?;
    Ok(row)
}

/// The command line as the audit log shows it: its program and how many arguments, since
/// arguments may carry what should not be kept in the log.
fn shown_command(command: &[String]) -> String {
    format!(
        "{} with {} arguments",
        command.first().map(String::as_str).unwrap_or_default(),
        command.len().saturating_sub(1)
    )
}

fn new_part(command_id: &str, instance: &Instance) -> CommandResultRow {
    CommandResultRow {
        command_id: command_id.to_owned(),
        instance_id: instance.instance_id.clone(),
        tags: instance
            .tags
            .iter()
            .map(|t| (t.key.clone(), t.value.clone()))
            .collect(),
        status: CommandStatus::Pending,
        released_at_ms: None,
        started_at_ms: None,
        ended_at_ms: None,
        exit_code: None,
        output: None,
        error_output: None,
        truncated: false,
    }
}

/// Moves one command on: gives up on parts that ran out of time, cancels or releases the rest
/// as its limits say, and marks it finished when nothing is left to happen. Safe to run on
/// several consoles at once: every change is conditional on the part's status.
pub async fn advance(state: &AppState, id: &str) -> ApiResult<()> {
    let Some(row) = state.store.command(id).await? else {
        return Ok(());
    };
    if row.finished_at.is_some() {
        return Ok(());
    }
    let results = state.store.command_results(id).await?;
    let now = state.store.clock_ms().await?;
    let limits = resolved(&row, results.len());
    let parts: Vec<Part> = results
        .iter()
        .map(|r| Part {
            instance_id: r.instance_id.clone(),
            status: r.status,
            released_at_ms: r.released_at_ms,
            started_at_ms: r.started_at_ms,
        })
        .collect();
    let mut released = false;
    for step in airlock_command::advance(&parts, limits, now) {
        let (instance, change) = match &step {
            Step::Release(i) => (i, PartChange::Release),
            Step::Undeliverable(i) => (i, PartChange::Undeliverable),
            Step::TimedOut(i) => (i, PartChange::TimedOut),
            Step::Cancel(i) => (i, PartChange::Cancel),
        };
        let changed = state.store.change_part(id, instance, change).await?;
        released |= changed && change == PartChange::Release;
    }
    if released {
        state.commands.released();
    }
    if state
        .store
        .finish_command_if_done(id, &crate::now())
        .await?
    {
        tracing::info!(command = %id, "command finished");
    }
    Ok(())
}

fn resolved(row: &CommandRow, targets: usize) -> Limits {
    let (concurrency, max_errors) =
        airlock_command::resolve(&row.max_concurrency, &row.max_errors, targets);
    Limits {
        concurrency,
        max_errors,
        timeout_ms: row.timeout_seconds.saturating_mul(1000),
    }
}

/// While the console runs, moves every unfinished command on once a [`TICK`].
pub async fn keep_advancing(state: AppState) {
    loop {
        tokio::time::sleep(TICK).await;
        let ids = match state.store.unfinished_commands().await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list unfinished commands");
                continue;
            }
        };
        for id in ids {
            if let Err(e) = advance(&state, &id).await {
                tracing::warn!(command = %id, error = %e, "cannot move the command on");
            }
        }
    }
}

/// Whether the caller may read the output of one part: `airlock:ReadCommandOutput` on the
/// instance, with its tags as they were when the command was sent.
fn output_check(scope: &airlock_cloud::Scope, part: &CommandResultRow) -> Check {
    let tags: Vec<Tag> = part.tags.iter().map(|(k, v)| Tag::new(k, v)).collect();
    ops::read_command_output(scope, &part.instance_id, &tags)
}

/// The command as `caller` may see it: outputs only where they may read them.
async fn view_for(state: &AppState, caller: &Caller, row: CommandRow) -> ApiResult<CommandView> {
    let results = state.store.command_results(&row.id).await?;
    let policies = policies_of(state, &caller.user).await?;
    let who = principal(caller);
    let scope = state
        .store
        .account(&row.account)
        .await?
        .map(|a| accounts::scope_of(&a));
    let readable = |part: &CommandResultRow| {
        scope
            .as_ref()
            .is_some_and(|s| permits(&policies, &who, &output_check(s, part)))
    };
    let results: Vec<CommandResultView> = results
        .into_iter()
        .map(|part| {
            let shown = readable(&part);
            result_view(part, shown)
        })
        .collect();
    Ok(CommandView {
        status: InvocationStatus::of(results.iter().map(|r| r.status)),
        id: row.id,
        account: row.account,
        created_by: row.created_by,
        created_at: row.created_at,
        command: row.command,
        targets: row.targets,
        instance_ids: row.instance_ids,
        max_concurrency: row.max_concurrency,
        max_errors: row.max_errors,
        timeout_seconds: u32::try_from(row.timeout_seconds).unwrap_or(MAX_TIMEOUT_SECONDS),
        results,
    })
}

fn time_of(ms: Option<i64>) -> Option<String> {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

fn result_view(part: CommandResultRow, output_shown: bool) -> CommandResultView {
    let bound = |text: Option<String>| {
        text.filter(|_| output_shown)
            .map(|t| airlock_command::bounded(t.as_bytes(), MAX_OUTPUT).0)
    };
    CommandResultView {
        instance_id: part.instance_id,
        status: part.status,
        exit_code: part.exit_code.and_then(|c| i32::try_from(c).ok()),
        output: bound(part.output),
        error_output: bound(part.error_output),
        truncated: part.truncated,
        started_at: time_of(part.started_at_ms),
        ended_at: time_of(part.ended_at_ms),
    }
}

/// `GET /v1/commands`.
#[utoipa::path(
    get,
    path = "/v1/commands",
    summary = "The latest commands, newest first (airlock:ListCommands); outputs only of instances the caller may airlock:ReadCommandOutput on",
    responses(
        (status = 200, description = "The commands", body = CommandList),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<CommandList>> {
    authorize(
        &state,
        &caller,
        vec![ops::console("airlock:ListCommands", "command", "*")],
    )
    .await?;
    let mut commands = Vec::new();
    for row in state.store.commands(LISTED).await? {
        commands.push(view_for(&state, &caller, row).await?);
    }
    Ok(Json(CommandList { commands }))
}

/// `GET /v1/commands/{id}`.
#[utoipa::path(
    get,
    path = "/v1/commands/{id}",
    summary = "A command and each instance's status, exit code and output (airlock:GetCommand; output needs airlock:ReadCommandOutput on the instance)",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The command", body = CommandView),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
        (status = 404, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<CommandView>> {
    authorize(
        &state,
        &caller,
        vec![ops::console("airlock:GetCommand", "command", &id)],
    )
    .await?;
    let row = state.store.command(&id).await?.ok_or_else(|| {
        ApiError::NotFound(format!("no command {id:?}: see `airlock command list`"))
    })?;
    Ok(Json(view_for(&state, &caller, row).await?))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn request() -> SendCommandRequest {
        SendCommandRequest {
            account: "ops".into(),
            targets: vec!["tag:Patch Group=Linux Servers".into()],
            instance_ids: Vec::new(),
            command: vec!["uptime".into()],
            timeout_seconds: 60,
            max_concurrency: None,
            max_errors: None,
        }
    }

    fn field_of(e: ApiError) -> String {
        match e {
            ApiError::BadRequest { field, .. } => field.unwrap_or_default(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_request_is_refused_naming_its_bad_field_before_anything_is_looked_up() {
        assert_eq!(validate_request(&request()).unwrap().len(), 1);
        type Spoil = fn(&mut SendCommandRequest);
        let cases: [(&str, Spoil); 7] = [
            ("command", |r| r.command.clear()),
            ("command", |r| r.command = vec!["a\0b".into()]),
            ("command", |r| {
                r.command = vec!["x".repeat(MAX_COMMAND_BYTES + 1)]
            }),
            ("timeout_seconds", |r| r.timeout_seconds = 0),
            ("targets", |r| r.targets = vec!["Patch Group".into()]),
            ("max_concurrency", |r| {
                r.max_concurrency = Some("ten".into())
            }),
            ("instance_ids", |r| r.instance_ids = vec!["vol-1".into()]),
        ];
        for (field, spoil) in cases {
            let mut req = request();
            spoil(&mut req);
            assert_eq!(field_of(validate_request(&req).unwrap_err()), field);
        }
        let mut none = request();
        none.targets.clear();
        assert_eq!(field_of(validate_request(&none).unwrap_err()), "targets");
    }

    #[test]
    fn the_audit_log_names_the_program_but_keeps_no_argument() {
        let shown = shown_command(&["mysql".into(), "--password=hunter2".into()]);
        assert_eq!(shown, "mysql with 1 arguments");
    }
}
