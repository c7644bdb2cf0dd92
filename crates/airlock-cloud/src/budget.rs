//! One EC2 request budget per account and region. EC2 throttles API calls per account and
//! region with a token bucket (`RequestLimitExceeded`); every console feature sharing one
//! local bucket of the same shape keeps the console under that limit instead of finding it by
//! failing, and slows down further (and recovers slowly) when EC2 says it is still too fast.
//!
//! Pure logic: time comes from a [`Clock`], and the caller does the waiting. Callers reserve
//! their turn in call order, so a busy caller is served no sooner than one that came first.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The configured rate and burst of one budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetSettings {
    /// Requests per second refilled.
    pub rate: f64,
    /// Requests that may be made at once after a quiet while.
    pub burst: u32,
}

impl Default for BudgetSettings {
    /// EC2's documented bucket for non-mutating actions: 100 at once, refilled 20 a second.
    fn default() -> Self {
        BudgetSettings {
            rate: 20.0,
            burst: 100,
        }
    }
}

/// Where a budget reads the time.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> Instant;
}

/// The monotonic clock of the machine.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// The lowest rate a budget slows down to, as a share of the configured one.
const FLOOR_SHARE: f64 = 0.05;
/// The lowest rate at all, whatever the configured one: a budget never stops.
const MIN_RATE: f64 = 0.1;
/// A throttle cuts the rate by this factor.
const DECREASE: f64 = 0.5;
/// Throttles closer together than this cut the rate once: they answer requests sent before
/// the first cut took effect.
const DECREASE_GAP: Duration = Duration::from_secs(1);
/// Successes needed to climb from the floor back to the configured rate.
const RECOVERY_SUCCESSES: f64 = 50.0;

/// A token bucket whose rate adapts to throttling: cut on a throttle, raised by a step on
/// each success up to the configured rate.
#[derive(Debug)]
struct Bucket {
    settings: BudgetSettings,
    rate: f64,
    /// Below zero: turns already reserved ahead of the refill.
    tokens: f64,
    updated: Instant,
    last_decrease: Option<Instant>,
}

impl Bucket {
    fn new(settings: BudgetSettings, now: Instant) -> Bucket {
        let settings = BudgetSettings {
            rate: settings.rate.max(MIN_RATE),
            burst: settings.burst.max(1),
        };
        Bucket {
            settings,
            rate: settings.rate,
            tokens: f64::from(settings.burst),
            updated: now,
            last_decrease: None,
        }
    }

    fn floor(&self) -> f64 {
        (self.settings.rate * FLOOR_SHARE).max(MIN_RATE)
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(f64::from(self.settings.burst));
        self.updated = self.updated.max(now);
    }

    fn reserve(&mut self, now: Instant) -> Duration {
        self.refill(now);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }

    fn refund(&mut self, now: Instant) {
        self.refill(now);
        self.tokens = (self.tokens + 1.0).min(f64::from(self.settings.burst));
    }

    fn throttled(&mut self, now: Instant) {
        self.refill(now);
        // EC2's bucket is empty: so is ours, whatever it thought.
        self.tokens = self.tokens.min(0.0);
        let recent = self
            .last_decrease
            .is_some_and(|at| now.saturating_duration_since(at) < DECREASE_GAP);
        if !recent {
            self.rate = (self.rate * DECREASE).max(self.floor());
            self.last_decrease = Some(now);
        }
    }

    fn succeeded(&mut self, now: Instant) {
        self.refill(now);
        let step = (self.settings.rate - self.floor()) / RECOVERY_SUCCESSES;
        self.rate = (self.rate + step).min(self.settings.rate);
    }
}

/// One account and region's budget, shared by every caller of its EC2 client.
pub struct Budget {
    clock: Arc<dyn Clock>,
    bucket: Mutex<Bucket>,
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget")
            .field("bucket", &*self.lock())
            .finish_non_exhaustive()
    }
}

impl Budget {
    /// A full budget on the machine's clock.
    pub fn new(settings: BudgetSettings) -> Budget {
        Budget::with_clock(settings, Arc::new(SystemClock))
    }

    /// A full budget reading time from `clock`.
    pub fn with_clock(settings: BudgetSettings, clock: Arc<dyn Clock>) -> Budget {
        let now = clock.now();
        Budget {
            clock,
            bucket: Mutex::new(Bucket::new(settings, now)),
        }
    }

    /// Takes the next turn: how long to wait before making the request. Turns are handed out
    /// in call order.
    pub fn reserve(&self) -> Duration {
        let now = self.clock.now();
        self.lock().reserve(now)
    }

