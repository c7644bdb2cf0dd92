//! `airlock address|eni|security-group|key-pair|volume|snapshot|image`: fleet operations through
//! a console, or with `--direct` straight to EC2 with this machine's AWS credentials (on an
//! instance, the agent's), running the same `airlock-fleet` code either way.

use crate::cli::{parse_tag, ConsoleArgs, Output};
use crate::client::Client;
use crate::commands::account_or_only;
use crate::output::{or_dash, print, table};
use airlock_cloud::{Cloud, Direction, Ec2, SecurityGroupRule, Tag};
use airlock_fleet::request::*;
use airlock_fleet::{FleetRequest, Outcome, Scope};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where an operation runs.
#[derive(Debug, Clone, Args)]
pub struct Where {
    /// Account (default: the console's only account).
    #[arg(long)]
    pub account: Option<String>,
    /// Run straight against EC2 with this machine's AWS credentials (the default chain: on an
    /// instance, the agent's credentials endpoint), in AWS_REGION, without a console. AWS then
    /// authorizes the calls itself.
    #[arg(long, conflicts_with = "account")]
    pub direct: bool,
}

/// Options of every listing.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub at: Where,
    /// Only resources tagged with this deployment.
    #[arg(long)]
    pub deployment: Option<String>,
    /// Tag filter KEY=VALUE (repeatable; all must match, case-sensitive).
    #[arg(long = "tag", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,
    /// EC2 filter NAME=VALUE[,VALUE…], e.g. tag:Team=web or status=available (repeatable).
    #[arg(long = "filter")]
    pub filters: Vec<String>,
}

/// Tags applied on creation.
#[derive(Debug, Args)]
pub struct NewTags {
    /// Tag KEY=VALUE applied on creation, atomically with the resource (repeatable).
    #[arg(long = "tag", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,
}

impl NewTags {
    fn tags(&self) -> Vec<Tag> {
        self.tags.iter().map(|(k, v)| Tag::new(k, v)).collect()
    }
}

#[derive(Debug, Subcommand)]
pub enum AddressCommand {
    /// List Elastic IPs.
    List(ListArgs),
    /// AllocateAddress: a new Elastic IP, tagged on creation.
    Allocate {
        #[command(flatten)]
        at: Where,
        #[command(flatten)]
        tags: NewTags,
    },
    /// AssociateAddress with an instance or a network interface.
    Associate {
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
    },
    /// Re-assign an address to another instance in one call (AllowReassociation), so it is
    /// never left unattached.
    Move {
        /// Allocation id (eipalloc-…).
        allocation_id: String,
        /// The instance that gets it.
        #[arg(long)]
        to: String,
        #[command(flatten)]
        at: Where,
    },
    /// DisassociateAddress.
    Disassociate {
        /// Allocation id (eipalloc-…).
        allocation_id: String,
        #[command(flatten)]
        at: Where,
    },
    /// ReleaseAddress.
    Release {
        /// Allocation id (eipalloc-…).
        allocation_id: String,
        #[command(flatten)]
        at: Where,
    },
}

#[derive(Debug, Subcommand)]
pub enum EniCommand {
    /// List network interfaces.
    List(ListArgs),
    /// CreateNetworkInterface: a secondary interface, optionally with a fixed private address.
    Create {
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
    },
    /// AttachNetworkInterface at a device index.
    Attach {
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
    },
    /// DetachNetworkInterface.
    Detach {
        /// The interface (eni-…).
        network_interface_id: String,
        /// Detach even if the instance does not release it.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        at: Where,
    },
    /// Move an interface (and its private address) to another instance: detach, wait until
    /// available, attach at the same device index.
    Move {
        /// The interface (eni-…).
        network_interface_id: String,
        /// The instance that gets it.
        #[arg(long)]
        to: String,
        #[command(flatten)]
        at: Where,
    },
    /// DeleteNetworkInterface.
    Delete {
        /// The interface (eni-…).
        network_interface_id: String,
        #[command(flatten)]
        at: Where,
    },
}

