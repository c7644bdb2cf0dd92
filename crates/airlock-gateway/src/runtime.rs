//! The gateway's live state and the background services next to the proxy: discovery refresh
//! (one listing per credentials group, endpoint sets rebuilt off the hot path and swapped whole),
//! active health checks, and configuration reload that keeps the previous configuration when the
//! new one is invalid.

use crate::balance::{EndpointSet, Health, Policy};
use crate::config::{self, AwsSecret, Config, ConfigErrors, LoadOptions, ObjRef, Upstream};
use crate::console::ConsoleClient;
use crate::discovery::{self, Discovery, GroupKey};
use crate::metrics::{GlobalMetrics, GroupStats, UpstreamMetrics};
use crate::routes::RouteTable;
use airlock_cloud::{Cloud, CloudError, Instance};
use arc_swap::ArcSwap;
use rand::Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Notify;

/// `--discover-upstreams` settings.
#[derive(Clone, Debug)]
pub struct DiscoverSettings {
    /// Region to list.
    pub region: String,
    /// Port when an instance has no port tag.
    pub port: u16,
    /// Secret to list with; `None` means the default credentials.
    pub secret_ref: Option<ObjRef>,
}

/// Active health check settings.
#[derive(Clone, Debug)]
pub struct HealthCheck {
    /// Path to GET; 2xx means healthy.
    pub path: String,
    /// Time between checks.
    pub interval: Duration,
    /// Time a check may take.
    pub timeout: Duration,
    /// Consecutive successes to become healthy.
    pub healthy_threshold: u32,
    /// Consecutive failures to become unhealthy.
    pub unhealthy_threshold: u32,
}

/// Settings fixed for the life of the process (command-line flags).
#[derive(Clone, Debug)]
pub struct Settings {
    /// Configuration files, re-read on reload.
    pub config_files: Vec<PathBuf>,
    /// The `--secrets` file, re-read on reload and refused while other users can open it.
    pub secrets_file: Option<PathBuf>,
    /// Timeouts and the connection cap of the proxy and admin listeners.
    pub limits: airlock_listen::Limits,
    /// Balancing policy.
    pub policy: Policy,
    /// Discovery refresh interval (jittered ±10 %).
    pub refresh: Duration,
    /// Time one listing may take.
    pub list_timeout: Duration,
    /// Most DescribeInstances calls per second, across all groups.
    pub max_calls_per_second: f64,
    /// EC2 endpoint override.
    pub endpoint_url: Option<String>,
    /// Fixed credentials for upstreams without `secretRef`.
    pub default_credentials: Option<AwsSecret>,
    /// Without fixed ones, resolve them from the standard AWS chain at every refresh
    /// (environment, shared files with SSO and `credential_process`, web identity, container
    /// and instance metadata), since the chain's temporary credentials rotate.
    pub default_chain: bool,
    /// Discovered upstreams, if on.
    pub discover: Option<DiscoverSettings>,
    /// Active health checks, if on.
    pub health: Option<HealthCheck>,
    /// Passive ejection time.
    pub eject: Duration,
    /// Consecutive 5xx answers that eject an endpoint.
    pub max_5xx: u32,
    /// Connect timeout to endpoints.
    pub connect_timeout: Duration,
    /// Time an endpoint may take to send response headers.
    pub upstream_timeout: Duration,
    /// How often configuration files are checked for changes (zero: only on SIGHUP).
    pub watch_interval: Duration,
    /// Upstreams and routes come from the console (`--console` without `--config`);
    /// `config_files` is then empty.
    pub config_from_console: bool,
    /// The name this gateway reports its endpoints' health under to the console it follows.
    pub name: String,
}

/// The configuration in force, swapped whole on reload.
#[derive(Debug, Default)]
pub struct Live {
    /// Validated configuration.
    pub config: Config,
    /// Its routes.
    pub routes: RouteTable,
}

