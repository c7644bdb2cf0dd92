//! `GET /v1/gateway/upstreams`: what the stored configurations route to, from the console's own
//! data. Each upstream listed through a console account shows the instances that back it now
//! and, for instances that carry one of its filters' tag keys but do not back it, why (the same
//! rule the gateway routes by, `airlock_gateway_config::membership`). The instances come from
//! the account's shared listing snapshot, each shown only to a reader who may describe it.

use crate::auth::Caller;
use crate::authz::{authorize_one, console_arn, precheck};
use crate::error::{ApiError, ApiResult};
use crate::instances::{self, Viewer};
use crate::state::AppState;
use airlock_access::ops;
use airlock_api::gateway::{
    UpstreamExcluded, UpstreamList, UpstreamMember, UpstreamView, MAX_EXCLUDED,
};
use airlock_api::instances::AccountInstance;
use airlock_gateway_config::config::{self as gwconfig, Upstream};
use airlock_gateway_config::membership::{membership, Exclusion, Membership};
use axum::extract::State;
use axum::Json;

/// `GET /v1/gateway/upstreams`.
#[utoipa::path(
    get,
    path = "/v1/gateway/upstreams",
    summary = "The stored configurations' upstreams with the instances behind each now (airlock:ListGatewayConfigs; airlock:UseAccount and ec2:DescribeInstances for the instances)",
    responses(
        (status = 200, description = "The upstreams", body = airlock_api::gateway::UpstreamList),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<UpstreamList>> {
    authorize_one(
        &state,
        &caller,
        "airlock:ListGatewayConfigs",
        &console_arn("gateway-config", "*"),
    )
    .await?;
    let stored: Vec<(String, String)> = state
        .store
        .gateway_configs()
        .await?
        .into_iter()
        .map(|c| (c.name, c.yaml))
        .collect();
    let config = match gwconfig::load(&stored, &super::load_options()) {
        Ok(c) => c,
        Err(e) => {
            return Ok(Json(UpstreamList {
                upstreams: Vec::new(),
                error: Some(e.to_string()),
            }))
        }
    };
    let viewer = Viewer::of(&state, &caller).await?;
    let reported = super::health::seen(&state).await?;
    let mut upstreams = Vec::new();
    for up in config.upstreams.values() {
        let mut v = view(&state, &caller, &viewer, up).await?;
        for m in &mut v.members {
            let key = (up.id.to_string(), m.address.clone());
            m.gateways = reported.get(&key).cloned().unwrap_or_default();
        }
        upstreams.push(v);
    }
    // The instances shown are a listing like any other, on record with the accounts they came from.
    let mut accounts: Vec<String> = upstreams
        .iter()
        .filter(|u| u.described_at.is_some())
        .filter_map(|u| u.account.clone())
        .collect();
    accounts.sort();
    accounts.dedup();
    if !accounts.is_empty() {
        let shown = upstreams
            .iter()
            .map(|u| u.members.len() + u.excluded.len())
            .sum();
        instances::record_listing(&state, &caller, "ec2:DescribeInstances", &accounts, shown).await;
    }
    Ok(Json(UpstreamList {
        upstreams,
        error: None,
    }))
}

/// One upstream with what backs it, or a note saying why the console cannot show it.
async fn view(
    state: &AppState,
    caller: &Caller,
    viewer: &Viewer,
    up: &Upstream,
) -> ApiResult<UpstreamView> {
    let mut v = UpstreamView {
        namespace: up.id.namespace.clone(),
        name: up.id.name.clone(),
        region: up.region.clone(),
        account: up.console_account().map(str::to_owned),
        filters: up.filters.iter().map(ToString::to_string).collect(),
        port: up.port,
        port_tag: up.port_tag.clone(),
        public_ip: up.public_ip,
        note: None,
        described_at: None,
        members: Vec::new(),
        excluded: Vec::new(),
        excluded_total: 0,
    };
    let Some(account) = up.console_account() else {
        v.note = Some(
            "listed by each gateway with its own credentials, which the console does not hold"
                .into(),
        );
        return Ok(v);
    };
    match precheck(state, caller, vec![ops::use_account(account)]).await {
        Ok(()) => {}
        Err(ApiError::Forbidden(why)) => {
            v.note = Some(why);
            return Ok(v);
        }
        Err(e) => return Err(e),
    }
    let snapshot = match instances::describe_account(state, account, &[], true).await {
        Ok(s) => s,
        Err(e) => {
            v.note = Some(format!("the account's instances could not be listed: {e}"));
            return Ok(v);
        }
    };
    if snapshot.scope.region != up.region {
        v.note = Some(format!(
            "the upstream lists region {}, and account {account} is in {}",
            up.region, snapshot.scope.region
        ));
        return Ok(v);
    }
    v.described_at = Some(
        snapshot
            .taken_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    );
    let mut near = Vec::new();
    for i in viewer.visible(&snapshot.scope, snapshot.instances.clone()) {
        place(&mut v, &mut near, up, i);
    }
    // The instances that match its filters but still get no traffic come first: those are
    // the surprises; the ones tagged for something else follow.
    near.sort_by_key(|(unmatched, e)| (*unmatched, e.instance_id.clone()));
    v.excluded_total = near.len();
    v.excluded = near
        .into_iter()
        .take(MAX_EXCLUDED)
        .map(|(_, e)| e)
        .collect();
    Ok(v)
}

/// Puts one visible instance among the upstream's members, or among the instances near it
/// (carrying one of its filters' tag keys) that it does not route to, marked when the reason
/// is only that its tags do not match.
fn place(
    v: &mut UpstreamView,
    near: &mut Vec<(bool, UpstreamExcluded)>,
    up: &Upstream,
    i: AccountInstance,
) {
    match membership(up, &i.instance) {
        Membership::Member(addr) => v.members.push(UpstreamMember {
            instance_id: i.instance.instance_id.clone(),
            address: addr.to_string(),
            gateways: Vec::new(),
            instance_status: i.status.as_ref().and_then(|s| s.instance_status.clone()),
            system_status: i.status.as_ref().and_then(|s| s.system_status.clone()),
        }),
        Membership::Excluded(why) => {
            let carries_a_key = up.filters.is_empty()
                || up.filters.iter().any(|f| i.instance.tag(f.key()).is_some());
            if carries_a_key {
                near.push((
                    matches!(why, Exclusion::Unmatched(_)),
                    UpstreamExcluded {
                        instance_id: i.instance.instance_id.clone(),
                        state: i.instance.state.clone(),
                        reason: why.to_string(),
                    },
                ));
            }
        }
    }
}
