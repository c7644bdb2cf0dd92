//! Boot tasks: the EC2 work the payload asks the agent to do with its credentials at every
//! boot (tag the instance, attach a volume, associate an Elastic IP).
//!
//! Each task is idempotent: it first looks at what EC2 holds and does nothing when the work is
//! already done, so running it again on every boot is safe. A failing task is reported and the
//! others still run; the caller decides the exit status from the results.

use std::time::Duration;

use airlock_cloud::{Ec2, Filter, Tag};
use airlock_payload::{BootTask, TaskFilters};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How a task ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The task changed something in EC2.
    Done,
    /// Nothing to do: EC2 already was as the task asks.
    Unchanged,
    /// It failed; `detail` says why.
    Failed,
}

impl Outcome {
    /// As written in `tasks.json`: `done`, `unchanged` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Unchanged => "unchanged",
            Outcome::Failed => "failed",
        }
    }
}

/// One task's result, as logged and written to `tasks.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskResult {
    /// Its position in the payload's `tasks`.
    pub index: usize,
    /// Its kind, e.g. `attach_volume`.
    pub task: String,
    /// How it ended.
    pub outcome: Outcome,
    /// What happened, in words.
    pub detail: String,
    /// How many times it has run in this agent's life.
    pub attempts: u32,
    /// When it last ran.
    pub at: DateTime<Utc>,
}

/// What the tasks need to know about the instance.
#[derive(Clone, Debug)]
pub struct TaskContext {
    /// This instance.
    pub instance_id: String,
    /// Its availability zone, when known (volumes attach only within one).
    pub availability_zone: Option<String>,
    /// How long `attach_volume` waits for a volume to become available.
    pub wait: Duration,
    /// How often it looks while waiting.
    pub poll: Duration,
}

/// Runs one task, logging its result.
pub async fn run_task(
    ec2: &dyn Ec2,
    ctx: &TaskContext,
    index: usize,
    task: &BootTask,
    attempts: u32,
) -> TaskResult {
    let result = match task {
        BootTask::TagInstance { tags } => tag_instance(ec2, ctx, tags).await,
        BootTask::AttachVolume { filters, device } => {
            attach_volume(ec2, ctx, filters, device).await
        }
        BootTask::AssociateAddress {
            allocation_id,
            filters,
        } => associate_address(ec2, ctx, allocation_id.as_deref(), filters).await,
        _ => Err("this agent does not know this kind of task (is the console newer?)".to_owned()),
    };
    let (outcome, detail) = match result {
        Ok(ok) => ok,
        Err(e) => (Outcome::Failed, e),
    };
    let kind = task.kind();
    match outcome {
        Outcome::Failed => tracing::warn!(task = index, kind, %detail, "boot task failed"),
        _ => tracing::info!(task = index, kind, outcome = outcome.as_str(), %detail, "boot task"),
    }
    TaskResult {
        index,
        task: kind.to_owned(),
        outcome,
        detail,
        attempts,
        at: Utc::now(),
    }
}

type Done = Result<(Outcome, String), String>;

fn filters(filters: &TaskFilters) -> Vec<Filter> {
    filters
        .iter()
        .map(|(name, values)| Filter {
            name: name.clone(),
            values: values.clone(),
        })
        .collect()
}

