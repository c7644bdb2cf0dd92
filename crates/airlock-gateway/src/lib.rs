//! Airlock's gateway: an HTTP reverse proxy whose upstreams are groups of EC2 instances found by
//! tag filters — Gloo's EC2 upstreams, converging faster and failing safer.
//!
//! Layout, pure parts first: [`config`] (Gloo YAML → validated config), [`filter`] (tag
//! matching), [`routes`] (virtual hosts, matchers, rewrites), [`balance`] (endpoint sets,
//! round-robin / least-request, health state), [`discovery`] (grouping and membership, plus the
//! [`discovery::Discovery`] trait, the one door to EC2); then the services: [`runtime`]
//! (refresh, health checks, reload), [`proxy`] and [`admin`]. [`GatewayArgs`] and [`run`] are
//! what the `airlock gateway` subcommand calls.

#![warn(missing_docs)]

pub mod admin;
pub mod balance;
pub mod console;
pub mod discovery;
pub mod error;
pub mod metrics;
pub mod proxy;
pub mod routes;
pub mod runtime;

/// Gloo YAML → validated configuration (its own crate, so the console validates with it too).
pub use airlock_gateway_config::config;
/// Tag filters.
pub use airlock_gateway_config::filter;

use anyhow::Context as _;
use balance::Policy;
use config::{LoadOptions, ObjRef};
use console::ConsoleLink;
use runtime::{DiscoverSettings, HealthCheck, Settings, Shared};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// `airlock gateway`: route HTTP traffic to EC2 instances selected by tags.
#[derive(Debug, Clone, clap::Args)]
pub struct GatewayArgs {
    /// Gloo YAML files (Upstream, VirtualService, Secret documents; several per file). Re-read on
    /// SIGHUP and when they change. Without it, with `--console URL`, upstreams and routes are
    /// the console's stored gateway configurations (`airlock gateway-config`), followed live.
    #[arg(long = "config", short = 'c', value_name = "FILE")]
    pub config: Vec<PathBuf>,
    /// A file of Secret documents with AWS keys, for upstreams' `secretRef` (kept apart from the
    /// routing configuration so it can have tighter permissions: refused while its group or
    /// other users can open it).
    #[arg(long, value_name = "FILE")]
    pub secrets: Option<PathBuf>,
    /// Proxy address.
    #[arg(long, default_value = "127.0.0.1:8080", env = "AIRLOCK_GATEWAY_LISTEN")]
    pub listen: String,
    /// Admin address for /metrics, /endpoints and /healthz.
    #[arg(long, default_value = "127.0.0.1:9901", env = "AIRLOCK_GATEWAY_ADMIN")]
    pub admin_listen: String,
    /// Serve TLS (h2 and HTTP/1.1 by ALPN) with this PEM certificate chain; needs --tls-key.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Balancing policy.
    #[arg(long, value_enum, default_value = "round-robin")]
    pub balance: Policy,
    /// Seconds between discovery refreshes (jittered by ±10 %).
    #[arg(long, default_value = "10")]
    pub refresh_interval: f64,
    /// Most DescribeInstances calls per second, across all credentials groups.
    #[arg(long, default_value = "5")]
    pub max_calls_per_second: f64,
    /// Seconds one listing may take before it counts as failed.
    #[arg(long, default_value = "60")]
    pub list_timeout: f64,
    /// EC2-compatible endpoint instead of AWS's (tests use a local one).
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
    /// Every instance tagged `airlock:upstream=<name>` becomes part of upstream <name>.
    #[arg(long)]
    pub discover_upstreams: bool,
    /// Region for --discover-upstreams.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    pub region: String,
    /// Port for discovered upstreams when an instance has no `airlock:port` tag.
    #[arg(long, default_value = "80")]
    pub discover_port: u16,
    /// Secret (`namespace/name`) to list with for --discover-upstreams (default: the default
    /// credentials).
    #[arg(long, value_name = "NAMESPACE/NAME")]
    pub discover_secret: Option<String>,
    /// Path for active health checks (GET, 2xx is healthy). Without it only passive checks run.
    #[arg(long)]
    pub health_check_path: Option<String>,
    /// Seconds between active health checks.
    #[arg(long, default_value = "5")]
    pub health_check_interval: f64,
    /// Seconds a health check may take.
    #[arg(long, default_value = "2")]
    pub health_check_timeout: f64,
    /// Consecutive passing checks that make an endpoint healthy.
    #[arg(long, default_value = "2")]
    pub healthy_threshold: u32,
    /// Consecutive failing checks that make an endpoint unhealthy.
    #[arg(long, default_value = "3")]
    pub unhealthy_threshold: u32,
    /// Seconds an endpoint is ejected after a connect failure or consecutive 5xx answers.
    #[arg(long, default_value = "10")]
    pub eject_seconds: f64,
    /// Consecutive 5xx answers that eject an endpoint.
    #[arg(long, default_value = "5")]
    pub max_5xx: u32,
    /// Seconds to open a connection to an endpoint.
    #[arg(long, default_value = "2")]
    pub connect_timeout: f64,
    /// Seconds an endpoint may take to send its response headers.
    #[arg(long, default_value = "30")]
    pub upstream_timeout: f64,
    /// Seconds between checks of the configuration files for changes (0: reload on SIGHUP only).
    #[arg(long, default_value = "1")]
    pub watch_interval: f64,
    /// Seconds a client may take to send a request's headers, and a kept-alive connection to
    /// start its next request (proxy and admin listeners).
    #[arg(long, default_value = "30", value_name = "SECONDS")]
    pub header_timeout: f64,
    /// Seconds a TLS client may take to finish its handshake.
    #[arg(long, default_value = "10", value_name = "SECONDS")]
    pub tls_handshake_timeout: f64,
    /// Most client connections served at once by the proxy (all its threads together), and
    /// by the admin listener; beyond it, new connections wait in the kernel's backlog.
    #[arg(long, default_value = "4096", value_name = "N")]
    pub max_connections: usize,
    /// Proxy threads, each with its own event loop and listening socket (SO_REUSEPORT) and its
    /// own connection pool; default: one per CPU.
    #[arg(long)]
    pub workers: Option<usize>,
    /// Validate the configuration, print what it defines, and exit.
    #[arg(long)]
    pub check_config: bool,
}

