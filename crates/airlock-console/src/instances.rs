//! Instances: listing across accounts with EC2 filters and status checks, watching them
//! change, and start/stop/reboot/terminate.

use crate::accounts;
use crate::api::{AccountInstance, InstanceActionRequest, InstanceActionResponse, InstanceList};
use crate::audit::{self, Entry};
use crate::auth::Caller;
use crate::authz::{authorize, precheck, Check};
use crate::error::{ApiError, ApiResult};
use crate::json::Body;
use crate::state::AppState;
use crate::validate;
use airlock_access::ops;
use airlock_cloud::{Filter, StateAction};
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::Json;
use serde::Deserialize;
use std::collections::HashMap;
use std::convert::Infallible;
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
/// that the caller may describe (`ec2:DescribeInstances` on each, with its tags).
async fn describe(
    state: &AppState,
    caller: &Caller,
    q: &ListQuery,
    names: &[String],
    filters: &[Filter],
) -> ApiResult<Vec<AccountInstance>> {
    let policies = crate::authz::policies_of(state, &caller.user).await?;
    let principal = crate::authz::principal(caller);
    let mut instances = Vec::new();
    for name in names {
        let (row, target) = accounts::target(state, name).await?;
        let scope = accounts::scope_of(&row);
        let ec2 = state.cloud.ec2(&target).await?;
        let found: Vec<_> = ec2
            .describe_instances(filters, &[])
            .await?
            .into_iter()
            .filter(|i| {
                crate::authz::permits(
                    &policies,
                    &principal,
                    &ops::instance(&scope, "ec2:DescribeInstances", i),
                )
            })
            .collect();
        let mut statuses = HashMap::new();
        let ids: Vec<String> = found
            .iter()
            .filter(|i| {
                let check = ops::instance(&scope, "ec2:DescribeInstanceStatus", i);
                q.status && crate::authz::permits(&policies, &principal, &check)
            })
            .map(|i| i.instance_id.clone())
            .collect();
        if !ids.is_empty() {
            // By id, in batches EC2 accepts in one request.
            for batch in ids.chunks(100) {
                for s in ec2.describe_instance_status(batch).await? {
                    statuses.insert(s.instance_id.clone(), s);
                }
            }
        }
        for instance in found {
            instances.push(AccountInstance {
                account: name.clone(),
                status: statuses.remove(&instance.instance_id),
                instance,
            });
        }
    }
    Ok(instances)
}

