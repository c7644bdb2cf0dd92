//! Plain data for the fleet resources beyond instances: addresses, network interfaces, security
//! groups, key pairs, snapshots, images, subnets and instance status checks.

use crate::Tag;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// Where `AssociateAddress` puts an Elastic IP.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AddressTarget {
    /// An instance (its primary network interface).
    Instance(String),
    /// A network interface, optionally one of its secondary private addresses.
    NetworkInterface {
        /// The interface id (`eni-…`).
        network_interface_id: String,
        /// The private address to associate with (default: the interface's primary).
        private_ip: Option<String>,
    },
}

/// A network interface as `DescribeNetworkInterfaces` reports it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct NetworkInterface {
    /// e.g. `eni-0123…`.
    pub network_interface_id: String,
    /// The subnet it lives in.
    pub subnet_id: Option<String>,
    /// The VPC.
    pub vpc_id: Option<String>,
    /// The availability zone (it can attach only to instances there).
    pub availability_zone: Option<String>,
    /// The primary private IPv4 address.
    pub private_ip: Option<String>,
    /// `available`, `in-use`, `attaching`, `detaching`…
    pub status: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Security groups of the interface.
    pub security_group_ids: Vec<String>,
    /// Where it is attached, if anywhere.
    pub attachment: Option<InterfaceAttachment>,
    /// Its tags.
    pub tags: Vec<Tag>,
}

/// A network interface's attachment to an instance.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct InterfaceAttachment {
    /// e.g. `eni-attach-0123…`.
    pub attachment_id: Option<String>,
    /// The instance.
    pub instance_id: Option<String>,
    /// Device index on the instance (0 is the primary interface).
    pub device_index: Option<i32>,
    /// `attaching`, `attached`, `detaching` or `detached`.
    pub status: Option<String>,
}

/// What `CreateNetworkInterface` needs.
#[derive(Clone, Debug)]
pub struct CreateNetworkInterfaceInput {
    /// The subnet.
    pub subnet_id: String,
    /// A fixed primary private address (default: EC2 picks one).
    pub private_ip: Option<String>,
    /// Security groups (default: the VPC's default group).
    pub security_group_ids: Vec<String>,
    /// Free text.
    pub description: Option<String>,
    /// Tags applied on creation.
    pub tags: Vec<Tag>,
}

/// Ingress (inbound) or egress (outbound) rules of a security group.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Inbound.
    Ingress,
    /// Outbound.
    Egress,
}

impl Direction {
    /// `Ingress` or `Egress`, as in EC2's action names.
    pub fn api_name(self) -> &'static str {
        match self {
            Direction::Ingress => "Ingress",
            Direction::Egress => "Egress",
        }
    }
}

/// One security group rule: a protocol, a port range and one source (or destination).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecurityGroupRule {
    /// `tcp`, `udp`, `icmp`, `icmpv6`, `-1` (all) or an IP protocol number.
    pub protocol: String,
    /// First port (ICMP: the type; absent for all protocols).
    #[serde(default)]
    pub from_port: Option<i32>,
    /// Last port (ICMP: the code).
    #[serde(default)]
    pub to_port: Option<i32>,
    /// An IPv4 or IPv6 CIDR block.
    #[serde(default)]
    pub cidr: Option<String>,
    /// Another security group (`sg-…`) as the source or destination.
    #[serde(default)]
    pub group_id: Option<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
}

/// A security group as `DescribeSecurityGroups` reports it, one rule per source.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct SecurityGroup {
    /// e.g. `sg-0123…`.
    pub group_id: String,
    /// Its name (unique per VPC).
    pub group_name: String,
    /// Its description.
    pub description: Option<String>,
    /// The VPC.
    pub vpc_id: Option<String>,
    /// Inbound rules.
    pub ingress: Vec<SecurityGroupRule>,
    /// Outbound rules.
    pub egress: Vec<SecurityGroupRule>,
    /// Its tags.
    pub tags: Vec<Tag>,
}

/// What `CreateSecurityGroup` needs.
#[derive(Clone, Debug)]
pub struct CreateSecurityGroupInput {
    /// Name, unique in the VPC.
    pub group_name: String,
    /// Description (EC2 requires one).
    pub description: String,
    /// The VPC (default: the default VPC).
    pub vpc_id: Option<String>,
    /// Tags applied on creation.
    pub tags: Vec<Tag>,
}