fn seconds(name: &str, v: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(v)
        .map_err(|_| anyhow::anyhow!("--{name} {v}: not a number of seconds"))
}

impl GatewayArgs {
    /// The listeners' limits from `--header-timeout`, `--tls-handshake-timeout` and
    /// `--max-connections`.
    fn limits(&self) -> anyhow::Result<airlock_listen::Limits> {
        let header_timeout = seconds("header-timeout", self.header_timeout)?;
        let handshake_timeout = seconds("tls-handshake-timeout", self.tls_handshake_timeout)?;
        if header_timeout.is_zero() || handshake_timeout.is_zero() {
            anyhow::bail!(
                "--header-timeout and --tls-handshake-timeout must be more than 0 seconds"
            );
        }
        if self.max_connections == 0 {
            anyhow::bail!("--max-connections must be at least 1");
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
    pub fn settings(&self, console: Option<&ConsoleLink>) -> anyhow::Result<Settings> {
        if self.config.is_empty() && !self.discover_upstreams && console.is_none() {
            anyhow::bail!(
                "give at least one --config FILE, --console URL (configurations stored in the console), or --discover-upstreams"
            );
        }
        if self.refresh_interval < 0.05 {
            anyhow::bail!("--refresh-interval must be at least 0.05 seconds");
        }
        let limits = self.limits()?;
        let discover = if self.discover_upstreams {
            let secret_ref = match &self.discover_secret {
                None => None,
                Some(s) => {
                    let (ns, name) = s.split_once('/').ok_or_else(|| {
                        anyhow::anyhow!("--discover-secret {s}: expected NAMESPACE/NAME")
                    })?;
                    Some(ObjRef::new(ns, name))
                }
            };
            Some(DiscoverSettings {
                region: self.region.clone(),
                port: self.discover_port,
                secret_ref,
            })
        } else {
            None
        };
        let health = match &self.health_check_path {
            None => None,
            Some(p) if !p.starts_with('/') => {
                anyhow::bail!("--health-check-path {p}: must start with /")
            }
            Some(p) => Some(HealthCheck {
                path: p.clone(),
                interval: seconds("health-check-interval", self.health_check_interval)?,
                timeout: seconds("health-check-timeout", self.health_check_timeout)?,
                healthy_threshold: self.healthy_threshold.max(1),
                unhealthy_threshold: self.unhealthy_threshold.max(1),
            }),
        };
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
        })
    }
}

