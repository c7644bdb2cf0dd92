//! Run command's records: agent tokens, commands and each instance's part in them.
//!
//! Every change of a part is a conditional update on the status it leaves, so consoles that
//! advance one command at the same time, an agent's fetch and a timeout racing each other all
//! agree: a part is fetched once, and a report is never overwritten by a timeout (or the other
//! way round).

use crate::{get, get_state, Store, StoreError};
use airlock_api::state::CommandStatus;
use sqlx::any::AnyRow;
use std::collections::BTreeMap;

/// One agent token, by the hash of the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentTokenRow {
    /// SHA-256 of the token.
    pub token_hash: String,
    /// The deployment of the instance.
    pub deployment_id: String,
    /// The instance whose agent holds it.
    pub instance_id: String,
    /// The address it was issued to; it works only from there.
    pub source_ip: String,
    /// When it stops working (epoch milliseconds).
    pub expires_at_ms: i64,
    /// RFC 3339.
    pub created_at: String,
}

/// One command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRow {
    /// `cmd-…`.
    pub id: String,
    /// The console account.
    pub account: String,
    /// Who sent it.
    pub created_by: String,
    /// RFC 3339.
    pub created_at: String,
    /// The program and its arguments.
    pub command: Vec<String>,
    /// `tag:KEY=VALUE` selections, as sent.
    pub targets: Vec<String>,
    /// Instance ids, as sent.
    pub instance_ids: Vec<String>,
    /// `N` or `N%`.
    pub max_concurrency: String,
    /// `N` or `N%`.
    pub max_errors: String,
    /// Per instance.
    pub timeout_seconds: i64,
    /// When no instance was left pending or running (RFC 3339).
    pub finished_at: Option<String>,
}

/// One instance's part in a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandResultRow {
    /// The command.
    pub command_id: String,
    /// The instance.
    pub instance_id: String,
    /// Its tags when the command was sent.
    pub tags: BTreeMap<String, String>,
    /// Where it is.
    pub status: CommandStatus,
    /// When it was released to its agent (epoch milliseconds).
    pub released_at_ms: Option<i64>,
    /// When its agent fetched it.
    pub started_at_ms: Option<i64>,
    /// When it ended.
    pub ended_at_ms: Option<i64>,
    /// The exit code.
    pub exit_code: Option<i64>,
    /// Standard output, bounded.
    pub output: Option<String>,
    /// Standard error, bounded.
    pub error_output: Option<String>,
    /// Whether either was cut.
    pub truncated: bool,
}

/// How a part ended, as its agent reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandReport {
    /// `success`, `failed` or `timed-out`.
    pub status: CommandStatus,
    /// The exit code.
    pub exit_code: Option<i64>,
    /// Standard output, bounded.
    pub output: String,
    /// Standard error, bounded.
    pub error_output: String,
    /// Whether either was cut.
    pub truncated: bool,
}

/// A change of one part, each allowed only from the status it leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartChange {
    /// Pending and not released: its agent may fetch it now.
    Release,
    /// Released but never fetched.
    Undeliverable,
    /// Fetched but never reported.
    TimedOut,
    /// Not released, and never to be.
    Cancel,
}

/// Commands kept; older ones are forgotten as new ones are sent.
pub const COMMANDS_KEPT: i64 = 1000;

fn strings(r: &AnyRow, column: &str) -> Result<Vec<String>, StoreError> {
    let text: String = get(r, column)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
        what: column.to_owned(),
        reason: e.to_string(),
    })
}

fn token(r: &AnyRow) -> Result<AgentTokenRow, StoreError> {
    Ok(AgentTokenRow {
        token_hash: get(r, "token_hash")?,
        deployment_id: get(r, "deployment_id")?,
        instance_id: get(r, "instance_id")?,
        source_ip: get(r, "source_ip")?,
        expires_at_ms: get(r, "expires_at_ms")?,
        created_at: get(r, "created_at")?,
    })
}

fn command(r: &AnyRow) -> Result<CommandRow, StoreError> {
    Ok(CommandRow {
        id: get(r, "id")?,
        account: get(r, "account")?,
        created_by: get(r, "created_by")?,
        created_at: get(r, "created_at")?,
        command: strings(r, "command")?,
        targets: strings(r, "targets")?,
        instance_ids: strings(r, "instance_ids")?,
        max_concurrency: get(r, "max_concurrency")?,
        max_errors: get(r, "max_errors")?,
        timeout_seconds: get(r, "timeout_seconds")?,
        finished_at: get(r, "finished_at")?,
    })
}

