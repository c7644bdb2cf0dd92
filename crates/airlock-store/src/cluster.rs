//! Rows that let several consoles share one database: node heartbeats, leases for work that
//! must run on one node at a time, and notifications between nodes (PostgreSQL's
//! `LISTEN`/`NOTIFY`; a SQLite store has one node and nothing to notify).
//!
//! Every time here is read from the database's clock, never a node's, so a node whose clock is
//! off cannot take a lease early or keep one late.

use crate::{get, Backend, Store, StoreError};
use sqlx::any::AnyRow;

/// One console node as it last reported itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRow {
    /// Chosen by the node at start.
    pub id: String,
    /// The machine it runs on.
    pub hostname: String,
    /// Its process id there.
    pub pid: i64,
    /// The URL it serves at.
    pub url: String,
    /// Airlock's version.
    pub version: String,
    /// When it started (ms since the epoch, database clock).
    pub started_at_ms: i64,
    /// Its last heartbeat (ms since the epoch, database clock).
    pub heartbeat_at_ms: i64,
    /// `serving`, `draining` or `stopped`.
    pub state: String,
}

/// Who holds a lease, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    /// What the lease guards.
    pub name: String,
    /// The node holding it.
    pub holder: String,
    /// Raised each time the lease changes hands.
    pub term: i64,
    /// When the holder took it.
    pub acquired_at_ms: i64,
    /// When it lapses unless renewed.
    pub expires_at_ms: i64,
}

/// The channel consoles publish their events on.
pub const EVENTS_CHANNEL: &str = "airlock_events";

/// Nodes not seen for this long are forgotten.
const FORGET_NODES_AFTER_MS: i64 = 24 * 3600 * 1000;

impl Store {
    /// The database's clock, in milliseconds since the epoch, as an SQL expression.
    pub(crate) fn now_ms(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
            Backend::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
        }
    }

    /// The database's clock now (ms since the epoch).
    pub async fn clock_ms(&self) -> Result<i64, StoreError> {
        let row = sqlx::query(&format!("SELECT {} AS now_ms", self.now_ms()))
            .fetch_one(self.pool())
            .await?;
        get(&row, "now_ms")
    }

    /// Records that `node` is alive (inserting it on its first heartbeat) in `state`, and
    /// forgets nodes gone for a day.
    pub async fn heartbeat(&self, node: &NodeRow) -> Result<(), StoreError> {
        let now = self.now_ms();
        sqlx::query(&format!(
            "INSERT INTO cluster_nodes (id, hostname, pid, url, version, started_at_ms, \
             heartbeat_at_ms, state) VALUES ($1, $2, $3, $4, $5, {now}, {now}, $6) \
             ON CONFLICT (id) DO UPDATE SET heartbeat_at_ms = {now}, state = excluded.state"
        ))
        .bind(&node.id)
        .bind(&node.hostname)
        .bind(node.pid)
        .bind(&node.url)
        .bind(&node.version)
        .bind(&node.state)
        .execute(self.pool())
        .await?;
        sqlx::query(&format!(
            "DELETE FROM cluster_nodes WHERE heartbeat_at_ms < {now} - $1"
        ))
        .bind(FORGET_NODES_AFTER_MS)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Every node seen in the last day, oldest first.
    pub async fn nodes(&self) -> Result<Vec<NodeRow>, StoreError> {
        sqlx::query("SELECT * FROM cluster_nodes ORDER BY started_at_ms, id")
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(node)
            .collect()
    }

    /// Nodes serving with a heartbeat newer than `within_ms`.
    pub async fn live_nodes(&self, within_ms: i64) -> Result<i64, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT COUNT(*) AS n FROM cluster_nodes \
             WHERE state = 'serving' AND heartbeat_at_ms >= {} - $1",
            self.now_ms()
        ))
        .bind(within_ms)
        .fetch_one(self.pool())
        .await?;
        get(&row, "n")
    }

    /// Takes the lease `name` for `holder` for `ttl_ms`, or renews it if `holder` has it.
    /// True if `holder` holds it now; false if another node's lease has not lapsed.
    pub async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        let now = self.now_ms();
        // One statement, so two nodes racing for a lapsed lease cannot both win: the row is
        // locked by the conflict and the WHERE is decided on its newest version.
        let done = sqlx::query(&format!(
            "INSERT INTO cluster_leases (name, holder, term, acquired_at_ms, expires_at_ms) \
             VALUES ($1, $2, 1, {now}, {now} + $3) \
             ON CONFLICT (name) DO UPDATE SET \
               holder = excluded.holder, \
               term = CASE WHEN cluster_leases.holder = excluded.holder \
                 THEN cluster_leases.term ELSE cluster_leases.term + 1 END, \
               acquired_at_ms = CASE WHEN cluster_leases.holder = excluded.holder \
                 THEN cluster_leases.acquired_at_ms ELSE excluded.acquired_at_ms END, \
               expires_at_ms = excluded.expires_at_ms \
             WHERE cluster_leases.holder = excluded.holder \
                OR cluster_leases.expires_at_ms < {now}"
        ))
        .bind(name)
        .bind(holder)
        .bind(ttl_ms)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives up `holder`'s lease on `name` at once (a draining node), so another node need not
    /// wait for it to lapse.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM cluster_leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Every lease, by name.
    pub async fn leases(&self) -> Result<Vec<LeaseRow>, StoreError> {
        sqlx::query("SELECT * FROM cluster_leases ORDER BY name")
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(lease)
            .collect()
    }

    /// Sends `payload` to every node listening on `channel` (nothing on SQLite).
    pub async fn notify(&self, channel: &str, payload: &str) -> Result<(), StoreError> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(channel)
                .bind(payload)
                .execute(self.pool())
                .await?;
        }
        Ok(())
    }

    /// A listener on `channel`, or `None` on SQLite (one node, nothing to hear).
    pub async fn listen(&self, channel: &str) -> Result<Option<Listener>, StoreError> {
        if self.backend != Backend::Postgres {
            return Ok(None);
        }
        let mut listener = sqlx::postgres::PgListener::connect(&self.url).await?;
        listener.listen(channel).await?;
        Ok(Some(Listener(listener)))
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(self.pool()).await?;
        Ok(())
    }
}

fn node(row: &AnyRow) -> Result<NodeRow, StoreError> {
    Ok(NodeRow {
        id: get(row, "id")?,
        hostname: get(row, "hostname")?,
        pid: get(row, "pid")?,
        url: get(row, "url")?,
        version: get(row, "version")?,
        started_at_ms: get(row, "started_at_ms")?,
        heartbeat_at_ms: get(row, "heartbeat_at_ms")?,
        state: get(row, "state")?,
    })
}

fn lease(row: &AnyRow) -> Result<LeaseRow, StoreError> {
    Ok(LeaseRow {
        name: get(row, "name")?,
        holder: get(row, "holder")?,
        term: get(row, "term")?,
        acquired_at_ms: get(row, "acquired_at_ms")?,
        expires_at_ms: get(row, "expires_at_ms")?,
    })
}

/// Notifications on one channel, on a connection of its own.
pub struct Listener(sqlx::postgres::PgListener);

/// What a listener heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// A notification's payload.
    Payload(String),
    /// The connection was lost and will be made again at the next call: notifications sent
    /// meanwhile are lost.
    Lost,
}

impl Listener {
    /// The next notification, or word that some were lost.
    pub async fn next(&mut self) -> Result<Heard, StoreError> {
        Ok(match self.0.try_recv().await? {
            Some(note) => Heard::Payload(note.payload().to_owned()),
            None => Heard::Lost,
        })
    }
}
