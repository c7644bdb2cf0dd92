//! `airlock volume`: EBS volumes. Each operation's arguments and the request they make.

use super::{Change, ListArgs, NewTags, Plan, Wait, Where};
use airlock_fleet::volume::*;
use airlock_fleet::FleetFamily;
use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// List volumes.
    List(ListArgs),
    /// CreateVolume, tagged on creation.
    Create(Create),
    /// AttachVolume at a device name.
    Attach(Attach),
    /// DetachVolume.
    Detach(Detach),
    /// DeleteVolume.
    Delete(Delete),
}

impl VolumeCommand {
    pub(super) fn plan(self) -> Plan {
        match self {
            Self::List(a) => Plan::list(FleetFamily::Volumes, a),
            Self::Create(a) => Change::from(a).into(),
            Self::Attach(a) => Change::from(a).into(),
            Self::Detach(a) => Change::from(a).into(),
            Self::Delete(a) => Change::from(a).into(),
        }
    }
}

#[derive(Debug, Args)]
pub struct Create {
    /// Availability zone, e.g. us-east-1a.
    #[arg(long)]
    availability_zone: String,
    /// Size in GiB (may be left out with --snapshot).
    #[arg(long)]
    size: Option<i32>,
    /// gp3, gp2, io1, io2, st1, sc1 or standard.
    #[arg(long = "type", default_value = "gp3")]
    volume_type: String,
    /// Provisioned IOPS (gp3, io1, io2).
    #[arg(long)]
    iops: Option<i32>,
    /// Encrypt with the account's default EBS key.
    #[arg(long)]
    encrypted: bool,
    /// Restore from this snapshot.
    #[arg(long)]
    snapshot: Option<String>,
    #[command(flatten)]
    tags: NewTags,
    /// Wait until the volume is available.
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    at: Where,
}

impl From<Create> for Change {
    fn from(a: Create) -> Change {
        let request = CreateVolume {
            availability_zone: a.availability_zone,
            size_gib: a.size,
            volume_type: a.volume_type,
            iops: a.iops,
            encrypted: a.encrypted,
            snapshot_id: a.snapshot,
            tags: a.tags.tags(),
        };
        let ready = Wait {
            family: FleetFamily::Volumes,
            id_filter: "volume-id",
            ready: "available",
        };
        Change::new(a.at, VolumeRequest::Create(request)).waiting(a.wait, ready)
    }
}

#[derive(Debug, Args)]
pub struct Attach {
    /// The volume (vol-…).
    volume_id: String,
    /// The instance.
    #[arg(long)]
    instance: String,
    /// Device name, e.g. /dev/sdf.
    #[arg(long)]
    device: String,
    #[command(flatten)]
    at: Where,
}

impl From<Attach> for Change {
    fn from(a: Attach) -> Change {
        let request = AttachVolume {
            volume_id: a.volume_id,
            instance_id: a.instance,
            device: a.device,
        };
        Change::new(a.at, VolumeRequest::Attach(request))
    }
}

#[derive(Debug, Args)]
pub struct Detach {
    /// The volume (vol-…).
    volume_id: String,
    /// Skip the clean unmount (data may be lost).
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    at: Where,
}

impl From<Detach> for Change {
    fn from(a: Detach) -> Change {
        let request = DetachVolume {
            volume_id: a.volume_id,
            force: a.force,
        };
        Change::new(a.at, VolumeRequest::Detach(request))
    }
}

#[derive(Debug, Args)]
pub struct Delete {
    /// The volume (vol-…).
    volume_id: String,
    #[command(flatten)]
    at: Where,
}

impl From<Delete> for Change {
    fn from(a: Delete) -> Change {
        let request = DeleteVolume {
            volume_id: a.volume_id,
        };
        Change::new(a.at, VolumeRequest::Delete(request))
    }
}
