//! Snapshot policies: EBS snapshots of the volumes a tag selects, on an EventBridge-style
//! schedule, with retention by count and/or age (what Amazon Data Lifecycle Manager does, run
//! by the console).
//!
//! Every snapshot and every deletion goes through the fleet operations
//! ([`crate::fleet::run_as`]) and so through the authorization core, decided with the
//! permissions of the user who created the policy, as they are at the time of the run: a policy
//! can never do what its owner could not do by hand, and stops working when they lose the
//! right. Retention deletes only snapshots tagged with the policy's name, so a snapshot made
//! by hand (or by another policy) is never touched.

use crate::accounts;
use crate::auth::Caller;
use crate::authz::{authorize, authorize_one, console_arn};
use crate::error::{ApiError, ApiResult};
use crate::json::Body;
use crate::schedules::Scheduled;
use crate::state::AppState;
use crate::validate;
use airlock_access::ops;
use airlock_api::snapshot_policies::{
    CreateSnapshotPolicyRequest, SnapshotPolicyList, SnapshotPolicyView, SnapshotRunView,
};
use airlock_api::state::SnapshotRunState;
use airlock_cloud::{Filter, Snapshot, Tag};
use airlock_fleet::snapshot::{CreateSnapshot, DeleteSnapshot, SnapshotRequest};
use airlock_fleet::FleetRequest;
use airlock_schedule::Schedule;
use airlock_store::{SnapshotPolicyRow, SnapshotRunRow};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};

/// The tag every snapshot a policy takes carries, with the policy's name: the only snapshots
/// its retention may delete.
pub const POLICY_TAG: &str = "airlock:snapshot-policy";

/// Volumes one run snapshots at most; a target matching more fails the run, naming the count.
const MAX_VOLUMES: usize = 200;
/// Runs shown with a policy.
const RUNS_SHOWN: i64 = 20;
/// The longest retention in days (ten years).
const MAX_RETAIN_DAYS: u32 = 3650;
/// The most snapshots of a volume a policy keeps by count.
const MAX_RETAIN: u32 = 1000;

fn policy_arn(name: &str) -> String {
    console_arn("snapshot-policy", name)
}

fn validate_request(req: &CreateSnapshotPolicyRequest) -> ApiResult<Schedule> {
    validate::name("name", &req.name)?;
    validate::tag_target("target", &req.target)?;
    let schedule: Schedule = req
        .schedule
        .parse()
        .map_err(|e: airlock_schedule::ScheduleError| ApiError::field("schedule", e.to_string()))?;
    if req.retain.is_none() && req.retain_days.is_none() {
        return Err(ApiError::field(
            "retain",
            "give retain (snapshots kept per volume) and/or retain_days",
        ));
    }
    if req.retain.is_some_and(|n| !(1..=MAX_RETAIN).contains(&n)) {
        return Err(ApiError::field(
            "retain",
            format!("keep from 1 to {MAX_RETAIN} snapshots per volume"),
        ));
    }
    if req
        .retain_days
        .is_some_and(|d| !(1..=MAX_RETAIN_DAYS).contains(&d))
    {
        return Err(ApiError::field(
            "retain_days",
            format!("keep snapshots from 1 to {MAX_RETAIN_DAYS} days"),
        ));
    }
    Ok(schedule)
}

fn scheduled(row: &SnapshotPolicyRow) -> Scheduled<'_> {
    Scheduled {
        schedule: &row.schedule,
        last_scheduled_at: row.last_scheduled_at.as_deref(),
        created_at: &row.created_at,
    }
}

fn view(row: SnapshotPolicyRow, runs: Vec<SnapshotRunView>) -> SnapshotPolicyView {
    SnapshotPolicyView {
        next_run_at: scheduled(&row).next_run_at(),
        name: row.name,
        account: row.account,
        target: row.target,
        schedule: row.schedule,
        retain: row.retain_count.and_then(|n| u32::try_from(n).ok()),
        retain_days: row.retain_days.and_then(|n| u32::try_from(n).ok()),
        created_by: row.created_by,
        created_at: row.created_at,
        last_scheduled_at: row.last_scheduled_at,
        runs,
    }
}

fn run_view(run: SnapshotRunRow) -> SnapshotRunView {
    SnapshotRunView {
        id: run.id,
        policy: run.policy,
        trigger: run.trigger,
        state: run.state,
        started_at: run.started_at,
        finished_at: run.finished_at,
        created: run.created,
        deleted: run.deleted,
        errors: run.errors,
    }
}