#[derive(Debug, Subcommand)]
pub enum SecurityGroupCommand {
    /// List security groups.
    List(ListArgs),
    /// Show one group's rules.
    Show {
        /// The group (sg-…).
        group_id: String,
        #[command(flatten)]
        at: Where,
    },
    /// CreateSecurityGroup, tagged on creation.
    Create {
        /// The group's name.
        name: String,
        /// Description (EC2 requires one).
        #[arg(long)]
        description: String,
        /// The VPC (default: the default VPC).
        #[arg(long)]
        vpc: Option<String>,
        #[command(flatten)]
        tags: NewTags,
        #[command(flatten)]
        at: Where,
    },
    /// Add a rule (AuthorizeSecurityGroupIngress/Egress).
    Authorize(RuleArgs),
    /// Remove a rule (RevokeSecurityGroupIngress/Egress).
    Revoke(RuleArgs),
    /// DeleteSecurityGroup.
    Delete {
        /// The group (sg-…).
        group_id: String,
        #[command(flatten)]
        at: Where,
    },
}

/// One security group rule.
#[derive(Debug, Args)]
pub struct RuleArgs {
    /// The group (sg-…).
    pub group_id: String,
    /// An outbound rule (default: inbound).
    #[arg(long)]
    pub egress: bool,
    /// tcp, udp, icmp, icmpv6, all, or a protocol number.
    #[arg(long, default_value = "tcp")]
    pub protocol: String,
    /// Port N or range A-B (ICMP: type-code).
    #[arg(long)]
    pub port: Option<String>,
    /// Source (or destination) CIDR block.
    #[arg(long, required_unless_present = "source_group")]
    pub cidr: Option<String>,
    /// Source (or destination) security group.
    #[arg(long, conflicts_with = "cidr")]
    pub source_group: Option<String>,
    /// Free text.
    #[arg(long)]
    pub description: Option<String>,
    /// Allow SSH or RDP from the whole internet.
    #[arg(long)]
    pub allow_world: bool,
    #[command(flatten)]
    pub at: Where,
}

#[derive(Debug, Subcommand)]
pub enum KeyPairCommand {
    /// List key pairs.
    List(ListArgs),
    /// CreateKeyPair: the private key is shown (or saved) this once and never stored.
    Create {
        /// The key pair's name.
        name: String,
        /// ed25519 or rsa.
        #[arg(long, default_value = "ed25519")]
        key_type: String,
        /// Write the private key to this new file (mode 0600) instead of printing it.
        #[arg(long)]
        private_key_file: Option<PathBuf>,
        #[command(flatten)]
        tags: NewTags,
        #[command(flatten)]
        at: Where,
    },
    /// ImportKeyPair of an OpenSSH public key.
    Import {
        /// The key pair's name.
        name: String,
        /// The public key file (e.g. ~/.ssh/id_ed25519.pub).
        #[arg(long)]
        public_key_file: PathBuf,
        #[command(flatten)]
        tags: NewTags,
        #[command(flatten)]
        at: Where,
    },
    /// DeleteKeyPair.
    Delete {
        /// The key pair's name.
        name: String,
        #[command(flatten)]
        at: Where,
    },
}

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// List volumes.
    List(ListArgs),
    /// CreateVolume, tagged on creation.
    Create {
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
    },
    /// AttachVolume at a device name.
    Attach {
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
    },
    /// DetachVolume.
    Detach {
        /// The volume (vol-…).
        volume_id: String,
        /// Skip the clean unmount (data may be lost).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        at: Where,
    },
    /// DeleteVolume.
    Delete {
        /// The volume (vol-…).
        volume_id: String,
        #[command(flatten)]
        at: Where,
    },
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// List the account's own snapshots.
    List(ListArgs),
    /// CreateSnapshot, created and tagged in one call (or not at all).
    Create {
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
    },
    /// DeleteSnapshot.
    Delete {
        /// The snapshot (snap-…).
        snapshot_id: String,
        #[command(flatten)]
        at: Where,
    },
    /// CopySnapshot to another region, tagged on creation there.
    Copy {
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
    },
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// List the account's own images.
    List(ListArgs),
    /// CreateImage from an instance, the image tagged on creation.
    Create {
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
    },
    /// DeregisterImage.
    Deregister {
        /// The image (ami-…).
        image_id: String,
        #[command(flatten)]
        at: Where,
    },
}

