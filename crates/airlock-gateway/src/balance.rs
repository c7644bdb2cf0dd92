//! Endpoints and how a request picks one: round-robin or least-request with the power of two
//! choices, or consistent hashing (a ring hash or Maglev table over the endpoints' instance ids,
//! so every replica maps a request hash to the same instance), over the endpoints that may take
//! traffic (healthy by active checks, not ejected by passive ones). The endpoint set is built off the hot path and swapped whole, so picking takes
//! no lock. Pure: the clock is passed in as milliseconds.

use crate::config::{HashKey, HashPolicy, Hashing, MAX_RING_SIZE};
use crate::filter::TagFilter;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// How requests are spread over an upstream's endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
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

    /// The endpoint's health in a word, as `/endpoints` and the console's reports say it:
    /// `unhealthy` (active checks), `ejected` (passive health) or `healthy`.
    pub fn word(&self, now_ms: u64) -> &'static str {
        if !self.healthy.load(Ordering::Relaxed) {
            "unhealthy"
        } else if self.ejected(now_ms) {
            "ejected"
        } else {
            "healthy"
        }
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
                // Read first: every thread's answers land here, and a store on every one would
                // bounce the cache line between cores.
                if self.consecutive_5xx.load(Ordering::Relaxed) != 0 {
                    self.consecutive_5xx.store(0, Ordering::Relaxed);
                }
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

/// The endpoints of one upstream, ordered by instance id, plus a round-robin cursor and, for
/// upstreams with consistent hashing, the table requests are hashed into.
#[derive(Debug, Default)]
pub struct EndpointSet {
    /// Ordered by instance id so every replica sees the same list.
    pub endpoints: Vec<Endpoint>,
    cursor: AtomicUsize,
    table: Option<HashTable>,
}

/// A 64-bit hash that is the same in every process and every version (FNV-1a, then the
/// splitmix64 finalizer to spread FNV's weak low bits): replicas must agree on it.
pub fn stable_hash(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The hash of a request under a route's hash policies, as Envoy computes it: each policy that
/// finds its value is folded in (`rotl(h, 1) ^ new`), and a `terminal` one that found its value
/// ends the list. `None` when no policy found a value (the upstream's policy then decides).
pub fn request_hash<'a>(
    policies: &[HashPolicy],
    header: impl Fn(&str) -> Option<&'a [u8]>,
    source_ip: std::net::IpAddr,
) -> Option<u64> {
    let mut hash: Option<u64> = None;
    for p in policies {
        let found = match &p.key {
            HashKey::Header(name) => header(name).map(stable_hash),
            HashKey::SourceIp => Some(stable_hash(source_ip.to_string().as_bytes())),
        };
        if let Some(new) = found {
            hash = Some(hash.map_or(new, |h| h.rotate_left(1) ^ new));
            if p.terminal {
                break;
            }
        }
    }
    hash
}

/// Where hashes land: indexes into the (instance-id ordered) endpoints.
#[derive(Debug)]
enum HashTable {
    /// Points on a ring, sorted, each owned by an endpoint.
    Ring(Vec<(u64, u32)>),
    /// Maglev's lookup table (a prime number of slots).
    Maglev(Vec<u32>),
}

/// Ring hash gives each endpoint `minimumRingSize / RING_POINTS_DIVISOR` points (128 by
/// default): enough for an even spread, and fixed, so membership changes move only the keys of
/// the endpoints that came or went.
pub const RING_POINTS_DIVISOR: usize = 8;

/// Maglev's table size: a prime well above the number of endpoints times 100 (Envoy's default).
const MAGLEV_SIZE: usize = 65_537;

impl HashTable {
    fn build(hashing: Hashing, endpoints: &[Endpoint]) -> Option<HashTable> {
        let n = endpoints.len();
        if n == 0 {
            return None;
        }
        Some(match hashing {
            Hashing::RingHash { ring_size } => {
                // The same number of points for every endpoint whatever their number (Envoy
                // divides the ring among them instead), so when one leaves, the others' points
                // stay where they were and only its keys move.
                let per_endpoint = (ring_size / RING_POINTS_DIVISOR)
                    .max(1)
                    .min((MAX_RING_SIZE / n).max(1));
                let mut ring = Vec::with_capacity(per_endpoint * n);
                for (i, e) in endpoints.iter().enumerate() {
                    for r in 0..per_endpoint {
                        let point = stable_hash(format!("{}_{r}", e.instance_id).as_bytes());
                        ring.push((point, u32::try_from(i).unwrap_or(u32::MAX)));
                    }
                }
                ring.sort_unstable();
                HashTable::Ring(ring)
            }
            Hashing::Maglev => HashTable::Maglev(maglev_table(endpoints)),
        })
    }

