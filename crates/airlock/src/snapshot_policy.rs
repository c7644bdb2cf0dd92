//! `airlock snapshot-policy`: EBS snapshots of the volumes a tag selects, on a schedule, with
//! retention, run by the console with the creator's permissions (docs/snapshot-policies.md).

use crate::cli::{Output, SnapshotPolicyCommand};
use crate::client::Client;
use crate::output::print;
use airlock_api::snapshot_policies::{
    CreateSnapshotPolicyRequest, SnapshotPolicyView, SnapshotRunView,
};
use anyhow::{bail, Result};
use std::time::{Duration, Instant};

const HEADERS: [&str; 7] = [
    "NAME",
    "ACCOUNT",
    "TARGET",
    "SCHEDULE",
    "RETAIN",
    "NEXT RUN",
    "CREATED BY",
];

fn row(p: &SnapshotPolicyView) -> Vec<String> {
    let retain = match (p.retain, p.retain_days) {
        (Some(n), Some(d)) => format!("{n}, {d} days"),
        (Some(n), None) => n.to_string(),
        (None, Some(d)) => format!("{d} days"),
        (None, None) => "-".into(),
    };
    vec![
        p.name.clone(),
        p.account.clone(),
        p.target.clone(),
        p.schedule.clone(),
        retain,
        p.next_run_at.clone().unwrap_or_else(|| "never".into()),
        p.created_by.clone(),
    ]
}

const RUN_HEADERS: [&str; 6] = ["RUN", "TRIGGER", "STATE", "STARTED", "CREATED", "DELETED"];

fn run_row(r: &SnapshotRunView) -> Vec<String> {
    vec![
        r.id.clone(),
        r.trigger.clone(),
        r.state.as_str().to_owned(),
        r.started_at.clone(),
        r.created.join(" "),
        r.deleted.join(" "),
    ]
}

/// Runs a `snapshot-policy` subcommand.
pub async fn run(client: &Client, cmd: SnapshotPolicyCommand, output: Output) -> Result<()> {
    match cmd {
        SnapshotPolicyCommand::Create {
            name,
            account,
            target,
            schedule,
            retain,
            retain_days,
        } => {
            let req = CreateSnapshotPolicyRequest {
                name,
                account,
                target,
                schedule,
                retain,
                retain_days,
            };
            let created = client.create_snapshot_policy(&req).await?;
            print(output, &created, &HEADERS, || vec![row(&created)])
        }
        SnapshotPolicyCommand::List => {
            let list = client.snapshot_policies().await?;
            print(output, &list.policies, &HEADERS, || {
                list.policies.iter().map(row).collect()
            })
        }
        SnapshotPolicyCommand::Show { name } => {
            let policy = client.snapshot_policy(&name).await?;
            print(output, &policy, &RUN_HEADERS, || {
                policy.runs.iter().map(run_row).collect()
            })
        }
        SnapshotPolicyCommand::Delete { name } => {
            client.delete_snapshot_policy(&name).await?;
            if output == Output::Table {
                println!("deleted snapshot policy {name} (its snapshots stay in EC2)");
            }
            Ok(())
        }
        SnapshotPolicyCommand::Run {
            name,
            wait,
            timeout,
        } => {
            let run = client.run_snapshot_policy(&name).await?;
            if wait && !run.created.is_empty() {
                let account = client.snapshot_policy(&name).await?.account;
                wait_completed(client, &account, &run.created, timeout).await?;
            }
            print(output, &run, &RUN_HEADERS, || vec![run_row(&run)])?;
            for error in &run.errors {
                eprintln!("error: {error}");
            }
            if run.errors.is_empty() {
                Ok(())
            } else {
                bail!("the run of {name} ended {}", run.state.as_str())
            }
        }
    }
}

/// Waits until EC2 reports every snapshot `completed`, saying how many are, every few seconds.
async fn wait_completed(
    client: &Client,
    account: &str,
    ids: &[String],
    timeout: u64,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(timeout);
    let query = vec![
        ("account", account.to_owned()),
        ("filter", format!("snapshot-id={}", ids.join(","))),
    ];
    loop {
        let list: airlock_console::api::FleetList =
            client.get_query("/v1/snapshots", &query).await?;
        let done = list
            .items
            .iter()
            .filter(|s| s["state"] == "completed")
            .count();
        eprintln!("{done}/{} snapshots completed", ids.len());
        if done >= ids.len() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "{done} of {} snapshots completed after {timeout} s",
                ids.len()
            );
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