impl Live {
    /// Live state for a configuration.
    pub fn new(config: Config) -> Self {
        let routes = RouteTable::new(config.virtual_services.clone());
        Live { config, routes }
    }
}

/// One upstream's endpoints and counters.
#[derive(Debug)]
pub struct UpstreamState {
    /// The upstream definition.
    pub upstream: Upstream,
    /// Its endpoints.
    pub set: EndpointSet,
    /// Its counters (kept across refreshes).
    pub metrics: Arc<UpstreamMetrics>,
}

#[derive(Clone, Debug, Default)]
struct GroupStatus {
    calls: u64,
    errors: u64,
    last_ok: Option<Instant>,
    stale: bool,
    throttled: u32,
    not_before: Option<Instant>,
}

/// Everything the proxy, the admin listener and the background services share.
pub struct Shared {
    /// Process settings.
    pub settings: Settings,
    /// Configuration in force.
    pub live: ArcSwap<Live>,
    /// Endpoint sets by upstream.
    pub upstreams: ArcSwap<BTreeMap<ObjRef, Arc<UpstreamState>>>,
    /// Gateway-wide counters.
    pub metrics: GlobalMetrics,
    /// Wakes the refresher at once (configuration changed).
    pub refresh_now: Notify,
    /// Latest discovery warnings (bad port tags, missing credentials).
    pub warnings: Mutex<Vec<String>>,
    /// Counts finished refreshes, so start-up can wait for the first one.
    pub refreshed: tokio::sync::watch::Sender<u64>,
    /// The console the gateway follows (`--console`), for configurations and console accounts.
    pub console: Option<Arc<ConsoleClient>>,
    /// Resolves the standard AWS credential chain when [`Settings::default_chain`] asks for it.
    pub cloud: Option<Arc<dyn Cloud>>,
    groups: Mutex<BTreeMap<String, GroupStatus>>,
    epoch: Instant,
}

impl Shared {
    /// Shared state over a first, valid configuration.
    pub fn new(settings: Settings, config: Config) -> Self {
        Shared {
            settings,
            live: ArcSwap::from_pointee(Live::new(config)),
            upstreams: ArcSwap::from_pointee(BTreeMap::new()),
            metrics: GlobalMetrics::default(),
            refresh_now: Notify::new(),
            warnings: Mutex::new(Vec::new()),
            refreshed: tokio::sync::watch::channel(0).0,
            console: None,
            cloud: None,
            groups: Mutex::new(BTreeMap::new()),
            epoch: Instant::now(),
        }
    }

    /// Milliseconds since the gateway started: the clock the balancer uses.
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Discovery metrics by group label.
    pub fn group_stats(&self) -> BTreeMap<String, GroupStats> {
        let groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        groups
            .iter()
            .map(|(k, s)| {
                (
                    k.clone(),
                    GroupStats {
                        calls: s.calls,
                        errors: s.errors,
                        age_seconds: s.last_ok.map(|t| t.elapsed().as_secs_f64()),
                        // Stale: the last listing failed, or none succeeded for three intervals.
                        stale: s.stale
                            || s.last_ok
                                .is_some_and(|t| t.elapsed() > self.settings.refresh * 3),
                    },
                )
            })
            .collect()
    }

    /// Every file the configuration is read from, to watch for changes.
    fn watched_files(&self) -> Vec<PathBuf> {
        let mut files = self.settings.config_files.clone();
        files.extend(self.settings.secrets_file.clone());
        files
    }

    fn load_options(&self) -> LoadOptions {
        LoadOptions {
            discover_upstreams: self.settings.discover.is_some(),
            ..LoadOptions::default()
        }
    }
}

/// Reads the configuration files (the only file I/O of configuration).
pub fn read_sources(files: &[PathBuf]) -> Result<Vec<(String, String)>, ConfigErrors> {
    let mut out = Vec::new();
    for f in files {
        match std::fs::read_to_string(f) {
            Ok(text) => out.push((f.display().to_string(), text)),
            Err(e) => {
                return Err(one_error(
                    &f.display().to_string(),
                    &format!("cannot read: {e}"),
                ))
            }
        }
    }
    Ok(out)
}

