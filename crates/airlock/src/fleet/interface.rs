//! `airlock eni`: network interfaces. Each operation's arguments and the request they make.

use super::{Change, ListArgs, NewTags, Plan, Where};
use airlock_fleet::interface::*;
use airlock_fleet::FleetFamily;
use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum EniCommand {
    /// List network interfaces.
    List(ListArgs),
    /// CreateNetworkInterface: a secondary interface, optionally with a fixed private address.
    Create(Create),
    /// AttachNetworkInterface at a device index.
    Attach(Attach),
    /// DetachNetworkInterface.
    Detach(Detach),
    /// Move an interface (and its private address) to another instance: detach, wait until
    /// available, attach at the same device index.
    Move(Move),
    /// DeleteNetworkInterface.
    Delete(Delete),
}

impl EniCommand {
    pub(super) fn plan(self) -> Plan {
        match self {
            Self::List(a) => Plan::list(FleetFamily::NetworkInterfaces, a),
            Self::Create(a) => Change::from(a).into(),
            Self::Attach(a) => Change::from(a).into(),
            Self::Detach(a) => Change::from(a).into(),
            Self::Move(a) => Change::from(a).into(),
            Self::Delete(a) => Change::from(a).into(),
        }
    }
}

#[derive(Debug, Args)]
pub struct Create {
    /// The subnet.
    #[arg(long)]
    subnet: String,
    /// A fixed primary private address.
    #[arg(long)]
    private_ip: Option<String>,
    /// Security group (repeatable; default: the VPC's default group).
    #[arg(long = "security-group")]
    security_groups: Vec<String>,
    /// Free text.
    #[arg(long)]
    description: Option<String>,
    #[command(flatten)]
    tags: NewTags,
    #[command(flatten)]
    at: Where,
}

impl From<Create> for Change {
    fn from(a: Create) -> Change {
        let request = CreateNetworkInterface {
            subnet_id: a.subnet,
            private_ip: a.private_ip,
            security_group_ids: a.security_groups,
            description: a.description,
            tags: a.tags.tags(),
        };
        Change::new(a.at, InterfaceRequest::Create(request))
    }
}

#[derive(Debug, Args)]
pub struct Attach {
    /// The interface (eni-…).
    network_interface_id: String,
    /// The instance.
    #[arg(long)]
    instance: String,
    /// Device index (1 or more; 0 is the primary interface).
    #[arg(long, default_value_t = 1)]
    device_index: i32,
    #[command(flatten)]
    at: Where,
}

impl From<Attach> for Change {
    fn from(a: Attach) -> Change {
        let request = AttachNetworkInterface {
            network_interface_id: a.network_interface_id,
            instance_id: a.instance,
            device_index: a.device_index,
        };
        Change::new(a.at, InterfaceRequest::Attach(request))
    }
}

#[derive(Debug, Args)]
pub struct Detach {
    /// The interface (eni-…).
    network_interface_id: String,
    /// Detach even if the instance does not release it.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    at: Where,
}

impl From<Detach> for Change {
    fn from(a: Detach) -> Change {
        let request = DetachNetworkInterface {
            network_interface_id: a.network_interface_id,
            force: a.force,
        };
        Change::new(a.at, InterfaceRequest::Detach(request))
    }
}

#[derive(Debug, Args)]
pub struct Move {
    /// The interface (eni-…).
    network_interface_id: String,
    /// The instance that gets it.
    #[arg(long)]
    to: String,
    #[command(flatten)]
    at: Where,
}

impl From<Move> for Change {
    fn from(a: Move) -> Change {
        let request = MoveNetworkInterface {
            network_interface_id: a.network_interface_id,
            to_instance_id: a.to,
        };
        Change::new(a.at, InterfaceRequest::Move(request))
    }
}

#[derive(Debug, Args)]
pub struct Delete {
    /// The interface (eni-…).
    network_interface_id: String,
    #[command(flatten)]
    at: Where,
}

impl From<Delete> for Change {
    fn from(a: Delete) -> Change {
        let request = DeleteNetworkInterface {
            network_interface_id: a.network_interface_id,
        };
        Change::new(a.at, InterfaceRequest::Delete(request))
    }
}
