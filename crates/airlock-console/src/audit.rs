//! The audit log: an append-only record of every authorization decision and every EC2 call,
//! each chained to the one before under a key sealed in the vault, so that editing or removing
//! a record is detectable (see [`chain`]).

pub mod chain;
pub(crate) mod read;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::vault::Vault;
use airlock_store::{AuditRow, Store, StoreError};
pub use chain::{Anchor, AuditKey, Head, Verification, GENESIS};
pub use read::{DEFAULT_LIMIT, MAX_LIMIT};

pub use airlock_api::state::{AuditDecision, AuditOutcome};

/// The audit log's word for a policy decision.
pub fn decision_of(d: airlock_policy::Decision) -> AuditDecision {
    match d {
        airlock_policy::Decision::Allowed => AuditDecision::Allowed,
        airlock_policy::Decision::ExplicitDeny => AuditDecision::ExplicitDeny,
        airlock_policy::Decision::ImplicitDeny => AuditDecision::ImplicitDeny,
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

/// Id of the vault record that holds the audit key.
const KEY_RECORD: &str = "audit:key";

/// The writing side of the log on this console: its appends one at a time (other nodes are
/// handled by the store), each chained under the audit key.
#[derive(Debug)]
pub struct Chain {
    lock: tokio::sync::Mutex<()>,
    key: AuditKey,
}

impl Chain {
    /// A chain under `key`.
    pub fn new(key: AuditKey) -> Chain {
        Chain {
            lock: tokio::sync::Mutex::new(()),
            key,
        }
    }

    /// The key records are chained under.
    pub fn key(&self) -> &AuditKey {
        &self.key
    }
}

/// Whether the audit key was in the vault or made at this start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOrigin {
    /// Stored before.
    Stored,
    /// Made now; the records up to `unkeyed_through` have none.
    Created {
        /// The newest record when the key was made.
        unkeyed_through: i64,
    },
}

/// Opens the audit key sealed in the vault, or makes it on a first start (one key for every
/// console node: the first to store it wins). A log that already holds keyed records has lost
/// its key: the console refuses to start rather than chain on under a new one.
pub async fn open_chain(store: &Store, vault: &Vault) -> ApiResult<(Chain, KeyOrigin)> {
    if let Some(chain) = stored_chain(vault).await? {
        return Ok((chain, KeyOrigin::Stored));
    }
    if store
        .audit_has_chain(chain::ChainKind::HmacSha256.as_str())
        .await?
    {
        // Another node starting at the same moment may have stored the key and chained a
        // record since the vault was read: a keyed record is only ever written after its key.
        if let Some(chain) = stored_chain(vault).await? {
            return Ok((chain, KeyOrigin::Stored));
        }
        return Err(ApiError::Internal(format!(
            "the audit log has keyed records but the vault has no audit key ({KEY_RECORD}): \
             restore that record from a backup of the database"
        )));
    }
    let unkeyed_through = store.last_audit().await?.map_or(0, |r| r.seq);
    let key = AuditKey::generate(unkeyed_through);
    if vault.create(KEY_RECORD, &key.to_bytes()).await? {
        return Ok((Chain::new(key), KeyOrigin::Created { unkeyed_through }));
    }
    let chain = stored_chain(vault).await?.ok_or_else(|| {
        ApiError::Internal(format!(
            "the audit key {KEY_RECORD} vanished while starting"
        ))
    })?;
    Ok((chain, KeyOrigin::Stored))
}

async fn stored_chain(vault: &Vault) -> ApiResult<Option<Chain>> {
    let Some(sealed) = vault.get(KEY_RECORD).await? else {
        return Ok(None);
    };
    let key = AuditKey::from_bytes(&sealed).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Some(Chain::new(key)))
}

/// Records that the audit key was made, so that a key made again (its record deleted) shows
/// in the log and in the console's output.
pub async fn record_key_origin(state: &AppState, origin: KeyOrigin) {
    let KeyOrigin::Created { unkeyed_through } = origin else {
        return;
    };
    let detail = if unkeyed_through == 0 {
        "every record is chained under it".to_owned()
    } else {
        tracing::warn!(
            unkeyed_through,
            "made the audit key: the records written before it are chained without one"
        );
        format!("records 1 to {unkeyed_through} were chained without a key (plain SHA-256)")
    };
    let entry = Entry {
        user: "airlock:console".into(),
        action: "airlock:CreateAuditKey".into(),
        resources: vec![crate::authz::console_arn("audit", "*")],
        outcome: AuditOutcome::Ok,
        detail: Some(detail),
        ..Entry::default()
    };
    record(state, entry).await;
}