async fn stored(state: &AppState, name: &str) -> ApiResult<SnapshotPolicyRow> {
    state
        .store
        .snapshot_policy(name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no snapshot policy {name:?}")))
}

/// `POST /v1/snapshot-policies`.
#[utoipa::path(
    post,
    path = "/v1/snapshot-policies",
    summary = "Create a snapshot policy (airlock:CreateSnapshotPolicy on the policy, airlock:UseAccount on its account); its runs act with the creator's permissions",
    request_body = CreateSnapshotPolicyRequest,
    responses(
        (status = 201, description = "Created", body = SnapshotPolicyView),
        (status = 400, description = "Error", body = airlock_api::ErrorBody),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
        (status = 404, description = "Error", body = airlock_api::ErrorBody),
        (status = 409, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Body(req): Body<CreateSnapshotPolicyRequest>,
) -> ApiResult<(StatusCode, Json<SnapshotPolicyView>)> {
    validate_request(&req)?;
    let checks = vec![
        ops::console("airlock:CreateSnapshotPolicy", "snapshot-policy", &req.name),
        ops::use_account(&req.account),
    ];
    authorize(&state, &caller, checks).await?;
    // The account must exist; its key is not needed (nor unsealed) until a run.
    accounts::row_for_request(&state, &req.account).await?;
    let row = SnapshotPolicyRow {
        name: req.name.clone(),
        account: req.account.clone(),
        target: req.target.clone(),
        schedule: req.schedule.trim().to_owned(),
        retain_count: req.retain.map(i64::from),
        retain_days: req.retain_days.map(i64::from),
        created_by: caller.user.clone(),
        created_at: crate::now(),
        last_scheduled_at: None,
    };
    state.store.insert_snapshot_policy(&row).await?;
    tracing::info!(policy = %row.name, user = %caller.user, account = %row.account, target = %row.target, schedule = %row.schedule, "snapshot policy created");
    Ok((StatusCode::CREATED, Json(view(row, Vec::new()))))
}

/// `GET /v1/snapshot-policies`.
#[utoipa::path(
    get,
    path = "/v1/snapshot-policies",
    summary = "Every snapshot policy (airlock:ListSnapshotPolicies)",
    responses(
        (status = 200, description = "The policies", body = SnapshotPolicyList),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<SnapshotPolicyList>> {
    authorize_one(
        &state,
        &caller,
        "airlock:ListSnapshotPolicies",
        &policy_arn("*"),
    )
    .await?;
    let policies = state
        .store
        .snapshot_policies()
        .await?
        .into_iter()
        .map(|row| view(row, Vec::new()))
        .collect();
    Ok(Json(SnapshotPolicyList { policies }))
}

/// `GET /v1/snapshot-policies/{name}`.
#[utoipa::path(
    get,
    path = "/v1/snapshot-policies/{name}",
    summary = "A snapshot policy with its latest runs (airlock:GetSnapshotPolicy)",
    responses(
        (status = 200, description = "The policy", body = SnapshotPolicyView),
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
) -> ApiResult<Json<SnapshotPolicyView>> {
    authorize_one(
        &state,
        &caller,
        "airlock:GetSnapshotPolicy",
        &policy_arn(&name),
    )
    .await?;
    let row = stored(&state, &name).await?;
    let runs = state.store.snapshot_runs(&name, RUNS_SHOWN).await?;
    Ok(Json(view(row, runs.into_iter().map(run_view).collect())))
}

/// `DELETE /v1/snapshot-policies/{name}`.
#[utoipa::path(
    delete,
    path = "/v1/snapshot-policies/{name}",
    summary = "Delete a snapshot policy and its history; its snapshots stay in EC2 (airlock:DeleteSnapshotPolicy)",
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
        "airlock:DeleteSnapshotPolicy",
        &policy_arn(&name),
    )
    .await?;
    if !state.store.delete_snapshot_policy(&name).await? {
        return Err(ApiError::NotFound(format!("no snapshot policy {name:?}")));
    }
    tracing::info!(policy = %name, user = %caller.user, "snapshot policy deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/snapshot-policies/{name}/run`.
#[utoipa::path(
    post,
    path = "/v1/snapshot-policies/{name}/run",
    summary = "Run a snapshot policy now, with its creator's permissions (airlock:RunSnapshotPolicy); answered when the run is over",
    responses(
        (status = 200, description = "The run", body = SnapshotRunView),
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
) -> ApiResult<Json<SnapshotRunView>> {
    authorize_one(
        &state,
        &caller,
        "airlock:RunSnapshotPolicy",
        &policy_arn(&name),
    )
    .await?;
    let row = stored(&state, &name).await?;
    let run = run_policy(&state, &row, &caller.user, None).await?;
    Ok(Json(run_view(run)))
}

/// One run of the policy: claimed (one at a time across consoles), snapshots taken, old ones
/// deleted, recorded. `scheduled_at` when the schedule fired it.
async fn run_policy(
    state: &AppState,
    row: &SnapshotPolicyRow,
    trigger: &str,
    scheduled_at: Option<&str>,
) -> ApiResult<SnapshotRunRow> {
    let mut run = SnapshotRunRow {
        id: crate::random_id("run", 8),
        policy: row.name.clone(),
        trigger: trigger.to_owned(),
        state: SnapshotRunState::Running,
        started_at: crate::now(),
        finished_at: None,
        created: Vec::new(),
        deleted: Vec::new(),
        errors: Vec::new(),
    };
    if !state.store.claim_snapshot_run(&run, scheduled_at).await? {
        return Err(ApiError::Conflict(format!(
            "a run of snapshot policy {:?} is under way",
            row.name
        )));
    }
    if let Err(e) = take_snapshots(state, row, &mut run).await {
        run.errors.push(e.to_string());
    }
    run.state = if run.errors.is_empty() {
        SnapshotRunState::Succeeded
    } else {
        SnapshotRunState::Failed
    };
    run.finished_at = Some(crate::now());
    state.store.finish_snapshot_run(&run).await?;
    tracing::info!(policy = %row.name, run = %run.id, state = run.state.as_str(), created = run.created.len(), deleted = run.deleted.len(), errors = run.errors.len(), "snapshot policy ran");
    Ok(run)
}

/// Snapshots every target volume, then applies retention to each, as the policy's owner.
/// A volume that fails (refused, or EC2's error) is recorded and the others go on.
async fn take_snapshots(
    state: &AppState,
    row: &SnapshotPolicyRow,
    run: &mut SnapshotRunRow,
) -> ApiResult<()> {
    let owner = Caller::acting_for(&row.created_by);
    let filter = validate::tag_target("target", &row.target)?;
    // Decided before the account's key is unsealed, as every decision is.
    let account = accounts::row(state, &row.account).await?;
    let checks = vec![
        ops::use_account(&account.name),
        ops::describe_call("DescribeVolumes", &account.region),
        ops::describe_call("DescribeSnapshots", &account.region),
    ];
    authorize(state, &owner, checks).await?;
    let (_, target) = accounts::target(state, &row.account).await?;
    let ec2 = state.cloud.ec2(&target).await?;
    let volumes = ec2.describe_volumes(&[filter]).await?;
    if volumes.len() > MAX_VOLUMES {
        return Err(ApiError::Conflict(format!(
            "{} matches {} volumes; a policy snapshots at most {MAX_VOLUMES}",
            row.target,
            volumes.len()
        )));
    }
    let mut snapshotted = Vec::new();
    for volume in &volumes {
        let request = FleetRequest::Snapshot(SnapshotRequest::Create(CreateSnapshot {
            volume_id: volume.volume_id.clone(),
            description: Some(format!("airlock snapshot policy {}", row.name)),
            tags: snapshot_tags(&row.name, &volume.tags),
        }));
        match crate::fleet::run_as(state, &owner, &row.account, &request).await {
            Ok(outcome) => {
                run.created.extend(outcome.resource_id);
                snapshotted.push(volume);
            }
            Err(e) => run.errors.push(format!("{}: {e}", volume.volume_id)),
        }
    }
    let now = Utc::now();
    // Retention only where this run took a new snapshot: a volume whose snapshot failed keeps
    // every one it has, so repeated failures never age its last snapshots away.
    for volume in snapshotted {
        let by_policy = [
            Filter::new(format!("tag:{POLICY_TAG}"), &row.name),
            Filter::new("volume-id", &volume.volume_id),
        ];
        let snapshots = match ec2.describe_snapshots(&by_policy, &[]).await {
            Ok(s) => s,
            Err(e) => {
                run.errors.push(format!("{}: {e}", volume.volume_id));
                continue;
            }
        };
        for id in expired(row, &snapshots, &run.created, now) {
            let request = FleetRequest::Snapshot(SnapshotRequest::Delete(DeleteSnapshot {
                snapshot_id: id.clone(),
            }));
            match crate::fleet::run_as(state, &owner, &row.account, &request).await {
                Ok(_) => run.deleted.push(id),
                Err(e) => run.errors.push(format!("{id}: {e}")),
            }
        }
    }
    Ok(())
}

/// The tags of a policy's snapshot: the volume's own (those AWS and Airlock do not reserve,
/// within EC2's 50 per resource) and the policy's name.
fn snapshot_tags(policy: &str, volume_tags: &[Tag]) -> Vec<Tag> {
    let mut tags: Vec<Tag> = volume_tags
        .iter()
        .filter(|t| !t.key.starts_with("aws:") && !t.key.starts_with("airlock:"))
        .take(49)
        .cloned()
        .collect();
    tags.push(Tag::new(POLICY_TAG, policy));
    tags
}

/// The policy's snapshots of one volume that retention deletes: those neither among the
/// newest `retain` nor younger than `retain_days`. Only snapshots tagged with this policy's
/// name are ever candidates, and those this run just took are always kept.
fn expired(
    row: &SnapshotPolicyRow,
    snapshots: &[Snapshot],
    taken_now: &[String],
    now: DateTime<Utc>,
) -> Vec<String> {
    let mut ours: Vec<&Snapshot> = snapshots
        .iter()
        .filter(|s| {
            s.tags
                .iter()
                .any(|t| t.key == POLICY_TAG && t.value == row.name)
        })
        .collect();
    // Newest first; this run's snapshots before any other, whatever EC2's clock says.
    ours.sort_by_key(|s| {
        (
            !taken_now.contains(&s.snapshot_id),
            std::cmp::Reverse(s.start_time),
        )
    });
    let keep_count = row
        .retain_count
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0);
    let young = |s: &Snapshot| {
        row.retain_days.is_some_and(|days| {
            s.start_time
                .is_none_or(|t| now.signed_duration_since(t) < chrono::Duration::days(days))
        })
    };
    ours.iter()
        .enumerate()
        .filter(|(i, s)| *i >= keep_count && !young(s) && !taken_now.contains(&s.snapshot_id))
        .map(|(_, s)| s.snapshot_id.clone())
        .collect()
}

/// Fires the policies whose schedule is due at `now` (on the schedules lease holder).
pub(crate) async fn fire_due(state: &AppState, now: DateTime<Utc>) -> ApiResult<()> {
    for row in state.store.snapshot_policies().await? {
        if !scheduled(&row).due(now) {
            continue;
        }
        let at = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        match run_policy(state, &row, "scheduled", Some(&at)).await {
            Ok(_) => {}
            Err(ApiError::Conflict(_)) => {}
            Err(e) => {
                tracing::warn!(policy = %row.name, error = %e, "scheduled snapshot policy run failed")
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(retain: Option<i64>, days: Option<i64>) -> SnapshotPolicyRow {
        SnapshotPolicyRow {
            name: "daily".into(),
            account: "dev".into(),
            target: "tag:Backup=daily".into(),
            schedule: "rate(1 day)".into(),
            retain_count: retain,
            retain_days: days,
            created_by: "ana".into(),
            created_at: "2026-12-01T00:00:00Z".into(),
            last_scheduled_at: None,
        }
    }

    fn snap(id: &str, policy: Option<&str>, age_days: i64, now: DateTime<Utc>) -> Snapshot {
        Snapshot {
            snapshot_id: id.into(),
            volume_id: Some("vol-1".into()),
            state: Some("completed".into()),
            progress: None,
            volume_size_gib: None,
            description: None,
            encrypted: None,
            owner_id: None,
            start_time: Some(now - chrono::Duration::days(age_days)),
            tags: policy
                .map(|p| vec![Tag::new(POLICY_TAG, p)])
                .unwrap_or_default(),
        }
    }

    #[test]
    fn retention_keeps_the_newest_and_never_touches_other_snapshots() {
        let now = Utc::now();
        let all = [
            snap("snap-new", Some("daily"), 0, now),
            snap("snap-mid", Some("daily"), 1, now),
            snap("snap-old", Some("daily"), 2, now),
            snap("snap-hand", None, 30, now),
            snap("snap-other", Some("weekly"), 30, now),
        ];
        assert_eq!(expired(&row(Some(2), None), &all, &[], now), ["snap-old"]);
        assert_eq!(
            expired(&row(None, Some(2)), &all, &[], now),
            ["snap-old"],
            "younger than 2 days is kept"
        );
        assert!(expired(&row(Some(1), Some(5)), &all, &[], now).is_empty());
    }

    #[test]
    fn a_snapshot_this_run_took_is_kept_whatever_its_clock_says() {
        let now = Utc::now();
        let all = [
            snap("snap-a", Some("daily"), 0, now),
            snap("snap-b", Some("daily"), 0, now),
            snap("snap-just-taken", Some("daily"), 3, now),
        ];
        let gone = expired(&row(Some(1), None), &all, &["snap-just-taken".into()], now);
        assert_eq!(gone.len(), 2);
        assert!(!gone.contains(&"snap-just-taken".to_owned()));
    }

    #[test]
    fn targets_are_tag_filters() {
        assert_eq!(
            validate::tag_target("target", "tag:Backup=daily").unwrap(),
            Filter::new("tag:Backup", "daily")
        );
        for bad in ["Backup=daily", "tag:=x", "tag:Backup", "vol-123"] {
            assert!(validate::tag_target("target", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn volume_tags_are_copied_without_reserved_ones() {
        let tags = snapshot_tags(
            "daily",
            &[
                Tag::new("team", "db"),
                Tag::new("aws:cloudformation:stack-name", "x"),
                Tag::new("airlock:deployment", "dep-1"),
            ],
        );
        assert_eq!(
            tags,
            [Tag::new("team", "db"), Tag::new(POLICY_TAG, "daily")]
        );
    }
}
