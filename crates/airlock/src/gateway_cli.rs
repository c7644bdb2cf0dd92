//! The `airlock gateway` command line, and the edge between it and the gateway library: flags
//! become a [`GatewayOptions`], and the AWS SDK client is built here.

use std::path::PathBuf;
use std::sync::Arc;

use airlock_gateway::balance::Policy;
use airlock_gateway::console::ConsoleLink;
use airlock_gateway::GatewayOptions;
use clap::{Args, ValueEnum};

/// `airlock gateway`: route HTTP traffic to EC2 instances selected by tags.
#[derive(Debug, Clone, Args)]
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
    pub balance: Balance,
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
    /// own connection pool; default: one more than the CPUs, so that a thread the kernel
    /// preempts for another process does not leave a core idle while its connections wait.
    #[arg(long)]
    pub workers: Option<usize>,
    /// Validate the configuration, print what it defines, and exit.
    #[arg(long)]
    pub check_config: bool,
    /// This gateway's name in the endpoint health it reports every few seconds to the console
    /// it follows (--console), shown on the console's Gateway page (default: the machine's
    /// name).
    #[arg(long)]
    pub name: Option<String>,
}

/// `--balance`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Balance {
    /// Each endpoint in turn.
    RoundRobin,
    /// The less busy of two endpoints picked at random (power of two choices).
    LeastRequest,
}

impl From<Balance> for Policy {
    fn from(b: Balance) -> Self {
        match b {
            Balance::RoundRobin => Policy::RoundRobin,
            Balance::LeastRequest => Policy::LeastRequest,
        }
    }
}

impl GatewayArgs {
    fn options(self) -> GatewayOptions {
        GatewayOptions {
            config: self.config,
            secrets: self.secrets,
            listen: self.listen,
            admin_listen: self.admin_listen,
            tls_cert: self.tls_cert,
            tls_key: self.tls_key,
            balance: self.balance.into(),
            refresh_interval: self.refresh_interval,
            max_calls_per_second: self.max_calls_per_second,
            list_timeout: self.list_timeout,
            endpoint_url: self.endpoint_url,
            discover_upstreams: self.discover_upstreams,
            region: self.region,
            discover_port: self.discover_port,
            discover_secret: self.discover_secret,
            health_check_path: self.health_check_path,
            health_check_interval: self.health_check_interval,
            health_check_timeout: self.health_check_timeout,
            healthy_threshold: self.healthy_threshold,
            unhealthy_threshold: self.unhealthy_threshold,
            eject_seconds: self.eject_seconds,
            max_5xx: self.max_5xx,
            connect_timeout: self.connect_timeout,
            upstream_timeout: self.upstream_timeout,
            watch_interval: self.watch_interval,
            header_timeout: self.header_timeout,
            tls_handshake_timeout: self.tls_handshake_timeout,
            max_connections: self.max_connections,
            workers: self.workers,
            check_config: self.check_config,
            name: self.name,
        }
    }
}

/// Runs `airlock gateway`, following `console` if one was given. Flags that cannot be used come
/// back as an [`airlock_os::UsageError`].
pub async fn run(args: GatewayArgs, console: Option<ConsoleLink>) -> anyhow::Result<()> {
    let cloud = Arc::new(airlock_aws::AwsCloud::new());
    airlock_gateway::run(args.options(), cloud, console).await
}