/// Appends an entry to the chain. Concurrent writers (several console nodes) race for the next
/// sequence number; the loser re-reads the head and tries again.
pub async fn append(store: &Store, log: &Chain, entry: Entry) -> ApiResult<()> {
    let _guard = log.lock.lock().await;
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
            chain: String::new(),
        };
        chain::seal(&log.key, &mut row);
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
    if let Err(e) = append(&state.store, &state.audit, entry).await {
        tracing::error!(error = %e, "cannot write the audit log");
    }
}

/// Records an entry that must be written before the request goes on (an allowed decision):
/// if the audit log cannot be written, the request is refused and nothing is done.
pub async fn record_required(state: &AppState, entry: Entry) -> ApiResult<()> {
    append(&state.store, &state.audit, entry)
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
        // Any change (an address moved, a volume attached) may show in a listing: none is
        // answered from before it.
        state.snapshots.clear();
        state.events.publish_ec2_call(&action, &resources);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::vault::KeySource;

    async fn open() -> (tempfile::TempDir, Store, Vault) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("a.db").display());
        let store = Store::open(&url).await.unwrap();
        let keyring = airlock_vault::Keyring::generate();
        let vault = Vault::open(store.clone(), KeySource::Environment, keyring)
            .await
            .unwrap();
        (dir, store, vault)
    }

    /// A record as a console without an audit key wrote it.
    async fn append_plain(store: &Store, seq: i64) {
        let prev_hash = match store.last_audit().await.unwrap() {
            Some(r) => r.hash,
            None => GENESIS.to_owned(),
        };
        let mut row = chain::tests::record(seq, &prev_hash);
        row.chain = chain::ChainKind::Sha256.as_str().into();
        row.hash = chain::plain_hash(&row);
        store.insert_audit(&row).await.unwrap();
    }

    fn entry(n: usize) -> Entry {
        Entry {
            user: "bob".into(),
            action: format!("airlock:Action{n}"),
            ..Entry::default()
        }
    }

    #[tokio::test]
    async fn a_log_begun_without_a_key_keeps_its_plain_records_and_chains_on_keyed() {
        let (_dir, store, vault) = open().await;
        append_plain(&store, 1).await;
        append_plain(&store, 2).await;
        let (log, origin) = open_chain(&store, &vault).await.unwrap();
        assert_eq!(origin, KeyOrigin::Created { unkeyed_through: 2 });
        for n in 0..3 {
            append(&store, &log, entry(n)).await.unwrap();
        }
        // Another start (or another node) finds the same key.
        let (again, origin) = open_chain(&store, &vault).await.unwrap();
        assert_eq!(origin, KeyOrigin::Stored);
        append(&store, &again, entry(3)).await.unwrap();
        let v = read::verify_log(&store, again.key(), None).await.unwrap();
        assert!(v.intact, "{v:?}");
        assert_eq!((v.records, v.checked, v.unkeyed), (6, 6, 2));
        assert_eq!(v.head.unwrap().seq, 6);
    }

    #[tokio::test]
    async fn a_database_writer_who_deletes_the_audit_key_does_not_get_a_new_one() {
        let (_dir, store, vault) = open().await;
        let (log, _) = open_chain(&store, &vault).await.unwrap();
        append(&store, &log, entry(0)).await.unwrap();
        store.delete_sealed(KEY_RECORD).await.unwrap();
        let err = open_chain(&store, &vault).await.unwrap_err();
        assert!(err.to_string().contains(KEY_RECORD), "{err}");
    }

    #[tokio::test]
    async fn the_audit_key_is_sealed_in_the_vault() {
        let (_dir, store, vault) = open().await;
        let (log, _) = open_chain(&store, &vault).await.unwrap();
        let stored = store.sealed(KEY_RECORD).await.unwrap().unwrap();
        let plain = hex::encode(&log.key().to_bytes()[..32]);
        assert!(!stored.sealed.contains(&plain));
        assert!(!format!("{log:?}").contains(&plain));
    }
}
