//! AWS accounts: verified with STS before they are stored, secrets sealed, never shown again.

use crate::audit::{self, Entry};
use crate::auth::Caller;
use crate::authz::{authorize_one, console_arn};
use crate::endpoints::{self, AllowedEndpoint};
use crate::error::{ApiError, ApiResult};
use crate::json::Body;
use crate::state::AppState;
use crate::validate;
use airlock_api::accounts::{AccountView, AddAccountRequest, RotateKeyResult};
use airlock_cloud::{AccessKey, NewAccessKey, Target};
use airlock_store::AccountRow;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use secrecy::{ExposeSecret, SecretString};

fn view(row: AccountRow) -> AccountView {
    AccountView {
        name: row.name,
        region: row.region,
        endpoint_url: row.endpoint_url,
        access_key_id: row.access_key_id,
        role_arn: row.role_arn,
        aws_account_id: row.aws_account_id,
        caller_arn: row.caller_arn,
        created_by: row.created_by,
        created_at: row.created_at,
        verified_at: row.verified_at,
        key_created_at: row.key_created_at,
    }
}

fn secret_record(name: &str) -> String {
    format!("account:{name}:secret-access-key")
}

fn validate_request(req: &AddAccountRequest, allowed: &[AllowedEndpoint]) -> ApiResult<()> {
    validate::name("name", &req.name)?;
    validate::region("region", &req.region)?;
    if let Some(url) = &req.endpoint_url {
        endpoints::check(url, allowed).map_err(|why| ApiError::field("endpoint_url", why))?;
    }
    let id = &req.access_key_id;
    if id.len() < 16 || id.len() > 128 || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ApiError::field(
            "access_key_id",
            "an access key id is 16 to 128 letters and digits (for example AKIAIOSFODNN7EXAMPLE)",
        ));
    }
    if req.secret_access_key.expose_secret().trim().is_empty() {
        return Err(ApiError::field(
            "secret_access_key",
            "the secret access key is empty",
        ));
    }
    if let Some(arn) = &req.role_arn {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let ok = matches!(
            parts.as_slice(),
            ["arn", _, "iam", _, _, resource] if resource.starts_with("role/")
        );
        if !ok {
            return Err(ApiError::field(
                "role_arn",
                format!("{arn:?} is not a role ARN (arn:aws:iam::ACCOUNT:role/NAME)"),
            ));
        }
    } else if req.external_id.is_some() {
        return Err(ApiError::field(
            "external_id",
            "an external id is only used with role_arn",
        ));
    }
    Ok(())
}

/// `POST /v1/accounts`: verify with STS, then seal and store.
#[utoipa::path(
    post,
    path = "/v1/accounts",
    summary = "Add an account, verified with STS GetCallerIdentity first",
    request_body = airlock_api::accounts::AddAccountRequest,
    responses(
        (status = 201, description = "Added", body = airlock_api::accounts::AccountView),
        (status = 400, description = "Error", body = airlock_api::ErrorBody),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 409, description = "Error", body = airlock_api::ErrorBody),
        (status = 502, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    Body(req): Body<AddAccountRequest>,
) -> ApiResult<(StatusCode, Json<AccountView>)> {
    validate_request(&req, &state.config.allowed_endpoints)?;
    let arn = console_arn("account", &req.name);
    authorize_one(&state, &caller, "airlock:AddAccount", &arn).await?;
    if state.store.account(&req.name).await?.is_some() {
        return Err(ApiError::Conflict(format!(
            "account {:?} already exists",
            req.name
        )));
    }
    let target = Target {
        region: req.region.clone(),
        endpoint_url: req.endpoint_url.clone(),
        credentials: AccessKey {
            access_key_id: req.access_key_id.clone(),
            secret_access_key: req.secret_access_key.clone(),
            session_token: None,
        },
        role_arn: req.role_arn.clone(),
        external_id: req.external_id.clone(),
    };
    let identity = state.cloud.caller_identity(&target).await;
    audit::record_call(
        &state,
        Entry::for_caller(&caller, "sts:GetCallerIdentity", vec![arn.clone()]),
        &identity,
        |_| None,
    )
    .await;
    let identity = identity?;
    let now = crate::now();
    let record = secret_record(&req.name);
    let sealed = state
        .vault
        .seal(&record, req.secret_access_key.expose_secret().as_bytes())?;
    let row = AccountRow {
        name: req.name.clone(),
        region: req.region,
        endpoint_url: req.endpoint_url,
        access_key_id: req.access_key_id,
        secret_record: record,
        role_arn: req.role_arn,
        external_id: req.external_id,
        aws_account_id: identity.account,
        caller_arn: identity.arn,
        created_by: caller.user.clone(),
        created_at: now.clone(),
        verified_at: now,
        key_created_at: key_created_at(&state, &caller, &target, &arn).await,
    };
    state.store.insert_account(&row, &sealed).await?;
    audit::record_ok(
        &state,
        Entry::for_caller(&caller, "airlock:AddAccount", vec![arn]),
        None,
    )
    .await;
    tracing::info!(account = %row.name, user = %caller.user, source_ip = ?caller.source_ip, key_id = %row.access_key_id, "account added");
    Ok((StatusCode::CREATED, Json(view(row))))
}

