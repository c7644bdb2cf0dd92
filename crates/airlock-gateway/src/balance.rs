//! Endpoints and how a request picks one: round-robin or least-request with the power of two
//! choices, over the endpoints that may take traffic (healthy by active checks, not ejected by
//! passive ones). The endpoint set is built off the hot path and swapped whole, so picking takes
//! no lock. Pure: the clock is passed in as milliseconds.

use crate::filter::TagFilter;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// How requests are spread over an upstream's endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Each endpoint in turn.
    RoundRobin,
    /// The less busy of two endpoints picked at random (power of two choices).
    LeastRequest,
}

/// Live state of one address, shared by every upstream it is in and kept across refreshes.
#[derive(Debug)]
pub struct Health {
    /// The active checks' verdict (starts healthy, so new instances take traffic at once).
    pub healthy: AtomicBool,
    /// Consecutive successful active checks.
    pub successes: AtomicU32,
    /// Consecutive failed active checks.
    pub failures: AtomicU32,
    /// Passive ejection: no traffic before this many ms since the gateway's epoch.
    pub ejected_until_ms: AtomicU64,
    /// Consecutive 5xx answers seen by the proxy.
    pub consecutive_5xx: AtomicU32,
    /// Requests in flight right now.
    pub in_flight: AtomicUsize,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            healthy: AtomicBool::new(true),
            successes: AtomicU32::new(0),
            failures: AtomicU32::new(0),
            ejected_until_ms: AtomicU64::new(0),
            consecutive_5xx: AtomicU32::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }
}

impl Health {
    /// True when this endpoint may take a new request now.
    pub fn available(&self, now_ms: u64) -> bool {
        self.healthy.load(Ordering::Relaxed)
            && self.ejected_until_ms.load(Ordering::Relaxed) <= now_ms
    }

    /// True when passive ejection is in force.
    pub fn ejected(&self, now_ms: u64) -> bool {
        self.ejected_until_ms.load(Ordering::Relaxed) > now_ms
    }

    /// Records an active check; flips the verdict only after `threshold` consecutive results
    /// the other way. Returns the new verdict when it flipped.
    pub fn record_check(
        &self,
        ok: bool,
        healthy_threshold: u32,
        unhealthy_threshold: u32,
    ) -> Option<bool> {
        if ok {
            self.failures.store(0, Ordering::Relaxed);
            let n = self
                .successes
                .fetch_add(1, Ordering::Relaxed)
                .saturating_add(1);
            if !self.healthy.load(Ordering::Relaxed) && n >= healthy_threshold.max(1) {
                self.healthy.store(true, Ordering::Relaxed);
                // A recovered endpoint is also forgiven its passive ejection.
                self.ejected_until_ms.store(0, Ordering::Relaxed);
                return Some(true);
            }
        } else {
            self.successes.store(0, Ordering::Relaxed);
            let n = self
                .failures
                .fetch_add(1, Ordering::Relaxed)
                .saturating_add(1);
            if self.healthy.load(Ordering::Relaxed) && n >= unhealthy_threshold.max(1) {
                self.healthy.store(false, Ordering::Relaxed);
                return Some(false);
            }
        }
        None
    }

    /// Passive ejection after a connect failure, or after `max_5xx` consecutive 5xx answers.
    /// Returns true when this call ejected the endpoint.
    pub fn record_response(
        &self,
        outcome: Outcome,
        now_ms: u64,
        eject_ms: u64,
        max_5xx: u32,
    ) -> bool {
        match outcome {
            Outcome::Ok => {
                self.consecutive_5xx.store(0, Ordering::Relaxed);
                false
            }
            Outcome::ServerError => {
                let n = self
                    .consecutive_5xx
                    .fetch_add(1, Ordering::Relaxed)
                    .saturating_add(1);
                if n >= max_5xx.max(1) {
                    self.consecutive_5xx.store(0, Ordering::Relaxed);
                    self.ejected_until_ms
                        .store(now_ms + eject_ms, Ordering::Relaxed);
                    true
                } else {
                    false
                }
            }
            Outcome::ConnectFailure => {
                self.ejected_until_ms
                    .store(now_ms + eject_ms, Ordering::Relaxed);
                true
            }
        }
    }
}

/// What happened to a proxied request, as passive health sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// An answer below 500.
    Ok,
    /// A 5xx answer.
    ServerError,
    /// No connection could be made.
    ConnectFailure,
}

/// One instance address in one upstream.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The instance.
    pub instance_id: String,
    /// Where to connect.
    pub addr: SocketAddr,
    /// The instance state when last listed (`running`).
    pub state: String,
    /// The filters of the upstream that matched (all of them, by construction), for `/endpoints`.
    pub matched_filters: Vec<TagFilter>,
    /// Shared live state.
    pub health: Arc<Health>,
}

/// The endpoints of one upstream, ordered by instance id, plus a round-robin cursor.
#[derive(Debug, Default)]
pub struct EndpointSet {
    /// Ordered by instance id so every replica sees the same list.
    pub endpoints: Vec<Endpoint>,
    cursor: AtomicUsize,
}

impl EndpointSet {
    /// A set over these endpoints (sorted here), starting the cursor where the old set was.
    pub fn new(mut endpoints: Vec<Endpoint>, cursor: usize) -> Self {
        endpoints.sort_by(|a, b| a.instance_id.cmp(&b.instance_id).then(a.addr.cmp(&b.addr)));
        EndpointSet {
            endpoints,
            cursor: AtomicUsize::new(cursor),
        }
    }

