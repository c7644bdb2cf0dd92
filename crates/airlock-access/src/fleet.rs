//! What AWS authorizes for each fleet operation: the action on every resource the call touches,
//! with the condition keys AWS puts in the request context (the resource's current tags, the
//! requested tags, `ec2:CreateAction` for tags on creation, sizes, types, owners).
//!
//! The console evaluates these with the caller's policies before anything reaches EC2; the
//! list is pure, so tests run it through the policy evaluator.

use crate::check::{Check, ScopeChecks};
use airlock_cloud::{Scope, Volume};
use airlock_fleet::{Facts, FleetRequest};

fn volume_check(s: &Scope, action: &str, v: &Volume) -> Check {
    s.existing(action, "volume", &v.volume_id, &v.tags)
        .with_some("ec2:VolumeSize", v.size_gib.map(|s| s.to_string()))
        .with_some("ec2:VolumeType", v.volume_type.as_deref())
        .with_some("ec2:VolumeIops", v.iops.map(|s| s.to_string()))
        .with_some("ec2:Encrypted", v.encrypted.map(|e| e.to_string()))
        .with_some("ec2:AvailabilityZone", v.availability_zone.as_deref())
        .with_some(
            "ec2:ParentSnapshot",
            v.snapshot_id.as_deref().map(|x| s.arn("snapshot", x)),
        )
}

