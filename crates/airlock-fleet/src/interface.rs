//! Network interfaces: create with a fixed private address, attach, detach, move to another
//! instance, delete. Everything an interface operation is (its request, validation, look-ups
//! and EC2 calls) is here, so adding one touches this file only.

use crate::facts::{Facts, Lookup};
use crate::request::body;
use crate::run::{none, same, FleetError, Outcome, Recorder};
use crate::validate::{self as v, Checked};
use airlock_cloud::{CreateNetworkInterfaceInput, Ec2, Filter, NetworkInterface, Tag};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How long a network interface may take to detach during a move.
pub const DETACH_TIMEOUT: Duration = Duration::from_secs(120);

/// `CreateNetworkInterface`: a secondary interface, optionally with a fixed private address.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveNetworkInterface {
    /// The interface (`eni-…`).
    pub network_interface_id: String,
    /// The instance that gets it.
    pub to_instance_id: String,
}

/// `DeleteNetworkInterface`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteNetworkInterface {
    /// The interface (`eni-…`).
    pub network_interface_id: String,
}

/// A network interface operation.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(missing_docs)]
pub enum InterfaceRequest {
    Create(CreateNetworkInterface),
    Attach(AttachNetworkInterface),
    Detach(DetachNetworkInterface),
    Move(MoveNetworkInterface),
    Delete(DeleteNetworkInterface),
}

impl InterfaceRequest {
    /// The operation `verb` with its JSON body; `Ok(None)` when there is no such verb.
    pub fn parse(verb: &str, value: serde_json::Value) -> Checked<Option<Self>> {
        Ok(Some(match verb {
            "create" => Self::Create(body(value)?),
            "attach" => Self::Attach(body(value)?),
            "detach" => Self::Detach(body(value)?),
            "move" => Self::Move(body(value)?),
            "delete" => Self::Delete(body(value)?),
            _ => return Ok(None),
        }))
    }

    /// The verb in the operation's path.
    pub fn verb(&self) -> &'static str {
        match self {
            Self::Create(_) => "create",
            Self::Attach(_) => "attach",
            Self::Detach(_) => "detach",
            Self::Move(_) => "move",
            Self::Delete(_) => "delete",
        }
    }

    /// The EC2 action the operation is known by (a move: its first call, the detach).
    pub fn action(&self) -> String {
        let name = match self {
            Self::Create(_) => "CreateNetworkInterface",
            Self::Attach(_) => "AttachNetworkInterface",
            Self::Detach(_) | Self::Move(_) => "DetachNetworkInterface",
            Self::Delete(_) => "DeleteNetworkInterface",
        };
        format!("ec2:{name}")
    }

    /// The tags applied on creation.
    pub fn tags(&self) -> &[Tag] {
        match self {
            Self::Create(r) => &r.tags,
            _ => &[],
        }
    }

    pub(crate) fn validate(&mut self) -> Checked {
        match self {
            Self::Create(r) => r.validate(),
            Self::Attach(r) => {
                v::ec2_id("network_interface_id", &r.network_interface_id, "eni-")?;
                v::ec2_id("instance_id", &r.instance_id, "i-")?;
                v::device_index("device_index", r.device_index)
            }
            Self::Detach(DetachNetworkInterface {
                network_interface_id,
                ..
            })
            | Self::Delete(DeleteNetworkInterface {
                network_interface_id,
            }) => v::ec2_id("network_interface_id", network_interface_id, "eni-"),
            Self::Move(r) => {
                v::ec2_id("network_interface_id", &r.network_interface_id, "eni-")?;
                v::ec2_id("to_instance_id", &r.to_instance_id, "i-")
            }
        }
    }

    pub(crate) async fn prepare(&self, ec2: &dyn Ec2, f: &mut Facts) -> Result<(), FleetError> {
        match self {
            Self::Create(r) => {
                f.load_other_tags(ec2, std::slice::from_ref(&r.subnet_id))
                    .await?;
                f.load_security_groups(ec2, &r.security_group_ids).await
            }
            Self::Attach(r) => {
                let interface = Lookup::Interface(&r.network_interface_id);
                f.load_with_instances(ec2, interface, &[&r.instance_id])
                    .await
            }
            Self::Detach(r) => {
                f.load_interface(ec2, &r.network_interface_id).await?;
                match f.attached_instance(&r.network_interface_id) {
                    Some(i) => {
                        let i = i.to_owned();
                        f.load_instances(ec2, &[&i]).await
                    }
                    None => Ok(()),
                }
            }
            Self::Move(r) => {
                f.load_interface(ec2, &r.network_interface_id).await?;
                let mut ids = vec![r.to_instance_id.as_str()];
                let from = f
                    .attached_instance(&r.network_interface_id)
                    .map(str::to_owned);
                if let Some(i) = &from {
                    ids.push(i);
                }
                f.load_instances(ec2, &ids).await
            }
            Self::Delete(r) => f.load_interface(ec2, &r.network_interface_id).await,
        }
    }

    pub(crate) async fn run(
        &self,
        ec2: &dyn Ec2,
        facts: &Facts,
        rec: &mut Recorder<'_>,
    ) -> Result<Outcome, FleetError> {
        match self {
            Self::Create(r) => r.run(ec2, rec).await,
            Self::Attach(r) => r.run(ec2, rec).await,
            Self::Detach(r) => r.run(ec2, facts, rec).await,
            Self::Move(r) => r.run(ec2, facts, rec).await,
            Self::Delete(r) => {
                let id = &r.network_interface_id;
                let out = ec2.delete_network_interface(id).await;
                let message = format!("deleted {id}");
                rec.changed(
                    "DeleteNetworkInterface",
                    &[("network-interface", id)],
                    out,
                    message,
                )
            }
        }
    }
}