/// Reads the `--secrets` file, refusing it while its group or other users can open it: it holds
/// AWS keys, and any local user could read them from there.
pub fn read_secrets(file: &Path) -> Result<(String, String), ConfigErrors> {
    let name = file.display().to_string();
    match airlock_os::read_private(file) {
        Ok(text) => Ok((name, text)),
        Err(e @ airlock_os::PrivateReadError::Shared { .. }) => Err(one_error(
            &name,
            &format!("{e}: refused; make it private with `chmod 600 {name}`"),
        )),
        Err(e) => Err(one_error(&name, &e.to_string())),
    }
}

/// Loads the configuration from where it lives: the files, or the console's stored
/// configurations plus the local secrets file.
pub async fn load(
    settings: &Settings,
    console: Option<&ConsoleClient>,
    options: &LoadOptions,
) -> Result<Config, ConfigErrors> {
    let mut sources = Vec::new();
    if settings.config_from_console {
        let console = console
            .ok_or_else(|| one_error("console", "no console to load the configuration from"))?;
        sources = console.configs().await.map_err(|e| {
            one_error(
                console.url(),
                &format!(
                    "cannot load the stored gateway configurations: {}",
                    e.message
                ),
            )
        })?;
    }
    sources.extend(read_sources(&settings.config_files)?);
    sources.extend(
        settings
            .secrets_file
            .as_deref()
            .map(read_secrets)
            .transpose()?,
    );
    config::load(&sources, options)
}

fn one_error(file: &str, message: &str) -> ConfigErrors {
    ConfigErrors(vec![config::ConfigError {
        file: file.to_owned(),
        document: 0,
        object: None,
        field: String::new(),
        message: message.to_owned(),
    }])
}

/// Re-reads the configuration; on success swaps it in and refreshes at once, on failure keeps
/// the configuration in force.
pub async fn reload(shared: &Shared) -> Result<(), ConfigErrors> {
    match load(
        &shared.settings,
        shared.console.as_deref(),
        &shared.load_options(),
    )
    .await
    {
        Ok(config) => {
            for w in &config.warnings {
                tracing::warn!("{w}");
            }
            shared.live.store(Arc::new(Live::new(config)));
            shared.metrics.reloads.fetch_add(1, Ordering::Relaxed);
            shared.refresh_now.notify_one();
            tracing::info!("configuration reloaded");
            Ok(())
        }
        Err(e) => {
            shared
                .metrics
                .reload_failures
                .fetch_add(1, Ordering::Relaxed);
            tracing::error!("{e}\nkeeping the previous configuration");
            Err(e)
        }
    }
}

/// Reloads on SIGHUP and when a configuration file's modification time changes.
pub async fn watch(shared: Arc<Shared>) {
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("cannot listen for SIGHUP: {e}");
            None
        }
    };
    let stamps = |files: &[PathBuf]| -> Vec<Option<SystemTime>> {
        files
            .iter()
            .map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
            .collect()
    };
    let mut last = stamps(&shared.watched_files());
    let interval = if shared.settings.watch_interval.is_zero() {
        Duration::from_secs(3600)
    } else {
        shared.settings.watch_interval
    };
    loop {
        let by_signal = tokio::select! {
            _ = async { match hup.as_mut() { Some(h) => { h.recv().await; } None => std::future::pending().await } } => true,
            _ = tokio::time::sleep(interval) => false,
        };
        let now = stamps(&shared.watched_files());
        if by_signal || (!shared.settings.watch_interval.is_zero() && now != last) {
            last = now;
            if by_signal {
                tracing::info!("SIGHUP: reloading configuration");
            } else {
                tracing::info!("configuration file changed: reloading");
            }
            let _ = reload(&shared).await;
        }
    }
}

