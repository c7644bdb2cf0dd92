//! Elastic IPs: allocate, associate with an instance or an interface, move between instances,
//! disassociate, release. Everything an address operation is (its request, validation,
//! look-ups and EC2 calls) is here, so adding one touches this file only.

use crate::facts::{Facts, Lookup};
use crate::request::body;
use crate::run::{none, FleetError, Outcome, Recorder};
use crate::validate::{self as v, Checked, FieldError};
use airlock_cloud::{Address, AddressTarget, Ec2, Filter, Tag};
use serde::{Deserialize, Serialize};

/// `AllocateAddress`: a new Elastic IP, tagged on creation.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AllocateAddress {
    /// Tags applied on creation.
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// `AssociateAddress` to an instance or a network interface.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveAddress {
    /// The address (`eipalloc-…`).
    pub allocation_id: String,
    /// The instance that gets it.
    pub to_instance_id: String,
}

/// `DisassociateAddress` of an address's current association.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisassociateAddress {
    /// The address (`eipalloc-…`).
    pub allocation_id: String,
}

/// `ReleaseAddress`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseAddress {
    /// The address (`eipalloc-…`).
    pub allocation_id: String,
}

/// An Elastic IP operation.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(missing_docs)]
pub enum AddressRequest {
    Allocate(AllocateAddress),
    Associate(AssociateAddress),
    Move(MoveAddress),
    Disassociate(DisassociateAddress),
    Release(ReleaseAddress),
}

impl AddressRequest {
    /// The operation `verb` with its JSON body; `Ok(None)` when there is no such verb.
    pub fn parse(verb: &str, value: serde_json::Value) -> Checked<Option<Self>> {
        Ok(Some(match verb {
            "allocate" => Self::Allocate(body(value)?),
            "associate" => Self::Associate(body(value)?),
            "move" => Self::Move(body(value)?),
            "disassociate" => Self::Disassociate(body(value)?),
            "release" => Self::Release(body(value)?),
            _ => return Ok(None),
        }))
    }

    /// The verb in the operation's path.
    pub fn verb(&self) -> &'static str {
        match self {
            Self::Allocate(_) => "allocate",
            Self::Associate(_) => "associate",
            Self::Move(_) => "move",
            Self::Disassociate(_) => "disassociate",
            Self::Release(_) => "release",
        }
    }

    /// The EC2 action the operation is known by.
    pub fn action(&self) -> String {
        let name = match self {
            Self::Allocate(_) => "AllocateAddress",
            Self::Associate(_) | Self::Move(_) => "AssociateAddress",
            Self::Disassociate(_) => "DisassociateAddress",
            Self::Release(_) => "ReleaseAddress",
        };
        format!("ec2:{name}")
    }

    /// The tags applied on creation.
    pub fn tags(&self) -> &[Tag] {
        match self {
            Self::Allocate(r) => &r.tags,
            _ => &[],
        }
    }

    pub(crate) fn validate(&mut self) -> Checked {
        match self {
            Self::Allocate(_) => Ok(()),
            Self::Associate(r) => r.validate(),
            Self::Move(r) => {
                v::ec2_id("allocation_id", &r.allocation_id, "eipalloc-")?;
                v::ec2_id("to_instance_id", &r.to_instance_id, "i-")
            }
            Self::Disassociate(DisassociateAddress { allocation_id })
            | Self::Release(ReleaseAddress { allocation_id }) => {
                v::ec2_id("allocation_id", allocation_id, "eipalloc-")
            }
        }
    }

    pub(crate) async fn prepare(&self, ec2: &dyn Ec2, f: &mut Facts) -> Result<(), FleetError> {
        match self {
            Self::Allocate(_) => Ok(()),
            Self::Associate(r) => {
                match &r.instance_id {
                    Some(i) => {
                        f.load_with_instances(ec2, Lookup::Address(&r.allocation_id), &[i])
                            .await?
                    }
                    None => f.load_address(ec2, &r.allocation_id).await?,
                }
                if let Some(n) = &r.network_interface_id {
                    f.load_interface(ec2, n).await?;
                }
                Ok(())
            }
            Self::Move(r) => {
                f.load_with_instances(ec2, Lookup::Address(&r.allocation_id), &[&r.to_instance_id])
                    .await
            }
            Self::Disassociate(DisassociateAddress { allocation_id })
            | Self::Release(ReleaseAddress { allocation_id }) => {
                f.load_address(ec2, allocation_id).await
            }
        }
    }

    pub(crate) async fn run(
        &self,
        ec2: &dyn Ec2,
        facts: &Facts,
        rec: &mut Recorder<'_>,
    ) -> Result<Outcome, FleetError> {
        match self {
            Self::Allocate(r) => r.run(ec2, rec).await,
            Self::Associate(r) => r.run(ec2, rec).await,
            Self::Move(r) => r.run(ec2, facts, rec).await,
            Self::Disassociate(r) => r.run(ec2, facts, rec).await,
            Self::Release(r) => {
                let out = ec2.release_address(&r.allocation_id).await;
                let message = format!("released {}", r.allocation_id);
                rec.changed(
                    "ReleaseAddress",
                    &[("elastic-ip", &r.allocation_id)],
                    out,
                    message,
                )
            }
        }
    }
}

