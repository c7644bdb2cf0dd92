//! `airlock deployment roll` and `roll-status`: a rolling replacement's plan and progress, one
//! line per node (docs/rolls.md).

use crate::cli::Output;
use crate::client::Client;
use crate::output::print;
use airlock_api::rolls::{NodeRoll, RollView};
use airlock_api::state::RollState;
use anyhow::{bail, Result};
use std::time::Duration;

const HEADERS: [&str; 7] = [
    "NODE",
    "STEP",
    "REPLACEMENT",
    "INTERFACES",
    "VOLUMES",
    "ADDRESS",
    "ERROR",
];

fn step_word(node: &NodeRoll) -> String {
    serde_json::to_value(node.step)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn row(node: &NodeRoll) -> Vec<String> {
    vec![
        node.old_instance_id.clone(),
        step_word(node),
        node.new_instance_id.clone().unwrap_or_else(|| "-".into()),
        node.interfaces
            .iter()
            .map(|i| {
                format!(
                    "{}@{} {}",
                    i.network_interface_id,
                    i.device_index,
                    i.private_ip.as_deref().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
        node.volumes
            .iter()
            .map(|v| format!("{}@{}", v.volume_id, v.device))
            .collect::<Vec<_>>()
            .join(", "),
        node.allocation_id.clone().unwrap_or_else(|| "-".into()),
        node.error.clone().unwrap_or_default(),
    ]
}

/// Prints the roll (waiting for its end first with `wait`, saying each node's step as it
/// changes); exits 1 when it ended failed or aborted.
pub async fn report(client: &Client, roll: RollView, wait: bool, output: Output) -> Result<()> {
    let roll = if wait {
        wait_end(client, roll).await?
    } else {
        roll
    };
    if output == Output::Table {
        eprintln!(
            "{} of {} to {} ({}), {} at a time, health {} within {} s: {}{}",
            roll.id,
            roll.deployment_id,
            roll.image_id,
            roll.instance_type,
            roll.batch,
            roll.health,
            roll.health_timeout_seconds,
            roll.state.as_str(),
            roll.error
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        );
    }
    print(output, &roll, &HEADERS, || {
        roll.nodes.iter().map(row).collect()
    })?;
    if wait && roll.state != RollState::Succeeded {
        bail!(
            "roll {} {}: see `airlock deployment roll-status {}`",
            roll.id,
            roll.state.as_str(),
            roll.deployment_id
        );
    }
    Ok(())
}

async fn wait_end(client: &Client, mut roll: RollView) -> Result<RollView> {
    let mut said: Vec<String> = Vec::new();
    loop {
        let now: Vec<String> = roll
            .nodes
            .iter()
            .map(|n| format!("{} {}", n.old_instance_id, step_word(n)))
            .collect();
        for line in now.iter().filter(|l| !said.contains(l)) {
            eprintln!("{}: {line}", roll.id);
        }
        said = now;
        if roll.state != RollState::Running {
            return Ok(roll);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        roll = client.roll_status(&roll.deployment_id).await?;
    }
}
