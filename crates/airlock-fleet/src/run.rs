//! Running a fleet operation against EC2: first [`prepare`] looks up the resources it touches
//! (their tags decide authorization, their state decides what to do), then [`execute`] makes
//! the calls and reports each one, so every EC2 call can be audited, even in a multi-step move
//! that fails half-way.
//!
//! Nothing here needs the console: the same functions run with an instance's own credentials.

use crate::request::FleetRequest;
use airlock_cloud::Scope;
use airlock_cloud::{
    Address, AddressTarget, CloudError, CreateImageInput, CreateNetworkInterfaceInput,
    CreateSecurityGroupInput, CreateVolumeInput, Ec2, Filter, Image, Instance, KeyPair,
    NetworkInterface, RequestId, SecurityGroup, Snapshot, Tag, Volume,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;

/// Why a fleet operation could not go on.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// EC2 refused a call (AWS's code and message).
    #[error(transparent)]
    Cloud(#[from] CloudError),
    /// A resource the request names does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The resource is not in a state the operation needs.
    #[error("{0}")]
    Conflict(String),
}

/// The resources a request touches, as EC2 describes them now.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Instances.
    pub instances: Vec<Instance>,
    /// Elastic IPs.
    pub addresses: Vec<Address>,
    /// Network interfaces.
    pub interfaces: Vec<NetworkInterface>,
    /// Security groups.
    pub security_groups: Vec<SecurityGroup>,
    /// Key pairs.
    pub key_pairs: Vec<KeyPair>,
    /// Volumes.
    pub volumes: Vec<Volume>,
    /// Snapshots.
    pub snapshots: Vec<Snapshot>,
    /// Images.
    pub images: Vec<Image>,
    /// Tags of other resources (subnets, VPCs), from `DescribeTags`.
    pub other_tags: HashMap<String, Vec<Tag>>,
}

impl Facts {
    /// The instance with this id.
    pub fn instance(&self, id: &str) -> Option<&Instance> {
        self.instances.iter().find(|i| i.instance_id == id)
    }
    /// The address with this allocation id.
    pub fn address(&self, id: &str) -> Option<&Address> {
        self.addresses
            .iter()
            .find(|a| a.allocation_id.as_deref() == Some(id))
    }
    /// The interface with this id.
    pub fn interface(&self, id: &str) -> Option<&NetworkInterface> {
        self.interfaces
            .iter()
            .find(|n| n.network_interface_id == id)
    }
    /// The security group with this id.
    pub fn security_group(&self, id: &str) -> Option<&SecurityGroup> {
        self.security_groups.iter().find(|g| g.group_id == id)
    }
    /// The key pair with this name.
    pub fn key_pair(&self, name: &str) -> Option<&KeyPair> {
        self.key_pairs.iter().find(|k| k.key_name == name)
    }
    /// The volume with this id.
    pub fn volume(&self, id: &str) -> Option<&Volume> {
        self.volumes.iter().find(|v| v.volume_id == id)
    }
    /// The snapshot with this id.
    pub fn snapshot(&self, id: &str) -> Option<&Snapshot> {
        self.snapshots.iter().find(|s| s.snapshot_id == id)
    }
    /// The image with this id.
    pub fn image(&self, id: &str) -> Option<&Image> {
        self.images.iter().find(|i| i.image_id == id)
    }
    /// The instance an interface is attached to.
    pub fn attached_instance(&self, interface_id: &str) -> Option<&str> {
        self.interface(interface_id)?
            .attachment
            .as_ref()?
            .instance_id
            .as_deref()
    }

    /// The current tags of a resource (by id, or by name for key pairs).
    pub fn tags_of(&self, id: &str) -> Vec<Tag> {
        let found = self
            .instance(id)
            .map(|x| &x.tags)
            .or_else(|| self.address(id).map(|x| &x.tags))
            .or_else(|| self.interface(id).map(|x| &x.tags))
            .or_else(|| self.security_group(id).map(|x| &x.tags))
            .or_else(|| self.key_pair(id).map(|x| &x.tags))
            .or_else(|| self.volume(id).map(|x| &x.tags))
            .or_else(|| self.snapshot(id).map(|x| &x.tags))
            .or_else(|| self.image(id).map(|x| &x.tags))
            .or_else(|| self.other_tags.get(id));
        found.cloned().unwrap_or_default()
    }
}

async fn instances(ec2: &dyn Ec2, ids: &[&str], facts: &mut Facts) -> Result<(), FleetError> {
    let ids: Vec<String> = ids.iter().map(|s| (*s).to_owned()).collect();
    facts.instances = ec2.describe_instances(&[], &ids).await?;
    for id in &ids {
        if facts.instance(id).is_none() {
            return Err(FleetError::NotFound(format!("no instance {id}")));
        }
    }
    Ok(())
}

