//! The rows the console keeps and the queries over them.

use crate::{get, get_state, is_unique_violation, Store, StoreError};
use airlock_api::state::DeploymentState;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

/// A console user.
#[derive(Debug, Clone)]
pub struct UserRow {
    /// Login name.
    pub name: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// RFC 3339.
    pub created_at: String,
}

/// What a token stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    /// The user it logs in as.
    pub user_name: String,
    /// RFC 3339.
    pub expires_at: String,
    /// Whether the login passed a second factor.
    pub mfa: bool,
}

/// A stored AWS account: everything but the secret, which lives sealed in `vault_records`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AccountRow {
    /// The console's name for it.
    pub name: String,
    /// Default region.
    pub region: String,
    /// EC2/STS endpoint when not AWS's own.
    pub endpoint_url: Option<String>,
    /// The access key id (public half).
    pub access_key_id: String,
    /// Id of the vault record holding the secret access key.
    pub secret_record: String,
    /// Role assumed before each call.
    pub role_arn: Option<String>,
    /// External id for the role.
    pub external_id: Option<String>,
    /// The 12-digit account id STS reported.
    pub aws_account_id: String,
    /// The caller ARN STS reported.
    pub caller_arn: String,
    /// Who added it.
    pub created_by: String,
    /// RFC 3339.
    pub created_at: String,
    /// Last successful GetCallerIdentity, RFC 3339.
    pub verified_at: String,
    /// When IAM created the current key, RFC 3339, if known.
    pub key_created_at: Option<String>,
}

/// A sealed secret as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultRow {
    /// The record id (bound into the ciphertext).
    pub id: String,
    /// The master key that wraps its data key.
    pub key_id: String,
    /// The vault's text encoding of the sealed record.
    pub sealed: String,
}

/// A deployment: one request for N instances of an image.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeploymentRow {
    /// e.g. `dep-3f9a…`.
    pub id: String,
    /// The caller's idempotency token: the same token finds the same deployment.
    pub client_token: String,
    /// The account it runs in.
    pub account: String,
    /// The deployment spec as JSON (no secrets).
    pub spec: String,
    /// How many instances it should have.
    pub desired_count: i64,
    /// Bumped on every scale, so each launch has its own EC2 client token.
    pub generation: i64,
    /// Where it is on its way to its desired count.
    pub state: DeploymentState,
    /// Why it failed, with AWS's code and message.
    pub error: Option<String>,
    /// Who deployed it.
    pub created_by: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// The IAM session policy of a scoped deployment's credentials.
    pub session_policy: Option<String>,
}

/// One instance of a deployment, as last seen.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeploymentInstanceRow {
    /// e.g. `i-0abc…`.
    pub instance_id: String,
    /// EC2 state name.
    pub state: String,
    /// Private IPv4.
    pub private_ip: Option<String>,
    /// Public IPv4.
    pub public_ip: Option<String>,
    /// RFC 3339.
    pub launched_at: Option<String>,
}

fn user(row: &AnyRow) -> Result<UserRow, StoreError> {
    Ok(UserRow {
        name: get(row, "name")?,
        password_hash: get(row, "password_hash")?,
        created_at: get(row, "created_at")?,
    })
}

fn account(row: &AnyRow) -> Result<AccountRow, StoreError> {
    Ok(AccountRow {
        name: get(row, "name")?,
        region: get(row, "region")?,
        endpoint_url: get(row, "endpoint_url")?,
        access_key_id: get(row, "access_key_id")?,
        secret_record: get(row, "secret_record")?,
        role_arn: get(row, "role_arn")?,
        external_id: get(row, "external_id")?,
        aws_account_id: get(row, "aws_account_id")?,
        caller_arn: get(row, "caller_arn")?,
        created_by: get(row, "created_by")?,
        created_at: get(row, "created_at")?,
        verified_at: get(row, "verified_at")?,
        key_created_at: get(row, "key_created_at")?,
    })
}

fn deployment(row: &AnyRow) -> Result<DeploymentRow, StoreError> {
    Ok(DeploymentRow {
        id: get(row, "id")?,
        client_token: get(row, "client_token")?,
        account: get(row, "account")?,
        spec: get(row, "spec")?,
        desired_count: get(row, "desired_count")?,
        generation: get(row, "generation")?,
        state: get_state(row, "state")?,
        error: get(row, "error")?,
        created_by: get(row, "created_by")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        session_policy: get(row, "session_policy")?,
    })
}