/// `GET /v1/instances`.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<InstanceList>> {
    let filters = filters(&q)?;
    let names = accounts_of(&state, &caller, &q).await?;
    let instances = describe(&state, &caller, &q, &names, &filters).await?;
    record_listing(
        &state,
        &caller,
        "ec2:DescribeInstances",
        &names,
        instances.len(),
    )
    .await;
    Ok(Json(InstanceList { instances }))
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
/// it no longer matches (`gone`). EC2 is looked at every `interval` seconds (default 2).
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
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let _slot = slot;
        let mut known: HashMap<String, (String, Option<String>, Option<String>)> = HashMap::new();
        let mut first = true;
        loop {
            let event = match describe(&state, &caller, &q, &names, &filters).await {
                Ok(now) => {
                    let mut events = Vec::new();
                    let mut seen = std::collections::HashSet::new();
                    for i in now {
                        let key = format!("{}/{}", i.account, i.instance.instance_id);
                        let sig = signature(&i);
                        seen.insert(key.clone());
                        if known.get(&key) != Some(&sig) {
                            known.insert(key, sig);
                            events.push(json_event("instance", &i));
                        }
                    }
                    known.retain(|key, _| {
                        let keep = seen.contains(key);
                        if !keep {
                            events.push(json_event("gone", &serde_json::json!({ "id": key })));
                        }
                        keep
                    });
                    if first {
                        events.push(SseEvent::default().event("ready").data("{}"));
                        first = false;
                    }
                    events
                }
                Err(e) => vec![json_event(
                    "error",
                    &serde_json::json!({ "message": e.to_string() }),
                )],
            };
            for e in event {
                if tx.send(e).await.is_err() {
                    return;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs_f64(interval)) => {}
                _ = tx.closed() => return,
            }
            if !crate::streams::login_holds(&state, &caller).await {
                return;
            }
        }
    });
    Ok(Sse::new(crate::events::Watch(rx)).keep_alive(KeepAlive::default()))
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
pub async fn act(
    State(state): State<AppState>,
    caller: Caller,
    Path(action): Path<String>,
    Body(req): Body<InstanceActionRequest>,
) -> ApiResult<Json<InstanceActionResponse>> {
    let act = match action.as_str() {
        "start" => StateAction::Start,
        "stop" => StateAction::Stop,
        "reboot" => StateAction::Reboot,
        "terminate" => StateAction::Terminate,
        other => {
            return Err(ApiError::NotFound(format!(
                "unknown instance action {other:?}: use start, stop, reboot or terminate"
            )))
        }
    };
    if req.instance_ids.is_empty() {
        return Err(ApiError::field(
            "instance_ids",
            "give at least one instance id",
        ));
    }
    for (i, id) in req.instance_ids.iter().enumerate() {
        validate::ec2_id(&format!("instance_ids[{i}]"), id, "i-")?;
    }
    let mut ids = req.instance_ids.clone();
    ids.sort();
    ids.dedup();
    precheck(&state, &caller, vec![ops::use_account(&req.account)]).await?;
    let (account, target) = accounts::target_for_request(&state, &req.account).await?;
    let ec2 = state.cloud.ec2(&target).await?;
    let api_action = format!("ec2:{}", act.api_name());
    let scope = accounts::scope_of(&account);
    // The instances' real tags decide, so describe them first. Every requested id gets a check:
    // one EC2 does not report is decided as untagged, so a caller who may not act on it learns
    // nothing of whether it exists, and nothing unchecked reaches EC2.
    let described = ec2.describe_instances(&[], &ids).await;
    let (found, missing) = match described {
        Ok(list) => {
            let list: Vec<_> = list
                .into_iter()
                .filter(|i| ids.contains(&i.instance_id))
                .collect();
            let missing: Vec<String> = ids
                .iter()
                .filter(|id| !list.iter().any(|i| &i.instance_id == *id))
                .cloned()
                .collect();
            (list, missing)
        }
        Err(e) if e.code.as_deref() == Some("InvalidInstanceID.NotFound") => {
            let checks: Vec<Check> = std::iter::once(ops::use_account(&account.name))
                .chain(
                    ids.iter()
                        .map(|id| ops::unknown_instance(&scope, &api_action, id)),
                )
                .collect();
            authorize(&state, &caller, checks).await?;
            return Err(e.into());
        }
        Err(e) => return Err(e.into()),
    };
    let mut checks = vec![ops::use_account(&account.name)];
    checks.extend(found.iter().map(|i| ops::instance(&scope, &api_action, i)));
    checks.extend(
        missing
            .iter()
            .map(|id| ops::unknown_instance(&scope, &api_action, id)),
    );
    let resources: Vec<String> = checks.iter().skip(1).map(|c| c.resource.clone()).collect();
    authorize(&state, &caller, checks).await?;
    let result = ec2.change_state(act, &ids).await;
    audit::record_call(
        &state,
        Entry::for_caller(&caller, &api_action, resources),
        &result,
        |id| id.clone(),
    )
    .await;
    let request_id = result?;
    if act == StateAction::Terminate {
        // A terminated instance of a scoped deployment may never refresh again.
        for instance in &found {
            if let Some(dep) = instance
                .tags
                .iter()
                .find(|t| t.key == crate::deployments::DEPLOYMENT_TAG)
            {
                crate::refresh::revoke_instances(
                    &state,
                    &dep.value,
                    std::slice::from_ref(&instance.instance_id),
                )
                .await;
            }
        }
    }
    tracing::info!(user = %caller.user, action = act.api_name(), instances = ?req.instance_ids, aws_request_id = ?request_id, "instance action");
    Ok(Json(InstanceActionResponse {
        action,
        instance_ids: req.instance_ids,
        aws_request_id: request_id,
    }))
}
