//! An IMDSv2 client with the timeouts and retries a boot needs.
//!
//! Every read carries a session token obtained with `PUT /latest/api/token`; the token is
//! refreshed before it expires and fetched again if the service says it is no longer valid.
//! While the service is not up yet (connection refused, timeouts, 5xx) calls are retried with
//! exponential backoff until the caller's deadline. IMDSv1 (reads without a token) is used only
//! when explicitly allowed and only when the service refuses to hand out tokens; a `401` on a
//! read never causes a fallback. (The SDK's own IMDS client is IMDSv2-only and its defaults —
//! one second, no retries — are what fails at boot, so this small client keeps full control.)

use std::time::Duration;

use reqwest::StatusCode;
use secrecy::{ExposeSecret as _, SecretString};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::AgentError;

/// The header that asks for a token and says for how long.
pub const TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
/// The header every read carries its token in.
pub const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";
/// The metadata service's address on EC2.
pub const DEFAULT_ENDPOINT: &str = "http://169.254.169.254";

/// How the client talks to the metadata service.
#[derive(Clone, Debug)]
pub struct ImdsConfig {
    /// Base URL, e.g. `http://169.254.169.254`.
    pub endpoint: String,
    /// Token lifetime asked for, 1 to 21600 seconds.
    pub token_ttl: Duration,
    /// Timeout of each HTTP attempt (connect and answer).
    pub attempt_timeout: Duration,
    /// Whether reads without a token are allowed when the service gives no tokens.
    pub allow_v1: bool,
}

/// What the agent needs to know about its instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// e.g. `i-0123456789abcdef0`.
    pub instance_id: String,
    /// e.g. `us-east-1`.
    pub region: String,
    /// e.g. `us-east-1a`, when the service says.
    pub availability_zone: Option<String>,
    /// The private IPv4 address, when the service says: requests to the console leave from it,
    /// since the console checks that a refresh comes from the instance.
    pub local_ipv4: Option<std::net::IpAddr>,
}

/// An IMDSv2 client.
pub struct ImdsClient {
    http: reqwest::Client,
    config: ImdsConfig,
    token: Mutex<Option<Token>>,
}

struct Token {
    value: SecretString,
    refresh_at: Instant,
}

/// Whether a failed attempt is worth retrying.
enum Attempt {
    Retry(String),
    Fatal(String),
}

