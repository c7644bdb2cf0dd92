//! Refresh secrets of scoped deployments and account key rotation.
//!
//! Every secret is stored as its SHA-256 only. The state changes that must not race (an
//! instance enrolling, a secret being rotated) are single conditional statements inside a
//! transaction, so two requests presenting the same secret cannot both win.

use crate::limits::{keep_answer_on, KeepAnswer};
use crate::{get, get_state, is_unique_violation, Store, StoreError, VaultRow};
use airlock_api::state::{RefreshSecretKind, RefreshSecretState};
use sqlx::any::AnyRow;

/// A refresh secret as stored (its hash only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshSecretRow {
    /// SHA-256 of the secret, hex.
    pub secret_hash: String,
    /// The deployment it belongs to.
    pub deployment_id: String,
    /// `None` for an enrolment secret shared by one launch; the instance otherwise.
    pub instance_id: Option<String>,
    /// An enrolment secret or an instance's own.
    pub kind: RefreshSecretKind,
    /// Whether it may still be exchanged.
    pub state: RefreshSecretState,
    /// RFC 3339; `None` when it does not expire by time.
    pub expires_at: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, when it was rotated away.
    pub used_at: Option<String>,
}

fn refresh_secret(row: &AnyRow) -> Result<RefreshSecretRow, StoreError> {
    Ok(RefreshSecretRow {
        secret_hash: get(row, "secret_hash")?,
        deployment_id: get(row, "deployment_id")?,
        instance_id: get(row, "instance_id")?,
        kind: get_state(row, "kind")?,
        state: get_state(row, "state")?,
        expires_at: get(row, "expires_at")?,
        created_at: get(row, "created_at")?,
        used_at: get(row, "used_at")?,
    })
}

/// How an exchange of a secret for a new one ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exchange {
    /// The old secret was retired (or the instance enrolled) and the new one stored.
    Done,
    /// Someone else used the secret first, or the instance had already enrolled.
    AlreadyUsed,
}

impl Store {
    /// Stores a new refresh secret.
    pub async fn insert_refresh_secret(&self, row: &RefreshSecretRow) -> Result<(), StoreError> {
        let mut conn = self.pool().acquire().await?;
        insert(&mut conn, row).await
    }

    /// The refresh secret with this hash, whatever its state.
    pub async fn refresh_secret(&self, hash: &str) -> Result<Option<RefreshSecretRow>, StoreError> {
        sqlx::query("SELECT * FROM refresh_secrets WHERE secret_hash = $1")
            .bind(hash)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(refresh_secret)
            .transpose()
    }

    /// Whether the instance has already exchanged an enrolment secret.
    pub async fn instance_enrolled(&self, instance_id: &str) -> Result<bool, StoreError> {
        Ok(
            sqlx::query("SELECT instance_id FROM enrolled_instances WHERE instance_id = $1")
                .bind(instance_id)
                .fetch_optional(self.pool())
                .await?
                .is_some(),
        )
    }

    /// Enrols `instance_id` and stores its first per-instance secret, once per instance; the
    /// answer given for it is kept in the same transaction, so both commit or neither does.
    pub async fn enrol_instance(
        &self,
        instance_id: &str,
        first: &RefreshSecretRow,
        at: &str,
        answer: Option<&KeepAnswer<'_>>,
    ) -> Result<Exchange, StoreError> {
        let mut tx = self.pool().begin().await?;
        let enrolled = sqlx::query(
            "INSERT INTO enrolled_instances (instance_id, deployment_id, enrolled_at) VALUES ($1, $2, $3)",
        )
        .bind(instance_id)
        .bind(&first.deployment_id)
        .bind(at)
        .execute(&mut *tx)
        .await;
        match enrolled {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Ok(Exchange::AlreadyUsed),
            Err(e) => return Err(e.into()),
        }
        insert(&mut tx, first).await?;
        if let Some(answer) = answer {
            keep_answer_on(&mut tx, answer).await?;
        }
        tx.commit().await?;
        Ok(Exchange::Done)
    }

