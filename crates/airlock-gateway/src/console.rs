//! Following an Airlock console (`airlock gateway --console URL`):
//!
//! * [`ConsoleClient`] speaks the console's API with an API token: stored gateway
//!   configurations (`GET /v1/gateway/configs`) and listings through console accounts
//!   (`POST /v1/gateway/discover`, so an account's key never leaves the console);
//! * [`follow`] watches `GET /v1/events` (Server-Sent Events) and turns what the console changed
//!   into an immediate discovery refresh, or a configuration reload, debounced so that a burst
//!   of changes costs one refresh; the stream is reopened with jittered backoff when it drops,
//!   and every (re)connection starts with a `resync` so nothing missed meanwhile is lost.

use crate::discovery::{Discovery, GroupKey};
use crate::runtime::{self, Shared};
use airlock_api::client::{transport_causes, ClientError, Settings};
use airlock_api::events::EventKind;
use airlock_api::gateway::DiscoverRequest;
use airlock_cloud::{CloudError, Filter, Instance};
use async_trait::async_trait;
use rand::Rng;
use secrecy::SecretString;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long after a first event the gateway waits for more before acting on all of them.
pub const DEBOUNCE: Duration = Duration::from_millis(100);
/// Longest wait between two attempts to reopen the event stream.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Where the console is and the API token to call it with. Prints without the token.
#[derive(Clone)]
pub struct ConsoleLink {
    /// Console URL, e.g. `https://airlock.example.com`.
    pub url: String,
    /// API token (`airlock login`, or `AIRLOCK_TOKEN`).
    pub token: SecretString,
    /// Certificate authorities trusted for an https:// console besides the built-in roots.
    pub roots: Vec<reqwest::Certificate>,
}

impl std::fmt::Debug for ConsoleLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConsoleLink({})", self.url)
    }
}

/// A failed call to the console, in words (never the token), for the gateway's logs and its
/// configuration errors; the typed error underneath is kept as the source.
#[derive(Debug, thiserror::Error)]
#[error("console {url}: {message}")]
pub struct ConsoleCallError {
    /// The console URL.
    pub url: String,
    /// What went wrong, with its causes.
    pub message: String,
    /// The console's error code (`Forbidden`, `BadRequest`…, or AWS's), when it answered.
    pub code: Option<String>,
    /// The error itself.
    #[source]
    pub cause: Box<ClientError>,
}

impl ConsoleCallError {
    /// The error of a call to the console at `url`, in the gateway's words.
    fn new(url: &str, cause: ClientError) -> Self {
        let status = |s: u16| {
            reqwest::StatusCode::from_u16(s).map_or_else(|_| s.to_string(), |s| s.to_string())
        };
        let message = match &cause {
            ClientError::Setup(e) => format!("cannot set up an HTTP client: {e}"),
            ClientError::Unreachable { transport, .. } => {
                format!("unreachable: {}", transport_causes(transport))
            }
            ClientError::Console { status: s, body } => {
                format!(
                    "{}: {}: {}",
                    status(*s),
                    body.error.code,
                    body.error.message
                )
            }
            ClientError::Status { status: s } => format!("answered {}", status(*s)),
            ClientError::UnexpectedBody { cause, .. } => format!("unexpected answer: {cause}"),
        };
        ConsoleCallError {
            url: url.trim_end_matches('/').to_owned(),
            message,
            code: cause.code().map(str::to_owned),
            cause: Box::new(cause),
        }
    }
}

/// The console's API, as the gateway uses it.
pub struct ConsoleClient {
    api: airlock_api::client::ConsoleClient,
}

impl ConsoleClient {
    /// A client for this console: calls time out after a minute, the event stream does not.
    pub fn new(link: ConsoleLink) -> Result<Self, ConsoleCallError> {
        let settings = Settings {
            timeout: Some(Duration::from_secs(60)),
            connect_timeout: Some(Duration::from_secs(5)),
            roots: link.roots.clone(),
            ..Settings::default()
        };
        let api =
            airlock_api::client::ConsoleClient::new(&link.url, Some(link.token.clone()), &settings)
                .map_err(|e| ConsoleCallError::new(&link.url, e))?;
        Ok(ConsoleClient { api })
    }

    /// The console URL.
    pub fn url(&self) -> &str {
        self.api.base()
    }

    fn error(&self, e: ClientError) -> ConsoleCallError {
        ConsoleCallError::new(self.url(), e)
    }

    /// Every stored configuration, as `(source name, YAML)` for [`crate::config::load`].
    pub async fn configs(&self) -> Result<Vec<(String, String)>, ConsoleCallError> {
        let list = self
            .api
            .gateway_configs()
            .await
            .map_err(|e| self.error(e))?;
        Ok(list
            .configs
            .into_iter()
            .map(|c| (format!("console:{}", c.name), c.yaml))
            .collect())
    }

