//! The fleet operations as requests: one plain struct per operation, the JSON bodies of the
//! console's `POST /v1/{family}/{verb}` and what `airlock <family> <verb>` sends.

use crate::validate::{self, Checked, FieldError};
use airlock_cloud::{Direction, SecurityGroupRule, Tag};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// `AllocateAddress`: a new Elastic IP, tagged on creation.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllocateAddress {
    /// Tags applied on creation.
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// `AssociateAddress` to an instance or a network interface.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssociateAddress {
    /// The address (`eipalloc-…`).
    pub allocation_id: String,
    /// The instance (or give `network_interface_id`).
    #[serde(default)]
    pub instance_id: Option<String>,
    /// The network interface (or give `instance_id`).
    #[serde(default)]
    pub network_interface_id: Option<String>,
    /// With a network interface: which of its private addresses.
    #[serde(default)]
    pub private_ip: Option<String>,
    /// Move the address when it is associated elsewhere (otherwise EC2 refuses).
    #[serde(default)]
    pub allow_reassociation: bool,
}

/// Re-assigns an address to another instance in one `AssociateAddress` with
/// `AllowReassociation`, so it is never left unattached in between.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveAddress {
    /// The address (`eipalloc-…`).
    pub allocation_id: String,
    /// The instance that gets it.
    pub to_instance_id: String,
}

/// `DisassociateAddress` of an address's current association.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisassociateAddress {
    /// The address (`eipalloc-…`).
    pub allocation_id: String,
}

/// `ReleaseAddress`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseAddress {
    /// The address (`eipalloc-…`).
    pub allocation_id: String,
}

/// `CreateNetworkInterface`: a secondary interface, optionally with a fixed private address.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateNetworkInterface {
    /// The subnet.
    pub subnet_id: String,
    /// A fixed primary private address (default: EC2 picks one).
    #[serde(default)]
    pub private_ip: Option<String>,
    /// Security groups (default: the VPC's default group).
    #[serde(default)]
    pub security_group_ids: Vec<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Tags applied on creation.
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// `AttachNetworkInterface` at a device index.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachNetworkInterface {
    /// The interface (`eni-…`).
    pub network_interface_id: String,
    /// The instance.
    pub instance_id: String,
    /// Device index, 1 or more.
    pub device_index: i32,
}

/// `DetachNetworkInterface` from whatever instance it is attached to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetachNetworkInterface {
    /// The interface (`eni-…`).
    pub network_interface_id: String,
    /// Detach even if the instance does not release it.
    #[serde(default)]
    pub force: bool,
}

/// Moves an interface to another instance: detach, wait until available, attach at the same
/// device index. Its private address (and any Elastic IP on it) goes with it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveNetworkInterface {
    /// The interface (`eni-…`).
    pub network_interface_id: String,
    /// The instance that gets it.
    pub to_instance_id: String,
}

/// `DeleteNetworkInterface`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteNetworkInterface {
    /// The interface (`eni-…`).
    pub network_interface_id: String,
}

/// `CreateSecurityGroup`, tagged on creation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSecurityGroup {
    /// Name, unique in the VPC.
    pub group_name: String,
    /// Description (EC2 requires one).
    pub description: String,
    /// The VPC (default: the default VPC).
    #[serde(default)]
    pub vpc_id: Option<String>,
    /// Tags applied on creation.
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// `Authorize…` or `RevokeSecurityGroupIngress/Egress`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityGroupRules {
    /// The group (`sg-…`).
    pub group_id: String,
    /// Inbound or outbound rules.
    pub direction: Direction,
    /// The rules.
    pub rules: Vec<SecurityGroupRule>,
    /// Allow SSH or RDP from the whole internet.
    #[serde(default)]
    pub allow_world: bool,
}

/// `DeleteSecurityGroup`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteSecurityGroup {
    /// The group (`sg-…`).
    pub group_id: String,
}

/// `CreateKeyPair`: the private key is returned to the caller once, never stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyPair {
    /// The key pair's name.
    pub key_name: String,
    /// `ed25519` (default) or `rsa`.
    #[serde(default = "default_key_type")]
    pub key_type: String,
    /// Tags applied on creation.
    #[serde(default)]
    pub tags: Vec<Tag>,
}

