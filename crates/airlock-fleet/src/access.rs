//! What AWS authorizes for each fleet operation: the action on every resource the call touches,
//! with the condition keys AWS puts in the request context (the resource's current tags, the
//! requested tags, `ec2:CreateAction` for tags on creation, sizes, types, owners).
//!
//! The console evaluates these with the caller's policies before anything reaches EC2; the
//! list is pure, so tests run it through the policy evaluator.

use crate::request::FleetRequest;
use crate::run::Facts;
use airlock_cloud::{Tag, Volume};
use airlock_policy::{Context, ContextValue};

/// ARN of an EC2 resource. Images and snapshots are owned by no account in their ARN, as AWS
/// writes them (`arn:aws:ec2:us-east-1::snapshot/snap-…`).
pub fn arn(region: &str, account: &str, kind: &str, id: &str) -> String {
    let account = if matches!(kind, "image" | "snapshot") {
        ""
    } else {
        account
    };
    format!("arn:aws:ec2:{region}:{account}:{kind}/{id}")
}

/// One action on one resource, with the context keys specific to it.
#[derive(Debug, Clone)]
pub struct Check {
    /// e.g. `ec2:CreateSnapshot`.
    pub action: String,
    /// The resource ARN.
    pub resource: String,
    /// Keys beyond the global ones (tags, region, sizes…).
    pub context: Context,
}

impl Check {
    /// A check with no specific context.
    pub fn new(action: &str, resource: impl Into<String>) -> Check {
        Check {
            action: action.to_owned(),
            resource: resource.into(),
            context: Context::new(),
        }
    }

    /// Adds a context key.
    pub fn with(mut self, key: &str, value: impl Into<ContextValue>) -> Check {
        self.context.insert(key, value);
        self
    }

    /// Adds a context key when there is a value.
    fn with_some(self, key: &str, value: Option<impl Into<ContextValue>>) -> Check {
        match value {
            Some(v) => self.with(key, v),
            None => self,
        }
    }

    /// Adds `ec2:ResourceTag/K` and `aws:ResourceTag/K` for each current tag of the resource.
    pub fn with_resource_tags(mut self, tags: &[Tag]) -> Check {
        for t in tags {
            self.context
                .insert(&format!("ec2:ResourceTag/{}", t.key), t.value.as_str());
            self.context
                .insert(&format!("aws:ResourceTag/{}", t.key), t.value.as_str());
        }
        self
    }

    /// Adds `aws:RequestTag/K` for each requested tag and `aws:TagKeys`.
    pub fn with_request_tags(mut self, tags: &[Tag]) -> Check {
        for t in tags {
            self.context
                .insert(&format!("aws:RequestTag/{}", t.key), t.value.as_str());
        }
        let keys: Vec<String> = tags.iter().map(|t| t.key.clone()).collect();
        if !keys.is_empty() {
            self.context.insert("aws:TagKeys", keys);
        }
        self
    }
}

/// The account and region a request runs in.
#[derive(Debug, Clone)]
pub struct Scope {
    /// The region, e.g. `us-east-1`.
    pub region: String,
    /// The 12-digit account id.
    pub account_id: String,
}

impl Scope {
    /// The ARN of a resource in this scope.
    pub fn arn(&self, kind: &str, id: &str) -> String {
        arn(&self.region, &self.account_id, kind, id)
    }

    /// A check on an existing resource with its current tags.
    fn existing(&self, action: &str, kind: &str, id: &str, tags: &[Tag]) -> Check {
        Check::new(action, self.arn(kind, id))
            .with_resource_tags(tags)
            .with("ec2:Region", self.region.as_str())
    }

    /// A check on a resource being created, with the tags requested for it.
    fn created(&self, action: &str, kind: &str, id: &str, tags: &[Tag]) -> Check {
        Check::new(action, self.arn(kind, id))
            .with_request_tags(tags)
            .with("ec2:Region", self.region.as_str())
    }

    /// `ec2:CreateTags` as AWS checks it for tags on creation: on the new resource, with
    /// `ec2:CreateAction` naming the creating action. Nothing when no tags are requested.
    fn tagging(&self, create_action: &str, kind: &str, id: &str, tags: &[Tag]) -> Option<Check> {
        (!tags.is_empty()).then(|| {
            self.created("ec2:CreateTags", kind, id, tags)
                .with("ec2:CreateAction", create_action)
        })
    }

    fn volume(&self, action: &str, v: &Volume) -> Check {
        self.existing(action, "volume", &v.volume_id, &v.tags)
            .with_some("ec2:VolumeSize", v.size_gib.map(|s| s.to_string()))
            .with_some("ec2:VolumeType", v.volume_type.as_deref())
            .with_some("ec2:VolumeIops", v.iops.map(|s| s.to_string()))
            .with_some("ec2:Encrypted", v.encrypted.map(|e| e.to_string()))
            .with_some("ec2:AvailabilityZone", v.availability_zone.as_deref())
            .with_some(
                "ec2:ParentSnapshot",
                v.snapshot_id.as_deref().map(|s| self.arn("snapshot", s)),
            )
    }
}

/// The checks AWS makes for `request`, given what [`crate::run::prepare`] found in EC2.
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
        Some(v) => s.volume(action, v),
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn arns_follow_aws_forms() {
        assert_eq!(
            arn("us-east-1", "123456789012", "snapshot", "snap-1"),
            "arn:aws:ec2:us-east-1::snapshot/snap-1"
        );
        assert_eq!(
            arn("us-east-1", "123456789012", "image", "ami-1"),
            "arn:aws:ec2:us-east-1::image/ami-1"
        );
        assert_eq!(
            arn("us-east-1", "123456789012", "elastic-ip", "eipalloc-1"),
            "arn:aws:ec2:us-east-1:123456789012:elastic-ip/eipalloc-1"
        );
    }

    #[test]
    fn request_tags_give_tag_keys() {
        let c = Check::new("ec2:RunInstances", "*")
            .with_request_tags(&[Tag::new("owner", "ana"), Tag::new("team", "web")]);
        assert!(
            matches!(c.context.get("aws:tagkeys"), Some(ContextValue::Multi(v)) if v.len() == 2)
        );
        assert!(
            matches!(c.context.get("AWS:RequestTag/owner"), Some(ContextValue::Single(v)) if v == "ana")
        );
    }
}
