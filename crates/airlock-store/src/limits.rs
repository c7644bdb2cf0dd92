//! Limits several console nodes enforce together: failed attempts per throttle key, the
//! one-time-code step each user last logged in with, and the sealed answers of recent refresh
//! exchanges. Kept in the database so that a request refused (or a code used) at one node is
//! refused at every other.
//!
//! The store only keeps the numbers: when to wait, how long, and whether a kept answer applies
//! are the console's decisions. Times are epoch milliseconds, compared as integers, the same on
//! SQLite and PostgreSQL.

use crate::{get, Store, StoreError};
use sqlx::any::AnyRow;
use std::time::{SystemTime, UNIX_EPOCH};

/// A time as these tables keep it: milliseconds since the Unix epoch.
pub fn epoch_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// The failed attempts counted against one throttle key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureCount {
    /// Failures since the count last started.
    pub failures: i64,
    /// When the last one was, epoch ms.
    pub last_ms: i64,
    /// Attempts wait until then, epoch ms.
    pub wait_until_ms: i64,
}

/// The answer of a refresh exchange, sealed, for a retry of the same request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptAnswerRow {
    /// SHA-256 of the secret that was exchanged.
    pub presented_hash: String,
    /// The instance that exchanged it.
    pub instance_id: String,
    /// The address the exchange came from.
    pub source_ip: String,
    /// When it was answered, epoch ms.
    pub at_ms: i64,
    /// The master key that wraps the sealed answer's data key.
    pub key_id: String,
    /// The vault's text encoding of the sealed answer.
    pub sealed: String,
}

/// A refresh answer to keep, and how the kept ones are bounded: those answered before
/// `expired_before_ms` go, and at most `keep` stay.
#[derive(Debug, Clone, Copy)]
pub struct KeepAnswer<'a> {
    /// The answer, sealed.
    pub row: &'a KeptAnswerRow,
    /// Answers older than this (epoch ms) are deleted.
    pub expired_before_ms: i64,
    /// Answers kept at most, the oldest deleted first.
    pub keep: i64,
}

/// Keeps a refresh answer on `conn` (a transaction's, so it commits with the exchange).
pub(crate) async fn keep_answer_on(
    conn: &mut sqlx::AnyConnection,
    keep: &KeepAnswer<'_>,
) -> Result<(), StoreError> {
    prune_on(
        conn,
        "refresh_answers",
        "presented_hash, instance_id",
        "at_ms",
        keep.expired_before_ms,
        keep.keep.saturating_sub(1),
    )
    .await?;
    let row = keep.row;
    sqlx::query(
        "INSERT INTO refresh_answers \
         (presented_hash, instance_id, source_ip, at_ms, key_id, sealed) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (presented_hash, instance_id) DO UPDATE SET \
         source_ip = excluded.source_ip, at_ms = excluded.at_ms, \
         key_id = excluded.key_id, sealed = excluded.sealed",
    )
    .bind(&row.presented_hash)
    .bind(&row.instance_id)
    .bind(&row.source_ip)
    .bind(row.at_ms)
    .bind(&row.key_id)
    .bind(&row.sealed)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Deletes a table's rows older than `before_ms`, then its oldest beyond `keep`.
async fn prune_on(
    conn: &mut sqlx::AnyConnection,
    table: &'static str,
    key_columns: &'static str,
    time_column: &'static str,
    before_ms: i64,
    keep: i64,
) -> Result<u64, StoreError> {
    let expired = sqlx::query(&format!("DELETE FROM {table} WHERE {time_column} < $1"))
        .bind(before_ms)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    let row = sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}"))
        .fetch_one(&mut *conn)
        .await?;
    let excess = get::<i64>(&row, "n")?.saturating_sub(keep);
    if excess <= 0 {
        return Ok(expired);
    }
    let oldest = sqlx::query(&format!(
        "DELETE FROM {table} WHERE ({key_columns}) IN \
         (SELECT {key_columns} FROM {table} ORDER BY {time_column} LIMIT $1)"
    ))
    .bind(excess)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(expired + oldest)
}

fn failure_count(r: &AnyRow) -> Result<FailureCount, StoreError> {
    Ok(FailureCount {
        failures: get(r, "failures")?,
        last_ms: get(r, "last_ms")?,
        wait_until_ms: get(r, "wait_until_ms")?,
    })
}

fn kept_answer(r: &AnyRow) -> Result<KeptAnswerRow, StoreError> {
    Ok(KeptAnswerRow {
        presented_hash: get(r, "presented_hash")?,
        instance_id: get(r, "instance_id")?,
        source_ip: get(r, "source_ip")?,
        at_ms: get(r, "at_ms")?,
        key_id: get(r, "key_id")?,
        sealed: get(r, "sealed")?,
    })
}