/// The account's network interfaces that match `filters`.
pub async fn list(ec2: &dyn Ec2, filters: &[Filter]) -> Result<Vec<NetworkInterface>, FleetError> {
    Ok(ec2.describe_network_interfaces(filters, &[]).await?)
}

impl CreateNetworkInterface {
    fn validate(&self) -> Checked {
        v::ec2_id("subnet_id", &self.subnet_id, "subnet-")?;
        if let Some(ip) = &self.private_ip {
            v::ipv4("private_ip", ip)?;
        }
        for (i, g) in self.security_group_ids.iter().enumerate() {
            v::ec2_id(&format!("security_group_ids[{i}]"), g, "sg-")?;
        }
        v::optional_description("description", self.description.as_deref())
    }

    async fn run(&self, ec2: &dyn Ec2, rec: &mut Recorder<'_>) -> Result<Outcome, FleetError> {
        let out = ec2
            .create_network_interface(&CreateNetworkInterfaceInput {
                subnet_id: self.subnet_id.clone(),
                private_ip: self.private_ip.clone(),
                security_group_ids: self.security_group_ids.clone(),
                description: self.description.clone(),
                tags: self.tags.clone(),
            })
            .await;
        let n = rec.call(
            "CreateNetworkInterface",
            &[("network-interface", "*"), ("subnet", &self.subnet_id)],
            out,
            none,
        )?;
        Ok(Outcome {
            message: format!(
                "created {} with private address {}",
                n.network_interface_id,
                n.private_ip.as_deref().unwrap_or("?")
            ),
            resource_id: Some(n.network_interface_id.clone()),
            network_interface: Some(n),
            ..Outcome::default()
        })
    }
}

impl AttachNetworkInterface {
    async fn run(&self, ec2: &dyn Ec2, rec: &mut Recorder<'_>) -> Result<Outcome, FleetError> {
        let out = ec2
            .attach_network_interface(
                &self.network_interface_id,
                &self.instance_id,
                self.device_index,
            )
            .await;
        let attachment = rec.call(
            "AttachNetworkInterface",
            &[
                ("network-interface", &self.network_interface_id),
                ("instance", &self.instance_id),
            ],
            out,
            none,
        )?;
        Ok(Outcome {
            message: format!(
                "attached {} to {} at device index {}",
                self.network_interface_id, self.instance_id, self.device_index
            ),
            resource_id: Some(self.network_interface_id.clone()),
            attachment_id: attachment,
            ..Outcome::default()
        })
    }
}

