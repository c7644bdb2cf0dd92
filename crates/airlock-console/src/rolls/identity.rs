//! What a roll finds of each node before it starts: the instance, its secondary interfaces,
//! its data volumes and its Elastic IP, with the tags its authorization needs.

use crate::deployments;
use crate::error::{ApiError, ApiResult};
use airlock_access::ops::RollNode;
use airlock_api::rolls::{IdentityInterface, IdentityVolume, NodeRoll, NodeStep};
use airlock_cloud::{Ec2, Filter, Instance, Tag};
use airlock_store::DeploymentRow;

/// What the roll knows of a node before it starts, for deciding who may roll it.
pub(super) struct NodeFacts {
    old: Instance,
    interfaces: Vec<(String, Vec<Tag>)>,
    volumes: Vec<(String, Vec<Tag>)>,
    allocation_id: Option<String>,
}

impl NodeFacts {
    pub(super) fn as_roll_node<'a>(&'a self, new_tags: &'a [Tag]) -> RollNode<'a> {
        RollNode {
            old: &self.old,
            interfaces: &self.interfaces,
            volumes: &self.volumes,
            allocation_id: self.allocation_id.as_deref(),
            new_tags,
        }
    }
}

/// Each running node of the deployment with its identity: secondary interfaces, volumes other
/// than the root, and the Elastic IP. A node not running refuses the roll: it would be taken
/// out of service with nothing to check its replacement against.
pub(super) async fn identities(
    ec2: &dyn Ec2,
    row: &DeploymentRow,
) -> ApiResult<Vec<(NodeRoll, NodeFacts)>> {
    let mut live = ec2
        .describe_instances(&deployments::live_filters(&row.id), &[])
        .await?;
    if live.is_empty() {
        return Err(ApiError::Conflict(format!(
            "deployment {} has no instance to roll",
            row.id
        )));
    }
    if let Some(other) = live.iter().find(|i| i.state != "running") {
        return Err(ApiError::Conflict(format!(
            "{} is {}: a roll starts from a deployment whose every node runs",
            other.instance_id, other.state
        )));
    }
    live.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
    let mut out = Vec::new();
    for old in live {
        out.push(node_identity(ec2, old).await?);
    }
    Ok(out)
}

/// One node's secondary interfaces (device index 1 and up), its volumes other than the root,
/// and the Elastic IP of its primary interface (one on a secondary interface moves with it).
async fn node_identity(ec2: &dyn Ec2, old: Instance) -> ApiResult<(NodeRoll, NodeFacts)> {
    let on_old = [Filter::new("attachment.instance-id", &old.instance_id)];
    let interfaces: Vec<_> = ec2
        .describe_network_interfaces(&on_old, &[])
        .await?
        .into_iter()
        .filter_map(|eni| {
            let index = eni.attachment.as_ref()?.device_index?;
            (index >= 1).then_some((eni, index))
        })
        .collect();
    let volumes: Vec<_> = ec2
        .describe_volumes(&on_old)
        .await?
        .into_iter()
        .filter_map(|v| {
            let device = v
                .attachments
                .iter()
                .find(|a| a.instance_id == old.instance_id)?
                .device
                .clone()?;
            (!is_root(&old, &device)).then_some((v, device))
        })
        .collect();
    let address = ec2
        .describe_addresses(&[Filter::new("instance-id", &old.instance_id)])
        .await?
        .into_iter()
        .find(|a| {
            // The primary interface's address; one on a secondary interface moves with it.
            !interfaces
                .iter()
                .any(|(eni, _)| a.network_interface_id.as_ref() == Some(&eni.network_interface_id))
        })
        .and_then(|a| a.allocation_id);
    let node = NodeRoll {
        old_instance_id: old.instance_id.clone(),
        new_instance_id: None,
        subnet_id: old.subnet_id.clone(),
        step: NodeStep::Waiting,
        interfaces: interfaces
            .iter()
            .map(|(eni, index)| IdentityInterface {
                network_interface_id: eni.network_interface_id.clone(),
                device_index: *index,
                private_ip: eni.private_ip.clone(),
            })
            .collect(),
        volumes: volumes
            .iter()
            .map(|(v, device)| IdentityVolume {
                volume_id: v.volume_id.clone(),
                device: device.clone(),
            })
            .collect(),
        allocation_id: address.clone(),
        error: None,
    };
    let facts = NodeFacts {
        interfaces: interfaces
            .into_iter()
            .map(|(eni, _)| (eni.network_interface_id, eni.tags))
            .collect(),
        volumes: volumes
            .into_iter()
            .map(|(v, _)| (v.volume_id, v.tags))
            .collect(),
        allocation_id: address,
        old,
    };
    Ok((node, facts))
}

/// Whether a volume at `device` is the instance's root volume, which stays with it: the device
/// its image names as root, or one of the two names EC2 gives root devices (EC2-compatible
/// servers do not always report the former as the device they attached).
fn is_root(instance: &Instance, device: &str) -> bool {
    instance.root_device_name.as_deref() == Some(device)
        || ["/dev/sda1", "/dev/xvda"].contains(&device)
}