/// A subnet as `DescribeSubnets` reports it: where a launch can go and how much room is left.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Subnet {
    /// e.g. `subnet-0123…`.
    pub subnet_id: String,
    /// Its VPC.
    pub vpc_id: Option<String>,
    /// Its Availability Zone.
    pub availability_zone: Option<String>,
    /// Its IPv4 range.
    pub cidr_block: Option<String>,
    /// Private IPv4 addresses still free.
    pub available_ip_address_count: Option<i32>,
    /// Whether it is its zone's default subnet.
    pub default_for_az: Option<bool>,
    /// Its tags.
    pub tags: Vec<Tag>,
}

/// A key pair as `DescribeKeyPairs` reports it (EC2 keeps only the public half).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct KeyPair {
    /// e.g. `key-0123…`.
    pub key_pair_id: Option<String>,
    /// The name instances are launched with.
    pub key_name: String,
    /// The fingerprint.
    pub key_fingerprint: Option<String>,
    /// `rsa` or `ed25519`.
    pub key_type: Option<String>,
    /// When it was created or imported.
    pub created_at: Option<DateTime<Utc>>,
    /// Its tags.
    pub tags: Vec<Tag>,
}

/// A key pair EC2 just created, with the private key it returns once and never again.
#[derive(Clone, Debug)]
pub struct NewKeyPair {
    /// The key pair.
    pub key_pair: KeyPair,
    /// The private key (PEM or OpenSSH format).
    pub private_key: SecretString,
}

/// What `CreateVolume` needs.
#[derive(Clone, Debug)]
pub struct CreateVolumeInput {
    /// The availability zone it will live in.
    pub availability_zone: String,
    /// Size in GiB (default with a snapshot: the snapshot's size).
    pub size_gib: Option<i32>,
    /// `gp3`, `gp2`, `io1`, `io2`, `st1`, `sc1` or `standard`.
    pub volume_type: String,
    /// Provisioned IOPS (gp3, io1, io2).
    pub iops: Option<i32>,
    /// Encrypt with the account's default EBS key.
    pub encrypted: bool,
    /// Restore from this snapshot.
    pub snapshot_id: Option<String>,
    /// Tags applied on creation.
    pub tags: Vec<Tag>,
}

/// An EBS snapshot as `DescribeSnapshots` reports it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Snapshot {
    /// e.g. `snap-0123…`.
    pub snapshot_id: String,
    /// The volume it was taken from.
    pub volume_id: Option<String>,
    /// `pending`, `completed`, `error`…
    pub state: Option<String>,
    /// e.g. `100%`.
    pub progress: Option<String>,
    /// The source volume's size in GiB.
    pub volume_size_gib: Option<i32>,
    /// Free text.
    pub description: Option<String>,
    /// Whether it is encrypted.
    pub encrypted: Option<bool>,
    /// The owning account id.
    pub owner_id: Option<String>,
    /// When it was started.
    pub start_time: Option<DateTime<Utc>>,
    /// Its tags.
    pub tags: Vec<Tag>,
}

/// An AMI as `DescribeImages` reports it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Image {
    /// e.g. `ami-0123…`.
    pub image_id: String,
    /// Its name.
    pub name: Option<String>,
    /// `pending`, `available`, `failed`…
    pub state: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// The owning account id.
    pub owner_id: Option<String>,
    /// When it was created (as EC2 writes it).
    pub creation_date: Option<String>,
    /// Snapshots behind its block devices.
    pub snapshot_ids: Vec<String>,
    /// Its tags.
    pub tags: Vec<Tag>,
}

/// What `CreateImage` needs.
#[derive(Clone, Debug)]
pub struct CreateImageInput {
    /// The instance to image.
    pub instance_id: String,
    /// The image name (unique per account and region).
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Image the instance without rebooting it first (file systems may be inconsistent).
    pub no_reboot: bool,
    /// Tags applied on creation to the image.
    pub tags: Vec<Tag>,
}

/// An instance's state and status checks, as `DescribeInstanceStatus` reports them.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct InstanceStatus {
    /// The instance.
    pub instance_id: String,
    /// `pending`, `running`, `stopped`…
    pub state: Option<String>,
    /// The system status check: `ok`, `impaired`, `initializing`, `insufficient-data`…
    pub system_status: Option<String>,
    /// The instance status check, same values.
    pub instance_status: Option<String>,
    /// The availability zone.
    pub availability_zone: Option<String>,
}
