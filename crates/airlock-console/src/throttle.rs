//! Login throttling: after a few wrong passwords for one user, or many from one address, every
//! further attempt waits, longer each time, and is answered `429` without the password being
//! checked, so a password-guessing flood costs the console almost nothing and gets nowhere.
//!
//! The counts live in the store, so guesses spread over several consoles behind one load
//! balancer count as if made at one. Each console also remembers, for a while, which keys are
//! waiting: a flood against a throttled key is refused without a database read each.

use airlock_store::{epoch_ms, FailureCount, Store, StoreError};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Wrong passwords for one user before attempts must wait.
const FREE_PER_USER: u32 = 5;
/// Wrong passwords from one address before attempts must wait (several people may share one).
const FREE_PER_SOURCE: u32 = 20;
/// The longest wait.
const MAX_WAIT: Duration = Duration::from_secs(300);
/// How long a throttled attempt is held before its `429` (at most its wait): a client that
/// asks again as soon as it is answered makes one attempt per this interval per connection.
pub const HOLD_THROTTLED: Duration = Duration::from_secs(2);
/// Failures are forgotten this long after the last one.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Keys counted at most (in the store, and waiting in each console's memory); beyond, the
/// oldest are forgotten.
const MAX_KEYS: usize = 10_000;
/// Tries to count one failure while other consoles count failures of the same key.
const COUNT_TRIES: usize = 8;

/// Who an attempt counts against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// A user name as typed (lower-cased, so case does not reset the count).
    User(String),
    /// The source address.
    Source(IpAddr),
}

impl Key {
    fn free(&self) -> u32 {
        match self {
            Key::User(_) => FREE_PER_USER,
            Key::Source(_) => FREE_PER_SOURCE,
        }
    }

    /// The key as the store keeps it.
    fn stored(&self) -> String {
        match self {
            Key::User(name) => format!("user:{name}"),
            Key::Source(ip) => format!("source:{ip}"),
        }
    }
}

/// The keys of one login attempt.
pub fn keys(user: &str, source: Option<IpAddr>) -> Vec<Key> {
    let mut keys = vec![Key::User(user.to_lowercase())];
    keys.extend(source.map(Key::Source));
    keys
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The count after one more failure at `now_ms`: failures older than `FORGET_AFTER` start it
/// again; past the `free` ones each failure doubles the wait (1 s, 2 s, 4 s … up to five
/// minutes).
fn after_failure(before: Option<&FailureCount>, free: u32, now_ms: i64) -> FailureCount {
    let kept = before.filter(|f| now_ms.saturating_sub(f.last_ms) < millis(FORGET_AFTER));
    let failures = kept.map_or(0, |f| f.failures).saturating_add(1);
    let wait_until_ms = match u32::try_from(failures) {
        Ok(n) if n < free => before.map_or(now_ms, |f| f.wait_until_ms),
        Ok(n) => {
            let doublings = (n - free).min(16);
            let wait = Duration::from_secs(1u64 << doublings).min(MAX_WAIT);
            now_ms.saturating_add(millis(wait))
        }
        Err(_) => now_ms.saturating_add(millis(MAX_WAIT)),
    };
    FailureCount {
        failures,
        last_ms: now_ms,
        wait_until_ms,
    }
}

/// How long is left to wait until `until_ms`, if anything.
fn wait_left(until_ms: i64, now_ms: i64) -> Option<Duration> {
    let left = until_ms.saturating_sub(now_ms);
    (left > 0).then(|| Duration::from_millis(u64::try_from(left).unwrap_or_default()))
}

/// Failed logins per user and per source address, counted in the store.
#[derive(Default)]
pub struct Throttle {
    /// Keys known to wait, and until when (epoch ms): refused without asking the store.
    waiting: Mutex<HashMap<String, i64>>,
}

impl Throttle {
    /// `Ok(Err(wait))` when any key must still wait before its next attempt.
    pub async fn check(
        &self,
        store: &Store,
        keys: &[Key],
    ) -> Result<Result<(), Duration>, StoreError> {
        let now = epoch_ms(SystemTime::now());
        let stored: Vec<String> = keys.iter().map(Key::stored).collect();
        if let Some(wait) = self.known_wait(&stored, now) {
            return Ok(Err(wait));
        }
        let mut until = now;
        for (key, count) in store.failure_counts(&stored).await? {
            self.note_wait(key, count.wait_until_ms, now);
            until = until.max(count.wait_until_ms);
        }
        Ok(wait_left(until, now).map_or(Ok(()), Err))
    }

    /// Counts a failed attempt against every key.
    pub async fn failed(&self, store: &Store, keys: &[Key]) -> Result<(), StoreError> {
        for key in keys {
            let stored = key.stored();
            let now = epoch_ms(SystemTime::now());
            if let Some(until) = count_failure(store, &stored, key.free(), now).await? {
                self.note_wait(stored, until, now);
            }
        }
        Ok(())
    }

    /// A successful login clears the user's count (the address keeps its own).
    pub async fn succeeded(&self, store: &Store, user: &str) -> Result<(), StoreError> {
        let stored = Key::User(user.to_lowercase()).stored();
        self.waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&stored);
        store.clear_failures(&stored).await
    }

    /// The longest wait this console already knows of among `keys`.
    fn known_wait(&self, keys: &[String], now_ms: i64) -> Option<Duration> {
        let waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        keys.iter()
            .filter_map(|k| waiting.get(k))
            .filter_map(|until| wait_left(*until, now_ms))
            .max()
    }

    /// Remembers that `key` waits until `until_ms`, if it does; bounded by `MAX_KEYS` (beyond,
    /// keys are simply looked up in the store each time).
    fn note_wait(&self, key: String, until_ms: i64, now_ms: i64) {
        if until_ms <= now_ms {
            return;
        }
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        if waiting.len() >= MAX_KEYS {
            waiting.retain(|_, until| *until > now_ms);
        }
        if waiting.len() < MAX_KEYS {
            waiting.insert(key, until_ms);
        }
    }
}