/// `GET /v1/accounts`.
#[utoipa::path(
    get,
    path = "/v1/accounts",
    summary = "List accounts (never their secrets)",
    responses(
        (status = 200, description = "Accounts", body = Vec<airlock_api::accounts::AccountView>),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<AccountView>>> {
    authorize_one(
        &state,
        &caller,
        "airlock:ListAccounts",
        &console_arn("account", "*"),
    )
    .await?;
    Ok(Json(
        state
            .store
            .accounts()
            .await?
            .into_iter()
            .map(view)
            .collect(),
    ))
}

/// `POST /v1/accounts/{name}/verify`: GetCallerIdentity again with the stored key.
#[utoipa::path(
    post,
    path = "/v1/accounts/{name}/verify",
    summary = "Check the stored key with STS GetCallerIdentity",
    params(("name" = String, Path)),
    responses(
        (status = 200, description = "Verified", body = airlock_api::accounts::AccountView),
        (status = 400, description = "Error", body = airlock_api::ErrorBody),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 404, description = "Error", body = airlock_api::ErrorBody),
        (status = 502, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn verify(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<AccountView>> {
    let arn = console_arn("account", &name);
    authorize_one(&state, &caller, "airlock:VerifyAccount", &arn).await?;
    let (row, target) = target(&state, &name).await?;
    let identity = state.cloud.caller_identity(&target).await;
    audit::record_call(
        &state,
        Entry::for_caller(&caller, "sts:GetCallerIdentity", vec![arn]),
        &identity,
        |_| None,
    )
    .await;
    let identity = identity?;
    let now = crate::now();
    state
        .store
        .mark_account_verified(&name, &identity.account, &identity.arn, &now)
        .await?;
    Ok(Json(view(AccountRow {
        aws_account_id: identity.account,
        caller_arn: identity.arn,
        verified_at: now,
        ..row
    })))
}

/// `DELETE /v1/accounts/{name}`: the account and its sealed secret go together.
#[utoipa::path(
    delete,
    path = "/v1/accounts/{name}",
    summary = "Remove an account and its sealed secret",
    params(("name" = String, Path)),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 404, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let arn = console_arn("account", &name);
    authorize_one(&state, &caller, "airlock:RemoveAccount", &arn).await?;
    if !state.store.delete_account(&name).await? {
        return Err(unknown(&name));
    }
    audit::record_ok(
        &state,
        Entry::for_caller(&caller, "airlock:RemoveAccount", vec![arn]),
        None,
    )
    .await;
    tracing::info!(account = %name, user = %caller.user, "account removed");
    Ok(StatusCode::NO_CONTENT)
}

fn unknown(name: &str) -> ApiError {
    ApiError::NotFound(format!(
        "unknown account {name:?}: see `airlock account list`"
    ))
}

/// Like [`target`], for an account named in a request body: an unknown one is a bad `account`
/// field rather than a missing path.
pub async fn target_for_request(state: &AppState, name: &str) -> ApiResult<(AccountRow, Target)> {
    target(state, name).await.map_err(named_in_request)
}

/// [`row`] for an account a request names: an unknown one is the request's `account` field
/// at fault (400), not a missing page. The key stays sealed.
pub async fn row_for_request(state: &AppState, name: &str) -> ApiResult<AccountRow> {
    row(state, name).await.map_err(named_in_request)
}

fn named_in_request(e: ApiError) -> ApiError {
    match e {
        ApiError::NotFound(m) => ApiError::field("account", m),
        other => other,
    }
}

/// Where an account's resources live, for their ARNs and checks.
pub fn scope_of(account: &AccountRow) -> airlock_cloud::Scope {
    airlock_cloud::Scope {
        region: account.region.clone(),
        account_id: account.aws_account_id.clone(),
    }
}

/// The stored account `name`, without unsealing anything.
pub async fn row(state: &AppState, name: &str) -> ApiResult<AccountRow> {
    state
        .store
        .account(name)
        .await?
        .ok_or_else(|| unknown(name))
}

/// The stored account `name` and a [`Target`] to call AWS with its unsealed key.
pub async fn target(state: &AppState, name: &str) -> ApiResult<(AccountRow, Target)> {
    let row = row(state, name).await?;
    // Checked again at every use: an allowance the operator has since withdrawn ends here,
    // before the key is unsealed.
    if let Some(url) = &row.endpoint_url {
        endpoints::check(url, &state.config.allowed_endpoints).map_err(|why| {
            ApiError::Forbidden(format!("account {name:?} cannot be used: {why}"))
        })?;
    }
    let plain = state.vault.get(&row.secret_record).await?.ok_or_else(|| {
        ApiError::Internal(format!(
            "the secret of account {name:?} is missing from the vault"
        ))
    })?;
    let secret = std::str::from_utf8(&plain)
        .map_err(|_| ApiError::Internal(format!("the secret of account {name:?} is corrupt")))?;
    let target = Target {
        region: row.region.clone(),
        endpoint_url: row.endpoint_url.clone(),
        credentials: AccessKey {
            access_key_id: row.access_key_id.clone(),
            secret_access_key: SecretString::from(secret.to_owned()),
            session_token: None,
        },
        role_arn: row.role_arn.clone(),
        external_id: row.external_id.clone(),
    };
    Ok((row, target))
}

/// When IAM created the target's key, if the key may list its own keys (best effort: an
/// account is usable without `iam:ListAccessKeys`).
async fn key_created_at(
    state: &AppState,
    caller: &Caller,
    target: &Target,
    arn: &str,
) -> Option<String> {
    let keys = state.cloud.list_access_keys(target).await;
    audit::record_call(
        state,
        Entry::for_caller(caller, "iam:ListAccessKeys", vec![arn.to_owned()]),
        &keys,
        |_| None,
    )
    .await;
    keys.ok()?
        .into_iter()
        .find(|k| k.access_key_id == target.credentials.access_key_id)?
        .created_at
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// How long a new IAM key may take to be accepted everywhere before rotation gives up.
const PROPAGATION_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// `POST /v1/accounts/{name}/rotate-key`: a new IAM key is created, proven with STS (retrying
/// while IAM propagates it), sealed in place of the old one, and only then is the old key
/// deleted. Any failure before the swap deletes the new key and leaves the account as it was.
#[utoipa::path(
    post,
    path = "/v1/accounts/{name}/rotate-key",
    summary = "Replace the account's access key through IAM: create, prove with STS (retrying while IAM propagates it), seal, delete the old key",
    params(("name" = String, Path)),
    responses(
        (status = 200, description = "Rotated", body = airlock_api::accounts::RotateKeyResult),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
        (status = 404, description = "Error", body = airlock_api::ErrorBody),
        (status = 409, description = "Error", body = airlock_api::ErrorBody),
        (status = 502, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn rotate_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<RotateKeyResult>> {
    let arn = console_arn("account", &name);
    authorize_one(&state, &caller, "airlock:RotateAccountKey", &arn).await?;
    let result = rotate(&state, &Entry::for_caller(&caller, "", vec![]), &name).await?;
    Ok(Json(result))
}

/// Rotates the account's key on behalf of `actor` (a user, or the console's own schedule).
pub async fn rotate(state: &AppState, actor: &Entry, name: &str) -> ApiResult<RotateKeyResult> {
    let (row, target) = target(state, name).await?;
    let rotation = Rotation {
        state,
        actor,
        name,
        arn: console_arn("account", name),
    };
    rotation.check_no_other_key(&target).await?;
    let created = state.cloud.create_access_key(&target).await;
    audit::record_call(
        state,
        rotation.call("iam:CreateAccessKey"),
        &created,
        |_| None,
    )
    .await;
    let created = created?;
    let new_target = Target {
        credentials: created.key.clone(),
        ..target.clone()
    };
    let started = std::time::Instant::now();
    let proven = prove_key(state, &new_target, &row).await;
    let propagation_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let swapped = match proven {
        Ok(()) => rotation.swap(&row, &created).await,
        Err(e) => Err(e),
    };
    if let Err(e) = swapped {
        // Leave IAM as it was: the account still uses the old key.
        let undone = rotation
            .delete_key(&target, &created.key.access_key_id)
            .await;
        if let Err(undo) = undone {
            tracing::error!(account = %name, key = %created.key.access_key_id, error = %undo, "cannot delete the unused new key; delete it in IAM");
        }
        return Err(e);
    }
    let old = target.credentials.access_key_id;
    let new = created.key.access_key_id;
    let deleted = rotation.delete_key(&new_target, &old).await;
    let detail = format!("{old} replaced by {new}");
    audit::record_ok(
        state,
        rotation.call("airlock:RotateAccountKey"),
        Some(detail),
    )
    .await;
    tracing::info!(account = %name, user = %actor.user, old_key = %old, new_key = %new, propagation_ms, "account key rotated");
    if let Err(e) = deleted {
        return Err(ApiError::Conflict(format!(
            "the account now uses {new}, but the old key {old} could not be deleted ({e}): delete it in IAM"
        )));
    }
    Ok(RotateKeyResult {
        account: name.to_owned(),
        old_access_key_id: old,
        new_access_key_id: new,
        propagation_ms,
    })
}

/// A key rotation under way: the account, and who its IAM calls are audited for.
struct Rotation<'a> {
    state: &'a AppState,
    actor: &'a Entry,
    name: &'a str,
    arn: String,
}

impl Rotation<'_> {
    /// The audit entry of one of the rotation's calls.
    fn call(&self, action: &str) -> Entry {
        Entry {
            action: action.to_owned(),
            resources: vec![self.arn.clone()],
            ..self.actor.clone()
        }
    }

    /// IAM allows two keys per user: the rotation needs the second place free.
    async fn check_no_other_key(&self, target: &Target) -> ApiResult<()> {
        let keys = self.state.cloud.list_access_keys(target).await;
        audit::record_call(self.state, self.call("iam:ListAccessKeys"), &keys, |_| None).await;
        let Some(other) = keys?
            .into_iter()
            .find(|k| k.access_key_id != target.credentials.access_key_id)
        else {
            return Ok(());
        };
        Err(ApiError::Conflict(format!(
            "IAM allows two access keys per user and this user already has another one ({}, {}, created {}): delete it in IAM first, then rotate",
            other.access_key_id,
            other.status,
            other
                .created_at
                .map(|t| t.to_rfc3339())
                .unwrap_or_else(|| "at an unknown time".into())
        )))
    }

    /// Seals the new key in place of the old one, with when IAM created it.
    async fn swap(&self, row: &AccountRow, created: &NewAccessKey) -> ApiResult<()> {
        let sealed = self.state.vault.seal(
            &row.secret_record,
            created.key.secret_access_key.expose_secret().as_bytes(),
        )?;
        let at = created
            .created_at
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_else(crate::now);
        let done = self
            .state
            .store
            .replace_account_key(self.name, &created.key.access_key_id, &at, &sealed)
            .await?;
        done.then_some(()).ok_or_else(|| {
            ApiError::Conflict(format!(
                "account {:?} was removed during rotation",
                self.name
            ))
        })
    }

    /// Deletes one of the user's keys with `target`'s credentials, audited.
    async fn delete_key(
        &self,
        target: &Target,
        access_key_id: &str,
    ) -> Result<(), airlock_cloud::CloudError> {
        let deleted = self
            .state
            .cloud
            .delete_access_key(target, access_key_id)
            .await;
        audit::record_call(
            self.state,
            self.call("iam:DeleteAccessKey"),
            &deleted,
            |_| None,
        )
        .await;
        deleted
    }
}

/// Rotates, once an hour, every account key older than `max_age` (the console's optional
/// schedule). Keys of unknown age are left alone: their age is not known to be over.
pub async fn rotation_schedule(state: AppState, max_age: std::time::Duration) {
    let actor = Entry {
        user: "airlock:console".into(),
        detail: Some(format!(
            "scheduled: keys older than {} days",
            max_age.as_secs() / 86_400
        )),
        ..Entry::default()
    };
    loop {
        // One node at a time: the holder of the key-rotation lease. A node taking the lease
        // over from one that died looks at once; keys it finds young were rotated already.
        state
            .cluster
            .gained(crate::cluster::Lease::KeyRotation)
            .await;
        rotate_old_keys(&state, &actor, max_age).await;
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
    }
}

/// Rotates every account key older than `max_age`.
async fn rotate_old_keys(state: &AppState, actor: &Entry, max_age: std::time::Duration) {
    let accounts = match state.store.accounts().await {
        Ok(accounts) => accounts,
        Err(e) => {
            tracing::warn!(error = %e, "key rotation schedule: cannot list accounts");
            return;
        }
    };
    let limit =
        chrono::Utc::now() - chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::MAX);
    for account in accounts {
        let old = account
            .key_created_at
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .is_some_and(|t| t < limit);
        if !old {
            continue;
        }
        match rotate(state, actor, &account.name).await {
            Ok(r) => {
                tracing::info!(account = %r.account, new_key = %r.new_access_key_id, "scheduled key rotation done")
            }
            Err(e) => {
                tracing::warn!(account = %account.name, error = %e, "scheduled key rotation failed; trying again in an hour")
            }
        }
    }
}

/// Waits until STS accepts a new key as the same account's, retrying only the errors IAM's
/// eventual consistency causes, with backoff, for at most [`PROPAGATION_LIMIT`].
async fn prove_key(state: &AppState, target: &Target, row: &AccountRow) -> ApiResult<()> {
    let started = std::time::Instant::now();
    let mut delay = std::time::Duration::from_millis(250);
    loop {
        match state.cloud.caller_identity(target).await {
            Ok(identity) if identity.account == row.aws_account_id => return Ok(()),
            Ok(identity) => {
                return Err(ApiError::Conflict(format!(
                    "the new key belongs to AWS account {}, not {}",
                    identity.account, row.aws_account_id
                )))
            }
            Err(e)
                if matches!(
                    e.code.as_deref(),
                    Some("InvalidClientTokenId" | "SignatureDoesNotMatch" | "AuthFailure")
                ) && started.elapsed() + delay < PROPAGATION_LIMIT =>
            {
                tracing::debug!(error = %e, retry_in = ?delay, "the new key is not accepted yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(5));
            }
            Err(e) => return Err(e.into()),
        }
    }
}