/// One fleet command, of any family.
#[derive(Debug)]
pub enum FleetCommand {
    Address(AddressCommand),
    Eni(EniCommand),
    SecurityGroup(SecurityGroupCommand),
    KeyPair(KeyPairCommand),
    Volume(VolumeCommand),
    Snapshot(SnapshotCommand),
    Image(ImageCommand),
}

/// What a command asks for: a listing, or a change (and what to wait for after it).
enum Plan {
    List {
        family: &'static str,
        args: ListArgs,
        only: Option<String>,
    },
    Change {
        request: FleetRequest,
        at: Where,
        wait: Option<Wait>,
        private_key_file: Option<PathBuf>,
    },
}

/// A state to wait for after a creation.
#[derive(Clone, Copy)]
struct Wait {
    family: &'static str,
    id_filter: &'static str,
    ready: &'static str,
}

fn change(request: FleetRequest, at: Where) -> Plan {
    Plan::Change {
        request,
        at,
        wait: None,
        private_key_file: None,
    }
}

fn rule(args: &RuleArgs) -> Result<SecurityGroupRule> {
    let (from_port, to_port) = match args.port.as_deref() {
        None => (None, None),
        Some(p) => {
            let (a, b) = p.split_once('-').unwrap_or((p, p));
            let parse = |s: &str| {
                s.parse::<i32>()
                    .with_context(|| format!("--port {p:?} is not N or A-B"))
            };
            (Some(parse(a)?), Some(parse(b)?))
        }
    };
    Ok(SecurityGroupRule {
        protocol: args.protocol.clone(),
        from_port,
        to_port,
        cidr: args.cidr.clone(),
        group_id: args.source_group.clone(),
        description: args.description.clone(),
    })
}

fn rules(args: RuleArgs) -> Result<(SecurityGroupRules, Where)> {
    let r = rule(&args)?;
    Ok((
        SecurityGroupRules {
            group_id: args.group_id,
            direction: if args.egress {
                Direction::Egress
            } else {
                Direction::Ingress
            },
            rules: vec![r],
            allow_world: args.allow_world,
        },
        args.at,
    ))
}

