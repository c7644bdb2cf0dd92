//! The loopback credentials endpoint, in the shape the AWS SDKs' container provider reads
//! (`AWS_CONTAINER_CREDENTIALS_FULL_URI` + `AWS_CONTAINER_AUTHORIZATION_TOKEN`).
//!
//! A request must carry the authorization token in its `Authorization` header, or it gets
//! `401`. The answer is `AccessKeyId`, `SecretAccessKey`, `Token` and `Expiration`. Until the
//! agent has credentials, or once the last good ones have expired, it answers `503`, so SDKs
//! retry instead of using something stale.
//!
//! Any local process can connect, so the listener has limits (Airlock's one listener,
//! `airlock-listen`): a request's headers must arrive within [`limits`]' header timeout and
//! only so many connections are served at once, so connections that dribble their headers
//! cannot keep the SDKs from their credentials.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use secrecy::{ExposeSecret as _, SecretString};

use crate::AgentError;

/// The path the endpoint answers on.
pub const PATH: &str = "/credentials";

/// The endpoint's listener limits. SDKs send their request at once, so ten seconds for the
/// headers is plenty; a thousand connections is far more than the programs of one instance
/// need at a time.
pub fn limits() -> airlock_listen::Limits {
    airlock_listen::Limits {
        header_timeout: std::time::Duration::from_secs(10),
        max_connections: 1024,
        ..airlock_listen::Limits::default()
    }
}

/// Credentials as the endpoint serves them: always with an expiry, and temporary (a session
/// token) unless they are an Airlock access key (`proxy` mode, an empty token).
#[derive(Clone)]
pub struct Served {
    /// `AccessKeyId`.
    pub access_key_id: String,
    /// `SecretAccessKey`.
    pub secret_access_key: SecretString,
    /// `Token` (empty for an Airlock access key).
    pub session_token: SecretString,
    /// `Expiration`.
    pub expiration: DateTime<Utc>,
    /// Where they came from, for status: `payload` or `sts`.
    pub source: &'static str,
}

impl std::fmt::Debug for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Served")
            .field("access_key_id", &self.access_key_id)
            .field("expiration", &self.expiration)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

struct Shared {
    token: SecretString,
    served: RwLock<Option<Served>>,
}

