//! Snapshot policies and their runs. A run is claimed on the policy's row by one console node
//! at a time (a compare-and-set on `running_run`), so a schedule firing on one node and an
//! operator's `run` on another never snapshot the same volumes twice at once.

use crate::{get, get_state, is_unique_violation, Store, StoreError};
use airlock_api::state::SnapshotRunState;
use sqlx::any::AnyRow;

/// One stored snapshot policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotPolicyRow {
    /// Its name.
    pub name: String,
    /// The console account.
    pub account: String,
    /// `tag:KEY=VALUE`.
    pub target: String,
    /// `cron(...)` or `rate(...)`.
    pub schedule: String,
    /// Snapshots kept per volume, newest first.
    pub retain_count: Option<i64>,
    /// Snapshots younger than this many days are kept.
    pub retain_days: Option<i64>,
    /// Whose permissions decide every snapshot and deletion.
    pub created_by: String,
    /// RFC 3339.
    pub created_at: String,
    /// When the schedule last fired (RFC 3339).
    pub last_scheduled_at: Option<String>,
}

/// One run of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRunRow {
    /// `run-…`.
    pub id: String,
    /// The policy.
    pub policy: String,
    /// `scheduled`, or the user who asked.
    pub trigger: String,
    /// Where it is.
    pub state: SnapshotRunState,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339.
    pub finished_at: Option<String>,
    /// Snapshot ids created.
    pub created: Vec<String>,
    /// Snapshot ids deleted by retention.
    pub deleted: Vec<String>,
    /// What failed.
    pub errors: Vec<String>,
}

/// A claim older than this is taken for a node that died mid-run.
const STALE_RUN_MS: i64 = 15 * 60 * 1000;
/// Runs kept per policy in the history.
pub const RUNS_KEPT: i64 = 100;

fn policy(r: &AnyRow) -> Result<SnapshotPolicyRow, StoreError> {
    Ok(SnapshotPolicyRow {
        name: get(r, "name")?,
        account: get(r, "account")?,
        target: get(r, "target")?,
        schedule: get(r, "schedule")?,
        retain_count: get(r, "retain_count")?,
        retain_days: get(r, "retain_days")?,
        created_by: get(r, "created_by")?,
        created_at: get(r, "created_at")?,
        last_scheduled_at: get(r, "last_scheduled_at")?,
    })
}

fn list(r: &AnyRow, column: &str) -> Result<Vec<String>, StoreError> {
    let text: String = get(r, column)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
        what: column.to_owned(),
        reason: e.to_string(),
    })
}

fn run(r: &AnyRow) -> Result<SnapshotRunRow, StoreError> {
    Ok(SnapshotRunRow {
        id: get(r, "id")?,
        policy: get(r, "policy")?,
        trigger: get(r, "run_trigger")?,
        state: get_state(r, "state")?,
        started_at: get(r, "started_at")?,
        finished_at: get(r, "finished_at")?,
        created: list(r, "created")?,
        deleted: list(r, "deleted")?,
        errors: list(r, "errors")?,
    })
}

fn json(items: &[String]) -> String {
    serde_json::Value::from(items.to_vec()).to_string()
}

impl Store {
    /// Stores a new policy; `Conflict` when the name is taken.
    pub async fn insert_snapshot_policy(&self, p: &SnapshotPolicyRow) -> Result<(), StoreError> {
        let done = sqlx::query(
            "INSERT INTO snapshot_policies (name, account, target, schedule, retain_count, \
             retain_days, created_by, created_at, last_scheduled_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&p.name)
        .bind(&p.account)
        .bind(&p.target)
        .bind(&p.schedule)
        .bind(p.retain_count)
        .bind(p.retain_days)
        .bind(&p.created_by)
        .bind(&p.created_at)
        .bind(&p.last_scheduled_at)
        .execute(self.pool())
        .await;
        match done {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!(
                "a snapshot policy named {:?} exists",
                p.name
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// A policy by name.
    pub async fn snapshot_policy(
        &self,
        name: &str,
    ) -> Result<Option<SnapshotPolicyRow>, StoreError> {
        sqlx::query("SELECT * FROM snapshot_policies WHERE name = $1")
            .bind(name)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(policy)
            .transpose()
    }

    /// Every policy, by name.
    pub async fn snapshot_policies(&self) -> Result<Vec<SnapshotPolicyRow>, StoreError> {
        sqlx::query("SELECT * FROM snapshot_policies ORDER BY name")
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(policy)
            .collect()
    }

    /// Deletes a policy and its history; false when there was none. Its snapshots stay in EC2.
    pub async fn delete_snapshot_policy(&self, name: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM snapshot_policy_runs WHERE policy = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM snapshot_policies WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Claims the policy for `run` (recorded as running) unless another run holds it; with
    /// `scheduled_at`, also records that the schedule fired then. False when it is held.
    pub async fn claim_snapshot_run(
        &self,
        run: &SnapshotRunRow,
        scheduled_at: Option<&str>,
    ) -> Result<bool, StoreError> {
        let now = self.now_ms();
        let mut tx = self.pool().begin().await?;
        let claimed = sqlx::query(&format!(
            "UPDATE snapshot_policies SET running_run = $1, running_since_ms = {now}, \
             last_scheduled_at = COALESCE($2, last_scheduled_at) \
             WHERE name = $3 AND (running_run IS NULL OR running_since_ms < {now} - $4)"
        ))
        .bind(&run.id)
        .bind(scheduled_at)
        .bind(&run.policy)
        .bind(STALE_RUN_MS)
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO snapshot_policy_runs (id, policy, run_trigger, state, started_at, \
             finished_at, created, deleted, errors) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&run.id)
        .bind(&run.policy)
        .bind(&run.trigger)
        .bind(run.state.as_str())
        .bind(&run.started_at)
        .bind(&run.finished_at)
        .bind(json(&run.created))
        .bind(json(&run.deleted))
        .bind(json(&run.errors))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records how a run ended, releases the policy, and forgets runs beyond [`RUNS_KEPT`].
    pub async fn finish_snapshot_run(&self, run: &SnapshotRunRow) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "UPDATE snapshot_policy_runs SET state = $1, finished_at = $2, created = $3, \
             deleted = $4, errors = $5 WHERE id = $6",
        )
        .bind(run.state.as_str())
        .bind(&run.finished_at)
        .bind(json(&run.created))
        .bind(json(&run.deleted))
        .bind(json(&run.errors))
        .bind(&run.id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE snapshot_policies SET running_run = NULL, running_since_ms = NULL \
             WHERE name = $1 AND running_run = $2",
        )
        .bind(&run.policy)
        .bind(&run.id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM snapshot_policy_runs WHERE policy = $1 AND id NOT IN \
             (SELECT id FROM snapshot_policy_runs WHERE policy = $1 \
              ORDER BY started_at DESC, id DESC LIMIT $2)",
        )
        .bind(&run.policy)
        .bind(RUNS_KEPT)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The policy's latest runs, newest first.
    pub async fn snapshot_runs(
        &self,
        policy: &str,
        limit: i64,
    ) -> Result<Vec<SnapshotRunRow>, StoreError> {
        sqlx::query(
            "SELECT * FROM snapshot_policy_runs WHERE policy = $1 \
             ORDER BY started_at DESC, id DESC LIMIT $2",
        )
        .bind(policy)
        .bind(limit)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(run)
        .collect()
    }
}
