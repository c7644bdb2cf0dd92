//! EBS volumes: create (tagged on creation, or restored from a snapshot), attach at a device
//! name, detach, delete. Everything a volume operation is (its request, validation, look-ups
//! and EC2 calls) is here, so adding one touches this file only.

use crate::facts::{Facts, Lookup};
use crate::request::body;
use crate::run::{none, FleetError, Outcome, Recorder};
use crate::validate::{self as v, Checked};
use airlock_cloud::{CreateVolumeInput, Ec2, Filter, Tag, Volume};
use serde::{Deserialize, Serialize};

/// `CreateVolume`, tagged on creation.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVolume {
    /// The availability zone, e.g. `us-east-1a`.
    pub availability_zone: String,
    /// Size in GiB (may be left out when restoring a snapshot).
    #[serde(default)]
    pub size_gib: Option<i32>,
    /// `gp3` (default), `gp2`, `io1`, `io2`, `st1`, `sc1` or `standard`.
    #[serde(default = "default_volume_type")]
    pub volume_type: String,
    /// Provisioned IOPS (gp3, io1, io2).
    #[serde(default)]
    pub iops: Option<i32>,
    /// Encrypt with the account's default EBS key.
    #[serde(default)]
    pub encrypted: bool,
    /// Restore from this snapshot.
    #[serde(default)]
    pub snapshot_id: Option<String>,
    /// Tags applied on creation.
    #[serde(default)]
    pub tags: Vec<Tag>,
}

fn default_volume_type() -> String {
    "gp3".to_owned()
}

/// `AttachVolume` at a device name.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachVolume {
    /// The volume (`vol-…`).
    pub volume_id: String,
    /// The instance.
    pub instance_id: String,
    /// The device name, e.g. `/dev/sdf`.
    pub device: String,
}

/// `DetachVolume` from the instance it is attached to.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DetachVolume {
    /// The volume (`vol-…`).
    pub volume_id: String,
    /// Skip the clean unmount (data may be lost).
    #[serde(default)]
    pub force: bool,
}

/// `DeleteVolume`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteVolume {
    /// The volume (`vol-…`).
    pub volume_id: String,
}

/// A volume operation.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(missing_docs)]
pub enum VolumeRequest {
    Create(CreateVolume),
    Attach(AttachVolume),
    Detach(DetachVolume),
    Delete(DeleteVolume),
}

impl VolumeRequest {
    /// The operation `verb` with its JSON body; `Ok(None)` when there is no such verb.
    pub fn parse(verb: &str, value: serde_json::Value) -> Checked<Option<Self>> {
        Ok(Some(match verb {
            "create" => Self::Create(body(value)?),
            "attach" => Self::Attach(body(value)?),
            "detach" => Self::Detach(body(value)?),
            "delete" => Self::Delete(body(value)?),
            _ => return Ok(None),
        }))
    }