    fn len(&self) -> usize {
        match self {
            HashTable::Ring(r) => r.len(),
            HashTable::Maglev(t) => t.len(),
        }
    }

    /// The position `hash` lands on.
    fn start(&self, hash: u64) -> usize {
        match self {
            HashTable::Ring(ring) => ring.partition_point(|(p, _)| *p < hash) % ring.len(),
            HashTable::Maglev(table) => (hash % table.len() as u64) as usize,
        }
    }

    /// The endpoint index at a position.
    fn slot(&self, k: usize) -> Option<usize> {
        match self {
            HashTable::Ring(ring) => ring.get(k).map(|(_, i)| *i as usize),
            HashTable::Maglev(table) => table.get(k).map(|i| *i as usize),
        }
    }
}

/// Maglev's lookup table: each endpoint in turn takes the next free slot of its own
/// permutation of the table, until every slot is taken.
#[expect(
    clippy::indexing_slicing,
    reason = "slots are taken modulo the table's length, and `i` enumerates `perms`, as long as `next`"
)]
fn maglev_table(endpoints: &[Endpoint]) -> Vec<u32> {
    let m = MAGLEV_SIZE as u64;
    let perms: Vec<(u64, u64)> = endpoints
        .iter()
        .map(|e| {
            let id = e.instance_id.as_bytes();
            let offset = stable_hash(id) % m;
            let skip = stable_hash(&[id, b"#skip"].concat()) % (m - 1) + 1;
            (offset, skip)
        })
        .collect();
    let mut next = vec![0u64; perms.len()];
    let mut table = vec![u32::MAX; MAGLEV_SIZE];
    let mut filled = 0;
    loop {
        for (i, (offset, skip)) in perms.iter().enumerate() {
            let mut c = (offset + next[i] * skip) % m;
            while table[c as usize] != u32::MAX {
                next[i] += 1;
                c = (offset + next[i] * skip) % m;
            }
            table[c as usize] = u32::try_from(i).unwrap_or(u32::MAX);
            next[i] += 1;
            filled += 1;
            if filled == MAGLEV_SIZE {
                return table;
            }
        }
    }
}

impl EndpointSet {
    /// A set over these endpoints (sorted here), starting the cursor where the old set was.
    pub fn new(mut endpoints: Vec<Endpoint>, cursor: usize) -> Self {
        endpoints.sort_by(|a, b| a.instance_id.cmp(&b.instance_id).then(a.addr.cmp(&b.addr)));
        EndpointSet {
            endpoints,
            cursor: AtomicUsize::new(cursor),
            table: None,
        }
    }

    /// The same set with a consistent-hashing table, when the upstream has one.
    pub fn with_hashing(mut self, hashing: Option<Hashing>) -> Self {
        self.table = hashing.and_then(|h| HashTable::build(h, &self.endpoints));
        self
    }

    /// True when requests with a hash are placed by consistent hashing.
    pub fn hashed(&self) -> bool {
        self.table.is_some()
    }

