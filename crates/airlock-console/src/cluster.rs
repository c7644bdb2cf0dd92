//! Several consoles on one database. Each node heartbeats into the store every second and
//! holds or seeks the leases of work that must run on one node at a time: watching and
//! resuming deployments, and the key-rotation schedule. A lease lapses five seconds after its
//! holder's last renewal, so when a node dies another takes its work within seconds; a node
//! that cannot reach the database stops treating itself as a holder before its lease can lapse.
//! On a SQLite store the one node holds every lease.

use crate::auth::Caller;
use crate::authz::{authorize_one, console_arn};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use airlock_api::cluster::{ClusterLease, ClusterNode, ClusterStatus};
use airlock_store::NodeRow;
use axum::extract::State;
use axum::Json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use tokio::sync::watch;

/// How often a node heartbeats and renews its leases.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long a lease holds without renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(5);
/// The console action that shows the cluster.
pub const STATUS_ACTION: &str = "airlock:GetClusterStatus";

/// Work that runs on one node at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lease {
    /// Watching launching deployments and resuming those a node left unsettled.
    Deployments,
    /// The scheduled rotation of old account keys.
    KeyRotation,
    /// Firing snapshot policies and opening maintenance windows on their schedules.
    Schedules,
}

impl Lease {
    /// Every lease a node seeks.
    pub const ALL: [Lease; 3] = [Lease::Deployments, Lease::KeyRotation, Lease::Schedules];

    /// Its row's name.
    pub fn name(self) -> &'static str {
        match self {
            Lease::Deployments => "deployments",
            Lease::KeyRotation => "key-rotation",
            Lease::Schedules => "schedules",
        }
    }
}

/// What a node is doing, as its heartbeat row says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NodeState {
    Serving,
    Draining,
    Stopped,
}

impl NodeState {
    fn word(self) -> &'static str {
        match self {
            NodeState::Serving => "serving",
            NodeState::Draining => "draining",
            NodeState::Stopped => "stopped",
        }
    }
}

/// This node: who it is, which leases it holds, whether it drains.
pub struct Cluster {
    node: NodeRow,
    held: HashMap<Lease, watch::Sender<bool>>,
    draining: watch::Sender<bool>,
    live_nodes: AtomicI64,
}

impl Cluster {
    /// A node serving at `url` on `hostname`, with a fresh id.
    pub fn new(url: &str, hostname: &str) -> Cluster {
        let host: String = hostname.chars().take(63).collect();
        Cluster {
            node: NodeRow {
                id: crate::random_id(&host, 4),
                hostname: host,
                pid: i64::from(std::process::id()),
                url: url.to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                started_at_ms: 0,
                heartbeat_at_ms: 0,
                state: NodeState::Serving.word().to_owned(),
            },
            held: Lease::ALL
                .iter()
                .map(|l| (*l, watch::channel(false).0))
                .collect(),
            draining: watch::channel(false).0,
            live_nodes: AtomicI64::new(1),
        }
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.node.id
    }

    /// Whether this node holds `lease` now.
    pub fn holds(&self, lease: Lease) -> bool {
        self.held.get(&lease).is_some_and(|tx| *tx.borrow())
    }

    /// Resolves once this node holds `lease` (at once if it does).
    pub async fn gained(&self, lease: Lease) {
        let Some(tx) = self.held.get(&lease) else {
            return std::future::pending().await;
        };
        let mut rx = tx.subscribe();
        if rx.wait_for(|held| *held).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    fn set_held(&self, lease: Lease, held: bool) {
        if let Some(tx) = self.held.get(&lease) {
            tx.send_if_modified(|now| std::mem::replace(now, held) != held);
        }
    }

    /// Nodes serving with a recent heartbeat, this one included (at least 1).
    pub fn live_nodes(&self) -> i64 {
        self.live_nodes.load(Ordering::Relaxed).max(1)
    }

    /// Whether this node is draining (refusing readiness, ending streams).
    pub fn draining(&self) -> bool {
        *self.draining.borrow()
    }

    /// Resolves once this node starts draining.
    pub async fn drain_started(&self) {
        let mut rx = self.draining.subscribe();
        if rx.wait_for(|d| *d).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Starts draining: readiness fails, leases are given up, streams end.
    pub fn drain(&self) {
        self.draining.send_replace(true);
    }

    fn row(&self, state: NodeState) -> NodeRow {
        NodeRow {
            state: state.word().to_owned(),
            ..self.node.clone()
        }
    }
}

/// One heartbeat: says this node is alive, takes or renews each lease, counts live nodes. A
/// lease whose renewal fails is treated as lost at once.
pub async fn beat(state: &AppState) {
    let cluster = &state.cluster;
    if let Err(e) = state
        .store
        .heartbeat(&cluster.row(NodeState::Serving))
        .await
    {
        tracing::warn!(error = %e, "cluster heartbeat failed");
    }
    let ttl = i64::try_from(LEASE_TTL.as_millis()).unwrap_or(i64::MAX);
    for lease in Lease::ALL {
        let held = match state
            .store
            .acquire_lease(lease.name(), cluster.node_id(), ttl)
            .await
        {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(lease = lease.name(), error = %e, "cannot renew a lease; giving it up");
                false
            }
        };
        if held != cluster.holds(lease) {
            tracing::info!(
                lease = lease.name(),
                node = cluster.node_id(),
                held,
                "lease changed hands"
            );
        }
        cluster.set_held(lease, held);
    }
    if let Ok(n) = state.store.live_nodes(ttl).await {
        cluster.live_nodes.store(n, Ordering::Relaxed);
    }
}

/// Heartbeats until the node drains, then gives up its leases and says it drains.
pub async fn run(state: AppState) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => beat(&state).await,
            () = state.cluster.drain_started() => break,
        }
    }
    leave(&state, NodeState::Draining).await;
}