    /// Retires the active per-instance secret `old_hash` and stores `next` in its place; the
    /// answer given for it is kept in the same transaction, so both commit or neither does.
    pub async fn rotate_refresh_secret(
        &self,
        old_hash: &str,
        next: &RefreshSecretRow,
        at: &str,
        answer: Option<&KeepAnswer<'_>>,
    ) -> Result<Exchange, StoreError> {
        let mut tx = self.pool().begin().await?;
        let retired = sqlx::query(
            "UPDATE refresh_secrets SET state = $1, used_at = $2 \
             WHERE secret_hash = $3 AND kind = $4 AND state = $5",
        )
        .bind(RefreshSecretState::Used.as_str())
        .bind(at)
        .bind(old_hash)
        .bind(RefreshSecretKind::Instance.as_str())
        .bind(RefreshSecretState::Active.as_str())
        .execute(&mut *tx)
        .await?;
        if retired.rows_affected() != 1 {
            return Ok(Exchange::AlreadyUsed);
        }
        insert(&mut tx, next).await?;
        if let Some(answer) = answer {
            keep_answer_on(&mut tx, answer).await?;
        }
        tx.commit().await?;
        Ok(Exchange::Done)
    }

    /// Revokes the deployment's active secrets: all of them, or only those of `instances`
    /// (enrolment secrets too when `instances` is `None`), and deletes their agent tokens.
    /// Returns how many secrets were revoked.
    pub async fn revoke_refresh_secrets(
        &self,
        deployment_id: &str,
        instances: Option<&[String]>,
        at: &str,
    ) -> Result<u64, StoreError> {
        let mut revoked = 0;
        match instances {
            None => {
                revoked += sqlx::query(
                    "UPDATE refresh_secrets SET state = $1, used_at = $2 \
                     WHERE deployment_id = $3 AND state = $4",
                )
                .bind(RefreshSecretState::Revoked.as_str())
                .bind(at)
                .bind(deployment_id)
                .bind(RefreshSecretState::Active.as_str())
                .execute(self.pool())
                .await?
                .rows_affected();
                sqlx::query("DELETE FROM agent_tokens WHERE deployment_id = $1")
                    .bind(deployment_id)
                    .execute(self.pool())
                    .await?;
            }
            Some(ids) => {
                for id in ids {
                    revoked += sqlx::query(
                        "UPDATE refresh_secrets SET state = $1, used_at = $2 \
                         WHERE deployment_id = $3 AND instance_id = $4 AND state = $5",
                    )
                    .bind(RefreshSecretState::Revoked.as_str())
                    .bind(at)
                    .bind(deployment_id)
                    .bind(id)
                    .bind(RefreshSecretState::Active.as_str())
                    .execute(self.pool())
                    .await?
                    .rows_affected();
                    sqlx::query(
                        "DELETE FROM agent_tokens WHERE deployment_id = $1 AND instance_id = $2",
                    )
                    .bind(deployment_id)
                    .bind(id)
                    .execute(self.pool())
                    .await?;
                }
            }
        }
        Ok(revoked)
    }

    /// Replaces an account's key: the new key id, when IAM created it, and its sealed secret,
    /// together. Returns false if the account no longer exists.
    pub async fn replace_account_key(
        &self,
        name: &str,
        access_key_id: &str,
        key_created_at: &str,
        secret: &VaultRow,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let updated = sqlx::query(
            "UPDATE accounts SET access_key_id = $1, key_created_at = $2 WHERE name = $3 AND secret_record = $4",
        )
        .bind(access_key_id)
        .bind(key_created_at)
        .bind(name)
        .bind(&secret.id)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query("UPDATE vault_records SET key_id = $1, sealed = $2 WHERE id = $3")
            .bind(&secret.key_id)
            .bind(&secret.sealed)
            .bind(&secret.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }
}

async fn insert(conn: &mut sqlx::AnyConnection, row: &RefreshSecretRow) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO refresh_secrets (secret_hash, deployment_id, instance_id, kind, state, \
         expires_at, created_at, used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&row.secret_hash)
    .bind(&row.deployment_id)
    .bind(&row.instance_id)
    .bind(row.kind.as_str())
    .bind(row.state.as_str())
    .bind(&row.expires_at)
    .bind(&row.created_at)
    .bind(&row.used_at)
    .execute(conn)
    .await?;
    Ok(())
}