async fn address(ec2: &dyn Ec2, id: &str, facts: &mut Facts) -> Result<(), FleetError> {
    facts.addresses = ec2
        .describe_addresses(&[Filter::new("allocation-id", id)])
        .await?;
    if facts.address(id).is_none() {
        return Err(FleetError::NotFound(format!("no Elastic IP {id}")));
    }
    Ok(())
}

async fn interface(ec2: &dyn Ec2, id: &str, facts: &mut Facts) -> Result<(), FleetError> {
    facts.interfaces = ec2
        .describe_network_interfaces(&[], &[id.to_owned()])
        .await?;
    if facts.interface(id).is_none() {
        return Err(FleetError::NotFound(format!("no network interface {id}")));
    }
    Ok(())
}

async fn volume(ec2: &dyn Ec2, id: &str, facts: &mut Facts) -> Result<(), FleetError> {
    facts.volumes = ec2
        .describe_volumes(&[Filter::new("volume-id", id)])
        .await?;
    if facts.volume(id).is_none() {
        return Err(FleetError::NotFound(format!("no volume {id}")));
    }
    Ok(())
}

async fn snapshot(ec2: &dyn Ec2, id: &str, facts: &mut Facts) -> Result<(), FleetError> {
    facts.snapshots = ec2.describe_snapshots(&[], &[id.to_owned()]).await?;
    if facts.snapshot(id).is_none() {
        return Err(FleetError::NotFound(format!("no snapshot {id}")));
    }
    Ok(())
}

async fn security_groups(
    ec2: &dyn Ec2,
    ids: &[String],
    facts: &mut Facts,
) -> Result<(), FleetError> {
    if ids.is_empty() {
        return Ok(());
    }
    facts.security_groups = ec2.describe_security_groups(&[], ids).await?;
    for id in ids {
        if facts.security_group(id).is_none() {
            return Err(FleetError::NotFound(format!("no security group {id}")));
        }
    }
    Ok(())
}

async fn other_tags(ec2: &dyn Ec2, ids: &[String], facts: &mut Facts) -> Result<(), FleetError> {
    for (id, tag) in ec2.describe_tags(ids).await? {
        facts.other_tags.entry(id).or_default().push(tag);
    }
    Ok(())
}

