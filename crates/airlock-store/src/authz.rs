//! Users' policies and the audit log's rows.

use crate::{get, is_unique_violation, Store, StoreError};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

/// A named policy document.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PolicyRow {
    /// Its name.
    pub name: String,
    /// The JSON document as given.
    pub document: String,
    /// Who stored it.
    pub created_by: String,
    /// RFC 3339.
    pub created_at: String,
}

/// One audit record as stored: the shape the API shows, so what is read is what was hashed.
pub use airlock_api::audit::AuditRecord as AuditRow;

/// Which audit records a page holds besides their position.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuditFilter<'a> {
    /// Only this user's records.
    pub user: Option<&'a str>,
    /// Only records at or after this RFC 3339 time.
    pub since: Option<&'a str>,
}

fn policy(row: &AnyRow) -> Result<PolicyRow, StoreError> {
    Ok(PolicyRow {
        name: get(row, "name")?,
        document: get(row, "document")?,
        created_by: get(row, "created_by")?,
        created_at: get(row, "created_at")?,
    })
}

fn audit(row: &AnyRow) -> Result<AuditRow, StoreError> {
    Ok(AuditRow {
        seq: get(row, "seq")?,
        at: get(row, "at")?,
        user_name: get(row, "user_name")?,
        source_ip: get(row, "source_ip")?,
        action: get(row, "action")?,
        resources: get(row, "resources")?,
        decision: get(row, "decision")?,
        aws_request_id: get(row, "aws_request_id")?,
        outcome: get(row, "outcome")?,
        detail: get(row, "detail")?,
        prev_hash: get(row, "prev_hash")?,
        hash: get(row, "hash")?,
        chain: get(row, "chain")?,
    })
}