/// `$first, $first+1, …` for `n` bound values.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Store {
    // ---- login throttle ----

    /// The counts of those of `keys` that have failures.
    pub async fn failure_counts(
        &self,
        keys: &[String],
    ) -> Result<Vec<(String, FailureCount)>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT throttle_key, failures, last_ms, wait_until_ms FROM login_failures \
             WHERE throttle_key IN ({})",
            placeholders(1, keys.len())
        );
        let mut query = sqlx::query(&sql);
        for key in keys {
            query = query.bind(key);
        }
        query
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| Ok((get(r, "throttle_key")?, failure_count(r)?)))
            .collect()
    }

    /// Writes `new` as the count of `key` only if it still holds `old` (`None`: no count), so
    /// failures counted at the same time by several nodes are all counted. Returns whether it
    /// wrote; if not, read the count again and retry.
    pub async fn replace_failure_count(
        &self,
        key: &str,
        old: Option<&FailureCount>,
        new: &FailureCount,
    ) -> Result<bool, StoreError> {
        let done = match old {
            None => {
                sqlx::query(
                    "INSERT INTO login_failures (throttle_key, failures, last_ms, wait_until_ms) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (throttle_key) DO NOTHING",
                )
                .bind(key)
                .bind(new.failures)
                .bind(new.last_ms)
                .bind(new.wait_until_ms)
                .execute(self.pool())
                .await?
            }
            Some(old) => {
                sqlx::query(
                    "UPDATE login_failures SET failures = $1, last_ms = $2, wait_until_ms = $3 \
                     WHERE throttle_key = $4 AND failures = $5 AND last_ms = $6 AND wait_until_ms = $7",
                )
                .bind(new.failures)
                .bind(new.last_ms)
                .bind(new.wait_until_ms)
                .bind(key)
                .bind(old.failures)
                .bind(old.last_ms)
                .bind(old.wait_until_ms)
                .execute(self.pool())
                .await?
            }
        };
        Ok(done.rows_affected() == 1)
    }

    /// Forgets the failures of `key` (a successful login).
    pub async fn clear_failures(&self, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM login_failures WHERE throttle_key = $1")
            .bind(key)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Deletes the counts whose last failure is before `last_before_ms`, then the oldest ones
    /// beyond `keep`. Returns how many it deleted.
    pub async fn forget_failures(&self, last_before_ms: i64, keep: i64) -> Result<u64, StoreError> {
        self.prune(
            "login_failures",
            "throttle_key",
            "last_ms",
            last_before_ms,
            keep,
        )
        .await
    }

    /// Deletes the rows of `table` older than `before_ms` by `time_column`, then the oldest
    /// ones beyond `keep`: the tables of this module stay bounded whatever callers send.
    async fn prune(
        &self,
        table: &'static str,
        key_columns: &'static str,
        time_column: &'static str,
        before_ms: i64,
        keep: i64,
    ) -> Result<u64, StoreError> {
        let mut conn = self.pool().acquire().await?;
        prune_on(&mut conn, table, key_columns, time_column, before_ms, keep).await
    }

    // ---- one-time codes ----

    /// Records that `user` logged in with a code of TOTP `step`, only if no code of that step
    /// or a later one did before: true if this call is the first to use it.
    pub async fn claim_totp_step(&self, user: &str, step: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE users SET totp_last_step = $1 \
             WHERE name = $2 AND (totp_last_step IS NULL OR totp_last_step < $1)",
        )
        .bind(step)
        .bind(user)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    // ---- refresh answers ----

    /// Keeps (or replaces) the sealed answer of an exchange on its own; the console keeps it in
    /// the exchange's transaction (`rotate_refresh_secret`, `enrol_instance`).
    #[cfg(test)]
    async fn keep_refresh_answer(&self, keep: &KeepAnswer<'_>) -> Result<(), StoreError> {
        let mut conn = self.pool().acquire().await?;
        keep_answer_on(&mut conn, keep).await
    }

    /// The kept answer of `instance_id`'s exchange of the secret hashed `presented_hash`, however
    /// old (the caller decides whether it still applies).
    pub async fn kept_refresh_answer(
        &self,
        presented_hash: &str,
        instance_id: &str,
    ) -> Result<Option<KeptAnswerRow>, StoreError> {
        sqlx::query(
            "SELECT presented_hash, instance_id, source_ip, at_ms, key_id, sealed \
             FROM refresh_answers WHERE presented_hash = $1 AND instance_id = $2",
        )
        .bind(presented_hash)
        .bind(instance_id)
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(kept_answer)
        .transpose()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::records::tests::store;
    use crate::UserRow;

    fn count(failures: i64, last_ms: i64) -> FailureCount {
        FailureCount {
            failures,
            last_ms,
            wait_until_ms: last_ms,
        }
    }

    #[tokio::test]
    async fn a_failure_count_is_replaced_only_if_unchanged() {
        let (_dir, store) = store().await;
        let key = "user:ana".to_owned();
        assert!(store
            .replace_failure_count(&key, None, &count(1, 10))
            .await
            .unwrap());
        // Another node counted first: inserting again, or replacing a stale count, fails.
        assert!(!store
            .replace_failure_count(&key, None, &count(1, 11))
            .await
            .unwrap());
        assert!(store
            .replace_failure_count(&key, Some(&count(1, 10)), &count(2, 12))
            .await
            .unwrap());
        assert!(!store
            .replace_failure_count(&key, Some(&count(1, 10)), &count(2, 13))
            .await
            .unwrap());
        let counts = store
            .failure_counts(&[key.clone(), "source:10.0.0.1".into()])
            .await
            .unwrap();
        assert_eq!(counts, vec![(key.clone(), count(2, 12))]);
        store.clear_failures(&key).await.unwrap();
        assert!(store.failure_counts(&[key]).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn failure_counts_are_forgotten_when_old_and_bounded() {
        let (_dir, store) = store().await;
        for i in 0..10 {
            let key = format!("source:10.0.0.{i}");
            store
                .replace_failure_count(&key, None, &count(1, i))
                .await
                .unwrap();
        }
        // Before 3: three forgotten; beyond 5 kept: the two oldest of the rest.
        assert_eq!(store.forget_failures(3, 5).await.unwrap(), 5);
        let left: Vec<String> = (0..10).map(|i| format!("source:10.0.0.{i}")).collect();
        let mut kept: Vec<i64> = store
            .failure_counts(&left)
            .await
            .unwrap()
            .into_iter()
            .map(|(_, c)| c.last_ms)
            .collect();
        kept.sort_unstable();
        assert_eq!(kept, vec![5, 6, 7, 8, 9]);
    }

    #[tokio::test]
    async fn a_totp_step_is_claimed_once() {
        let (_dir, store) = store().await;
        store
            .insert_user(&UserRow {
                name: "ana".into(),
                password_hash: "x".into(),
                created_at: "2026-01-01T00:00:00.000Z".into(),
            })
            .await
            .unwrap();
        assert!(store.claim_totp_step("ana", 100).await.unwrap());
        assert!(!store.claim_totp_step("ana", 100).await.unwrap());
        assert!(!store.claim_totp_step("ana", 99).await.unwrap());
        assert!(store.claim_totp_step("ana", 101).await.unwrap());
        assert!(!store.claim_totp_step("nobody", 1).await.unwrap());
    }

    fn answer(instance: &str, at_ms: i64) -> KeptAnswerRow {
        KeptAnswerRow {
            presented_hash: "h1".into(),
            instance_id: instance.into(),
            source_ip: "10.0.0.5".into(),
            at_ms,
            key_id: "k1".into(),
            sealed: format!("sealed-{instance}"),
        }
    }

    #[tokio::test]
    async fn kept_answers_expire_and_stay_bounded() {
        let (_dir, store) = store().await;
        store
            .keep_refresh_answer(&KeepAnswer {
                row: &answer("i-1", 1_000),
                expired_before_ms: 0,
                keep: 3,
            })
            .await
            .unwrap();
        assert_eq!(
            store.kept_refresh_answer("h1", "i-1").await.unwrap(),
            Some(answer("i-1", 1_000))
        );
        assert_eq!(store.kept_refresh_answer("h1", "i-2").await.unwrap(), None);
        for (i, at) in [(2, 2_000), (3, 3_000), (4, 4_000)] {
            store
                .keep_refresh_answer(&KeepAnswer {
                    row: &answer(&format!("i-{i}"), at),
                    expired_before_ms: 0,
                    keep: 3,
                })
                .await
                .unwrap();
        }
        // At most three: the oldest went first.
        assert_eq!(store.kept_refresh_answer("h1", "i-1").await.unwrap(), None);
        assert!(store
            .kept_refresh_answer("h1", "i-2")
            .await
            .unwrap()
            .is_some());
        // Expired ones are deleted as the next is kept.
        store
            .keep_refresh_answer(&KeepAnswer {
                row: &answer("i-5", 5_000),
                expired_before_ms: 3_500,
                keep: 3,
            })
            .await
            .unwrap();
        assert_eq!(store.kept_refresh_answer("h1", "i-3").await.unwrap(), None);
        assert!(store
            .kept_refresh_answer("h1", "i-4")
            .await
            .unwrap()
            .is_some());
    }
}
