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
use crate::authz::{authorize, precheck, Check};
use crate::error::{ApiError, ApiResult};
use crate::instances::{self, RawQuery};
use crate::json::Body;
use crate::state::AppState;
use crate::validate;
use airlock_cloud::{Ec2, Scope, Target};
use airlock_fleet::{Call, Facts, FleetError, FleetFamily, FleetRequest, Outcome};
use airlock_store::AccountRow;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::sync::Arc;

/// The routes of every family: `GET /v1/{family}` and `POST /v1/{family}/{verb}`.
pub fn routes(mut router: Router<AppState>) -> Router<AppState> {
    for family in FleetFamily::ALL {
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
    outcome: audit::AuditOutcome,
    why: String,
) {
    let mut entry = Entry::for_caller(caller, &request.action(), Vec::new());
    entry.decision = audit::AuditDecision::NotEvaluated;
    entry.outcome = outcome;
    entry.detail = Some(why);
    audit::record(state, entry).await;
}

/// `POST /v1/{family}/{verb}`: one fleet operation in an account (`"account"` in the body).
async fn act(
    State(state): State<AppState>,
    caller: Caller,
    family: FleetFamily,
    Path(verb): Path<String>,
    Body(mut body): Body<serde_json::Value>,
) -> ApiResult<Json<Outcome>> {
    let account = take_account(&mut body)?;
    let request = checked_request(&state, &caller, family, &verb, body).await?;
    precheck(
        &state,
        &caller,
        vec![airlock_access::ops::use_account(&account)],
    )
    .await?;
    let (account, target) = accounts::target_for_request(&state, &account).await?;
    let ec2 = state.cloud.ec2(&target).await?;
    let scope = accounts::scope_of(&account);
    let on = On {
        state: &state,
        caller: &caller,
        account: &account,
        scope: &scope,
    };
    let facts = on.authorize(ec2.as_ref(), &request).await?;
    let copy_to = copy_client(&state, &target, &request).await?;
    let run =
        airlock_fleet::execute(ec2.as_ref(), copy_to.as_deref(), &request, &facts, &scope).await;
    audit_calls(&state, &caller, &run.calls).await;
    let outcome = run.result?;
    let touched: Vec<String> = outcome.resource_id.iter().cloned().collect();
    state.tags.forget(&account.name, &touched);
    // The outcome may hold a new key pair's private key: it goes to the caller only.
    tracing::info!(user = %caller.user, operation = %outcome.operation, resource = ?outcome.resource_id, "fleet operation");
    Ok(Json(outcome))
}

/// The account the body names, taken out of it: the rest is the operation's request.
fn take_account(body: &mut serde_json::Value) -> ApiResult<String> {
    match body.as_object_mut().map(|o| o.remove("account")) {
        Some(Some(serde_json::Value::String(a))) => Ok(a),
        Some(Some(_)) => Err(ApiError::field("account", "must be an account name")),
        Some(None) => Err(ApiError::field("account", "missing field `account`")),
        None => Err(ApiError::BadRequest {
            field: None,
            message: "the body must be a JSON object".into(),
        }),
    }
}

/// The operation `verb` of `family`, parsed and validated; a request that fails validation is
/// audited as invalid.
async fn checked_request(
    state: &AppState,
    caller: &Caller,
    family: FleetFamily,
    verb: &str,
    body: serde_json::Value,
) -> ApiResult<FleetRequest> {
    let mut request = FleetRequest::parse(family.path(), verb, body)?
        .ok_or_else(|| ApiError::NotFound(format!("unknown operation {verb:?} on {family}")))?;
    let checked = request
        .validate()
        .map_err(ApiError::from)
        .and_then(|()| validate::tags("tags", request.tags(), 0));
    if let Err(e) = checked {
        let why = e.to_string();
        stopped_early(state, caller, &request, audit::AuditOutcome::Invalid, why).await;
        return Err(e);
    }
    Ok(request)
}

/// A fleet operation in one account, decided for one caller.
pub(crate) struct On<'a> {
    pub state: &'a AppState,
    pub caller: &'a Caller,
    pub account: &'a AccountRow,
    pub scope: &'a Scope,
}

impl On<'_> {
    /// The checks AWS would make, and the use of the account.
    fn checks(&self, request: &FleetRequest, facts: &Facts) -> Vec<Check> {
        let mut checks = airlock_access::fleet::checks(request, facts, self.scope);
        checks.push(airlock_access::ops::use_account(&self.account.name));
        checks
    }

    /// Looks up what the request touches and decides it with the caller's policies, as AWS
    /// would; the facts it was decided on are what the operation runs with.
    pub async fn authorize(&self, ec2: &dyn Ec2, request: &FleetRequest) -> ApiResult<Facts> {
        let (state, caller) = (self.state, self.caller);
        // What EC2 says of the resources now decides; a resource that does not exist fails
        // here, before any change. It is decided as one with no tags first, so a caller who
        // may not act on it cannot tell a missing resource from a forbidden one; then the
        // failure is audited.
        let facts = match airlock_fleet::prepare(ec2, request).await {
            Ok(f) => f,
            Err(e) => {
                let unknown = self.checks(request, &Facts::default());
                precheck(state, caller, unknown).await?;
                let why = e.to_string();
                stopped_early(state, caller, request, audit::AuditOutcome::Error, why).await;
                return Err(e.into());
            }
        };
        // The request's own action first: the audit record of the decision is filed under it.
        authorize(state, caller, self.checks(request, &facts)).await?;
        Ok(facts)
    }
}

/// The destination region's client for a snapshot copy: EC2 copies from that side.
async fn copy_client(
    state: &AppState,
    target: &Target,
    request: &FleetRequest,
) -> ApiResult<Option<Arc<dyn Ec2>>> {
    let Some(region) = request.copy_destination() else {
        return Ok(None);
    };
    let mut dest = target.clone();
    dest.region = region.to_owned();
    Ok(Some(state.cloud.ec2(&dest).await?))
}

/// Audits every EC2 call the operation made, in order, with AWS's request id or error.
async fn audit_calls(state: &AppState, caller: &Caller, calls: &[Call]) {
    for call in calls {
        audit::record_call(
            state,
            Entry::for_caller(caller, &call.action, call.resources.clone()),
            &call.result,
            Clone::clone,
        )
        .await;
    }
}

/// `GET /v1/{family}`: the family's resources in one account or all, with EC2 filters, each
/// shown only if the caller may describe it (the family's describe action on it, with its tags).
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    family: FleetFamily,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<FleetList>> {
    let filters = instances::filters(&q)?;
    let names = instances::accounts_of(&state, &caller, &q).await?;
    let policies = crate::authz::policies_of(&state, &caller.user).await?;
    let principal = crate::authz::principal(&caller);
    let mut found = Vec::new();
    for name in &names {
        let (row, target) = accounts::target(&state, name).await?;
        let scope = accounts::scope_of(&row);
        let ec2 = state.cloud.ec2(&target).await?;
        for mut item in airlock_fleet::describe(ec2.as_ref(), family, &filters).await? {
            let check = airlock_access::fleet::describe_item(&scope, family, &item);
            let visible = crate::authz::permits(&policies, &principal, &check);
            if !visible {
                continue;
            }
            if let Some(o) = item.as_object_mut() {
                o.insert("account".into(), serde_json::Value::String(name.clone()));
            }
            found.push(item);
        }
    }
    let action = family.describe_action();
    instances::record_listing(&state, &caller, action, &names, found.len()).await;
    Ok(Json(FleetList { items: found }))
}