/// The checks AWS makes for `request`, given what [`airlock_fleet::prepare`] found in EC2.
pub fn checks(request: &FleetRequest, facts: &Facts, scope: &Scope) -> Vec<Check> {
    use FleetRequest as R;
    let s = scope;
    let tags_of = |id: &str| facts.tags_of(id);
    let instance = |action: &str, id: &str| {
        let mut c = s.existing(action, "instance", id, &tags_of(id));
        if let Some(t) = facts.instance(id).and_then(|i| i.instance_type.as_deref()) {
            c = c.with("ec2:InstanceType", t);
        }
        c
    };
    let address = |action: &str, id: &str| {
        let a = facts.address(id);
        s.existing(action, "elastic-ip", id, &tags_of(id))
            .with("ec2:AllocationId", id)
            .with("ec2:Domain", "vpc")
            .with_some(
                "ec2:PublicIpAddress",
                a.and_then(|a| a.public_ip.as_deref()),
            )
    };
    let interface = |action: &str, id: &str| {
        let n = facts.interface(id);
        s.existing(action, "network-interface", id, &tags_of(id))
            .with_some(
                "ec2:Subnet",
                n.and_then(|n| n.subnet_id.as_deref())
                    .map(|x| s.arn("subnet", x)),
            )
            .with_some(
                "ec2:Vpc",
                n.and_then(|n| n.vpc_id.as_deref()).map(|x| s.arn("vpc", x)),
            )
            .with_some(
                "ec2:AvailabilityZone",
                n.and_then(|n| n.availability_zone.as_deref()),
            )
    };
    let group = |action: &str, id: &str| {
        let g = facts.security_group(id);
        s.existing(action, "security-group", id, &tags_of(id))
            .with("ec2:SecurityGroupID", id)
            .with_some(
                "ec2:Vpc",
                g.and_then(|g| g.vpc_id.as_deref()).map(|x| s.arn("vpc", x)),
            )
    };
    let volume = |action: &str, id: &str| match facts.volume(id) {
        Some(v) => volume_check(s, action, v),
        None => s.existing(action, "volume", id, &tags_of(id)),
    };
    let snapshot = |action: &str, id: &str| {
        let snap = facts.snapshot(id);
        s.existing(action, "snapshot", id, &tags_of(id))
            .with_some("ec2:Owner", snap.and_then(|x| x.owner_id.as_deref()))
            .with_some(
                "ec2:VolumeSize",
                snap.and_then(|x| x.volume_size_gib).map(|v| v.to_string()),
            )
            .with_some(
                "ec2:Encrypted",
                snap.and_then(|x| x.encrypted).map(|v| v.to_string()),
            )
            .with_some(
                "ec2:ParentVolume",
                snap.and_then(|x| x.volume_id.as_deref())
                    .map(|v| s.arn("volume", v)),
            )
    };
    let key_pair = |action: &str, name: &str| {
        let k = facts.key_pair(name);
        s.existing(action, "key-pair", name, &tags_of(name))
            .with("ec2:KeyPairName", name)
            .with_some("ec2:KeyPairType", k.and_then(|k| k.key_type.as_deref()))
    };
    let mut out: Vec<Check> = Vec::new();
    match request {
        R::AllocateAddress(r) => {
            out.push(s.created("ec2:AllocateAddress", "elastic-ip", "*", &r.tags));
            out.extend(s.tagging("AllocateAddress", "elastic-ip", "*", &r.tags));
        }
        R::AssociateAddress(r) => {
            out.push(address("ec2:AssociateAddress", &r.allocation_id));
            if let Some(i) = &r.instance_id {
                out.push(instance("ec2:AssociateAddress", i));
            }
            if let Some(n) = &r.network_interface_id {
                out.push(interface("ec2:AssociateAddress", n));
            }
        }
        R::MoveAddress(r) => {
            out.push(address("ec2:AssociateAddress", &r.allocation_id));
            out.push(instance("ec2:AssociateAddress", &r.to_instance_id));
        }
        R::DisassociateAddress(r) => out.push(address("ec2:DisassociateAddress", &r.allocation_id)),
        R::ReleaseAddress(r) => out.push(address("ec2:ReleaseAddress", &r.allocation_id)),
        R::CreateNetworkInterface(r) => {
            out.push(
                s.created(
                    "ec2:CreateNetworkInterface",
                    "network-interface",
                    "*",
                    &r.tags,
                )
                .with("ec2:Subnet", s.arn("subnet", &r.subnet_id)),
            );
            out.push(s.existing(
                "ec2:CreateNetworkInterface",
                "subnet",
                &r.subnet_id,
                &tags_of(&r.subnet_id),
            ));
            for g in &r.security_group_ids {
                out.push(group("ec2:CreateNetworkInterface", g));
            }
            out.extend(s.tagging("CreateNetworkInterface", "network-interface", "*", &r.tags));
        }
        R::AttachNetworkInterface(r) => {
            out.push(interface(
                "ec2:AttachNetworkInterface",
                &r.network_interface_id,
            ));
            out.push(instance("ec2:AttachNetworkInterface", &r.instance_id));
        }
        R::DetachNetworkInterface(r) => {
            out.push(interface(
                "ec2:DetachNetworkInterface",
                &r.network_interface_id,
            ));
            if let Some(i) = facts.attached_instance(&r.network_interface_id) {
                out.push(instance("ec2:DetachNetworkInterface", i));
            }
        }
        R::MoveNetworkInterface(r) => {
            out.push(interface(
                "ec2:DetachNetworkInterface",
                &r.network_interface_id,
            ));
            if let Some(i) = facts.attached_instance(&r.network_interface_id) {
                out.push(instance("ec2:DetachNetworkInterface", i));
            }
            out.push(interface(
                "ec2:AttachNetworkInterface",
                &r.network_interface_id,
            ));
            out.push(instance("ec2:AttachNetworkInterface", &r.to_instance_id));
            // A failed attach puts the interface back, which is an attach to the old instance.
            if let Some(i) = facts.attached_instance(&r.network_interface_id) {
                out.push(instance("ec2:AttachNetworkInterface", i));
            }
        }
        R::DeleteNetworkInterface(r) => out.push(interface(
            "ec2:DeleteNetworkInterface",
            &r.network_interface_id,
        )),
        R::CreateSecurityGroup(r) => {
            out.push(s.created("ec2:CreateSecurityGroup", "security-group", "*", &r.tags));
            if let Some(vpc) = &r.vpc_id {
                out.push(s.existing("ec2:CreateSecurityGroup", "vpc", vpc, &tags_of(vpc)));
            }
            out.extend(s.tagging("CreateSecurityGroup", "security-group", "*", &r.tags));
        }
        R::AuthorizeSecurityGroup(r) => out.push(group(
            &format!("ec2:AuthorizeSecurityGroup{}", r.direction.api_name()),
            &r.group_id,
        )),
        R::RevokeSecurityGroup(r) => out.push(group(
            &format!("ec2:RevokeSecurityGroup{}", r.direction.api_name()),
            &r.group_id,
        )),
        R::DeleteSecurityGroup(r) => out.push(group("ec2:DeleteSecurityGroup", &r.group_id)),
        R::CreateKeyPair(r) => {
            out.push(
                s.created("ec2:CreateKeyPair", "key-pair", &r.key_name, &r.tags)
                    .with("ec2:KeyPairName", r.key_name.as_str())
                    .with("ec2:KeyPairType", r.key_type.as_str()),
            );
            out.extend(s.tagging("CreateKeyPair", "key-pair", &r.key_name, &r.tags));
        }
        R::ImportKeyPair(r) => {
            out.push(
                s.created("ec2:ImportKeyPair", "key-pair", &r.key_name, &r.tags)
                    .with("ec2:KeyPairName", r.key_name.as_str()),
            );
            out.extend(s.tagging("ImportKeyPair", "key-pair", &r.key_name, &r.tags));
        }
        R::DeleteKeyPair(r) => out.push(key_pair("ec2:DeleteKeyPair", &r.key_name)),
        R::CreateVolume(r) => {
            let mut c = s
                .created("ec2:CreateVolume", "volume", "*", &r.tags)
                .with("ec2:VolumeType", r.volume_type.as_str())
                .with("ec2:Encrypted", r.encrypted.to_string())
                .with("ec2:AvailabilityZone", r.availability_zone.as_str())
                .with_some("ec2:VolumeIops", r.iops.map(|i| i.to_string()))
                .with_some(
                    "ec2:ParentSnapshot",
                    r.snapshot_id.as_deref().map(|x| s.arn("snapshot", x)),
                );
            let size = r.size_gib.or_else(|| {
                r.snapshot_id
                    .as_deref()
                    .and_then(|x| facts.snapshot(x))
                    .and_then(|x| x.volume_size_gib)
            });
            c = c.with_some("ec2:VolumeSize", size.map(|v| v.to_string()));
            out.push(c);
            if let Some(x) = &r.snapshot_id {
                out.push(snapshot("ec2:CreateVolume", x));
            }
            out.extend(s.tagging("CreateVolume", "volume", "*", &r.tags));
        }
        R::AttachVolume(r) => {
            out.push(volume("ec2:AttachVolume", &r.volume_id));
            out.push(instance("ec2:AttachVolume", &r.instance_id));
        }
        R::DetachVolume(r) => {
            out.push(volume("ec2:DetachVolume", &r.volume_id));
            if let Some(v) = facts.volume(&r.volume_id) {
                for i in &v.attached_to {
                    out.push(instance("ec2:DetachVolume", i));
                }
            }
        }
        R::DeleteVolume(r) => out.push(volume("ec2:DeleteVolume", &r.volume_id)),
        R::CreateSnapshot(r) => {
            out.push(volume("ec2:CreateSnapshot", &r.volume_id));
            let source = facts.volume(&r.volume_id);
            out.push(
                s.created("ec2:CreateSnapshot", "snapshot", "*", &r.tags)
                    .with("ec2:ParentVolume", s.arn("volume", &r.volume_id))
                    .with_some(
                        "ec2:VolumeSize",
                        source.and_then(|v| v.size_gib).map(|v| v.to_string()),
                    ),
            );
            out.extend(s.tagging("CreateSnapshot", "snapshot", "*", &r.tags));
        }
        R::DeleteSnapshot(r) => out.push(snapshot("ec2:DeleteSnapshot", &r.snapshot_id)),
        R::CopySnapshot(r) => {
            out.push(snapshot("ec2:CopySnapshot", &r.snapshot_id));
            let dest = Scope {
                region: r.destination_region.clone(),
                account_id: s.account_id.clone(),
            };
            out.push(dest.created("ec2:CopySnapshot", "snapshot", "*", &r.tags));
            out.extend(dest.tagging("CopySnapshot", "snapshot", "*", &r.tags));
        }
        R::CreateImage(r) => {
            out.push(instance("ec2:CreateImage", &r.instance_id));
            out.push(s.created("ec2:CreateImage", "image", "*", &r.tags));
            out.push(s.created("ec2:CreateImage", "snapshot", "*", &[]));
            out.extend(s.tagging("CreateImage", "image", "*", &r.tags));
        }
        R::DeregisterImage(r) => {
            let owner = facts.image(&r.image_id).and_then(|i| i.owner_id.clone());
            out.push(
                s.existing(
                    "ec2:DeregisterImage",
                    "image",
                    &r.image_id,
                    &tags_of(&r.image_id),
                )
                .with_some("ec2:Owner", owner),
            )
        }
    }
    out
}