    /// The round-robin cursor, to carry over into the next set.
    pub fn cursor(&self) -> usize {
        self.cursor.load(Ordering::Relaxed)
    }

    /// Picks an available endpoint not in `exclude`; `random` supplies randomness for P2C.
    pub fn pick(
        &self,
        policy: Policy,
        now_ms: u64,
        exclude: Option<SocketAddr>,
        mut random: impl FnMut(usize) -> usize,
    ) -> Option<&Endpoint> {
        let usable = |e: &&Endpoint| e.health.available(now_ms) && Some(e.addr) != exclude;
        let n = self.endpoints.len();
        if n == 0 {
            return None;
        }
        match policy {
            Policy::RoundRobin => {
                let start = self.cursor.fetch_add(1, Ordering::Relaxed);
                (0..n)
                    .map(|i| &self.endpoints[(start + i) % n])
                    .find(|e| usable(e))
            }
            Policy::LeastRequest => {
                let candidates: Vec<&Endpoint> = self.endpoints.iter().filter(usable).collect();
                match candidates.len() {
                    0 => None,
                    1 => candidates.first().copied(),
                    m => {
                        let a = candidates[random(m) % m];
                        let b = candidates[random(m) % m];
                        let load = |e: &Endpoint| e.health.in_flight.load(Ordering::Relaxed);
                        Some(if load(b) < load(a) { b } else { a })
                    }
                }
            }
        }
    }

    /// How many endpoints may take traffic now.
    pub fn available(&self, now_ms: u64) -> usize {
        self.endpoints
            .iter()
            .filter(|e| e.health.available(now_ms))
            .count()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ep(id: &str, last: u8) -> Endpoint {
        Endpoint {
            instance_id: id.into(),
            addr: SocketAddr::from(([127, 0, 0, last], 80)),
            state: "running".into(),
            matched_filters: vec![],
            health: Arc::new(Health::default()),
        }
    }

    #[test]
    fn round_robin_spreads_evenly_in_instance_id_order() {
        let set = EndpointSet::new(vec![ep("i-c", 3), ep("i-a", 1), ep("i-b", 2)], 0);
        let picks: Vec<_> = (0..6)
            .map(|_| {
                set.pick(Policy::RoundRobin, 0, None, |_| 0)
                    .unwrap()
                    .instance_id
                    .clone()
            })
            .collect();
        assert_eq!(picks, ["i-a", "i-b", "i-c", "i-a", "i-b", "i-c"]);
    }

    #[test]
    fn unavailable_and_excluded_endpoints_are_skipped() {
        let set = EndpointSet::new(vec![ep("i-a", 1), ep("i-b", 2), ep("i-c", 3)], 0);
        set.endpoints[1]
            .health
            .record_response(Outcome::ConnectFailure, 100, 1000, 5);
        for _ in 0..6 {
            let e = set.pick(Policy::RoundRobin, 500, None, |_| 0).unwrap();
            assert_ne!(e.instance_id, "i-b");
        }
        // After the ejection ends it comes back.
        assert_eq!(set.available(1100), 3);
        let only_a = EndpointSet::new(vec![ep("i-a", 1)], 0);
        let a = only_a.endpoints[0].addr;
        assert!(only_a.pick(Policy::RoundRobin, 0, Some(a), |_| 0).is_none());
        assert!(EndpointSet::default()
            .pick(Policy::LeastRequest, 0, None, |_| 0)
            .is_none());
    }

    #[test]
    fn least_request_prefers_the_idle_of_two() {
        let set = EndpointSet::new(vec![ep("i-a", 1), ep("i-b", 2)], 0);
        set.endpoints[0]
            .health
            .in_flight
            .store(5, Ordering::Relaxed);
        let mut seq = [0usize, 1].into_iter().cycle();
        for _ in 0..4 {
            let e = set
                .pick(Policy::LeastRequest, 0, None, |_| seq.next().unwrap())
                .unwrap();
            assert_eq!(e.instance_id, "i-b");
        }
    }

    #[test]
    fn health_flips_only_after_consecutive_results() {
        let h = Health::default();
        assert_eq!(h.record_check(false, 2, 3), None);
        assert_eq!(h.record_check(false, 2, 3), None);
        assert_eq!(
            h.record_check(true, 2, 3),
            None,
            "a success resets the failure run"
        );
        assert_eq!(h.record_check(false, 2, 3), None);
        assert_eq!(h.record_check(false, 2, 3), None);
        assert_eq!(h.record_check(false, 2, 3), Some(false));
        assert!(!h.available(0));
        assert_eq!(h.record_check(true, 2, 3), None);
        assert_eq!(h.record_check(true, 2, 3), Some(true));
        assert!(h.available(0));
    }

    #[test]
    fn consecutive_5xx_eject() {
        let h = Health::default();
        assert!(!h.record_response(Outcome::ServerError, 0, 100, 3));
        assert!(!h.record_response(Outcome::Ok, 0, 100, 3));
        assert!(!h.record_response(Outcome::ServerError, 0, 100, 3));
        assert!(!h.record_response(Outcome::ServerError, 0, 100, 3));
        assert!(h.record_response(Outcome::ServerError, 0, 100, 3));
        assert!(h.ejected(50) && !h.ejected(100));
    }
}