/// Gives up every lease and records `how` this node left.
async fn leave(state: &AppState, how: NodeState) {
    let cluster = &state.cluster;
    for lease in Lease::ALL {
        cluster.set_held(lease, false);
        if let Err(e) = state
            .store
            .release_lease(lease.name(), cluster.node_id())
            .await
        {
            tracing::warn!(lease = lease.name(), error = %e, "cannot release a lease; it lapses on its own");
        }
    }
    if let Err(e) = state.store.heartbeat(&cluster.row(how)).await {
        tracing::warn!(error = %e, "cannot record that this node left");
    }
}

/// Records that this node stopped (after its connections drained).
pub async fn stopped(state: &AppState) {
    leave(state, NodeState::Stopped).await;
}

/// `GET /readyz`: ready when the database answers and the node is not draining.
#[utoipa::path(
    get,
    path = "/readyz",
    summary = "Readiness: the database answers (migrations were applied at start) and the node is not draining",
    responses(
        (status = 200, description = "ready"),
        (status = 503, description = "Not ready, with the reason", body = airlock_api::ErrorBody),
    ),
)]
pub async fn readyz(State(state): State<AppState>) -> ApiResult<&'static str> {
    if state.cluster.draining() {
        return Err(ApiError::Unavailable(
            "this console node is draining".into(),
        ));
    }
    match tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await {
        Ok(Ok(())) => Ok("ready\n"),
        Ok(Err(_)) | Err(_) => Err(ApiError::Unavailable("the database does not answer".into())),
    }
}

/// `GET /v1/cluster`: nodes and leases (`airlock:GetClusterStatus`).
#[utoipa::path(
    get,
    path = "/v1/cluster",
    summary = "The console nodes sharing this database, their heartbeats and who holds each lease (airlock:GetClusterStatus on arn:airlock:console:::cluster/*)",
    responses(
        (status = 200, description = "Nodes and leases", body = ClusterStatus),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn status(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<ClusterStatus>> {
    authorize_one(&state, &caller, STATUS_ACTION, &console_arn("cluster", "*")).await?;
    let now = state.store.clock_ms().await?;
    let alive_within = i64::try_from(LEASE_TTL.as_millis()).unwrap_or(i64::MAX);
    let nodes = state
        .store
        .nodes()
        .await?
        .into_iter()
        .map(|n| ClusterNode {
            alive: n.state == NodeState::Serving.word() && now - n.heartbeat_at_ms <= alive_within,
            heartbeat_age_seconds: (now - n.heartbeat_at_ms) as f64 / 1000.0,
            started_at: rfc3339(n.started_at_ms),
            last_heartbeat: rfc3339(n.heartbeat_at_ms),
            id: n.id,
            hostname: n.hostname,
            pid: n.pid,
            url: n.url,
            version: n.version,
            state: n.state,
        })
        .collect();
    let leases = state
        .store
        .leases()
        .await?
        .into_iter()
        .map(|l| ClusterLease {
            expired: l.expires_at_ms < now,
            acquired_at: rfc3339(l.acquired_at_ms),
            expires_at: rfc3339(l.expires_at_ms),
            name: l.name,
            holder: l.holder,
            term: l.term,
        })
        .collect();
    Ok(Json(ClusterStatus {
        answered_by: state.cluster.node_id().to_owned(),
        nodes,
        leases,
    }))
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}
