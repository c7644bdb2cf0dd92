//! The gateway's flags as plain values, and their validation into [`Settings`]: the binary owns
//! the command line, this crate decides what a usable combination is.

use crate::balance::Policy;
use crate::config::ObjRef;
use crate::console::ConsoleLink;
use crate::runtime::{DiscoverSettings, HealthCheck, Settings};
use airlock_os::UsageError;
use std::path::PathBuf;
use std::time::Duration;

/// What `airlock gateway` was asked to do (each field is the flag of the same name), before it
/// is checked.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// Gloo YAML files (Upstream, VirtualService, Secret documents; several per file). Re-read on
    /// SIGHUP and when they change. Without it, with `--console URL`, upstreams and routes are
    /// the console's stored gateway configurations (`airlock gateway-config`), followed live.
    pub config: Vec<PathBuf>,
    /// A file of Secret documents with AWS keys, for upstreams' `secretRef` (kept apart from the
    /// routing configuration so it can have tighter permissions: refused while its group or
    /// other users can open it).
    pub secrets: Option<PathBuf>,
    /// Proxy address.
    pub listen: String,
    /// Admin address for /metrics, /endpoints and /healthz.
    pub admin_listen: String,
    /// Serve TLS (h2 and HTTP/1.1 by ALPN) with this PEM certificate chain; needs --tls-key.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    pub tls_key: Option<PathBuf>,
    /// Balancing policy.
    pub balance: Policy,
    /// Seconds between discovery refreshes (jittered by ±10 %).
    pub refresh_interval: f64,
    /// Most DescribeInstances calls per second, across all credentials groups.
    pub max_calls_per_second: f64,
    /// Seconds one listing may take before it counts as failed.
    pub list_timeout: f64,
    /// EC2-compatible endpoint instead of AWS's (tests use a local one).
    pub endpoint_url: Option<String>,
    /// Every instance tagged `airlock:upstream=<name>` becomes part of upstream <name>.
    pub discover_upstreams: bool,
    /// Region for --discover-upstreams.
    pub region: String,
    /// Port for discovered upstreams when an instance has no `airlock:port` tag.
    pub discover_port: u16,
    /// Secret (`namespace/name`) to list with for --discover-upstreams (default: the default
    /// credentials).
    pub discover_secret: Option<String>,
    /// Path for active health checks (GET, 2xx is healthy). Without it only passive checks run.
    pub health_check_path: Option<String>,
    /// Seconds between active health checks.
    pub health_check_interval: f64,
    /// Seconds a health check may take.
    pub health_check_timeout: f64,
    /// Consecutive passing checks that make an endpoint healthy.
    pub healthy_threshold: u32,
    /// Consecutive failing checks that make an endpoint unhealthy.
    pub unhealthy_threshold: u32,
    /// Seconds an endpoint is ejected after a connect failure or consecutive 5xx answers.
    pub eject_seconds: f64,
    /// Consecutive 5xx answers that eject an endpoint.
    pub max_5xx: u32,
    /// Seconds to open a connection to an endpoint.
    pub connect_timeout: f64,
    /// Seconds an endpoint may take to send its response headers.
    pub upstream_timeout: f64,
    /// Seconds between checks of the configuration files for changes (0: reload on SIGHUP only).
    pub watch_interval: f64,
    /// Seconds a client may take to send a request's headers, and a kept-alive connection to
    /// start its next request (proxy and admin listeners).
    pub header_timeout: f64,
    /// Seconds a TLS client may take to finish its handshake.
    pub tls_handshake_timeout: f64,
    /// Most client connections served at once by the proxy (all its threads together), and
    /// by the admin listener; beyond it, new connections wait in the kernel's backlog.
    pub max_connections: usize,
    /// Proxy threads, each with its own event loop and listening socket (SO_REUSEPORT) and its
    /// own connection pool; default: one more than the CPUs, so that a thread the kernel
    /// preempts for another process does not leave a core idle while its connections wait.
    pub workers: Option<usize>,
    /// Validate the configuration, print what it defines, and exit.
    pub check_config: bool,
    /// This gateway's name in the health it reports to the console it follows (default: the
    /// machine's name).
    pub name: Option<String>,
}

fn seconds(name: &str, v: f64) -> Result<Duration, UsageError> {
    Duration::try_from_secs_f64(v)
        .map_err(|_| UsageError(format!("--{name} {v}: not a number of seconds")))
}

