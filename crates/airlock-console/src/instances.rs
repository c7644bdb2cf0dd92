//! Instances: listing across accounts with EC2 filters, and start/stop/reboot/terminate.

use crate::accounts;
use crate::api::{AccountInstance, InstanceActionRequest, InstanceActionResponse, InstanceList};
use crate::audit::{self, Entry};
use crate::auth::Caller;
use crate::authz::{authorize, Check};
use crate::deployments::instance_check;
use crate::deployments::DEPLOYMENT_TAG;
use crate::error::{ApiError, ApiResult};
use crate::json::Body;
use crate::state::AppState;
use crate::validate;
use airlock_cloud::{Filter, StateAction};
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;

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
}

/// Turns the query into EC2 filters.
pub fn filters(q: &ListQuery) -> ApiResult<Vec<Filter>> {
    let mut out = Vec::new();
    if let Some(d) = &q.deployment {
        out.push(Filter::new(format!("tag:{DEPLOYMENT_TAG}"), d));
    }
    for (i, t) in q.tag.iter().enumerate() {
        let (k, v) = t.split_once('=').ok_or_else(|| {
            ApiError::field(format!("tag[{i}]"), format!("{t:?} is not KEY=VALUE"))
        })?;
        if k.is_empty() {
            return Err(ApiError::field(format!("tag[{i}]"), "the tag key is empty"));
        }
        out.push(Filter::new(format!("tag:{k}"), v));
    }
    for (i, f) in q.filter.iter().enumerate() {
        let (name, values) = f.split_once('=').ok_or_else(|| {
            ApiError::field(
                format!("filter[{i}]"),
                format!("{f:?} is not NAME=VALUE (for example instance-state-name=running)"),
            )
        })?;
        if name.is_empty() {
            return Err(ApiError::field(
                format!("filter[{i}]"),
                "the filter name is empty",
            ));
        }
        out.push(Filter {
            name: name.to_owned(),
            values: values.split(',').map(str::to_owned).collect(),
        });
    }
    Ok(out)
}

/// `GET /v1/instances`.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<InstanceList>> {
    let filters = filters(&q)?;
    let names: Vec<String> = match (&q.account, &q.deployment) {
        (Some(a), _) => vec![a.clone()],
        (None, Some(d)) => {
            let dep = state
                .store
                .deployment(d)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("unknown deployment {d:?}")))?;
            vec![dep.account]
        }
        (None, None) => state
            .store
            .accounts()
            .await?
            .into_iter()
            .map(|a| a.name)
            .collect(),
    };
    let mut checks = vec![Check::new("ec2:DescribeInstances", "*")];
    checks.extend(names.iter().map(|n| accounts::use_check(n)));
    authorize(&state, &caller, checks).await?;
    let mut instances = Vec::new();
    for name in names {
        let (_row, target) = accounts::target(&state, &name).await?;
        let ec2 = state.cloud.ec2(&target).await?;
        for instance in ec2.describe_instances(&filters, &[]).await? {
            instances.push(AccountInstance {
                account: name.clone(),
                instance,
            });
        }
    }
    Ok(Json(InstanceList { instances }))
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
                other => {
                    return Err(ApiError::field(
                        other,
                        "unknown query parameter: use account, deployment, tag or filter",
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
    let (account, target) = accounts::target_for_request(&state, &req.account).await?;
    let ec2 = state.cloud.ec2(&target).await?;
    // The instances' real tags decide, so describe them first (an unknown id fails here, with
    // AWS's own error, before any change).
    let found = ec2.describe_instances(&[], &req.instance_ids).await?;
    let api_action = format!("ec2:{}", act.api_name());
    let mut checks = vec![accounts::use_check(&account.name)];
    checks.extend(
        found
            .iter()
            .map(|i| instance_check(&api_action, &account, i)),
    );
    let resources: Vec<String> = checks.iter().skip(1).map(|c| c.resource.clone()).collect();
    authorize(&state, &caller, checks).await?;
    let result = ec2.change_state(act, &req.instance_ids).await;
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