fn default_key_type() -> String {
    "ed25519".to_owned()
}

/// `ImportKeyPair` of an OpenSSH public key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportKeyPair {
    /// The key pair's name.
    pub key_name: String,
    /// The public key, one OpenSSH line.
    pub public_key: String,
    /// Tags applied on creation.
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// `DeleteKeyPair`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteKeyPair {
    /// The key pair's name.
    pub key_name: String,
}

/// `CreateVolume`, tagged on creation.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetachVolume {
    /// The volume (`vol-…`).
    pub volume_id: String,
    /// Skip the clean unmount (data may be lost).
    #[serde(default)]
    pub force: bool,
}

/// `DeleteVolume`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteVolume {
    /// The volume (`vol-…`).
    pub volume_id: String,
}

/// `CreateSnapshot` with `TagSpecifications`: created and tagged together, or not at all.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteSnapshot {
    /// The snapshot (`snap-…`).
    pub snapshot_id: String,
}

/// `CopySnapshot` to another region, tagged on creation there.
#[derive(Debug, Clone, Serialize, Deserialize)]
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

/// `CreateImage` from an instance, the image tagged on creation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateImage {
    /// The instance.
    pub instance_id: String,
    /// The image name.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Do not reboot the instance first (file systems may be inconsistent).
    #[serde(default)]
    pub no_reboot: bool,
    /// Tags applied on creation.
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// `DeregisterImage`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeregisterImage {
    /// The image (`ami-…`).
    pub image_id: String,
}

/// Every fleet operation.
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub enum FleetRequest {
    AllocateAddress(AllocateAddress),
    AssociateAddress(AssociateAddress),
    MoveAddress(MoveAddress),
    DisassociateAddress(DisassociateAddress),
    ReleaseAddress(ReleaseAddress),
    CreateNetworkInterface(CreateNetworkInterface),
    AttachNetworkInterface(AttachNetworkInterface),
    DetachNetworkInterface(DetachNetworkInterface),
    MoveNetworkInterface(MoveNetworkInterface),
    DeleteNetworkInterface(DeleteNetworkInterface),
    CreateSecurityGroup(CreateSecurityGroup),
    AuthorizeSecurityGroup(SecurityGroupRules),
    RevokeSecurityGroup(SecurityGroupRules),
    DeleteSecurityGroup(DeleteSecurityGroup),
    CreateKeyPair(CreateKeyPair),
    ImportKeyPair(ImportKeyPair),
    DeleteKeyPair(DeleteKeyPair),
    CreateVolume(CreateVolume),
    AttachVolume(AttachVolume),
    DetachVolume(DetachVolume),
    DeleteVolume(DeleteVolume),
    CreateSnapshot(CreateSnapshot),
    DeleteSnapshot(DeleteSnapshot),
    CopySnapshot(CopySnapshot),
    CreateImage(CreateImage),
    DeregisterImage(DeregisterImage),
}

/// The resource families, as they appear in console paths (`/v1/{family}`).
pub const FAMILIES: [&str; 7] = [
    "addresses",
    "network-interfaces",
    "security-groups",
    "key-pairs",
    "volumes",
    "snapshots",
    "images",
];

fn body<T: DeserializeOwned>(value: serde_json::Value) -> Checked<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        FieldError::new(if path == "." { "body".into() } else { path }, message)
    })
}

