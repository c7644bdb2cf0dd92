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
use crate::openapi::schema_ref;
use crate::state::AppState;
use crate::validate;
use airlock_api::ErrorBody;
use airlock_cloud::{Ec2, Scope, Target};
use airlock_fleet::{Call, Facts, FleetError, FleetFamily, FleetRequest, Outcome};
use airlock_store::AccountRow;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::Json;
use std::sync::Arc;
use utoipa::openapi::path::{HttpMethod, Operation, Paths};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{AllOfBuilder, ArrayBuilder, ObjectBuilder, Type};
use utoipa::openapi::{Content, RefOr, Required, Schema};
use utoipa::{Path as _, ToSchema};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};

/// The routes of every family, `GET /v1/{family}` and `POST /v1/{family}/{verb}`, each with
/// its documentation: the operations of `list` and `act` with the family's own summary and
/// schemas.
pub fn routes() -> OpenApiRouter<AppState> {
    FleetFamily::ALL
        .into_iter()
        .fold(OpenApiRouter::new(), |router, family| {
            router.routes(listing(family)).routes(operations(family))
        })
}

/// What the document says of one family: its name for people and the schemas of its items
/// and of its requests (one of the verbs' bodies).
fn documented(
    family: FleetFamily,
    schemas: &mut Schemas,
) -> (&'static str, RefOr<Schema>, RefOr<Schema>) {
    use airlock_cloud as c;
    use airlock_fleet as f;
    use FleetFamily as F;
    fn of<Item: ToSchema, Request: ToSchema>(
        name: &'static str,
        schemas: &mut Schemas,
    ) -> (&'static str, RefOr<Schema>, RefOr<Schema>) {
        (
            name,
            schema_ref::<Item>(schemas),
            schema_ref::<Request>(schemas),
        )
    }
    match family {
        F::Addresses => of::<c::Address, f::address::AddressRequest>("Elastic IPs", schemas),
        F::NetworkInterfaces => {
            of::<c::NetworkInterface, f::interface::InterfaceRequest>("network interfaces", schemas)
        }
        F::SecurityGroups => of::<c::SecurityGroup, f::security_group::SecurityGroupRequest>(
            "security groups",
            schemas,
        ),
        F::KeyPairs => of::<c::KeyPair, f::key_pair::KeyPairRequest>("key pairs", schemas),
        F::Volumes => of::<c::Volume, f::volume::VolumeRequest>("EBS volumes", schemas),
        F::Snapshots => of::<c::Snapshot, f::snapshot::SnapshotRequest>("EBS snapshots", schemas),
        F::Images => of::<c::Image, f::image::ImageRequest>("images (AMIs)", schemas),
    }
}

type Schemas = Vec<(String, RefOr<Schema>)>;

/// `GET /v1/{family}`, documented as [`list`] with the family's items.
fn listing(family: FleetFamily) -> UtoipaMethodRouter<AppState> {
    let mut schemas = Schemas::new();
    schema_ref::<ErrorBody>(&mut schemas);
    let (name, item, _) = documented(family, &mut schemas);
    let mut operation = __path_list::operation();
    operation.summary = Some(format!(
        "List {name} across accounts with EC2 filters ({} on *; airlock:UseAccount on each account)",
        family.describe_action()
    ));
    let items = AllOfBuilder::new()
        .item(schema_ref::<FleetList>(&mut schemas))
        .item(ObjectBuilder::new().property("items", ArrayBuilder::new().items(item)));
    set_schema(
        &mut operation,
        "200",
        RefOr::T(Schema::AllOf(items.build())),
    );
    let method = get(move |state: State<AppState>, caller: Caller, q: RawQuery| {
        list(state, caller, family, q)
    });
    let mut paths = Paths::new();
    paths.add_path_operation(format!("/v1/{family}"), vec![HttpMethod::Get], operation);
    (schemas, paths, method)
}

/// `POST /v1/{family}/{verb}`, documented as [`act`] with the family's request bodies: one of
/// the verbs' schemas, with the account to act in.
fn operations(family: FleetFamily) -> UtoipaMethodRouter<AppState> {
    let mut schemas = Schemas::new();
    schema_ref::<ErrorBody>(&mut schemas);
    schema_ref::<Outcome>(&mut schemas);
    let (name, _, request) = documented(family, &mut schemas);
    let mut operation = __path_act::operation();
    operation.summary = Some(format!("Change {name}"));
    let account = ObjectBuilder::new()
        .property(
            "account",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("The console account to act in")),
        )
        .required("account");
    let body = Schema::AllOf(AllOfBuilder::new().item(account).item(request).build());
    operation.request_body = Some(RefOr::T(
        RequestBodyBuilder::new()
            .required(Some(Required::True))
            .content("application/json", Content::new(Some(body)))
            .build(),
    ));
    let method = post(
        move |state: State<AppState>,
              caller: Caller,
              verb: Path<String>,
              body: Body<serde_json::Value>| { act(state, caller, family, verb, body) },
    );
    let mut paths = Paths::new();
    paths.add_path_operation(
        format!("/v1/{family}/{{verb}}"),
        vec![HttpMethod::Post],
        operation,
    );
    (schemas, paths, method)
}