    /// Picks the endpoint that owns `hash`, or when it may not take traffic (or is `exclude`),
    /// the next one along the ring or table — so only that endpoint's requests move.
    pub fn pick_hashed(
        &self,
        hash: u64,
        now_ms: u64,
        exclude: Option<SocketAddr>,
    ) -> Option<&Endpoint> {
        let table = self.table.as_ref()?;
        let usable = |i: usize| {
            self.endpoints
                .get(i)
                .filter(|e| e.health.available(now_ms) && Some(e.addr) != exclude)
        };
        let start = table.start(hash);
        // The owner, almost always.
        if let Some(e) = table.slot(start).and_then(usable) {
            return Some(e);
        }
        // Otherwise the next endpoints along the ring (or table), each looked at once.
        let mut seen = vec![false; self.endpoints.len()];
        let mut left = self.endpoints.len();
        for k in (start..table.len()).chain(0..start) {
            let Some(i) = table.slot(k) else { continue };
            match seen.get_mut(i) {
                Some(seen) if !*seen => *seen = true,
                _ => continue,
            }
            if let Some(e) = usable(i) {
                return Some(e);
            }
            left -= 1;
            if left == 0 {
                break;
            }
        }
        None
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
                let start = self.cursor.fetch_add(1, Ordering::Relaxed) % n;
                let (before, from) = self.endpoints.split_at(start);
                from.iter().chain(before).find(|e| usable(e))
            }
            Policy::LeastRequest => {
                let candidates: Vec<&Endpoint> = self.endpoints.iter().filter(usable).collect();
                match candidates.len() {
                    0 => None,
                    1 => candidates.first().copied(),
                    m => {
                        let a = candidates.get(random(m) % m)?;
                        let b = candidates.get(random(m) % m)?;
                        let load = |e: &Endpoint| e.health.in_flight.load(Ordering::Relaxed);
                        Some(if load(b) < load(a) { *b } else { *a })
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

    fn many(n: usize) -> Vec<Endpoint> {
        (0..n)
            .map(|i| ep(&format!("i-{i:04}"), u8::try_from(i % 250).unwrap()))
            .collect()
    }

    fn owners(set: &EndpointSet, keys: usize) -> Vec<String> {
        (0..keys)
            .map(|k| {
                let h = stable_hash(format!("user-{k}").as_bytes());
                set.pick_hashed(h, 0, None).unwrap().instance_id.clone()
            })
            .collect()
    }

    fn check_consistency(hashing: Hashing, max_moved_elsewhere: f64) {
        let full = EndpointSet::new(many(10), 0).with_hashing(Some(hashing));
        // The same key lands on the same endpoint, in any replica (a set built separately,
        // from endpoints listed in another order).
        let mut shuffled = many(10);
        shuffled.reverse();
        let replica = EndpointSet::new(shuffled, 7).with_hashing(Some(hashing));
        let before = owners(&full, 5000);
        assert_eq!(before, owners(&replica, 5000));
        assert_eq!(before, owners(&full, 5000));
        // Every endpoint gets a fair share.
        for e in &full.endpoints {
            let share = before.iter().filter(|o| **o == e.instance_id).count();
            assert!(
                (250..=750).contains(&share),
                "{hashing:?}: {} got {share}/5000",
                e.instance_id
            );
        }
        // Removing one endpoint moves its keys, and (almost) only those.
        let gone = "i-0003";
        let fewer: Vec<Endpoint> = many(10)
            .into_iter()
            .filter(|e| e.instance_id != gone)
            .collect();
        let after = owners(
            &EndpointSet::new(fewer, 0).with_hashing(Some(hashing)),
            5000,
        );
        let kept = before.iter().filter(|o| *o != gone).count();
        let moved = before
            .iter()
            .zip(&after)
            .filter(|(b, a)| *b != gone && b != a)
            .count();
        assert!(
            (moved as f64) <= max_moved_elsewhere * kept as f64,
            "{hashing:?}: {moved} of {kept} keys of other endpoints moved"
        );
        assert!(after.iter().all(|o| o != gone));
        // An endpoint that may not take traffic gives its keys to the next one, others stay.
        full.endpoints[3]
            .health
            .record_response(Outcome::ConnectFailure, 0, 1000, 5);
        let ejected: Vec<String> = (0..5000)
            .map(|k| {
                let h = stable_hash(format!("user-{k}").as_bytes());
                full.pick_hashed(h, 10, None).unwrap().instance_id.clone()
            })
            .collect();
        for (b, e) in before.iter().zip(&ejected) {
            if b != gone {
                assert_eq!(b, e, "{hashing:?}: only the ejected endpoint's keys move");
            }
        }
    }

    #[test]
    fn ring_hash_is_consistent_and_moves_only_the_removed_share() {
        check_consistency(Hashing::RingHash { ring_size: 1024 }, 0.0);
    }

    #[test]
    fn maglev_is_consistent_and_moves_little_beyond_the_removed_share() {
        // Maglev trades a little disruption for even load: a few percent at most.
        check_consistency(Hashing::Maglev, 0.05);
    }

    #[test]
    fn request_hashes_follow_envoys_hash_policies() {
        let policies = vec![
            HashPolicy {
                key: HashKey::Header("x-user".into()),
                terminal: true,
            },
            HashPolicy {
                key: HashKey::SourceIp,
                terminal: false,
            },
        ];
        let ip: std::net::IpAddr = "127.0.0.9".parse().unwrap();
        let with_user = |name: &str| -> Option<&'static [u8]> {
            (name == "x-user").then_some(b"ana".as_slice())
        };
        let a = request_hash(&policies, with_user, ip);
        assert_eq!(
            a,
            Some(stable_hash(b"ana")),
            "terminal: the source ip is not folded in"
        );
        let b = request_hash(&policies, |_| None, ip);
        assert_eq!(b, Some(stable_hash(b"127.0.0.9")));
        assert_eq!(request_hash(&policies[..1], |_| None, ip), None);
        assert_ne!(stable_hash(b"a"), stable_hash(b"b"));
    }
}
