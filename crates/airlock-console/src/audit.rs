//! The audit log: an append-only record of every authorization decision and every EC2 call,
//! each chained to the one before by SHA-256 so that editing or removing a record is detectable.

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use airlock_store::{AuditRow, Store, StoreError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The hash before the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What was decided about a request, as the audit log records it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AuditDecision {
    /// Every check was allowed.
    #[default]
    Allowed,
    /// A statement denied it.
    ExplicitDeny,
    /// Nothing allowed it.
    ImplicitDeny,
    /// It stopped before a decision (bad input, a resource EC2 does not know).
    NotEvaluated,
    /// A refresh secret was presented again.
    Replay,
}

impl AuditDecision {
    /// The word stored in `audit_log.decision`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditDecision::Allowed => "allowed",
            AuditDecision::ExplicitDeny => "explicitDeny",
            AuditDecision::ImplicitDeny => "implicitDeny",
            AuditDecision::NotEvaluated => "notEvaluated",
            AuditDecision::Replay => "replay",
        }
    }
}

impl From<airlock_policy::Decision> for AuditDecision {
    fn from(d: airlock_policy::Decision) -> Self {
        match d {
            airlock_policy::Decision::Allowed => AuditDecision::Allowed,
            airlock_policy::Decision::ExplicitDeny => AuditDecision::ExplicitDeny,
            airlock_policy::Decision::ImplicitDeny => AuditDecision::ImplicitDeny,
        }
    }
}

/// How a request ended, as the audit log records it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AuditOutcome {
    /// Decided and allowed; what came of it is recorded separately.
    #[default]
    Allowed,
    /// Done.
    Ok,
    /// Refused.
    Denied,
    /// EC2, STS or the console failed.
    Error,
    /// Done, but with a risk the operator should know of.
    Risk,
    /// The input was refused before a decision.
    Invalid,
}

impl AuditOutcome {
    /// The word stored in `audit_log.outcome`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Allowed => "allowed",
            AuditOutcome::Ok => "ok",
            AuditOutcome::Denied => "denied",
            AuditOutcome::Error => "error",
            AuditOutcome::Risk => "risk",
            AuditOutcome::Invalid => "invalid",
        }
    }
}

/// What to record; the chain fields are filled in when it is appended.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    /// The console user (or `airlock:console` for the console's own background work).
    pub user: String,
    /// Where the request came from.
    pub source_ip: Option<String>,
    /// The action, e.g. `ec2:TerminateInstances`.
    pub action: String,
    /// The resources it touched.
    pub resources: Vec<String>,
    /// What was decided.
    pub decision: AuditDecision,
    /// AWS's request id.
    pub aws_request_id: Option<String>,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// Why: deciding statements, or the error.
    pub detail: Option<String>,
}

impl Entry {
    /// An entry for a caller's request.
    pub fn for_caller(caller: &Caller, action: &str, resources: Vec<String>) -> Entry {
        Entry {
            user: caller.user.clone(),
            source_ip: caller.source_ip.map(|ip| ip.to_string()),
            action: action.to_owned(),
            resources,
            ..Entry::default()
        }
    }
}

/// The fields a record's hash covers, in a fixed order.
#[derive(Serialize)]
struct Hashed<'a> {
    seq: i64,
    at: &'a str,
    user_name: &'a str,
    source_ip: &'a Option<String>,
    action: &'a str,
    resources: &'a str,
    decision: &'a str,
    aws_request_id: &'a Option<String>,
    outcome: &'a str,
    detail: &'a Option<String>,
    prev_hash: &'a str,
}

/// The hash of a record over every field but `hash` itself.
pub fn hash_of(row: &AuditRow) -> String {
    let fields = Hashed {
        seq: row.seq,
        at: &row.at,
        user_name: &row.user_name,
        source_ip: &row.source_ip,
        action: &row.action,
        resources: &row.resources,
        decision: &row.decision,
        aws_request_id: &row.aws_request_id,
        outcome: &row.outcome,
        detail: &row.detail,
        prev_hash: &row.prev_hash,
    };
    let bytes = serde_json::to_vec(&fields).unwrap_or_default();
    hex::encode(Sha256::digest(bytes))
}

