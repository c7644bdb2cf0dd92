//! Run command as pure rules, apart from the store and the network so that every rule is
//! tested on its own: how `max-concurrency` and `max-errors` read (`N` or `N%`, as Systems
//! Manager writes them), which instances are sent the command next, when an instance that never
//! fetched it or never reported back is given up, and how output is bounded.
//!
//! The console applies [`advance`] whenever something may have changed (a fetch, a report, a
//! tick); every step it returns is a conditional update, so two consoles advancing the same
//! command at once cannot both release one instance or undo a report.

use airlock_api::state::CommandStatus;
use std::fmt;
use std::str::FromStr;

/// How long past its timeout a running command may stay unreported before it is taken for
/// timed out (its agent died, or the instance went away): the agent kills it at the timeout and
/// reports within a few seconds.
pub const REPORT_GRACE_MS: i64 = 30_000;

/// The most instances one command targets.
pub const MAX_TARGETS: usize = 1_000;

/// `N` or `N%`: a count, or a share of the command's targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// At most this many.
    Count(u32),
    /// At most this percentage of the targets (0 to 100).
    Percent(u8),
}

/// A limit that is neither `N` nor `N%` with N from 0 to 100.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not N or N% (for example 10 or 25%)")]
pub struct BadLimit(pub String);

impl FromStr for Limit {
    type Err = BadLimit;

    fn from_str(text: &str) -> Result<Self, BadLimit> {
        let bad = || BadLimit(text.to_owned());
        let text = text.trim();
        let digits_only =
            |t: &str| !t.is_empty() && t.len() <= 9 && t.bytes().all(|b| b.is_ascii_digit());
        match text.strip_suffix('%') {
            Some(p) if digits_only(p) => match p.parse::<u8>() {
                Ok(p) if p <= 100 => Ok(Limit::Percent(p)),
                _ => Err(bad()),
            },
            Some(_) => Err(bad()),
            None if digits_only(text) => text.parse().map(Limit::Count).map_err(|_| bad()),
            None => Err(bad()),
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Count(n) => write!(f, "{n}"),
            Limit::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl Limit {
    /// How many instances may run at once among `targets`: a share is rounded up, and at least
    /// one always runs.
    pub fn concurrency(self, targets: usize) -> usize {
        let n = match self {
            Limit::Count(n) => usize::try_from(n).unwrap_or(usize::MAX),
            Limit::Percent(p) => (targets * usize::from(p)).div_ceil(100),
        };
        n.max(1)
    }

    /// How many errors are allowed among `targets` before the rest are cancelled: a share is
    /// rounded down, so `10%` of 5 targets allows none.
    pub fn errors(self, targets: usize) -> usize {
        match self {
            Limit::Count(n) => usize::try_from(n).unwrap_or(usize::MAX),
            Limit::Percent(p) => targets * usize::from(p) / 100,
        }
    }
}

/// The at-once and error counts of stored `N`/`N%` limits among `targets`. A stored limit is
/// one the console validated when it was sent; one that no longer reads is taken as `0`.
pub fn resolve(concurrency: &str, max_errors: &str, targets: usize) -> (usize, usize) {
    let read = |text: &str| text.parse::<Limit>().unwrap_or(Limit::Count(0));
    (
        read(concurrency).concurrency(targets),
        read(max_errors).errors(targets),
    )
}

/// What [`advance`] needs to know of one instance's part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The instance.
    pub instance_id: String,
    /// Where it is.
    pub status: CommandStatus,
    /// When it was released to its agent (epoch milliseconds), if it was.
    pub released_at_ms: Option<i64>,
    /// When its agent fetched it.
    pub started_at_ms: Option<i64>,
}

/// A command's limits, resolved against its number of targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Instances released or running at once, at most.
    pub concurrency: usize,
    /// Errors allowed; one more cancels what was not yet sent.
    pub max_errors: usize,
    /// Per instance, for fetching and for running.
    pub timeout_ms: i64,
}

/// One change [`advance`] asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Let the instance's agent fetch the command.
    Release(String),
    /// Released, but its agent did not fetch it in time.
    Undeliverable(String),
    /// Fetched, but never reported back in time.
    TimedOut(String),
    /// Never to be sent: too many errors.
    Cancel(String),
}

/// The changes that bring a command up to date at `now_ms`, in order: give up on instances that
/// ran out of time, then either cancel what was not sent (more errors than allowed) or release
/// as many waiting instances as the concurrency allows, by instance id.
pub fn advance(parts: &[Part], limits: Limits, now_ms: i64) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut errors = 0;
    let mut in_flight = 0;
    let mut waiting = Vec::new();
    for part in parts {
        let since = |t: Option<i64>| t.map(|t| now_ms.saturating_sub(t));
        match (part.status, part.released_at_ms, part.started_at_ms) {
            (CommandStatus::Pending, Some(at), _)
                if since(Some(at)).is_some_and(|d| d > limits.timeout_ms) =>
            {
                steps.push(Step::Undeliverable(part.instance_id.clone()));
            }
            (CommandStatus::Pending, Some(_), _) => in_flight += 1,
            (CommandStatus::Pending, None, _) => waiting.push(&part.instance_id),
            (CommandStatus::Running, _, started)
                if since(started).is_some_and(|d| d > limits.timeout_ms + REPORT_GRACE_MS) =>
            {
                steps.push(Step::TimedOut(part.instance_id.clone()));
                errors += 1;
            }
            (CommandStatus::Running, _, _) => in_flight += 1,
            (status, _, _) if status.is_error() => errors += 1,
            _ => {}
        }
    }
    waiting.sort();
    if errors > limits.max_errors {
        steps.extend(waiting.into_iter().map(|id| Step::Cancel(id.clone())));
        return steps;
    }
    let slots = limits.concurrency.saturating_sub(in_flight);
    steps.extend(
        waiting
            .into_iter()
            .take(slots)
            .map(|id| Step::Release(id.clone())),
    );
    steps
}

