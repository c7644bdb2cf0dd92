//! What a deployment needs next, decided from what EC2 reports and nothing else.
//!
//! The handlers and the watcher look instances up, call these functions, and do what they
//! say; every decision about counts, surplus, settling and failing is here, without I/O, so it
//! is tested on its own.

use airlock_api::state::DeploymentState;
use airlock_cloud::Instance;
use std::cmp::Ordering;
use std::time::Duration;

/// EC2 states in which an instance still counts towards a deployment.
pub const LIVE_STATES: [&str; 4] = ["pending", "running", "stopping", "stopped"];

/// What to do with a deployment's live instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Launch this many more.
    Launch(u32),
    /// Terminate these (the newest surplus).
    Terminate(Vec<String>),
    /// Every desired instance runs.
    Settled,
    /// As many as desired are live, not all running yet: look again later.
    Waiting,
    /// It will not get there by waiting: why.
    Failed(String),
}

/// What a reconcile does: launch what is missing, terminate the surplus, or nothing. With
/// `zones`, the surplus is taken from the zones with the most instances.
pub fn reconcile(desired: usize, live: &[Instance], zones: &[String]) -> Plan {
    match live.len().cmp(&desired) {
        Ordering::Less => Plan::Launch(missing(desired, live)),
        Ordering::Greater if zones.is_empty() => Plan::Terminate(surplus(desired, live)),
        Ordering::Greater => Plan::Terminate(zone_surplus(desired, live, zones)),
        Ordering::Equal if all_running(live) => Plan::Settled,
        Ordering::Equal => Plan::Waiting,
    }
}

/// How many instances a launch asks for.
fn missing(desired: usize, live: &[Instance]) -> u32 {
    u32::try_from(desired.saturating_sub(live.len())).unwrap_or(u32::MAX)
}

/// The instances beyond `desired`, newest first, so the longest-running instances stay.
fn surplus(desired: usize, live: &[Instance]) -> Vec<String> {
    let mut newest_first: Vec<&Instance> = live.iter().collect();
    newest_first.sort_by(|a, b| {
        b.launch_time
            .cmp(&a.launch_time)
            .then(b.instance_id.cmp(&a.instance_id))
    });
    newest_first
        .into_iter()
        .take(live.len().saturating_sub(desired))
        .map(|i| i.instance_id.clone())
        .collect()
}

/// How many live instances each zone holds, in the order the zones are given.
fn per_zone(zones: &[String], live: &[&Instance]) -> Vec<usize> {
    zones
        .iter()
        .map(|z| {
            live.iter()
                .filter(|i| i.availability_zone.as_deref() == Some(z.as_str()))
                .count()
        })
        .collect()
}

/// Where `count` new instances go: each to the zone with the fewest live ones (the first given
/// on a tie), so 6 over three zones are 2/2/2 and a ring stays even as it grows. Without zones,
/// all in one launch with no zone.
pub fn spread(zones: &[String], live: &[Instance], count: u32) -> Vec<(Option<String>, u32)> {
    if zones.is_empty() {
        return vec![(None, count)];
    }
    let live: Vec<&Instance> = live.iter().collect();
    let mut held = per_zone(zones, &live);
    let mut added = vec![0u32; zones.len()];
    for _ in 0..count {
        let fewest = held
            .iter()
            .enumerate()
            .min_by_key(|(i, n)| (**n, *i))
            .map_or(0, |(i, _)| i);
        if let (Some(h), Some(a)) = (held.get_mut(fewest), added.get_mut(fewest)) {
            *h += 1;
            *a += 1;
        }
    }
    zones
        .iter()
        .zip(added)
        .filter(|(_, n)| *n > 0)
        .map(|(z, n)| (Some(z.clone()), n))
        .collect()
}

/// The surplus beyond `desired`, each taken (newest first) from the zone holding the most.
fn zone_surplus(desired: usize, live: &[Instance], zones: &[String]) -> Vec<String> {
    let mut left: Vec<&Instance> = live.iter().collect();
    left.sort_by(|a, b| {
        b.launch_time
            .cmp(&a.launch_time)
            .then(b.instance_id.cmp(&a.instance_id))
    });
    let mut out = Vec::new();
    while left.len() > desired {
        let held = per_zone(zones, &left);
        // Instances outside the zones (launched before they were set) go first.
        let outside = left.iter().position(|i| {
            !zones
                .iter()
                .any(|z| i.availability_zone.as_deref() == Some(z.as_str()))
        });
        let most = held
            .iter()
            .enumerate()
            .max_by_key(|(i, n)| (**n, std::cmp::Reverse(*i)))
            .and_then(|(i, _)| zones.get(i));
        let pick = outside.or_else(|| {
            left.iter()
                .position(|i| i.availability_zone.as_deref() == most.map(String::as_str))
        });
        let Some(pick) = pick else { break };
        out.push(left.remove(pick).instance_id.clone());
    }
    out
}

