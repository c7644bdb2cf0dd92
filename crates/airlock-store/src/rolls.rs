//! Rolling replacements. A roll is claimed by one console node at a time (a compare-and-set on
//! `claimed_by`, refreshed at every save); a save by a node that lost its claim changes nothing,
//! so two consoles never drive one roll.

use crate::{get, get_state, Store, StoreError};
use airlock_api::rolls::NodeRoll;
use airlock_api::state::RollState;
use sqlx::any::AnyRow;

/// One stored roll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollRow {
    /// `roll-…`.
    pub id: String,
    /// The deployment.
    pub deployment_id: String,
    /// The new image.
    pub image_id: String,
    /// The new instance type.
    pub instance_type: String,
    /// Nodes at once.
    pub batch: i64,
    /// `status-checks`, `agent` or `http:PORT/PATH`.
    pub health: String,
    /// Seconds.
    pub health_timeout_seconds: i64,
    /// Where it is.
    pub state: RollState,
    /// Why it stopped.
    pub error: Option<String>,
    /// Each node's step and identity.
    pub nodes: Vec<NodeRoll>,
    /// Who rolls.
    pub created_by: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

fn roll(r: &AnyRow) -> Result<RollRow, StoreError> {
    let nodes: String = get(r, "nodes")?;
    Ok(RollRow {
        id: get(r, "id")?,
        deployment_id: get(r, "deployment_id")?,
        image_id: get(r, "image_id")?,
        instance_type: get(r, "instance_type")?,
        batch: get(r, "batch")?,
        health: get(r, "health")?,
        health_timeout_seconds: get(r, "health_timeout_seconds")?,
        state: get_state(r, "state")?,
        error: get(r, "error")?,
        nodes: serde_json::from_str(&nodes).map_err(|e| StoreError::Corrupt {
            what: "nodes".to_owned(),
            reason: e.to_string(),
        })?,
        created_by: get(r, "created_by")?,
        created_at: get(r, "created_at")?,
        updated_at: get(r, "updated_at")?,
    })
}

fn nodes_json(nodes: &[NodeRoll]) -> String {
    serde_json::to_string(nodes).unwrap_or_else(|_| "[]".to_owned())
}

impl Store {
    /// Stores a new roll claimed by `node`; `Conflict` when the deployment has one running.
    pub async fn insert_roll(&self, row: &RollRow, node: &str) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        let running = sqlx::query("SELECT id FROM rolls WHERE deployment_id = $1 AND state = $2")
            .bind(&row.deployment_id)
            .bind(RollState::Running.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(other) = running {
            let id: String = get(&other, "id")?;
            return Err(StoreError::Conflict(format!(
                "roll {id} of deployment {} is running; a second",
                row.deployment_id
            )));
        }
        sqlx::query(&format!(
            "INSERT INTO rolls (id, deployment_id, image_id, instance_type, batch, health, \
             health_timeout_seconds, state, error, nodes, created_by, created_at, updated_at, \
             claimed_by, claimed_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, {})",
            self.now_ms()
        ))
        .bind(&row.id)
        .bind(&row.deployment_id)
        .bind(&row.image_id)
        .bind(&row.instance_type)
        .bind(row.batch)
        .bind(&row.health)
        .bind(row.health_timeout_seconds)
        .bind(row.state.as_str())
        .bind(&row.error)
        .bind(nodes_json(&row.nodes))
        .bind(&row.created_by)
        .bind(&row.created_at)
        .bind(&row.updated_at)
        .bind(node)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The deployment's latest roll.
    pub async fn latest_roll(&self, deployment_id: &str) -> Result<Option<RollRow>, StoreError> {
        sqlx::query(
            "SELECT * FROM rolls WHERE deployment_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1",
        )
        .bind(deployment_id)
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(roll)
        .transpose()
    }

    /// Running rolls whose claim is free, stale (older than `stale_ms`) or `node`'s own.
    pub async fn claimable_rolls(
        &self,
        node: &str,
        stale_ms: i64,
    ) -> Result<Vec<RollRow>, StoreError> {
        sqlx::query(&format!(
            "SELECT * FROM rolls WHERE state = $1 AND (claimed_by IS NULL OR claimed_by = $2 \
             OR claimed_at_ms < {} - $3) ORDER BY created_at",
            self.now_ms()
        ))
        .bind(RollState::Running.as_str())
        .bind(node)
        .bind(stale_ms)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(roll)
        .collect()
    }

    /// Claims a roll for `node` unless another node holds a claim fresher than `stale_ms`.
    pub async fn claim_roll(
        &self,
        id: &str,
        node: &str,
        stale_ms: i64,
    ) -> Result<bool, StoreError> {
        let now = self.now_ms();
        let done = sqlx::query(&format!(
            "UPDATE rolls SET claimed_by = $1, claimed_at_ms = {now} WHERE id = $2 \
             AND (claimed_by IS NULL OR claimed_by = $1 OR claimed_at_ms < {now} - $3)"
        ))
        .bind(node)
        .bind(id)
        .bind(stale_ms)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Records where the roll is and refreshes `node`'s claim; false (nothing saved) when the
    /// claim is no longer `node`'s.
    pub async fn save_roll(&self, row: &RollRow, node: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(&format!(
            "UPDATE rolls SET state = $1, error = $2, nodes = $3, updated_at = $4, \
             claimed_at_ms = {} WHERE id = $5 AND claimed_by = $6",
            self.now_ms()
        ))
        .bind(row.state.as_str())
        .bind(&row.error)
        .bind(nodes_json(&row.nodes))
        .bind(&row.updated_at)
        .bind(&row.id)
        .bind(node)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Gives up `node`'s claim on a roll it no longer drives.
    pub async fn release_roll(&self, id: &str, node: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE rolls SET claimed_by = NULL, claimed_at_ms = NULL WHERE id = $1 AND claimed_by = $2",
        )
        .bind(id)
        .bind(node)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Sets a roll's state (an operator's abort or resume) whoever holds it; the holder sees it
    /// at its next step.
    pub async fn set_roll_state(
        &self,
        id: &str,
        state: RollState,
        error: Option<&str>,
        at: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE rolls SET state = $1, error = $2, updated_at = $3 WHERE id = $4")
            .bind(state.as_str())
            .bind(error)
            .bind(at)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// A roll's current state, as another node may have set it.
    pub async fn roll_state(&self, id: &str) -> Result<Option<RollState>, StoreError> {
        let Some(row) = sqlx::query("SELECT state FROM rolls WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(get_state(&row, "state")?))
    }
}