impl ImdsClient {
    /// A client for `config`.
    pub fn new(config: ImdsConfig) -> Result<Self, AgentError> {
        let ttl = config.token_ttl.as_secs();
        if !(1..=21600).contains(&ttl) {
            return Err(AgentError::Usage(format!(
                "the IMDS token TTL must be 1 to 21600 seconds, not {ttl}"
            )));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(config.attempt_timeout)
            .timeout(config.attempt_timeout)
            .no_proxy()
            .build()
            .map_err(|e| AgentError::Imds(format!("cannot build an HTTP client: {e}")))?;
        Ok(ImdsClient {
            http,
            config: ImdsConfig {
                endpoint: config.endpoint.trim_end_matches('/').to_owned(),
                ..config
            },
            token: Mutex::new(None),
        })
    }

    /// Reads instance id, region (`placement/region`, or the availability zone minus its
    /// letter) and availability zone, retrying until `wait` has passed.
    pub async fn identity(&self, wait: Duration) -> Result<Identity, AgentError> {
        let deadline = Instant::now() + wait;
        let instance_id = self
            .get_text("/latest/meta-data/instance-id", deadline)
            .await?
            .ok_or_else(|| AgentError::Imds("it has no instance-id".to_owned()))?;
        let availability_zone = self
            .get_text("/latest/meta-data/placement/availability-zone", deadline)
            .await?;
        let region = match self
            .get_text("/latest/meta-data/placement/region", deadline)
            .await?
        {
            Some(region) => region,
            None => availability_zone
                .as_deref()
                .and_then(region_of_zone)
                .ok_or_else(|| AgentError::Imds("it names no region".to_owned()))?,
        };
        let local_ipv4 = self
            .get_text("/latest/meta-data/local-ipv4", deadline)
            .await?
            .and_then(|ip| ip.trim().parse().ok());
        Ok(Identity {
            instance_id,
            region,
            availability_zone,
            local_ipv4,
        })
    }

    /// The raw user data, `None` if the instance has none.
    pub async fn user_data(&self, wait: Duration) -> Result<Option<Vec<u8>>, AgentError> {
        self.get("/latest/user-data", Instant::now() + wait).await
    }

    async fn get_text(&self, path: &str, deadline: Instant) -> Result<Option<String>, AgentError> {
        Ok(self
            .get(path, deadline)
            .await?
            .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
            .filter(|s| !s.is_empty()))
    }

    /// GET `path` with a token; `None` on 404. Retries with backoff until `deadline`.
    pub async fn get(&self, path: &str, deadline: Instant) -> Result<Option<Vec<u8>>, AgentError> {
        let mut delay = Duration::from_millis(50);
        loop {
            match self.attempt(path).await {
                Ok(found) => return Ok(found),
                Err(Attempt::Fatal(msg)) => return Err(AgentError::Imds(msg)),
                Err(Attempt::Retry(msg)) => {
                    if Instant::now() + delay >= deadline {
                        return Err(AgentError::Imds(format!("{msg} (gave up retrying {path})")));
                    }
                    tracing::debug!(path, error = %msg, ?delay, "metadata service not ready, retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    async fn attempt(&self, path: &str) -> Result<Option<Vec<u8>>, Attempt> {
        let token = self.token().await?;
        let url = format!("{}{path}", self.config.endpoint);
        let mut request = self.http.get(&url);
        if let Some(token) = &token {
            request = request.header(TOKEN_HEADER, token.expose_secret());
        }
        let response = request
            .send()
            .await
            .map_err(|e| Attempt::Retry(reach(&e)))?;
        match response.status() {
            StatusCode::OK => response
                .bytes()
                .await
                .map(|b| Some(b.to_vec()))
                .map_err(|e| Attempt::Retry(reach(&e))),
            StatusCode::NOT_FOUND => Ok(None),
            StatusCode::UNAUTHORIZED => {
                // The token expired or the service restarted: get a new one and try again.
                *self.token.lock().await = None;
                Err(Attempt::Retry(format!(
                    "GET {path} was refused (401): the session token is not valid"
                )))
            }
            status if status.is_server_error() => {
                Err(Attempt::Retry(format!("GET {path} answered {status}")))
            }
            status => Err(Attempt::Fatal(format!("GET {path} answered {status}"))),
        }
    }

    /// The current token, fetched or refreshed when needed; `None` in IMDSv1 mode.
    async fn token(&self) -> Result<Option<SecretString>, Attempt> {
        let mut slot = self.token.lock().await;
        if let Some(token) = slot.as_ref() {
            if Instant::now() < token.refresh_at {
                return Ok(Some(token.value.clone()));
            }
        }
        let ttl = self.config.token_ttl.as_secs();
        let url = format!("{}/latest/api/token", self.config.endpoint);
        let response = self
            .http
            .put(&url)
            .header(TTL_HEADER, ttl.to_string())
            .send()
            .await
            .map_err(|e| Attempt::Retry(reach(&e)))?;
        let status = response.status();
        if status == StatusCode::OK {
            let value = response
                .text()
                .await
                .map_err(|e| Attempt::Retry(reach(&e)))?;
            // Refresh when a tenth of the lifetime (at most a minute) is left.
            let margin = Duration::from_secs((ttl / 10).clamp(0, 60));
            *slot = Some(Token {
                value: SecretString::from(value.trim().to_owned()),
                refresh_at: Instant::now() + self.config.token_ttl - margin,
            });
            tracing::debug!(ttl, "got an IMDSv2 session token");
            return Ok(slot.as_ref().map(|t| t.value.clone()));
        }
        if status.is_server_error() {
            return Err(Attempt::Retry(format!(
                "PUT /latest/api/token answered {status}"
            )));
        }
        // 403 (token service disabled), 404/405 (an IMDSv1-only service), 400 (...)
        if self.config.allow_v1 && status != StatusCode::BAD_REQUEST {
            tracing::warn!(%status, "the metadata service gives no session tokens; reading without one (IMDSv1, allowed by --imds-v1)");
            return Ok(None);
        }
        Err(Attempt::Fatal(format!(
            "PUT /latest/api/token answered {status}; IMDSv1 (reads without a token) is not \
             allowed{}",
            if self.config.allow_v1 {
                ""
            } else {
                " (--imds-v1 allows it)"
            }
        )))
    }
}

/// A network error in a few words (reqwest's Display includes the URL, which is fine: no
/// secret is ever in a metadata URL).
fn reach(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        format!("timed out: {e}")
    } else if e.is_connect() {
        format!("cannot connect: {e}")
    } else {
        e.to_string()
    }
}

/// `us-east-1a` → `us-east-1` (also for local zones such as `us-west-2-lax-1a`).
pub fn region_of_zone(zone: &str) -> Option<String> {
    let region = zone.trim_end_matches(|c: char| c.is_ascii_lowercase());
    (region.len() < zone.len() && region.ends_with(|c: char| c.is_ascii_digit()))
        .then(|| region.to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use airlock_testbed::imds_server::{ImdsServer, InstanceData};

    fn client(endpoint: &str, allow_v1: bool) -> ImdsClient {
        ImdsClient::new(ImdsConfig {
            endpoint: endpoint.to_owned(),
            token_ttl: Duration::from_secs(60),
            attempt_timeout: Duration::from_millis(500),
            allow_v1,
        })
        .unwrap()
    }

    fn data() -> InstanceData {
        InstanceData {
            instance_id: "i-0abc".to_owned(),
            availability_zone: "eu-west-3b".to_owned(),
            user_data: Some(b"hello".to_vec()),
            local_ipv4: None,
        }
    }

    #[test]
    fn region_from_zone() {
        assert_eq!(region_of_zone("us-east-1a").as_deref(), Some("us-east-1"));
        assert_eq!(
            region_of_zone("us-west-2-lax-1b").as_deref(),
            Some("us-west-2-lax-1")
        );
        assert_eq!(region_of_zone("us-east-1"), None);
    }

    #[tokio::test]
    async fn reads_with_a_token() {
        let server = ImdsServer::start("127.0.0.1:0", data(), false)
            .await
            .unwrap();
        let imds = client(&server.url(), false);
        let id = imds.identity(Duration::from_secs(5)).await.unwrap();
        assert_eq!(id.instance_id, "i-0abc");
        assert_eq!(id.region, "eu-west-3");
        assert_eq!(id.availability_zone.as_deref(), Some("eu-west-3b"));
        assert_eq!(
            imds.user_data(Duration::from_secs(5)).await.unwrap(),
            Some(b"hello".to_vec())
        );
        let stats = server.stats();
        assert_eq!(stats.tokenless_reads, 0);
        assert_eq!(stats.tokens_issued, 1, "one token serves every read");
    }

    #[tokio::test]
    async fn waits_for_a_late_service_and_gives_up_at_the_deadline() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let addr = format!("127.0.0.1:{port}");
        let imds = client(&format!("http://{addr}"), false);
        let err = imds
            .identity(Duration::from_millis(300))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("gave up"), "{err}");
        let late = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(400)).await;
            ImdsServer::start(&addr, data(), false).await.unwrap()
        });
        let id = imds.identity(Duration::from_secs(10)).await.unwrap();
        assert_eq!(id.instance_id, "i-0abc");
        drop(late.await.unwrap());
    }

    #[tokio::test]
    async fn never_falls_back_to_imdsv1_unless_allowed() {
        // A service that gives no tokens (token service disabled) but answers reads.
        let server = ImdsServer::start_without_tokens("127.0.0.1:0", data())
            .await
            .unwrap();
        let err = client(&server.url(), false)
            .identity(Duration::from_secs(2))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("IMDSv1") && err.contains("--imds-v1"), "{err}");
        assert_eq!(server.stats().tokenless_reads, 0);
        let id = client(&server.url(), true)
            .identity(Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(id.instance_id, "i-0abc");
        assert!(server.stats().tokenless_reads > 0);
    }

    #[tokio::test]
    async fn a_revoked_token_is_replaced() {
        let server = ImdsServer::start("127.0.0.1:0", data(), false)
            .await
            .unwrap();
        let imds = client(&server.url(), false);
        imds.identity(Duration::from_secs(5)).await.unwrap();
        server.revoke_tokens();
        imds.identity(Duration::from_secs(5)).await.unwrap();
        assert_eq!(server.stats().tokens_issued, 2);
        assert_eq!(server.stats().tokenless_reads, 0);
    }
}
