//! How the agent reaches the console's refresh URL. The refresh secret and the credentials it
//! buys cross that connection, so it is held to three rules:
//!
//! * never in clear text over a network: an `http://` URL is used only when its host is this
//!   machine, unless the operator says `--insecure-http`;
//! * never through a proxy the environment names: `HTTP_PROXY` and friends are ignored (a
//!   compromised image could set them to watch every refresh, and a proxy hides the instance's
//!   address, which the console checks); `--refresh-proxy` is the operator's own choice;
//! * the console's private certificate authority is trusted when given (`--console-ca`).

use std::net::IpAddr;
use std::time::Duration;

use airlock_api::client::{transport_causes, ClientError, ConsoleClient, Proxy, Settings};
use airlock_api::refresh::{RefreshRequest, RefreshResponse};
use reqwest::Url;
use secrecy::SecretString;

use crate::AgentError;

/// What reaching a URL exposes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exposure {
    /// `https://`: encrypted to the console.
    Encrypted,
    /// `http://` to this machine (127.0.0.0/8, ::1, `localhost`): never on a network.
    Loopback,
    /// `http://` to another host: anyone on the path reads it.
    ClearText {
        /// The host, as the URL names it.
        host: String,
    },
    /// Not an http(s) URL that can be used at all.
    Unusable(String),
}

/// Judges `url` by the host a client would really connect to: the parser is the one the HTTP
/// client uses, so user information (`http://127.0.0.1@evil.example/`), look-alike names
/// (`http://127.0.0.1.evil.example/`) and numeric spellings of addresses are seen as it sees
/// them.
pub fn exposure(url: &str) -> Exposure {
    let parsed = match Url::parse(url) {
        Ok(u) => u,
        Err(e) => return Exposure::Unusable(format!("{url} is not a URL ({e})")),
    };
    match parsed.scheme() {
        "https" => return Exposure::Encrypted,
        "http" => {}
        other => return Exposure::Unusable(format!("{url} is {other}://, not http(s)://")),
    }
    let Some(host) = parsed.host_str() else {
        return Exposure::Unusable(format!("{url} names no host"));
    };
    // The parser has already turned every spelling of an address into its usual form.
    let loopback = match host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        // IPv4-mapped addresses (::ffff:127.0.0.1) are judged as the IPv4 address they are.
        Ok(ip) => ip.to_canonical().is_loopback(),
        Err(_) => host.trim_end_matches('.') == "localhost",
    };
    if loopback {
        Exposure::Loopback
    } else {
        Exposure::ClearText {
            host: host.to_owned(),
        }
    }
}

/// How the agent connects to the console, from its flags.
#[derive(Clone, Default)]
pub struct ConsoleLink {
    /// `--insecure-http`: clear text to another host is allowed.
    pub insecure_http: bool,
    /// `--refresh-proxy`: the one proxy refreshes may go through.
    pub proxy: Option<reqwest::Proxy>,
    /// `--console-ca`: authorities trusted besides the built-in web roots.
    pub roots: Vec<reqwest::Certificate>,
}

impl std::fmt::Debug for ConsoleLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The proxy URL may hold a password.
        f.debug_struct("ConsoleLink")
            .field("insecure_http", &self.insecure_http)
            .field("proxy", &self.proxy.is_some())
            .field("roots", &self.roots.len())
            .finish()
    }
}

impl ConsoleLink {
    /// The link for these flags; a proxy URL that cannot be used is a usage error (named
    /// without its value, which may hold a password).
    pub fn new(
        insecure_http: bool,
        proxy: Option<&str>,
        roots: Vec<reqwest::Certificate>,
    ) -> Result<Self, AgentError> {
        let proxy = proxy
            .map(|url| {
                reqwest::Proxy::all(url).map_err(|_| {
                    AgentError::Usage(
                        "--refresh-proxy (AIRLOCK_REFRESH_PROXY) is not a proxy URL like \
                         http://HOST:PORT"
                            .to_owned(),
                    )
                })
            })
            .transpose()?;
        Ok(ConsoleLink {
            insecure_http,
            proxy,
            roots,
        })
    }

    /// Refuses a refresh URL these rules do not allow.
    pub fn check(&self, url: &str) -> Result<(), AgentError> {
        match exposure(url) {
            Exposure::Encrypted | Exposure::Loopback => Ok(()),
            Exposure::ClearText { .. } if self.insecure_http => Ok(()),
            Exposure::ClearText { host } => Err(AgentError::ClearText { host }),
            Exposure::Unusable(why) => Err(AgentError::Other(format!(
                "the refresh URL cannot be used: {why}"
            ))),
        }
    }

    /// A console client for `url`, leaving from `source` (the instance's own address, which the
    /// console checks).
    pub fn client(&self, url: &str, source: Option<IpAddr>) -> Result<ConsoleClient, AgentError> {
        self.check(url)?;
        let settings = self.settings(source, Duration::from_secs(20));
        ConsoleClient::new(url, None, &settings).map_err(refresh_error)
    }

    /// A client for the console at `base` showing the agent token, for fetches that wait up
    /// to `wait` for work, leaving from `source` (the console checks it).
    pub fn agent_client(
        &self,
        base: &str,
        source: Option<IpAddr>,
        token: SecretString,
        wait: Duration,
    ) -> Result<ConsoleClient, AgentError> {
        self.check(base)?;
        let settings = self.settings(source, wait + Duration::from_secs(15));
        ConsoleClient::new(base, Some(token), &settings).map_err(refresh_error)
    }

