//! Listings of an account share short-lived snapshots of what EC2 said.
//!
//! A page of a thousand instances opened in ten tabs, the watches' pollers and the listing API
//! asking the same question within a moment would each cost a `DescribeInstances` (seconds of
//! EC2's time at that size, and the account's rate limit). Here the question (account, filters,
//! status checks) is asked once: callers arriving while it is on its way wait for the same
//! answer, and callers within [`TTL`] of it are given it, with the time it was taken. Every
//! change the console hears of (its own, and other nodes' through events) drops every snapshot,
//! so what a user just did shows at once; only changes made outside Airlock wait up to [`TTL`].

use crate::error::ApiResult;
use airlock_api::instances::AccountInstance;
use airlock_cloud::{Filter, Scope};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

/// How long a snapshot answers listings.
pub const TTL: Duration = Duration::from_secs(2);

/// Snapshots kept at most (distinct questions); beyond, the oldest go first.
const MAX_ENTRIES: usize = 1_000;

/// The question a snapshot answers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Question {
    /// The console account.
    pub account: String,
    /// EC2 filters.
    pub filters: Vec<Filter>,
    /// Whether status checks were described too.
    pub with_status: bool,
}

/// What EC2 said, and when.
#[derive(Debug)]
pub struct Snapshot {
    /// When the answer arrived, for people ("as of").
    pub taken_at: chrono::DateTime<chrono::Utc>,
    /// When the answer arrived, for expiry.
    taken: Instant,
    /// The account's scope (its id and region, for policies).
    pub scope: Scope,
    /// Every instance matching the question, before any caller's policies.
    pub instances: Vec<AccountInstance>,
}

impl Snapshot {
    /// A snapshot taken now.
    pub fn now(scope: Scope, instances: Vec<AccountInstance>) -> Snapshot {
        Snapshot {
            taken_at: chrono::Utc::now(),
            taken: Instant::now(),
            scope,
            instances,
        }
    }
}

/// One question's answer: being taken (the cell is empty) or taken.
type Slot = Arc<OnceCell<Arc<Snapshot>>>;

/// The snapshots of this console.
#[derive(Default)]
pub struct Snapshots {
    slots: Mutex<HashMap<Question, (Instant, Slot)>>,
}

impl Snapshots {
    /// The answer to `question`: the one on its way or younger than [`TTL`], or a new one
    /// taken with `take`. A failed look is not kept: the next caller asks again.
    pub async fn answer<F, Fut>(&self, question: Question, take: F) -> ApiResult<Arc<Snapshot>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = ApiResult<Snapshot>>,
    {
        let slot = self.slot(question);
        let snapshot = slot
            .get_or_try_init(|| async { take().await.map(Arc::new) })
            .await?;
        Ok(snapshot.clone())
    }

    /// Drops every snapshot: something changed.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Question, (Instant, Slot)>> {
        // A poisoned map only means a task panicked while holding it; the slots are still sound.
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The slot to wait on for `question`, replacing one whose snapshot is too old.
    fn slot(&self, question: Question) -> Slot {
        let mut slots = self.lock();
        if let Some((_, slot)) = slots.get(&question) {
            let fresh = slot.get().is_none_or(|s| s.taken.elapsed() < TTL);
            if fresh {
                return slot.clone();
            }
        }
        if slots.len() >= MAX_ENTRIES {
            slots.retain(|_, (_, slot)| slot.get().is_none_or(|s| s.taken.elapsed() < TTL));
        }
        if slots.len() >= MAX_ENTRIES {
            if let Some(oldest) = slots
                .iter()
                .min_by_key(|(_, (asked, _))| *asked)
                .map(|(q, _)| q.clone())
            {
                slots.remove(&oldest);
            }
        }
        let slot = Slot::default();
        slots.insert(question, (Instant::now(), slot.clone()));
        slot
    }
}

/// Drops the snapshots whenever the console hears of a change (its own or another node's), or
/// may have missed one.
pub async fn forget_on_change(
    snapshots: Arc<Snapshots>,
    mut events: tokio::sync::broadcast::Receiver<airlock_api::events::Event>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match events.recv().await {
            Ok(_) | Err(RecvError::Lagged(_)) => snapshots.clear(),
            Err(RecvError::Closed) => return,
        }
    }
}
