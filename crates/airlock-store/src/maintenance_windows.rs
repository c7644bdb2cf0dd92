//! Maintenance windows and their executions. An execution is claimed on the window's row by one
//! console node at a time (a compare-and-set on `running_execution`), so the schedule firing on
//! one node and an operator's `run-now` on another never run the same tasks twice at once.

use crate::{get, get_state, is_unique_violation, Store, StoreError};
use airlock_api::maintenance_windows::{TaskExecution, WindowTask};
use airlock_api::state::ExecutionState;
use sqlx::any::AnyRow;

/// One stored window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenanceWindowRow {
    /// Its name.
    pub name: String,
    /// The console account.
    pub account: String,
    /// `tag:KEY=VALUE`.
    pub target: String,
    /// `cron(...)` or `rate(...)`.
    pub schedule: String,
    /// Seconds it stays open.
    pub duration_seconds: i64,
    /// Seconds before closing when no new task starts.
    pub cutoff_seconds: i64,
    /// `N` or `N%`.
    pub max_concurrency: String,
    /// `N` or `N%`.
    pub max_errors: String,
    /// In order.
    pub tasks: Vec<WindowTask>,
    /// Whose permissions every task acts with.
    pub created_by: String,
    /// RFC 3339.
    pub created_at: String,
    /// When the schedule last opened it (RFC 3339).
    pub last_scheduled_at: Option<String>,
}

/// One execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionRow {
    /// `exec-…`.
    pub id: String,
    /// The window.
    pub window: String,
    /// `scheduled`, or the user who ran it now.
    pub trigger: String,
    /// Where it is.
    pub state: ExecutionState,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339.
    pub cutoff_at: String,
    /// RFC 3339.
    pub ends_at: String,
    /// RFC 3339.
    pub finished_at: Option<String>,
    /// The targets found when it opened.
    pub instance_ids: Vec<String>,
    /// Per task.
    pub tasks: Vec<TaskExecution>,
}

/// Executions kept per window.
pub const EXECUTIONS_KEPT: i64 = 100;

fn decoded<T: serde::de::DeserializeOwned>(r: &AnyRow, column: &str) -> Result<T, StoreError> {
    let text: String = get(r, column)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
        what: column.to_owned(),
        reason: e.to_string(),
    })
}

fn encoded<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "[]".to_owned())
}

fn window(r: &AnyRow) -> Result<MaintenanceWindowRow, StoreError> {
    Ok(MaintenanceWindowRow {
        name: get(r, "name")?,
        account: get(r, "account")?,
        target: get(r, "target")?,
        schedule: get(r, "schedule")?,
        duration_seconds: get(r, "duration_seconds")?,
        cutoff_seconds: get(r, "cutoff_seconds")?,
        max_concurrency: get(r, "max_concurrency")?,
        max_errors: get(r, "max_errors")?,
        tasks: decoded(r, "tasks")?,
        created_by: get(r, "created_by")?,
        created_at: get(r, "created_at")?,
        last_scheduled_at: get(r, "last_scheduled_at")?,
    })
}

fn execution(r: &AnyRow) -> Result<ExecutionRow, StoreError> {
    Ok(ExecutionRow {
        id: get(r, "id")?,
        window: get(r, "window_name")?,
        trigger: get(r, "run_trigger")?,
        state: get_state(r, "state")?,
        started_at: get(r, "started_at")?,
        cutoff_at: get(r, "cutoff_at")?,
        ends_at: get(r, "ends_at")?,
        finished_at: get(r, "finished_at")?,
        instance_ids: decoded(r, "instance_ids")?,
        tasks: decoded(r, "tasks")?,
    })
}