fn plan(command: FleetCommand) -> Result<Plan> {
    use FleetRequest as R;
    let list = |family, args| Plan::List {
        family,
        args,
        only: None,
    };
    Ok(match command {
        FleetCommand::Address(c) => match c {
            AddressCommand::List(a) => list("addresses", a),
            AddressCommand::Allocate { at, tags } => change(
                R::AllocateAddress(AllocateAddress { tags: tags.tags() }),
                at,
            ),
            AddressCommand::Associate {
                allocation_id,
                instance,
                eni,
                private_ip,
                allow_reassociation,
                at,
            } => change(
                R::AssociateAddress(AssociateAddress {
                    allocation_id,
                    instance_id: instance,
                    network_interface_id: eni,
                    private_ip,
                    allow_reassociation,
                }),
                at,
            ),
            AddressCommand::Move {
                allocation_id,
                to,
                at,
            } => change(
                R::MoveAddress(MoveAddress {
                    allocation_id,
                    to_instance_id: to,
                }),
                at,
            ),
            AddressCommand::Disassociate { allocation_id, at } => change(
                R::DisassociateAddress(DisassociateAddress { allocation_id }),
                at,
            ),
            AddressCommand::Release { allocation_id, at } => {
                change(R::ReleaseAddress(ReleaseAddress { allocation_id }), at)
            }
        },
        FleetCommand::Eni(c) => match c {
            EniCommand::List(a) => list("network-interfaces", a),
            EniCommand::Create {
                subnet,
                private_ip,
                security_groups,
                description,
                tags,
                at,
            } => change(
                R::CreateNetworkInterface(CreateNetworkInterface {
                    subnet_id: subnet,
                    private_ip,
                    security_group_ids: security_groups,
                    description,
                    tags: tags.tags(),
                }),
                at,
            ),
            EniCommand::Attach {
                network_interface_id,
                instance,
                device_index,
                at,
            } => change(
                R::AttachNetworkInterface(AttachNetworkInterface {
                    network_interface_id,
                    instance_id: instance,
                    device_index,
                }),
                at,
            ),
            EniCommand::Detach {
                network_interface_id,
                force,
                at,
            } => change(
                R::DetachNetworkInterface(DetachNetworkInterface {
                    network_interface_id,
                    force,
                }),
                at,
            ),
            EniCommand::Move {
                network_interface_id,
                to,
                at,
            } => change(
                R::MoveNetworkInterface(MoveNetworkInterface {
                    network_interface_id,
                    to_instance_id: to,
                }),
                at,
            ),
            EniCommand::Delete {
                network_interface_id,
                at,
            } => change(
                R::DeleteNetworkInterface(DeleteNetworkInterface {
                    network_interface_id,
                }),
                at,
            ),
        },
        FleetCommand::SecurityGroup(c) => match c {
            SecurityGroupCommand::List(a) => list("security-groups", a),
            SecurityGroupCommand::Show { group_id, at } => Plan::List {
                family: "security-groups",
                args: ListArgs {
                    at,
                    deployment: None,
                    tags: Vec::new(),
                    filters: vec![format!("group-id={group_id}")],
                },
                only: Some(group_id),
            },
            SecurityGroupCommand::Create {
                name,
                description,
                vpc,
                tags,
                at,
            } => change(
                R::CreateSecurityGroup(CreateSecurityGroup {
                    group_name: name,
                    description,
                    vpc_id: vpc,
                    tags: tags.tags(),
                }),
                at,
            ),
            SecurityGroupCommand::Authorize(args) => {
                let (r, at) = rules(args)?;
                change(R::AuthorizeSecurityGroup(r), at)
            }
            SecurityGroupCommand::Revoke(args) => {
                let (r, at) = rules(args)?;
                change(R::RevokeSecurityGroup(r), at)
            }
            SecurityGroupCommand::Delete { group_id, at } => {
                change(R::DeleteSecurityGroup(DeleteSecurityGroup { group_id }), at)
            }
        },
        FleetCommand::KeyPair(c) => match c {
            KeyPairCommand::List(a) => list("key-pairs", a),
            KeyPairCommand::Create {
                name,
                key_type,
                private_key_file,
                tags,
                at,
            } => {
                if let Some(path) = &private_key_file {
                    if path.exists() {
                        bail!(
                            "--private-key-file {} exists; choose a new file (a private key is never overwritten)",
                            path.display()
                        );
                    }
                }
                Plan::Change {
                    request: R::CreateKeyPair(CreateKeyPair {
                        key_name: name,
                        key_type,
                        tags: tags.tags(),
                    }),
                    at,
                    wait: None,
                    private_key_file,
                }
            }
            KeyPairCommand::Import {
                name,
                public_key_file,
                tags,
                at,
            } => {
                let public_key = std::fs::read_to_string(&public_key_file).with_context(|| {
                    format!(
                        "cannot read --public-key-file {}",
                        public_key_file.display()
                    )
                })?;
                change(
                    R::ImportKeyPair(ImportKeyPair {
                        key_name: name,
                        public_key: public_key.trim().to_owned(),
                        tags: tags.tags(),
                    }),
                    at,
                )
            }
            KeyPairCommand::Delete { name, at } => {
                change(R::DeleteKeyPair(DeleteKeyPair { key_name: name }), at)
            }
        },
        FleetCommand::Volume(c) => match c {
            VolumeCommand::List(a) => list("volumes", a),
            VolumeCommand::Create {
                availability_zone,
                size,
                volume_type,
                iops,
                encrypted,
                snapshot,
                tags,
                wait,
                at,
            } => Plan::Change {
                request: R::CreateVolume(CreateVolume {
                    availability_zone,
                    size_gib: size,
                    volume_type,
                    iops,
                    encrypted,
                    snapshot_id: snapshot,
                    tags: tags.tags(),
                }),
                at,
                wait: wait.then_some(Wait {
                    family: "volumes",
                    id_filter: "volume-id",
                    ready: "available",
                }),
                private_key_file: None,
            },
            VolumeCommand::Attach {
                volume_id,
                instance,
                device,
                at,
            } => change(
                R::AttachVolume(AttachVolume {
                    volume_id,
                    instance_id: instance,
                    device,
                }),
                at,
            ),
            VolumeCommand::Detach {
                volume_id,
                force,
                at,
            } => change(R::DetachVolume(DetachVolume { volume_id, force }), at),
            VolumeCommand::Delete { volume_id, at } => {
                change(R::DeleteVolume(DeleteVolume { volume_id }), at)
            }
        },
        FleetCommand::Snapshot(c) => match c {
            SnapshotCommand::List(a) => list("snapshots", a),
            SnapshotCommand::Create {
                volume_id,
                description,
                tags,
                wait,
                at,
            } => Plan::Change {
                request: R::CreateSnapshot(CreateSnapshot {
                    volume_id,
                    description,
                    tags: tags.tags(),
                }),
                at,
                wait: wait.then_some(Wait {
                    family: "snapshots",
                    id_filter: "snapshot-id",
                    ready: "completed",
                }),
                private_key_file: None,
            },
            SnapshotCommand::Delete { snapshot_id, at } => {
                change(R::DeleteSnapshot(DeleteSnapshot { snapshot_id }), at)
            }
            SnapshotCommand::Copy {
                snapshot_id,
                to_region,
                description,
                tags,
                at,
            } => change(
                R::CopySnapshot(CopySnapshot {
                    snapshot_id,
                    destination_region: to_region,
                    description,
                    tags: tags.tags(),
                }),
                at,
            ),
        },
        FleetCommand::Image(c) => match c {
            ImageCommand::List(a) => list("images", a),
            ImageCommand::Create {
                instance_id,
                name,
                description,
                no_reboot,
                tags,
                wait,
                at,
            } => Plan::Change {
                request: R::CreateImage(CreateImage {
                    instance_id,
                    name,
                    description,
                    no_reboot,
                    tags: tags.tags(),
                }),
                at,
                wait: wait.then_some(Wait {
                    family: "images",
                    id_filter: "image-id",
                    ready: "available",
                }),
                private_key_file: None,
            },
            ImageCommand::Deregister { image_id, at } => {
                change(R::DeregisterImage(DeregisterImage { image_id }), at)
            }
        },
    })
}

