//! Fleet operations through the console: `POST /v1/{family}/{verb}` (addresses, network
//! interfaces, security groups, key pairs, volumes, snapshots, images) and `GET /v1/{family}`.
//!
//! Every change is validated, then the resources it touches are described in EC2 (their real
//! tags decide), authorized with the caller's policies exactly as AWS would check the call, run,
//! and every EC2 call it made is audited. A denied request reaches no changing EC2 endpoint.

use crate::accounts;
use crate::api::FleetList;
use crate::audit::{self, Entry};
use crate::auth::Caller;
use crate::authz::{authorize, Check};
use crate::error::{ApiError, ApiResult};
use crate::instances::{self, RawQuery};
use crate::json::Body;
use crate::state::AppState;
use crate::validate;
use airlock_fleet::{FleetError, FleetRequest, Outcome, Scope};
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};

/// The routes of every family: `GET /v1/{family}` and `POST /v1/{family}/{verb}`.
pub fn routes(mut router: Router<AppState>) -> Router<AppState> {
    for family in airlock_fleet::FAMILIES {
        router = router
            .route(
                &format!("/v1/{family}"),
                get(move |state: State<AppState>, caller: Caller, q: RawQuery| {
                    list(state, caller, family, q)
                }),
            )
            .route(
                &format!("/v1/{family}/{{verb}}"),
                post(
                    move |state: State<AppState>,
                          caller: Caller,
                          verb: Path<String>,
                          body: Body<serde_json::Value>| {
                        act(state, caller, family, verb, body)
                    },
                ),
            );
    }
    router
}

impl From<FleetError> for ApiError {
    fn from(e: FleetError) -> Self {
        match e {
            FleetError::Cloud(e) => ApiError::Aws(e),
            FleetError::NotFound(m) => ApiError::NotFound(m),
            FleetError::Conflict(m) => ApiError::Conflict(m),
        }
    }
}

/// Audits a request that stopped before any decision: bad input, or a resource EC2 does not
/// know. Nothing reached a changing EC2 endpoint, and the record says why.
async fn stopped_early(
    state: &AppState,
    caller: &Caller,
    request: &FleetRequest,
    outcome: &str,
    why: String,
) {
    let mut entry = Entry::for_caller(caller, &request.action(), Vec::new());
    entry.decision = "notEvaluated".into();
    entry.outcome = outcome.into();
    entry.detail = Some(why);
    audit::record(state, entry).await;
}

/// `POST /v1/{family}/{verb}`: one fleet operation in an account (`"account"` in the body).
async fn act(
    State(state): State<AppState>,
    caller: Caller,
    family: &'static str,
    Path(verb): Path<String>,
    Body(mut body): Body<serde_json::Value>,
) -> ApiResult<Json<Outcome>> {
    let account = match body.as_object_mut().map(|o| o.remove("account")) {
        Some(Some(serde_json::Value::String(a))) => a,
        Some(Some(_)) => return Err(ApiError::field("account", "must be an account name")),
        Some(None) => return Err(ApiError::field("account", "missing field `account`")),
        None => {
            return Err(ApiError::BadRequest {
                field: None,
                message: "the body must be a JSON object".into(),
            })
        }
    };
    let mut request = FleetRequest::parse(family, &verb, body)?
        .ok_or_else(|| ApiError::NotFound(format!("unknown operation {verb:?} on {family}")))?;
    let checked = request
        .validate()
        .map_err(ApiError::from)
        .and_then(|()| validate::tags("tags", request.tags(), 0));
    if let Err(e) = checked {
        stopped_early(&state, &caller, &request, "invalid", e.to_string()).await;
        return Err(e);
    }
    let (account, target) = accounts::target_for_request(&state, &account).await?;
    let ec2 = state.cloud.ec2(&target).await?;
    let scope = Scope {
        region: account.region.clone(),
        account_id: account.aws_account_id.clone(),
    };
    // What EC2 says of the resources now decides; a resource that does not exist fails here,
    // before any change, and the failure is audited.
    let facts = match airlock_fleet::prepare(ec2.as_ref(), &request).await {
        Ok(f) => f,
        Err(e) => {
            stopped_early(&state, &caller, &request, "error", e.to_string()).await;
            return Err(e.into());
        }
    };
    // The request's own action first: the audit record of the decision is filed under it.
    let mut checks: Vec<Check> = airlock_fleet::checks(&request, &facts, &scope);
    checks.push(accounts::use_check(&account.name));
    authorize(&state, &caller, checks).await?;
    let copy_to = match &request {
        FleetRequest::CopySnapshot(r) => {
            let mut dest = target.clone();
            dest.region = r.destination_region.clone();
            Some(state.cloud.ec2(&dest).await?)
        }
        _ => None,
    };
    let run =
        airlock_fleet::execute(ec2.as_ref(), copy_to.as_deref(), &request, &facts, &scope).await;
    for call in &run.calls {
        audit::record_call(
            &state,
            Entry::for_caller(&caller, &call.action, call.resources.clone()),
            &call.result,
            Clone::clone,
        )
        .await;
    }
    let outcome = run.result?;
    let touched: Vec<String> = outcome.resource_id.iter().cloned().collect();
    state.tags.forget(&account.name, &touched);
    // The outcome may hold a new key pair's private key: it goes to the caller only.
    tracing::info!(user = %caller.user, operation = %outcome.operation, resource = ?outcome.resource_id, "fleet operation");
    Ok(Json(outcome))
}

/// `GET /v1/{family}`: the family's resources in one account or all, with EC2 filters.
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    family: &'static str,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<FleetList>> {
    let filters = instances::filters(&q)?;
    let names = instances::accounts_of(&state, &q).await?;
    let action = airlock_fleet::describe_action(family).unwrap_or("ec2:Describe");
    let mut checks = vec![Check::new(action, "*")];
    checks.extend(names.iter().map(|n| accounts::use_check(n)));
    authorize(&state, &caller, checks).await?;
    let mut found = Vec::new();
    for name in names {
        let (_row, target) = accounts::target(&state, &name).await?;
        let ec2 = state.cloud.ec2(&target).await?;
        for mut item in airlock_fleet::describe(ec2.as_ref(), family, &filters).await? {
            if let Some(o) = item.as_object_mut() {
                o.insert("account".into(), serde_json::Value::String(name.clone()));
            }
            found.push(item);
        }
    }
    Ok(Json(FleetList { items: found }))
}