/// Appends an entry to the chain. Concurrent writers (several console nodes) race for the next
/// sequence number; the loser re-reads the head and tries again.
pub async fn append(store: &Store, lock: &tokio::sync::Mutex<()>, entry: Entry) -> ApiResult<()> {
    let _guard = lock.lock().await;
    for _ in 0..20 {
        let last = store.last_audit().await?;
        let (seq, prev_hash) = match last {
            Some(r) => (r.seq + 1, r.hash),
            None => (1, GENESIS.to_owned()),
        };
        let mut row = AuditRow {
            seq,
            at: crate::now(),
            user_name: entry.user.clone(),
            source_ip: entry.source_ip.clone(),
            action: entry.action.clone(),
            resources: serde_json::to_string(&entry.resources).unwrap_or_else(|_| "[]".into()),
            decision: entry.decision.as_str().to_owned(),
            aws_request_id: entry.aws_request_id.clone(),
            outcome: entry.outcome.as_str().to_owned(),
            detail: entry.detail.clone(),
            prev_hash,
            hash: String::new(),
        };
        row.hash = hash_of(&row);
        match store.insert_audit(&row).await {
            Ok(()) => return Ok(()),
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::Internal(
        "cannot append to the audit log: too much contention".into(),
    ))
}

/// Records an entry; a failure to audit is logged loudly (the action already happened).
pub async fn record(state: &AppState, entry: Entry) {
    if let Err(e) = append(&state.store, &state.audit_lock, entry).await {
        tracing::error!(error = %e, "cannot write the audit log");
    }
}

/// Records an entry that must be written before the request goes on (an allowed decision):
/// if the audit log cannot be written, the request is refused and nothing is done.
pub async fn record_required(state: &AppState, entry: Entry) -> ApiResult<()> {
    append(&state.store, &state.audit_lock, entry)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "cannot write the audit log; the request is refused");
            ApiError::Unavailable(
            "the decision could not be written to the audit log, so nothing was done; try again"
                .into(),
        )
        })
}

/// Records an allowed action that succeeded, with what came of it.
pub async fn record_ok(state: &AppState, mut entry: Entry, detail: Option<String>) {
    entry.decision = AuditDecision::Allowed;
    entry.outcome = AuditOutcome::Ok;
    entry.detail = detail;
    record(state, entry).await;
}

/// Records an EC2 call's result, with AWS's request id or error.
pub async fn record_call<T>(
    state: &AppState,
    mut entry: Entry,
    result: &Result<T, airlock_cloud::CloudError>,
    request_id: impl FnOnce(&T) -> Option<String>,
) {
    entry.decision = AuditDecision::Allowed;
    match result {
        Ok(v) => {
            entry.outcome = AuditOutcome::Ok;
            entry.aws_request_id = request_id(v);
        }
        Err(e) => {
            entry.outcome = AuditOutcome::Error;
            entry.aws_request_id = e.request_id.clone();
            entry.detail = Some(e.to_string());
        }
    }
    // Every EC2 call the console makes passes here, so this is where watchers (gateways) learn
    // of membership changes; only what changed is published, never credentials or tags.
    let changed = result
        .is_ok()
        .then(|| (entry.action.clone(), entry.resources.clone()));
    record(state, entry).await;
    if let Some((action, resources)) = changed {
        state.events.publish_ec2_call(&action, &resources);
    }
}

/// The result of checking the chain.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Verification {
    /// Records checked.
    pub records: usize,
    /// True when every link holds.
    pub intact: bool,
    /// The first record that does not match its hash or its predecessor.
    pub first_broken: Option<i64>,
    /// What is wrong there.
    pub problem: Option<String>,
}

/// Checks every record's hash and link, in order.
pub fn verify(rows: &[AuditRow]) -> Verification {
    let mut prev = GENESIS.to_owned();
    for (expected_seq, row) in (1..).zip(rows) {
        let problem = if row.seq != expected_seq {
            Some(format!(
                "record {expected_seq} is missing (found {} next)",
                row.seq
            ))
        } else if row.prev_hash != prev {
            Some("its link to the previous record does not match".to_owned())
        } else if hash_of(row) != row.hash {
            Some("its content does not match its hash (edited)".to_owned())
        } else {
            None
        };
        if let Some(problem) = problem {
            return Verification {
                records: rows.len(),
                intact: false,
                first_broken: Some(row.seq.min(expected_seq)),
                problem: Some(problem),
            };
        }
        prev.clone_from(&row.hash);
    }
    Verification {
        records: rows.len(),
        intact: true,
        first_broken: None,
        problem: None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditRow> {
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|seq| {
                let mut row = AuditRow {
                    seq,
                    at: "2026-01-01T00:00:00Z".into(),
                    user_name: "ana".into(),
                    source_ip: None,
                    action: "ec2:RunInstances".into(),
                    resources: "[]".into(),
                    decision: "allowed".into(),
                    aws_request_id: None,
                    outcome: "ok".into(),
                    detail: None,
                    prev_hash: prev.clone(),
                    hash: String::new(),
                };
                row.hash = hash_of(&row);
                prev.clone_from(&row.hash);
                row
            })
            .collect()
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert!(verify(&chain(5)).intact);
    }

    #[test]
    fn an_edit_is_found() {
        let mut rows = chain(5);
        rows[2].user_name = "mallory".into();
        let v = verify(&rows);
        assert!(!v.intact);
        assert_eq!(v.first_broken, Some(3));
    }

    #[test]
    fn a_deletion_is_found() {
        let mut rows = chain(5);
        rows.remove(1);
        let v = verify(&rows);
        assert_eq!(v.first_broken, Some(2));
    }

    #[test]
    fn a_rehashed_edit_breaks_the_next_link() {
        let mut rows = chain(4);
        rows[1].decision = "explicitDeny".into();
        rows[1].hash = hash_of(&rows[1]);
        assert_eq!(verify(&rows).first_broken, Some(3));
    }
}
