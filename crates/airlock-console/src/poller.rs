//! Instance watches share their looks at EC2. Every open `GET /v1/instances/watch` used to
//! poll EC2 on its own, so a dozen browser tabs on one page made a dozen times the calls
//! against the account's EC2 rate limit. Now one poller per account and query (filters,
//! status checks, interval) describes, and every watcher of that query reads its latest
//! snapshot, keeping only what its own policies let it see. A poller runs while someone
//! watches and stops with its last watcher.

use airlock_api::instances::AccountInstance;
use airlock_cloud::{Filter, Scope};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::watch;

/// What one poller shares.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PollKey {
    /// The account.
    pub account: String,
    /// EC2 filters of the watch.
    pub filters: Vec<Filter>,
    /// Whether status checks are described too.
    pub with_status: bool,
    /// Time between looks.
    pub interval: Duration,
}

/// One look: the account's scope and its instances, or why EC2 could not be asked.
pub type Snapshot = Arc<Result<(Scope, Vec<AccountInstance>), String>>;

/// A running poller; dropping the last handle stops it.
pub struct Poller {
    latest: watch::Receiver<Option<Snapshot>>,
    task: tokio::task::AbortHandle,
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Poller {
    /// A receiver of its snapshots (`None` until the first look).
    pub fn subscribe(&self) -> watch::Receiver<Option<Snapshot>> {
        self.latest.clone()
    }
}

/// The pollers running now.
#[derive(Default)]
pub struct Pollers {
    live: Mutex<HashMap<PollKey, Weak<Poller>>>,
}

impl Pollers {
    /// The poller for `key`, started with `look` if none runs.
    pub fn get_or_start<F, Fut>(&self, key: PollKey, look: F) -> Arc<Poller>
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(Scope, Vec<AccountInstance>), String>> + Send,
    {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(running) = live.get(&key).and_then(Weak::upgrade) {
            return running;
        }
        live.retain(|_, poller| poller.strong_count() > 0);
        let (tx, rx) = watch::channel(None);
        let interval = key.interval;
        let task = tokio::spawn(async move {
            loop {
                let snapshot = Arc::new(look().await);
                if tx.send(Some(snapshot)).is_err() {
                    return;
                }
                tokio::time::sleep(interval).await;
            }
        })
        .abort_handle();
        let poller = Arc::new(Poller { latest: rx, task });
        live.insert(key, Arc::downgrade(&poller));
        poller
    }

    /// How many pollers run.
    pub fn running(&self) -> usize {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.values().filter(|p| p.strong_count() > 0).count()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn key(account: &str) -> PollKey {
        PollKey {
            account: account.into(),
            filters: vec![],
            with_status: true,
            interval: Duration::from_millis(50),
        }
    }

    fn counting(
        looks: &Arc<AtomicUsize>,
    ) -> impl Fn() -> std::future::Ready<Result<(Scope, Vec<AccountInstance>), String>> {
        let looks = looks.clone();
        move || {
            looks.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Ok((
                Scope {
                    region: "us-east-1".into(),
                    account_id: "123456789012".into(),
                },
                vec![],
            )))
        }
    }

    #[tokio::test]
    async fn user_opening_many_watches_of_one_query_costs_one_poller() {
        let pollers = Pollers::default();
        let looks = Arc::new(AtomicUsize::new(0));
        let watchers: Vec<_> = (0..16)
            .map(|_| pollers.get_or_start(key("prod"), counting(&looks)))
            .collect();
        assert_eq!(pollers.running(), 1);
        tokio::time::sleep(Duration::from_millis(120)).await;
        // Three looks or so in 120 ms at 50 ms, not sixteen times that.
        let seen = looks.load(Ordering::SeqCst);
        assert!((1..=4).contains(&seen), "{seen} looks");
        assert!(watchers[3].subscribe().borrow().is_some());
        let other = pollers.get_or_start(key("dev"), counting(&looks));
        assert_eq!(pollers.running(), 2);
        drop(other);
        assert_eq!(pollers.running(), 1);
    }

    #[tokio::test]
    async fn a_poller_stops_with_its_last_watcher() {
        let pollers = Pollers::default();
        let looks = Arc::new(AtomicUsize::new(0));
        let watcher = pollers.get_or_start(key("prod"), counting(&looks));
        tokio::time::sleep(Duration::from_millis(30)).await;
        drop(watcher);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let stopped_at = looks.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(looks.load(Ordering::SeqCst), stopped_at);
        assert_eq!(pollers.running(), 0);
    }
}