fn deployment_instance(row: &AnyRow) -> Result<DeploymentInstanceRow, StoreError> {
    Ok(DeploymentInstanceRow {
        instance_id: get(row, "instance_id")?,
        state: get(row, "state")?,
        private_ip: get(row, "private_ip")?,
        public_ip: get(row, "public_ip")?,
        launched_at: get(row, "launched_at")?,
    })
}

fn vault(row: &AnyRow) -> Result<VaultRow, StoreError> {
    Ok(VaultRow {
        id: get(row, "id")?,
        key_id: get(row, "key_id")?,
        sealed: get(row, "sealed")?,
    })
}

impl Store {
    // ---- users and tokens ----

    /// Number of users; zero means a first start.
    pub async fn count_users(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(self.pool())
            .await?;
        get(&row, "n")
    }

    /// Adds a user; `Conflict` if the name is taken.
    pub async fn insert_user(&self, row: &UserRow) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO users (name, password_hash, created_at) VALUES ($1, $2, $3)")
            .bind(&row.name)
            .bind(&row.password_hash)
            .bind(&row.created_at)
            .execute(self.pool())
            .await
            .map_err(|e| conflict(e, format!("user {:?}", row.name)))?;
        Ok(())
    }

    /// A user by name.
    pub async fn user(&self, name: &str) -> Result<Option<UserRow>, StoreError> {
        sqlx::query("SELECT name, password_hash, created_at FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(user)
            .transpose()
    }

    /// Stores an API token by its hash.
    pub async fn insert_token(
        &self,
        token_hash: &str,
        user_name: &str,
        created_at: &str,
        expires_at: &str,
        mfa: bool,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_tokens (token_hash, user_name, created_at, expires_at, mfa) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(user_name)
        .bind(created_at)
        .bind(expires_at)
        .bind(i64::from(mfa))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The user owning a token hash.
    pub async fn token_user(&self, token_hash: &str) -> Result<Option<TokenRow>, StoreError> {
        let row =
            sqlx::query("SELECT user_name, expires_at, mfa FROM api_tokens WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_optional(self.pool())
                .await?;
        row.map(|r| {
            Ok(TokenRow {
                user_name: get(&r, "user_name")?,
                expires_at: get(&r, "expires_at")?,
                mfa: get::<i64>(&r, "mfa")? != 0,
            })
        })
        .transpose()
    }

    /// Revokes a token.
    pub async fn delete_token(&self, token_hash: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM api_tokens WHERE token_hash = $1")
            .bind(token_hash)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    // ---- vault records ----

    /// Adds or replaces a sealed record.
    pub async fn put_sealed(&self, row: &VaultRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO vault_records (id, key_id, sealed) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET key_id = excluded.key_id, sealed = excluded.sealed",
        )
        .bind(&row.id)
        .bind(&row.key_id)
        .bind(&row.sealed)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Stores a sealed record only if none has its id (a secret generated once, which console
    /// nodes starting together must agree on). Returns whether it was stored.
    pub async fn insert_sealed(&self, row: &VaultRow) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO vault_records (id, key_id, sealed) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&row.id)
        .bind(&row.key_id)
        .bind(&row.sealed)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A sealed record by id.
    pub async fn sealed(&self, id: &str) -> Result<Option<VaultRow>, StoreError> {
        sqlx::query("SELECT id, key_id, sealed FROM vault_records WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(vault)
            .transpose()
    }

    /// Every sealed record (for key rotation).
    pub async fn all_sealed(&self) -> Result<Vec<VaultRow>, StoreError> {
        sqlx::query("SELECT id, key_id, sealed FROM vault_records ORDER BY id")
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(vault)
            .collect()
    }

    /// Replaces a sealed record only if it still holds `old` (compare-and-swap), so a rotation
    /// never overwrites a secret changed under it. Returns whether it replaced.
    pub async fn replace_sealed(&self, old: &VaultRow, new: &VaultRow) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE vault_records SET key_id = $1, sealed = $2 WHERE id = $3 AND sealed = $4",
        )
        .bind(&new.key_id)
        .bind(&new.sealed)
        .bind(&old.id)
        .bind(&old.sealed)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes a sealed record.
    pub async fn delete_sealed(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM vault_records WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    // ---- accounts ----

    /// Adds an account and its sealed secret together: both or neither.
    pub async fn insert_account(
        &self,
        row: &AccountRow,
        secret: &VaultRow,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO vault_records (id, key_id, sealed) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET key_id = excluded.key_id, sealed = excluded.sealed",
        )
        .bind(&secret.id)
        .bind(&secret.key_id)
        .bind(&secret.sealed)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO accounts (name, region, endpoint_url, access_key_id, secret_record, role_arn, \
             external_id, aws_account_id, caller_arn, created_by, created_at, verified_at, \
             key_created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&row.name)
        .bind(&row.region)
        .bind(&row.endpoint_url)
        .bind(&row.access_key_id)
        .bind(&row.secret_record)
        .bind(&row.role_arn)
        .bind(&row.external_id)
        .bind(&row.aws_account_id)
        .bind(&row.caller_arn)
        .bind(&row.created_by)
        .bind(&row.created_at)
        .bind(&row.verified_at)
        .bind(&row.key_created_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict(e, format!("account {:?}", row.name)))?;
        tx.commit().await?;
        Ok(())
    }

    /// An account by name.
    pub async fn account(&self, name: &str) -> Result<Option<AccountRow>, StoreError> {
        sqlx::query("SELECT * FROM accounts WHERE name = $1")
            .bind(name)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(account)
            .transpose()
    }

    /// Every account, by name.
    pub async fn accounts(&self) -> Result<Vec<AccountRow>, StoreError> {
        sqlx::query("SELECT * FROM accounts ORDER BY name")
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(account)
            .collect()
    }

    /// Records a successful verification.
    pub async fn mark_account_verified(
        &self,
        name: &str,
        aws_account_id: &str,
        caller_arn: &str,
        at: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE accounts SET aws_account_id = $1, caller_arn = $2, verified_at = $3 WHERE name = $4",
        )
        .bind(aws_account_id)
        .bind(caller_arn)
        .bind(at)
        .bind(name)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Removes an account and its sealed secret together. Returns false if there was none.
    pub async fn delete_account(&self, name: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let Some(row) = sqlx::query("SELECT * FROM accounts WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(false);
        };
        let row = account(&row)?;
        sqlx::query("DELETE FROM accounts WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM vault_records WHERE id = $1")
            .bind(&row.secret_record)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    // ---- deployments ----

    /// Records a new deployment; `Conflict` if its id or client token exists.
    pub async fn insert_deployment(&self, row: &DeploymentRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO deployments (id, client_token, account, spec, desired_count, generation, state, \
             error, created_by, created_at, updated_at, session_policy) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&row.id)
        .bind(&row.client_token)
        .bind(&row.account)
        .bind(&row.spec)
        .bind(row.desired_count)
        .bind(row.generation)
        .bind(row.state.as_str())
        .bind(&row.error)
        .bind(&row.created_by)
        .bind(&row.created_at)
        .bind(&row.updated_at)
        .bind(&row.session_policy)
        .execute(self.pool())
        .await
        .map_err(|e| conflict(e, format!("deployment with client token {:?}", row.client_token)))?;
        Ok(())
    }

    /// A deployment by id.
    pub async fn deployment(&self, id: &str) -> Result<Option<DeploymentRow>, StoreError> {
        sqlx::query("SELECT * FROM deployments WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(deployment)
            .transpose()
    }

    /// A deployment by the client token it was created with.
    pub async fn deployment_by_token(
        &self,
        client_token: &str,
    ) -> Result<Option<DeploymentRow>, StoreError> {
        sqlx::query("SELECT * FROM deployments WHERE client_token = $1")
            .bind(client_token)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(deployment)
            .transpose()
    }

    /// Every deployment, newest first.
    pub async fn deployments(&self) -> Result<Vec<DeploymentRow>, StoreError> {
        sqlx::query("SELECT * FROM deployments ORDER BY created_at DESC, id")
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(deployment)
            .collect()
    }

    /// Deployments not yet settled (to resume after a restart).
    pub async fn unsettled_deployments(&self) -> Result<Vec<DeploymentRow>, StoreError> {
        sqlx::query("SELECT * FROM deployments WHERE state IN ($1, $2) ORDER BY created_at")
            .bind(DeploymentState::Pending.as_str())
            .bind(DeploymentState::Launching.as_str())
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(deployment)
            .collect()
    }

    /// Sets state and error.
    pub async fn set_deployment_state(
        &self,
        id: &str,
        state: DeploymentState,
        error: Option<&str>,
        at: &str,
    ) -> Result<(), StoreError> {
        let mut conn = self.pool().acquire().await?;
        let change = StateChange { state, error, at };
        set_state_on(&mut conn, id, &change).await
    }

    /// Replaces a deployment's stored spec (after a roll to a new image).
    pub async fn set_deployment_spec(
        &self,
        id: &str,
        spec: &str,
        at: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE deployments SET spec = $1, updated_at = $2 WHERE id = $3")
            .bind(spec)
            .bind(at)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Sets a new desired count and bumps the generation; returns the new generation.
    pub async fn rescale_deployment(
        &self,
        id: &str,
        desired_count: i64,
        at: &str,
    ) -> Result<i64, StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "UPDATE deployments SET desired_count = $1, generation = generation + 1, state = $2, \
             error = NULL, updated_at = $3 WHERE id = $4",
        )
        .bind(desired_count)
        .bind(DeploymentState::Pending.as_str())
        .bind(at)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query("SELECT generation FROM deployments WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        get(&row, "generation")
    }

    /// Replaces the recorded instances of a deployment with what EC2 reports now, and sets its
    /// state in the same transaction when `change` says so (one commit, not two).
    pub async fn set_deployment_instances(
        &self,
        id: &str,
        instances: &[DeploymentInstanceRow],
        change: Option<&StateChange<'_>>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM deployment_instances WHERE deployment_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        for i in instances {
            sqlx::query(
                "INSERT INTO deployment_instances (deployment_id, instance_id, state, private_ip, public_ip, \
                 launched_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id)
            .bind(&i.instance_id)
            .bind(&i.state)
            .bind(&i.private_ip)
            .bind(&i.public_ip)
            .bind(&i.launched_at)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(change) = change {
            set_state_on(&mut tx, id, change).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The recorded instances of a deployment.
    pub async fn deployment_instances(
        &self,
        id: &str,
    ) -> Result<Vec<DeploymentInstanceRow>, StoreError> {
        sqlx::query(
            "SELECT * FROM deployment_instances WHERE deployment_id = $1 ORDER BY launched_at, instance_id",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(deployment_instance)
        .collect()
    }
}

/// A deployment's new state, its error, and when.
#[derive(Debug, Clone, Copy)]
pub struct StateChange<'a> {
    /// The new state.
    pub state: DeploymentState,
    /// Why it failed, if it did.
    pub error: Option<&'a str>,
    /// RFC 3339.
    pub at: &'a str,
}

async fn set_state_on(
    conn: &mut sqlx::AnyConnection,
    id: &str,
    change: &StateChange<'_>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE deployments SET state = $1, error = $2, updated_at = $3 WHERE id = $4")
        .bind(change.state.as_str())
        .bind(change.error)
        .bind(change.at)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

fn conflict(err: sqlx::Error, what: String) -> StoreError {
    if is_unique_violation(&err) {
        StoreError::Conflict(what)
    } else {
        StoreError::Sql(err)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    /// A new SQLite store in a directory of its own.
    pub(crate) async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("a.db").display());
        (dir, Store::open(&url).await.unwrap())
    }

    #[tokio::test]
    async fn sqlite_file_is_private_and_migrated() {
        let (dir, store) = store().await;
        assert_eq!(store.count_users().await.unwrap(), 0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("a.db"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[tokio::test]
    async fn a_sealed_record_is_inserted_once() {
        let (_dir, store) = store().await;
        let first = VaultRow {
            id: "audit:key".into(),
            key_id: "k1".into(),
            sealed: "one".into(),
        };
        let second = VaultRow {
            sealed: "two".into(),
            ..first.clone()
        };
        assert!(store.insert_sealed(&first).await.unwrap());
        assert!(!store.insert_sealed(&second).await.unwrap());
        assert_eq!(store.sealed("audit:key").await.unwrap().unwrap(), first);
    }

    #[tokio::test]
    async fn duplicate_user_is_a_conflict() {
        let (_dir, store) = store().await;
        let row = UserRow {
            name: "ana".into(),
            password_hash: "h".into(),
            created_at: "t".into(),
        };
        store.insert_user(&row).await.unwrap();
        let err = store.insert_user(&row).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    }

    #[tokio::test]
    async fn replace_sealed_is_compare_and_swap() {
        let (_dir, store) = store().await;
        let a = VaultRow {
            id: "r".into(),
            key_id: "k1".into(),
            sealed: "one".into(),
        };
        store.put_sealed(&a).await.unwrap();
        let b = VaultRow {
            sealed: "two".into(),
            key_id: "k2".into(),
            ..a.clone()
        };
        assert!(store.replace_sealed(&a, &b).await.unwrap());
        assert!(!store.replace_sealed(&a, &b).await.unwrap());
        assert_eq!(store.sealed("r").await.unwrap().unwrap(), b);
    }

    #[tokio::test]
    async fn unsupported_url_is_named() {
        let err = Store::open("mysql://x").await.unwrap_err();
        assert!(err.to_string().contains("mysql://x"));
    }
}
