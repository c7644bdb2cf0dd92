//! Deployments: N instances of an image, launched once with the Airlock payload in their user
//! data, tagged on creation, and watched until they run.
//!
//! Launching is idempotent in two ways, because EC2-compatible endpoints differ: every launch
//! carries an EC2 `ClientToken` derived from the deployment and its generation, and before any
//! launch the console looks the deployment's instances up by its own `airlock:deployment` tag and
//! launches only what is missing. A retried request or a console restart therefore never
//! launches twice.

use crate::accounts;
use crate::audit::{self, Entry};
use crate::auth::Caller;
use crate::authz::{authorize, console_arn, ec2_arn, precheck, Check};
use crate::cluster::Lease;
use crate::error::{ApiError, ApiResult};
use crate::json::Body;
use crate::refresh;
use crate::state::AppState;
use crate::validate;
use airlock_access::ops::{self, Launch};
use airlock_access::session;
use airlock_api::deployments::{
    CredentialMode, DeployRequest, DeploymentInstance, DeploymentPolicy, DeploymentSpec,
    DeploymentView, ScaleRequest,
};
use airlock_api::state::DeploymentState;
use airlock_cloud::Ec2;
use airlock_cloud::{Filter, Instance, Placement, RunInstancesInput, StateAction, Tag, Target};
use airlock_payload::{BootTask, Credentials, Payload};
use airlock_store::AccountRow;
use airlock_store::{DeploymentInstanceRow, DeploymentRow, StateChange};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use secrecy::SecretString;
use std::time::{Duration, Instant};

mod plan;

use plan::{Plan, Watch};

pub use airlock_access::tags::{DEPLOYED_BY_TAG, DEPLOYMENT_TAG};

fn user_script_record(id: &str) -> String {
    format!("deployment:{id}:user-script")
}

fn new_id() -> String {
    crate::random_id("dep", 8)
}

/// Checks a deploy request before anything is stored or sent to EC2.
fn validate_request(req: &DeployRequest) -> ApiResult<()> {
    if let Some(token) = &req.client_token {
        if token.is_empty() || token.len() > 64 || !token.is_ascii() {
            return Err(ApiError::field(
                "client_token",
                "a client token is 1 to 64 ASCII characters",
            ));
        }
    }
    validate::name("account", &req.account)?;
    validate_launch(req)?;
    validate::tags("tags", &req.tags, 2)?;
    validate_tasks(&req.tasks)?;
    validate_credentials(req)?;
    // Each hop more lets the metadata service's token travel one network hop further from the
    // instance (a container, then anything routed through it).
    if !(1..=2).contains(&req.metadata_hop_limit) {
        return Err(ApiError::field(
            "metadata_hop_limit",
            "the metadata hop limit is 1 (default) or 2 for containers on the instance",
        ));
    }
    Ok(())
}

/// What `RunInstances` is given as is: image, type, count, network and key pair.
fn validate_launch(req: &DeployRequest) -> ApiResult<()> {
    validate::ec2_id("image_id", &req.image_id, "ami-")?;
    validate_instance_type(&req.instance_type)?;
    if req.count < 1 {
        return Err(ApiError::field("count", "count must be at least 1"));
    }
    if req.count > 1000 {
        return Err(ApiError::field("count", "count must be at most 1000"));
    }
    if let Some(subnet) = &req.subnet_id {
        validate::ec2_id("subnet_id", subnet, "subnet-")?;
    }
    for (i, sg) in req.security_group_ids.iter().enumerate() {
        validate::ec2_id(&format!("security_group_ids[{i}]"), sg, "sg-")?;
    }
    if let Some(key) = &req.key_name {
        if key.is_empty() || key.len() > 255 {
            return Err(ApiError::field(
                "key_name",
                "a key pair name is 1 to 255 characters",
            ));
        }
    }
    validate_placement(req)
}

/// Zones, tenancy and placement group, as `RunInstances` takes them.
fn validate_placement(req: &DeployRequest) -> ApiResult<()> {
    let zones = &req.availability_zones;
    if !zones.is_empty() && req.subnet_id.is_some() {
        return Err(ApiError::field(
            "availability_zones",
            "a subnet is in one zone: give availability_zones or subnet_id, not both",
        ));
    }
    if zones.len() > 10 {
        return Err(ApiError::field("availability_zones", "at most 10 zones"));
    }
    for (i, zone) in zones.iter().enumerate() {
        let well_formed = (4..=32).contains(&zone.len())
            && zone
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && zone.bytes().last().is_some_and(|b| b.is_ascii_lowercase());
        if !well_formed || zones.iter().take(i).any(|z| z == zone) {
            return Err(ApiError::field(
                format!("availability_zones[{i}]"),
                format!("{zone:?} is not a zone name like us-east-1a, or is given twice"),
            ));
        }
    }
    if let Some(group) = &req.placement_group {
        if group.is_empty() || group.len() > 255 {
            return Err(ApiError::field(
                "placement_group",
                "a placement group name is 1 to 255 characters",
            ));
        }
    }
    Ok(())
}

/// FAMILY.SIZE, e.g. `t3.micro`.
pub(crate) fn validate_instance_type(it: &str) -> ApiResult<()> {
    let ok = it.len() <= 32
        && it.split_once('.').is_some_and(|(family, size)| {
            !family.is_empty()
                && !size.is_empty()
                && it
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        });
    if !ok {
        return Err(ApiError::field(
            "instance_type",
            format!("{it:?} is not an instance type (for example t3.micro)"),
        ));
    }
    Ok(())
}