/// Output as kept: at most `max` bytes of it, cut on a character boundary (invalid UTF-8
/// replaced), and whether anything was cut.
pub fn bounded(bytes: &[u8], max: usize) -> (String, bool) {
    let text = String::from_utf8_lossy(bytes);
    if text.len() <= max {
        return (text.into_owned(), false);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (text[..end].to_owned(), true)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use CommandStatus::*;

    fn part(id: &str, status: CommandStatus, released: Option<i64>, started: Option<i64>) -> Part {
        Part {
            instance_id: id.to_owned(),
            status,
            released_at_ms: released,
            started_at_ms: started,
        }
    }

    const LIMITS: Limits = Limits {
        concurrency: 1,
        max_errors: 0,
        timeout_ms: 60_000,
    };

    #[test]
    fn limits_read_as_systems_manager_writes_them() {
        assert_eq!("10".parse(), Ok(Limit::Count(10)));
        assert_eq!("25%".parse(), Ok(Limit::Percent(25)));
        assert_eq!(" 0 ".parse(), Ok(Limit::Count(0)));
        for bad in [
            "",
            "%",
            "-1",
            "101%",
            "1.5",
            "ten",
            "5 %",
            "99999999999",
            "+3",
        ] {
            let err = bad.parse::<Limit>().unwrap_err();
            assert!(err.to_string().contains("N or N%"), "{bad}: {err}");
        }
        assert_eq!(Limit::Percent(10).concurrency(5), 1);
        assert_eq!(Limit::Percent(50).concurrency(5), 3);
        assert_eq!(Limit::Count(0).concurrency(5), 1);
        assert_eq!(Limit::Percent(10).errors(5), 0);
        assert_eq!(Limit::Percent(50).errors(5), 2);
        assert_eq!(Limit::Percent(25).to_string(), "25%");
    }

    #[test]
    fn with_concurrency_one_the_next_instance_waits_for_the_running_one() {
        let parts = [
            part("i-b", Pending, None, None),
            part("i-a", Pending, None, None),
        ];
        assert_eq!(advance(&parts, LIMITS, 0), [Step::Release("i-a".into())]);
        let parts = [
            part("i-a", Running, Some(0), Some(10)),
            part("i-b", Pending, None, None),
        ];
        assert!(advance(&parts, LIMITS, 20).is_empty());
        let parts = [
            part("i-a", Success, Some(0), Some(10)),
            part("i-b", Pending, None, None),
        ];
        assert_eq!(advance(&parts, LIMITS, 20), [Step::Release("i-b".into())]);
    }

    #[test]
    fn one_error_more_than_allowed_cancels_what_was_not_sent() {
        let parts = [
            part("i-a", Failed, Some(0), Some(1)),
            part("i-b", Pending, None, None),
            part("i-c", Pending, None, None),
        ];
        assert_eq!(
            advance(&parts, LIMITS, 5),
            [Step::Cancel("i-b".into()), Step::Cancel("i-c".into())]
        );
        let tolerant = Limits {
            max_errors: 1,
            ..LIMITS
        };
        assert_eq!(advance(&parts, tolerant, 5), [Step::Release("i-b".into())]);
        // An unreachable instance is not an error: the others still go.
        let parts = [
            part("i-a", Undeliverable, Some(0), None),
            part("i-b", Pending, None, None),
        ];
        assert_eq!(advance(&parts, LIMITS, 5), [Step::Release("i-b".into())]);
    }

    #[test]
    fn an_agent_that_never_fetches_or_never_reports_is_given_up_after_the_timeout() {
        let parts = [
            part("i-a", Pending, Some(0), None),
            part("i-b", Pending, None, None),
        ];
        assert!(advance(&parts, LIMITS, 60_000).is_empty());
        assert_eq!(
            advance(&parts, LIMITS, 60_001),
            [
                Step::Undeliverable("i-a".into()),
                Step::Release("i-b".into())
            ]
        );
        let running = [part("i-a", Running, Some(0), Some(0))];
        assert!(advance(&running, LIMITS, 60_000 + REPORT_GRACE_MS).is_empty());
        assert_eq!(
            advance(&running, LIMITS, 60_001 + REPORT_GRACE_MS),
            [Step::TimedOut("i-a".into())]
        );
    }

    #[test]
    fn output_is_cut_on_a_character_boundary_and_marked() {
        assert_eq!(bounded(b"hello", 10), ("hello".into(), false));
        assert_eq!(bounded(b"hello", 3), ("hel".into(), true));
        // "é" is two bytes: a cut inside it keeps neither.
        assert_eq!(bounded("aé".as_bytes(), 2), ("a".into(), true));
        assert_eq!(bounded(&[0xff, b'x'], 10), ("\u{fffd}x".into(), false));
    }
}
