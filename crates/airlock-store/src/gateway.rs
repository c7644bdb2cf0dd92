//! Stored gateway configurations: named Gloo YAML documents, as the console validated them.

use crate::{get, Store, StoreError};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

/// One named gateway configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GatewayConfigRow {
    /// Its name.
    pub name: String,
    /// The YAML text as given (one or more documents).
    pub yaml: String,
    /// The console user who wrote it last.
    pub updated_by: String,
    /// RFC 3339.
    pub updated_at: String,
}

fn row(r: &AnyRow) -> Result<GatewayConfigRow, StoreError> {
    Ok(GatewayConfigRow {
        name: get(r, "name")?,
        yaml: get(r, "yaml")?,
        updated_by: get(r, "updated_by")?,
        updated_at: get(r, "updated_at")?,
    })
}

impl Store {
    /// Adds or replaces a gateway configuration.
    pub async fn put_gateway_config(&self, config: &GatewayConfigRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO gateway_configs (name, yaml, updated_by, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET yaml = excluded.yaml, \
             updated_by = excluded.updated_by, updated_at = excluded.updated_at",
        )
        .bind(&config.name)
        .bind(&config.yaml)
        .bind(&config.updated_by)
        .bind(&config.updated_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// A gateway configuration by name.
    pub async fn gateway_config(&self, name: &str) -> Result<Option<GatewayConfigRow>, StoreError> {
        sqlx::query("SELECT * FROM gateway_configs WHERE name = $1")
            .bind(name)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(row)
            .transpose()
    }

    /// Every gateway configuration, by name.
    pub async fn gateway_configs(&self) -> Result<Vec<GatewayConfigRow>, StoreError> {
        sqlx::query("SELECT * FROM gateway_configs ORDER BY name")
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(row)
            .collect()
    }

    /// Deletes a gateway configuration; false when there was none.
    pub async fn delete_gateway_config(&self, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM gateway_configs WHERE name = $1")
            .bind(name)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn gateway_configs_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = Store::open(&url).await.unwrap();
        let mut c = GatewayConfigRow {
            name: "web".into(),
            yaml: "kind: Upstream\n".into(),
            updated_by: "ana".into(),
            updated_at: "2026-01-01T00:00:00Z".into(),
        };
        store.put_gateway_config(&c).await.unwrap();
        c.yaml = "kind: VirtualService\n".into();
        c.updated_by = "bob".into();
        store.put_gateway_config(&c).await.unwrap();
        assert_eq!(store.gateway_config("web").await.unwrap(), Some(c.clone()));
        assert_eq!(store.gateway_configs().await.unwrap(), vec![c]);
        assert!(store.delete_gateway_config("web").await.unwrap());
        assert!(!store.delete_gateway_config("web").await.unwrap());
        assert_eq!(store.gateway_config("web").await.unwrap(), None);
    }
}

/// The endpoints one gateway reported last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayHealthRow {
    /// The gateway's name.
    pub gateway: String,
    /// When it reported, epoch milliseconds.
    pub reported_at_ms: i64,
    /// The report's endpoints, as JSON.
    pub endpoints: String,
}

impl Store {
    /// Keeps a gateway's latest report, deleting reports made before `forget_before_ms`, in one
    /// transaction. A report from a gateway not yet known is refused (`Ok(false)`) while
    /// `max_gateways` others have reported since then: names are not an unbounded table.
    pub async fn record_gateway_health(
        &self,
        row: &GatewayHealthRow,
        forget_before_ms: i64,
        max_gateways: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM gateway_health WHERE reported_at_ms < $1")
            .bind(forget_before_ms)
            .execute(&mut *tx)
            .await?;
        let known = sqlx::query("SELECT COUNT(*) AS n FROM gateway_health WHERE gateway = $1")
            .bind(&row.gateway)
            .fetch_one(&mut *tx)
            .await?;
        if get::<i64>(&known, "n")? == 0 {
            let all = sqlx::query("SELECT COUNT(*) AS n FROM gateway_health")
                .fetch_one(&mut *tx)
                .await?;
            if get::<i64>(&all, "n")? >= max_gateways {
                return Ok(false);
            }
        }
        sqlx::query(
            "INSERT INTO gateway_health (gateway, reported_at_ms, endpoints) VALUES ($1, $2, $3) \
             ON CONFLICT (gateway) DO UPDATE SET reported_at_ms = excluded.reported_at_ms, \
             endpoints = excluded.endpoints",
        )
        .bind(&row.gateway)
        .bind(row.reported_at_ms)
        .bind(&row.endpoints)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The latest report of every gateway that reported at or after `since_ms`.
    pub async fn gateway_health_since(
        &self,
        since_ms: i64,
    ) -> Result<Vec<GatewayHealthRow>, StoreError> {
        sqlx::query(
            "SELECT gateway, reported_at_ms, endpoints FROM gateway_health \
             WHERE reported_at_ms >= $1 ORDER BY gateway",
        )
        .bind(since_ms)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| {
            Ok(GatewayHealthRow {
                gateway: get(r, "gateway")?,
                reported_at_ms: get(r, "reported_at_ms")?,
                endpoints: get(r, "endpoints")?,
            })
        })
        .collect()
    }
}
