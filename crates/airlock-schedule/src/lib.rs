//! Schedule expressions as Amazon EventBridge and Systems Manager write them, `cron(...)` and
//! `rate(...)`, and when they fire next.
//!
//! Snapshot policies and maintenance windows take their schedules in this form so operators can
//! copy them from the AWS documentation and their own EventBridge rules. Times are UTC, as in
//! EventBridge. The parts EventBridge offers that few schedules use (`L`, `W`, `#`) are refused
//! with an error naming them rather than guessed at.

#![warn(missing_docs)]

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Timelike, Utc};
use std::fmt;
use std::str::FromStr;

/// What is wrong with a schedule expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("schedule {expression:?}: {reason}")]
pub struct ScheduleError {
    /// The expression as given.
    pub expression: String,
    /// Why it is refused.
    pub reason: String,
}

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    text: String,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Rate(Duration),
    Cron(Box<Cron>),
}

/// The six fields of a cron expression, each as the set of values it allows.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cron {
    minutes: Vec<u32>,
    hours: Vec<u32>,
    /// `None` for `?`.
    days_of_month: Option<Vec<u32>>,
    months: Vec<u32>,
    /// 1 = Sunday … 7 = Saturday; `None` for `?`.
    days_of_week: Option<Vec<u32>>,
    years: Vec<u32>,
}

/// The longest expression accepted.
const MAX_LEN: usize = 256;
/// The last year a cron expression can name (EventBridge's bound).
const LAST_YEAR: u32 = 2199;

impl FromStr for Schedule {
    type Err = ScheduleError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |reason: String| ScheduleError {
            expression: text.to_owned(),
            reason,
        };
        if text.len() > MAX_LEN {
            return Err(fail(format!("longer than {MAX_LEN} characters")));
        }
        let inner = |prefix: &str| {
            text.trim()
                .strip_prefix(prefix)
                .and_then(|rest| rest.strip_suffix(')'))
        };
        let kind = if let Some(body) = inner("rate(") {
            Kind::Rate(rate(body).map_err(fail)?)
        } else if let Some(body) = inner("cron(") {
            Kind::Cron(Box::new(cron(body).map_err(fail)?))
        } else {
            return Err(fail(
                "write cron(MINUTES HOURS DAY-OF-MONTH MONTH DAY-OF-WEEK YEAR) or rate(N UNIT)"
                    .into(),
            ));
        };
        Ok(Schedule {
            text: text.trim().to_owned(),
            kind,
        })
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Schedule {
    /// The first time after `after` the schedule fires. A rate fires every interval counted
    /// from `after` (its creation or last run, as EventBridge counts from the rule's creation);
    /// a cron expression at the next matching minute. `None` when it never fires again.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.kind {
            Kind::Rate(every) => after.checked_add_signed(*every),
            Kind::Cron(cron) => cron.next_after(after),
        }
    }

    /// Whether a schedule last run (or created) at `since` is due at `now`.
    pub fn due(&self, since: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        self.next_after(since).is_some_and(|next| next <= now)
    }
}

/// `N minute(s)|hour(s)|day(s)`: singular for 1, plural otherwise, as EventBridge requires.
fn rate(body: &str) -> Result<Duration, String> {
    let mut parts = body.split_whitespace();
    let (Some(value), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err("a rate is rate(VALUE UNIT), e.g. rate(5 minutes) or rate(1 day)".into());
    };
    let value: i64 = value
        .parse()
        .ok()
        .filter(|v| (1..=100_000).contains(v))
        .ok_or_else(|| format!("{value:?} is not a whole number from 1 to 100000"))?;
    let singular = value == 1;
    let minutes = match (unit, singular) {
        ("minute", true) | ("minutes", false) => 1,
        ("hour", true) | ("hours", false) => 60,
        ("day", true) | ("days", false) => 24 * 60,
        _ => {
            return Err(format!(
                "the unit {unit:?} must be minute, hour or day for 1 and minutes, hours or days otherwise"
            ))
        }
    };
    Ok(Duration::minutes(value * minutes))
}