/// The account's Elastic IPs that match `filters`.
pub async fn list(ec2: &dyn Ec2, filters: &[Filter]) -> Result<Vec<Address>, FleetError> {
    Ok(ec2.describe_addresses(filters).await?)
}

impl AllocateAddress {
    async fn run(&self, ec2: &dyn Ec2, rec: &mut Recorder<'_>) -> Result<Outcome, FleetError> {
        let a = ec2.allocate_address(&self.tags).await;
        let a = rec.call("AllocateAddress", &[("elastic-ip", "*")], a, none)?;
        Ok(Outcome {
            message: format!(
                "allocated {} ({})",
                a.public_ip.as_deref().unwrap_or("?"),
                a.allocation_id.as_deref().unwrap_or("?")
            ),
            resource_id: a.allocation_id.clone(),
            address: Some(a),
            ..Outcome::default()
        })
    }
}

impl AssociateAddress {
    fn validate(&self) -> Checked {
        v::ec2_id("allocation_id", &self.allocation_id, "eipalloc-")?;
        match (&self.instance_id, &self.network_interface_id) {
            (Some(i), None) => {
                v::ec2_id("instance_id", i, "i-")?;
                if self.private_ip.is_some() {
                    return Err(FieldError::new(
                        "private_ip",
                        "private_ip goes with network_interface_id",
                    ));
                }
            }
            (None, Some(n)) => {
                v::ec2_id("network_interface_id", n, "eni-")?;
                if let Some(ip) = &self.private_ip {
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
        Ok(())
    }

    /// What the address is associated with: the target, its ARN kind and its id.
    fn target(&self) -> Result<(AddressTarget, &'static str, String), FleetError> {
        match (&self.instance_id, &self.network_interface_id) {
            (Some(i), _) => Ok((AddressTarget::Instance(i.clone()), "instance", i.clone())),
            (None, Some(n)) => Ok((
                AddressTarget::NetworkInterface {
                    network_interface_id: n.clone(),
                    private_ip: self.private_ip.clone(),
                },
                "network-interface",
                n.clone(),
            )),
            (None, None) => Err(FleetError::Conflict(
                "give an instance or a network interface".into(),
            )),
        }
    }

    async fn run(&self, ec2: &dyn Ec2, rec: &mut Recorder<'_>) -> Result<Outcome, FleetError> {
        let (target, kind, id) = self.target()?;
        let out = ec2
            .associate_address(&self.allocation_id, &target, self.allow_reassociation)
            .await;
        let association = rec.call(
            "AssociateAddress",
            &[("elastic-ip", &self.allocation_id), (kind, &id)],
            out,
            none,
        )?;
        Ok(Outcome {
            message: format!("associated {} with {id}", self.allocation_id),
            resource_id: Some(self.allocation_id.clone()),
            association_id: association,
            ..Outcome::default()
        })
    }
}

impl MoveAddress {
    async fn run(
        &self,
        ec2: &dyn Ec2,
        facts: &Facts,
        rec: &mut Recorder<'_>,
    ) -> Result<Outcome, FleetError> {
        let current = facts.address(&self.allocation_id);
        let from = current.and_then(|a| a.instance_id.clone());
        if from.as_deref() == Some(self.to_instance_id.as_str()) {
            return Ok(Outcome {
                message: format!(
                    "{} is already on {}",
                    self.allocation_id, self.to_instance_id
                ),
                resource_id: Some(self.allocation_id.clone()),
                association_id: current.and_then(|a| a.association_id.clone()),
                ..Outcome::default()
            });
        }
        // One call with AllowReassociation: EC2 moves the address atomically, so it is
        // never unassociated between the old instance and the new one.
        let out = ec2
            .associate_address(
                &self.allocation_id,
                &AddressTarget::Instance(self.to_instance_id.clone()),
                true,
            )
            .await;
        let association = rec.call(
            "AssociateAddress",
            &[
                ("elastic-ip", &self.allocation_id),
                ("instance", &self.to_instance_id),
            ],
            out,
            none,
        )?;
        // Without a look-up first (the caller's policies did not need one), where it was is
        // not known.
        let message = match current {
            Some(a) => format!(
                "moved {} ({}) from {} to {}",
                a.public_ip.as_deref().unwrap_or("the address"),
                self.allocation_id,
                from.as_deref().unwrap_or("nowhere"),
                self.to_instance_id
            ),
            None => format!("moved {} to {}", self.allocation_id, self.to_instance_id),
        };
        Ok(Outcome {
            message,
            resource_id: Some(self.allocation_id.clone()),
            association_id: association,
            ..Outcome::default()
        })
    }
}

impl DisassociateAddress {
    async fn run(
        &self,
        ec2: &dyn Ec2,
        facts: &Facts,
        rec: &mut Recorder<'_>,
    ) -> Result<Outcome, FleetError> {
        let Some(association) = facts
            .address(&self.allocation_id)
            .and_then(|a| a.association_id.clone())
        else {
            return Err(FleetError::Conflict(format!(
                "{} is not associated with anything",
                self.allocation_id
            )));
        };
        let out = ec2.disassociate_address(&association).await;
        let message = format!("disassociated {}", self.allocation_id);
        rec.changed(
            "DisassociateAddress",
            &[("elastic-ip", &self.allocation_id)],
            out,
            message,
        )
    }
}