/// The state a deployment is left in after a reconcile, with the instances then live.
pub fn state_after_reconcile(desired: usize, live: &[Instance]) -> DeploymentState {
    if live.len() == desired && all_running(live) {
        DeploymentState::Running
    } else {
        DeploymentState::Launching
    }
}

/// What a look at a launching deployment's instances says: settled, still on the way, or
/// failed because instances were terminated under it and none is left to come up.
pub fn watch(desired: usize, live: &[Instance]) -> Plan {
    if live.len() == desired && all_running(live) {
        Plan::Settled
    } else if live.len() < desired && !live.iter().any(|i| i.state == "pending") {
        Plan::Failed(format!(
            "{} of {desired} instances are running; the others were terminated during launch",
            live.len()
        ))
    } else {
        Plan::Waiting
    }
}

fn all_running(live: &[Instance]) -> bool {
    live.iter().all(|i| i.state == "running")
}

/// What the watcher does next with a deployment in `state`, watched for `elapsed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watch {
    /// Created or rescaled but its launch was never recorded (a restart mid-launch): reconcile.
    Reconcile,
    /// Look at its instances again.
    Look,
    /// It waited too long: mark it failed, why.
    TimedOut(String),
    /// Settled or failed: nothing more to watch.
    Stop,
}

/// How long a pending deployment may be in the hands of another node's request (launching it)
/// before the lease holder takes it over.
pub const PENDING_GRACE: Duration = Duration::from_secs(60);

/// Whether the lease holder should take up an unsettled deployment last updated at
/// `updated_at` (RFC 3339). A pending one may be launching right now in a request served by
/// another node, so it waits for [`PENDING_GRACE`] unless this node is the only one alive (its
/// own requests keep their deployments out of the scan while they launch).
pub fn resumable(
    state: DeploymentState,
    updated_at: &str,
    now: chrono::DateTime<chrono::Utc>,
    alone: bool,
) -> bool {
    if state != DeploymentState::Pending || alone {
        return true;
    }
    let Ok(updated) = chrono::DateTime::parse_from_rfc3339(updated_at) else {
        return true;
    };
    let age = now.signed_duration_since(updated);
    age.to_std().is_ok_and(|age| age >= PENDING_GRACE)
}