/// The discovery service: refreshes now, then every interval (jittered) or when woken.
pub async fn refresher(shared: Arc<Shared>, discovery: Arc<dyn Discovery>) {
    let mut state = RefreshState::default();
    loop {
        refresh(&shared, discovery.as_ref(), &mut state).await;
        let base = shared.settings.refresh.as_secs_f64();
        let wait = Duration::from_secs_f64(base * rand::thread_rng().gen_range(0.9..1.1));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shared.refresh_now.notified() => {}
        }
    }
}

/// What the refresher keeps between refreshes.
#[derive(Default)]
pub struct RefreshState {
    /// Health state by address, shared by every upstream an address is in.
    health: BTreeMap<SocketAddr, Arc<Health>>,
    /// Last successful listing per group, used when a listing fails.
    cache: Vec<(GroupKey, Vec<Instance>)>,
    /// When the next DescribeInstances may start (the shared rate limit).
    next_call: Option<Instant>,
    /// Warnings already logged.
    logged: BTreeSet<String>,
}

fn credentials_for(
    shared: &Shared,
    config: &Config,
    secret_ref: Option<&ObjRef>,
    chain: Option<&AwsSecret>,
) -> Option<AwsSecret> {
    match secret_ref {
        Some(r) => config.secrets.get(r).cloned(),
        None => shared
            .settings
            .default_credentials
            .clone()
            .or_else(|| chain.cloned()),
    }
}

/// The default chain's credentials now, when the settings ask for them and some upstream (or
/// discovery) names no secret.
async fn chain_credentials(
    shared: &Shared,
    config: &Config,
    state: &mut RefreshState,
) -> Option<AwsSecret> {
    let needed = config.upstreams.values().any(|u| u.secret_ref.is_none())
        || shared
            .settings
            .discover
            .as_ref()
            .is_some_and(|d| d.secret_ref.is_none());
    if !needed || shared.settings.default_credentials.is_some() || !shared.settings.default_chain {
        return None;
    }
    match shared.cloud.as_ref()?.default_credentials().await {
        Ok(key) => Some(AwsSecret {
            access_key_id: key.access_key_id,
            secret_access_key: key.secret_access_key,
            session_token: key.session_token,
        }),
        Err(e) => {
            let warning = format!("no default credentials from the AWS credential chain: {e}");
            if state.logged.insert(warning.clone()) {
                tracing::warn!("{warning}");
            }
            None
        }
    }
}

fn group_key(
    shared: &Shared,
    chain: Option<&AwsSecret>,
    config: &Config,
    region: &str,
    secret_ref: Option<&ObjRef>,
    role_arn: Option<&String>,
    external_id: Option<&String>,
) -> Option<GroupKey> {
    if let Some(r) = secret_ref.filter(|r| r.namespace == config::CONSOLE_NAMESPACE) {
        // Listed through the console, which keeps the key: nothing secret here.
        shared.console.as_ref()?;
        return Some(GroupKey {
            region: region.to_owned(),
            access_key_id: String::new(),
            secret_access_key: secrecy::SecretString::from(String::new()),
            session_token: None,
            role_arn: None,
            external_id: None,
            endpoint_url: None,
            console_account: Some(r.name.clone()),
        });
    }
    let creds = credentials_for(shared, config, secret_ref, chain)?;
    Some(GroupKey {
        region: region.to_owned(),
        access_key_id: creds.access_key_id,
        secret_access_key: creds.secret_access_key,
        session_token: creds.session_token,
        role_arn: role_arn.cloned(),
        external_id: external_id.cloned(),
        endpoint_url: shared.settings.endpoint_url.clone(),
        console_account: None,
    })
}