/// Boot tasks the agent knows, each with what it needs.
fn validate_tasks(tasks: &[BootTask]) -> ApiResult<()> {
    for (i, task) in tasks.iter().enumerate() {
        match task {
            BootTask::Unsupported => {
                return Err(ApiError::field(
                    format!("tasks[{i}].task"),
                    "unknown boot task: use tag_instance, attach_volume or associate_address",
                ))
            }
            BootTask::AttachVolume { device, .. } if !device.starts_with("/dev/") => {
                return Err(ApiError::field(
                    format!("tasks[{i}].device"),
                    format!("{device:?} is not a device name such as /dev/sdf"),
                ))
            }
            BootTask::AssociateAddress {
                allocation_id: None,
                filters,
            } if filters.is_empty() => {
                return Err(ApiError::field(
                    format!("tasks[{i}]"),
                    "associate_address needs an allocation_id or filters",
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// The credential mode and what only some modes accept (tasks, a lifetime, extra statements).
fn validate_credentials(req: &DeployRequest) -> ApiResult<()> {
    if req.credentials == CredentialMode::None && !req.tasks.is_empty() {
        return Err(ApiError::field(
            "tasks",
            "boot tasks need credentials: deploy with credentials scoped (the default), bootstrap or account",
        ));
    }
    if !req.credentials.refreshes() {
        if req.credentials_duration_seconds.is_some() {
            return Err(ApiError::field(
                "credentials_duration_seconds",
                format!(
                    "{} credentials do not expire: a lifetime applies to scoped, bootstrap and proxy only",
                    req.credentials.as_str()
                ),
            ));
        }
        if !req.policy_statements.is_empty() {
            return Err(ApiError::field(
                "policy_statements",
                format!("{} credentials have no session policy: extra statements apply to scoped, bootstrap and proxy only", req.credentials.as_str()),
            ));
        }
    }
    session::validate_extra(&req.policy_statements).map_err(|e| ApiError::field(e.field, e.message))
}

fn spec_of(req: &DeployRequest) -> DeploymentSpec {
    DeploymentSpec {
        image_id: req.image_id.clone(),
        instance_type: req.instance_type.clone(),
        subnet_id: req.subnet_id.clone(),
        security_group_ids: req.security_group_ids.clone(),
        key_name: req.key_name.clone(),
        tags: req.tags.clone(),
        has_user_script: req.user_script.is_some(),
        tasks: req.tasks.clone(),
        metadata_hop_limit: req.metadata_hop_limit,
        credentials: req.credentials,
        credentials_duration_seconds: req.credentials_duration_seconds,
        policy_statements: req.policy_statements.clone(),
        availability_zones: req.availability_zones.clone(),
        tenancy: req.tenancy,
        placement_group: req.placement_group.clone(),
    }
}

/// What a launch gives its instances in the payload.
enum Grant {
    /// The account's own key (credential mode `account`).
    Account,
    /// Scoped credentials or a bootstrap token, and where to renew them.
    Refresh(refresh::LaunchCredentials),
    /// Stand-ins as long as real scoped credentials, to measure the user data before anything
    /// is issued.
    Sizing,
}

/// The user data for a deployment's instances: the payload (unless the mode is `none`), plus
/// the user's script if any.
fn user_data(
    console_url: &str,
    deployment_id: &str,
    spec: &DeploymentSpec,
    target: &Target,
    grant: Grant,
    user_script: Option<&[u8]>,
) -> ApiResult<Vec<u8>> {
    let data = if spec.credentials == CredentialMode::None {
        user_script.map(<[u8]>::to_vec).unwrap_or_default()
    } else {
        let mut payload = Payload::new(deployment_id, target.region.clone(), placeholder());
        payload.console_url = Some(console_url.to_owned());
        payload.endpoint_url = target.endpoint_url.clone();
        payload.tasks = spec.tasks.clone();
        match grant {
            Grant::Account => {
                payload.credentials = Some(Credentials {
                    access_key_id: target.credentials.access_key_id.clone(),
                    secret_access_key: target.credentials.secret_access_key.clone(),
                    session_token: target.credentials.session_token.clone(),
                    expiration: None,
                });
                payload.role_arn = target.role_arn.clone();
                payload.external_id = target.external_id.clone();
            }
            Grant::Refresh(launch) => {
                if let Some(endpoint) = launch.proxy_endpoint {
                    payload.endpoint_url = Some(endpoint);
                    payload.proxy = true;
                }
                payload.credentials = launch.credentials;
                payload.refresh_url = Some(launch.refresh_url);
                payload.refresh_secret = Some(launch.refresh_secret);
            }
            Grant::Sizing => {
                payload.refresh_url = Some("x".repeat(200));
                payload.refresh_secret = Some(SecretString::from("x".repeat(47)));
            }
        }
        airlock_payload::build_user_data(&payload, user_script)
            .map_err(|e| ApiError::field("user_script", e.to_string()))?
    };
    if data.len() > airlock_payload::MAX_USER_DATA {
        return Err(ApiError::field(
            "user_script",
            format!(
                "the user data would be {} bytes with the Airlock payload; EC2 allows {} — shorten the script by {} bytes (or have it download the rest)",
                data.len(),
                airlock_payload::MAX_USER_DATA,
                data.len() - airlock_payload::MAX_USER_DATA
            ),
        ));
    }
    Ok(data)
}

/// Credentials shaped like the largest STS hands out (a session token with a packed session
/// policy), for measuring.
fn placeholder() -> Credentials {
    Credentials {
        access_key_id: "ASIA".repeat(5),
        secret_access_key: SecretString::from("x".repeat(40)),
        session_token: Some(SecretString::from("x".repeat(2048))),
        expiration: Some(chrono::Utc::now()),
    }
}

/// The session policy of a scoped or bootstrap deployment: generated, proved within what the
/// deploying user may do now, and refused if the extra statements ask for more.
async fn session_policy(
    state: &AppState,
    caller: &Caller,
    id: &str,
    account: &AccountRow,
    spec: &DeploymentSpec,
) -> ApiResult<Option<String>> {
    if !spec.credentials.refreshes() {
        return Ok(None);
    }
    refresh::duration_of(spec, account)?;
    let policies = crate::authz::policies_of(state, &caller.user).await?;
    let principal = crate::authz::principal(caller);
    let deployer = session::Deployer {
        policies: &policies,
        principal: &principal,
    };
    let policy = session::session_policy(
        &session_scope(id, account),
        &spec.policy_statements,
        &deployer,
    )
    .map_err(|refused| {
        let list: Vec<String> = refused.iter().map(ToString::to_string).collect();
        ApiError::Forbidden(format!(
            "the instances' credentials may not exceed what {} may do: {}",
            caller.user,
            list.join("; ")
        ))
    })?;
    check_policy_size(&policy)?;
    Ok(Some(policy))
}

/// What a deployment's session policy is about.
pub fn session_scope<'a>(id: &'a str, account: &'a AccountRow) -> session::Scope<'a> {
    session::Scope {
        deployment_id: id,
        region: &account.region,
        account_id: &account.aws_account_id,
    }
}

/// STS refuses a session policy longer than this; say so before anything is launched.
pub fn check_policy_size(policy: &str) -> ApiResult<()> {
    if policy.len() > session::MAX_SESSION_POLICY {
        return Err(ApiError::field(
            "policy_statements",
            format!(
                "the session policy would be {} characters; STS accepts at most {} — shorten the extra statements",
                policy.len(),
                session::MAX_SESSION_POLICY
            ),
        ));
    }
    Ok(())
}

/// The check of an action on a deployment, with who made it and its account.
pub fn deployment_check(action: &str, row: &DeploymentRow) -> Check {
    ops::deployment(action, &row.id, Some(&row.account), Some(&row.created_by))
}

async fn view(state: &AppState, row: DeploymentRow) -> ApiResult<DeploymentView> {
    let spec = stored_spec(&row)?;
    let instances = state
        .store
        .deployment_instances(&row.id)
        .await?
        .into_iter()
        .map(|i| DeploymentInstance {
            instance_id: i.instance_id,
            state: i.state,
            private_ip: i.private_ip,
            public_ip: i.public_ip,
        })
        .collect();
    Ok(DeploymentView {
        id: row.id,
        account: row.account,
        state: row.state.as_str().to_owned(),
        error: row.error,
        count: row.desired_count,
        instances,
        risk: (spec.credentials == CredentialMode::Account).then(|| {
            "credentials account: every instance holds the account's long-term key in its user data".to_owned()
        }),
        spec,
        created_by: row.created_by,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

/// `POST /v1/deployments`.
#[utoipa::path(
    post,
    path = "/v1/deployments",
    summary = "Deploy an image: one RunInstances with tags on creation, IMDSv2 required and the Airlock payload in the user data",
    request_body = airlock_api::deployments::DeployRequest,
    responses(
        (status = 201, description = "Created and launched", body = airlock_api::deployments::DeploymentView),
        (status = 200, description = "An existing deployment with the same client token", body = airlock_api::deployments::DeploymentView),
        (status = 400, description = "Error", body = airlock_api::ErrorBody),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 409, description = "Error", body = airlock_api::ErrorBody),
        (status = 502, description = "Error", body = airlock_api::ErrorBody),
        (status = 503, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Body(req): Body<DeployRequest>,
) -> ApiResult<(StatusCode, Json<DeploymentView>)> {
    validate_request(&req)?;
    let spec = spec_of(&req);
    precheck(&state, &caller, vec![ops::use_account(&req.account)]).await?;
    if let Some(token) = &req.client_token {
        if let Some(existing) = state.store.deployment_by_token(token).await? {
            return repeated(&state, &caller, token, existing, &req, &spec).await;
        }
    }
    let (account, target) = accounts::target_for_request(&state, &req.account).await?;
    let ec2 = state.cloud.ec2(&target).await?;
    let mut checks = vec![ops::use_account(&account.name)];
    checks.extend(run_checks(&state, ec2.as_ref(), &account, &spec).await?);
    authorize(&state, &caller, checks).await?;
    let id = new_id();
    // Built now only to refuse an oversize script before anything is recorded.
    user_data(
        &state.config.public_url,
        &id,
        &spec,
        &target,
        Grant::Sizing,
        req.user_script.as_deref().map(str::as_bytes),
    )?;
    let session_policy = session_policy(&state, &caller, &id, &account, &spec).await?;
    if let Some(script) = &req.user_script {
        state
            .vault
            .put(&user_script_record(&id), script.as_bytes())
            .await?;
    }
    let now = crate::now();
    let row = DeploymentRow {
        id: id.clone(),
        client_token: req.client_token.clone().unwrap_or_else(|| id.clone()),
        account: req.account.clone(),
        spec: serde_json::to_string(&spec).map_err(|e| ApiError::Internal(e.to_string()))?,
        desired_count: i64::from(req.count),
        generation: 1,
        state: DeploymentState::Pending,
        error: None,
        created_by: caller.user.clone(),
        created_at: now.clone(),
        updated_at: now,
        session_policy,
    };
    let launching = Launching::claim(&state, &id);
    if let Err(e) = state.store.insert_deployment(&row).await {
        // A concurrent request with the same client token won the race: answer with its result.
        if let (airlock_store::StoreError::Conflict(_), Some(token)) = (&e, &req.client_token) {
            if let Some(existing) = state.store.deployment_by_token(token).await? {
                return repeated(&state, &caller, token, existing, &req, &spec).await;
            }
        }
        return Err(e.into());
    }
    tracing::info!(deployment = %id, user = %caller.user, source_ip = ?caller.source_ip, account = %req.account, image = %req.image_id, count = req.count, credentials = spec.credentials.as_str(), "deployment created");
    if spec.credentials == CredentialMode::Account {
        record_account_key_risk(&state, &caller, &id).await;
    }
    reconcile(
        &state,
        &row,
        &Entry::for_caller(&caller, "", vec![]),
        Live::NoneYet,
    )
    .await?;
    drop(launching);
    spawn_watch(&state, &id);
    let row = state.store.deployment(&id).await?.unwrap_or(row);
    Ok((StatusCode::CREATED, Json(view(&state, row).await?)))
}

/// Records, as a risk the operator should see, that a deployment hands its instances the
/// account's long-term key.
async fn record_account_key_risk(state: &AppState, caller: &Caller, id: &str) {
    tracing::warn!(deployment = %id, user = %caller.user, "RISK: the instances receive the account's long-term key in their user data");
    let mut entry = Entry::for_caller(
        caller,
        "airlock:CreateDeployment",
        vec![console_arn("deployment", id)],
    );
    entry.decision = audit::AuditDecision::Allowed;
    entry.outcome = audit::AuditOutcome::Risk;
    entry.detail = Some("RISK: credentials account — every instance receives the account's long-term key in its user data, readable by anything on the instance and by anyone allowed DescribeInstanceAttribute".into());
    audit::record(state, entry).await;
}

/// A deploy repeated with a client token already used: the deployment it made, if the caller
/// may get it (nothing is said of it otherwise) and the request is the same.
async fn repeated(
    state: &AppState,
    caller: &Caller,
    token: &str,
    existing: DeploymentRow,
    req: &DeployRequest,
    spec: &DeploymentSpec,
) -> ApiResult<(StatusCode, Json<DeploymentView>)> {
    authorize(
        state,
        caller,
        vec![deployment_check("airlock:GetDeployment", &existing)],
    )
    .await?;
    let same = existing.account == req.account
        && existing.desired_count == i64::from(req.count)
        && serde_json::from_str::<DeploymentSpec>(&existing.spec)
            .ok()
            .as_ref()
            == Some(spec);
    if !same {
        return Err(ApiError::Conflict(format!(
            "client token {token:?} was already used for a different deployment ({})",
            existing.id
        )));
    }
    spawn_watch(state, &existing.id);
    Ok((StatusCode::OK, Json(view(state, existing).await?)))
}

/// Brings the deployment's live instances to its desired count: looks them up by tag, launches
/// what is missing (once, with a client token) or terminates the newest surplus, and records
/// the result. An EC2 error marks the deployment failed and is returned.
pub async fn reconcile(
    state: &AppState,
    row: &DeploymentRow,
    actor: &Entry,
    live: Live,
) -> ApiResult<()> {
    let result = launch_or_trim(state, row, actor, live).await;
    if let Err(e) = &result {
        let message = e.to_string();
        tracing::warn!(deployment = %row.id, error = %message, "deployment failed");
        state
            .store
            .set_deployment_state(
                &row.id,
                DeploymentState::Failed,
                Some(&message),
                &crate::now(),
            )
            .await?;
    }
    result
}

/// How many instances the deployment should have.
fn desired_count(row: &DeploymentRow) -> usize {
    usize::try_from(row.desired_count).unwrap_or(0)
}

/// The deployment's spec as stored.
pub(crate) fn stored_spec(row: &DeploymentRow) -> ApiResult<DeploymentSpec> {
    serde_json::from_str(&row.spec)
        .map_err(|e| ApiError::Internal(format!("stored spec of {}: {e}", row.id)))
}

/// What a reconcile knows of the deployment's instances before it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Live {
    /// The deployment was created by this request: it has no instance yet, and the launch's
    /// client token keeps a retried `RunInstances` from launching twice, so EC2 is not asked.
    NoneYet,
    /// The deployment's instances are described by its tag first.
    Describe,
}

async fn launch_or_trim(
    state: &AppState,
    row: &DeploymentRow,
    actor: &Entry,
    live: Live,
) -> ApiResult<()> {
    let (account, target) = accounts::target(state, &row.account).await?;
    let ec2 = state.cloud.ec2(&target).await?;
    let mut live = match live {
        Live::NoneYet => Vec::new(),
        Live::Describe => ec2.describe_instances(&live_filters(&row.id), &[]).await?,
    };
    let desired = desired_count(row);
    let work = Reconciling {
        state,
        row,
        actor,
        account: &account,
        ec2: ec2.as_ref(),
    };
    let zones = stored_spec(row)?.availability_zones;
    match plan::reconcile(desired, &live, &zones) {
        Plan::Launch(count) => {
            for (zone, n) in plan::spread(&zones, &live, count) {
                live.extend(work.launch(&target, n, zone.as_deref()).await?);
            }
        }
        Plan::Terminate(surplus) => {
            work.terminate(&surplus).await?;
            live.retain(|i| !surplus.contains(&i.instance_id));
        }
        Plan::Settled | Plan::Waiting | Plan::Failed(_) => {}
    }
    let next = plan::state_after_reconcile(desired, &live);
    record_instances(state, &row.id, &live, Some((next, None))).await
}

/// A reconcile under way: the deployment, who it acts for, and its account's EC2.
struct Reconciling<'a> {
    state: &'a AppState,
    row: &'a DeploymentRow,
    actor: &'a Entry,
    account: &'a AccountRow,
    ec2: &'a dyn Ec2,
}

impl Reconciling<'_> {
    /// Launches `count` more instances (in `zone`, when the deployment spreads over zones),
    /// audited as the actor's `RunInstances`.
    async fn launch(
        &self,
        target: &Target,
        count: u32,
        zone: Option<&str>,
    ) -> ApiResult<Vec<Instance>> {
        let input = self.run_input(target, count, zone).await?;
        self.run(&input).await
    }

    /// `RunInstances` with `input`, audited as the actor's.
    async fn run(&self, input: &RunInstancesInput) -> ApiResult<Vec<Instance>> {
        let launched = self.ec2.run_instances(input).await;
        let mut entry = self.actor.clone();
        entry.action = "ec2:RunInstances".into();
        entry.resources = vec![console_arn("deployment", &self.row.id)];
        audit::record_call(self.state, entry, &launched, |l| l.request_id.clone()).await;
        let launched = launched?;
        tracing::info!(deployment = %self.row.id, launched = launched.instances.len(), aws_request_id = ?launched.request_id, "instances launched");
        Ok(launched.instances)
    }

    /// The `RunInstances` request of this launch: the spec, the deployment's tags, and user
    /// data carrying what the instances are granted (credentials are issued here).
    async fn run_input(
        &self,
        target: &Target,
        count: u32,
        zone: Option<&str>,
    ) -> ApiResult<RunInstancesInput> {
        let (state, row) = (self.state, self.row);
        let spec = stored_spec(row)?;
        let script = state.vault.get(&user_script_record(&row.id)).await?;
        let grant = match spec.credentials {
            CredentialMode::Account => Grant::Account,
            // No payload at all: the grant is never looked at.
            CredentialMode::None => Grant::Sizing,
            CredentialMode::Scoped | CredentialMode::Bootstrap | CredentialMode::Proxy => {
                Grant::Refresh(
                    refresh::for_launch(state, row, &spec, self.account, target, self.actor)
                        .await?,
                )
            }
        };
        let data = user_data(
            &state.config.public_url,
            &row.id,
            &spec,
            target,
            grant,
            script.as_ref().map(|s| s.as_slice()),
        )?;
        let placement = placement_of(&spec, zone);
        let mut tags = spec.tags.clone();
        tags.push(Tag::new(DEPLOYMENT_TAG, &row.id));
        tags.push(Tag::new(DEPLOYED_BY_TAG, &row.created_by));
        Ok(RunInstancesInput {
            image_id: spec.image_id,
            instance_type: spec.instance_type,
            count,
            subnet_id: spec.subnet_id,
            security_group_ids: spec.security_group_ids,
            key_name: spec.key_name,
            tags,
            user_data: data,
            // One token per zone: each zone's launch is its own, retried alone.
            client_token: match zone {
                Some(zone) => format!("{}-g{}-{zone}", row.id, row.generation),
                None => format!("{}-g{}", row.id, row.generation),
            },
            metadata_hop_limit: spec.metadata_hop_limit,
            placement,
        })
    }

    /// Terminates the surplus, audited as the actor's `TerminateInstances`, and revokes the
    /// refresh secrets of the instances that leave.
    async fn terminate(&self, surplus: &[String]) -> ApiResult<()> {
        let (account, row) = (self.account, self.row);
        let result = self.ec2.change_state(StateAction::Terminate, surplus).await;
        let mut entry = self.actor.clone();
        entry.action = "ec2:TerminateInstances".into();
        entry.resources = surplus
            .iter()
            .map(|i| ec2_arn(&account.region, &account.aws_account_id, "instance", i))
            .collect();
        audit::record_call(self.state, entry, &result, |id| id.clone()).await;
        let request_id = result?;
        refresh::revoke_instances(self.state, &row.id, surplus).await;
        tracing::info!(deployment = %row.id, terminated = ?surplus, aws_request_id = ?request_id, "surplus instances terminated");
        Ok(())
    }
}

/// Launches the replacement of one node of the deployment: the deployment's own launch (user
/// data, credentials, tags) with `image` and `instance_type`, in the old node's subnet, audited
/// as `actor`'s `RunInstances`. `token` makes a repeated launch (a resumed roll) return the
/// instance the first one made.
pub(crate) async fn launch_replacement(
    state: &AppState,
    row: &DeploymentRow,
    actor: &Entry,
    replacement: &Replacement<'_>,
) -> ApiResult<Instance> {
    let (account, target) = accounts::target(state, &row.account).await?;
    let ec2 = state.cloud.ec2(&target).await?;
    let work = Reconciling {
        state,
        row,
        actor,
        account: &account,
        ec2: ec2.as_ref(),
    };
    let mut input = work.run_input(&target, 1, None).await?;
    input.image_id = replacement.image_id.to_owned();
    input.instance_type = replacement.instance_type.to_owned();
    input.subnet_id = replacement.subnet_id.map(str::to_owned);
    input.client_token = replacement.token.to_owned();
    work.run(&input)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::Internal("RunInstances returned no instance".into()))
}

/// What a node's replacement is launched with.
pub(crate) struct Replacement<'a> {
    /// The new image.
    pub image_id: &'a str,
    /// The new instance type.
    pub instance_type: &'a str,
    /// The old node's subnet.
    pub subnet_id: Option<&'a str>,
    /// The launch's client token.
    pub token: &'a str,
}

/// After a roll: the deployment launches the new image and type from now on, and lists the
/// instances EC2 shows now.
pub(crate) async fn rolled(
    state: &AppState,
    row: &DeploymentRow,
    image_id: &str,
    instance_type: &str,
) -> ApiResult<()> {
    let mut spec = stored_spec(row)?;
    spec.image_id = image_id.to_owned();
    spec.instance_type = instance_type.to_owned();
    let json = serde_json::to_string(&spec).map_err(|e| ApiError::Internal(e.to_string()))?;
    state
        .store
        .set_deployment_spec(&row.id, &json, &crate::now())
        .await?;
    let (_, target) = accounts::target(state, &row.account).await?;
    let ec2 = state.cloud.ec2(&target).await?;
    let live = ec2.describe_instances(&live_filters(&row.id), &[]).await?;
    record_instances(state, &row.id, &live, None).await
}

/// Records what EC2 reports of the deployment's instances, and its new state (with why it
/// failed) when there is one, in one commit.
async fn record_instances(
    state: &AppState,
    id: &str,
    instances: &[Instance],
    next: Option<(DeploymentState, Option<String>)>,
) -> ApiResult<()> {
    let rows: Vec<DeploymentInstanceRow> = instances
        .iter()
        .map(|i| DeploymentInstanceRow {
            instance_id: i.instance_id.clone(),
            state: i.state.clone(),
            private_ip: i.private_ip.clone(),
            public_ip: i.public_ip.clone(),
            launched_at: i.launch_time.map(|t| t.to_rfc3339()),
        })
        .collect();
    let at = crate::now();
    let change = next.as_ref().map(|(next, error)| StateChange {
        state: *next,
        error: error.as_deref(),
        at: &at,
    });
    state
        .store
        .set_deployment_instances(id, &rows, change.as_ref())
        .await?;
    Ok(())
}

/// A deployment a request of this node is launching (or rescaling) right now: kept in the
/// watched set meanwhile, so this node's scan for unsettled deployments does not launch it a
/// second time. Other nodes leave a pending deployment alone for [`plan::PENDING_GRACE`].
struct Launching<'a> {
    state: &'a AppState,
    id: String,
    claimed: bool,
}

impl<'a> Launching<'a> {
    fn claim(state: &'a AppState, id: &str) -> Launching<'a> {
        let claimed = state
            .watching
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(id.to_owned());
        Launching {
            state,
            id: id.to_owned(),
            claimed,
        }
    }
}

impl Drop for Launching<'_> {
    fn drop(&mut self) {
        if self.claimed {
            self.state
                .watching
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .remove(&self.id);
        }
    }
}

/// Watches a deployment in the background until its instances run, fail or time out.
/// Only the holder of the deployments lease watches, and at most once per deployment; on
/// another node this does nothing and the holder picks the deployment up within a second.
pub fn spawn_watch(state: &AppState, id: &str) {
    if !state.cluster.holds(Lease::Deployments) {
        return;
    }
    {
        let mut watching = state
            .watching
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !watching.insert(id.to_owned()) {
            return;
        }
    }
    let state = state.clone();
    let id = id.to_owned();
    tokio::spawn(async move {
        if let Err(e) = watch(&state, &id).await {
            tracing::warn!(deployment = %id, error = %e, "watching the deployment failed");
        }
        state
            .watching
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&id);
    });
}

async fn watch(state: &AppState, id: &str) -> ApiResult<()> {
    let started = Instant::now();
    // Opened once per watch, not once per look: it unseals the account's key.
    let mut ec2: Option<std::sync::Arc<dyn Ec2>> = None;
    loop {
        if !state.cluster.holds(Lease::Deployments) {
            tracing::info!(deployment = %id, "no longer the deployments lease holder: leaving the watch to the node that is");
            return Ok(());
        }
        let Some(row) = state.store.deployment(id).await? else {
            return Ok(());
        };
        match plan::next_watch(row.state, started.elapsed(), state.config.launch_timeout) {
            Watch::Reconcile => {
                let actor = Entry {
                    user: row.created_by.clone(),
                    detail: Some("resumed by the console after a restart".into()),
                    ..Entry::default()
                };
                if reconcile(state, &row, &actor, Live::Describe)
                    .await
                    .is_err()
                {
                    return Ok(());
                }
                continue;
            }
            Watch::TimedOut(why) => {
                state
                    .store
                    .set_deployment_state(id, DeploymentState::Failed, Some(&why), &crate::now())
                    .await?;
                return Ok(());
            }
            Watch::Stop => return Ok(()),
            Watch::Look => {}
        }
        tokio::time::sleep(state.config.poll_interval).await;
        let client = match &ec2 {
            Some(client) => client.clone(),
            None => {
                let (_account, target) = accounts::target(state, &row.account).await?;
                ec2.insert(state.cloud.ec2(&target).await?).clone()
            }
        };
        look(state, &row, client.as_ref()).await?;
    }
}

/// Looks at the deployment's instances once and settles its state if they all run, or fails
/// it if some were terminated under it.
async fn look(state: &AppState, row: &DeploymentRow, ec2: &dyn Ec2) -> ApiResult<()> {
    let live = ec2.describe_instances(&live_filters(&row.id), &[]).await?;
    let settled = match plan::watch(desired_count(row), &live) {
        Plan::Settled => Some((DeploymentState::Running, None)),
        Plan::Failed(why) => Some((DeploymentState::Failed, Some(why))),
        Plan::Waiting | Plan::Launch(_) | Plan::Terminate(_) => None,
    };
    record_instances(state, &row.id, &live, settled).await
}

/// `GET /v1/deployments`: the deployments the caller may get (`airlock:GetDeployment` on each).
#[utoipa::path(
    get,
    path = "/v1/deployments",
    summary = "List deployments",
    responses(
        (status = 200, description = "Deployments", body = Vec<airlock_api::deployments::DeploymentView>),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<DeploymentView>>> {
    authorize(
        &state,
        &caller,
        vec![ops::console("airlock:ListDeployments", "deployment", "*")],
    )
    .await?;
    let policies = crate::authz::policies_of(&state, &caller.user).await?;
    let principal = crate::authz::principal(&caller);
    let mut out = Vec::new();
    for row in state.store.deployments().await? {
        if crate::authz::permits(
            &policies,
            &principal,
            &deployment_check("airlock:GetDeployment", &row),
        ) {
            out.push(view(&state, row).await?);
        }
    }
    Ok(Json(out))
}

fn unknown_deployment(id: &str) -> ApiError {
    ApiError::NotFound(format!(
        "unknown deployment {id:?}: see `airlock deployment list`"
    ))
}

async fn find(state: &AppState, id: &str) -> ApiResult<DeploymentRow> {
    state
        .store
        .deployment(id)
        .await?
        .ok_or_else(|| unknown_deployment(id))
}

/// A deployment the caller may act on with `action`, decided with what is known of it. One
/// that does not exist is decided as one nobody made, so a caller who may not act on it cannot
/// tell a missing deployment from a forbidden one.
pub async fn find_for(
    state: &AppState,
    caller: &Caller,
    action: &str,
    id: &str,
) -> ApiResult<DeploymentRow> {
    let row = state.store.deployment(id).await?;
    let check = match &row {
        Some(row) => deployment_check(action, row),
        None => ops::deployment(action, id, None, None),
    };
    authorize(state, caller, vec![check]).await?;
    row.ok_or_else(|| unknown_deployment(id))
}

/// A deployment the caller may see (`airlock:GetDeployment`).
async fn find_readable(state: &AppState, caller: &Caller, id: &str) -> ApiResult<DeploymentRow> {
    find_for(state, caller, "airlock:GetDeployment", id).await
}

/// `GET /v1/deployments/{id}`.
#[utoipa::path(
    get,
    path = "/v1/deployments/{id}",
    summary = "A deployment and its instances",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The deployment", body = airlock_api::deployments::DeploymentView),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 404, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<DeploymentView>> {
    let row = find_readable(&state, &caller, &id).await?;
    Ok(Json(view(&state, row).await?))
}

/// `GET /v1/deployments/{id}/policy`: the session policy of a scoped deployment's credentials.
#[utoipa::path(
    get,
    path = "/v1/deployments/{id}/policy",
    summary = "The IAM session policy a scoped or bootstrap deployment's credentials are issued with",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The policy", body = airlock_api::deployments::DeploymentPolicy),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
        (status = 404, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn policy(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<DeploymentPolicy>> {
    let row = find_readable(&state, &caller, &id).await?;
    let spec = stored_spec(&row)?;
    if row.session_policy.is_none() {
        return Err(ApiError::NotFound(format!(
            "deployment {id} has credentials {}: there is no session policy (only scoped, bootstrap and proxy deployments have one)",
            spec.credentials.as_str()
        )));
    }
    // What the next refresh issues: generated again from the deployer's policies as they are.
    let account = accounts::row(&state, &row.account).await?;
    let text = refresh::current_policy(&state, &row, &spec, &account)
        .await?
        .map_err(|why| {
            ApiError::Conflict(format!(
                "the instances of {id} get no more credentials: {why}"
            ))
        })?;
    let policy = serde_json::from_str(&text)
        .map_err(|e| ApiError::Internal(format!("stored session policy of {id}: {e}")))?;
    Ok(Json(DeploymentPolicy {
        deployment_id: id,
        credentials: spec.credentials,
        duration_seconds: spec
            .credentials_duration_seconds
            .unwrap_or(refresh::DEFAULT_DURATION),
        policy,
    }))
}

/// `POST /v1/deployments/{id}/scale`: launch more with the same spec, or terminate the surplus.
#[utoipa::path(
    post,
    path = "/v1/deployments/{id}/scale",
    summary = "Launch more instances with the same spec, or terminate the newest surplus",
    params(("id" = String, Path)),
    request_body = airlock_api::deployments::ScaleRequest,
    responses(
        (status = 200, description = "Rescaled", body = airlock_api::deployments::DeploymentView),
        (status = 400, description = "Error", body = airlock_api::ErrorBody),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 404, description = "Error", body = airlock_api::ErrorBody),
        (status = 502, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn scale(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(req): Body<ScaleRequest>,
) -> ApiResult<Json<DeploymentView>> {
    if req.count > 1000 {
        return Err(ApiError::field("count", "count must be at most 1000"));
    }
    let current = state.store.deployment(&id).await?;
    let scale_check = match &current {
        Some(row) => deployment_check("airlock:ScaleDeployment", row),
        None => ops::deployment("airlock:ScaleDeployment", &id, None, None),
    };
    let account_name = current.as_ref().map_or("*", |r| r.account.as_str());
    precheck(
        &state,
        &caller,
        vec![scale_check.clone(), ops::use_account(account_name)],
    )
    .await?;
    let current = current.ok_or_else(|| unknown_deployment(&id))?;
    if let Some(roll) = state.store.latest_roll(&id).await? {
        if roll.state == airlock_api::state::RollState::Running {
            return Err(ApiError::Conflict(format!(
                "roll {} is replacing this deployment's nodes: scale it when the roll ends (or `airlock deployment roll {id} --abort`)",
                roll.id
            )));
        }
    }
    let (account, target) = accounts::target(&state, &current.account).await?;
    let ec2 = state.cloud.ec2(&target).await?;
    let mut checks = vec![scale_check, ops::use_account(&account.name)];
    let live = ec2.describe_instances(&live_filters(&id), &[]).await?;
    let wanted = usize::try_from(req.count).unwrap_or(usize::MAX);
    match plan::reconcile(wanted, &live, &[]) {
        Plan::Launch(_) => {
            let spec = stored_spec(&current)?;
            checks.extend(run_checks(&state, ec2.as_ref(), &account, &spec).await?);
        }
        Plan::Terminate(_) => {
            // Which instances go is decided later (the newest); the caller must be allowed to
            // terminate any of them.
            let scope = accounts::scope_of(&account);
            checks.extend(
                live.iter()
                    .map(|i| ops::instance(&scope, "ec2:TerminateInstances", i)),
            );
        }
        Plan::Settled | Plan::Waiting | Plan::Failed(_) => {}
    }
    authorize(&state, &caller, checks).await?;
    let launching = Launching::claim(&state, &id);
    state
        .store
        .rescale_deployment(&id, i64::from(req.count), &crate::now())
        .await?;
    tracing::info!(deployment = %id, user = %caller.user, count = req.count, "deployment rescaled");
    let row = find(&state, &id).await?;
    reconcile(
        &state,
        &row,
        &Entry::for_caller(&caller, "", vec![]),
        Live::Describe,
    )
    .await?;
    drop(launching);
    spawn_watch(&state, &id);
    let row = find(&state, &id).await?;
    Ok(Json(view(&state, row).await?))
}

/// EC2 filters for a deployment's live instances.
pub(crate) fn live_filters(id: &str) -> Vec<Filter> {
    vec![
        Filter::new(format!("tag:{DEPLOYMENT_TAG}"), id),
        Filter {
            name: "instance-state-name".into(),
            values: plan::LIVE_STATES.iter().map(|s| (*s).to_owned()).collect(),
        },
    ]
}

/// Where a launch of the deployment in `zone` goes.
fn placement_of(spec: &DeploymentSpec, zone: Option<&str>) -> Placement {
    Placement {
        availability_zone: zone.map(str::to_owned),
        tenancy: spec.tenancy,
        group_name: spec.placement_group.clone(),
    }
}

/// What AWS checks for the deployment's `RunInstances` (one per zone it spreads over), with the
/// current tags of the image, subnet and security groups looked up in EC2.
pub(crate) async fn run_checks(
    state: &AppState,
    ec2: &dyn Ec2,
    account: &AccountRow,
    spec: &DeploymentSpec,
) -> ApiResult<Vec<Check>> {
    let zones: Vec<Option<&str>> = if spec.availability_zones.is_empty() {
        vec![None]
    } else {
        spec.availability_zones
            .iter()
            .map(|z| Some(z.as_str()))
            .collect()
    };
    let mut checks = Vec::new();
    for zone in zones {
        let placement = placement_of(spec, zone);
        let launch = Launch {
            image_id: &spec.image_id,
            instance_type: &spec.instance_type,
            subnet_id: spec.subnet_id.as_deref(),
            security_group_ids: &spec.security_group_ids,
            key_name: spec.key_name.as_deref(),
            tags: &spec.tags,
            metadata_hop_limit: spec.metadata_hop_limit,
            placement: &placement,
        };
        let tags = state
            .tags
            .tags(ec2, &account.name, &launch.existing_ids())
            .await?;
        let tags_of = |id: &str| tags.get(id).cloned().unwrap_or_default();
        checks.extend(ops::run_instances(
            &accounts::scope_of(account),
            &launch,
            &tags_of,
        ));
    }
    Ok(checks)
}

/// While this node holds the deployments lease, watches every unsettled deployment: those a
/// node that died or restarted left, and those other nodes launched. Looks every second.
pub async fn keep_watching(state: AppState) {
    let every = state.config.poll_interval.max(Duration::from_secs(1));
    loop {
        state.cluster.gained(Lease::Deployments).await;
        if let Err(e) = resume_all(&state).await {
            tracing::warn!(error = %e, "cannot resume unsettled deployments");
        }
        tokio::time::sleep(every).await;
    }
}

/// Watches every unsettled deployment not watched yet.
async fn resume_all(state: &AppState) -> ApiResult<()> {
    let alone = state.cluster.live_nodes() <= 1;
    let now = chrono::Utc::now();
    for row in state.store.unsettled_deployments().await? {
        let unwatched = !state
            .watching
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains(&row.id);
        if unwatched && plan::resumable(row.state, &row.updated_at, now, alone) {
            tracing::info!(deployment = %row.id, state = %row.state, "resuming deployment");
            spawn_watch(state, &row.id);
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn request() -> DeployRequest {
        serde_json::from_str(r#"{"account":"a","image_id":"ami-1","instance_type":"t3.micro"}"#)
            .unwrap()
    }

    #[test]
    fn defaults_are_one_instance_and_hop_limit_one() {
        let r = request();
        assert_eq!(r.count, 1);
        assert_eq!(r.metadata_hop_limit, 1);
        assert!(validate_request(&r).is_ok());
    }

    #[test]
    fn bad_fields_are_named() {
        let field = |r: DeployRequest| match validate_request(&r).unwrap_err() {
            ApiError::BadRequest { field, .. } => field.unwrap(),
            other => panic!("{other}"),
        };
        assert_eq!(
            field(DeployRequest {
                count: 0,
                ..request()
            }),
            "count"
        );
        assert_eq!(
            field(DeployRequest {
                image_id: "img".into(),
                ..request()
            }),
            "image_id"
        );
        assert_eq!(
            field(DeployRequest {
                instance_type: "big".into(),
                ..request()
            }),
            "instance_type"
        );
        assert_eq!(
            field(DeployRequest {
                metadata_hop_limit: 0,
                ..request()
            }),
            "metadata_hop_limit"
        );
        assert_eq!(
            field(DeployRequest {
                security_group_ids: vec!["sg-1".into(), "x".into()],
                ..request()
            }),
            "security_group_ids[1]"
        );
        let tags: Vec<Tag> = (0..49).map(|i| Tag::new(format!("k{i}"), "v")).collect();
        assert_eq!(field(DeployRequest { tags, ..request() }), "tags");
        let zones = |z: &[&str]| z.iter().map(|z| (*z).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            field(DeployRequest {
                availability_zones: zones(&["us-east-1a"]),
                subnet_id: Some("subnet-1".into()),
                ..request()
            }),
            "availability_zones"
        );
        assert_eq!(
            field(DeployRequest {
                availability_zones: zones(&["us-east-1a", "us-east-1a"]),
                ..request()
            }),
            "availability_zones[1]"
        );
        assert_eq!(
            field(DeployRequest {
                availability_zones: zones(&["us-east-1a", "Zone B"]),
                ..request()
            }),
            "availability_zones[1]"
        );
    }
}
