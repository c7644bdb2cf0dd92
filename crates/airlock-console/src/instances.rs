//! Instances: listing across accounts with EC2 filters and status checks, watching them
//! change, and start/stop/reboot/terminate.

use crate::accounts;
use crate::audit::{self, Entry};
use crate::auth::Caller;
use crate::authz::{authorize, precheck, Check};
use crate::error::{ApiError, ApiResult};
use crate::json::Body;
use crate::poller::{PollKey, Poller, Snapshot as PollSnapshot};
use crate::snapshots::{Question, Snapshot};
use crate::state::AppState;
use crate::validate;
use airlock_access::ops;
use airlock_api::instances::{
    AccountInstance, InstanceActionRequest, InstanceActionResponse, InstanceList,
};
use airlock_cloud::{Filter, Scope, StateAction};
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::Json;
use serde::Deserialize;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Query of `GET /v1/instances`; `tag` and `filter` may repeat.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// Only this account (default: every account).
    pub account: Option<String>,
    /// Only this deployment's instances.
    pub deployment: Option<String>,
    /// `KEY=VALUE` tag filters, all of which must match.
    #[serde(default)]
    pub tag: Vec<String>,
    /// Raw EC2 filters `NAME=VALUE[,VALUE…]`, e.g. `instance-state-name=running`.
    #[serde(default)]
    pub filter: Vec<String>,
    /// Include status checks (`DescribeInstanceStatus`).
    #[serde(default)]
    pub status: bool,
    /// Seconds between looks when watching (default 2).
    #[serde(default)]
    pub interval: Option<f64>,
}

/// Turns the query into EC2 filters.
pub fn filters(q: &ListQuery) -> ApiResult<Vec<Filter>> {
    Ok(airlock_fleet::filters(
        q.deployment.as_deref(),
        &q.tag,
        &q.filter,
    )?)
}

/// The accounts a listing covers: the one named, the deployment's, or all of them. Naming an
/// account (or a deployment) the caller may not get or use is refused; a listing of all
/// accounts covers those the caller may use.
pub async fn accounts_of(
    state: &AppState,
    caller: &Caller,
    q: &ListQuery,
) -> ApiResult<Vec<String>> {
    Ok(match (&q.account, &q.deployment) {
        (Some(a), _) => {
            precheck(state, caller, vec![ops::use_account(a)]).await?;
            vec![a.clone()]
        }
        (None, Some(d)) => {
            let dep =
                crate::deployments::find_for(state, caller, "airlock:GetDeployment", d).await?;
            precheck(state, caller, vec![ops::use_account(&dep.account)]).await?;
            vec![dep.account]
        }
        (None, None) => {
            let policies = crate::authz::policies_of(state, &caller.user).await?;
            let principal = crate::authz::principal(caller);
            state
                .store
                .accounts()
                .await?
                .into_iter()
                .map(|a| a.name)
                .filter(|name| {
                    crate::authz::permits(&policies, &principal, &ops::use_account(name))
                })
                .collect()
        }
    })
}

/// The instances (with status checks when asked) of these accounts, as EC2 reports them now,
/// that the caller may describe (`ec2:DescribeInstances` on each, with its tags), and when the
/// oldest of the accounts' snapshots was taken.
async fn describe(
    state: &AppState,
    caller: &Caller,
    q: &ListQuery,
    names: &[String],
    filters: &[Filter],
) -> ApiResult<(Vec<AccountInstance>, Option<chrono::DateTime<chrono::Utc>>)> {
    let viewer = Viewer::of(state, caller).await?;
    let mut instances = Vec::new();
    let mut oldest = None;
    // A few accounts at a time: the listing waits for the slowest account, not for their sum.
    for group in names.chunks(ACCOUNTS_AT_ONCE) {
        let looks = group
            .iter()
            .map(|name| describe_account(state, name, filters, q.status));
        for snapshot in futures_util::future::try_join_all(looks).await? {
            let at = snapshot.taken_at;
            oldest = Some(oldest.map_or(at, |o: chrono::DateTime<chrono::Utc>| o.min(at)));
            instances.extend(viewer.visible(&snapshot.scope, snapshot.instances.clone()));
        }
    }
    Ok((instances, oldest))
}