/// One refresh: list every group once, recompute every upstream's membership, swap.
pub async fn refresh(shared: &Shared, discovery: &dyn Discovery, state: &mut RefreshState) {
    let live = shared.live.load_full();
    let config = &live.config;
    let chain = chain_credentials(shared, config, state).await;
    let resolve = |u: &Upstream| {
        group_key(
            shared,
            chain.as_ref(),
            config,
            &u.region,
            u.secret_ref.as_ref(),
            u.role_arn.as_ref(),
            u.external_id.as_ref(),
        )
    };
    let discover_key = shared.settings.discover.as_ref().and_then(|d| {
        group_key(
            shared,
            chain.as_ref(),
            config,
            &d.region,
            d.secret_ref.as_ref(),
            None,
            None,
        )
    });
    let (groups, missing) = discovery::plan(&config.upstreams, &resolve, discover_key);
    let mut warnings = credential_warnings(shared, config, &groups, &missing);

    // One listing per group.
    let mut listed: Vec<(GroupKey, Vec<Instance>)> = Vec::new();
    for group in &groups {
        let instances = list_group(shared, discovery, state, group).await;
        listed.push((group.key.clone(), instances));
    }
    state
        .cache
        .retain(|(k, _)| groups.iter().any(|g| g.key == *k));

    // Membership, recomputed from tags and state every time.
    let mut all: Vec<(Upstream, Option<&Vec<Instance>>)> = Vec::new();
    for up in config.upstreams.values() {
        let instances =
            resolve(up).and_then(|k| listed.iter().find(|(g, _)| *g == k).map(|(_, v)| v));
        all.push((up.clone(), instances));
    }
    all.extend(discovered(shared, config, &groups, &listed));
    let next = memberships(shared, all, state, &mut warnings);
    shared.upstreams.store(Arc::new(next));
    publish_warnings(shared, state, warnings);
    shared.refreshed.send_modify(|n| *n += 1);
}

/// Upstreams left without endpoints for want of credentials, said in words.
fn credential_warnings(
    shared: &Shared,
    config: &Config,
    groups: &[discovery::Group],
    missing: &[ObjRef],
) -> Vec<String> {
    let mut warnings: Vec<String> = missing
        .iter()
        .map(|id| match config.upstreams.get(id).and_then(Upstream::console_account) {
            Some(account) => format!("upstream {id}: names console account {account} but the gateway follows no console (--console URL); it has no endpoints"),
            None => format!("upstream {id}: no credentials (no secretRef and no default credentials); it has no endpoints"),
        })
        .collect();
    if shared.settings.discover.is_some() && !groups.iter().any(|g| g.discover) {
        warnings.push("--discover-upstreams: no credentials to list with".to_owned());
    }
    warnings
}

/// Lists one group's instances, within the rate limit and the list timeout; on failure (or
/// while EC2 asked to slow down) the last listing that worked.
async fn list_group(
    shared: &Shared,
    discovery: &dyn Discovery,
    state: &mut RefreshState,
    group: &discovery::Group,
) -> Vec<Instance> {
    let label = group.key.label();
    let cached = state
        .cache
        .iter()
        .find(|(k, _)| *k == group.key)
        .map(|(_, v)| v.clone());
    let mut status = shared
        .groups
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&label)
        .cloned()
        .unwrap_or_default();
    if status.not_before.is_some_and(|t| t > Instant::now()) {
        return cached.unwrap_or_default();
    }
    if let Some(t) = state.next_call {
        tokio::time::sleep_until(t.into()).await;
    }
    let gap = Duration::from_secs_f64(1.0 / shared.settings.max_calls_per_second.max(0.01));
    state.next_call = Some(Instant::now() + gap);
    let result = tokio::time::timeout(
        shared.settings.list_timeout,
        discovery.list(&group.key, &group.filters),
    )
    .await;
    status.calls += 1;
    let instances = match result {
        Ok(Ok(instances)) => {
            status.last_ok = Some(Instant::now());
            status.stale = false;
            status.throttled = 0;
            status.not_before = None;
            tracing::debug!(group = %label, instances = instances.len(), "listed instances");
            state.cache.retain(|(k, _)| *k != group.key);
            state.cache.push((group.key.clone(), instances.clone()));
            instances
        }
        Ok(Err(e)) => {
            listing_failed(shared, &mut status, &label, &e);
            cached.unwrap_or_default()
        }
        Err(_) => {
            status.errors += 1;
            status.stale = true;
            tracing::warn!(group = %label, "listing instances timed out; keeping the last known endpoints");
            cached.unwrap_or_default()
        }
    };
    shared
        .groups
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(label, status);
    instances
}

