//! What AWS authorizes for each fleet operation: the action on every resource the call touches,
//! with the condition keys AWS puts in the request context (the resource's current tags, the
//! requested tags, `ec2:CreateAction` for tags on creation, sizes, types, owners).
//!
//! The console evaluates these with the caller's policies before anything reaches EC2; the
//! list is pure, so tests run it through the policy evaluator. Each family's checks are in its
//! own module, beside the family's module in `airlock-fleet`; the checks on existing resources
//! that several families share (an instance, an interface, a volume…) are built by [`On`].

use crate::check::{Check, ScopeChecks};
use airlock_cloud::Scope;
use airlock_fleet::{Facts, FleetFamily, FleetRequest};

mod address;
mod image;
mod interface;
mod key_pair;
mod security_group;
mod snapshot;
mod volume;

/// The checks AWS makes for `request`, given what [`airlock_fleet::prepare`] found in EC2.
pub fn checks(request: &FleetRequest, facts: &Facts, scope: &Scope) -> Vec<Check> {
    use FleetRequest as R;
    let on = On { s: scope, facts };
    match request {
        R::Address(r) => address::checks(r, &on),
        R::Interface(r) => interface::checks(r, &on),
        R::SecurityGroup(r) => security_group::checks(r, &on),
        R::KeyPair(r) => key_pair::checks(r, &on),
        R::Volume(r) => volume::checks(r, &on),
        R::Snapshot(r) => snapshot::checks(r, &on),
        R::Image(r) => image::checks(r, &on),
    }
}

/// Checks on existing resources of one scope, with the condition keys EC2 adds for each kind
/// from what it knows of the resource now.
struct On<'a> {
    s: &'a Scope,
    facts: &'a Facts,
}

impl On<'_> {
    /// Any existing resource, with only its current tags.
    fn existing(&self, action: &str, kind: &str, id: &str) -> Check {
        self.s.existing(action, kind, id, &self.facts.tags_of(id))
    }

    fn instance(&self, action: &str, id: &str) -> Check {
        let c = self.existing(action, "instance", id);
        let t = self
            .facts
            .instance(id)
            .and_then(|i| i.instance_type.as_deref());
        c.with_some("ec2:InstanceType", t)
    }

    fn address(&self, action: &str, id: &str) -> Check {
        let a = self.facts.address(id);
        self.existing(action, "elastic-ip", id)
            .with("ec2:AllocationId", id)
            .with("ec2:Domain", "vpc")
            .with_some(
                "ec2:PublicIpAddress",
                a.and_then(|a| a.public_ip.as_deref()),
            )
    }

    fn interface(&self, action: &str, id: &str) -> Check {
        let n = self.facts.interface(id);
        self.existing(action, "network-interface", id)
            .with_some(
                "ec2:Subnet",
                n.and_then(|n| n.subnet_id.as_deref())
                    .map(|x| self.s.arn("subnet", x)),
            )
            .with_some(
                "ec2:Vpc",
                n.and_then(|n| n.vpc_id.as_deref())
                    .map(|x| self.s.arn("vpc", x)),
            )
            .with_some(
                "ec2:AvailabilityZone",
                n.and_then(|n| n.availability_zone.as_deref()),
            )
    }

    fn group(&self, action: &str, id: &str) -> Check {
        let g = self.facts.security_group(id);
        self.existing(action, "security-group", id)
            .with("ec2:SecurityGroupID", id)
            .with_some(
                "ec2:Vpc",
                g.and_then(|g| g.vpc_id.as_deref())
                    .map(|x| self.s.arn("vpc", x)),
            )
    }

    fn volume(&self, action: &str, id: &str) -> Check {
        let s = self.s;
        let Some(v) = self.facts.volume(id) else {
            return self.existing(action, "volume", id);
        };
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

    fn snapshot(&self, action: &str, id: &str) -> Check {
        let snap = self.facts.snapshot(id);
        self.existing(action, "snapshot", id)
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
                    .map(|v| self.s.arn("volume", v)),
            )
    }

    fn key_pair(&self, action: &str, name: &str) -> Check {
        let k = self.facts.key_pair(name);
        self.existing(action, "key-pair", name)
            .with("ec2:KeyPairName", name)
            .with_some("ec2:KeyPairType", k.and_then(|k| k.key_type.as_deref()))
    }
}

/// The check of seeing one listed item (as EC2 serialized it): the family's describe action on
/// its ARN with its tags. An item without an id is decided as the whole family.
pub fn describe_item(scope: &Scope, family: FleetFamily, item: &serde_json::Value) -> Check {
    describe_listed(
        scope,
        family.describe_action(),
        family.resource_kind(),
        family.id_field(),
        item,
    )
}

/// The check that shows one listed item (as serialized, its id in `id_field`): `action` on
/// it as a resource of `kind`, with its current tags.
pub fn describe_listed(
    scope: &Scope,
    action: &str,
    kind: &str,
    id_field: &str,
    item: &serde_json::Value,
) -> Check {
    let id = item
        .get(id_field)
        .and_then(serde_json::Value::as_str)
        .unwrap_or("*");
    let tags: Vec<airlock_cloud::Tag> = item
        .get("tags")
        .cloned()
        .and_then(|t| serde_json::from_value(t).ok())
        .unwrap_or_default();
    crate::ops::describe(scope, action, kind, id, &tags)
}