/// Counts one failure of `key` in the store, retrying while other consoles count failures of
/// the same key at the same time; returns until when the key now waits (`None` if the store
/// stayed too busy to count it: every other attempt of those was counted). A key counted for
/// the first time makes room by forgetting old counts.
async fn count_failure(
    store: &Store,
    key: &str,
    free: u32,
    now_ms: i64,
) -> Result<Option<i64>, StoreError> {
    let keys = [key.to_owned()];
    for _ in 0..COUNT_TRIES {
        let before = store.failure_counts(&keys).await?.pop().map(|(_, c)| c);
        let after = after_failure(before.as_ref(), free, now_ms);
        if store
            .replace_failure_count(key, before.as_ref(), &after)
            .await?
        {
            if before.is_none() {
                let forget_before = now_ms.saturating_sub(millis(FORGET_AFTER));
                let keep = i64::try_from(MAX_KEYS).unwrap_or(i64::MAX);
                store.forget_failures(forget_before, keep).await?;
            }
            return Ok(Some(after.wait_until_ms));
        }
    }
    tracing::warn!(
        key,
        "a failed attempt could not be counted: its key is too busy"
    );
    Ok(None)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// `n` failures at `now_ms`, one after the other.
    fn failures(n: u32, free: u32, now_ms: i64) -> FailureCount {
        let mut count = None;
        for _ in 0..n {
            count = Some(after_failure(count.as_ref(), free, now_ms));
        }
        count.unwrap()
    }

    #[test]
    fn a_user_waits_after_five_wrong_passwords_and_longer_each_time() {
        let now = 1_000_000;
        let four = failures(4, FREE_PER_USER, now);
        assert_eq!(wait_left(four.wait_until_ms, now), None);
        let five = after_failure(Some(&four), FREE_PER_USER, now);
        assert_eq!(
            wait_left(five.wait_until_ms, now),
            Some(Duration::from_secs(1))
        );
        let later = now + 1_000;
        assert_eq!(wait_left(five.wait_until_ms, later), None);
        let six = after_failure(Some(&five), FREE_PER_USER, later);
        assert_eq!(
            wait_left(six.wait_until_ms, later),
            Some(Duration::from_secs(2))
        );
        // The same name in another case is the same user.
        assert_eq!(keys("Admin", None), keys("ADMIN", None));
        assert_eq!(keys("Admin", None)[0].stored(), "user:admin");
    }

    #[test]
    fn one_address_guessing_many_users_waits_too() {
        let source: IpAddr = "198.51.100.7".parse().unwrap();
        let key = &keys("user1", Some(source))[1];
        assert_eq!(key.stored(), "source:198.51.100.7");
        let now = 1_000_000;
        let nineteen = failures(19, key.free(), now);
        assert_eq!(wait_left(nineteen.wait_until_ms, now), None);
        let twenty = after_failure(Some(&nineteen), key.free(), now);
        assert!(wait_left(twenty.wait_until_ms, now).is_some());
    }

    #[test]
    fn waits_are_capped_and_old_failures_forgotten() {
        let now = 1_000_000;
        let many = failures(40, FREE_PER_USER, now);
        assert_eq!(wait_left(many.wait_until_ms, now), Some(MAX_WAIT));
        let much_later = now + millis(FORGET_AFTER + MAX_WAIT);
        let again = after_failure(Some(&many), FREE_PER_USER, much_later);
        assert_eq!(again.failures, 1);
        assert_eq!(wait_left(again.wait_until_ms, much_later), None);
    }

    #[test]
    fn a_known_wait_is_answered_from_memory_and_expires() {
        let throttle = Throttle::default();
        let now = 1_000_000;
        throttle.note_wait("user:ana".into(), now + 2_000, now);
        throttle.note_wait("user:bob".into(), now, now);
        let keys = ["user:ana".to_owned(), "source:10.0.0.1".to_owned()];
        assert_eq!(
            throttle.known_wait(&keys, now),
            Some(Duration::from_secs(2))
        );
        assert_eq!(throttle.known_wait(&keys, now + 2_000), None);
        assert_eq!(throttle.known_wait(&["user:bob".to_owned()], now), None);
    }

    #[tokio::test]
    async fn guesses_counted_by_two_consoles_throttle_both() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}", dir.path().join("a.db").display()))
            .await
            .unwrap();
        let (a, b) = (Throttle::default(), Throttle::default());
        let keys = keys("ana", None);
        for n in 0..FREE_PER_USER {
            let at = if n % 2 == 0 { &a } else { &b };
            assert_eq!(at.check(&store, &keys).await.unwrap(), Ok(()));
            at.failed(&store, &keys).await.unwrap();
        }
        assert!(a.check(&store, &keys).await.unwrap().is_err());
        assert!(b.check(&store, &keys).await.unwrap().is_err());
        // A success clears the count in the store (the other console's memory may lag by
        // the wait, which only refuses).
        b.succeeded(&store, "ANA").await.unwrap();
        assert!(store
            .failure_counts(&[keys[0].stored()])
            .await
            .unwrap()
            .is_empty());
        assert_eq!(b.check(&store, &keys).await.unwrap(), Ok(()));
    }
}