/// The watcher's next step.
pub fn next_watch(state: DeploymentState, elapsed: Duration, timeout: Duration) -> Watch {
    match state {
        DeploymentState::Pending => Watch::Reconcile,
        DeploymentState::Launching if elapsed > timeout => Watch::TimedOut(format!(
            "timed out after {} s waiting for the instances to run",
            timeout.as_secs()
        )),
        DeploymentState::Launching => Watch::Look,
        DeploymentState::Running | DeploymentState::Failed => Watch::Stop,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn in_zone(id: &str, zone: &str, launched_minute: u32) -> Instance {
        Instance {
            availability_zone: Some(zone.into()),
            ..instance(id, "running", launched_minute)
        }
    }

    #[test]
    fn instances_spread_evenly_over_zones_and_leave_from_the_fullest() {
        let zones: Vec<String> = ["us-east-1a", "us-east-1b", "us-east-1c"]
            .map(String::from)
            .to_vec();
        let zone = |z: &str| Some(z.to_owned());
        assert_eq!(
            spread(&zones, &[], 6),
            [
                (zone("us-east-1a"), 2),
                (zone("us-east-1b"), 2),
                (zone("us-east-1c"), 2)
            ]
        );
        // Growing a 2/1/0 ring by 3 fills the emptiest zones first.
        let live = [
            in_zone("i-1", "us-east-1a", 1),
            in_zone("i-2", "us-east-1a", 2),
            in_zone("i-3", "us-east-1b", 3),
        ];
        assert_eq!(
            spread(&zones, &live, 3),
            [(zone("us-east-1b"), 1), (zone("us-east-1c"), 2)]
        );
        assert_eq!(spread(&[], &live, 2), [(None, 2)]);
        // Shrinking takes the newest of the fullest zone.
        assert_eq!(
            reconcile(2, &live, &zones),
            Plan::Terminate(vec!["i-2".into()])
        );
    }

    #[test]
    fn a_pending_deployment_waits_for_the_other_nodes_request_unless_alone() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 10, 0).single().unwrap();
        let recent = "2026-01-01T00:09:30Z";
        let old = "2026-01-01T00:08:00Z";
        assert!(!resumable(DeploymentState::Pending, recent, now, false));
        assert!(resumable(DeploymentState::Pending, recent, now, true));
        assert!(resumable(DeploymentState::Pending, old, now, false));
        assert!(resumable(DeploymentState::Launching, recent, now, false));
        // A time from the future (a skewed clock) is not old enough.
        assert!(!resumable(
            DeploymentState::Pending,
            "2026-01-01T00:20:00Z",
            now,
            false
        ));
    }

    fn instance(id: &str, state: &str, launched_minute: u32) -> Instance {
        Instance {
            instance_id: id.into(),
            image_id: None,
            instance_type: None,
            state: state.into(),
            private_ip: None,
            public_ip: None,
            subnet_id: None,
            vpc_id: None,
            launch_time: Utc
                .with_ymd_and_hms(2026, 1, 1, 0, launched_minute, 0)
                .single(),
            tags: vec![],
            availability_zone: None,
            root_device_name: None,
        }
    }

    #[test]
    fn too_few_live_launches_what_is_missing() {
        let live = [instance("i-1", "running", 0)];
        assert_eq!(reconcile(3, &live, &[]), Plan::Launch(2));
        assert_eq!(reconcile(1, &[], &[]), Plan::Launch(1));
    }

    #[test]
    fn more_live_than_desired_terminates_the_newest() {
        let live = [
            instance("i-old", "running", 0),
            instance("i-new", "running", 9),
            instance("i-mid", "stopped", 5),
        ];
        assert_eq!(
            reconcile(1, &live, &[]),
            Plan::Terminate(vec!["i-new".into(), "i-mid".into()])
        );
        assert_eq!(
            reconcile(0, &live, &[]),
            Plan::Terminate(vec!["i-new".into(), "i-mid".into(), "i-old".into()])
        );
    }

    #[test]
    fn instances_launched_together_go_by_id() {
        let live = [instance("i-a", "running", 1), instance("i-b", "running", 1)];
        assert_eq!(
            reconcile(1, &live, &[]),
            Plan::Terminate(vec!["i-b".into()])
        );
    }

    #[test]
    fn the_desired_count_is_settled_once_all_run() {
        let running = [instance("i-1", "running", 0), instance("i-2", "running", 0)];
        assert_eq!(reconcile(2, &running, &[]), Plan::Settled);
        let booting = [instance("i-1", "running", 0), instance("i-2", "pending", 0)];
        assert_eq!(reconcile(2, &booting, &[]), Plan::Waiting);
        assert_eq!(reconcile(0, &[], &[]), Plan::Settled);
    }

    #[test]
    fn after_a_reconcile_only_all_running_is_running() {
        let running = [instance("i-1", "running", 0)];
        assert_eq!(state_after_reconcile(1, &running), DeploymentState::Running);
        let booting = [instance("i-1", "pending", 0)];
        assert_eq!(
            state_after_reconcile(1, &booting),
            DeploymentState::Launching
        );
        // A launch that returned fewer instances than asked keeps the deployment launching.
        assert_eq!(
            state_after_reconcile(2, &running),
            DeploymentState::Launching
        );
    }

    #[test]
    fn a_watch_settles_waits_or_fails() {
        let running = [instance("i-1", "running", 0), instance("i-2", "running", 0)];
        assert_eq!(watch(2, &running), Plan::Settled);
        let booting = [instance("i-1", "running", 0), instance("i-2", "pending", 0)];
        assert_eq!(watch(2, &booting), Plan::Waiting);
        // One still pending may yet come up, with the other gone.
        assert_eq!(watch(2, &booting[1..]), Plan::Waiting);
    }

    #[test]
    fn instances_terminated_under_a_launch_fail_it() {
        let left = [instance("i-1", "running", 0)];
        assert_eq!(
            watch(3, &left),
            Plan::Failed(
                "1 of 3 instances are running; the others were terminated during launch".into()
            )
        );
        assert!(matches!(watch(2, &[]), Plan::Failed(_)));
    }

    #[test]
    fn a_failed_launch_is_launched_again_by_a_reconcile_but_fails_a_watch() {
        // RunInstances refused: nothing new is live.
        let before = [instance("i-1", "running", 0)];
        assert_eq!(reconcile(2, &before, &[]), Plan::Launch(1));
        assert!(matches!(watch(2, &before), Plan::Failed(_)));
        assert_eq!(
            next_watch(
                DeploymentState::Failed,
                Duration::ZERO,
                Duration::from_secs(60)
            ),
            Watch::Stop
        );
    }

    #[test]
    fn a_watch_never_acts_on_a_surplus() {
        let live = [instance("i-1", "running", 0), instance("i-2", "running", 0)];
        assert_eq!(watch(1, &live), Plan::Waiting);
    }

    #[test]
    fn the_watcher_reconciles_pending_and_times_out_launching() {
        let minute = Duration::from_secs(60);
        let second = Duration::from_secs(1);
        assert_eq!(
            next_watch(DeploymentState::Pending, minute * 9, minute),
            Watch::Reconcile
        );
        assert_eq!(
            next_watch(DeploymentState::Launching, second, minute),
            Watch::Look
        );
        assert_eq!(
            next_watch(DeploymentState::Launching, minute + second, minute),
            Watch::TimedOut("timed out after 60 s waiting for the instances to run".into())
        );
        assert_eq!(
            next_watch(DeploymentState::Running, second, minute),
            Watch::Stop
        );
        assert_eq!(
            next_watch(DeploymentState::Failed, second, minute),
            Watch::Stop
        );
    }
}