    /// Lists instances through a console account.
    pub async fn discover(
        &self,
        account: &str,
        region: &str,
        filters: &[Filter],
    ) -> Result<Vec<Instance>, ConsoleCallError> {
        let request = DiscoverRequest {
            account: account.to_owned(),
            region: Some(region.to_owned()),
            filters: filters.to_vec(),
        };
        let found = self
            .api
            .discover(&request)
            .await
            .map_err(|e| self.error(e))?;
        Ok(found.instances)
    }

    /// Reports this gateway's endpoints and their health.
    async fn report(
        &self,
        report: &airlock_api::gateway::GatewayHealthReport,
    ) -> Result<(), ConsoleCallError> {
        self.api
            .report_gateway_health(report)
            .await
            .map_err(|e| self.error(e))
    }

    async fn events(&self) -> Result<reqwest::Response, ConsoleCallError> {
        self.api.events().await.map_err(|e| self.error(e))
    }
}

/// [`Discovery`] that lists console-account groups through the console and every other group
/// through EC2 directly.
pub struct Routed {
    /// Groups with AWS keys.
    pub direct: Arc<dyn Discovery>,
    /// The console, when the gateway follows one.
    pub console: Option<Arc<ConsoleClient>>,
}

#[async_trait]
impl Discovery for Routed {
    async fn list(
        &self,
        group: &GroupKey,
        filters: &[Filter],
    ) -> Result<Vec<Instance>, CloudError> {
        let Some(account) = &group.console_account else {
            return self.direct.list(group, filters).await;
        };
        let Some(console) = &self.console else {
            return Err(CloudError::local(format!(
                "console account {account}: the gateway follows no console (--console URL)"
            )));
        };
        console
            .discover(account, &group.region, filters)
            .await
            .map_err(|e| {
                let mut err = CloudError::local(e.to_string());
                // The console passes EC2's throttling on; back off as for EC2 itself.
                err.code = e.code;
                err
            })
    }
}

/// One parsed Server-Sent Event: its `event:` name and `data:` text.
#[derive(Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// The event name (`message` when the block named none).
    pub name: String,
    /// The data lines, joined by newlines.
    pub data: String,
}

/// Takes the complete events (blocks ended by a blank line) off the front of `buf`; comments
/// (keep-alives) and blocks without data are skipped.
pub fn take_events(buf: &mut String) -> Vec<SseEvent> {
    let mut out = Vec::new();
    loop {
        let normalized_end = buf.find("\n\n").map(|i| (i, 2));
        let crlf_end = buf.find("\r\n\r\n").map(|i| (i, 4));
        let end = match (normalized_end, crlf_end) {
            (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
            (a, b) => a.or(b),
        };
        let Some((at, len)) = end else { break };
        let block: String = buf.drain(..at + len).collect();
        let mut name = String::from("message");
        let mut data: Vec<&str> = Vec::new();
        for line in block.lines() {
            if line.starts_with(':') || line.is_empty() {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => name = value.to_owned(),
                "data" => data.push(value),
                _ => {}
            }
        }
        if !data.is_empty() {
            out.push(SseEvent {
                name,
                data: data.join("\n"),
            });
        }
    }
    out
}

/// What a burst of events asks of the gateway.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Wanted {
    /// List instances again.
    pub refresh: bool,
    /// Load the configuration again (it lives in the console).
    pub reload: bool,
}

impl Wanted {
    /// What one event asks for.
    pub fn of(event: &SseEvent) -> Wanted {
        match EventKind::from_name(&event.name) {
            Some(EventKind::Instances) => Wanted {
                refresh: true,
                reload: false,
            },
            Some(EventKind::GatewayConfig) => Wanted {
                refresh: false,
                reload: true,
            },
            Some(EventKind::Resync) => Wanted {
                refresh: true,
                reload: true,
            },
            None => Wanted::default(),
        }
    }

    fn merge(&mut self, other: Wanted) {
        self.refresh |= other.refresh;
        self.reload |= other.reload;
    }
}

