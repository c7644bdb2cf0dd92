//! EBS snapshots: create (created and tagged together, or not at all), copy to another region,
//! delete. Everything a snapshot operation is (its request, validation, look-ups and EC2 calls)
//! is here, so adding one touches this file only.

use crate::facts::Facts;
use crate::request::body;
use crate::run::{none, FleetError, Outcome, Recorder};
use crate::validate::{self as v, Checked};
use airlock_cloud::{Ec2, Filter, Snapshot, Tag};
use serde::{Deserialize, Serialize};

/// `CreateSnapshot` with `TagSpecifications`: created and tagged together, or not at all.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSnapshot {
    /// The volume (`vol-…`).
    pub volume_id: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Tags applied on creation.
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// `DeleteSnapshot`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteSnapshot {
    /// The snapshot (`snap-…`).
    pub snapshot_id: String,
}

/// `CopySnapshot` to another region, tagged on creation there.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CopySnapshot {
    /// The snapshot (`snap-…`) in the account's region.
    pub snapshot_id: String,
    /// Where the copy goes.
    pub destination_region: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Tags applied on creation to the copy.
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// A snapshot operation.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(missing_docs)]
pub enum SnapshotRequest {
    Create(CreateSnapshot),
    Delete(DeleteSnapshot),
    Copy(CopySnapshot),
}

impl SnapshotRequest {
    /// The operation `verb` with its JSON body; `Ok(None)` when there is no such verb.
    pub fn parse(verb: &str, value: serde_json::Value) -> Checked<Option<Self>> {
        Ok(Some(match verb {
            "create" => Self::Create(body(value)?),
            "delete" => Self::Delete(body(value)?),
            "copy" => Self::Copy(body(value)?),
            _ => return Ok(None),
        }))
    }

    /// The verb in the operation's path.
    pub fn verb(&self) -> &'static str {
        match self {
            Self::Create(_) => "create",
            Self::Delete(_) => "delete",
            Self::Copy(_) => "copy",
        }
    }

    /// The EC2 action the operation is known by.
    pub fn action(&self) -> String {
        let name = match self {
            Self::Create(_) => "CreateSnapshot",
            Self::Delete(_) => "DeleteSnapshot",
            Self::Copy(_) => "CopySnapshot",
        };
        format!("ec2:{name}")
    }

    /// The tags applied on creation.
    pub fn tags(&self) -> &[Tag] {
        match self {
            Self::Create(r) => &r.tags,
            Self::Copy(r) => &r.tags,
            Self::Delete(_) => &[],
        }
    }

    /// The region a copy goes to, whose client must make the call.
    pub fn destination_region(&self) -> Option<&str> {
        match self {
            Self::Copy(r) => Some(&r.destination_region),
            _ => None,
        }
    }

    pub(crate) fn validate(&mut self) -> Checked {
        match self {
            Self::Create(r) => {
                v::ec2_id("volume_id", &r.volume_id, "vol-")?;
                v::optional_description("description", r.description.as_deref())
            }
            Self::Delete(r) => v::ec2_id("snapshot_id", &r.snapshot_id, "snap-"),
            Self::Copy(r) => {
                v::ec2_id("snapshot_id", &r.snapshot_id, "snap-")?;
                v::region("destination_region", &r.destination_region)?;
                v::optional_description("description", r.description.as_deref())
            }
        }
    }

    pub(crate) async fn prepare(&self, ec2: &dyn Ec2, f: &mut Facts) -> Result<(), FleetError> {
        match self {
            Self::Create(r) => f.load_volume(ec2, &r.volume_id).await,
            Self::Delete(DeleteSnapshot { snapshot_id })
            | Self::Copy(CopySnapshot { snapshot_id, .. }) => {
                f.load_snapshot(ec2, snapshot_id).await
            }
        }
    }

    /// `copy_to` is the client of the destination region for a copy (EC2 copies from the
    /// destination's side).
    pub(crate) async fn run(
        &self,
        ec2: &dyn Ec2,
        copy_to: Option<&dyn Ec2>,
        rec: &mut Recorder<'_>,
    ) -> Result<Outcome, FleetError> {
        match self {
            Self::Create(r) => r.run(ec2, rec).await,
            Self::Delete(r) => {
                let out = ec2.delete_snapshot(&r.snapshot_id).await;
                let message = format!("deleted {}", r.snapshot_id);
                rec.changed(
                    "DeleteSnapshot",
                    &[("snapshot", &r.snapshot_id)],
                    out,
                    message,
                )
            }
            Self::Copy(r) => r.run(copy_to.unwrap_or(ec2), rec).await,
        }
    }
}

/// The account's own snapshots that match `filters`.
pub async fn list(ec2: &dyn Ec2, filters: &[Filter]) -> Result<Vec<Snapshot>, FleetError> {
    Ok(ec2.describe_snapshots(filters, &[]).await?)
}

impl CreateSnapshot {
    async fn run(&self, ec2: &dyn Ec2, rec: &mut Recorder<'_>) -> Result<Outcome, FleetError> {
        let out = ec2
            .create_snapshot(&self.volume_id, self.description.as_deref(), &self.tags)
            .await;
        let s = rec.call(
            "CreateSnapshot",
            &[("volume", &self.volume_id), ("snapshot", "*")],
            out,
            none,
        )?;
        Ok(Outcome {
            message: format!("started {} of {}", s.snapshot_id, self.volume_id),
            resource_id: Some(s.snapshot_id.clone()),
            snapshot: Some(s),
            ..Outcome::default()
        })
    }
}

impl CopySnapshot {
    /// Copies with `dest`, the destination region's client.
    async fn run(&self, dest: &dyn Ec2, rec: &mut Recorder<'_>) -> Result<Outcome, FleetError> {
        let out = dest
            .copy_snapshot(
                &rec.scope.region,
                &self.snapshot_id,
                self.description.as_deref(),
                &self.tags,
            )
            .await;
        let id = rec.call(
            "CopySnapshot",
            &[("snapshot", &self.snapshot_id)],
            out,
            none,
        )?;
        let message = format!(
            "copying {} to {} as {id}",
            self.snapshot_id, self.destination_region
        );
        Ok(Outcome::created(message, &id))
    }
}