/// A console, or EC2 itself with this machine's credentials.
enum Backend {
    Console { client: Client, account: String },
    Direct { ec2: Arc<dyn Ec2>, scope: Scope },
}

impl Backend {
    async fn open(console: &ConsoleArgs, at: &Where) -> Result<Backend> {
        if at.direct {
            let region = std::env::var("AWS_REGION")
                .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
                .ok()
                .context("--direct needs a region: set AWS_REGION (for example us-east-1)")?;
            let credentials = airlock_aws::default_chain_credentials()
                .await
                .context("--direct found no AWS credentials in the default chain")?;
            let target = airlock_cloud::Target {
                region: region.clone(),
                endpoint_url: std::env::var("AWS_ENDPOINT_URL_EC2")
                    .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
                    .ok(),
                credentials,
                role_arn: None,
                external_id: None,
            };
            let ec2 = airlock_aws::AwsCloud::new().ec2(&target).await?;
            // The account id only names resources in ARNs, which only the console's audit log
            // needs; a direct call is in CloudTrail instead.
            let scope = Scope {
                region,
                account_id: String::new(),
            };
            return Ok(Backend::Direct { ec2, scope });
        }
        let client = Client::new(console)?;
        let account = account_or_only(&client, at.account.clone()).await?;
        Ok(Backend::Console { client, account })
    }

    async fn list(&self, family: &str, args: &ListArgs) -> Result<Vec<Value>> {
        let tags: Vec<String> = args.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        match self {
            Backend::Direct { ec2, .. } => {
                let filters =
                    airlock_fleet::filters(args.deployment.as_deref(), &tags, &args.filters)?;
                Ok(airlock_fleet::describe(ec2.as_ref(), family, &filters).await?)
            }
            Backend::Console { client, account } => {
                let mut query: Vec<(&str, String)> = vec![("account", account.clone())];
                if let Some(d) = &args.deployment {
                    query.push(("deployment", d.clone()));
                }
                query.extend(tags.into_iter().map(|t| ("tag", t)));
                query.extend(args.filters.iter().map(|f| ("filter", f.clone())));
                let list: airlock_console::api::FleetList =
                    client.get_query(&format!("/v1/{family}"), &query).await?;
                Ok(list.items)
            }
        }
    }

