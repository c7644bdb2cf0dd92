//! `airlock serve` and `airlock vault rotate`: the commands that open the database and vault.

use crate::cli::{LogFormat, RotateArgs, ServeArgs};
use airlock_console::vault::{self, KeySource, Vault};
use airlock_console::ConsoleConfig;
use airlock_vault::Keyring;
use anyhow::{bail, Context, Result};
use secrecy::{ExposeSecret, SecretString};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

/// The keyring from `AIRLOCK_MASTER_KEY` or the key file (created if missing).
fn load_keys(file: &std::path::Path) -> Result<(KeySource, Keyring)> {
    if let Ok(text) = std::env::var("AIRLOCK_MASTER_KEY") {
        let keyring =
            Keyring::parse(&text).context("AIRLOCK_MASTER_KEY is not a valid master key")?;
        return Ok((KeySource::Environment, keyring));
    }
    let (keyring, created) = airlock_vault::file::load_or_create_key_file(file)
        .with_context(|| format!("cannot use the master key file {}", file.display()))?;
    if created {
        tracing::info!(path = %file.display(), key_id = keyring.current().id(), "created a new master key file (mode 0600); back it up: without it the vault cannot be opened");
    }
    Ok((KeySource::File(file.to_owned()), keyring))
}

pub async fn serve(args: ServeArgs) -> Result<()> {
    let addr: std::net::SocketAddr = args.listen.parse().with_context(|| {
        format!(
            "--listen {:?} is not an address like 127.0.0.1:7070",
            args.listen
        )
    })?;
    check_rates(&args)?;
    // Logs go to standard error; standard output is kept for what the operator must read.
    airlock_os::init_logging(
        args.log_format == LogFormat::Json,
        airlock_os::DEFAULT_LOG_FILTER,
    );
    // Before the database or the vault: a listener that would be refused touches nothing.
    let listen = listen_options(&args, addr)?;
    let metrics = open_metrics(&args).await?;
    let (source, keyring) = load_keys(&args.master_key_file)?;
    let store = airlock_store::Store::open(&args.database)
        .await
        .with_context(|| format!("cannot open the database {}", redact_url(&args.database)))?;
    let vault = Vault::open(store.clone(), source, keyring).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    let scheme = if listen.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let public_url = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{local}"));
    let config = console_config(&args, &public_url);
    let admin_password = std::env::var("AIRLOCK_ADMIN_PASSWORD")
        .ok()
        .map(SecretString::from);
    let (state, generated) = airlock_console::prepare(
        store,
        vault,
        Arc::new(airlock_aws::AwsCloud::with_budget(budget(&args))),
        config,
        admin_password,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "Airlock console listening on {scheme}://{local} (public URL {public_url})"
    )?;
    if let Some(password) = generated {
        writeln!(
            out,
            "First start: created user admin with password {}\nThis password is shown only now. Log in with: airlock login --console {public_url} --user admin --password-stdin",
            password.expose_secret()
        )?;
    }
    out.flush()?;
    drop(out);
    tracing::info!(%local, database = %redact_url(&args.database), "console started");
    if let Some(metrics) = metrics {
        serve_metrics(metrics, state.clone())?;
    }
    if let Some(tls) = &listen.tls {
        reload_on_hangup(tls.clone())?;
    }
    let shutdown = termination().context("cannot watch for SIGTERM")?;
    airlock_console::serve(
        state,
        listener,
        listen,
        shutdown,
        Duration::from_secs(args.drain_timeout),
    )
    .await?;
    tracing::info!("console stopped");
    Ok(())
}

/// The flags' rates within their bounds.
fn check_rates(args: &ServeArgs) -> Result<()> {
    if !(args.poll_interval > 0.0 && args.poll_interval <= 3600.0) {
        bail!("--poll-interval must be between 0 and 3600 seconds");
    }
    if !(args.ec2_rate > 0.0 && args.ec2_rate <= 10_000.0) {
        bail!("--ec2-rate must be between 0 and 10000 requests a second");
    }
    Ok(())
}

/// Each account and region's EC2 budget from the flags.
fn budget(args: &ServeArgs) -> airlock_cloud::BudgetSettings {
    airlock_cloud::BudgetSettings {
        rate: args.ec2_rate,
        burst: args.ec2_burst,
    }
}

/// The metrics listener, bound, when --metrics-listen asks for one.
async fn open_metrics(args: &ServeArgs) -> Result<Option<crate::metrics_listen::Metrics>> {
    match &args.metrics_listen {
        Some(at) => Ok(Some(
            crate::metrics_listen::open(at, args.metrics_allow_remote).await?,
        )),
        None => Ok(None),
    }
}