/// Looks up, in EC2, every existing resource the request names; a missing one is an error
/// before any change.
pub async fn prepare(ec2: &dyn Ec2, request: &FleetRequest) -> Result<Facts, FleetError> {
    use FleetRequest as R;
    let mut f = Facts::default();
    match request {
        R::AllocateAddress(_) => {}
        R::AssociateAddress(r) => {
            address(ec2, &r.allocation_id, &mut f).await?;
            if let Some(i) = &r.instance_id {
                instances(ec2, &[i], &mut f).await?;
            }
            if let Some(n) = &r.network_interface_id {
                interface(ec2, n, &mut f).await?;
            }
        }
        R::MoveAddress(r) => {
            address(ec2, &r.allocation_id, &mut f).await?;
            instances(ec2, &[&r.to_instance_id], &mut f).await?;
        }
        R::DisassociateAddress(r) => address(ec2, &r.allocation_id, &mut f).await?,
        R::ReleaseAddress(r) => address(ec2, &r.allocation_id, &mut f).await?,
        R::CreateNetworkInterface(r) => {
            other_tags(ec2, std::slice::from_ref(&r.subnet_id), &mut f).await?;
            security_groups(ec2, &r.security_group_ids, &mut f).await?;
        }
        R::AttachNetworkInterface(r) => {
            interface(ec2, &r.network_interface_id, &mut f).await?;
            instances(ec2, &[&r.instance_id], &mut f).await?;
        }
        R::DetachNetworkInterface(r) => {
            interface(ec2, &r.network_interface_id, &mut f).await?;
            if let Some(i) = f.attached_instance(&r.network_interface_id) {
                let i = i.to_owned();
                instances(ec2, &[&i], &mut f).await?;
            }
        }
        R::MoveNetworkInterface(r) => {
            interface(ec2, &r.network_interface_id, &mut f).await?;
            let mut ids = vec![r.to_instance_id.as_str()];
            let from = f
                .attached_instance(&r.network_interface_id)
                .map(str::to_owned);
            if let Some(i) = &from {
                ids.push(i);
            }
            instances(ec2, &ids, &mut f).await?;
        }
        R::DeleteNetworkInterface(r) => interface(ec2, &r.network_interface_id, &mut f).await?,
        R::CreateSecurityGroup(r) => {
            if let Some(vpc) = &r.vpc_id {
                other_tags(ec2, std::slice::from_ref(vpc), &mut f).await?;
            }
        }
        R::AuthorizeSecurityGroup(r) | R::RevokeSecurityGroup(r) => {
            security_groups(ec2, std::slice::from_ref(&r.group_id), &mut f).await?
        }
        R::DeleteSecurityGroup(r) => {
            security_groups(ec2, std::slice::from_ref(&r.group_id), &mut f).await?
        }
        R::CreateKeyPair(_) | R::ImportKeyPair(_) => {}
        R::DeleteKeyPair(r) => {
            f.key_pairs = ec2
                .describe_key_pairs(&[], std::slice::from_ref(&r.key_name))
                .await?;
            if f.key_pair(&r.key_name).is_none() {
                return Err(FleetError::NotFound(format!(
                    "no key pair {:?}",
                    r.key_name
                )));
            }
        }
        R::CreateVolume(r) => {
            if let Some(s) = &r.snapshot_id {
                snapshot(ec2, s, &mut f).await?;
            }
        }
        R::AttachVolume(r) => {
            volume(ec2, &r.volume_id, &mut f).await?;
            instances(ec2, &[&r.instance_id], &mut f).await?;
        }
        R::DetachVolume(r) => {
            volume(ec2, &r.volume_id, &mut f).await?;
            let attached: Vec<String> = f
                .volume(&r.volume_id)
                .map(|v| v.attached_to.clone())
                .unwrap_or_default();
            if !attached.is_empty() {
                let ids: Vec<&str> = attached.iter().map(String::as_str).collect();
                instances(ec2, &ids, &mut f).await?;
            }
        }
        R::DeleteVolume(r) => volume(ec2, &r.volume_id, &mut f).await?,
        R::CreateSnapshot(r) => volume(ec2, &r.volume_id, &mut f).await?,
        R::DeleteSnapshot(r) => snapshot(ec2, &r.snapshot_id, &mut f).await?,
        R::CopySnapshot(r) => snapshot(ec2, &r.snapshot_id, &mut f).await?,
        R::CreateImage(r) => instances(ec2, &[&r.instance_id], &mut f).await?,
        R::DeregisterImage(r) => {
            f.images = ec2
                .describe_images(&[], std::slice::from_ref(&r.image_id))
                .await?;
            if f.image(&r.image_id).is_none() {
                return Err(FleetError::NotFound(format!(
                    "no image {} owned by this account",
                    r.image_id
                )));
            }
        }
    }
    Ok(f)
}

/// `DescribeX` of a family (`addresses`, `volumes`, … as in [`crate::FAMILIES`]) by EC2
/// filters, each resource as JSON.
pub async fn describe(
    ec2: &dyn Ec2,
    family: &str,
    filters: &[Filter],
) -> Result<Vec<serde_json::Value>, FleetError> {
    fn json<T: Serialize>(found: Vec<T>) -> Vec<serde_json::Value> {
        found
            .into_iter()
            .filter_map(|x| serde_json::to_value(x).ok())
            .collect()
    }
    Ok(match family {
        "addresses" => json(ec2.describe_addresses(filters).await?),
        "network-interfaces" => json(ec2.describe_network_interfaces(filters, &[]).await?),
        "security-groups" => json(ec2.describe_security_groups(filters, &[]).await?),
        "key-pairs" => json(ec2.describe_key_pairs(filters, &[]).await?),
        "volumes" => json(ec2.describe_volumes(filters).await?),
        "snapshots" => json(ec2.describe_snapshots(filters, &[]).await?),
        "images" => json(ec2.describe_images(filters, &[]).await?),
        other => {
            return Err(FleetError::NotFound(format!(
                "no resource family {other:?}"
            )))
        }
    })
}

/// The `Describe…` action a family is listed with, as IAM names it.
pub fn describe_action(family: &str) -> Option<&'static str> {
    Some(match family {
        "addresses" => "ec2:DescribeAddresses",
        "network-interfaces" => "ec2:DescribeNetworkInterfaces",
        "security-groups" => "ec2:DescribeSecurityGroups",
        "key-pairs" => "ec2:DescribeKeyPairs",
        "volumes" => "ec2:DescribeVolumes",
        "snapshots" => "ec2:DescribeSnapshots",
        "images" => "ec2:DescribeImages",
        _ => return None,
    })
}