/// Follows the console's events for as long as the gateway runs.
pub async fn follow(shared: Arc<Shared>, client: Arc<ConsoleClient>) {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(act(shared.clone(), rx));
    let mut backoff = Duration::from_millis(500);
    loop {
        match client.events().await {
            Ok(mut resp) => {
                tracing::info!(console = %client.url(), "following the console's events");
                shared
                    .metrics
                    .console_connected
                    .store(1, std::sync::atomic::Ordering::Relaxed);
                backoff = Duration::from_millis(500);
                let mut buf = String::new();
                let why = loop {
                    match resp.chunk().await {
                        Ok(Some(bytes)) => {
                            buf.push_str(&String::from_utf8_lossy(&bytes));
                            for event in take_events(&mut buf) {
                                let wanted = Wanted::of(&event);
                                tracing::debug!(event = %event.name, data = %event.data, "console event");
                                shared
                                    .metrics
                                    .console_events
                                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                if wanted != Wanted::default() {
                                    let _ = tx.send(wanted);
                                }
                            }
                        }
                        Ok(None) => break "the console closed the stream".to_owned(),
                        Err(e) => break transport_causes(&e),
                    }
                };
                shared
                    .metrics
                    .console_connected
                    .store(0, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(console = %client.url(), "event stream lost: {why}; reconnecting");
            }
            Err(e) => tracing::warn!("cannot follow the console's events: {e}; retrying"),
        }
        let wait = backoff.mul_f64(rand::thread_rng().gen_range(0.5..1.0));
        tokio::time::sleep(wait).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Acts on events: waits [`DEBOUNCE`] after the first of a burst, then reloads and/or refreshes
/// once for all of them.
async fn act(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Wanted>) {
    while let Some(first) = rx.recv().await {
        let mut wanted = first;
        let window = tokio::time::sleep(DEBOUNCE);
        tokio::pin!(window);
        loop {
            tokio::select! {
                _ = &mut window => break,
                more = rx.recv() => match more {
                    Some(w) => wanted.merge(w),
                    None => return,
                },
            }
        }
        if wanted.reload && shared.settings.config_from_console {
            // A reload refreshes at once when it succeeds; a failed one keeps the configuration
            // in force, and instances may still have changed, so refresh either way.
            if runtime::reload(&shared).await.is_err() || wanted.refresh {
                shared.refresh_now.notify_one();
            }
        } else if wanted.refresh || wanted.reload {
            shared.refresh_now.notify_one();
        }
    }
}

/// How often a gateway following a console reports its endpoints' health to it.
const REPORT_EVERY: Duration = Duration::from_secs(5);

/// Reports every endpoint of every upstream and its health (healthy, ejected by passive health,
/// unhealthy by active checks) to the console every few seconds, so that the console's Gateway
/// page shows what each gateway sees. A failed report is logged and the next one goes on time.
pub async fn report_health(shared: Arc<Shared>, client: Arc<ConsoleClient>) {
    // A failure is logged when reports start failing (a console user without
    // airlock:ReportGatewayHealth fails every time), not every few seconds.
    let mut failing = false;
    loop {
        let report = health_report(&shared);
        match client.report(&report).await {
            Ok(()) if failing => {
                tracing::info!("endpoint health reaches the console again");
                failing = false;
            }
            Ok(()) => {}
            Err(e) if !failing => {
                tracing::warn!("cannot report endpoint health to the console: {e}");
                failing = true;
            }
            Err(e) => tracing::debug!("cannot report endpoint health to the console: {e}"),
        }
        tokio::time::sleep(REPORT_EVERY).await;
    }
}

/// This gateway's endpoints and their health now (at most the API's bound).
fn health_report(shared: &Shared) -> airlock_api::gateway::GatewayHealthReport {
    use airlock_api::gateway::{ReportedEndpoint, MAX_REPORTED_ENDPOINTS};
    let now = shared.now_ms();
    let mut endpoints = Vec::new();
    for (id, state) in shared.upstreams.load().iter() {
        for e in &state.set.endpoints {
            endpoints.push(ReportedEndpoint {
                upstream: id.to_string(),
                instance_id: e.instance_id.clone(),
                address: e.addr.to_string(),
                health: e.health.word(now).to_owned(),
            });
        }
    }
    endpoints.truncate(MAX_REPORTED_ENDPOINTS);
    airlock_api::gateway::GatewayHealthReport {
        gateway: shared.settings.name.clone(),
        endpoints,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_sent_events_are_parsed_across_chunks() {
        let mut buf = String::from(
            ": keep-alive\n\nevent: resync\nid: 0\ndata: {\"kind\":\"resync\"}\n\nevent: inst",
        );
        let got = take_events(&mut buf);
        assert_eq!(
            got,
            vec![SseEvent {
                name: "resync".into(),
                data: "{\"kind\":\"resync\"}".into()
            }]
        );
        assert_eq!(buf, "event: inst");
        buf.push_str("ances\r\ndata: a\r\ndata: b\r\n\r\n");
        let got = take_events(&mut buf);
        assert_eq!(got[0].name, "instances");
        assert_eq!(got[0].data, "a\nb");
        assert!(buf.is_empty());
        assert_eq!(
            Wanted::of(&got[0]),
            Wanted {
                refresh: true,
                reload: false
            }
        );
    }

    #[test]
    fn the_link_never_prints_its_token() {
        let link = ConsoleLink {
            url: "http://127.0.0.1:1".into(),
            token: SecretString::from("alk_very_secret"),
            roots: Vec::new(),
        };
        assert!(!format!("{link:?}").contains("alk_very_secret"));
    }
}
