//! Logging in and out, and the first user of a new console.

use crate::api::{LoginRequest, LoginResponse, Whoami};
use crate::auth::{self, Caller, TOKEN_PREFIX};
use crate::error::{ApiError, ApiResult};
use crate::json::Body;
use crate::state::AppState;
use airlock_store::{PolicyRow, UserRow};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use secrecy::{ExposeSecret, SecretString};

/// The user created on an empty database.
pub const ADMIN: &str = "admin";
/// The policy that lets `admin` do everything.
pub const ADMIN_POLICY: &str = "AdministratorAccess";
const ADMIN_POLICY_DOCUMENT: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"AllowEverything","Effect":"Allow","Action":"*","Resource":"*"}]}"#;

/// Creates `admin` if the console has no user yet; returns the password if it was generated.
pub async fn bootstrap_admin(
    state: &AppState,
    password: Option<SecretString>,
) -> ApiResult<Option<SecretString>> {
    if state.store.count_users().await? > 0 {
        return Ok(None);
    }
    let (password, generated) = match password {
        Some(p) if p.expose_secret().len() >= 12 => (p, false),
        Some(_) => {
            return Err(ApiError::field(
                "AIRLOCK_ADMIN_PASSWORD",
                "the admin password must be at least 12 characters",
            ))
        }
        None => (auth::random_secret(""), true),
    };
    state
        .store
        .insert_user(&UserRow {
            name: ADMIN.into(),
            password_hash: auth::hash_password(&password)?,
            created_at: crate::now(),
        })
        .await?;
    state
        .store
        .put_policy(&PolicyRow {
            name: ADMIN_POLICY.into(),
            document: ADMIN_POLICY_DOCUMENT.into(),
            created_by: ADMIN.into(),
            created_at: crate::now(),
        })
        .await?;
    state.store.attach_policy(ADMIN, ADMIN_POLICY).await?;
    tracing::info!(user = ADMIN, "first start: created the admin user");
    Ok(generated.then_some(password))
}

/// `POST /v1/login`: a password for a bearer token.
pub async fn login(
    State(state): State<AppState>,
    Body(req): Body<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    let user = state.store.user(&req.user).await?;
    // Verify against a fixed hash when the user is unknown, so timing does not reveal names.
    let phc = user
        .as_ref()
        .map(|u| u.password_hash.as_str())
        .unwrap_or_else(|| unknown_user_hash());
    if !auth::verify_password(&req.password, phc) || user.is_none() {
        tracing::info!(user = %req.user, "login refused");
        return Err(ApiError::Unauthorized("wrong user name or password".into()));
    }
    let mfa = match state.store.user_totp(&req.user).await? {
        None => false,
        Some(record) => {
            let Some(code) = req.otp.as_deref() else {
                return Err(ApiError::Unauthorized(
                    "this user has a second factor: give the one-time code (airlock login --otp CODE)".into(),
                ));
            };
            if !crate::users::check_totp(&state, &req.user, &record, code).await? {
                tracing::info!(user = %req.user, "login refused: wrong one-time code");
                return Err(ApiError::Unauthorized("wrong one-time code".into()));
            }
            true
        }
    };
    let token = auth::random_secret(TOKEN_PREFIX);
    let now = chrono::Utc::now();
    let ttl = chrono::Duration::from_std(state.config.token_ttl)
        .unwrap_or_else(|_| chrono::Duration::hours(12));
    let expires_at = (now + ttl).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    state
        .store
        .insert_token(
            &auth::token_hash(token.expose_secret()),
            &req.user,
            &crate::now(),
            &expires_at,
            mfa,
        )
        .await?;
    tracing::info!(user = %req.user, "login");
    Ok(Json(LoginResponse {
        token: token.expose_secret().to_owned(),
        user: req.user,
        expires_at,
    }))
}

/// `POST /v1/logout`: revokes the token used for the call.
pub async fn logout(State(state): State<AppState>, caller: Caller) -> ApiResult<StatusCode> {
    state.store.delete_token(&caller.token_hash).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/whoami`.
pub async fn whoami(caller: Caller) -> Json<Whoami> {
    Json(Whoami { user: caller.user })
}

/// An argon2id hash of a random password nobody knows, made once per process.
fn unknown_user_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| auth::hash_password(&auth::random_secret("")).unwrap_or_default())
}