fn cron(body: &str) -> Result<Cron, String> {
    let fields: Vec<&str> = body.split_whitespace().collect();
    let [minutes, hours, dom, month, dow, year] = fields.as_slice() else {
        return Err(format!(
            "a cron expression has 6 fields (minutes hours day-of-month month day-of-week year), not {}",
            fields.len()
        ));
    };
    let days_of_month = optional(dom, "day-of-month", 1, 31, &[])?;
    let days_of_week = optional(dow, "day-of-week", 1, 7, &DAY_NAMES)?;
    match (&days_of_month, &days_of_week) {
        (Some(_), Some(_)) => {
            return Err("give day-of-month or day-of-week, and ? for the other".into())
        }
        (None, None) => return Err("day-of-month and day-of-week cannot both be ?".into()),
        _ => {}
    }
    Ok(Cron {
        minutes: field(minutes, "minutes", 0, 59, &[])?,
        hours: field(hours, "hours", 0, 23, &[])?,
        days_of_month,
        months: field(month, "month", 1, 12, &MONTH_NAMES)?,
        days_of_week,
        years: field(year, "year", 1970, LAST_YEAR, &[])?,
    })
}

const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// A day field that may be `?`.
fn optional(
    text: &str,
    name: &str,
    low: u32,
    high: u32,
    names: &[&str],
) -> Result<Option<Vec<u32>>, String> {
    if text == "?" {
        return Ok(None);
    }
    field(text, name, low, high, names).map(Some)
}

/// One field: `*`, or a comma-separated list of values, `A-B` ranges and `/STEP` increments.
fn field(text: &str, name: &str, low: u32, high: u32, names: &[&str]) -> Result<Vec<u32>, String> {
    if let Some(c) = text.chars().find(|c| matches!(c, 'L' | 'W' | '#')) {
        if !names.iter().any(|n| n.contains(c)) || text.contains('#') {
            return Err(format!(
                "{name}: {c:?} is not supported; list the days instead"
            ));
        }
    }
    let mut values = Vec::new();
    for part in text.split(',') {
        values.extend(part_values(part, name, low, high, names)?);
    }
    values.sort_unstable();
    values.dedup();
    Ok(values)
}

fn part_values(
    part: &str,
    name: &str,
    low: u32,
    high: u32,
    names: &[&str],
) -> Result<Vec<u32>, String> {
    let (range, step) = match part.split_once('/') {
        Some((range, step)) => {
            let step: u32 =
                step.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                    format!("{name}: the step in {part:?} is not a positive number")
                })?;
            (range, step)
        }
        None => (part, 1),
    };
    let value = |text: &str| -> Result<u32, String> {
        let upper = text.to_ascii_uppercase();
        let named = names
            .iter()
            .position(|n| *n == upper)
            .and_then(|i| u32::try_from(i).ok())
            .map(|i| i + low);
        named
            .or_else(|| text.parse().ok())
            .filter(|v| (low..=high).contains(v))
            .ok_or_else(|| format!("{name}: {text:?} is not a value from {low} to {high}"))
    };
    let (first, last) = match range {
        "*" => (low, high),
        _ => match range.split_once('-') {
            Some((a, b)) => (value(a)?, value(b)?),
            // A single value with a step runs to the end of the field, as in cron.
            None if part.contains('/') => (value(range)?, high),
            None => (value(range)?, value(range)?),
        },
    };
    if first > last {
        return Err(format!("{name}: the range {range:?} runs backwards"));
    }
    Ok((first..=last).step_by(step as usize).collect())
}

