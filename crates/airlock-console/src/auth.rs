//! Who is calling: password hashing (argon2id), API tokens, and the extractor that turns a bearer
//! token (or a browser's session cookie, see `web::session`) into a [`Caller`].
//!
//! Tokens are random 256-bit strings shown to the client once; the store keeps only their
//! SHA-256, so a copy of the database cannot be replayed as a login.

use crate::error::ApiError;
use crate::state::AppState;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;

/// Prefix of every API token, so a leaked one is recognisable by secret scanners.
pub const TOKEN_PREFIX: &str = "alk_";

/// Hashes a password with argon2id and a random salt (PHC string).
pub fn hash_password(password: &SecretString) -> Result<String, ApiError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiError::Internal(format!("cannot hash the password: {e}")))
}

/// Checks a password against a PHC string.
pub fn verify_password(password: &SecretString, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|hash| {
            Argon2::default()
                .verify_password(password.expose_secret().as_bytes(), &hash)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Password hashing and checking, off the async workers and few at a time: argon2 takes tens
/// of milliseconds of CPU and memory by design, so a flood of logins must neither stall the
/// workers serving everyone else nor take every core. Beyond a short queue, a login is
/// answered 429 at once.
pub struct PasswordChecks {
    permits: tokio::sync::Semaphore,
    waiting: std::sync::atomic::AtomicUsize,
}

/// Logins that may wait for a password check; more are answered 429.
const MAX_WAITING_CHECKS: usize = 64;

impl Default for PasswordChecks {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        PasswordChecks {
            // Half the cores (at least one): the rest keep serving.
            permits: tokio::sync::Semaphore::new((cores / 2).max(1)),
            waiting: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

impl PasswordChecks {
    /// [`verify_password`], when a check is free.
    pub async fn verify(&self, password: SecretString, phc: String) -> Result<bool, ApiError> {
        self.run(move || verify_password(&password, &phc)).await
    }

    /// [`hash_password`], when a check is free.
    pub async fn hash(&self, password: SecretString) -> Result<String, ApiError> {
        self.run(move || hash_password(&password)).await?
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        use std::sync::atomic::Ordering;
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= MAX_WAITING_CHECKS {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            let retry_after = std::time::Duration::from_secs(1);
            // Held for the wait it announces: answered at once, a flood of logins would be
            // asked again at once and keep the console busy refusing it.
            tokio::time::sleep(retry_after).await;
            return Err(ApiError::TooManyRequests {
                message: "the console is busy checking passwords: try again in a moment".into(),
                retry_after,
            });
        }
        let permit = self.permits.acquire().await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        let _permit =
            permit.map_err(|_| ApiError::Internal("password checks are shut down".into()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| ApiError::Internal(format!("password check failed: {e}")))
    }
}

/// A fresh random secret: 32 bytes, URL-safe base64, with `prefix`.
pub fn random_secret(prefix: &str) -> SecretString {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let text = format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    SecretString::from(text)
}

/// The SHA-256 of a token, hex, as stored.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The authenticated user of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The console user name.
    pub user: String,
    /// Where the request came from.
    pub source_ip: Option<std::net::IpAddr>,
    /// Whether the login passed a second factor (`aws:MultiFactorAuthPresent`).
    pub mfa: bool,
    /// The SHA-256 of the token the request carried (to revoke it on logout).
    pub token_hash: String,
    /// For an instance's access key (`proxy` mode): the deployment's session policy, which
    /// every AWS action must be allowed by as well.
    pub session: Option<std::sync::Arc<crate::authz::SessionBound>>,
}

impl Caller {
    /// The console acting for `user` without a request of theirs (a snapshot policy's
    /// scheduled run): their policies decide, with no source address and no second factor, so
    /// conditions on `aws:SourceIp` or `aws:MultiFactorAuthPresent` are not met.
    pub fn acting_for(user: &str) -> Caller {
        Caller {
            user: user.to_owned(),
            source_ip: None,
            mfa: false,
            token_hash: String::new(),
            session: None,
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        // A bearer token wins; without one, a browser's session cookie, whose state-changing
        // requests must also carry the session's CSRF token.
        let token = match (header, crate::web::session::session_cookie(&parts.headers)) {
            (Some(header), _) => header
                .strip_prefix("Bearer ")
                .ok_or_else(|| {
                    ApiError::Unauthorized("Authorization must be `Bearer TOKEN`".into())
                })?
                .to_owned(),
            (None, Some(cookie)) => {
                crate::web::session::check_csrf(parts, &cookie)?;
                cookie
            }
            (None, None) => return Err(ApiError::Unauthorized(
                "missing Authorization header: log in with `airlock login` and send `Authorization: Bearer TOKEN`".into(),
            )),
        };
        let hash = token_hash(&token);
        let Some(found) = state.store.token_user(&hash).await? else {
            return Err(ApiError::Unauthorized(
                "the token is not valid: log in again".into(),
            ));
        };
        let expired = chrono::DateTime::parse_from_rfc3339(&found.expires_at)
            .map(|t| t < chrono::Utc::now())
            .unwrap_or(true);
        if expired {
            return Err(ApiError::Unauthorized(
                "the token has expired: log in again".into(),
            ));
        }
        let source_ip = parts
            .extensions
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
            // An IPv4 client of a dual-stack listener shows as ::ffff:a.b.c.d; policies
            // (`aws:SourceIp`) and the audit log see a.b.c.d.
            .map(|c| c.0.ip().to_canonical());
        Ok(Caller {
            user: found.user_name,
            source_ip,
            mfa: found.mfa,
            token_hash: hash,
            session: None,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn password_round_trip() {
        let pw = SecretString::from("correct horse");
        let phc = hash_password(&pw).unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify_password(&pw, &phc));
        assert!(!verify_password(&SecretString::from("wrong"), &phc));
        assert!(!verify_password(&pw, "not a hash"));
    }

    #[test]
    fn tokens_are_random_and_prefixed() {
        let a = random_secret(TOKEN_PREFIX);
        let b = random_secret(TOKEN_PREFIX);
        assert!(a.expose_secret().starts_with(TOKEN_PREFIX));
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_eq!(token_hash("x").len(), 64);
    }
}