impl GatewayOptions {
    /// The listeners' limits from `--header-timeout`, `--tls-handshake-timeout` and
    /// `--max-connections`.
    fn limits(&self) -> Result<airlock_listen::Limits, UsageError> {
        let header_timeout = seconds("header-timeout", self.header_timeout)?;
        let handshake_timeout = seconds("tls-handshake-timeout", self.tls_handshake_timeout)?;
        if header_timeout.is_zero() || handshake_timeout.is_zero() {
            return Err(UsageError::new(
                "--header-timeout and --tls-handshake-timeout must be more than 0 seconds",
            ));
        }
        if self.max_connections == 0 {
            return Err(UsageError::new("--max-connections must be at least 1"));
        }
        #[allow(
            clippy::needless_update,
            reason = "the listener's limits gain fields, with defaults of their own"
        )]
        let limits = airlock_listen::Limits {
            header_timeout,
            max_connections: self.max_connections,
            handshake_timeout,
            ..airlock_listen::Limits::default()
        };
        Ok(limits)
    }

    /// Validates the flags (no I/O) into settings; `console` is the console followed, if any.
    /// Flags that cannot be used are a [`UsageError`].
    pub fn settings(&self, console: Option<&ConsoleLink>) -> Result<Settings, UsageError> {
        if self.config.is_empty() && !self.discover_upstreams && console.is_none() {
            return Err(UsageError::new("give at least one --config FILE, --console URL (configurations stored in the console), or --discover-upstreams"));
        }
        if let Some(name) = &self.name {
            if !airlock_api::gateway::valid_gateway_name(name) {
                return Err(UsageError(format!(
                    "--name {name:?}: give 1 to 128 letters, digits, '.', '_' or '-'"
                )));
            }
        }
        if self.refresh_interval < 0.05 {
            return Err(UsageError::new(
                "--refresh-interval must be at least 0.05 seconds",
            ));
        }
        let limits = self.limits()?;
        let discover = self.discover()?;
        let health = self.health()?;
        Ok(Settings {
            config_files: self.config.clone(),
            secrets_file: self.secrets.clone(),
            limits,
            policy: self.balance,
            refresh: seconds("refresh-interval", self.refresh_interval)?,
            list_timeout: seconds("list-timeout", self.list_timeout)?,
            max_calls_per_second: self.max_calls_per_second,
            endpoint_url: self.endpoint_url.clone().filter(|s| !s.is_empty()),
            default_credentials: None,
            default_chain: true,
            discover,
            health,
            eject: seconds("eject-seconds", self.eject_seconds)?,
            max_5xx: self.max_5xx,
            connect_timeout: seconds("connect-timeout", self.connect_timeout)?,
            upstream_timeout: seconds("upstream-timeout", self.upstream_timeout)?,
            watch_interval: seconds("watch-interval", self.watch_interval)?,
            config_from_console: console.is_some() && self.config.is_empty(),
            name: self.name.clone().unwrap_or_else(airlock_os::hostname),
        })
    }

    /// `--discover-upstreams` and its flags.
    fn discover(&self) -> Result<Option<DiscoverSettings>, UsageError> {
        if !self.discover_upstreams {
            return Ok(None);
        }
        let secret_ref = match &self.discover_secret {
            None => None,
            Some(s) => {
                let (ns, name) = s.split_once('/').ok_or_else(|| {
                    UsageError(format!("--discover-secret {s}: expected NAMESPACE/NAME"))
                })?;
                Some(ObjRef::new(ns, name))
            }
        };
        Ok(Some(DiscoverSettings {
            region: self.region.clone(),
            port: self.discover_port,
            secret_ref,
        }))
    }

    /// `--health-check-path` and its flags.
    fn health(&self) -> Result<Option<HealthCheck>, UsageError> {
        let Some(path) = &self.health_check_path else {
            return Ok(None);
        };
        if !path.starts_with('/') {
            return Err(UsageError(format!(
                "--health-check-path {path}: must start with /"
            )));
        }
        Ok(Some(HealthCheck {
            path: path.clone(),
            interval: seconds("health-check-interval", self.health_check_interval)?,
            timeout: seconds("health-check-timeout", self.health_check_timeout)?,
            healthy_threshold: self.healthy_threshold.max(1),
            unhealthy_threshold: self.unhealthy_threshold.max(1),
        }))
    }
}
