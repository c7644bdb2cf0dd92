//! The refresh endpoint is open to the network (instances have no console login), so what an
//! unauthenticated caller can make the console do is bounded here: requests per source address
//! per minute, and how many audit records its refusals write (the first refusal of a window is
//! recorded; the rest are counted and recorded as one summary when the next window opens).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The window requests and refusals are counted in.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Refresh requests one address may make per window (an instance refreshes about hourly).
const REQUESTS_PER_WINDOW: u32 = 30;
/// Addresses kept at most; beyond, the table starts again.
const MAX_SOURCES: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    requests: u32,
    refusals: u32,
}

/// What to do with a refusal for the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalRecord {
    /// Record it (the first of its window), after recording that `earlier_unrecorded` refusals
    /// of the previous window went unrecorded, when there were any.
    Record {
        /// Refusals of the source's previous window that were only counted.
        earlier_unrecorded: u32,
    },
    /// Only count it.
    Count,
}

/// Requests and refusals per source address.
#[derive(Default)]
pub struct RefreshGuard {
    sources: Mutex<HashMap<IpAddr, Window>>,
}

impl RefreshGuard {
    fn with_window<T>(
        &self,
        source: IpAddr,
        now: Instant,
        f: impl FnOnce(&mut Window, u32) -> T,
    ) -> T {
        let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        if sources.len() >= MAX_SOURCES && !sources.contains_key(&source) {
            sources.retain(|_, w| now.saturating_duration_since(w.started) < WINDOW);
            if sources.len() >= MAX_SOURCES {
                sources.clear();
            }
        }
        let window = sources.entry(source).or_insert(Window {
            started: now,
            requests: 0,
            refusals: 0,
        });
        let mut carried = 0;
        if now.saturating_duration_since(window.started) >= WINDOW {
            carried = window.refusals.saturating_sub(1);
            *window = Window {
                started: now,
                requests: 0,
                refusals: 0,
            };
        }
        f(window, carried)
    }

    /// `Err(wait)` when the source has used up its requests for this window.
    ///
    /// Of `nodes` consoles behind one balancer each admits its share of the window's requests,
    /// so an address gets no more from the cluster than from one console, and counting costs
    /// no database write per request (refresh is open to anyone who can reach the console).
    pub fn admit(&self, source: IpAddr, now: Instant, nodes: i64) -> Result<(), Duration> {
        let share = share_of(REQUESTS_PER_WINDOW, nodes);
        self.with_window(source, now, |w, _| {
            if w.requests >= share {
                Err(WINDOW.saturating_sub(now.saturating_duration_since(w.started)))
            } else {
                w.requests += 1;
                Ok(())
            }
        })
    }

    /// Whether a refusal for `source` is recorded or only counted.
    pub fn refusal(&self, source: IpAddr, now: Instant) -> RefusalRecord {
        self.with_window(source, now, |w, carried| {
            w.refusals += 1;
            if w.refusals == 1 {
                RefusalRecord::Record {
                    earlier_unrecorded: carried,
                }
            } else {
                RefusalRecord::Count
            }
        })
    }
}

/// One node's share of `limit` among `nodes` (at least one request each, rounded up).
fn share_of(limit: u32, nodes: i64) -> u32 {
    let nodes = u32::try_from(nodes.max(1)).unwrap_or(u32::MAX);
    limit.div_ceil(nodes).max(1)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_source_gets_thirty_requests_a_minute() {
        let g = RefreshGuard::default();
        let now = Instant::now();
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        for _ in 0..30 {
            assert!(g.admit(ip, now, 1).is_ok());
        }
        assert!(g.admit(ip, now, 1).is_err());
        assert!(g.admit("10.0.0.10".parse().unwrap(), now, 1).is_ok());
        assert!(g.admit(ip, now + WINDOW, 1).is_ok());
    }

    #[test]
    fn an_address_spreading_refreshes_over_three_consoles_gets_no_more_than_from_one() {
        let nodes: Vec<RefreshGuard> = (0..3).map(|_| RefreshGuard::default()).collect();
        let now = Instant::now();
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        let admitted = (0..90)
            .filter(|i| nodes[i % 3].admit(ip, now, 3).is_ok())
            .count();
        assert_eq!(admitted, 30);
        assert_eq!(share_of(30, 0), 30);
        assert_eq!(share_of(30, 7), 5);
        assert_eq!(share_of(30, 100), 1);
    }

    #[test]
    fn refusals_collapse_into_one_record_per_window_with_a_count() {
        let g = RefreshGuard::default();
        let now = Instant::now();
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        assert_eq!(
            g.refusal(ip, now),
            RefusalRecord::Record {
                earlier_unrecorded: 0
            }
        );
        for _ in 0..199 {
            assert_eq!(g.refusal(ip, now), RefusalRecord::Count);
        }
        assert_eq!(
            g.refusal(ip, now + WINDOW),
            RefusalRecord::Record {
                earlier_unrecorded: 199
            }
        );
    }
}
