//! `airlock image`: images (AMIs). Each operation's arguments and the request they make.

use super::{Change, ListArgs, NewTags, Plan, Wait, Where};
use airlock_fleet::image::*;
use airlock_fleet::FleetFamily;
use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// List the account's own images.
    List(ListArgs),
    /// CreateImage from an instance, the image tagged on creation.
    Create(Create),
    /// DeregisterImage.
    Deregister(Deregister),
}

impl ImageCommand {
    pub(super) fn plan(self) -> Plan {
        match self {
            Self::List(a) => Plan::list(FleetFamily::Images, a),
            Self::Create(a) => Change::from(a).into(),
            Self::Deregister(a) => Change::from(a).into(),
        }
    }
}

#[derive(Debug, Args)]
pub struct Create {
    /// The instance.
    instance_id: String,
    /// The image name.
    #[arg(long)]
    name: String,
    /// Free text.
    #[arg(long)]
    description: Option<String>,
    /// Do not reboot the instance first (file systems may be inconsistent).
    #[arg(long)]
    no_reboot: bool,
    #[command(flatten)]
    tags: NewTags,
    /// Wait until the image is available.
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    at: Where,
}

impl From<Create> for Change {
    fn from(a: Create) -> Change {
        let request = CreateImage {
            instance_id: a.instance_id,
            name: a.name,
            description: a.description,
            no_reboot: a.no_reboot,
            tags: a.tags.tags(),
        };
        let ready = Wait {
            family: FleetFamily::Images,
            id_filter: "image-id",
            ready: "available",
        };
        Change::new(a.at, ImageRequest::Create(request)).waiting(a.wait, ready)
    }
}

#[derive(Debug, Args)]
pub struct Deregister {
    /// The image (ami-…).
    image_id: String,
    #[command(flatten)]
    at: Where,
}

impl From<Deregister> for Change {
    fn from(a: Deregister) -> Change {
        let request = DeregisterImage {
            image_id: a.image_id,
        };
        Change::new(a.at, ImageRequest::Deregister(request))
    }
}
