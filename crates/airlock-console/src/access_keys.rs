//! Airlock access keys (`/v1/access-keys`): what the `aws` CLI, SDKs and Terraform sign their
//! requests to the console's EC2 endpoint with, each acting as its console user.
//!
//! The secret is generated here, sealed by the vault at once (SigV4 needs the secret itself, so a
//! hash would not do) and shown once in the creation's answer. Every operation is decided on the
//! user the key acts as (`arn:airlock:console:::user/NAME`), before anything is read or changed.

use crate::audit::{self, Entry};
use crate::auth::Caller;
use crate::authz::{authorize_one, console_arn};
use crate::error::{ApiError, ApiResult};
use crate::json::Body;
use crate::state::AppState;
use crate::validate;
use airlock_api::access_keys::{
    AccessKeyList, AccessKeyView, CreateAccessKeyRequest, NewAccessKeyView, UpdateAccessKeyRequest,
};
use airlock_api::state::AccessKeyStatus;
use airlock_store::{secret_record, AccessKeyRow, ACCESS_KEYS_PER_USER};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};

/// The longest a key may be made to live: ten years.
const MAX_LIFETIME_SECONDS: u64 = 10 * 365 * 24 * 3600;

/// Ids start with this, so a log reader tells an Airlock key from an AWS one (`AKIA…`).
pub const ID_PREFIX: &str = "ALAK";

/// A new key id: the prefix and 16 characters of base32's alphabet, 20 in all as AWS's.
pub(crate) fn new_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut rng = rand::rngs::OsRng;
    let tail: String = (0..16)
        .map(|_| {
            let i = rng.gen_range(0..ALPHABET.len());
            ALPHABET.get(i).copied().map(char::from).unwrap_or('A')
        })
        .collect();
    format!("{ID_PREFIX}{tail}")
}

/// A new secret: 40 letters and digits (about 238 bits), as long as AWS's.
pub(crate) fn new_secret() -> SecretString {
    let text: String = rand::rngs::OsRng
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(40)
        .map(char::from)
        .collect();
    SecretString::from(text)
}

