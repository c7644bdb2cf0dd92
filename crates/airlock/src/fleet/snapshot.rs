//! `airlock snapshot`: EBS snapshots. Each operation's arguments and the request they make.

use super::{Change, ListArgs, NewTags, Plan, Wait, Where};
use airlock_fleet::snapshot::*;
use airlock_fleet::FleetFamily;
use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// List the account's own snapshots.
    List(ListArgs),
    /// CreateSnapshot, created and tagged in one call (or not at all).
    Create(Create),
    /// DeleteSnapshot.
    Delete(Delete),
    /// CopySnapshot to another region, tagged on creation there.
    Copy(Copy),
}

impl SnapshotCommand {
    pub(super) fn plan(self) -> Plan {
        match self {
            Self::List(a) => Plan::list(FleetFamily::Snapshots, a),
            Self::Create(a) => Change::from(a).into(),
            Self::Delete(a) => Change::from(a).into(),
            Self::Copy(a) => Change::from(a).into(),
        }
    }
}

#[derive(Debug, Args)]
pub struct Create {
    /// The volume (vol-…).
    volume_id: String,
    /// Free text.
    #[arg(long)]
    description: Option<String>,
    #[command(flatten)]
    tags: NewTags,
    /// Wait until the snapshot is completed.
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    at: Where,
}

impl From<Create> for Change {
    fn from(a: Create) -> Change {
        let request = CreateSnapshot {
            volume_id: a.volume_id,
            description: a.description,
            tags: a.tags.tags(),
        };
        let ready = Wait {
            family: FleetFamily::Snapshots,
            id_filter: "snapshot-id",
            ready: "completed",
        };
        Change::new(a.at, SnapshotRequest::Create(request)).waiting(a.wait, ready)
    }
}

#[derive(Debug, Args)]
pub struct Delete {
    /// The snapshot (snap-…).
    snapshot_id: String,
    #[command(flatten)]
    at: Where,
}

impl From<Delete> for Change {
    fn from(a: Delete) -> Change {
        let request = DeleteSnapshot {
            snapshot_id: a.snapshot_id,
        };
        Change::new(a.at, SnapshotRequest::Delete(request))
    }
}

#[derive(Debug, Args)]
pub struct Copy {
    /// The snapshot (snap-…).
    snapshot_id: String,
    /// The destination region.
    #[arg(long)]
    to_region: String,
    /// Free text.
    #[arg(long)]
    description: Option<String>,
    #[command(flatten)]
    tags: NewTags,
    #[command(flatten)]
    at: Where,
}

impl From<Copy> for Change {
    fn from(a: Copy) -> Change {
        let request = CopySnapshot {
            snapshot_id: a.snapshot_id,
            destination_region: a.to_region,
            description: a.description,
            tags: a.tags.tags(),
        };
        Change::new(a.at, SnapshotRequest::Copy(request))
    }
}