impl Cron {
    /// The next minute after `after` that every field allows.
    fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = after.with_second(0)?.with_nanosecond(0)? + Duration::minutes(1);
        let mut day = start.date_naive();
        let first_day = day;
        // Four years cover every month-day combination (29 February included); a year list
        // reaching further is followed year by year.
        let last_year = *self.years.last()?;
        while u32::try_from(day.year()).ok()? <= last_year {
            if let Some(time) = self.first_time_on(day, (day == first_day).then_some(start)) {
                return Some(time);
            }
            day = day.succ_opt()?;
        }
        None
    }

    /// The first allowed time on `day`, not before `from` when given.
    fn first_time_on(&self, day: NaiveDate, from: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        if !self.allows_day(day) {
            return None;
        }
        for hour in &self.hours {
            for minute in &self.minutes {
                let time = Utc
                    .with_ymd_and_hms(day.year(), day.month(), day.day(), *hour, *minute, 0)
                    .single()?;
                if from.is_none_or(|f| time >= f) {
                    return Some(time);
                }
            }
        }
        None
    }

    fn allows_day(&self, day: NaiveDate) -> bool {
        let year_ok = u32::try_from(day.year()).is_ok_and(|y| self.years.contains(&y));
        let month_ok = self.months.contains(&day.month());
        let dom_ok = self
            .days_of_month
            .as_ref()
            .is_none_or(|d| d.contains(&day.day()));
        let dow_ok = self
            .days_of_week
            .as_ref()
            .is_none_or(|d| d.contains(&(day.weekday().num_days_from_sunday() + 1)));
        year_ok && month_ok && dom_ok && dow_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn next(schedule: &str, after: &str) -> DateTime<Utc> {
        schedule
            .parse::<Schedule>()
            .unwrap()
            .next_after(at(after))
            .unwrap()
    }

    #[test]
    fn sunday_three_in_the_morning_as_the_patching_articles_write_it() {
        // 2026-12-02 is a Wednesday: the next Sunday is 6 December.
        assert_eq!(
            next("cron(0 3 ? * SUN *)", "2026-12-02T10:00:00Z"),
            at("2026-12-06T03:00:00Z")
        );
        assert_eq!(
            next("cron(0 3 ? * 1 *)", "2026-12-06T03:00:00Z"),
            at("2026-12-13T03:00:00Z")
        );
    }

    #[test]
    fn lists_ranges_steps_and_month_names() {
        assert_eq!(
            next("cron(0/15 9-17 ? * MON-FRI *)", "2026-12-04T17:50:00Z"),
            at("2026-12-07T09:00:00Z")
        );
        assert_eq!(
            next("cron(30 1 1,15 JAN,JUL ? *)", "2026-12-02T00:00:00Z"),
            at("2027-01-01T01:30:00Z")
        );
        assert_eq!(
            next("cron(0 12 29 2 ? *)", "2026-03-01T00:00:00Z"),
            at("2028-02-29T12:00:00Z")
        );
    }

    #[test]
    fn the_same_minute_never_fires_twice() {
        assert_eq!(
            next("cron(* * * * ? *)", "2026-12-02T10:00:30Z"),
            at("2026-12-02T10:01:00Z")
        );
    }

    #[test]
    fn rates_count_from_the_last_run() {
        assert_eq!(
            next("rate(1 day)", "2026-12-02T10:00:00Z"),
            at("2026-12-03T10:00:00Z")
        );
        let every = "rate(15 minutes)".parse::<Schedule>().unwrap();
        assert!(!every.due(at("2026-12-02T10:00:00Z"), at("2026-12-02T10:14:59Z")));
        assert!(every.due(at("2026-12-02T10:00:00Z"), at("2026-12-02T10:15:00Z")));
    }

    #[test]
    fn a_year_list_that_has_passed_never_fires() {
        let done = "cron(0 0 1 1 ? 2020)".parse::<Schedule>().unwrap();
        assert_eq!(done.next_after(at("2026-01-01T00:00:00Z")), None);
    }

    #[test]
    fn what_eventbridge_refuses_is_refused_naming_the_field() {
        for (text, says) in [
            ("cron(0 3 * * SUN *)", "? for the other"),
            ("cron(0 3 ? * ? *)", "cannot both be ?"),
            ("cron(0 3 ? * SUN)", "6 fields"),
            ("cron(60 3 ? * SUN *)", "minutes"),
            ("cron(0 3 L * ? *)", "not supported"),
            ("cron(0 3 ? * 2#1 *)", "not supported"),
            ("cron(0 5-3 ? * SUN *)", "backwards"),
            ("rate(1 days)", "singular"),
            ("rate(5 minute)", "plural"),
            ("rate(0 minutes)", "from 1"),
            ("every day", "cron("),
        ] {
            let err = text.parse::<Schedule>().unwrap_err().to_string();
            let says = if says == "singular" || says == "plural" {
                "unit"
            } else {
                says
            };
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}