    async fn run(&self, mut request: FleetRequest) -> Result<Outcome> {
        match self {
            Backend::Direct { ec2, scope } => {
                request.validate()?;
                let facts = airlock_fleet::prepare(ec2.as_ref(), &request).await?;
                let copy_to = match &request {
                    FleetRequest::CopySnapshot(r) => {
                        bail!(
                            "--direct cannot copy to {}: run it in the destination region with the console",
                            r.destination_region
                        )
                    }
                    _ => None,
                };
                let run =
                    airlock_fleet::execute(ec2.as_ref(), copy_to, &request, &facts, scope).await;
                Ok(run.result?)
            }
            Backend::Console { client, account } => {
                let mut body = request.to_json();
                if let Some(o) = body.as_object_mut() {
                    o.insert("account".into(), Value::String(account.clone()));
                }
                client.post(&format!("/v1/{}", request.path()), &body).await
            }
        }
    }
}

/// Runs one fleet command.
pub async fn run(console: &ConsoleArgs, command: FleetCommand, output: Output) -> Result<()> {
    match plan(command)? {
        Plan::List { family, args, only } => {
            let backend = Backend::open(console, &args.at).await?;
            let items = backend.list(family, &args).await?;
            if let Some(id) = only {
                let Some(group) = items.into_iter().next() else {
                    bail!("no security group {id}");
                };
                return show_group(&group, output);
            }
            print_list(family, &items, output)
        }
        Plan::Change {
            request,
            at,
            wait,
            private_key_file,
        } => {
            let backend = Backend::open(console, &at).await?;
            let mut outcome = backend.run(request).await?;
            if let Some(path) = &private_key_file {
                let Some(key) = outcome.private_key.take() else {
                    bail!("EC2 returned no private key to save");
                };
                save_private_key(path, &key)?;
                outcome.message = format!(
                    "{}; saved to {} (mode 0600)",
                    outcome.message,
                    path.display()
                );
            }
            if let (Some(w), Some(id)) = (wait, outcome.resource_id.clone()) {
                wait_for(&backend, w, &id, output).await?;
            }
            print_outcome(&outcome, output)
        }
    }
}

fn save_private_key(path: &std::path::Path, key: &airlock_fleet::PrivateKey) -> Result<()> {
    use secrecy::ExposeSecret;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(key.0.expose_secret().as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn print_outcome(outcome: &Outcome, output: Output) -> Result<()> {
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(outcome)?);
        return Ok(());
    }
    println!("{}", outcome.message);
    if let Some(key) = &outcome.private_key {
        use secrecy::ExposeSecret;
        // Shown once: EC2 keeps only the public half and the console keeps nothing.
        print!("{}", key.0.expose_secret());
        if !key.0.expose_secret().ends_with('\n') {
            println!();
        }
    }
    Ok(())
}