fn result(r: &AnyRow) -> Result<CommandResultRow, StoreError> {
    let tags: String = get(r, "tags")?;
    let truncated: i64 = get(r, "truncated")?;
    Ok(CommandResultRow {
        command_id: get(r, "command_id")?,
        instance_id: get(r, "instance_id")?,
        tags: serde_json::from_str(&tags).map_err(|e| StoreError::Corrupt {
            what: "tags".to_owned(),
            reason: e.to_string(),
        })?,
        status: get_state(r, "status")?,
        released_at_ms: get(r, "released_at_ms")?,
        started_at_ms: get(r, "started_at_ms")?,
        ended_at_ms: get(r, "ended_at_ms")?,
        exit_code: get(r, "exit_code")?,
        output: get(r, "output")?,
        error_output: get(r, "error_output")?,
        truncated: truncated != 0,
    })
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

/// Agent tokens.
impl Store {
    /// Stores a token, forgetting the instance's expired ones.
    pub async fn insert_agent_token(&self, row: &AgentTokenRow) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(&format!(
            "DELETE FROM agent_tokens WHERE instance_id = $1 AND expires_at_ms < {}",
            self.now_ms()
        ))
        .bind(&row.instance_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO agent_tokens (token_hash, deployment_id, instance_id, source_ip, \
             expires_at_ms, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&row.token_hash)
        .bind(&row.deployment_id)
        .bind(&row.instance_id)
        .bind(&row.source_ip)
        .bind(row.expires_at_ms)
        .bind(&row.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The unexpired token with this hash.
    pub async fn agent_token(&self, hash: &str) -> Result<Option<AgentTokenRow>, StoreError> {
        sqlx::query(&format!(
            "SELECT * FROM agent_tokens WHERE token_hash = $1 AND expires_at_ms >= {}",
            self.now_ms()
        ))
        .bind(hash)
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(token)
        .transpose()
    }
}

/// Commands and their parts.
impl Store {
    /// Stores a command with a pending part per instance, and forgets the oldest commands past
    /// [`COMMANDS_KEPT`].
    pub async fn insert_command(
        &self,
        row: &CommandRow,
        parts: &[CommandResultRow],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO commands (id, account, created_by, created_at, command, targets, \
             instance_ids, max_concurrency, max_errors, timeout_seconds, finished_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&row.id)
        .bind(&row.account)
        .bind(&row.created_by)
        .bind(&row.created_at)
        .bind(json(&row.command))
        .bind(json(&row.targets))
        .bind(json(&row.instance_ids))
        .bind(&row.max_concurrency)
        .bind(&row.max_errors)
        .bind(row.timeout_seconds)
        .bind(&row.finished_at)
        .execute(&mut *tx)
        .await?;
        for part in parts {
            sqlx::query(
                "INSERT INTO command_results (command_id, instance_id, tags, status, truncated) \
                 VALUES ($1, $2, $3, $4, 0)",
            )
            .bind(&row.id)
            .bind(&part.instance_id)
            .bind(json(&part.tags))
            .bind(part.status.as_str())
            .execute(&mut *tx)
            .await?;
        }
        let old = "SELECT id FROM commands ORDER BY created_at DESC, id DESC LIMIT -1 OFFSET $1";
        let old = match self.backend {
            crate::Backend::Sqlite => old.to_owned(),
            crate::Backend::Postgres => old.replace("LIMIT -1 ", ""),
        };
        sqlx::query(&format!(
            "DELETE FROM command_results WHERE command_id IN ({old})"
        ))
        .bind(COMMANDS_KEPT)
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!("DELETE FROM commands WHERE id IN ({old})"))
            .bind(COMMANDS_KEPT)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A command by id.
    pub async fn command(&self, id: &str) -> Result<Option<CommandRow>, StoreError> {
        sqlx::query("SELECT * FROM commands WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(command)
            .transpose()
    }

    /// The latest commands, newest first.
    pub async fn commands(&self, limit: i64) -> Result<Vec<CommandRow>, StoreError> {
        sqlx::query("SELECT * FROM commands ORDER BY created_at DESC, id DESC LIMIT $1")
            .bind(limit)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(command)
            .collect()
    }

    /// The ids of commands some instance of which is still pending or running.
    pub async fn unfinished_commands(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT id FROM commands WHERE finished_at IS NULL ORDER BY id")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| get(r, "id")).collect()
    }

    /// A command's parts, by instance id.
    pub async fn command_results(&self, id: &str) -> Result<Vec<CommandResultRow>, StoreError> {
        sqlx::query("SELECT * FROM command_results WHERE command_id = $1 ORDER BY instance_id")
            .bind(id)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(result)
            .collect()
    }

    /// Applies `change` to one part if it is still in the status the change leaves; true when
    /// it was.
    pub async fn change_part(
        &self,
        command_id: &str,
        instance_id: &str,
        change: PartChange,
    ) -> Result<bool, StoreError> {
        let now = self.now_ms();
        let (set, from) = match change {
            PartChange::Release => (
                format!("released_at_ms = {now}"),
                "status = 'pending' AND released_at_ms IS NULL",
            ),
            PartChange::Undeliverable => (
                format!("status = 'undeliverable', ended_at_ms = {now}"),
                "status = 'pending' AND released_at_ms IS NOT NULL",
            ),
            PartChange::TimedOut => (
                format!("status = 'timed-out', ended_at_ms = {now}"),
                "status = 'running'",
            ),
            PartChange::Cancel => (
                format!("status = 'cancelled', ended_at_ms = {now}"),
                "status = 'pending' AND released_at_ms IS NULL",
            ),
        };
        let done = sqlx::query(&format!(
            "UPDATE command_results SET {set} \
             WHERE command_id = $1 AND instance_id = $2 AND {from}"
        ))
        .bind(command_id)
        .bind(instance_id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Marks the command finished if none of its parts is pending or running.
    pub async fn finish_command_if_done(&self, id: &str, at: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE commands SET finished_at = $1 WHERE id = $2 AND finished_at IS NULL \
             AND NOT EXISTS (SELECT 1 FROM command_results WHERE command_id = $2 \
             AND status IN ('pending', 'running'))",
        )
        .bind(at)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Takes the oldest released part of `instance_id` for its agent (now running), with its
    /// command; `None` when there is none.
    pub async fn fetch_part(
        &self,
        instance_id: &str,
    ) -> Result<Option<(CommandRow, CommandResultRow)>, StoreError> {
        // A few tries: another fetch for the same instance may take the first one found.
        for _ in 0..4 {
            let Some(found) = sqlx::query(
                "SELECT * FROM command_results WHERE instance_id = $1 AND status = 'pending' \
                 AND released_at_ms IS NOT NULL ORDER BY released_at_ms, command_id LIMIT 1",
            )
            .bind(instance_id)
            .fetch_optional(self.pool())
            .await?
            else {
                return Ok(None);
            };
            let part = result(&found)?;
            let taken = sqlx::query(&format!(
                "UPDATE command_results SET status = 'running', started_at_ms = {} \
                 WHERE command_id = $1 AND instance_id = $2 AND status = 'pending' \
                 AND released_at_ms IS NOT NULL",
                self.now_ms()
            ))
            .bind(&part.command_id)
            .bind(instance_id)
            .execute(self.pool())
            .await?;
            if taken.rows_affected() == 0 {
                continue;
            }
            if let Some(cmd) = self.command(&part.command_id).await? {
                return Ok(Some((cmd, part)));
            }
        }
        Ok(None)
    }

    /// Records how a running part ended; false when it is not running (never fetched, already
    /// reported, or given up as timed out).
    pub async fn report_part(
        &self,
        command_id: &str,
        instance_id: &str,
        report: &CommandReport,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(&format!(
            "UPDATE command_results SET status = $1, exit_code = $2, output = $3, \
             error_output = $4, truncated = $5, ended_at_ms = {} \
             WHERE command_id = $6 AND instance_id = $7 AND status = 'running'",
            self.now_ms()
        ))
        .bind(report.status.as_str())
        .bind(report.exit_code)
        .bind(&report.output)
        .bind(&report.error_output)
        .bind(i64::from(report.truncated))
        .bind(command_id)
        .bind(instance_id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }
}