/// Replaces the JSON schema of the response `status`.
fn set_schema(operation: &mut Operation, status: &str, schema: RefOr<Schema>) {
    if let Some(RefOr::T(response)) = operation.responses.responses.get_mut(status) {
        if let Some(RefOr::T(content)) = response.content.get_mut("application/json") {
            content.schema = Some(schema);
        }
    }
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
///
/// The verb picks the body, one of the request's schemas. The body is validated (400 naming the
/// field), the resources it names are described in EC2 (404 when one does not exist), the call
/// is authorized as AWS would authorize it (airlock:UseAccount on the account and the EC2
/// actions on every resource it touches, with their current tags; 403 naming the action and
/// resource), then run. Every EC2 call is one audit record; a denied request makes no changing
/// EC2 call.
#[utoipa::path(
    post,
    path = "/v1/{family}/{verb}",
    params(("verb" = String, Path, description = "The operation (allocate, create, move…)")),
    responses(
        (status = 200, description = "Done", body = Outcome),
        (status = 400, description = "Error", body = airlock_api::ErrorBody),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
        (status = 404, description = "Error", body = airlock_api::ErrorBody),
        (status = 409, description = "Error", body = airlock_api::ErrorBody),
        (status = 502, description = "Error", body = airlock_api::ErrorBody),
        (status = 503, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn act(
    State(state): State<AppState>,
    caller: Caller,
    family: FleetFamily,
    Path(verb): Path<String>,
    Body(mut body): Body<serde_json::Value>,
) -> ApiResult<Json<Outcome>> {
    let account = take_account(&mut body)?;
    let request = checked_request(&state, &caller, family, &verb, body).await?;
    run_as(&state, &caller, &account, &request).await.map(Json)
}

/// Runs a validated fleet operation in `account` for `caller`: the use of the account is
/// decided first, then what EC2 says of the resources, then the operation, every call audited.
/// Requests and background work (snapshot policies, as their owner) come through here alike.
pub(crate) async fn run_as(
    state: &AppState,
    caller: &Caller,
    account: &str,
    request: &FleetRequest,
) -> ApiResult<Outcome> {
    precheck(
        state,
        caller,
        vec![airlock_access::ops::use_account(account)],
    )
    .await?;
    let (account, target) = accounts::target_for_request(state, account).await?;
    let ec2 = state.cloud.ec2(&target).await?;
    let scope = accounts::scope_of(&account);
    let on = On {
        state,
        caller,
        account: &account,
        scope: &scope,
    };
    let facts = on.authorize(ec2.as_ref(), request).await?;
    let copy_to = copy_client(state, &target, request).await?;
    let run =
        airlock_fleet::execute(ec2.as_ref(), copy_to.as_deref(), request, &facts, &scope).await;
    audit_calls(state, caller, &run.calls).await;
    let outcome = run.result?;
    let touched: Vec<String> = outcome.resource_id.iter().cloned().collect();
    state.tags.forget(&account.name, &touched);
    // The outcome may hold a new key pair's private key: it goes to the caller only.
    tracing::info!(user = %caller.user, operation = %outcome.operation, resource = ?outcome.resource_id, "fleet operation");
    Ok(outcome)
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
        // Decided without a look-up when nothing of the resources can change the decision and
        // the run reads nothing of them: one EC2 call instead of three.
        if request.runs_without_facts() {
            let checks = self.checks(request, &Facts::default());
            let policies = crate::authz::policies_of(state, &caller.user).await?;
            let session = caller.session.as_ref().map(|s| &s.policy);
            if !airlock_access::decide::needs_resource_facts(&policies, session, &checks) {
                crate::authz::authorize_with(state, caller, &policies, checks).await?;
                return Ok(Facts::default());
            }
        }
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
#[utoipa::path(
    get,
    path = "/v1/{family}",
    params(crate::openapi::Listing),
    responses(
        (status = 200, description = "The resources, each with its account", body = FleetList),
        (status = 400, description = "Error", body = airlock_api::ErrorBody),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
        (status = 404, description = "Error", body = airlock_api::ErrorBody),
        (status = 502, description = "Error", body = airlock_api::ErrorBody),
        (status = 503, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    family: FleetFamily,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<FleetList>> {
    let items =
        visible(
            &state,
            &caller,
            &q,
            family.describe_action(),
            |ec2, filters| async move {
                Ok(airlock_fleet::describe(ec2.as_ref(), family, &filters).await?)
            },
            |scope, item| airlock_access::fleet::describe_item(scope, family, item),
        )
        .await?;
    Ok(Json(FleetList { items }))
}

/// What one kind of resource lists as in every account the query names, each item shown only
/// if the caller's policies allow `visible_by` on it (its describe action, with its tags) and
/// labelled with its account; the listing is audited under `action`. Families and subnets are
/// listed through here alike.
pub(crate) async fn visible<D, Fut, V>(
    state: &AppState,
    caller: &Caller,
    q: &instances::ListQuery,
    action: &str,
    describe: D,
    visible_by: V,
) -> ApiResult<Vec<serde_json::Value>>
where
    D: Fn(Arc<dyn Ec2>, Vec<airlock_cloud::Filter>) -> Fut,
    Fut: std::future::Future<Output = ApiResult<Vec<serde_json::Value>>>,
    V: Fn(&Scope, &serde_json::Value) -> Check,
{
    let filters = instances::filters(q)?;
    let names = instances::accounts_of(state, caller, q).await?;
    let policies = crate::authz::policies_of(state, &caller.user).await?;
    let principal = crate::authz::principal(caller);
    let mut found = Vec::new();
    for name in &names {
        let (row, target) = accounts::target(state, name).await?;
        let scope = accounts::scope_of(&row);
        let ec2 = state.cloud.ec2(&target).await?;
        for mut item in describe(ec2, filters.clone()).await? {
            if !crate::authz::permits(&policies, &principal, &visible_by(&scope, &item)) {
                continue;
            }
            if let Some(o) = item.as_object_mut() {
                o.insert("account".into(), serde_json::Value::String(name.clone()));
            }
            found.push(item);
        }
    }
    instances::record_listing(state, caller, action, &names, found.len()).await;
    Ok(found)
}
