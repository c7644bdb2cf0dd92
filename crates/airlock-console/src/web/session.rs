//! Browser sessions: the API token of a login kept in an HttpOnly, SameSite=Strict cookie, and
//! the CSRF token that every state-changing cookie request must repeat in a header.
//!
//! The cookie holds an ordinary API token made by the same login as `airlock login` (the store
//! keeps only its SHA-256, it expires and is revoked the same way). The CSRF token is derived
//! from the session token (SHA-256 under a fixed label), so it is bound to the session, needs no
//! storage, and is the same on every console node; a page on another site can neither read the
//! cookie nor the token, so it cannot forge the header.

use crate::auth::{self, Caller};
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorDetail};
use crate::json::Body;
use crate::state::AppState;
use airlock_api::session::{LoginRequest, LoginResponse, SessionView};
use axum::extract::{ConnectInfo, State};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use sha2::{Digest, Sha256};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "airlock_session";
/// The header a cookie-authenticated state-changing request must carry.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The CSRF token of a session: hex SHA-256 of a label and the session token.
pub fn csrf_token(session_token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"airlock-csrf\0");
    h.update(session_token.as_bytes());
    hex::encode(h.finalize())
}

/// The session token from the request's `Cookie` headers, if any.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == SESSION_COOKIE && !value.is_empty())
        .map(|(_, value)| value.to_owned())
}

/// Refuses a cookie-authenticated request that changes state without the session's CSRF token.
/// Reads (GET, HEAD, OPTIONS) change nothing and need none.
pub fn check_csrf(parts: &Parts, session_token: &str) -> Result<(), ApiError> {
    if matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let given = parts
        .headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::Forbidden(
                "a request signed in by the session cookie must carry the X-CSRF-Token header"
                    .into(),
            )
        })?;
    if !constant_time_eq(given.as_bytes(), csrf_token(session_token).as_bytes()) {
        return Err(ApiError::Forbidden(
            "the X-CSRF-Token header does not match this session: reload the page".into(),
        ));
    }
    Ok(())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn cookie(state: &AppState, value: &str, max_age: i64) -> String {
    // Secure only when the console is reached over TLS: a browser drops Secure cookies on plain
    // http://127.0.0.1, which is how a loopback console is used.
    let secure = if state.config.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    )
}

/// `POST /web/session`: signs in with a password (and one-time code) and sets the cookie.
pub async fn sign_in(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Body(req): Body<LoginRequest>,
) -> ApiResult<Response> {
    let without_code = req.otp.as_deref().is_none_or(str::is_empty);
    let req = LoginRequest {
        otp: req.otp.filter(|c| !c.is_empty()),
        ..req
    };
    let LoginResponse {
        token,
        user,
        expires_at,
    } = match crate::session::login_from(&state, Some(peer.ip()), req).await {
        Ok(r) => r,
        // The password was right and a second factor is needed: a code of its own, naming the
        // field, so the page can ask for it.
        Err(ApiError::Unauthorized(m)) if without_code && m.contains("second factor") => {
            let body = ErrorBody {
                error: ErrorDetail {
                    code: "OtpRequired".into(),
                    message: "this user has a second factor: give the one-time code".into(),
                    field: Some("otp".into()),
                    aws_request_id: None,
                },
            };
            return Ok((StatusCode::UNAUTHORIZED, Json(body)).into_response());
        }
        Err(e) => return Err(e),
    };
    let max_age = state.config.token_ttl.as_secs() as i64;
    let found = state.store.token_user(&auth::token_hash(&token)).await?;
    let view = SessionView {
        user,
        csrf_token: Some(csrf_token(&token)),
        mfa: found.is_some_and(|f| f.mfa),
        expires_at: Some(expires_at),
    };
    Ok(([(SET_COOKIE, cookie(&state, &token, max_age))], Json(view)).into_response())
}

/// `GET /web/session`: who is signed in, and the CSRF token for this session.
pub async fn info(caller: Caller, headers: HeaderMap) -> Json<SessionView> {
    let csrf = session_cookie(&headers)
        .filter(|t| auth::token_hash(t) == caller.token_hash)
        .map(|t| csrf_token(&t));
    Json(SessionView {
        user: caller.user,
        csrf_token: csrf,
        mfa: caller.mfa,
        expires_at: None,
    })
}

/// `DELETE /web/session`: revokes the session's token and clears the cookie.
pub async fn sign_out(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    state.store.delete_token(&caller.token_hash).await?;
    tracing::info!(user = %caller.user, "signed out");
    Ok((
        StatusCode::NO_CONTENT,
        [(SET_COOKIE, cookie(&state, "", 0))],
    )
        .into_response())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parts(method: Method, headers: &[(&str, &str)]) -> Parts {
        let mut b = axum::http::Request::builder().method(method).uri("/v1/x");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let p = parts(
            Method::GET,
            &[("cookie", "a=1; airlock_session=alk_xyz; b=2")],
        );
        assert_eq!(session_cookie(&p.headers).as_deref(), Some("alk_xyz"));
        let p = parts(Method::GET, &[("cookie", "airlock_session=")]);
        assert_eq!(session_cookie(&p.headers), None);
    }

    #[test]
    fn state_changes_need_the_matching_csrf_token() {
        let token = "alk_session";
        assert!(check_csrf(&parts(Method::GET, &[]), token).is_ok());
        let missing = check_csrf(&parts(Method::POST, &[]), token).unwrap_err();
        assert!(matches!(missing, ApiError::Forbidden(_)), "{missing}");
        let wrong = csrf_token("alk_other");
        assert!(check_csrf(&parts(Method::DELETE, &[(CSRF_HEADER, &wrong)]), token).is_err());
        let right = csrf_token(token);
        assert!(check_csrf(&parts(Method::PUT, &[(CSRF_HEADER, &right)]), token).is_ok());
        assert_ne!(right, auth::token_hash(token), "not the stored hash");
    }
}