/// A running endpoint; stops when dropped.
pub struct Endpoint {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Endpoint {
    /// Listens on `listen` (a loopback address: SDKs accept only those for `http://`) with
    /// `limits` (normally [`limits`]), requiring `token`. Serves `503` until [`Endpoint::set`]
    /// is called.
    pub async fn start(
        listen: &str,
        token: SecretString,
        limits: airlock_listen::Limits,
    ) -> Result<Self, AgentError> {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| AgentError::Other(format!("cannot listen on {listen}: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| AgentError::Other(format!("cannot listen on {listen}: {e}")))?;
        if !addr.ip().is_loopback() {
            return Err(AgentError::Usage(format!(
                "--listen {listen} is not a loopback address; the credentials endpoint must \
                 not be reachable from the network"
            )));
        }
        let shared = Arc::new(Shared {
            token,
            served: RwLock::new(None),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let options = airlock_listen::Options::new(limits);
        let task = tokio::spawn(async move {
            if let Err(e) = airlock_listen::serve(app, listener, options).await {
                tracing::error!(error = %e, "credentials endpoint stopped");
            }
        });
        Ok(Endpoint { addr, shared, task })
    }

    /// The URL for `AWS_CONTAINER_CREDENTIALS_FULL_URI`.
    pub fn url(&self) -> String {
        format!("http://{}{PATH}", self.addr)
    }

    /// Serves `served` from now on (`None`: nothing, `503`).
    pub fn set(&self, served: Option<Served>) {
        *self
            .shared
            .served
            .write()
            .unwrap_or_else(|e| e.into_inner()) = served;
    }

    /// What it serves now.
    pub fn current(&self) -> Option<Served> {
        self.shared
            .served
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Constant-time comparison, so the token cannot be guessed byte by byte from timings.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(serde_json::json!({"Code": code, "Message": message})),
    )
        .into_response()
}

async fn handle(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if !same(given, shared.token.expose_secret().as_bytes()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "the Authorization header must carry AWS_CONTAINER_AUTHORIZATION_TOKEN",
        );
    }
    let served = shared
        .served
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    match served {
        None => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "CredentialsUnavailable",
            "the agent has no credentials yet",
        ),
        Some(s) if s.expiration <= Utc::now() => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "CredentialsExpired",
            "the last credentials expired and could not be refreshed",
        ),
        Some(s) => axum::Json(serde_json::json!({
            "Code": "Success",
            "Type": "AWS-HMAC",
            "AccessKeyId": s.access_key_id,
            "SecretAccessKey": s.secret_access_key.expose_secret(),
            "Token": s.session_token.expose_secret(),
            "Expiration": s.expiration.to_rfc3339_opts(SecondsFormat::Secs, true),
        }))
        .into_response(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requires_the_token_and_serves_only_live_credentials() {
        let ep = Endpoint::start("127.0.0.1:0", SecretString::from("tok"), limits())
            .await
            .unwrap();
        let http = reqwest::Client::new();
        let get = |auth: Option<&'static str>| {
            let mut r = http.get(ep.url());
            if let Some(a) = auth {
                r = r.header("Authorization", a);
            }
            r.send()
        };
        assert_eq!(get(None).await.unwrap().status(), 401);
        assert_eq!(get(Some("tok2")).await.unwrap().status(), 401);
        assert_eq!(get(Some("tok")).await.unwrap().status(), 503);
        let served = Served {
            access_key_id: "ASIA1".to_owned(),
            secret_access_key: SecretString::from("sek"),
            session_token: SecretString::from("st"),
            expiration: Utc::now() + chrono::Duration::hours(1),
            source: "sts",
        };
        ep.set(Some(served.clone()));
        let body: serde_json::Value = get(Some("tok")).await.unwrap().json().await.unwrap();
        assert_eq!(body["AccessKeyId"], "ASIA1");
        assert_eq!(body["SecretAccessKey"], "sek");
        assert_eq!(body["Token"], "st");
        assert!(body["Expiration"].as_str().unwrap().ends_with('Z'));
        assert!(!format!("{served:?}").contains("sek"));
        ep.set(Some(Served {
            expiration: Utc::now() - chrono::Duration::seconds(1),
            ..served
        }));
        assert_eq!(get(Some("tok")).await.unwrap().status(), 503);
        assert!(
            Endpoint::start("0.0.0.0:0", SecretString::from("t"), limits())
                .await
                .is_err()
        );
    }

    /// Opens a connection that sends a request line and then one header byte every 300 ms,
    /// never finishing; returns how long until the endpoint closed it.
    async fn slow_headers(addr: SocketAddr) -> std::time::Duration {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let started = std::time::Instant::now();
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /credentials HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        let mut buf = [0u8; 256];
        loop {
            tokio::select! {
                read = stream.read(&mut buf) => match read {
                    Ok(0) | Err(_) => return started.elapsed(),
                    // An answer (408) and then the close.
                    Ok(_) => {}
                },
                () = tokio::time::sleep(std::time::Duration::from_millis(300)) => {
                    if stream.write_all(b"a").await.is_err() {
                        return started.elapsed();
                    }
                }
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(20),
                "a slow-header connection was never closed"
            );
        }
    }

    #[tokio::test]
    async fn slow_header_connections_from_a_local_process_cannot_starve_the_sdks() {
        let limits = airlock_listen::Limits {
            header_timeout: std::time::Duration::from_secs(1),
            max_connections: 4,
            ..limits()
        };
        let ep = Endpoint::start("127.0.0.1:0", SecretString::from("tok"), limits)
            .await
            .unwrap();
        ep.set(Some(Served {
            access_key_id: "ASIA1".to_owned(),
            secret_access_key: SecretString::from("sek"),
            session_token: SecretString::from("st"),
            expiration: Utc::now() + chrono::Duration::hours(1),
            source: "sts",
        }));
        // The attacker takes every connection the endpoint serves...
        let attackers: Vec<_> = (0..4)
            .map(|_| tokio::spawn(slow_headers(ep.addr)))
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        // ...yet an SDK's request is answered once the header timeout has closed them.
        let asked = std::time::Instant::now();
        let answer = reqwest::Client::new()
            .get(ep.url())
            .header("Authorization", "tok")
            .timeout(std::time::Duration::from_secs(10))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        assert!(asked.elapsed() < std::time::Duration::from_secs(5));
        for attacker in attackers {
            let held = attacker.await.unwrap();
            assert!(
                held < std::time::Duration::from_secs(4),
                "a slow-header connection was held {held:?}"
            );
        }
    }
}