/// EC2 filters from a listing's options: `tag:KEY=VALUE` for each tag, the deployment's
/// `airlock:deployment` tag, and raw `NAME=VALUE[,VALUE…]` filters.
pub fn filters(
    deployment: Option<&str>,
    tags: &[String],
    raw: &[String],
) -> Result<Vec<Filter>, crate::FieldError> {
    use crate::FieldError;
    let mut out = Vec::new();
    if let Some(d) = deployment {
        out.push(Filter::new("tag:airlock:deployment", d));
    }
    for (i, t) in tags.iter().enumerate() {
        let (k, v) = t.split_once('=').ok_or_else(|| {
            FieldError::new(format!("tag[{i}]"), format!("{t:?} is not KEY=VALUE"))
        })?;
        if k.is_empty() {
            return Err(FieldError::new(format!("tag[{i}]"), "the tag key is empty"));
        }
        out.push(Filter::new(format!("tag:{k}"), v));
    }
    for (i, f) in raw.iter().enumerate() {
        let (name, values) = f.split_once('=').ok_or_else(|| {
            FieldError::new(
                format!("filter[{i}]"),
                format!("{f:?} is not NAME=VALUE (for example instance-state-name=running)"),
            )
        })?;
        if name.is_empty() {
            return Err(FieldError::new(
                format!("filter[{i}]"),
                "the filter name is empty",
            ));
        }
        out.push(Filter {
            name: name.to_owned(),
            values: values.split(',').map(str::to_owned).collect(),
        });
    }
    Ok(out)
}

/// A private key EC2 returned once: serialized for the caller, redacted everywhere else.
#[derive(Clone)]
pub struct PrivateKey(pub SecretString);

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKey([redacted])")
    }
}

impl Serialize for PrivateKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.expose_secret())
    }
}

impl<'de> Deserialize<'de> for PrivateKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| PrivateKey(s.into()))
    }
}

/// What a fleet operation did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Outcome {
    /// The operation, as its console path (`addresses/move`).
    pub operation: String,
    /// A one-line summary for people.
    pub message: String,
    /// The resource created or changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// The last AWS request id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_request_id: Option<String>,
    /// An address association id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub association_id: Option<String>,
    /// A network interface attachment id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment_id: Option<String>,
    /// The address, after the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    /// The network interface, after the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_interface: Option<NetworkInterface>,
    /// The new volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<Volume>,
    /// The new snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Snapshot>,
    /// The new key pair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_pair: Option<KeyPair>,
    /// The new key pair's private key: in this response only, never stored or logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<PrivateKey>,
}

/// One EC2 call an operation made, for the audit log.
#[derive(Debug)]
pub struct Call {
    /// e.g. `ec2:DetachNetworkInterface`.
    pub action: String,
    /// ARNs of the resources it acted on.
    pub resources: Vec<String>,
    /// AWS's request id, or its error.
    pub result: Result<RequestId, CloudError>,
}

/// Every call an operation made, and how it ended.
#[derive(Debug)]
pub struct Run {
    /// The calls, in order.
    pub calls: Vec<Call>,
    /// The outcome, or why it stopped.
    pub result: Result<Outcome, FleetError>,
}

/// How long a network interface may take to detach during a move.
pub const DETACH_TIMEOUT: Duration = Duration::from_secs(120);

struct Recorder<'a> {
    scope: &'a Scope,
    calls: Vec<Call>,
}

impl Recorder<'_> {
    /// Records one call and passes its result on.
    fn call<T>(
        &mut self,
        action: &str,
        resources: &[(&str, &str)],
        result: Result<T, CloudError>,
        request_id: impl FnOnce(&T) -> RequestId,
    ) -> Result<T, CloudError> {
        self.calls.push(Call {
            action: format!("ec2:{action}"),
            resources: resources
                .iter()
                .map(|(kind, id)| self.scope.arn(kind, id))
                .collect(),
            result: match &result {
                Ok(v) => Ok(request_id(v)),
                Err(e) => Err(e.clone()),
            },
        });
        result
    }
}

fn none<T>(_: &T) -> RequestId {
    None
}

fn same(id: &RequestId) -> RequestId {
    id.clone()
}

/// Runs the request: the EC2 calls it needs, in order, each recorded. `copy_to` is the client of
/// the destination region for `CopySnapshot` (EC2 copies from the destination's side).
pub async fn execute(
    ec2: &dyn Ec2,
    copy_to: Option<&dyn Ec2>,
    request: &FleetRequest,
    facts: &Facts,
    scope: &Scope,
) -> Run {
    let mut rec = Recorder {
        scope,
        calls: Vec::new(),
    };
    let result = steps(ec2, copy_to, request, facts, &mut rec).await;
    let result = result.map(|mut o| {
        o.operation = request.path().to_owned();
        o
    });
    Run {
        calls: rec.calls,
        result,
    }
}