/// Polls the new resource until it is ready, with progress on a terminal.
async fn wait_for(backend: &Backend, w: Wait, id: &str, output: Output) -> Result<()> {
    let bar = if std::io::stderr().is_terminal() && output == Output::Table {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    let deadline = Instant::now() + Duration::from_secs(3600);
    let args = ListArgs {
        at: Where {
            account: None,
            direct: false,
        },
        deployment: None,
        tags: Vec::new(),
        filters: vec![format!("{}={id}", w.id_filter)],
    };
    let mut last = String::new();
    loop {
        let items = backend.list(w.family, &args).await?;
        let item = items.first();
        let state = item
            .and_then(|v| v.get("state"))
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_owned();
        let progress = item
            .and_then(|v| v.get("progress"))
            .and_then(Value::as_str)
            .map(|p| format!(" {p}"))
            .unwrap_or_default();
        let line = format!("{id}: {state}{progress}");
        bar.set_message(line.clone());
        if bar.is_hidden() && line != last {
            eprintln!("{line}");
        }
        last = line;
        if state == w.ready {
            bar.finish_and_clear();
            return Ok(());
        }
        if matches!(
            state.as_str(),
            "error" | "failed" | "deleted" | "deregistered"
        ) {
            bar.abandon();
            bail!("{id} is {state}");
        }
        if Instant::now() >= deadline {
            bar.abandon();
            bail!("gave up waiting for {id} after an hour; it is {state}");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => "-".into(),
    }
}

fn tags_cell(v: &Value) -> String {
    let tags: Vec<Tag> = v
        .get("tags")
        .and_then(|t| serde_json::from_value(t.clone()).ok())
        .unwrap_or_default();
    tags.iter()
        .map(|t| format!("{}={}", t.key, t.value))
        .collect::<Vec<_>>()
        .join(",")
}

fn print_list(family: &str, items: &[Value], output: Output) -> Result<()> {
    let columns: &[(&str, &str)] = match family {
        "addresses" => &[
            ("ALLOCATION", "allocation_id"),
            ("PUBLIC IP", "public_ip"),
            ("INSTANCE", "instance_id"),
            ("INTERFACE", "network_interface_id"),
            ("PRIVATE IP", "private_ip"),
        ],
        "network-interfaces" => &[
            ("INTERFACE", "network_interface_id"),
            ("STATUS", "status"),
            ("PRIVATE IP", "private_ip"),
            ("SUBNET", "subnet_id"),
            ("ZONE", "availability_zone"),
        ],
        "security-groups" => &[
            ("GROUP", "group_id"),
            ("NAME", "group_name"),
            ("VPC", "vpc_id"),
            ("DESCRIPTION", "description"),
        ],
        "key-pairs" => &[
            ("NAME", "key_name"),
            ("ID", "key_pair_id"),
            ("TYPE", "key_type"),
            ("FINGERPRINT", "key_fingerprint"),
        ],
        "volumes" => &[
            ("VOLUME", "volume_id"),
            ("STATE", "state"),
            ("SIZE GIB", "size_gib"),
            ("TYPE", "volume_type"),
            ("ZONE", "availability_zone"),
        ],
        "snapshots" => &[
            ("SNAPSHOT", "snapshot_id"),
            ("STATE", "state"),
            ("PROGRESS", "progress"),
            ("VOLUME", "volume_id"),
            ("SIZE GIB", "volume_size_gib"),
        ],
        _ => &[
            ("IMAGE", "image_id"),
            ("NAME", "name"),
            ("STATE", "state"),
            ("CREATED", "creation_date"),
        ],
    };
    let mut headers: Vec<&str> = columns.iter().map(|(h, _)| *h).collect();
    headers.push("TAGS");
    print(output, &items, &headers, || {
        items
            .iter()
            .map(|v| {
                let mut row: Vec<String> = columns.iter().map(|(_, k)| text(v, k)).collect();
                if family == "network-interfaces" {
                    let attached = v
                        .get("attachment")
                        .and_then(|a| a.get("instance_id"))
                        .and_then(Value::as_str);
                    if let (Some(i), Some(status)) = (attached, row.get_mut(1)) {
                        *status = format!("{status} ({i})");
                    }
                }
                if family == "volumes" {
                    let attached: Vec<String> = v
                        .get("attachments")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .map(|x| {
                                    format!("{}@{}", text(x, "instance_id"), text(x, "device"))
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    if let (false, Some(state)) = (attached.is_empty(), row.get_mut(1)) {
                        *state = format!("{state} ({})", attached.join(","));
                    }
                }
                row.push(tags_cell(v));
                row
            })
            .collect()
    })
}

fn show_group(group: &Value, output: Output) -> Result<()> {
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(group)?);
        return Ok(());
    }
    println!(
        "{} {} ({}) in {}",
        text(group, "group_id"),
        text(group, "group_name"),
        text(group, "description"),
        text(group, "vpc_id")
    );
    let mut rows = Vec::new();
    for direction in ["ingress", "egress"] {
        let rules: Vec<SecurityGroupRule> = group
            .get(direction)
            .and_then(|r| serde_json::from_value(r.clone()).ok())
            .unwrap_or_default();
        for r in rules {
            let ports = match (r.from_port, r.to_port) {
                (Some(a), Some(b)) if a == b => a.to_string(),
                (Some(a), Some(b)) => format!("{a}-{b}"),
                _ => "all".into(),
            };
            rows.push(vec![
                direction.to_owned(),
                if r.protocol == "-1" {
                    "all".into()
                } else {
                    r.protocol.clone()
                },
                ports,
                r.cidr.clone().or(r.group_id.clone()).unwrap_or_default(),
                or_dash(&r.description),
            ]);
        }
    }
    print!(
        "{}",
        table(
            &["DIRECTION", "PROTOCOL", "PORTS", "SOURCE", "DESCRIPTION"],
            &rows
        )
    );
    Ok(())
}