    /// Gives back a turn that was reserved and not used (its caller went away).
    pub fn refund(&self) {
        let now = self.clock.now();
        self.lock().refund(now);
    }

    /// EC2 answered that requests come too fast: slow down.
    pub fn throttled(&self) {
        let now = self.clock.now();
        self.lock().throttled(now);
    }

    /// A request went through: speed up a step, up to the configured rate.
    pub fn succeeded(&self) {
        let now = self.clock.now();
        self.lock().succeeded(now);
    }

    /// The rate allowed now, in requests per second.
    pub fn rate(&self) -> f64 {
        self.lock().rate
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Bucket> {
        // The bucket is a few numbers, consistent after every method: usable after a panic.
        self.bucket.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clock the test moves.
    struct Manual(Mutex<Instant>);

    impl Manual {
        fn advance(&self, by: Duration) {
            *self.0.lock().unwrap() += by;
        }
    }

    impl Clock for Manual {
        fn now(&self) -> Instant {
            *self.0.lock().unwrap()
        }
    }

    fn budget(rate: f64, burst: u32) -> (Budget, Arc<Manual>) {
        let clock = Arc::new(Manual(Mutex::new(Instant::now())));
        (
            Budget::with_clock(BudgetSettings { rate, burst }, clock.clone()),
            clock,
        )
    }

    fn ms(d: Duration) -> u128 {
        d.as_millis()
    }

    #[test]
    fn the_burst_goes_at_once_then_the_rate_spaces_turns() {
        let (b, _) = budget(10.0, 3);
        for _ in 0..3 {
            assert_eq!(b.reserve(), Duration::ZERO);
        }
        assert_eq!(ms(b.reserve()), 100);
        assert_eq!(ms(b.reserve()), 200);
    }

    #[test]
    fn turns_come_in_call_order_however_many_one_caller_takes() {
        let (b, _) = budget(10.0, 1);
        b.reserve();
        // A busy caller takes ten turns; the next caller waits behind those only.
        let busy: Vec<_> = (0..10).map(|_| b.reserve()).collect();
        let next = b.reserve();
        assert!(busy.iter().all(|w| *w < next));
        assert_eq!(ms(next), 1100);
    }

    #[test]
    fn the_bucket_refills_with_time_up_to_the_burst() {
        let (b, clock) = budget(10.0, 2);
        b.reserve();
        b.reserve();
        clock.advance(Duration::from_secs(60));
        assert_eq!(b.reserve(), Duration::ZERO);
        assert_eq!(b.reserve(), Duration::ZERO);
        assert_eq!(ms(b.reserve()), 100);
    }

    #[test]
    fn a_refunded_turn_is_handed_out_again() {
        let (b, _) = budget(10.0, 1);
        b.reserve();
        assert_eq!(ms(b.reserve()), 100);
        b.refund();
        assert_eq!(ms(b.reserve()), 100);
    }

    #[test]
    fn a_throttle_halves_the_rate_and_empties_the_bucket() {
        let (b, _) = budget(20.0, 100);
        b.throttled();
        assert_eq!(b.rate(), 10.0);
        assert_eq!(ms(b.reserve()), 100);
    }

    #[test]
    fn throttles_in_one_burst_cut_once() {
        let (b, clock) = budget(20.0, 100);
        b.throttled();
        b.throttled();
        b.throttled();
        assert_eq!(b.rate(), 10.0);
        clock.advance(DECREASE_GAP);
        b.throttled();
        assert_eq!(b.rate(), 5.0);
    }

    #[test]
    fn the_rate_never_falls_below_its_floor() {
        let (b, clock) = budget(20.0, 100);
        for _ in 0..20 {
            b.throttled();
            clock.advance(DECREASE_GAP);
        }
        assert_eq!(b.rate(), 1.0);
        let (tiny, clock) = budget(0.0, 0);
        for _ in 0..20 {
            tiny.throttled();
            clock.advance(DECREASE_GAP);
        }
        assert!(tiny.rate() >= MIN_RATE);
        assert!(tiny.reserve() < Duration::from_secs(60));
    }

    #[test]
    fn successes_bring_the_rate_back_slowly_up_to_the_configured_one() {
        let (b, clock) = budget(20.0, 100);
        for _ in 0..10 {
            b.throttled();
            clock.advance(DECREASE_GAP);
        }
        b.succeeded();
        assert!(b.rate() < 2.0, "one success is one small step");
        for _ in 0..RECOVERY_SUCCESSES as usize {
            b.succeeded();
        }
        assert_eq!(b.rate(), 20.0);
        b.succeeded();
        assert_eq!(b.rate(), 20.0);
    }
}