/// A failed listing: counted, and when EC2 throttles, the group waits with jittered backoff.
fn listing_failed(shared: &Shared, status: &mut GroupStatus, label: &str, e: &CloudError) {
    status.errors += 1;
    status.stale = true;
    if discovery::is_throttle(e) {
        status.throttled = status.throttled.saturating_add(1);
        let max = Duration::from_secs(300).as_secs_f64();
        let backoff = (shared.settings.refresh.as_secs_f64()
            * 2f64.powi(status.throttled.min(10) as i32))
        .min(max);
        let wait = backoff * rand::thread_rng().gen_range(0.5..1.0);
        status.not_before = Some(Instant::now() + Duration::from_secs_f64(wait));
        tracing::warn!(group = %label, "EC2 asked to slow down ({e}); next listing in {wait:.1}s; keeping the last known endpoints");
    } else {
        tracing::warn!(group = %label, "listing instances failed: {e}; keeping the last known endpoints");
    }
}

/// The upstreams `--discover-upstreams` finds in its group's listing.
fn discovered<'l>(
    shared: &Shared,
    config: &Config,
    groups: &[discovery::Group],
    listed: &'l [(GroupKey, Vec<Instance>)],
) -> Vec<(Upstream, Option<&'l Vec<Instance>>)> {
    let (Some(d), Some(g)) = (
        &shared.settings.discover,
        groups.iter().find(|g| g.discover),
    ) else {
        return Vec::new();
    };
    let Some((_, instances)) = listed.iter().find(|(k, _)| *k == g.key) else {
        return Vec::new();
    };
    discovery::discovered_upstreams(instances, &d.region, d.port, &config.upstreams)
        .into_iter()
        .map(|up| (up, Some(instances)))
        .collect()
}

/// Every upstream's endpoint set from its instances, keeping each address's health, the
/// round-robin cursors and the metrics of the sets they replace.
fn memberships(
    shared: &Shared,
    all: Vec<(Upstream, Option<&Vec<Instance>>)>,
    state: &mut RefreshState,
    warnings: &mut Vec<String>,
) -> BTreeMap<ObjRef, Arc<UpstreamState>> {
    let old = shared.upstreams.load_full();
    let mut next = BTreeMap::new();
    let mut in_use = BTreeSet::new();
    let mut seen_in: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (up, instances) in all {
        let (members, w) = instances
            .map(|i| discovery::members(&up, i))
            .unwrap_or_default();
        warnings.extend(w);
        for m in &members {
            in_use.insert(m.addr);
            seen_in
                .entry(m.instance_id.clone())
                .or_default()
                .push(up.id.to_string());
        }
        let endpoints = discovery::endpoints(members, &mut state.health);
        let (cursor, metrics) = match old.get(&up.id) {
            Some(prev) => (prev.set.cursor(), prev.metrics.clone()),
            None => (0, Arc::new(UpstreamMetrics::default())),
        };
        next.insert(
            up.id.clone(),
            Arc::new(UpstreamState {
                set: EndpointSet::new(endpoints, cursor).with_hashing(up.hashing),
                upstream: up,
                metrics,
            }),
        );
    }
    for (id, ups) in seen_in {
        if ups.len() > 1 {
            warnings.push(format!(
                "instance {id} is in several upstreams: {}",
                ups.join(", ")
            ));
        }
    }
    state.health.retain(|addr, _| in_use.contains(addr));
    next
}