impl Store {
    /// Every user name, sorted.
    pub async fn user_names(&self) -> Result<Vec<String>, StoreError> {
        sqlx::query("SELECT name FROM users ORDER BY name")
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| get(r, "name"))
            .collect()
    }

    /// Removes a user (their tokens, policy attachments and access keys with their sealed
    /// secrets go with them).
    pub async fn delete_user(&self, name: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "DELETE FROM vault_records WHERE id IN \
             (SELECT 'access-key/' || access_key_id FROM access_keys WHERE user_name = $1)",
        )
        .bind(name)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM access_keys WHERE user_name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM user_policies WHERE user_name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM api_tokens WHERE user_name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM users WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Sets or clears the vault record of a user's TOTP secret.
    pub async fn set_user_totp(&self, name: &str, record: Option<&str>) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET totp_record = $1 WHERE name = $2")
            .bind(record)
            .bind(name)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The vault record of a user's TOTP secret, if they enabled it.
    pub async fn user_totp(&self, name: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT totp_record FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        Ok(match row {
            Some(r) => get(&r, "totp_record")?,
            None => None,
        })
    }

    /// Adds or replaces a named policy.
    pub async fn put_policy(&self, row: &PolicyRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO policies (name, document, created_by, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET document = excluded.document",
        )
        .bind(&row.name)
        .bind(&row.document)
        .bind(&row.created_by)
        .bind(&row.created_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// A policy by name.
    pub async fn policy(&self, name: &str) -> Result<Option<PolicyRow>, StoreError> {
        sqlx::query("SELECT * FROM policies WHERE name = $1")
            .bind(name)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(policy)
            .transpose()
    }

    /// Every policy, by name.
    pub async fn policies(&self) -> Result<Vec<PolicyRow>, StoreError> {
        sqlx::query("SELECT * FROM policies ORDER BY name")
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(policy)
            .collect()
    }

    /// Deletes a policy that no user has attached; `Conflict` if one has.
    pub async fn delete_policy(&self, name: &str) -> Result<bool, StoreError> {
        let used = sqlx::query("SELECT COUNT(*) AS n FROM user_policies WHERE policy_name = $1")
            .bind(name)
            .fetch_one(self.pool())
            .await?;
        if get::<i64>(&used, "n")? > 0 {
            return Err(StoreError::Conflict(format!(
                "policy {name:?} is attached to users; detach it first"
            )));
        }
        let done = sqlx::query("DELETE FROM policies WHERE name = $1")
            .bind(name)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Attaches a policy to a user (idempotent).
    pub async fn attach_policy(&self, user: &str, policy: &str) -> Result<(), StoreError> {
        let result =
            sqlx::query("INSERT INTO user_policies (user_name, policy_name) VALUES ($1, $2)")
                .bind(user)
                .bind(policy)
                .execute(self.pool())
                .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Detaches a policy; false if it was not attached.
    pub async fn detach_policy(&self, user: &str, policy: &str) -> Result<bool, StoreError> {
        let done =
            sqlx::query("DELETE FROM user_policies WHERE user_name = $1 AND policy_name = $2")
                .bind(user)
                .bind(policy)
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The policies attached to a user, by name.
    pub async fn user_policies(&self, user: &str) -> Result<Vec<PolicyRow>, StoreError> {
        sqlx::query(
            "SELECT p.* FROM policies p JOIN user_policies u ON u.policy_name = p.name \
             WHERE u.user_name = $1 ORDER BY p.name",
        )
        .bind(user)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(policy)
        .collect()
    }

    /// The newest audit record, if any.
    pub async fn last_audit(&self) -> Result<Option<AuditRow>, StoreError> {
        sqlx::query("SELECT * FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(audit)
            .transpose()
    }

    /// Whether any audit record is chained with `kind` (read once, when the audit key is made).
    pub async fn audit_has_chain(&self, kind: &str) -> Result<bool, StoreError> {
        Ok(
            sqlx::query("SELECT seq FROM audit_log WHERE chain = $1 LIMIT 1")
                .bind(kind)
                .fetch_optional(self.pool())
                .await?
                .is_some(),
        )
    }

    /// Appends a record whose `seq` must be the next one; `Conflict` if another writer took it.
    pub async fn insert_audit(&self, row: &AuditRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_log (seq, at, user_name, source_ip, action, resources, decision, \
             aws_request_id, outcome, detail, prev_hash, hash, chain) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(row.seq)
        .bind(&row.at)
        .bind(&row.user_name)
        .bind(&row.source_ip)
        .bind(&row.action)
        .bind(&row.resources)
        .bind(&row.decision)
        .bind(&row.aws_request_id)
        .bind(&row.outcome)
        .bind(&row.detail)
        .bind(&row.prev_hash)
        .bind(&row.hash)
        .bind(&row.chain)
        .execute(self.pool())
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict(format!("audit record {}", row.seq))
            } else {
                StoreError::Sql(e)
            }
        })?;
        Ok(())
    }

    /// At most `limit` audit records with a `seq` above `after`, in order: keyset paging on the
    /// primary key (or on `(user_name, seq)` for one user's records), so a page never reads or
    /// holds the records before it.
    pub async fn audit_page(
        &self,
        after: i64,
        limit: u32,
        filter: AuditFilter<'_>,
    ) -> Result<Vec<AuditRow>, StoreError> {
        // Conditions are left out rather than written `$n IS NULL OR …`, which would keep the
        // planner from using the user index.
        let mut sql = "SELECT * FROM audit_log WHERE seq > $1".to_owned();
        let mut params = 1;
        for (column, value) in [("user_name =", filter.user), ("at >=", filter.since)] {
            if value.is_some() {
                params += 1;
                sql.push_str(&format!(" AND {column} ${params}"));
            }
        }
        sql.push_str(&format!(" ORDER BY seq LIMIT ${}", params + 1));
        let mut query = sqlx::query(&sql).bind(after);
        for value in [filter.user, filter.since].into_iter().flatten() {
            query = query.bind(value);
        }
        query
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(audit)
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::records::tests::store;

    fn row(seq: i64, user: &str) -> AuditRow {
        AuditRow {
            seq,
            at: format!("2026-01-01T00:00:{:02}.000Z", seq),
            user_name: user.into(),
            source_ip: None,
            action: "airlock:ListUsers".into(),
            resources: "[]".into(),
            decision: "allowed".into(),
            aws_request_id: None,
            outcome: "allowed".into(),
            detail: None,
            prev_hash: String::new(),
            hash: format!("h{seq}"),
            chain: "hmac-sha256".into(),
        }
    }

    #[tokio::test]
    async fn pages_follow_seq_and_filters() {
        let (_dir, store) = store().await;
        for seq in 1..=7 {
            let user = if seq % 2 == 0 { "bob" } else { "ana" };
            store.insert_audit(&row(seq, user)).await.unwrap();
        }
        let seqs = |rows: Vec<AuditRow>| rows.iter().map(|r| r.seq).collect::<Vec<_>>();
        let all = AuditFilter::default();
        assert_eq!(seqs(store.audit_page(0, 3, all).await.unwrap()), [1, 2, 3]);
        assert_eq!(seqs(store.audit_page(3, 3, all).await.unwrap()), [4, 5, 6]);
        assert_eq!(seqs(store.audit_page(6, 3, all).await.unwrap()), [7]);
        let bob = AuditFilter {
            user: Some("bob"),
            since: None,
        };
        assert_eq!(seqs(store.audit_page(2, 10, bob).await.unwrap()), [4, 6]);
        let late = AuditFilter {
            user: None,
            since: Some("2026-01-01T00:00:05.000Z"),
        };
        assert_eq!(
            seqs(store.audit_page(0, 10, late).await.unwrap()),
            [5, 6, 7]
        );
        assert_eq!(
            store.audit_page(0, 1, all).await.unwrap()[0].chain,
            "hmac-sha256"
        );
    }

    #[tokio::test]
    async fn records_written_before_the_chain_column_are_plain_sha256() {
        let (_dir, store) = store().await;
        sqlx::query(
            "INSERT INTO audit_log (seq, at, user_name, action, resources, decision, outcome, \
             prev_hash, hash) VALUES (1, 't', 'ana', 'a', '[]', 'allowed', 'ok', 'p', 'h')",
        )
        .execute(store.pool())
        .await
        .unwrap();
        assert_eq!(store.last_audit().await.unwrap().unwrap().chain, "sha256");
    }
}