    /// The verb in the operation's path.
    pub fn verb(&self) -> &'static str {
        match self {
            Self::Create(_) => "create",
            Self::Attach(_) => "attach",
            Self::Detach(_) => "detach",
            Self::Delete(_) => "delete",
        }
    }

    /// The EC2 action the operation is known by.
    pub fn action(&self) -> String {
        let name = match self {
            Self::Create(_) => "CreateVolume",
            Self::Attach(_) => "AttachVolume",
            Self::Detach(_) => "DetachVolume",
            Self::Delete(_) => "DeleteVolume",
        };
        format!("ec2:{name}")
    }

    /// The tags applied on creation.
    pub fn tags(&self) -> &[Tag] {
        match self {
            Self::Create(r) => &r.tags,
            _ => &[],
        }
    }

    pub(crate) fn validate(&mut self) -> Checked {
        match self {
            Self::Create(r) => {
                v::availability_zone("availability_zone", &r.availability_zone)?;
                if let Some(s) = &r.snapshot_id {
                    v::ec2_id("snapshot_id", s, "snap-")?;
                }
                v::volume(&r.volume_type, r.size_gib, r.iops, r.snapshot_id.is_some())
            }
            Self::Attach(r) => {
                v::ec2_id("volume_id", &r.volume_id, "vol-")?;
                v::ec2_id("instance_id", &r.instance_id, "i-")?;
                v::device("device", &r.device)
            }
            Self::Detach(DetachVolume { volume_id, .. })
            | Self::Delete(DeleteVolume { volume_id }) => v::ec2_id("volume_id", volume_id, "vol-"),
        }
    }

    pub(crate) async fn prepare(&self, ec2: &dyn Ec2, f: &mut Facts) -> Result<(), FleetError> {
        match self {
            Self::Create(r) => match &r.snapshot_id {
                Some(s) => f.load_snapshot(ec2, s).await,
                None => Ok(()),
            },
            Self::Attach(r) => {
                f.load_with_instances(ec2, Lookup::Volume(&r.volume_id), &[&r.instance_id])
                    .await
            }
            Self::Detach(r) => {
                f.load_volume(ec2, &r.volume_id).await?;
                let attached: Vec<String> = f
                    .volume(&r.volume_id)
                    .map(|v| v.attached_to.clone())
                    .unwrap_or_default();
                if attached.is_empty() {
                    return Ok(());
                }
                let ids: Vec<&str> = attached.iter().map(String::as_str).collect();
                f.load_instances(ec2, &ids).await
            }
            Self::Delete(r) => f.load_volume(ec2, &r.volume_id).await,
        }
    }

    pub(crate) async fn run(
        &self,
        ec2: &dyn Ec2,
        facts: &Facts,
        rec: &mut Recorder<'_>,
    ) -> Result<Outcome, FleetError> {
        match self {
            Self::Create(r) => r.run(ec2, rec).await,
            Self::Attach(r) => r.run(ec2, rec).await,
            Self::Detach(r) => r.run(ec2, facts, rec).await,
            Self::Delete(r) => {
                let out = ec2.delete_volume(&r.volume_id).await;
                let message = format!("deleted {}", r.volume_id);
                rec.changed("DeleteVolume", &[("volume", &r.volume_id)], out, message)
            }
        }
    }
}

/// The account's volumes that match `filters`.
pub async fn list(ec2: &dyn Ec2, filters: &[Filter]) -> Result<Vec<Volume>, FleetError> {
    Ok(ec2.describe_volumes(filters).await?)
}

impl CreateVolume {
    async fn run(&self, ec2: &dyn Ec2, rec: &mut Recorder<'_>) -> Result<Outcome, FleetError> {
        let out = ec2
            .create_volume(&CreateVolumeInput {
                availability_zone: self.availability_zone.clone(),
                size_gib: self.size_gib,
                volume_type: self.volume_type.clone(),
                iops: self.iops,
                encrypted: self.encrypted,
                snapshot_id: self.snapshot_id.clone(),
                tags: self.tags.clone(),
            })
            .await;
        let v = rec.call("CreateVolume", &[("volume", "*")], out, none)?;
        Ok(Outcome {
            message: format!(
                "created {} ({} GiB {}) in {}",
                v.volume_id,
                v.size_gib.map(|s| s.to_string()).unwrap_or("?".into()),
                self.volume_type,
                self.availability_zone
            ),
            resource_id: Some(v.volume_id.clone()),
            volume: Some(v),
            ..Outcome::default()
        })
    }
}

impl AttachVolume {
    async fn run(&self, ec2: &dyn Ec2, rec: &mut Recorder<'_>) -> Result<Outcome, FleetError> {
        let out = ec2
            .attach_volume(&self.volume_id, &self.instance_id, &self.device)
            .await;
        let message = format!(
            "attached {} to {} at {}",
            self.volume_id, self.instance_id, self.device
        );
        rec.changed(
            "AttachVolume",
            &[("volume", &self.volume_id), ("instance", &self.instance_id)],
            out,
            message,
        )
    }
}

impl DetachVolume {
    async fn run(
        &self,
        ec2: &dyn Ec2,
        facts: &Facts,
        rec: &mut Recorder<'_>,
    ) -> Result<Outcome, FleetError> {
        let attached = facts
            .volume(&self.volume_id)
            .map(|v| v.attached_to.clone())
            .unwrap_or_default();
        let [instance] = attached.as_slice() else {
            return Err(FleetError::Conflict(format!(
                "{} is not attached to an instance",
                self.volume_id
            )));
        };
        let out = ec2
            .detach_volume(&self.volume_id, Some(instance), self.force)
            .await;
        let message = format!("detached {} from {instance}", self.volume_id);
        rec.changed(
            "DetachVolume",
            &[("volume", &self.volume_id), ("instance", instance)],
            out,
            message,
        )
    }
}
