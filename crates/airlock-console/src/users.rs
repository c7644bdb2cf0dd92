//! Console users, their policies, second factors and the policy simulator.

use crate::audit::{self, Entry};
use crate::auth::Caller;
use crate::authz::{authorize, authorize_one, console_arn};
use crate::error::{ApiError, ApiResult};
use crate::json::Body;
use crate::state::AppState;
use crate::validate;
use airlock_access::ops;
use airlock_api::users::{
    AddUserRequest, AttachPolicyRequest, MfaEnabled, PolicyView, PutPolicyRequest, SimulateRequest,
    UserView,
};
use airlock_policy::Policy;
use airlock_store::{PolicyRow, UserRow};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use secrecy::ExposeSecret;

async fn user_view(state: &AppState, name: &str) -> ApiResult<UserView> {
    Ok(UserView {
        name: name.to_owned(),
        policies: state
            .store
            .user_policies(name)
            .await?
            .into_iter()
            .map(|p| p.name)
            .collect(),
        mfa: state.store.user_totp(name).await?.is_some(),
    })
}

/// `POST /v1/users`.
#[utoipa::path(
    post,
    path = "/v1/users",
    summary = "Add a user (airlock:CreateUser)",
    request_body = airlock_api::users::AddUserRequest,
    responses(
        (status = 201, description = "Added", body = airlock_api::users::UserView),
        (status = 400, description = "Error", body = airlock_api::ErrorBody),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
        (status = 409, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    Body(req): Body<AddUserRequest>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    validate::name("name", &req.name)?;
    if req.password.expose_secret().chars().count() < 12 {
        return Err(ApiError::field(
            "password",
            "a password is at least 12 characters",
        ));
    }
    let arn = console_arn("user", &req.name);
    let mut checks = vec![ops::console("airlock:CreateUser", "user", &req.name)];
    for p in &req.policies {
        checks.push(ops::user_policy("airlock:AttachUserPolicy", &req.name, p));
    }
    authorize(&state, &caller, checks).await?;
    for (i, p) in req.policies.iter().enumerate() {
        if state.store.policy(p).await?.is_none() {
            return Err(ApiError::field(
                format!("policies[{i}]"),
                format!("unknown policy {p:?}"),
            ));
        }
    }
    state
        .store
        .insert_user(&UserRow {
            name: req.name.clone(),
            password_hash: state.passwords.hash(req.password.clone()).await?,
            created_at: crate::now(),
        })
        .await?;
    for p in &req.policies {
        state.store.attach_policy(&req.name, p).await?;
    }
    audit::record_ok(
        &state,
        Entry::for_caller(&caller, "airlock:CreateUser", vec![arn]),
        None,
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(user_view(&state, &req.name).await?),
    ))
}