impl Store {
    /// Stores a new window; `Conflict` when the name is taken.
    pub async fn insert_maintenance_window(
        &self,
        w: &MaintenanceWindowRow,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "INSERT INTO maintenance_windows (name, account, target, schedule, duration_seconds, \
             cutoff_seconds, max_concurrency, max_errors, tasks, created_by, created_at, \
             last_scheduled_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&w.name)
        .bind(&w.account)
        .bind(&w.target)
        .bind(&w.schedule)
        .bind(w.duration_seconds)
        .bind(w.cutoff_seconds)
        .bind(&w.max_concurrency)
        .bind(&w.max_errors)
        .bind(encoded(&w.tasks))
        .bind(&w.created_by)
        .bind(&w.created_at)
        .bind(&w.last_scheduled_at)
        .execute(self.pool())
        .await;
        match done {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!(
                "a maintenance window named {:?}",
                w.name
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// A window by name.
    pub async fn maintenance_window(
        &self,
        name: &str,
    ) -> Result<Option<MaintenanceWindowRow>, StoreError> {
        sqlx::query("SELECT * FROM maintenance_windows WHERE name = $1")
            .bind(name)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(window)
            .transpose()
    }

    /// Every window, by name.
    pub async fn maintenance_windows(&self) -> Result<Vec<MaintenanceWindowRow>, StoreError> {
        sqlx::query("SELECT * FROM maintenance_windows ORDER BY name")
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(window)
            .collect()
    }

    /// Deletes a window and its history; false when there was none.
    pub async fn delete_maintenance_window(&self, name: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM maintenance_executions WHERE window_name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM maintenance_windows WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Claims the window for `run` (recorded as running) unless another execution holds it
    /// (one older than `stale_ms` is taken for a node that died); with `scheduled_at`, also
    /// records that the schedule opened it then. False when it is held.
    pub async fn claim_execution(
        &self,
        run: &ExecutionRow,
        scheduled_at: Option<&str>,
        stale_ms: i64,
    ) -> Result<bool, StoreError> {
        let now = self.now_ms();
        let mut tx = self.pool().begin().await?;
        // An execution whose node died holds a stale claim: it ended, failed, when it is taken.
        sqlx::query(&format!(
            "UPDATE maintenance_executions SET state = $1, finished_at = $2 WHERE id IN \
             (SELECT running_execution FROM maintenance_windows WHERE name = $3 \
              AND running_since_ms < {now} - $4)"
        ))
        .bind(ExecutionState::Failed.as_str())
        .bind(&run.started_at)
        .bind(&run.window)
        .bind(stale_ms)
        .execute(&mut *tx)
        .await?;
        let claimed = sqlx::query(&format!(
            "UPDATE maintenance_windows SET running_execution = $1, running_since_ms = {now}, \
             last_scheduled_at = COALESCE($2, last_scheduled_at) \
             WHERE name = $3 AND (running_execution IS NULL OR running_since_ms < {now} - $4)"
        ))
        .bind(&run.id)
        .bind(scheduled_at)
        .bind(&run.window)
        .bind(stale_ms)
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO maintenance_executions (id, window_name, run_trigger, state, started_at, \
             cutoff_at, ends_at, finished_at, instance_ids, tasks) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&run.id)
        .bind(&run.window)
        .bind(&run.trigger)
        .bind(run.state.as_str())
        .bind(&run.started_at)
        .bind(&run.cutoff_at)
        .bind(&run.ends_at)
        .bind(&run.finished_at)
        .bind(encoded(&run.instance_ids))
        .bind(encoded(&run.tasks))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM maintenance_executions WHERE window_name = $1 AND id NOT IN \
             (SELECT id FROM maintenance_executions WHERE window_name = $1 \
              ORDER BY started_at DESC, id DESC LIMIT $2)",
        )
        .bind(&run.window)
        .bind(EXECUTIONS_KEPT)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records where an execution is; when it is no longer running, releases the window.
    pub async fn save_execution(&self, run: &ExecutionRow) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "UPDATE maintenance_executions SET state = $1, finished_at = $2, instance_ids = $3, \
             tasks = $4 WHERE id = $5",
        )
        .bind(run.state.as_str())
        .bind(&run.finished_at)
        .bind(encoded(&run.instance_ids))
        .bind(encoded(&run.tasks))
        .bind(&run.id)
        .execute(&mut *tx)
        .await?;
        if run.state != ExecutionState::Running {
            sqlx::query(
                "UPDATE maintenance_windows SET running_execution = NULL, running_since_ms = NULL \
                 WHERE name = $1 AND running_execution = $2",
            )
            .bind(&run.window)
            .bind(&run.id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The window's latest executions, newest first.
    pub async fn executions(
        &self,
        window_name: &str,
        limit: i64,
    ) -> Result<Vec<ExecutionRow>, StoreError> {
        sqlx::query(
            "SELECT * FROM maintenance_executions WHERE window_name = $1 \
             ORDER BY started_at DESC, id DESC LIMIT $2",
        )
        .bind(window_name)
        .bind(limit)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(execution)
        .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::records::tests::store;

    fn window_row() -> MaintenanceWindowRow {
        MaintenanceWindowRow {
            name: "patch".into(),
            account: "dev".into(),
            target: "tag:Patch Group=web".into(),
            schedule: "rate(1 day)".into(),
            duration_seconds: 3600,
            cutoff_seconds: 0,
            max_concurrency: "1".into(),
            max_errors: "0".into(),
            tasks: vec![WindowTask::Reboot],
            created_by: "ana".into(),
            created_at: "2026-12-01T00:00:00Z".into(),
            last_scheduled_at: None,
        }
    }

    fn execution_row(id: &str) -> ExecutionRow {
        ExecutionRow {
            id: id.into(),
            window: "patch".into(),
            trigger: "ana".into(),
            state: ExecutionState::Running,
            started_at: "2026-12-03T00:00:00Z".into(),
            cutoff_at: "2026-12-03T01:00:00Z".into(),
            ends_at: "2026-12-03T01:00:00Z".into(),
            finished_at: None,
            instance_ids: Vec::new(),
            tasks: Vec::new(),
        }
    }

    #[tokio::test]
    async fn one_execution_at_a_time_and_a_dead_nodes_claim_is_taken_over_and_marked_failed() {
        let (_dir, store) = store().await;
        store
            .insert_maintenance_window(&window_row())
            .await
            .unwrap();
        let hour = 3_600_000;
        assert!(store
            .claim_execution(&execution_row("exec-1"), None, hour)
            .await
            .unwrap());
        // Held: a second opening (another console, or run-now) is refused.
        assert!(!store
            .claim_execution(&execution_row("exec-2"), None, hour)
            .await
            .unwrap());
        // A claim older than the stale limit (here: any) is taken; the old execution failed.
        assert!(store
            .claim_execution(&execution_row("exec-3"), None, -1)
            .await
            .unwrap());
        let history = store.executions("patch", 10).await.unwrap();
        let state_of = |id: &str| history.iter().find(|e| e.id == id).map(|e| e.state);
        assert_eq!(state_of("exec-1"), Some(ExecutionState::Failed));
        assert_eq!(state_of("exec-2"), None);
        assert_eq!(state_of("exec-3"), Some(ExecutionState::Running));
        // Ending it releases the window.
        let mut done = execution_row("exec-3");
        done.state = ExecutionState::Succeeded;
        store.save_execution(&done).await.unwrap();
        assert!(store
            .claim_execution(&execution_row("exec-4"), None, hour)
            .await
            .unwrap());
    }
}