    fn settings(&self, source: Option<IpAddr>, timeout: Duration) -> Settings {
        Settings {
            timeout: Some(timeout),
            connect_timeout: None,
            roots: self.roots.clone(),
            proxy: self
                .proxy
                .clone()
                .map_or(Proxy::Never, |p| Proxy::Only(Box::new(p))),
            local_address: source,
        }
    }

    /// Exchanges a refresh secret at `url` for fresh credentials and the next secret. A refusal
    /// (403) is [`AgentError::Refused`]: presenting the same secret again cannot help.
    pub async fn refresh(
        &self,
        url: &str,
        source: Option<IpAddr>,
        request: &RefreshRequest,
    ) -> Result<RefreshResponse, AgentError> {
        let client = self.client(url, source)?;
        client.refresh(url, request).await.map_err(refresh_error)
    }
}

/// A failed refresh in the agent's words; the console's error body names the reason and never
/// echoes the secret.
fn refresh_error(e: ClientError) -> AgentError {
    let answered = |status: u16, message: &str| {
        let status = reqwest::StatusCode::from_u16(status)
            .map_or_else(|_| status.to_string(), |s| s.to_string());
        format!("the console's refresh URL answered {status}: {message}")
    };
    match e {
        ClientError::Unreachable { transport, .. } => AgentError::Other(format!(
            "cannot reach the console's refresh URL: {}",
            transport_causes(&transport)
        )),
        ClientError::Console { status: 403, body } => {
            AgentError::Refused(answered(403, &body.error.message))
        }
        ClientError::Status { status: 403 } => AgentError::Refused(answered(403, "")),
        ClientError::Console { status, body } => {
            AgentError::Other(answered(status, &body.error.message))
        }
        ClientError::Status { status } => AgentError::Other(answered(status, "")),
        ClientError::UnexpectedBody { .. } => {
            AgentError::Other("the console's refresh answer is not credentials".to_owned())
        }
        ClientError::Setup(e) => AgentError::Other(format!("cannot build an HTTP client: {e}")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn clear(host: &str) -> Exposure {
        Exposure::ClearText {
            host: host.to_owned(),
        }
    }

    #[test]
    fn anyone_on_the_network_reading_refresh_traffic_gets_no_http_url() {
        for (url, judged) in [
            ("https://console.example/v1/refresh", Exposure::Encrypted),
            ("HTTPS://console.example/v1/refresh", Exposure::Encrypted),
            ("http://127.0.0.1:7070/v1/refresh", Exposure::Loopback),
            ("http://127.9.8.7/v1/refresh", Exposure::Loopback),
            ("HTTP://127.0.0.1/v1/refresh", Exposure::Loopback),
            ("http://[::1]:7070/v1/refresh", Exposure::Loopback),
            ("http://[::ffff:127.0.0.1]/v1/refresh", Exposure::Loopback),
            ("http://localhost:7070/v1/refresh", Exposure::Loopback),
            ("http://LocalHost./v1/refresh", Exposure::Loopback),
            // Numeric spellings the client resolves to loopback are loopback.
            ("http://2130706433/v1/refresh", Exposure::Loopback),
            (
                "http://console.example/v1/refresh",
                clear("console.example"),
            ),
            ("http://10.0.0.5:7070/v1/refresh", clear("10.0.0.5")),
            (
                "http://[::ffff:10.0.0.5]/v1/refresh",
                clear("[::ffff:a00:5]"),
            ),
            ("http://[fd00::1]/v1/refresh", clear("[fd00::1]")),
            ("http://0.0.0.0/v1/refresh", clear("0.0.0.0")),
            // The host is what follows the user information, not what precedes the @.
            (
                "http://127.0.0.1@evil.example/v1/refresh",
                clear("evil.example"),
            ),
            ("http://127.0.0.1:7070@evil.example/", clear("evil.example")),
            // A name that starts like a loopback address is a name.
            (
                "http://127.0.0.1.evil.example/v1/refresh",
                clear("127.0.0.1.evil.example"),
            ),
            (
                "http://localhost.evil.example/",
                clear("localhost.evil.example"),
            ),
        ] {
            assert_eq!(exposure(url), judged, "{url}");
        }
        for unusable in [
            "ftp://console.example/",
            "127.0.0.1:7070/v1/refresh",
            "http://",
        ] {
            assert!(
                matches!(exposure(unusable), Exposure::Unusable(_)),
                "{unusable}"
            );
        }
    }

    #[test]
    fn a_clear_text_url_is_refused_naming_its_host_and_the_flag_unless_allowed() {
        let strict = ConsoleLink::default();
        let err = strict
            .client("http://console.example:7070/v1/refresh", None)
            .unwrap_err();
        assert!(matches!(&err, AgentError::ClearText { host } if host == "console.example"));
        let text = err.to_string();
        assert!(
            text.contains("console.example") && text.contains("--insecure-http"),
            "{text}"
        );
        assert!(strict.check("https://console.example/").is_ok());
        assert!(strict.check("http://127.0.0.1:1/").is_ok());
        assert!(strict.check("gopher://console.example/").is_err());
        let allowed = ConsoleLink::new(true, None, Vec::new()).unwrap();
        assert!(allowed.client("http://console.example/", None).is_ok());
    }

    #[test]
    fn a_bad_proxy_url_is_a_usage_error_that_does_not_echo_it() {
        let err = ConsoleLink::new(false, Some("http://user:pa ss@[bad"), Vec::new()).unwrap_err();
        assert!(matches!(err, AgentError::Usage(_)));
        assert!(!err.to_string().contains("pa ss"), "{err}");
        let link = ConsoleLink::new(
            false,
            Some("http://user:hunter2@127.0.0.1:3128"),
            Vec::new(),
        )
        .unwrap();
        assert!(!format!("{link:?}").contains("hunter2"));
    }
}
