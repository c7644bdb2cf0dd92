//! Logging in and out, and the first user of a new console.

use crate::audit::{self, AuditDecision, AuditOutcome, Entry};
use crate::auth::{self, Caller, TOKEN_PREFIX};
use crate::error::{ApiError, ApiResult};
use crate::json::Body;
use crate::state::AppState;
use crate::throttle;
use crate::users::OtpCheck;
use airlock_api::session::{LoginRequest, LoginResponse, Whoami};
use airlock_store::{PolicyRow, UserRow};
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::Json;
use secrecy::{ExposeSecret, SecretString};
use std::net::{IpAddr, SocketAddr};

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
    let inserted = state
        .store
        .insert_user(&UserRow {
            name: ADMIN.into(),
            password_hash: auth::hash_password(&password)?,
            created_at: crate::now(),
        })
        .await;
    match inserted {
        Ok(()) => {}
        // Another console node starting on the same empty database made it first.
        Err(airlock_store::StoreError::Conflict(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
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
#[utoipa::path(
    post,
    path = "/v1/login",
    summary = "Exchange a user name and password for an API token",
    request_body = airlock_api::session::LoginRequest,
    responses(
        (status = 200, description = "A new token, shown once", body = airlock_api::session::LoginResponse),
        (status = 400, description = "Error", body = airlock_api::ErrorBody),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
    ),
)]
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Body(req): Body<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    login_from(&state, Some(peer.ip()), req).await.map(Json)
}

/// Logs `req.user` in from `source`: throttled per user and per address (a throttled attempt
/// is answered 429 without the password being checked), the password checked on the blocking
/// pool, the one-time code accepted once, and every refusal audited — never with what was typed.
pub async fn login_from(
    state: &AppState,
    source: Option<IpAddr>,
    req: LoginRequest,
) -> ApiResult<LoginResponse> {
    let keys = throttle::keys(&req.user, source);
    if let Err(wait) = state.logins.check(&state.store, &keys).await? {
        tracing::info!(user = ?req.user, source = ?source, "login throttled");
        // A guesser answered at once just asks again: held a while, a flood of guesses becomes
        // a trickle that costs the console (and everyone else on its cores) next to nothing.
        tokio::time::sleep(wait.min(throttle::HOLD_THROTTLED)).await;
        return Err(ApiError::TooManyRequests {
            message: format!(
                "too many failed logins for this user or from this address: try again in {} s",
                wait.as_secs().max(1)
            ),
            retry_after: wait,
        });
    }
    match check_credentials(state, &req).await? {
        Ok(mfa) => {
            state.logins.succeeded(&state.store, &req.user).await?;
            issue_token(state, req.user, mfa).await
        }
        Err((why, answer)) => {
            state.logins.failed(&state.store, &keys).await?;
            tracing::info!(user = ?req.user, source = ?source, why, "login refused");
            // Only a name a user could have goes into the record; anything else is the caller's
            // own text.
            let user = if crate::validate::name("user", &req.user).is_ok() {
                req.user.clone()
            } else {
                "(not a user name)".to_owned()
            };
            let mut entry = Entry {
                user,
                source_ip: source.map(|ip| ip.to_string()),
                action: "airlock:Login".into(),
                ..Entry::default()
            };
            entry.decision = AuditDecision::ImplicitDeny;
            entry.outcome = AuditOutcome::Denied;
            entry.detail = Some(why.to_owned());
            audit::record(state, entry).await;
            Err(ApiError::Unauthorized(answer.to_owned()))
        }
    }
}

/// `Ok(Ok(mfa))` for a right password (and code); `Ok(Err((why, answer)))` for a refusal, with
/// what the audit log says and what the caller is told.
async fn check_credentials(
    state: &AppState,
    req: &LoginRequest,
) -> ApiResult<Result<bool, (&'static str, &'static str)>> {
    let user = state.store.user(&req.user).await?;
    // Verify against a fixed hash when the user is unknown, so timing does not reveal names.
    let phc = user.as_ref().map_or_else(
        || unknown_user_hash().to_owned(),
        |u| u.password_hash.clone(),
    );
    let right = state.passwords.verify(req.password.clone(), phc).await?;
    if !right || user.is_none() {
        return Ok(Err((
            "wrong user name or password",
            "wrong user name or password",
        )));
    }
    let Some(record) = state.store.user_totp(&req.user).await? else {
        return Ok(Ok(false));
    };
    let Some(code) = req.otp.as_deref() else {
        return Err(ApiError::Unauthorized(
            "this user has a second factor: give the one-time code (airlock login --otp CODE)"
                .into(),
        ));
    };
    Ok(
        match crate::users::check_totp(state, &req.user, &record, code).await? {
            OtpCheck::Accepted => Ok(true),
            OtpCheck::Wrong => Err(("wrong one-time code", "wrong one-time code")),
            OtpCheck::Replayed => Err((
                "one-time code used again",
                "this one-time code was already used: wait for the next one",
            )),
        },
    )
}

/// A new bearer token for a user who proved who they are.
async fn issue_token(state: &AppState, user: String, mfa: bool) -> ApiResult<LoginResponse> {
    let token = auth::random_secret(TOKEN_PREFIX);
    let now = chrono::Utc::now();
    let ttl = chrono::Duration::from_std(state.config.token_ttl)
        .unwrap_or_else(|_| chrono::Duration::hours(12));
    let expires_at = (now + ttl).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    state
        .store
        .insert_token(
            &auth::token_hash(token.expose_secret()),
            &user,
            &crate::now(),
            &expires_at,
            mfa,
        )
        .await?;
    tracing::info!(user = ?user, "login");
    Ok(LoginResponse {
        token: token.expose_secret().to_owned(),
        user,
        expires_at,
    })
}

/// `POST /v1/logout`: revokes the token used for the call.
#[utoipa::path(
    post,
    path = "/v1/logout",
    summary = "Revoke the calling token",
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn logout(State(state): State<AppState>, caller: Caller) -> ApiResult<StatusCode> {
    state.store.delete_token(&caller.token_hash).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/whoami`.
#[utoipa::path(
    get,
    path = "/v1/whoami",
    summary = "The calling user",
    responses(
        (status = 200, description = "The user", body = airlock_api::session::Whoami),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn whoami(caller: Caller) -> Json<Whoami> {
    Json(Whoami { user: caller.user })
}

/// An argon2id hash of a random password nobody knows, made once per process.
fn unknown_user_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| auth::hash_password(&auth::random_secret("")).unwrap_or_default())
}
