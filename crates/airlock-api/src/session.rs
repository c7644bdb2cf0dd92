//! Signing in: API tokens (`/v1/login`, `/v1/whoami`) and the web console's session.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /v1/login` (and `POST /web/session`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LoginRequest {
    /// The console user name.
    pub user: String,
    /// The password.
    #[serde(serialize_with = "crate::expose")]
    #[schema(value_type = String)]
    pub password: SecretString,
    /// The current TOTP code, for users with a second factor.
    #[serde(default)]
    pub otp: Option<String>,
}

/// A new API token, shown once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LoginResponse {
    /// Bearer token for `Authorization: Bearer …`.
    pub token: String,
    /// The user it acts as.
    pub user: String,
    /// RFC 3339 expiry.
    pub expires_at: String,
}

/// `GET /v1/whoami`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Whoami {
    /// The user name.
    pub user: String,
}

/// A signed-in browser session as the pages see it (never the session token itself).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionView {
    /// The user.
    pub user: String,
    /// The value for the `X-CSRF-Token` header (absent for bearer-token callers).
    pub csrf_token: Option<String>,
    /// Whether the sign-in passed a second factor.
    pub mfa: bool,
    /// RFC 3339 expiry of the session, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}