async fn tag_instance(
    ec2: &dyn Ec2,
    ctx: &TaskContext,
    tags: &std::collections::BTreeMap<String, String>,
) -> Done {
    let ids = [ctx.instance_id.clone()];
    let existing = ec2.describe_tags(&ids).await.map_err(|e| e.to_string())?;
    let missing: Vec<Tag> = tags
        .iter()
        .filter(|(k, v)| !existing.iter().any(|(_, t)| &t.key == *k && &t.value == *v))
        .map(|(k, v)| Tag::new(k, v))
        .collect();
    let list = |tags: &mut dyn Iterator<Item = (&String, &String)>| {
        tags.map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if missing.is_empty() {
        return Ok((
            Outcome::Unchanged,
            format!("already tagged {}", list(&mut tags.iter())),
        ));
    }
    ec2.create_tags(&ids, &missing)
        .await
        .map_err(|e| e.to_string())?;
    Ok((
        Outcome::Done,
        format!(
            "tagged {}",
            list(&mut missing.iter().map(|t| (&t.key, &t.value)))
        ),
    ))
}

async fn attach_volume(
    ec2: &dyn Ec2,
    ctx: &TaskContext,
    wanted: &TaskFilters,
    device: &str,
) -> Done {
    let volumes = ec2
        .describe_volumes(&filters(wanted))
        .await
        .map_err(|e| e.to_string())?;
    if let Some(v) = volumes
        .iter()
        .find(|v| v.attached_to.contains(&ctx.instance_id))
    {
        return Ok((
            Outcome::Unchanged,
            format!("{} is already attached", v.volume_id),
        ));
    }
    if volumes.is_empty() {
        return Err("no volume matches the filters".to_owned());
    }
    let in_zone = |v: &&airlock_cloud::Volume| match (&ctx.availability_zone, &v.availability_zone)
    {
        (Some(ours), Some(theirs)) => ours == theirs,
        _ => true,
    };
    // An available one first, then the lowest id, so every boot picks the same.
    let Some(chosen) = volumes
        .iter()
        .filter(in_zone)
        .min_by_key(|v| (v.state.as_deref() != Some("available"), v.volume_id.clone()))
    else {
        return Err(format!(
            "the matching volumes are in another availability zone than this instance ({})",
            ctx.availability_zone.as_deref().unwrap_or("?")
        ));
    };
    let volume_id = chosen.volume_id.clone();
    let deadline = tokio::time::Instant::now() + ctx.wait;
    let mut state = chosen.state.clone();
    while state.as_deref() != Some("available") {
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "{volume_id} is still {} after {}s",
                state.as_deref().unwrap_or("in an unknown state"),
                ctx.wait.as_secs()
            ));
        }
        tracing::info!(volume_id, state = ?state, "waiting for the volume to be available");
        tokio::time::sleep(ctx.poll).await;
        let now = ec2
            .describe_volumes(&[Filter::new("volume-id", &volume_id)])
            .await
            .map_err(|e| e.to_string())?;
        let Some(v) = now.first() else {
            return Err(format!("{volume_id} disappeared"));
        };
        if v.attached_to.contains(&ctx.instance_id) {
            return Ok((
                Outcome::Unchanged,
                format!("{volume_id} is already attached"),
            ));
        }
        state = v.state.clone();
    }
    ec2.attach_volume(&volume_id, &ctx.instance_id, device)
        .await
        .map_err(|e| e.to_string())?;
    Ok((Outcome::Done, format!("attached {volume_id} at {device}")))
}

async fn associate_address(
    ec2: &dyn Ec2,
    ctx: &TaskContext,
    allocation_id: Option<&str>,
    wanted: &TaskFilters,
) -> Done {
    let mut by = filters(wanted);
    if let Some(id) = allocation_id {
        by.push(Filter::new("allocation-id", id));
    }
    let mut addresses = ec2
        .describe_addresses(&by)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(a) = addresses
        .iter()
        .find(|a| a.instance_id.as_deref() == Some(ctx.instance_id.as_str()))
    {
        return Ok((
            Outcome::Unchanged,
            format!(
                "{} is already associated",
                a.public_ip.as_deref().unwrap_or("the address")
            ),
        ));
    }
    addresses.sort_by(|a, b| a.allocation_id.cmp(&b.allocation_id));
    let Some(address) = addresses.iter().find(|a| a.allocation_id.is_some()) else {
        return Err("no Elastic IP matches".to_owned());
    };
    let id = address.allocation_id.as_deref().unwrap_or_default();
    // AllowReassociation: an address held by a replaced instance moves here in one call.
    ec2.associate_address(
        id,
        &airlock_cloud::AddressTarget::Instance(ctx.instance_id.clone()),
        true,
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok((
        Outcome::Done,
        format!(
            "associated {id} ({})",
            address.public_ip.as_deref().unwrap_or("?")
        ),
    ))
}