async fn steps(
    ec2: &dyn Ec2,
    copy_to: Option<&dyn Ec2>,
    request: &FleetRequest,
    facts: &Facts,
    rec: &mut Recorder<'_>,
) -> Result<Outcome, FleetError> {
    use FleetRequest as R;
    let done = |message: String, resource_id: &str, aws_request_id: RequestId| Outcome {
        message,
        resource_id: Some(resource_id.to_owned()),
        aws_request_id,
        ..Outcome::default()
    };
    Ok(match request {
        R::AllocateAddress(r) => {
            let a = ec2.allocate_address(&r.tags).await;
            let a = rec.call("AllocateAddress", &[("elastic-ip", "*")], a, none)?;
            Outcome {
                message: format!(
                    "allocated {} ({})",
                    a.public_ip.as_deref().unwrap_or("?"),
                    a.allocation_id.as_deref().unwrap_or("?")
                ),
                resource_id: a.allocation_id.clone(),
                address: Some(a),
                ..Outcome::default()
            }
        }
        R::AssociateAddress(r) => {
            let (target, kind, id) = match (&r.instance_id, &r.network_interface_id) {
                (Some(i), _) => (AddressTarget::Instance(i.clone()), "instance", i.clone()),
                (None, Some(n)) => (
                    AddressTarget::NetworkInterface {
                        network_interface_id: n.clone(),
                        private_ip: r.private_ip.clone(),
                    },
                    "network-interface",
                    n.clone(),
                ),
                (None, None) => {
                    return Err(FleetError::Conflict(
                        "give an instance or a network interface".into(),
                    ))
                }
            };
            let out = ec2
                .associate_address(&r.allocation_id, &target, r.allow_reassociation)
                .await;
            let association = rec.call(
                "AssociateAddress",
                &[("elastic-ip", &r.allocation_id), (kind, &id)],
                out,
                none,
            )?;
            Outcome {
                message: format!("associated {} with {id}", r.allocation_id),
                resource_id: Some(r.allocation_id.clone()),
                association_id: association,
                ..Outcome::default()
            }
        }
        R::MoveAddress(r) => {
            let current = facts.address(&r.allocation_id);
            let from = current.and_then(|a| a.instance_id.clone());
            if from.as_deref() == Some(r.to_instance_id.as_str()) {
                return Ok(Outcome {
                    message: format!("{} is already on {}", r.allocation_id, r.to_instance_id),
                    resource_id: Some(r.allocation_id.clone()),
                    association_id: current.and_then(|a| a.association_id.clone()),
                    ..Outcome::default()
                });
            }
            // One call with AllowReassociation: EC2 moves the address atomically, so it is
            // never unassociated between the old instance and the new one.
            let out = ec2
                .associate_address(
                    &r.allocation_id,
                    &AddressTarget::Instance(r.to_instance_id.clone()),
                    true,
                )
                .await;
            let association = rec.call(
                "AssociateAddress",
                &[
                    ("elastic-ip", &r.allocation_id),
                    ("instance", &r.to_instance_id),
                ],
                out,
                none,
            )?;
            Outcome {
                message: format!(
                    "moved {} ({}) from {} to {}",
                    current
                        .and_then(|a| a.public_ip.as_deref())
                        .unwrap_or("the address"),
                    r.allocation_id,
                    from.as_deref().unwrap_or("nowhere"),
                    r.to_instance_id
                ),
                resource_id: Some(r.allocation_id.clone()),
                association_id: association,
                ..Outcome::default()
            }
        }
        R::DisassociateAddress(r) => {
            let Some(association) = facts
                .address(&r.allocation_id)
                .and_then(|a| a.association_id.clone())
            else {
                return Err(FleetError::Conflict(format!(
                    "{} is not associated with anything",
                    r.allocation_id
                )));
            };
            let out = ec2.disassociate_address(&association).await;
            let id = rec.call(
                "DisassociateAddress",
                &[("elastic-ip", &r.allocation_id)],
                out,
                same,
            )?;
            done(
                format!("disassociated {}", r.allocation_id),
                &r.allocation_id,
                id,
            )
        }
        R::ReleaseAddress(r) => {
            let out = ec2.release_address(&r.allocation_id).await;
            let id = rec.call(
                "ReleaseAddress",
                &[("elastic-ip", &r.allocation_id)],
                out,
                same,
            )?;
            done(
                format!("released {}", r.allocation_id),
                &r.allocation_id,
                id,
            )
        }
        R::CreateNetworkInterface(r) => {
            let out = ec2
                .create_network_interface(&CreateNetworkInterfaceInput {
                    subnet_id: r.subnet_id.clone(),
                    private_ip: r.private_ip.clone(),
                    security_group_ids: r.security_group_ids.clone(),
                    description: r.description.clone(),
                    tags: r.tags.clone(),
                })
                .await;
            let n = rec.call(
                "CreateNetworkInterface",
                &[("network-interface", "*"), ("subnet", &r.subnet_id)],
                out,
                none,
            )?;
            Outcome {
                message: format!(
                    "created {} with private address {}",
                    n.network_interface_id,
                    n.private_ip.as_deref().unwrap_or("?")
                ),
                resource_id: Some(n.network_interface_id.clone()),
                network_interface: Some(n),
                ..Outcome::default()
            }
        }
        R::AttachNetworkInterface(r) => {
            let out = ec2
                .attach_network_interface(&r.network_interface_id, &r.instance_id, r.device_index)
                .await;
            let attachment = rec.call(
                "AttachNetworkInterface",
                &[
                    ("network-interface", &r.network_interface_id),
                    ("instance", &r.instance_id),
                ],
                out,
                none,
            )?;
            Outcome {
                message: format!(
                    "attached {} to {} at device index {}",
                    r.network_interface_id, r.instance_id, r.device_index
                ),
                resource_id: Some(r.network_interface_id.clone()),
                attachment_id: attachment,
                ..Outcome::default()
            }
        }
        R::DetachNetworkInterface(r) => {
            let (attachment, instance, _) = attachment_of(facts, &r.network_interface_id)?;
            let out = ec2.detach_network_interface(&attachment, r.force).await;
            let id = rec.call(
                "DetachNetworkInterface",
                &[
                    ("network-interface", &r.network_interface_id),
                    ("instance", &instance),
                ],
                out,
                same,
            )?;
            done(
                format!("detached {} from {instance}", r.network_interface_id),
                &r.network_interface_id,
                id,
            )
        }
        R::MoveNetworkInterface(r) => move_interface(ec2, r, facts, rec).await?,
        R::DeleteNetworkInterface(r) => {
            let out = ec2.delete_network_interface(&r.network_interface_id).await;
            let id = rec.call(
                "DeleteNetworkInterface",
                &[("network-interface", &r.network_interface_id)],
                out,
                same,
            )?;
            done(
                format!("deleted {}", r.network_interface_id),
                &r.network_interface_id,
                id,
            )
        }
        R::CreateSecurityGroup(r) => {
            let out = ec2
                .create_security_group(&CreateSecurityGroupInput {
                    group_name: r.group_name.clone(),
                    description: r.description.clone(),
                    vpc_id: r.vpc_id.clone(),
                    tags: r.tags.clone(),
                })
                .await;
            let id = rec.call("CreateSecurityGroup", &[("security-group", "*")], out, none)?;
            done(format!("created {id} ({})", r.group_name), &id, None)
        }
        R::AuthorizeSecurityGroup(r) | R::RevokeSecurityGroup(r) => {
            let authorize = matches!(request, R::AuthorizeSecurityGroup(_));
            let out = if authorize {
                ec2.authorize_security_group(r.direction, &r.group_id, &r.rules)
                    .await
            } else {
                ec2.revoke_security_group(r.direction, &r.group_id, &r.rules)
                    .await
            };
            let verb = if authorize { "Authorize" } else { "Revoke" };
            let id = rec.call(
                &format!("{verb}SecurityGroup{}", r.direction.api_name()),
                &[("security-group", &r.group_id)],
                out,
                same,
            )?;
            done(
                format!(
                    "{} {} {} rule(s) of {}",
                    if authorize { "added" } else { "removed" },
                    r.rules.len(),
                    r.direction.api_name().to_lowercase(),
                    r.group_id
                ),
                &r.group_id,
                id,
            )
        }
        R::DeleteSecurityGroup(r) => {
            let out = ec2.delete_security_group(&r.group_id).await;
            let id = rec.call(
                "DeleteSecurityGroup",
                &[("security-group", &r.group_id)],
                out,
                same,
            )?;
            done(format!("deleted {}", r.group_id), &r.group_id, id)
        }
        R::CreateKeyPair(r) => {
            let out = ec2.create_key_pair(&r.key_name, &r.key_type, &r.tags).await;
            let k = rec.call("CreateKeyPair", &[("key-pair", &r.key_name)], out, none)?;
            Outcome {
                message: format!(
                    "created key pair {:?}; its private key is in this answer only",
                    r.key_name
                ),
                resource_id: k.key_pair.key_pair_id.clone(),
                key_pair: Some(k.key_pair),
                private_key: Some(PrivateKey(k.private_key)),
                ..Outcome::default()
            }
        }
        R::ImportKeyPair(r) => {
            let out = ec2
                .import_key_pair(&r.key_name, &r.public_key, &r.tags)
                .await;
            let k = rec.call("ImportKeyPair", &[("key-pair", &r.key_name)], out, none)?;
            Outcome {
                message: format!("imported key pair {:?}", r.key_name),
                resource_id: k.key_pair_id.clone(),
                key_pair: Some(k),
                ..Outcome::default()
            }
        }
        R::DeleteKeyPair(r) => {
            let out = ec2.delete_key_pair(&r.key_name).await;
            let id = rec.call("DeleteKeyPair", &[("key-pair", &r.key_name)], out, same)?;
            done(
                format!("deleted key pair {:?}", r.key_name),
                &r.key_name,
                id,
            )
        }
        R::CreateVolume(r) => {
            let out = ec2
                .create_volume(&CreateVolumeInput {
                    availability_zone: r.availability_zone.clone(),
                    size_gib: r.size_gib,
                    volume_type: r.volume_type.clone(),
                    iops: r.iops,
                    encrypted: r.encrypted,
                    snapshot_id: r.snapshot_id.clone(),
                    tags: r.tags.clone(),
                })
                .await;
            let v = rec.call("CreateVolume", &[("volume", "*")], out, none)?;
            Outcome {
                message: format!(
                    "created {} ({} GiB {}) in {}",
                    v.volume_id,
                    v.size_gib.map(|s| s.to_string()).unwrap_or("?".into()),
                    r.volume_type,
                    r.availability_zone
                ),
                resource_id: Some(v.volume_id.clone()),
                volume: Some(v),
                ..Outcome::default()
            }
        }
        R::AttachVolume(r) => {
            let out = ec2
                .attach_volume(&r.volume_id, &r.instance_id, &r.device)
                .await;
            let id = rec.call(
                "AttachVolume",
                &[("volume", &r.volume_id), ("instance", &r.instance_id)],
                out,
                same,
            )?;
            done(
                format!(
                    "attached {} to {} at {}",
                    r.volume_id, r.instance_id, r.device
                ),
                &r.volume_id,
                id,
            )
        }
        R::DetachVolume(r) => {
            let attached = facts
                .volume(&r.volume_id)
                .map(|v| v.attached_to.clone())
                .unwrap_or_default();
            let [instance] = attached.as_slice() else {
                return Err(FleetError::Conflict(format!(
                    "{} is not attached to an instance",
                    r.volume_id
                )));
            };
            let out = ec2
                .detach_volume(&r.volume_id, Some(instance), r.force)
                .await;
            let id = rec.call(
                "DetachVolume",
                &[("volume", &r.volume_id), ("instance", instance)],
                out,
                same,
            )?;
            done(
                format!("detached {} from {instance}", r.volume_id),
                &r.volume_id,
                id,
            )
        }
        R::DeleteVolume(r) => {
            let out = ec2.delete_volume(&r.volume_id).await;
            let id = rec.call("DeleteVolume", &[("volume", &r.volume_id)], out, same)?;
            done(format!("deleted {}", r.volume_id), &r.volume_id, id)
        }
        R::CreateSnapshot(r) => {
            let out = ec2
                .create_snapshot(&r.volume_id, r.description.as_deref(), &r.tags)
                .await;
            let s = rec.call(
                "CreateSnapshot",
                &[("volume", &r.volume_id), ("snapshot", "*")],
                out,
                none,
            )?;
            Outcome {
                message: format!("started {} of {}", s.snapshot_id, r.volume_id),
                resource_id: Some(s.snapshot_id.clone()),
                snapshot: Some(s),
                ..Outcome::default()
            }
        }
        R::DeleteSnapshot(r) => {
            let out = ec2.delete_snapshot(&r.snapshot_id).await;
            let id = rec.call("DeleteSnapshot", &[("snapshot", &r.snapshot_id)], out, same)?;
            done(format!("deleted {}", r.snapshot_id), &r.snapshot_id, id)
        }
        R::CopySnapshot(r) => {
            let dest = copy_to.unwrap_or(ec2);
            let out = dest
                .copy_snapshot(
                    &rec.scope.region,
                    &r.snapshot_id,
                    r.description.as_deref(),
                    &r.tags,
                )
                .await;
            let id = rec.call("CopySnapshot", &[("snapshot", &r.snapshot_id)], out, none)?;
            done(
                format!(
                    "copying {} to {} as {id}",
                    r.snapshot_id, r.destination_region
                ),
                &id,
                None,
            )
        }
        R::CreateImage(r) => {
            let out = ec2
                .create_image(&CreateImageInput {
                    instance_id: r.instance_id.clone(),
                    name: r.name.clone(),
                    description: r.description.clone(),
                    no_reboot: r.no_reboot,
                    tags: r.tags.clone(),
                })
                .await;
            let id = rec.call(
                "CreateImage",
                &[("instance", &r.instance_id), ("image", "*")],
                out,
                none,
            )?;
            done(
                format!("creating {id} ({}) from {}", r.name, r.instance_id),
                &id,
                None,
            )
        }
        R::DeregisterImage(r) => {
            let out = ec2.deregister_image(&r.image_id).await;
            let id = rec.call("DeregisterImage", &[("image", &r.image_id)], out, same)?;
            done(format!("deregistered {}", r.image_id), &r.image_id, id)
        }
    })
}

