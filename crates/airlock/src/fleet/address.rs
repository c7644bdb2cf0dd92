//! `airlock address`: Elastic IPs. Each operation's arguments and the request they make.

use super::{Change, ListArgs, NewTags, Plan, Where};
use airlock_fleet::address::*;
use airlock_fleet::FleetFamily;
use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum AddressCommand {
    /// List Elastic IPs.
    List(ListArgs),
    /// AllocateAddress: a new Elastic IP, tagged on creation.
    Allocate(Allocate),
    /// AssociateAddress with an instance or a network interface.
    Associate(Associate),
    /// Re-assign an address to another instance in one call (AllowReassociation), so it is
    /// never left unattached.
    Move(Move),
    /// DisassociateAddress.
    Disassociate(Disassociate),
    /// ReleaseAddress.
    Release(Release),
}

impl AddressCommand {
    pub(super) fn plan(self) -> Plan {
        match self {
            Self::List(a) => Plan::list(FleetFamily::Addresses, a),
            Self::Allocate(a) => Change::from(a).into(),
            Self::Associate(a) => Change::from(a).into(),
            Self::Move(a) => Change::from(a).into(),
            Self::Disassociate(a) => Change::from(a).into(),
            Self::Release(a) => Change::from(a).into(),
        }
    }
}

#[derive(Debug, Args)]
pub struct Allocate {
    #[command(flatten)]
    at: Where,
    #[command(flatten)]
    tags: NewTags,
}

impl From<Allocate> for Change {
    fn from(a: Allocate) -> Change {
        let tags = a.tags.tags();
        Change::new(a.at, AddressRequest::Allocate(AllocateAddress { tags }))
    }
}

#[derive(Debug, Args)]
pub struct Associate {
    /// Allocation id (eipalloc-…).
    allocation_id: String,
    /// The instance.
    #[arg(long, required_unless_present = "eni")]
    instance: Option<String>,
    /// The network interface.
    #[arg(long, conflicts_with = "instance")]
    eni: Option<String>,
    /// With --eni: which of its private addresses.
    #[arg(long, requires = "eni")]
    private_ip: Option<String>,
    /// Move the address if it is associated elsewhere.
    #[arg(long)]
    allow_reassociation: bool,
    #[command(flatten)]
    at: Where,
}

impl From<Associate> for Change {
    fn from(a: Associate) -> Change {
        let request = AssociateAddress {
            allocation_id: a.allocation_id,
            instance_id: a.instance,
            network_interface_id: a.eni,
            private_ip: a.private_ip,
            allow_reassociation: a.allow_reassociation,
        };
        Change::new(a.at, AddressRequest::Associate(request))
    }
}

#[derive(Debug, Args)]
pub struct Move {
    /// Allocation id (eipalloc-…).
    allocation_id: String,
    /// The instance that gets it.
    #[arg(long)]
    to: String,
    #[command(flatten)]
    at: Where,
}

impl From<Move> for Change {
    fn from(a: Move) -> Change {
        let request = MoveAddress {
            allocation_id: a.allocation_id,
            to_instance_id: a.to,
        };
        Change::new(a.at, AddressRequest::Move(request))
    }
}

#[derive(Debug, Args)]
pub struct Disassociate {
    /// Allocation id (eipalloc-…).
    allocation_id: String,
    #[command(flatten)]
    at: Where,
}

impl From<Disassociate> for Change {
    fn from(a: Disassociate) -> Change {
        let request = DisassociateAddress {
            allocation_id: a.allocation_id,
        };
        Change::new(a.at, AddressRequest::Disassociate(request))
    }
}

#[derive(Debug, Args)]
pub struct Release {
    /// Allocation id (eipalloc-…).
    allocation_id: String,
    #[command(flatten)]
    at: Where,
}

impl From<Release> for Change {
    fn from(a: Release) -> Change {
        let request = ReleaseAddress {
            allocation_id: a.allocation_id,
        };
        Change::new(a.at, AddressRequest::Release(request))
    }
}