/// Serves the metrics, with the console's queue depths sampled at each scrape.
fn serve_metrics(
    metrics: crate::metrics_listen::Metrics,
    state: airlock_console::AppState,
) -> Result<()> {
    let at = metrics.serve(move || airlock_console::queues::record_depths(&state))?;
    tracing::info!(%at, "metrics served at /metrics");
    Ok(())
}

/// The console's settings from the flags.
fn console_config(args: &ServeArgs, public_url: &str) -> ConsoleConfig {
    ConsoleConfig {
        public_url: public_url.to_owned(),
        token_ttl: Duration::from_secs(args.token_ttl_hours * 3600),
        poll_interval: Duration::from_secs_f64(args.poll_interval),
        rotate_keys_after: args
            .rotate_keys_after_days
            .map(|days| Duration::from_secs(days * 86_400)),
        allowed_endpoints: args.allow_endpoint.clone(),
        hostname: airlock_os::hostname(),
        schedule_clock: args.schedule_clock_file.clone(),
        ..ConsoleConfig::default()
    }
}

/// Resolves at the first SIGTERM or SIGINT.
fn termination() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

/// The listener's limits, TLS and PROXY protocol from the flags; refuses plain HTTP on a
/// non-loopback address without --insecure-http.
fn listen_options(args: &ServeArgs, addr: std::net::SocketAddr) -> Result<airlock_listen::Options> {
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(Arc::new(airlock_listen::Tls::load(cert, key)?)),
        _ => None,
    };
    if tls.is_none() {
        if !airlock_listen::plain_http_allowed(addr, args.insecure_http) {
            bail!("--listen {addr} is not a loopback address: serve TLS with --tls-cert and --tls-key, or pass --insecure-http if a balancer in front terminates TLS");
        }
        if args.insecure_http {
            tracing::warn!(%addr, "serving plain HTTP (--insecure-http): passwords, tokens, refresh secrets and instance credentials cross the network in clear text unless something in front encrypts them");
        }
    }
    let proxy_protocol = (!args.proxy_protocol.is_empty())
        .then(|| airlock_listen::ProxyProtocol::new(args.proxy_protocol.clone()));
    Ok(airlock_listen::Options {
        limits: airlock_listen::Limits {
            header_timeout: Duration::from_secs(args.header_timeout),
            max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
            handshake_timeout: Duration::from_secs(args.tls_handshake_timeout),
        },
        tls,
        proxy_protocol,
    })
}

/// Reads the certificate and key again on every SIGHUP; a bad pair is logged, the old one kept.
fn reload_on_hangup(tls: Arc<airlock_listen::Tls>) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = signal(SignalKind::hangup()).context("cannot watch for SIGHUP")?;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            match tls.reload() {
                Ok(()) => {
                    tracing::info!(cert = %tls.cert_path().display(), "reloaded the TLS certificate")
                }
                Err(e) => tracing::error!(error = %e, "kept the old TLS certificate"),
            }
        }
    });
    Ok(())
}

/// A database URL without its password.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{}@{}", &url[..scheme + 3], user, &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

pub async fn rotate(args: RotateArgs) -> Result<airlock_console::vault::RotationReport> {
    if std::env::var_os("AIRLOCK_MASTER_KEY").is_some() {
        bail!("rotation rewrites --master-key-file; with AIRLOCK_MASTER_KEY, generate a new key, set AIRLOCK_MASTER_KEY=NEW,OLD on the consoles, and move to a key file for rotation");
    }
    let path = &args.master_key_file;
    if !path.exists() {
        bail!("the master key file {} does not exist", path.display());
    }
    let (old, _) = airlock_vault::file::load_or_create_key_file(path)
        .with_context(|| format!("cannot read the master key file {}", path.display()))?;
    let store = airlock_store::Store::open(&args.database)
        .await
        .with_context(|| format!("cannot open the database {}", redact_url(&args.database)))?;
    // Prove the key opens this database before touching anything.
    Vault::open(store.clone(), KeySource::File(path.clone()), old.clone()).await?;
    let new_key = airlock_vault::MasterKey::generate();
    let both = old.with_current(new_key);
    airlock_vault::file::write_key_file(path, &both)
        .with_context(|| format!("cannot write {}", path.display()))?;
    let report = vault::rotate(&store, &both).await?;
    airlock_vault::file::write_key_file(path, &both.only_current())
        .with_context(|| format!("cannot write {}", path.display()))?;
    store.close().await;
    Ok(report)
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_password_is_redacted() {
        assert_eq!(
            super::redact_url("postgres://u:secret@h/db"),
            "postgres://u@h/db"
        );
        assert_eq!(super::redact_url("sqlite://a.db"), "sqlite://a.db");
    }
}
