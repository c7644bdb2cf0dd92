//! AWS accounts: verified with STS before they are stored, secrets sealed, never shown again.

use crate::api::{AccountView, AddAccountRequest};
use crate::audit::{self, Entry};
use crate::auth::Caller;
use crate::authz::{authorize_one, console_arn, Check};
use crate::error::{ApiError, ApiResult};
use crate::json::Body;
use crate::state::AppState;
use crate::validate;
use airlock_cloud::{AccessKey, Target};
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
    }
}

fn secret_record(name: &str) -> String {
    format!("account:{name}:secret-access-key")
}

fn validate_request(req: &AddAccountRequest) -> ApiResult<()> {
    validate::name("name", &req.name)?;
    validate::region("region", &req.region)?;
    if let Some(url) = &req.endpoint_url {
        validate::url("endpoint_url", url)?;
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
        let ok = parts.len() == 6
            && parts[0] == "arn"
            && parts[2] == "iam"
            && parts[5].starts_with("role/");
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
pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    Body(req): Body<AddAccountRequest>,
) -> ApiResult<(StatusCode, Json<AccountView>)> {
    validate_request(&req)?;
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
    };
    state.store.insert_account(&row, &sealed).await?;
    let mut entry = Entry::for_caller(&caller, "airlock:AddAccount", vec![arn]);
    entry.decision = "allowed".into();
    entry.outcome = "ok".into();
    audit::record(&state, entry).await;
    tracing::info!(account = %row.name, user = %caller.user, source_ip = ?caller.source_ip, key_id = %row.access_key_id, "account added");
    Ok((StatusCode::CREATED, Json(view(row))))
}

/// `GET /v1/accounts`.
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
    let mut entry = Entry::for_caller(&caller, "airlock:RemoveAccount", vec![arn]);
    entry.decision = "allowed".into();
    entry.outcome = "ok".into();
    audit::record(&state, entry).await;
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
    target(state, name).await.map_err(|e| match e {
        ApiError::NotFound(m) => ApiError::field("account", m),
        other => other,
    })
}

/// The stored account `name` and a [`Target`] to call AWS with its unsealed key.
pub async fn target(state: &AppState, name: &str) -> ApiResult<(AccountRow, Target)> {
    let row = state
        .store
        .account(name)
        .await?
        .ok_or_else(|| unknown(name))?;
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

/// Checks that the caller may use an account for EC2 calls (`airlock:UseAccount`).
pub fn use_check(name: &str) -> Check {
    Check::new("airlock:UseAccount", console_arn("account", name))
}