impl FleetRequest {
    /// The request for `POST /v1/{family}/{verb}` with a JSON body (without its `account`).
    /// `Ok(None)` when no such operation exists.
    pub fn parse(family: &str, verb: &str, value: serde_json::Value) -> Checked<Option<Self>> {
        use FleetRequest as R;
        Ok(Some(match (family, verb) {
            ("addresses", "allocate") => R::AllocateAddress(body(value)?),
            ("addresses", "associate") => R::AssociateAddress(body(value)?),
            ("addresses", "move") => R::MoveAddress(body(value)?),
            ("addresses", "disassociate") => R::DisassociateAddress(body(value)?),
            ("addresses", "release") => R::ReleaseAddress(body(value)?),
            ("network-interfaces", "create") => R::CreateNetworkInterface(body(value)?),
            ("network-interfaces", "attach") => R::AttachNetworkInterface(body(value)?),
            ("network-interfaces", "detach") => R::DetachNetworkInterface(body(value)?),
            ("network-interfaces", "move") => R::MoveNetworkInterface(body(value)?),
            ("network-interfaces", "delete") => R::DeleteNetworkInterface(body(value)?),
            ("security-groups", "create") => R::CreateSecurityGroup(body(value)?),
            ("security-groups", "authorize") => R::AuthorizeSecurityGroup(body(value)?),
            ("security-groups", "revoke") => R::RevokeSecurityGroup(body(value)?),
            ("security-groups", "delete") => R::DeleteSecurityGroup(body(value)?),
            ("key-pairs", "create") => R::CreateKeyPair(body(value)?),
            ("key-pairs", "import") => R::ImportKeyPair(body(value)?),
            ("key-pairs", "delete") => R::DeleteKeyPair(body(value)?),
            ("volumes", "create") => R::CreateVolume(body(value)?),
            ("volumes", "attach") => R::AttachVolume(body(value)?),
            ("volumes", "detach") => R::DetachVolume(body(value)?),
            ("volumes", "delete") => R::DeleteVolume(body(value)?),
            ("snapshots", "create") => R::CreateSnapshot(body(value)?),
            ("snapshots", "delete") => R::DeleteSnapshot(body(value)?),
            ("snapshots", "copy") => R::CopySnapshot(body(value)?),
            ("images", "create") => R::CreateImage(body(value)?),
            ("images", "deregister") => R::DeregisterImage(body(value)?),
            _ => return Ok(None),
        }))
    }