/// The resource kind of a listed family's items and the field holding each item's id, for
/// deciding per item whether the caller may see it.
pub fn listed(family: &str) -> Option<(&'static str, &'static str)> {
    Some(match family {
        "addresses" => ("elastic-ip", "allocation_id"),
        "network-interfaces" => ("network-interface", "network_interface_id"),
        "security-groups" => ("security-group", "group_id"),
        "key-pairs" => ("key-pair", "key_name"),
        "volumes" => ("volume", "volume_id"),
        "snapshots" => ("snapshot", "snapshot_id"),
        "images" => ("image", "image_id"),
        _ => return None,
    })
}

/// The check of seeing one listed item (as EC2 serialized it): the family's describe action on
/// its ARN with its tags. An item without an id is decided as the whole family.
pub fn describe_item(scope: &Scope, family: &str, item: &serde_json::Value) -> Option<Check> {
    let action = airlock_fleet::describe_action(family)?;
    let (kind, field) = listed(family)?;
    let id = item
        .get(field)
        .and_then(serde_json::Value::as_str)
        .unwrap_or("*");
    let tags: Vec<airlock_cloud::Tag> = item
        .get("tags")
        .cloned()
        .and_then(|t| serde_json::from_value(t).ok())
        .unwrap_or_default();
    Some(crate::ops::describe(scope, action, kind, id, &tags))
}