/// An interface's attachment id, instance and device index, or why it has none.
fn attachment_of(facts: &Facts, id: &str) -> Result<(String, String, i32), FleetError> {
    let attachment = facts.interface(id).and_then(|n| n.attachment.as_ref());
    match attachment {
        Some(a) => match (&a.attachment_id, &a.instance_id, a.device_index) {
            (Some(att), Some(i), Some(index)) if a.status.as_deref() != Some("detached") => {
                Ok((att.clone(), i.clone(), index))
            }
            _ => Err(FleetError::Conflict(format!("{id} is not attached"))),
        },
        None => Err(FleetError::Conflict(format!("{id} is not attached"))),
    }
}

/// Detach, wait until available, attach at the same device index. If the attach fails, the
/// interface goes back where it was, so a failed move never leaves it detached.
async fn move_interface(
    ec2: &dyn Ec2,
    r: &crate::request::MoveNetworkInterface,
    facts: &Facts,
    rec: &mut Recorder<'_>,
) -> Result<Outcome, FleetError> {
    let id = &r.network_interface_id;
    let (attachment, from, index) = attachment_of(facts, id).map_err(|_| {
        FleetError::Conflict(format!(
            "{id} is not attached to an instance, so there is no device index to keep; use attach"
        ))
    })?;
    let interface = facts.interface(id);
    if index == 0 {
        return Err(FleetError::Conflict(format!(
            "{id} is {from}'s primary interface (device index 0), which cannot be detached; move a secondary interface"
        )));
    }
    if from == r.to_instance_id {
        return Ok(Outcome {
            message: format!("{id} is already on {from}"),
            resource_id: Some(id.clone()),
            network_interface: interface.cloned(),
            ..Outcome::default()
        });
    }
    if let (Some(a), Some(b)) = (
        interface.and_then(|n| n.vpc_id.as_deref()),
        facts
            .instance(&r.to_instance_id)
            .and_then(|i| i.vpc_id.as_deref()),
    ) {
        if a != b {
            return Err(FleetError::Conflict(format!(
                "{id} is in {a} but {} is in {b}; an interface attaches only within its VPC and availability zone",
                r.to_instance_id
            )));
        }
    }
    let out = ec2.detach_network_interface(&attachment, false).await;
    rec.call(
        "DetachNetworkInterface",
        &[("network-interface", id), ("instance", &from)],
        out,
        same,
    )?;
    wait_available(ec2, id).await?;
    let out = ec2
        .attach_network_interface(id, &r.to_instance_id, index)
        .await;
    let attached = rec.call(
        "AttachNetworkInterface",
        &[("network-interface", id), ("instance", &r.to_instance_id)],
        out,
        none,
    );
    let attachment_id = match attached {
        Ok(a) => a,
        Err(e) => {
            let back = ec2.attach_network_interface(id, &from, index).await;
            let restored = rec
                .call(
                    "AttachNetworkInterface",
                    &[("network-interface", id), ("instance", &from)],
                    back,
                    none,
                )
                .is_ok();
            return Err(FleetError::Conflict(format!(
                "attaching {id} to {} failed ({e}); {}",
                r.to_instance_id,
                if restored {
                    format!("it is back on {from} at device index {index}")
                } else {
                    format!("putting it back on {from} failed too, so it is detached")
                }
            )));
        }
    };
    let now = ec2
        .describe_network_interfaces(&[], std::slice::from_ref(id))
        .await?;
    let interface = now.into_iter().next();
    Ok(Outcome {
        message: format!(
            "moved {id} ({}) from {from} to {} at device index {index}",
            interface
                .as_ref()
                .and_then(|n| n.private_ip.as_deref())
                .unwrap_or("?"),
            r.to_instance_id
        ),
        resource_id: Some(id.clone()),
        attachment_id,
        network_interface: interface,
        ..Outcome::default()
    })
}

async fn wait_available(ec2: &dyn Ec2, id: &str) -> Result<(), FleetError> {
    let deadline = tokio::time::Instant::now() + DETACH_TIMEOUT;
    let mut delay = Duration::from_millis(200);
    loop {
        let found = ec2
            .describe_network_interfaces(&[], &[id.to_owned()])
            .await?;
        let status = found.first().and_then(|n| n.status.clone());
        if status.as_deref() == Some("available") {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(FleetError::Conflict(format!(
                "{id} did not become available within {} s of detaching (status {}); it is detached, attach it with `airlock eni attach`",
                DETACH_TIMEOUT.as_secs(),
                status.as_deref().unwrap_or("unknown")
            )));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}