/// `GET /v1/users`.
#[utoipa::path(
    get,
    path = "/v1/users",
    summary = "List users (airlock:ListUsers)",
    responses(
        (status = 200, description = "Users", body = Vec<airlock_api::users::UserView>),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<UserView>>> {
    authorize_one(
        &state,
        &caller,
        "airlock:ListUsers",
        &console_arn("user", "*"),
    )
    .await?;
    let mut out = Vec::new();
    for name in state.store.user_names().await? {
        out.push(user_view(&state, &name).await?);
    }
    Ok(Json(out))
}

/// `DELETE /v1/users/{name}`.
#[utoipa::path(
    delete,
    path = "/v1/users/{name}",
    summary = "Remove a user (airlock:DeleteUser)",
    params(("name" = String, Path)),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
        (status = 404, description = "Error", body = airlock_api::ErrorBody),
        (status = 409, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let arn = console_arn("user", &name);
    authorize_one(&state, &caller, "airlock:DeleteUser", &arn).await?;
    if name == caller.user {
        return Err(ApiError::Conflict("you cannot remove yourself".into()));
    }
    if let Some(record) = state.store.user_totp(&name).await? {
        state.store.delete_sealed(&record).await?;
    }
    if !state.store.delete_user(&name).await? {
        return Err(ApiError::NotFound(format!("unknown user {name:?}")));
    }
    audit::record_ok(
        &state,
        Entry::for_caller(&caller, "airlock:DeleteUser", vec![arn]),
        None,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/users/{name}/policies`.
#[utoipa::path(
    post,
    path = "/v1/users/{name}/policies",
    summary = "Attach a stored policy (airlock:AttachUserPolicy)",
    params(("name" = String, Path)),
    request_body = airlock_api::users::AttachPolicyRequest,
    responses(
        (status = 200, description = "The user", body = airlock_api::users::UserView),
        (status = 400, description = "Error", body = airlock_api::ErrorBody),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
        (status = 404, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn attach(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Body(req): Body<AttachPolicyRequest>,
) -> ApiResult<Json<UserView>> {
    let arn = console_arn("user", &name);
    let check = ops::user_policy("airlock:AttachUserPolicy", &name, &req.policy);
    authorize(&state, &caller, vec![check]).await?;
    if state.store.user(&name).await?.is_none() {
        return Err(ApiError::NotFound(format!("unknown user {name:?}")));
    }
    if state.store.policy(&req.policy).await?.is_none() {
        return Err(ApiError::field(
            "policy",
            format!("unknown policy {:?}", req.policy),
        ));
    }
    state.store.attach_policy(&name, &req.policy).await?;
    audit::record_ok(
        &state,
        Entry::for_caller(&caller, "airlock:AttachUserPolicy", vec![arn]),
        None,
    )
    .await;
    Ok(Json(user_view(&state, &name).await?))
}

/// `DELETE /v1/users/{name}/policies/{policy}`.
#[utoipa::path(
    delete,
    path = "/v1/users/{name}/policies/{policy}",
    summary = "Detach a policy (airlock:DetachUserPolicy)",
    params(("name" = String, Path), ("policy" = String, Path)),
    responses(
        (status = 200, description = "The user", body = airlock_api::users::UserView),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
        (status = 404, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn detach(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, policy)): Path<(String, String)>,
) -> ApiResult<Json<UserView>> {
    let arn = console_arn("user", &name);
    let check = ops::user_policy("airlock:DetachUserPolicy", &name, &policy);
    authorize(&state, &caller, vec![check]).await?;
    if !state.store.detach_policy(&name, &policy).await? {
        return Err(ApiError::NotFound(format!(
            "policy {policy:?} is not attached to {name:?}"
        )));
    }
    audit::record_ok(
        &state,
        Entry::for_caller(&caller, "airlock:DetachUserPolicy", vec![arn]),
        None,
    )
    .await;
    Ok(Json(user_view(&state, &name).await?))
}

fn totp(secret: Vec<u8>, user: &str) -> ApiResult<totp_rs::TOTP> {
    totp_rs::TOTP::new(
        totp_rs::Algorithm::SHA1,
        6,
        1,
        30,
        secret,
        Some("Airlock".into()),
        user.to_owned(),
    )
    .map_err(|e| ApiError::Internal(format!("TOTP: {e}")))
}

/// How a one-time code was judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpCheck {
    /// Right, and not used before.
    Accepted,
    /// Not a code of this user's secret now (one 30-second step of clock skew allowed).
    Wrong,
    /// Right, but a code of this step or an earlier one already logged the user in.
    Replayed,
}

/// Checks a TOTP code against the user's sealed secret. A code works once: the step it belongs
/// to is recorded in the store, and a code of that step or an earlier one is refused afterwards
/// by every console sharing it.
pub async fn check_totp(
    state: &AppState,
    user: &str,
    record: &str,
    code: &str,
) -> ApiResult<OtpCheck> {
    let secret = state.vault.get(record).await?.ok_or_else(|| {
        ApiError::Internal(format!(
            "the second factor of {user:?} is missing from the vault"
        ))
    })?;
    let totp = totp(secret.to_vec(), user)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let step = now / totp.step;
    let matched = [step.saturating_sub(1), step, step + 1]
        .into_iter()
        .find(|s| totp.generate(s * totp.step) == code);
    let Some(matched) = matched else {
        return Ok(OtpCheck::Wrong);
    };
    let step = i64::try_from(matched)
        .map_err(|_| ApiError::Internal(format!("TOTP step {matched} is out of range")))?;
    // One conditional update decides, so two consoles given the same code never both accept it.
    Ok(if state.store.claim_totp_step(user, step).await? {
        OtpCheck::Accepted
    } else {
        OtpCheck::Replayed
    })
}

/// `POST /v1/users/{name}/mfa`: enables a TOTP second factor and shows its secret once.
#[utoipa::path(
    post,
    path = "/v1/users/{name}/mfa",
    summary = "Enable a TOTP second factor; its secret is returned once (airlock:EnableMfaDevice)",
    params(("name" = String, Path)),
    responses(
        (status = 200, description = "The secret", body = airlock_api::users::MfaEnabled),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
        (status = 404, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn enable_mfa(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<MfaEnabled>> {
    let arn = console_arn("user", &name);
    authorize_one(&state, &caller, "airlock:EnableMfaDevice", &arn).await?;
    if state.store.user(&name).await?.is_none() {
        return Err(ApiError::NotFound(format!("unknown user {name:?}")));
    }
    let secret = totp_rs::Secret::generate_secret();
    let bytes = secret
        .to_bytes()
        .map_err(|e| ApiError::Internal(format!("TOTP: {e}")))?;
    let record = format!("user:{name}:totp");
    state.vault.put(&record, &bytes).await?;
    state.store.set_user_totp(&name, Some(&record)).await?;
    let totp = totp(bytes, &name)?;
    audit::record_ok(
        &state,
        Entry::for_caller(&caller, "airlock:EnableMfaDevice", vec![arn]),
        None,
    )
    .await;
    Ok(Json(MfaEnabled {
        user: name,
        secret: totp.get_secret_base32(),
        otpauth_url: totp.get_url(),
    }))
}

fn policy_view(row: PolicyRow) -> PolicyView {
    PolicyView {
        name: row.name,
        document: row.document,
        created_by: row.created_by,
        created_at: row.created_at,
    }
}

/// `PUT /v1/policies/{name}`: stores a policy after validating it.
#[utoipa::path(
    put,
    path = "/v1/policies/{name}",
    summary = "Store or replace a policy after validating it (airlock:PutPolicy)",
    params(("name" = String, Path)),
    request_body = airlock_api::users::PutPolicyRequest,
    responses(
        (status = 200, description = "Stored", body = airlock_api::users::PolicyView),
        (status = 400, description = "Error", body = airlock_api::ErrorBody),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn put_policy(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Body(req): Body<PutPolicyRequest>,
) -> ApiResult<Json<PolicyView>> {
    validate::name("name", &name)?;
    let arn = console_arn("policy", &name);
    authorize_one(&state, &caller, "airlock:PutPolicy", &arn).await?;
    Policy::parse(&name, &req.document).map_err(|e| ApiError::field("document", e.to_string()))?;
    let row = PolicyRow {
        name: name.clone(),
        document: req.document,
        created_by: caller.user.clone(),
        created_at: crate::now(),
    };
    state.store.put_policy(&row).await?;
    audit::record_ok(
        &state,
        Entry::for_caller(&caller, "airlock:PutPolicy", vec![arn]),
        None,
    )
    .await;
    let stored = state.store.policy(&name).await?.unwrap_or(row);
    Ok(Json(policy_view(stored)))
}

/// `GET /v1/policies`.
#[utoipa::path(
    get,
    path = "/v1/policies",
    summary = "List stored policies (airlock:ListPolicies)",
    responses(
        (status = 200, description = "Policies", body = Vec<airlock_api::users::PolicyView>),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn list_policies(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<PolicyView>>> {
    authorize_one(
        &state,
        &caller,
        "airlock:ListPolicies",
        &console_arn("policy", "*"),
    )
    .await?;
    Ok(Json(
        state
            .store
            .policies()
            .await?
            .into_iter()
            .map(policy_view)
            .collect(),
    ))
}

/// `GET /v1/policies/{name}`.
#[utoipa::path(
    get,
    path = "/v1/policies/{name}",
    summary = "A stored policy (airlock:GetPolicy)",
    params(("name" = String, Path)),
    responses(
        (status = 200, description = "The policy", body = airlock_api::users::PolicyView),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
        (status = 404, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn get_policy(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<PolicyView>> {
    authorize_one(
        &state,
        &caller,
        "airlock:GetPolicy",
        &console_arn("policy", &name),
    )
    .await?;
    let row = state
        .store
        .policy(&name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("unknown policy {name:?}")))?;
    Ok(Json(policy_view(row)))
}

/// `DELETE /v1/policies/{name}`.
#[utoipa::path(
    delete,
    path = "/v1/policies/{name}",
    summary = "Delete a policy no user has attached (airlock:DeletePolicy)",
    params(("name" = String, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
        (status = 404, description = "Error", body = airlock_api::ErrorBody),
        (status = 409, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn delete_policy(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let arn = console_arn("policy", &name);
    authorize_one(&state, &caller, "airlock:DeletePolicy", &arn).await?;
    match state.store.delete_policy(&name).await {
        Ok(true) => {}
        Ok(false) => return Err(ApiError::NotFound(format!("unknown policy {name:?}"))),
        Err(airlock_store::StoreError::Conflict(m)) => return Err(ApiError::Conflict(m)),
        Err(e) => return Err(e.into()),
    }
    audit::record_ok(
        &state,
        Entry::for_caller(&caller, "airlock:DeletePolicy", vec![arn]),
        None,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/policies/simulate`: the same evaluation as `airlock policy simulate`.
#[utoipa::path(
    post,
    path = "/v1/policies/simulate",
    summary = "Decide a request against policy documents, as the console does (airlock:SimulatePolicy)",
    request_body = airlock_api::users::SimulateRequest,
    responses(
        (status = 200, description = "The decision", body = Object),
        (status = 400, description = "Error", body = airlock_api::ErrorBody),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn simulate(
    State(state): State<AppState>,
    caller: Caller,
    Body(req): Body<SimulateRequest>,
) -> ApiResult<Json<airlock_policy::Response>> {
    authorize_one(&state, &caller, "airlock:SimulatePolicy", "*").await?;
    let mut policies = Vec::new();
    for (i, doc) in req.policies.iter().enumerate() {
        let id = format!("policies[{i}]");
        let policy = Policy::parse(&id, &doc.to_string())
            .map_err(|e| ApiError::field(id.clone(), e.to_string()))?;
        policies.push(policy);
    }
    Ok(Json(airlock_policy::evaluate(&policies, &req.request)))
}
