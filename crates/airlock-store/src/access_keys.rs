//! Airlock access keys: the row of each key; its secret is a sealed vault record stored and
//! removed with it, in one transaction, so there is never a key without its secret or a secret
//! left behind.

use crate::{get, get_state, Store, StoreError, VaultRow};
use airlock_api::state::AccessKeyStatus;
use sqlx::any::AnyRow;

/// An access key as stored (its secret is the vault record [`secret_record`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKeyRow {
    /// The key's id.
    pub access_key_id: String,
    /// The console user it acts as.
    pub user_name: String,
    /// Whether it may sign requests.
    pub status: AccessKeyStatus,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339; `None` when it does not expire.
    pub expires_at: Option<String>,
    /// RFC 3339.
    pub last_used_at: Option<String>,
    /// For an instance's key (credential mode `proxy`): whose instance, and from where it may
    /// be used. `None` for a user's own key.
    pub instance: Option<InstanceBinding>,
}

/// What binds an instance's key: its deployment (whose session policy it is held to), its
/// instance, and the one address it may sign requests from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceBinding {
    /// The deployment.
    pub deployment_id: String,
    /// The instance the key was issued to.
    pub instance_id: String,
    /// The instance's address the key was issued to.
    pub source_ip: String,
}

/// The vault record holding a key's secret.
pub fn secret_record(access_key_id: &str) -> String {
    format!("access-key/{access_key_id}")
}

fn access_key(row: &AnyRow) -> Result<AccessKeyRow, StoreError> {
    Ok(AccessKeyRow {
        access_key_id: get(row, "access_key_id")?,
        user_name: get(row, "user_name")?,
        status: get_state(row, "status")?,
        created_at: get(row, "created_at")?,
        expires_at: get(row, "expires_at")?,
        last_used_at: get(row, "last_used_at")?,
        instance: instance_binding(row)?,
    })
}

fn instance_binding(row: &AnyRow) -> Result<Option<InstanceBinding>, StoreError> {
    let deployment_id: Option<String> = get(row, "deployment_id")?;
    let instance_id: Option<String> = get(row, "instance_id")?;
    let source_ip: Option<String> = get(row, "source_ip")?;
    Ok(match (deployment_id, instance_id, source_ip) {
        (Some(deployment_id), Some(instance_id), Some(source_ip)) => Some(InstanceBinding {
            deployment_id,
            instance_id,
            source_ip,
        }),
        (None, None, None) => None,
        _ => {
            return Err(StoreError::Corrupt {
                what: "access_keys.deployment_id".into(),
                reason: "an instance key without its deployment, instance and address".into(),
            })
        }
    })
}

/// How many keys one user may hold, as in IAM (their instances' keys do not count).
pub const ACCESS_KEYS_PER_USER: i64 = 2;