/// Runs the gateway until SIGTERM or Ctrl-C, then drains requests in flight. With `console`,
/// it follows that console: its events trigger refreshes at once, upstreams may name its
/// accounts, and without `--config` its stored configurations are the configuration.
pub async fn run(args: GatewayArgs, console: Option<ConsoleLink>) -> anyhow::Result<()> {
    airlock_os::init_logging(false, airlock_os::DEFAULT_LOG_FILTER);
    // Stage one: flags and configuration, no sockets, no AWS.
    let settings = args.settings(console.as_ref())?;
    let options = LoadOptions {
        discover_upstreams: settings.discover.is_some(),
        ..LoadOptions::default()
    };
    let console = console
        .map(console::ConsoleClient::new)
        .transpose()?
        .map(Arc::new);
    let config = runtime::load(&settings, console.as_deref(), &options).await?;
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    if args.check_config {
        println!(
            "configuration ok: {} upstream(s), {} virtual service(s), {} secret(s)",
            config.upstreams.len(),
            config.virtual_services.len(),
            config.secrets.len()
        );
        for (id, up) in &config.upstreams {
            let filters: Vec<String> = up.filters.iter().map(ToString::to_string).collect();
            println!(
                "  upstream {id}: region {} port {} filters [{}]",
                up.region,
                up.port,
                filters.join(", ")
            );
        }
        return Ok(());
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => Some(airlock_listen::Tls::load(c, k)?.acceptor().clone()),
        _ => None,
    };
    // Stage two: sockets and services.
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let listeners = bind_workers(&args.listen, workers)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let admin = tokio::net::TcpListener::bind(&args.admin_listen)
        .await
        .with_context(|| format!("cannot listen on {} (admin)", args.admin_listen))?;
    let mut shared = Shared::new(settings, config);
    shared.console = console.clone();
    let shared = Arc::new(shared);
    let discovery: Arc<dyn discovery::Discovery> = Arc::new(console::Routed {
        direct: Arc::new(discovery::CloudDiscovery::new(Arc::new(
            airlock_aws::AwsCloud::new(),
        ))),
        console: console.clone(),
    });
    let mut first = shared.refreshed.subscribe();
    tokio::spawn(runtime::refresher(shared.clone(), discovery));
    if let Some(client) = console {
        tokio::spawn(console::follow(shared.clone(), client));
    }
    if let Some(check) = shared.settings.health.clone() {
        tokio::spawn(runtime::health_checker(shared.clone(), check));
    }
    tokio::spawn(runtime::watch(shared.clone()));
    let admin_router = admin::router(shared.clone());
    let admin_options = airlock_listen::Options::new(shared.settings.limits);
    tokio::spawn(async move {
        if let Err(e) = airlock_listen::serve(admin_router, admin, admin_options).await {
            tracing::error!("admin listener stopped: {e}");
        }
    });
    // Serve with endpoints when EC2 answers quickly; never wait long for it.
    if tokio::time::timeout(Duration::from_secs(5), first.changed())
        .await
        .is_err()
    {
        tracing::warn!(
            "the first discovery refresh is taking long; serving without endpoints meanwhile"
        );
    }
    tracing::info!(
        listen = %args.listen,
        admin = %args.admin_listen,
        tls = tls.is_some(),
        "gateway listening"
    );
    // Thread per core: each proxy thread runs its own event loop, accept queue and pool, so a
    // request and its upstream connection stay on one thread.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // One cap for all proxy threads: it bounds the process's connections, however the kernel
    // spreads them over the threads' sockets.
    let connections = Arc::new(tokio::sync::Semaphore::new(
        shared.settings.limits.max_connections,
    ));
    let mut threads = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let shared = shared.clone();
        let tls = tls.clone();
        let connections = connections.clone();
        let mut stop = stop_rx.clone();
        let thread = std::thread::Builder::new()
            .name(format!("gateway-proxy-{i}"))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!("proxy thread {i}: cannot start its event loop: {e}");
                        return;
                    }
                };
                rt.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!("proxy thread {i}: {e}");
                            return;
                        }
                    };
                    let stopped = async move {
                        let _ = stop.wait_for(|s| *s).await;
                    };
                    proxy::serve(listener, shared, tls, connections, stopped).await;
                });
            })
            .context("cannot start a proxy thread")?;
        threads.push(thread);
    }
    shutdown_signal().await;
    let _ = stop_tx.send(true);
    tokio::task::spawn_blocking(move || {
        for t in threads {
            let _ = t.join();
        }
    })
    .await
    .context("joining the proxy threads")?;
    Ok(())
}

/// One listening socket per proxy thread on the same address (SO_REUSEPORT: the kernel spreads
/// connections over them).
async fn bind_workers(listen: &str, workers: usize) -> anyhow::Result<Vec<std::net::TcpListener>> {
    let addr = tokio::net::lookup_host(listen)
        .await?
        .next()
        .ok_or_else(|| anyhow::anyhow!("{listen} resolves to no address"))?;
    let mut out = Vec::new();
    for _ in 0..workers {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.set_reuseport(true)?;
        socket.set_nodelay(true)?;
        socket.bind(addr)?;
        out.push(socket.listen(4096)?.into_std()?);
    }
    Ok(out)
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}
