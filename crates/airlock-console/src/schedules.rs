//! What snapshot policies and maintenance windows share about schedules: the clock they see
//! (the system's, or the time a test writes in a file), when a schedule counts from, whether it
//! is due, and the loop that fires them (and samples the instances' trend) on the console
//! holding the schedules lease.

use crate::cluster::Lease;
use crate::state::AppState;
use airlock_schedule::Schedule;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// How often the schedule holder looks for due policies and windows.
const TICK: Duration = Duration::from_secs(10);
/// How often it looks when tests drive the clock.
const TEST_TICK: Duration = Duration::from_secs(1);

/// A stored schedule: its expression, when it last fired and when it was made.
pub(crate) struct Scheduled<'a> {
    /// `cron(...)` or `rate(...)`.
    pub schedule: &'a str,
    /// When it last fired (RFC 3339).
    pub last_scheduled_at: Option<&'a str>,
    /// When it was made (RFC 3339).
    pub created_at: &'a str,
}

impl Scheduled<'_> {
    /// When it last fired, or was made: what its next time counts from.
    fn since(&self) -> Option<DateTime<Utc>> {
        parse_time(self.last_scheduled_at.unwrap_or(self.created_at))
    }

    /// Whether it is due at `now`.
    pub fn due(&self, now: DateTime<Utc>) -> bool {
        let Ok(schedule) = self.schedule.parse::<Schedule>() else {
            return false;
        };
        self.since().is_some_and(|since| schedule.due(since, now))
    }

    /// When it fires next (RFC 3339), if ever.
    pub fn next_run_at(&self) -> Option<String> {
        self.schedule
            .parse::<Schedule>()
            .ok()
            .zip(self.since())
            .and_then(|(s, since)| s.next_after(since))
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    }
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The time schedules see now; the system clock when the test clock cannot be read.
pub(crate) async fn now(state: &AppState) -> DateTime<Utc> {
    clock(state.config.schedule_clock.as_deref())
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read the schedule clock; using the system clock");
            Utc::now()
        })
}

/// The time schedules see: the system clock, or the time written in the test clock file.
async fn clock(file: Option<&std::path::Path>) -> Result<DateTime<Utc>, String> {
    let Some(path) = file else {
        return Ok(Utc::now());
    };
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?;
    parse_time(text.trim()).ok_or_else(|| {
        format!(
            "{}: {:?} is not an RFC 3339 time",
            path.display(),
            text.trim()
        )
    })
}

/// While this node holds the schedules lease, fires the snapshot policies and opens the
/// maintenance windows that are due, and samples the instances by state once a minute.
pub async fn keep_scheduling(state: AppState) {
    let file = state.config.schedule_clock.clone();
    let tick = if file.is_some() { TEST_TICK } else { TICK };
    let mut sampled = crate::trend::Sampled::default();
    loop {
        state.cluster.gained(Lease::Schedules).await;
        match clock(file.as_deref()).await {
            Ok(now) => {
                crate::trend::sample_if_due(&state, now, &mut sampled).await;
                if let Err(e) = crate::snapshot_policies::fire_due(&state, now).await {
                    tracing::warn!(error = %e, "cannot look for due snapshot policies");
                }
                if let Err(e) = crate::maintenance_windows::open_due(&state, now).await {
                    tracing::warn!(error = %e, "cannot look for due maintenance windows");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the schedule clock"),
        }
        tokio::time::sleep(tick).await;
    }
}