/// Who is looking: their policies, to show each instance (and its status checks) only to
/// those who may describe it.
pub struct Viewer {
    policies: Arc<Vec<airlock_policy::Policy>>,
    principal: airlock_access::Principal,
}

impl Viewer {
    /// The caller's policies as they are now.
    pub async fn of(state: &AppState, caller: &Caller) -> ApiResult<Viewer> {
        Ok(Viewer {
            policies: crate::authz::policies_of(state, &caller.user).await?,
            principal: crate::authz::principal(caller),
        })
    }

    /// The instances the viewer may describe, without the status checks they may not see.
    pub fn visible(&self, scope: &Scope, instances: Vec<AccountInstance>) -> Vec<AccountInstance> {
        instances
            .into_iter()
            .filter_map(|mut i| {
                let may = |action: &str| {
                    crate::authz::permits(
                        &self.policies,
                        &self.principal,
                        &ops::instance(scope, action, &i.instance),
                    )
                };
                if !may("ec2:DescribeInstances") {
                    return None;
                }
                if i.status.is_some() && !may("ec2:DescribeInstanceStatus") {
                    i.status = None;
                }
                Some(i)
            })
            .collect()
    }
}

/// Accounts one listing describes at the same time.
const ACCOUNTS_AT_ONCE: usize = 4;

/// Instance ids EC2 accepts in one `DescribeInstanceStatus`.
const STATUS_BATCH: usize = 100;
/// `DescribeInstanceStatus` calls one listing makes at the same time.
const STATUS_CALLS_AT_ONCE: usize = 4;

/// Every instance of one account matching `filters`, with status checks when asked, as the
/// console sees them, and the account's scope: callers see only what [`Viewer::visible`] leaves.
/// Listings and watches asking the same within a moment share one look ([`crate::snapshots`]).
pub async fn describe_account(
    state: &AppState,
    name: &str,
    filters: &[Filter],
    with_status: bool,
) -> ApiResult<Arc<Snapshot>> {
    let question = Question {
        account: name.to_owned(),
        filters: filters.to_vec(),
        with_status,
    };
    state
        .snapshots
        .answer(question, || async {
            let (scope, instances) = look_at_account(state, name, filters, with_status).await?;
            Ok(Snapshot::now(scope, instances))
        })
        .await
}

/// What EC2 says of the account's instances now.
async fn look_at_account(
    state: &AppState,
    name: &str,
    filters: &[Filter],
    with_status: bool,
) -> ApiResult<(Scope, Vec<AccountInstance>)> {
    let (row, target) = accounts::target(state, name).await?;
    let ec2 = state.cloud.ec2(&target).await?;
    let found = ec2.describe_instances(filters, &[]).await?;
    let mut statuses = HashMap::new();
    if with_status {
        let ids: Vec<String> = found.iter().map(|i| i.instance_id.clone()).collect();
        // By id, in batches EC2 accepts in one request, a few at a time: a thousand instances
        // wait for the slowest of ten calls, not for the sum of them.
        for calls in ids.chunks(STATUS_BATCH * STATUS_CALLS_AT_ONCE) {
            let batches = calls
                .chunks(STATUS_BATCH)
                .map(|batch| ec2.describe_instance_status(batch));
            for s in futures_util::future::try_join_all(batches)
                .await?
                .into_iter()
                .flatten()
            {
                statuses.insert(s.instance_id.clone(), s);
            }
        }
    }
    let instances = found
        .into_iter()
        .map(|instance| AccountInstance {
            account: name.to_owned(),
            status: statuses.remove(&instance.instance_id),
            instance,
        })
        .collect();
    Ok((accounts::scope_of(&row), instances))
}