/// Inserts the key's secret in the same transaction as its row.
async fn insert_secret(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    secret: &VaultRow,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO vault_records (id, key_id, sealed) VALUES ($1, $2, $3)")
        .bind(&secret.id)
        .bind(&secret.key_id)
        .bind(&secret.sealed)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Store {
    /// Stores a key and its sealed secret together, unless the user already holds
    /// [`ACCESS_KEYS_PER_USER`] keys. Returns whether it was stored.
    pub async fn insert_access_key(
        &self,
        row: &AccessKeyRow,
        secret: &VaultRow,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query(
            "INSERT INTO access_keys (access_key_id, user_name, status, created_at, expires_at) \
             SELECT $1, $2, $3, $4, $5 \
             WHERE (SELECT COUNT(*) FROM access_keys \
                    WHERE user_name = $6 AND deployment_id IS NULL) < $7",
        )
        .bind(&row.access_key_id)
        .bind(&row.user_name)
        .bind(row.status.as_str())
        .bind(&row.created_at)
        .bind(&row.expires_at)
        .bind(&row.user_name)
        .bind(ACCESS_KEYS_PER_USER)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        insert_secret(&mut tx, secret).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Stores an instance's key (`row.instance` set) and its sealed secret together; instance
    /// keys are not limited in number.
    pub async fn insert_instance_key(
        &self,
        row: &AccessKeyRow,
        secret: &VaultRow,
    ) -> Result<(), StoreError> {
        let Some(bound) = &row.instance else {
            return Err(StoreError::Corrupt {
                what: "access_keys.deployment_id".into(),
                reason: "an instance key needs its deployment, instance and address".into(),
            });
        };
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO access_keys (access_key_id, user_name, status, created_at, expires_at, \
             deployment_id, instance_id, source_ip) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&row.access_key_id)
        .bind(&row.user_name)
        .bind(row.status.as_str())
        .bind(&row.created_at)
        .bind(&row.expires_at)
        .bind(&bound.deployment_id)
        .bind(&bound.instance_id)
        .bind(&bound.source_ip)
        .execute(&mut *tx)
        .await?;
        insert_secret(&mut tx, secret).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes the keys of a deployment's instances, with their secrets: of every instance, or
    /// only of `instances`, keeping `except` (an instance's newest key when it rotates).
    /// Returns how many were deleted.
    pub async fn delete_instance_keys(
        &self,
        deployment_id: &str,
        instances: Option<&[String]>,
        except: Option<&str>,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool().begin().await?;
        let rows = sqlx::query(
            "SELECT access_key_id, instance_id FROM access_keys WHERE deployment_id = $1",
        )
        .bind(deployment_id)
        .fetch_all(&mut *tx)
        .await?;
        let mut deleted = 0;
        for row in &rows {
            let id: String = get(row, "access_key_id")?;
            let instance: Option<String> = get(row, "instance_id")?;
            let chosen = instances.is_none_or(|list| {
                instance
                    .as_ref()
                    .is_some_and(|i| list.iter().any(|l| l == i))
            });
            if !chosen || except == Some(id.as_str()) {
                continue;
            }
            deleted += sqlx::query("DELETE FROM access_keys WHERE access_key_id = $1")
                .bind(&id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query("DELETE FROM vault_records WHERE id = $1")
                .bind(secret_record(&id))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(deleted)
    }

    /// One key by id.
    pub async fn access_key(&self, id: &str) -> Result<Option<AccessKeyRow>, StoreError> {
        sqlx::query("SELECT * FROM access_keys WHERE access_key_id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(access_key)
            .transpose()
    }

    /// A user's own keys (not their instances'), oldest first.
    pub async fn access_keys_of(&self, user: &str) -> Result<Vec<AccessKeyRow>, StoreError> {
        sqlx::query(
            "SELECT * FROM access_keys WHERE user_name = $1 AND deployment_id IS NULL \
             ORDER BY created_at, access_key_id",
        )
        .bind(user)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(access_key)
        .collect()
    }

    /// Enables or disables a key; false when there is no such key.
    pub async fn set_access_key_status(
        &self,
        id: &str,
        status: AccessKeyStatus,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE access_keys SET status = $1 WHERE access_key_id = $2")
            .bind(status.as_str())
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Notes that the key signed an accepted request at `at`, writing at most once a minute per
    /// key (`minute_ago` is `at` less a minute) so a busy client does not write on every call.
    pub async fn touch_access_key(
        &self,
        id: &str,
        at: &str,
        minute_ago: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE access_keys SET last_used_at = $1 \
             WHERE access_key_id = $2 AND (last_used_at IS NULL OR last_used_at < $3)",
        )
        .bind(at)
        .bind(id)
        .bind(minute_ago)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Removes a key and its sealed secret; false when there is no such key.
    pub async fn delete_access_key(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query("DELETE FROM access_keys WHERE access_key_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM vault_records WHERE id = $1")
            .bind(secret_record(id))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::records::tests::store;
    use crate::UserRow;

    fn key(id: &str, instance: Option<&str>) -> AccessKeyRow {
        AccessKeyRow {
            access_key_id: id.into(),
            user_name: "ana".into(),
            status: AccessKeyStatus::Active,
            created_at: "2026-01-01T00:00:00.000Z".into(),
            expires_at: None,
            last_used_at: None,
            instance: instance.map(|i| InstanceBinding {
                deployment_id: "dep-1".into(),
                instance_id: i.into(),
                source_ip: "10.0.0.5".into(),
            }),
        }
    }

    fn secret(id: &str) -> VaultRow {
        VaultRow {
            id: secret_record(id),
            key_id: "k".into(),
            sealed: "sealed".into(),
        }
    }

    #[tokio::test]
    async fn instance_keys_do_not_count_against_the_user_and_go_with_their_instances() {
        let (_dir, store) = store().await;
        store
            .insert_user(&UserRow {
                name: "ana".into(),
                password_hash: "x".into(),
                created_at: "2026-01-01T00:00:00.000Z".into(),
            })
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO deployments (id, client_token, account, spec, desired_count, generation, \
             state, created_by, created_at, updated_at) \
             VALUES ('dep-1', 't', 'dev', '{}', 1, 0, 'running', 'ana', 'x', 'x')",
        )
        .execute(store.pool())
        .await
        .unwrap();
        for (id, instance) in [("I1", "i-1"), ("I2", "i-1"), ("I3", "i-2")] {
            let row = key(id, Some(instance));
            store.insert_instance_key(&row, &secret(id)).await.unwrap();
        }
        assert!(store
            .insert_access_key(&key("U1", None), &secret("U1"))
            .await
            .unwrap());
        assert!(store
            .insert_access_key(&key("U2", None), &secret("U2"))
            .await
            .unwrap());
        assert!(!store
            .insert_access_key(&key("U3", None), &secret("U3"))
            .await
            .unwrap());
        let listed: Vec<String> = store
            .access_keys_of("ana")
            .await
            .unwrap()
            .into_iter()
            .map(|k| k.access_key_id)
            .collect();
        assert_eq!(listed, ["U1", "U2"]);
        assert_eq!(
            store.access_key("I3").await.unwrap().unwrap().instance,
            key("I3", Some("i-2")).instance
        );

        // A rotation keeps the instance's newest key; revoking the instance deletes the rest.
        let one = ["i-1".to_owned()];
        let rotated = store.delete_instance_keys("dep-1", Some(&one), Some("I2"));
        assert_eq!(rotated.await.unwrap(), 1);
        assert!(store.access_key("I1").await.unwrap().is_none());
        assert!(store.access_key("I2").await.unwrap().is_some());
        assert_eq!(
            store
                .delete_instance_keys("dep-1", None, None)
                .await
                .unwrap(),
            2
        );
        assert!(store.access_key("I3").await.unwrap().is_none());
        assert!(store.access_key("U1").await.unwrap().is_some());
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM vault_records")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(left, 2, "the deleted keys' secrets stayed behind");
    }
}
