//! Login throttling: after a few wrong passwords for one user, or many from one address, every
//! further attempt waits, longer each time, and is answered `429` without the password being
//! checked, so a password-guessing flood costs the console almost nothing and gets nowhere.
//!
//! The state is kept in this console process, bounded; several consoles each throttle alone.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
/// Keys kept at most; beyond, the oldest are forgotten.
const MAX_KEYS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    wait_until: Instant,
}

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
}

/// The keys of one login attempt.
pub fn keys(user: &str, source: Option<IpAddr>) -> Vec<Key> {
    let mut keys = vec![Key::User(user.to_lowercase())];
    keys.extend(source.map(Key::Source));
    keys
}

/// Failed logins per user and per source address.
#[derive(Default)]
pub struct Throttle {
    failures: Mutex<HashMap<Key, Failures>>,
}

impl Throttle {
    /// `Err(wait)` when any key must still wait before its next attempt.
    pub fn check(&self, keys: &[Key], now: Instant) -> Result<(), Duration> {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let wait = keys
            .iter()
            .filter_map(|k| failures.get(k))
            .map(|f| f.wait_until.saturating_duration_since(now))
            .max()
            .unwrap_or_default();
        if wait.is_zero() {
            Ok(())
        } else {
            Err(wait)
        }
    }

    /// Counts a failed attempt against every key; past the free attempts each failure doubles
    /// the wait (1 s, 2 s, 4 s … up to five minutes).
    pub fn failed(&self, keys: &[Key], now: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() + keys.len() > MAX_KEYS {
            failures.retain(|_, f| now.saturating_duration_since(f.last) < FORGET_AFTER);
            if failures.len() + keys.len() > MAX_KEYS {
                let mut by_age: Vec<(Key, Instant)> =
                    failures.iter().map(|(k, f)| (k.clone(), f.last)).collect();
                by_age.sort_by_key(|(_, last)| *last);
                for (k, _) in by_age.into_iter().take(MAX_KEYS / 2) {
                    failures.remove(&k);
                }
            }
        }
        for key in keys {
            let f = failures.entry(key.clone()).or_insert(Failures {
                count: 0,
                last: now,
                wait_until: now,
            });
            if now.saturating_duration_since(f.last) >= FORGET_AFTER {
                f.count = 0;
            }
            f.count += 1;
            f.last = now;
            if f.count >= key.free() {
                let doublings = (f.count - key.free()).min(16);
                let wait = Duration::from_secs(1u64 << doublings).min(MAX_WAIT);
                f.wait_until = now + wait;
            }
        }
    }

    /// A successful login clears the user's count (the address keeps its own).
    pub fn succeeded(&self, user: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.remove(&Key::User(user.to_lowercase()));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_user_waits_after_five_wrong_passwords_and_longer_each_time() {
        let t = Throttle::default();
        let now = Instant::now();
        let keys = keys("Admin", None);
        for _ in 0..4 {
            assert!(t.check(&keys, now).is_ok());
            t.failed(&keys, now);
        }
        assert!(t.check(&keys, now).is_ok());
        t.failed(&keys, now);
        assert_eq!(t.check(&keys, now), Err(Duration::from_secs(1)));
        let later = now + Duration::from_secs(1);
        assert!(t.check(&keys, later).is_ok());
        t.failed(&keys, later);
        assert_eq!(t.check(&keys, later), Err(Duration::from_secs(2)));
        // The same name in another case is the same user.
        assert!(t.check(&super::keys("ADMIN", None), later).is_err());
        t.succeeded("admin");
        assert!(t.check(&keys, later).is_ok());
    }

    #[test]
    fn one_address_guessing_many_users_waits_too() {
        let t = Throttle::default();
        let now = Instant::now();
        let source: IpAddr = "198.51.100.7".parse().unwrap();
        for i in 0..20 {
            t.failed(&keys(&format!("user{i}"), Some(source)), now);
        }
        assert!(t.check(&keys("someone-else", Some(source)), now).is_err());
        assert!(t.check(&keys("someone-else", None), now).is_ok());
    }

    #[test]
    fn waits_are_capped_and_old_failures_forgotten() {
        let t = Throttle::default();
        let now = Instant::now();
        let keys = keys("bob", None);
        for _ in 0..40 {
            t.failed(&keys, now);
        }
        assert_eq!(t.check(&keys, now), Err(MAX_WAIT));
        let much_later = now + FORGET_AFTER + MAX_WAIT;
        t.failed(&keys, much_later);
        assert!(t.check(&keys, much_later).is_ok());
    }
}