/// Whether `id` could be a key id at all, checked before any look-up.
pub fn is_key_id(id: &str) -> bool {
    id.len() == 20
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

fn view(row: AccessKeyRow) -> AccessKeyView {
    AccessKeyView {
        access_key_id: row.access_key_id,
        user: row.user_name,
        status: row.status,
        created_at: row.created_at,
        expires_at: row.expires_at,
        last_used_at: row.last_used_at,
    }
}

fn user_arn(user: &str) -> String {
    console_arn("user", user)
}

#[utoipa::path(
    post,
    path = "/v1/access-keys",
    summary = "Create an access key for the EC2 endpoint (airlock:CreateAccessKey)",
    request_body = CreateAccessKeyRequest,
    responses(
        (status = 201, description = "Created; the secret is shown this once", body = NewAccessKeyView),
        (status = 400, description = "Error", body = airlock_api::ErrorBody),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
        (status = 409, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
/// `POST /v1/access-keys`: a key for the caller or `user`, its secret in the answer only.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Body(req): Body<CreateAccessKeyRequest>,
) -> ApiResult<(StatusCode, Json<NewAccessKeyView>)> {
    let user = req.user.clone().unwrap_or_else(|| caller.user.clone());
    validate::name("user", &user)?;
    let expires_at = expiry(req.expires_in_seconds)?;
    authorize_one(&state, &caller, "airlock:CreateAccessKey", &user_arn(&user)).await?;
    if state.store.user(&user).await?.is_none() {
        return Err(ApiError::field("user", format!("unknown user {user:?}")));
    }
    let row = AccessKeyRow {
        access_key_id: new_id(),
        user_name: user.clone(),
        status: AccessKeyStatus::Active,
        created_at: crate::now(),
        expires_at,
        last_used_at: None,
        instance: None,
    };
    let secret = new_secret();
    let sealed = state.vault.seal(
        &secret_record(&row.access_key_id),
        secret.expose_secret().as_bytes(),
    )?;
    if !state.store.insert_access_key(&row, &sealed).await? {
        return Err(ApiError::Conflict(format!(
            "user {user:?} already has {ACCESS_KEYS_PER_USER} access keys: delete one first"
        )));
    }
    let resources = vec![user_arn(&user), row.access_key_id.clone()];
    let entry = Entry::for_caller(&caller, "airlock:CreateAccessKey", resources);
    audit::record_ok(&state, entry, None).await;
    tracing::info!(user = %caller.user, key_user = %user, access_key_id = %row.access_key_id, "access key created");
    let key = view(row);
    Ok((
        StatusCode::CREATED,
        Json(NewAccessKeyView {
            key,
            secret_access_key: secret,
        }),
    ))
}

/// RFC 3339 of now plus `seconds`, checked.
fn expiry(seconds: Option<u64>) -> ApiResult<Option<String>> {
    let Some(seconds) = seconds else {
        return Ok(None);
    };
    if seconds == 0 || seconds > MAX_LIFETIME_SECONDS {
        return Err(ApiError::field(
            "expires_in_seconds",
            format!("must be between 1 and {MAX_LIFETIME_SECONDS} (ten years)"),
        ));
    }
    let lifetime = chrono::Duration::seconds(i64::try_from(seconds).unwrap_or(i64::MAX));
    let at = chrono::Utc::now() + lifetime;
    Ok(Some(
        at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    ))
}

/// `?user=NAME` of `GET /v1/access-keys`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    user: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/access-keys",
    summary = "List a user's access keys (airlock:ListAccessKeys)",
    params(("user" = Option<String>, Query, description = "Whose keys; the caller by default")),
    responses(
        (status = 200, description = "Keys, never their secrets", body = AccessKeyList),
        (status = 400, description = "Error", body = airlock_api::ErrorBody),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
/// `GET /v1/access-keys`: the keys of the caller, or of `?user=`.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<AccessKeyList>> {
    let user = q.user.unwrap_or_else(|| caller.user.clone());
    validate::name("user", &user)?;
    authorize_one(&state, &caller, "airlock:ListAccessKeys", &user_arn(&user)).await?;
    let rows = state.store.access_keys_of(&user).await?;
    Ok(Json(AccessKeyList {
        access_keys: rows.into_iter().map(view).collect(),
    }))
}

/// The key `id`, once the caller may do `action` on the user it acts as. A key that does not
/// exist is decided as one of the caller's own, so probing ids says nothing to whoever may
/// not manage their own keys.
async fn owned_key(
    state: &AppState,
    caller: &Caller,
    action: &str,
    id: &str,
) -> ApiResult<AccessKeyRow> {
    let found = if is_key_id(id) {
        state.store.access_key(id).await?
    } else {
        None
    };
    let owner = found
        .as_ref()
        .map_or(caller.user.as_str(), |k| &k.user_name);
    authorize_one(state, caller, action, &user_arn(owner)).await?;
    found.ok_or_else(|| ApiError::NotFound(format!("no access key {id:?}")))
}

#[utoipa::path(
    put,
    path = "/v1/access-keys/{id}/status",
    summary = "Enable or disable an access key (airlock:UpdateAccessKey)",
    params(("id" = String, Path)),
    request_body = UpdateAccessKeyRequest,
    responses(
        (status = 200, description = "Updated", body = AccessKeyView),
        (status = 400, description = "Error", body = airlock_api::ErrorBody),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
        (status = 404, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
/// `PUT /v1/access-keys/{id}/status`: enable or disable a key.
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(req): Body<UpdateAccessKeyRequest>,
) -> ApiResult<Json<AccessKeyView>> {
    let mut key = owned_key(&state, &caller, "airlock:UpdateAccessKey", &id).await?;
    if !state.store.set_access_key_status(&id, req.status).await? {
        return Err(ApiError::NotFound(format!("no access key {id:?}")));
    }
    key.status = req.status;
    let resources = vec![user_arn(&key.user_name), id.clone()];
    let entry = Entry::for_caller(&caller, "airlock:UpdateAccessKey", resources);
    audit::record_ok(&state, entry, Some(format!("status {}", req.status))).await;
    Ok(Json(view(key)))
}

#[utoipa::path(
    delete,
    path = "/v1/access-keys/{id}",
    summary = "Delete an access key and its sealed secret (airlock:DeleteAccessKey)",
    params(("id" = String, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
        (status = 404, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
/// `DELETE /v1/access-keys/{id}`: the key and its sealed secret.
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let key = owned_key(&state, &caller, "airlock:DeleteAccessKey", &id).await?;
    if !state.store.delete_access_key(&id).await? {
        return Err(ApiError::NotFound(format!("no access key {id:?}")));
    }
    let resources = vec![user_arn(&key.user_name), id];
    let entry = Entry::for_caller(&caller, "airlock:DeleteAccessKey", resources);
    audit::record_ok(&state, entry, None).await;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_look_like_aws_ids_and_are_recognised() {
        let id = new_id();
        assert_eq!(id.len(), 20);
        assert!(id.starts_with(ID_PREFIX));
        assert!(is_key_id(&id));
        assert_ne!(id, new_id());
        assert!(!is_key_id("ALAK/../../etc"));
        assert!(!is_key_id(&format!("{id}X")));
    }

    #[test]
    fn secrets_are_forty_letters_and_digits() {
        let s = new_secret();
        assert_eq!(s.expose_secret().len(), 40);
        assert!(s.expose_secret().bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(s.expose_secret(), new_secret().expose_secret());
    }

    #[test]
    fn a_lifetime_of_zero_or_beyond_ten_years_is_refused_naming_the_field() {
        for bad in [0, MAX_LIFETIME_SECONDS + 1] {
            let e = expiry(Some(bad)).unwrap_err();
            assert!(
                matches!(&e, ApiError::BadRequest { field: Some(f), .. } if f == "expires_in_seconds"),
                "{e}"
            );
        }
        assert!(expiry(Some(3600)).unwrap().is_some());
        assert!(expiry(None).unwrap().is_none());
    }
}
