//! Instances by state per account over time: one row per account, minute and state, written by
//! the console that samples and read for the instances page's trend. Samples older than the
//! console's horizon are deleted as new ones come.

use crate::{get, Store, StoreError};

/// How many of one account's instances were in one state at one minute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateSampleRow {
    /// The account.
    pub account: String,
    /// The minute, epoch milliseconds.
    pub at_ms: i64,
    /// The EC2 state (`running`, `stopped`, …).
    pub state: String,
    /// How many instances.
    pub count: i64,
}

impl Store {
    /// Records one account's counts for a minute (replacing any of the same minute) and deletes
    /// every sample taken before `forget_before_ms`, in one transaction.
    pub async fn record_state_sample(
        &self,
        account: &str,
        at_ms: i64,
        counts: &[(String, i64)],
        forget_before_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "DELETE FROM instance_state_samples WHERE at_ms < $1 OR (account = $2 AND at_ms = $3)",
        )
        .bind(forget_before_ms)
        .bind(account)
        .bind(at_ms)
        .execute(&mut *tx)
        .await?;
        for (state, count) in counts {
            sqlx::query(
                "INSERT INTO instance_state_samples (account, at_ms, state, count) VALUES ($1, $2, $3, $4)",
            )
            .bind(account)
            .bind(at_ms)
            .bind(state)
            .bind(*count)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The samples of `accounts` taken at or after `since_ms`, oldest first.
    pub async fn state_samples(
        &self,
        accounts: &[String],
        since_ms: i64,
    ) -> Result<Vec<StateSampleRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT account, at_ms, state, count FROM instance_state_samples \
             WHERE at_ms >= $1 ORDER BY at_ms, account, state",
        )
        .bind(since_ms)
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::new();
        for r in &rows {
            let row = StateSampleRow {
                account: get(r, "account")?,
                at_ms: get(r, "at_ms")?,
                state: get(r, "state")?,
                count: get(r, "count")?,
            };
            if accounts.contains(&row.account) {
                out.push(row);
            }
        }
        Ok(out)
    }
}