    /// The console path of this operation, `{family}/{verb}`.
    pub fn path(&self) -> &'static str {
        use FleetRequest as R;
        match self {
            R::AllocateAddress(_) => "addresses/allocate",
            R::AssociateAddress(_) => "addresses/associate",
            R::MoveAddress(_) => "addresses/move",
            R::DisassociateAddress(_) => "addresses/disassociate",
            R::ReleaseAddress(_) => "addresses/release",
            R::CreateNetworkInterface(_) => "network-interfaces/create",
            R::AttachNetworkInterface(_) => "network-interfaces/attach",
            R::DetachNetworkInterface(_) => "network-interfaces/detach",
            R::MoveNetworkInterface(_) => "network-interfaces/move",
            R::DeleteNetworkInterface(_) => "network-interfaces/delete",
            R::CreateSecurityGroup(_) => "security-groups/create",
            R::AuthorizeSecurityGroup(_) => "security-groups/authorize",
            R::RevokeSecurityGroup(_) => "security-groups/revoke",
            R::DeleteSecurityGroup(_) => "security-groups/delete",
            R::CreateKeyPair(_) => "key-pairs/create",
            R::ImportKeyPair(_) => "key-pairs/import",
            R::DeleteKeyPair(_) => "key-pairs/delete",
            R::CreateVolume(_) => "volumes/create",
            R::AttachVolume(_) => "volumes/attach",
            R::DetachVolume(_) => "volumes/detach",
            R::DeleteVolume(_) => "volumes/delete",
            R::CreateSnapshot(_) => "snapshots/create",
            R::DeleteSnapshot(_) => "snapshots/delete",
            R::CopySnapshot(_) => "snapshots/copy",
            R::CreateImage(_) => "images/create",
            R::DeregisterImage(_) => "images/deregister",
        }
    }

    /// The EC2 action the request is known by (its first call), e.g. `ec2:AssociateAddress`
    /// for an address move.
    pub fn action(&self) -> String {
        use FleetRequest as R;
        let name = match self {
            R::AllocateAddress(_) => "AllocateAddress",
            R::AssociateAddress(_) | R::MoveAddress(_) => "AssociateAddress",
            R::DisassociateAddress(_) => "DisassociateAddress",
            R::ReleaseAddress(_) => "ReleaseAddress",
            R::CreateNetworkInterface(_) => "CreateNetworkInterface",
            R::AttachNetworkInterface(_) => "AttachNetworkInterface",
            R::DetachNetworkInterface(_) | R::MoveNetworkInterface(_) => "DetachNetworkInterface",
            R::DeleteNetworkInterface(_) => "DeleteNetworkInterface",
            R::CreateSecurityGroup(_) => "CreateSecurityGroup",
            R::AuthorizeSecurityGroup(r) => {
                return format!("ec2:AuthorizeSecurityGroup{}", r.direction.api_name())
            }
            R::RevokeSecurityGroup(r) => {
                return format!("ec2:RevokeSecurityGroup{}", r.direction.api_name())
            }
            R::DeleteSecurityGroup(_) => "DeleteSecurityGroup",
            R::CreateKeyPair(_) => "CreateKeyPair",
            R::ImportKeyPair(_) => "ImportKeyPair",
            R::DeleteKeyPair(_) => "DeleteKeyPair",
            R::CreateVolume(_) => "CreateVolume",
            R::AttachVolume(_) => "AttachVolume",
            R::DetachVolume(_) => "DetachVolume",
            R::DeleteVolume(_) => "DeleteVolume",
            R::CreateSnapshot(_) => "CreateSnapshot",
            R::DeleteSnapshot(_) => "DeleteSnapshot",
            R::CopySnapshot(_) => "CopySnapshot",
            R::CreateImage(_) => "CreateImage",
            R::DeregisterImage(_) => "DeregisterImage",
        };
        format!("ec2:{name}")
    }

    /// The JSON body of this request.
    pub fn to_json(&self) -> serde_json::Value {
        use FleetRequest as R;
        let v = match self {
            R::AllocateAddress(r) => serde_json::to_value(r),
            R::AssociateAddress(r) => serde_json::to_value(r),
            R::MoveAddress(r) => serde_json::to_value(r),
            R::DisassociateAddress(r) => serde_json::to_value(r),
            R::ReleaseAddress(r) => serde_json::to_value(r),
            R::CreateNetworkInterface(r) => serde_json::to_value(r),
            R::AttachNetworkInterface(r) => serde_json::to_value(r),
            R::DetachNetworkInterface(r) => serde_json::to_value(r),
            R::MoveNetworkInterface(r) => serde_json::to_value(r),
            R::DeleteNetworkInterface(r) => serde_json::to_value(r),
            R::CreateSecurityGroup(r) => serde_json::to_value(r),
            R::AuthorizeSecurityGroup(r) | R::RevokeSecurityGroup(r) => serde_json::to_value(r),
            R::DeleteSecurityGroup(r) => serde_json::to_value(r),
            R::CreateKeyPair(r) => serde_json::to_value(r),
            R::ImportKeyPair(r) => serde_json::to_value(r),
            R::DeleteKeyPair(r) => serde_json::to_value(r),
            R::CreateVolume(r) => serde_json::to_value(r),
            R::AttachVolume(r) => serde_json::to_value(r),
            R::DetachVolume(r) => serde_json::to_value(r),
            R::DeleteVolume(r) => serde_json::to_value(r),
            R::CreateSnapshot(r) => serde_json::to_value(r),
            R::DeleteSnapshot(r) => serde_json::to_value(r),
            R::CopySnapshot(r) => serde_json::to_value(r),
            R::CreateImage(r) => serde_json::to_value(r),
            R::DeregisterImage(r) => serde_json::to_value(r),
        };
        v.unwrap_or(serde_json::Value::Null)
    }

    /// The tags the request applies on creation (empty for requests that create nothing).
    pub fn tags(&self) -> &[Tag] {
        use FleetRequest as R;
        match self {
            R::AllocateAddress(r) => &r.tags,
            R::CreateNetworkInterface(r) => &r.tags,
            R::CreateSecurityGroup(r) => &r.tags,
            R::CreateKeyPair(r) => &r.tags,
            R::ImportKeyPair(r) => &r.tags,
            R::CreateVolume(r) => &r.tags,
            R::CreateSnapshot(r) => &r.tags,
            R::CopySnapshot(r) => &r.tags,
            R::CreateImage(r) => &r.tags,
            _ => &[],
        }
    }

    /// Checks every field as EC2 would, before any call, and puts rules in canonical form.
    /// Tags are checked by EC2's limits; callers add their own reserved-prefix rules.
    pub fn validate(&mut self) -> Checked {
        use validate as v;
        use FleetRequest as R;
        v::tags("tags", self.tags(), 0)?;
        match self {
            R::AllocateAddress(_) => {}
            R::AssociateAddress(r) => {
                v::ec2_id("allocation_id", &r.allocation_id, "eipalloc-")?;
                match (&r.instance_id, &r.network_interface_id) {
                    (Some(i), None) => {
                        v::ec2_id("instance_id", i, "i-")?;
                        if r.private_ip.is_some() {
                            return Err(FieldError::new(
                                "private_ip",
                                "private_ip goes with network_interface_id",
                            ));
                        }
                    }
                    (None, Some(n)) => {
                        v::ec2_id("network_interface_id", n, "eni-")?;
                        if let Some(ip) = &r.private_ip {
                            v::ipv4("private_ip", ip)?;
                        }
                    }
                    _ => {
                        return Err(FieldError::new(
                            "instance_id",
                            "give exactly one of instance_id and network_interface_id",
                        ))
                    }
                }
            }
            R::MoveAddress(r) => {
                v::ec2_id("allocation_id", &r.allocation_id, "eipalloc-")?;
                v::ec2_id("to_instance_id", &r.to_instance_id, "i-")?;
            }
            R::DisassociateAddress(DisassociateAddress { allocation_id })
            | R::ReleaseAddress(ReleaseAddress { allocation_id }) => {
                v::ec2_id("allocation_id", allocation_id, "eipalloc-")?;
            }
            R::CreateNetworkInterface(r) => {
                v::ec2_id("subnet_id", &r.subnet_id, "subnet-")?;
                if let Some(ip) = &r.private_ip {
                    v::ipv4("private_ip", ip)?;
                }
                for (i, g) in r.security_group_ids.iter().enumerate() {
                    v::ec2_id(&format!("security_group_ids[{i}]"), g, "sg-")?;
                }
                if let Some(d) = &r.description {
                    v::description("description", d)?;
                }
            }
            R::AttachNetworkInterface(r) => {
                v::ec2_id("network_interface_id", &r.network_interface_id, "eni-")?;
                v::ec2_id("instance_id", &r.instance_id, "i-")?;
                v::device_index("device_index", r.device_index)?;
            }
            R::DetachNetworkInterface(DetachNetworkInterface {
                network_interface_id,
                ..
            })
            | R::DeleteNetworkInterface(DeleteNetworkInterface {
                network_interface_id,
            }) => v::ec2_id("network_interface_id", network_interface_id, "eni-")?,
            R::MoveNetworkInterface(r) => {
                v::ec2_id("network_interface_id", &r.network_interface_id, "eni-")?;
                v::ec2_id("to_instance_id", &r.to_instance_id, "i-")?;
            }
            R::CreateSecurityGroup(r) => {
                v::group_name("group_name", &r.group_name)?;
                if r.description.trim().is_empty() {
                    return Err(FieldError::new("description", "EC2 requires a description"));
                }
                v::description("description", &r.description)?;
                if let Some(vpc) = &r.vpc_id {
                    v::ec2_id("vpc_id", vpc, "vpc-")?;
                }
            }
            R::AuthorizeSecurityGroup(r) | R::RevokeSecurityGroup(r) => {
                v::ec2_id("group_id", &r.group_id, "sg-")?;
                if r.rules.is_empty() {
                    return Err(FieldError::new("rules", "give at least one rule"));
                }
                let allow_world = r.allow_world;
                for (i, rule) in r.rules.iter_mut().enumerate() {
                    *rule = v::rule(&format!("rules[{i}]"), rule, allow_world)?;
                }
            }
            R::DeleteSecurityGroup(r) => v::ec2_id("group_id", &r.group_id, "sg-")?,
            R::CreateKeyPair(r) => {
                v::key_name("key_name", &r.key_name)?;
                if !matches!(r.key_type.as_str(), "rsa" | "ed25519") {
                    return Err(FieldError::new(
                        "key_type",
                        format!("{:?} is not a key type: use ed25519 or rsa", r.key_type),
                    ));
                }
            }
            R::ImportKeyPair(r) => {
                v::key_name("key_name", &r.key_name)?;
                v::public_key("public_key", &r.public_key)?;
            }
            R::DeleteKeyPair(r) => v::key_name("key_name", &r.key_name)?,
            R::CreateVolume(r) => {
                v::availability_zone("availability_zone", &r.availability_zone)?;
                if let Some(s) = &r.snapshot_id {
                    v::ec2_id("snapshot_id", s, "snap-")?;
                }
                v::volume(&r.volume_type, r.size_gib, r.iops, r.snapshot_id.is_some())?;
            }
            R::AttachVolume(r) => {
                v::ec2_id("volume_id", &r.volume_id, "vol-")?;
                v::ec2_id("instance_id", &r.instance_id, "i-")?;
                v::device("device", &r.device)?;
            }
            R::DetachVolume(DetachVolume { volume_id, .. })
            | R::DeleteVolume(DeleteVolume { volume_id }) => {
                v::ec2_id("volume_id", volume_id, "vol-")?
            }
            R::CreateSnapshot(r) => {
                v::ec2_id("volume_id", &r.volume_id, "vol-")?;
                if let Some(d) = &r.description {
                    v::description("description", d)?;
                }
            }
            R::DeleteSnapshot(r) => v::ec2_id("snapshot_id", &r.snapshot_id, "snap-")?,
            R::CopySnapshot(r) => {
                v::ec2_id("snapshot_id", &r.snapshot_id, "snap-")?;
                v::region("destination_region", &r.destination_region)?;
                if let Some(d) = &r.description {
                    v::description("description", d)?;
                }
            }
            R::CreateImage(r) => {
                v::ec2_id("instance_id", &r.instance_id, "i-")?;
                v::image_name("name", &r.name)?;
                if let Some(d) = &r.description {
                    v::description("description", d)?;
                }
            }
            R::DeregisterImage(r) => v::ec2_id("image_id", &r.image_id, "ami-")?,
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parse_names_the_bad_field() {
        let e =
            FleetRequest::parse("volumes", "create", json!({"availability_zone": 7})).unwrap_err();
        assert_eq!(e.field, "availability_zone");
        let e = FleetRequest::parse(
            "addresses",
            "move",
            json!({"allocation_id": "eipalloc-1", "to_instance_id": "i-1", "extra": 1}),
        )
        .unwrap_err();
        assert!(e.message.contains("extra"), "{e}");
        assert!(FleetRequest::parse("volumes", "explode", json!({}))
            .unwrap()
            .is_none());
    }

    #[test]
    fn every_path_parses_back() {
        let r = FleetRequest::parse(
            "snapshots",
            "copy",
            json!({"snapshot_id": "snap-1", "destination_region": "eu-west-1"}),
        )
        .unwrap()
        .unwrap();
        let (family, verb) = r.path().split_once('/').unwrap();
        assert!(FAMILIES.contains(&family));
        let again = FleetRequest::parse(family, verb, r.to_json())
            .unwrap()
            .unwrap();
        assert_eq!(again.path(), r.path());
    }

    #[test]
    fn validation_names_fields() {
        let mut r = FleetRequest::parse(
            "security-groups",
            "authorize",
            json!({"group_id": "sg-1", "direction": "ingress",
                   "rules": [{"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr": "10.0.0.0/8"},
                             {"protocol": "tcp", "from_port": 22, "to_port": 22, "cidr": "0.0.0.0/0"}]}),
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.validate().unwrap_err().field, "rules[1].cidr");
        let mut r = FleetRequest::parse(
            "volumes",
            "attach",
            json!({"volume_id": "vol-1", "instance_id": "i-1", "device": "/dev/nvme1"}),
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.validate().unwrap_err().field, "device");
        let mut r = FleetRequest::parse(
            "addresses",
            "associate",
            json!({"allocation_id": "eipalloc-1"}),
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.validate().unwrap_err().field, "instance_id");
    }
}
