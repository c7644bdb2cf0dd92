//! Airlock's gateway: an HTTP reverse proxy whose upstreams are groups of EC2 instances found by
//! tag filters — Gloo's EC2 upstreams, converging faster and failing safer.
//!
//! Layout, pure parts first: [`config`] (Gloo YAML → validated config), [`filter`] (tag
//! matching), [`routes`] (virtual hosts, matchers, rewrites), [`balance`] (endpoint sets,
//! round-robin / least-request, health state), [`discovery`] (grouping and membership, plus the
//! [`discovery::Discovery`] trait, the one door to EC2), `framing` (HTTP/1.1 messages as the
//! lean path relays them); then the services: [`runtime`] (refresh, health checks, reload),
//! [`proxy`] with its lean HTTP/1.1 path `h1`, and [`admin`]. The `airlock gateway` subcommand
//! fills in a [`GatewayOptions`], builds the cloud client and calls [`run`].

#![warn(missing_docs)]

pub mod admin;
pub mod balance;
pub mod body;
pub mod console;
pub mod discovery;
pub mod error;
mod framing;
mod h1;
pub mod metrics;
mod options;
pub mod pool;
pub mod proxy;
pub mod routes;
pub mod runtime;

/// Gloo YAML → validated configuration (its own crate, so the console validates with it too).
pub use airlock_gateway_config::config;
/// Tag filters.
pub use airlock_gateway_config::filter;
pub use options::GatewayOptions;

use airlock_cloud::Cloud;
use anyhow::Context as _;
use config::{Config, LoadOptions};
use console::{ConsoleClient, ConsoleLink};
use runtime::Shared;
use std::sync::Arc;
use std::time::Duration;

/// Runs the gateway until SIGTERM or Ctrl-C, then drains requests in flight; `cloud` lists the
/// instances and resolves the default credential chain. With `console`, it follows that
/// console: its events trigger refreshes at once, upstreams may name its accounts, and without
/// `--config` its stored configurations are the configuration.
///
/// Flags that cannot be used come back as an [`airlock_os::UsageError`] (in the error's chain),
/// before anything is read or bound.
pub async fn run(
    options: GatewayOptions,
    cloud: Arc<dyn Cloud>,
    console: Option<ConsoleLink>,
) -> anyhow::Result<()> {
    airlock_os::init_logging(false, airlock_os::DEFAULT_LOG_FILTER);
    // Stage one: flags and configuration, no sockets, no AWS.
    let settings = options.settings(console.as_ref())?;
    let load_options = LoadOptions {
        discover_upstreams: settings.discover.is_some(),
        ..LoadOptions::default()
    };
    let console = console.map(ConsoleClient::new).transpose()?.map(Arc::new);
    let config = runtime::load(&settings, console.as_deref(), &load_options).await?;
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    if options.check_config {
        print_config(&config);
        return Ok(());
    }
    let tls = match (&options.tls_cert, &options.tls_key) {
        (Some(c), Some(k)) => Some(airlock_listen::Tls::load(c, k)?.acceptor().clone()),
        _ => None,
    };
    // Stage two: sockets and services.
    let workers = options.workers.unwrap_or_else(default_workers).max(1);
    let listeners = bind_workers(&options.listen, workers)
        .await
        .with_context(|| format!("cannot listen on {}", options.listen))?;
    let admin = tokio::net::TcpListener::bind(&options.admin_listen)
        .await
        .with_context(|| format!("cannot listen on {} (admin)", options.admin_listen))?;
    let mut shared = Shared::new(settings, config);
    shared.console = console.clone();
    shared.cloud = Some(cloud.clone());
    let shared = Arc::new(shared);
    start_services(&shared, cloud, console, admin).await;
    tracing::info!(
        listen = %options.listen,
        admin = %options.admin_listen,
        tls = tls.is_some(),
        "gateway listening"
    );
    serve_proxy(shared, listeners, tls).await
}

/// `--check-config`: what the configuration defines.
fn print_config(config: &Config) {
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
}

/// Discovery, the console follower, health checks, the file watcher and the admin listener;
/// returns after the first refresh, or after five seconds without one.
async fn start_services(
    shared: &Arc<Shared>,
    cloud: Arc<dyn Cloud>,
    console: Option<Arc<ConsoleClient>>,
    admin: tokio::net::TcpListener,
) {
    let discovery: Arc<dyn discovery::Discovery> = Arc::new(console::Routed {
        direct: Arc::new(discovery::CloudDiscovery::new(cloud)),
        console: console.clone(),
    });
    let mut first = shared.refreshed.subscribe();
    tokio::spawn(runtime::refresher(shared.clone(), discovery));
    if let Some(client) = console {
        tokio::spawn(console::report_health(shared.clone(), client.clone()));
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
}

/// Thread per core: each proxy thread runs its own event loop, accept queue and pool, so a
/// request and its upstream connection stay on one thread. Returns after SIGTERM or Ctrl-C,
/// once every thread has drained.
async fn serve_proxy(
    shared: Arc<Shared>,
    listeners: Vec<std::net::TcpListener>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // One cap for all proxy threads: it bounds the process's connections, however the kernel
    // spreads them over the threads' sockets.
    let connections = Arc::new(tokio::sync::Semaphore::new(
        shared.settings.limits.max_connections,
    ));
    let mut threads = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let thread = ProxyThread {
            index: i,
            shared: shared.clone(),
            tls: tls.clone(),
            connections: connections.clone(),
            stop: stop_rx.clone(),
        };
        threads.push(
            std::thread::Builder::new()
                .name(format!("gateway-proxy-{i}"))
                .spawn(move || thread.run(listener))
                .context("cannot start a proxy thread")?,
        );
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

/// What one proxy thread serves with.
struct ProxyThread {
    index: usize,
    shared: Arc<Shared>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    connections: Arc<tokio::sync::Semaphore>,
    stop: tokio::sync::watch::Receiver<bool>,
}

impl ProxyThread {
    /// Its own event loop, serving `listener` until told to stop.
    fn run(self, listener: std::net::TcpListener) {
        let i = self.index;
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
            let mut stop = self.stop;
            let stopped = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            proxy::serve(listener, self.shared, self.tls, self.connections, stopped).await;
        });
    }
}

/// One proxy thread more than the CPUs. Measured with `bench/gateway` on two cores shared with
/// the load generator and the endpoint: two threads left a sixth of the machine idle (a
/// preempted thread's connections wait while a core has nothing to run), three kept it busy
/// and served a third more requests with less CPU each; four was worse again.
fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()) + 1
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