impl DetachNetworkInterface {
    async fn run(
        &self,
        ec2: &dyn Ec2,
        facts: &Facts,
        rec: &mut Recorder<'_>,
    ) -> Result<Outcome, FleetError> {
        let id = &self.network_interface_id;
        let (attachment, instance, _) = attachment_of(facts, id)?;
        let out = ec2.detach_network_interface(&attachment, self.force).await;
        let message = format!("detached {id} from {instance}");
        rec.changed(
            "DetachNetworkInterface",
            &[("network-interface", id), ("instance", &instance)],
            out,
            message,
        )
    }
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

/// Where a moving interface is now: its attachment, instance and device index.
struct Attached {
    attachment: String,
    from: String,
    index: i32,
}

impl MoveNetworkInterface {
    /// Detach, wait until available, attach at the same device index. If the attach fails, the
    /// interface goes back where it was, so a failed move never leaves it detached.
    async fn run(
        &self,
        ec2: &dyn Ec2,
        facts: &Facts,
        rec: &mut Recorder<'_>,
    ) -> Result<Outcome, FleetError> {
        let id = &self.network_interface_id;
        let Some(at) = self.source(facts)? else {
            return Ok(Outcome {
                message: format!("{id} is already on {}", self.to_instance_id),
                resource_id: Some(id.clone()),
                network_interface: facts.interface(id).cloned(),
                ..Outcome::default()
            });
        };
        let out = ec2.detach_network_interface(&at.attachment, false).await;
        rec.call(
            "DetachNetworkInterface",
            &[("network-interface", id), ("instance", &at.from)],
            out,
            same,
        )?;
        wait_available(ec2, id).await?;
        let attachment_id = self.attach_or_restore(ec2, rec, &at).await?;
        self.moved(ec2, &at, attachment_id).await
    }

    /// The attachment to move from, `None` when it is already on the target instance, or why
    /// the move cannot be made (not attached, the primary interface, another VPC).
    fn source(&self, facts: &Facts) -> Result<Option<Attached>, FleetError> {
        let id = &self.network_interface_id;
        let (attachment, from, index) = attachment_of(facts, id).map_err(|_| {
            FleetError::Conflict(format!(
                "{id} is not attached to an instance, so there is no device index to keep; use attach"
            ))
        })?;
        if index == 0 {
            return Err(FleetError::Conflict(format!(
                "{id} is {from}'s primary interface (device index 0), which cannot be detached; move a secondary interface"
            )));
        }
        if from == self.to_instance_id {
            return Ok(None);
        }
        let vpcs = (
            facts.interface(id).and_then(|n| n.vpc_id.as_deref()),
            facts
                .instance(&self.to_instance_id)
                .and_then(|i| i.vpc_id.as_deref()),
        );
        if let (Some(a), Some(b)) = vpcs {
            if a != b {
                return Err(FleetError::Conflict(format!(
                    "{id} is in {a} but {} is in {b}; an interface attaches only within its VPC and availability zone",
                    self.to_instance_id
                )));
            }
        }
        Ok(Some(Attached {
            attachment,
            from,
            index,
        }))
    }

    /// Attaches the detached interface to the target, or, when that fails, back where it was.
    async fn attach_or_restore(
        &self,
        ec2: &dyn Ec2,
        rec: &mut Recorder<'_>,
        at: &Attached,
    ) -> Result<Option<String>, FleetError> {
        let id = &self.network_interface_id;
        let to = &self.to_instance_id;
        let out = ec2.attach_network_interface(id, to, at.index).await;
        let attached = rec.call(
            "AttachNetworkInterface",
            &[("network-interface", id), ("instance", to)],
            out,
            none,
        );
        let e = match attached {
            Ok(a) => return Ok(a),
            Err(e) => e,
        };
        let (from, index) = (&at.from, at.index);
        let back = ec2.attach_network_interface(id, from, index).await;
        let restored = rec
            .call(
                "AttachNetworkInterface",
                &[("network-interface", id), ("instance", from)],
                back,
                none,
            )
            .is_ok();
        Err(FleetError::Conflict(format!(
            "attaching {id} to {to} failed ({e}); {}",
            if restored {
                format!("it is back on {from} at device index {index}")
            } else {
                format!("putting it back on {from} failed too, so it is detached")
            }
        )))
    }

    /// The outcome of a move, with the interface as EC2 describes it now.
    async fn moved(
        &self,
        ec2: &dyn Ec2,
        at: &Attached,
        attachment_id: Option<String>,
    ) -> Result<Outcome, FleetError> {
        let id = &self.network_interface_id;
        let now = ec2
            .describe_network_interfaces(&[], std::slice::from_ref(id))
            .await?;
        let interface = now.into_iter().next();
        Ok(Outcome {
            message: format!(
                "moved {id} ({}) from {} to {} at device index {}",
                interface
                    .as_ref()
                    .and_then(|n| n.private_ip.as_deref())
                    .unwrap_or("?"),
                at.from,
                self.to_instance_id,
                at.index
            ),
            resource_id: Some(id.clone()),
            attachment_id,
            network_interface: interface,
            ..Outcome::default()
        })
    }
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