/// `GET /v1/instances`.
#[utoipa::path(
    get,
    path = "/v1/instances",
    summary = "List instances across accounts with EC2 filters, optionally with status checks (ec2:DescribeInstances, and ec2:DescribeInstanceStatus with status=true, on *; airlock:UseAccount on each account)",
    params(crate::openapi::Listing, crate::openapi::WithStatus, crate::openapi::Interval),
    responses(
        (status = 200, description = "Instances", body = airlock_api::instances::InstanceList),
        (status = 400, description = "Error", body = airlock_api::ErrorBody),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
        (status = 404, description = "Error", body = airlock_api::ErrorBody),
        (status = 502, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<InstanceList>> {
    let filters = filters(&q)?;
    let names = accounts_of(&state, &caller, &q).await?;
    let (instances, described_at) = describe(&state, &caller, &q, &names, &filters).await?;
    record_listing(
        &state,
        &caller,
        "ec2:DescribeInstances",
        &names,
        instances.len(),
    )
    .await;
    Ok(Json(InstanceList {
        instances,
        described_at: described_at
            .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
    }))
}

/// Records a listing: which accounts it covered and how many items the caller was shown.
pub async fn record_listing(
    state: &AppState,
    caller: &Caller,
    action: &str,
    accounts: &[String],
    shown: usize,
) {
    let resources = accounts
        .iter()
        .map(|a| airlock_access::console_arn("account", a))
        .collect();
    audit::record_ok(
        state,
        Entry::for_caller(caller, action, resources),
        Some(format!("{shown} shown, each one the caller may describe")),
    )
    .await;
}

/// What a watcher is told about: an instance's state and status checks.
fn signature(i: &AccountInstance) -> (String, Option<String>, Option<String>) {
    (
        i.instance.state.clone(),
        i.status.as_ref().and_then(|s| s.system_status.clone()),
        i.status.as_ref().and_then(|s| s.instance_status.clone()),
    )
}

/// `GET /v1/instances/watch`: Server-Sent Events for the selected instances: each as it is
/// first (`instance`), then whenever its state or status checks change (`instance`), and when
/// it no longer matches (`gone`). EC2 is looked at every `interval` seconds (default 2), by one
/// poller per account shared with every other watch of the same query.
#[utoipa::path(
    get,
    path = "/v1/instances/watch",
    summary = "Server-Sent Events: the selected instances with their status checks as they change (ec2:DescribeInstances and ec2:DescribeInstanceStatus on *; airlock:UseAccount on each account)",
    params(crate::openapi::Listing, crate::openapi::Interval),
    responses(
        (status = 200, description = "An endless text/event-stream. Event `instance`: an instance (the Instance schema, with status) when first seen and whenever its state or status checks change. Event `gone`: {\"id\": \"ACCOUNT/INSTANCE_ID\"} when an instance no longer matches. Event `ready`: {} once, after the first full look. Event `error`: {\"message\": \"…\"} when a look at EC2 failed; the stream goes on and looks again.", content_type = "text/event-stream", body = String),
        (status = 400, description = "Error", body = airlock_api::ErrorBody),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
        (status = 404, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn watch(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(mut q): RawQuery,
) -> ApiResult<Sse<impl futures_core::Stream<Item = Result<SseEvent, Infallible>>>> {
    q.status = true;
    let filters = filters(&q)?;
    let interval = q.interval.unwrap_or(2.0);
    if !(0.2..=300.0).contains(&interval) {
        return Err(ApiError::field(
            "interval",
            format!("{interval} is not between 0.2 and 300 seconds"),
        ));
    }
    let names = accounts_of(&state, &caller, &q).await?;
    let slot = state.streams.open(&caller.user)?;
    let interval = std::time::Duration::from_secs_f64(interval);
    let pollers = names
        .iter()
        .map(|name| poller(&state, name, &filters, interval))
        .collect();
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let _slot = slot;
        follow(&state, &caller, pollers, tx).await;
    });
    Ok(Sse::new(crate::events::Watch(rx)).keep_alive(KeepAlive::default()))
}

/// The shared poller of one account's instances matching `filters`, with status checks.
fn poller(
    state: &AppState,
    account: &str,
    filters: &[Filter],
    interval: std::time::Duration,
) -> Arc<Poller> {
    let key = PollKey {
        account: account.to_owned(),
        filters: filters.to_vec(),
        with_status: true,
        interval,
    };
    let (looker, account, filters) = (state.clone(), account.to_owned(), filters.to_vec());
    state.pollers.get_or_start(key, move || {
        let (state, account, filters) = (looker.clone(), account.clone(), filters.clone());
        async move {
            describe_account(&state, &account, &filters, true)
                .await
                .map(|s| (s.scope.clone(), s.instances.clone()))
                .map_err(|e| e.to_string())
        }
    })
}

/// Sends the watcher what changed in its pollers' snapshots, as its policies let it see them,
/// until it goes away or its login no longer holds.
async fn follow(
    state: &AppState,
    caller: &Caller,
    pollers: Vec<Arc<Poller>>,
    tx: mpsc::Sender<SseEvent>,
) {
    let receivers: Vec<_> = pollers.iter().map(|p| p.subscribe()).collect();
    let (changed_tx, mut changed) = mpsc::channel::<()>(1);
    for mut rx in receivers.clone() {
        let changed_tx = changed_tx.clone();
        tokio::spawn(async move {
            loop {
                if let Err(mpsc::error::TrySendError::Closed(())) = changed_tx.try_send(()) {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        });
    }
    drop(changed_tx);
    let mut seen = Seen::default();
    let mut recheck = tokio::time::interval(crate::streams::RECHECK);
    loop {
        tokio::select! {
            got = changed.recv() => if got.is_none() { return },
            _ = recheck.tick() => {
                if !crate::streams::login_holds(state, caller).await {
                    return;
                }
                continue;
            }
            _ = tx.closed() => return,
        }
        // Only once every account has been looked at.
        let Some(snapshots) = receivers
            .iter()
            .map(|r| r.borrow().clone())
            .collect::<Option<Vec<PollSnapshot>>>()
        else {
            continue;
        };
        let events = match Viewer::of(state, caller).await {
            Ok(viewer) => seen.update(&viewer, &snapshots),
            Err(e) => vec![json_event(
                "error",
                &serde_json::json!({ "message": e.to_string() }),
            )],
        };
        for e in events {
            if tx.send(e).await.is_err() {
                return;
            }
        }
    }
}

/// What a watcher has been told: each instance's state and status checks.
#[derive(Default)]
struct Seen {
    known: HashMap<String, (String, Option<String>, Option<String>)>,
    ready: bool,
}

impl Seen {
    /// The events that bring the watcher from what it was told to these snapshots.
    fn update(&mut self, viewer: &Viewer, snapshots: &[PollSnapshot]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        let mut now = std::collections::HashSet::new();
        for snapshot in snapshots {
            let (scope, instances) = match snapshot.as_ref() {
                Ok(found) => found,
                Err(message) => {
                    events.push(json_event(
                        "error",
                        &serde_json::json!({ "message": message }),
                    ));
                    continue;
                }
            };
            for i in viewer.visible(scope, instances.clone()) {
                let key = format!("{}/{}", i.account, i.instance.instance_id);
                let sig = signature(&i);
                now.insert(key.clone());
                if self.known.get(&key) != Some(&sig) {
                    self.known.insert(key, sig);
                    events.push(json_event("instance", &i));
                }
            }
        }
        self.known.retain(|key, _| {
            let keep = now.contains(key);
            if !keep {
                events.push(json_event("gone", &serde_json::json!({ "id": key })));
            }
            keep
        });
        if !self.ready {
            events.push(SseEvent::default().event("ready").data("{}"));
            self.ready = true;
        }
        events
    }
}

fn json_event(name: &str, value: &impl serde::Serialize) -> SseEvent {
    SseEvent::default()
        .event(name)
        .data(serde_json::to_string(value).unwrap_or_default())
}

/// Parses repeated query keys (`tag=a=1&tag=b=2`), which `axum::extract::Query` cannot.
pub struct RawQuery(pub ListQuery);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for RawQuery {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let mut q = ListQuery::default();
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map_err(|e| ApiError::field("query", e.to_string()))?;
        for (k, v) in pairs {
            match k.as_str() {
                "account" => q.account = Some(v),
                "deployment" => q.deployment = Some(v),
                "tag" => q.tag.push(v),
                "filter" => q.filter.push(v),
                "status" => {
                    q.status = v.parse().map_err(|_| {
                        ApiError::field("status", format!("{v:?} is not true or false"))
                    })?
                }
                "interval" => {
                    q.interval = Some(v.parse().map_err(|_| {
                        ApiError::field("interval", format!("{v:?} is not a number of seconds"))
                    })?)
                }
                other => {
                    return Err(ApiError::field(
                        other,
                        "unknown query parameter: use account, deployment, tag, filter, status or interval",
                    ))
                }
            }
        }
        Ok(RawQuery(q))
    }
}

/// `POST /v1/instances/{action}` with action `start`, `stop`, `reboot` or `terminate`.
#[utoipa::path(
    post,
    path = "/v1/instances/{action}",
    summary = "Start, stop, reboot or terminate instances",
    params(("action" = inline(airlock_cloud::StateAction), Path)),
    request_body = airlock_api::instances::InstanceActionRequest,
    responses(
        (status = 200, description = "Done", body = airlock_api::instances::InstanceActionResponse),
        (status = 400, description = "Error", body = airlock_api::ErrorBody),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 404, description = "Error", body = airlock_api::ErrorBody),
        (status = 502, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn act(
    State(state): State<AppState>,
    caller: Caller,
    Path(action): Path<String>,
    Body(req): Body<InstanceActionRequest>,
) -> ApiResult<Json<InstanceActionResponse>> {
    let act = state_action(&action)?;
    let request_id = act_as(&state, &caller, act, &req).await?;
    Ok(Json(InstanceActionResponse {
        action,
        instance_ids: req.instance_ids,
        aws_request_id: request_id,
    }))
}

/// Starts, stops, reboots or terminates instances as `caller` (a user, or a maintenance window
/// acting for its owner): decided with every instance's tags, called, audited.
pub(crate) async fn act_as(
    state: &AppState,
    caller: &Caller,
    act: StateAction,
    req: &InstanceActionRequest,
) -> ApiResult<Option<String>> {
    let ids = requested_ids(&req.instance_ids)?;
    precheck(state, caller, vec![ops::use_account(&req.account)]).await?;
    let (account, target) = accounts::target_for_request(state, &req.account).await?;
    let ec2 = state.cloud.ec2(&target).await?;
    let api_action = format!("ec2:{}", act.api_name());
    let scope = accounts::scope_of(&account);
    let described = state_change(ec2.as_ref(), &scope, &account.name, &api_action, &ids).await?;
    let resources = described.resources();
    authorize(state, caller, described.checks).await?;
    if let Some(e) = described.not_found {
        return Err(e.into());
    }
    let found = described.found;
    let result = ec2.change_state(act, &ids).await;
    audit::record_call(
        state,
        Entry::for_caller(caller, &api_action, resources),
        &result,
        |id| id.clone(),
    )
    .await;
    let request_id = result?;
    if act == StateAction::Terminate {
        revoke_terminated(state, &found).await;
    }
    tracing::info!(user = %caller.user, action = act.api_name(), instances = ?req.instance_ids, aws_request_id = ?request_id, "instance action");
    Ok(request_id)
}

/// The action a path names.
fn state_action(action: &str) -> ApiResult<StateAction> {
    match action {
        "start" => Ok(StateAction::Start),
        "stop" => Ok(StateAction::Stop),
        "reboot" => Ok(StateAction::Reboot),
        "terminate" => Ok(StateAction::Terminate),
        other => Err(ApiError::NotFound(format!(
            "unknown instance action {other:?}: use start, stop, reboot or terminate"
        ))),
    }
}

/// The requested instance ids, checked, sorted and each once.
fn requested_ids(instance_ids: &[String]) -> ApiResult<Vec<String>> {
    if instance_ids.is_empty() {
        return Err(ApiError::field(
            "instance_ids",
            "give at least one instance id",
        ));
    }
    for (i, id) in instance_ids.iter().enumerate() {
        validate::ec2_id(&format!("instance_ids[{i}]"), id, "i-")?;
    }
    let mut ids = instance_ids.to_vec();
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// What a start, stop, reboot or terminate of some instances is decided on.
pub(crate) struct StateChange {
    /// The use of the account, then one check per requested instance.
    pub checks: Vec<Check>,
    /// The instances EC2 reported.
    pub found: Vec<airlock_cloud::Instance>,
    /// EC2's refusal when it knows none of them: returned once the checks are decided.
    pub not_found: Option<airlock_cloud::CloudError>,
}

impl StateChange {
    /// The resources decided on, for the audit record.
    pub fn resources(&self) -> Vec<String> {
        self.checks
            .iter()
            .skip(1)
            .map(|c| c.resource.clone())
            .collect()
    }
}

/// The checks of `api_action` on the instances `ids`. Their real tags decide, so they are
/// described first. Every requested id gets a check: one EC2 does not report is decided as
/// untagged, so a caller who may not act on it learns nothing of whether it exists, and nothing
/// unchecked reaches EC2.
pub(crate) async fn state_change(
    ec2: &dyn airlock_cloud::Ec2,
    scope: &airlock_cloud::Scope,
    account: &str,
    api_action: &str,
    ids: &[String],
) -> ApiResult<StateChange> {
    let unknown = |id: &String| ops::unknown_instance(scope, api_action, id);
    let mut checks = vec![ops::use_account(account)];
    match ec2.describe_instances(&[], ids).await {
        Ok(list) => {
            let (found, missing) = found_and_missing(list, ids);
            checks.extend(found.iter().map(|i| ops::instance(scope, api_action, i)));
            checks.extend(missing.iter().map(unknown));
            Ok(StateChange {
                checks,
                found,
                not_found: None,
            })
        }
        Err(e) if e.code.as_deref() == Some("InvalidInstanceID.NotFound") => {
            checks.extend(ids.iter().map(unknown));
            Ok(StateChange {
                checks,
                found: Vec::new(),
                not_found: Some(e),
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// The requested instances EC2 reported, and the ids it did not.
fn found_and_missing(
    described: Vec<airlock_cloud::Instance>,
    ids: &[String],
) -> (Vec<airlock_cloud::Instance>, Vec<String>) {
    let found: Vec<_> = described
        .into_iter()
        .filter(|i| ids.contains(&i.instance_id))
        .collect();
    let missing = ids
        .iter()
        .filter(|id| !found.iter().any(|i| &i.instance_id == *id))
        .cloned()
        .collect();
    (found, missing)
}

/// A terminated instance of a scoped deployment may never refresh again.
pub(crate) async fn revoke_terminated(state: &AppState, terminated: &[airlock_cloud::Instance]) {
    for instance in terminated {
        if let Some(dep) = instance
            .tags
            .iter()
            .find(|t| t.key == crate::deployments::DEPLOYMENT_TAG)
        {
            crate::refresh::revoke_instances(
                state,
                &dep.value,
                std::slice::from_ref(&instance.instance_id),
            )
            .await;
        }
    }
}