/// Logs the warnings not logged by the previous refresh, and keeps them for `/endpoints`.
fn publish_warnings(shared: &Shared, state: &mut RefreshState, warnings: Vec<String>) {
    for w in &warnings {
        if !state.logged.contains(w) {
            tracing::warn!("{w}");
        }
    }
    state.logged = warnings.iter().cloned().collect();
    *shared.warnings.lock().unwrap_or_else(|e| e.into_inner()) = warnings;
}

/// The active health checker: GETs each distinct address's check path every interval.
pub async fn health_checker(shared: Arc<Shared>, check: HealthCheck) {
    let connect_timeout = shared.settings.connect_timeout.min(check.timeout);
    loop {
        let snapshot = shared.upstreams.load_full();
        let mut targets: BTreeMap<SocketAddr, Arc<Health>> = BTreeMap::new();
        for state in snapshot.values() {
            for e in &state.set.endpoints {
                targets.entry(e.addr).or_insert_with(|| e.health.clone());
            }
        }
        let mut tasks = tokio::task::JoinSet::new();
        for (addr, health) in targets {
            let check = check.clone();
            tasks.spawn(async move {
                let ok = crate::proxy::probe(addr, &check.path, connect_timeout, check.timeout).await;
                if let Some(now_healthy) = health.record_check(ok, check.healthy_threshold, check.unhealthy_threshold) {
                    if now_healthy {
                        tracing::info!(%addr, "endpoint healthy again");
                    } else {
                        tracing::warn!(%addr, path = %check.path, "endpoint failed its health checks: unhealthy");
                    }
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        tokio::time::sleep(check.interval).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::discovery::Discovery;
    use airlock_cloud::{CloudError, Filter, Tag};
    use async_trait::async_trait;
    use std::sync::atomic::AtomicUsize;

    /// A fake EC2: answers from a list, or fails; counts calls.
    #[derive(Default)]
    struct Fake {
        instances: Mutex<Vec<Instance>>,
        fail: std::sync::atomic::AtomicBool,
        calls: AtomicUsize,
    }

    #[async_trait]
    impl Discovery for Fake {
        async fn list(
            &self,
            _: &GroupKey,
            filters: &[Filter],
        ) -> Result<Vec<Instance>, CloudError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            assert_eq!(filters[0], Filter::new("instance-state-name", "running"));
            if self.fail.load(Ordering::SeqCst) {
                return Err(CloudError::local("endpoint unreachable"));
            }
            Ok(self.instances.lock().unwrap().clone())
        }
    }

    fn instance(id: &str, ip: &str, tags: &[(&str, &str)]) -> Instance {
        Instance {
            instance_id: id.into(),
            image_id: None,
            instance_type: None,
            state: "running".into(),
            private_ip: Some(ip.into()),
            public_ip: None,
            subnet_id: None,
            vpc_id: None,
            launch_time: None,
            tags: tags.iter().map(|(k, v)| Tag::new(*k, *v)).collect(),
            availability_zone: None,
            root_device_name: None,
        }
    }

    fn settings() -> Settings {
        Settings {
            config_files: vec![],
            secrets_file: None,
            limits: airlock_listen::Limits::default(),
            policy: Policy::RoundRobin,
            refresh: Duration::from_millis(100),
            list_timeout: Duration::from_secs(1),
            max_calls_per_second: 1000.0,
            endpoint_url: None,
            default_chain: false,
            default_credentials: Some(AwsSecret {
                access_key_id: "AKIA".into(),
                secret_access_key: secrecy::SecretString::from("s"),
                session_token: None,
            }),
            discover: None,
            health: None,
            eject: Duration::from_secs(1),
            max_5xx: 5,
            connect_timeout: Duration::from_secs(1),
            upstream_timeout: Duration::from_secs(1),
            watch_interval: Duration::ZERO,
            config_from_console: false,
            name: "test".into(),
        }
    }

    #[tokio::test]
    async fn one_listing_per_group_and_failures_keep_the_last_endpoints() {
        let yaml = "kind: Upstream\nmetadata: {name: a}\nspec: {awsEc2: {region: r, filters: [{key: a}]}}\n---\nkind: Upstream\nmetadata: {name: b}\nspec: {awsEc2: {region: r, filters: [{key: b}]}}\n";
        let config = config::load(&[("t".into(), yaml.into())], &LoadOptions::default()).unwrap();
        let shared = Shared::new(settings(), config);
        let fake = Fake::default();
        *fake.instances.lock().unwrap() = vec![
            instance("i-2", "127.0.0.2", &[("a", ""), ("b", "")]),
            instance("i-1", "127.0.0.1", &[("a", "")]),
        ];
        let mut state = RefreshState::default();
        refresh(&shared, &fake, &mut state).await;
        assert_eq!(
            fake.calls.load(Ordering::SeqCst),
            1,
            "two upstreams, one group, one call"
        );
        let ids = |name: &str| -> Vec<String> {
            shared.upstreams.load()[&ObjRef::new("gloo-system", name)]
                .set
                .endpoints
                .iter()
                .map(|e| e.instance_id.clone())
                .collect()
        };
        assert_eq!(ids("a"), ["i-1", "i-2"]);
        assert_eq!(ids("b"), ["i-2"]);
        let warnings = shared.warnings.lock().unwrap().clone();
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("i-2 is in several upstreams")),
            "{warnings:?}"
        );
        // The same address in two upstreams shares one health state.
        let a = shared.upstreams.load()[&ObjRef::new("gloo-system", "a")]
            .set
            .endpoints[1]
            .health
            .clone();
        let b = shared.upstreams.load()[&ObjRef::new("gloo-system", "b")]
            .set
            .endpoints[0]
            .health
            .clone();
        assert!(Arc::ptr_eq(&a, &b));

        fake.fail.store(true, Ordering::SeqCst);
        refresh(&shared, &fake, &mut state).await;
        assert_eq!(
            ids("a"),
            ["i-1", "i-2"],
            "a failed listing keeps the last endpoints"
        );
        let stats = shared.group_stats();
        let s = stats.values().next().unwrap();
        assert!(s.stale && s.errors == 1 && s.calls == 2, "{s:?}");

        fake.fail.store(false, Ordering::SeqCst);
        fake.instances
            .lock()
            .unwrap()
            .retain(|i| i.instance_id == "i-1");
        refresh(&shared, &fake, &mut state).await;
        assert_eq!(ids("a"), ["i-1"]);
        assert!(ids("b").is_empty());
        assert!(!shared.group_stats().values().next().unwrap().stale);
    }

    #[tokio::test]
    async fn upstreams_without_credentials_are_reported_not_listed() {
        let yaml = "kind: Upstream\nmetadata: {name: a}\nspec: {awsEc2: {region: r}}\n";
        let config = config::load(&[("t".into(), yaml.into())], &LoadOptions::default()).unwrap();
        let mut s = settings();
        s.default_credentials = None;
        let shared = Shared::new(s, config);
        let fake = Fake::default();
        refresh(&shared, &fake, &mut RefreshState::default()).await;
        assert_eq!(fake.calls.load(Ordering::SeqCst), 0);
        assert!(shared.warnings.lock().unwrap()[0].contains("no credentials"));
    }

    #[tokio::test]
    async fn console_accounts_need_a_console_and_never_use_local_keys() {
        let yaml = "kind: Upstream\nmetadata: {name: a}\nspec: {awsEc2: {region: r, secretRef: {name: prod, namespace: airlock-console}}}\n";
        let config = config::load(&[("t".into(), yaml.into())], &LoadOptions::default()).unwrap();
        let shared = Shared::new(settings(), config);
        let fake = Fake::default();
        refresh(&shared, &fake, &mut RefreshState::default()).await;
        assert_eq!(
            fake.calls.load(Ordering::SeqCst),
            0,
            "not with the default credentials"
        );
        let warnings = shared.warnings.lock().unwrap().clone();
        assert!(
            warnings[0].contains("names console account prod but the gateway follows no console"),
            "{warnings:?}"
        );
    }
}
