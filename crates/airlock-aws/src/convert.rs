//! Conversions between the SDK's generated types and `airlock-cloud`'s plain ones.

use airlock_cloud::{
    Address, CloudError, Filter, Image, Instance, InstanceStatus, InterfaceAttachment, KeyPair,
    NetworkInterface, SecurityGroup, SecurityGroupRule, Snapshot, Subnet, Tag, Volume,
    VolumeAttachment,
};
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::operation::RequestId;

/// Turns any SDK error into AWS's code, message and request id.
pub fn cloud_error<E, R>(err: SdkError<E, R>) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let retryable = matches!(
        err,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_)
    ) || err
        .code()
        .is_some_and(airlock_cloud::calls::is_throttling_code);
    let request_id = match &err {
        SdkError::ServiceError(service) => service.err().meta().request_id().map(str::to_owned),
        _ => None,
    };
    match (err.code(), err.message()) {
        (Some(code), message) => CloudError {
            code: Some(code.to_owned()),
            message: message.unwrap_or("").to_owned(),
            request_id,
            retryable,
        },
        _ => CloudError {
            code: None,
            message: aws_sdk_ec2::error::DisplayErrorContext(&err).to_string(),
            request_id,
            retryable,
        },
    }
}

pub fn tags(tags: &[Tag]) -> Vec<aws_sdk_ec2::types::Tag> {
    tags.iter()
        .map(|t| {
            aws_sdk_ec2::types::Tag::builder()
                .key(&t.key)
                .value(&t.value)
                .build()
        })
        .collect()
}

pub fn from_sdk_tags(tags: &[aws_sdk_ec2::types::Tag]) -> Vec<Tag> {
    tags.iter()
        .map(|t| Tag::new(t.key().unwrap_or_default(), t.value().unwrap_or_default()))
        .collect()
}

pub fn filters(filters: &[Filter]) -> Option<Vec<aws_sdk_ec2::types::Filter>> {
    if filters.is_empty() {
        return None;
    }
    Some(
        filters
            .iter()
            .map(|f| {
                aws_sdk_ec2::types::Filter::builder()
                    .name(&f.name)
                    .set_values(Some(f.values.clone()))
                    .build()
            })
            .collect(),
    )
}

pub fn instance(i: &aws_sdk_ec2::types::Instance) -> Instance {
    Instance {
        instance_id: i.instance_id().unwrap_or_default().to_owned(),
        image_id: i.image_id().map(str::to_owned),
        instance_type: i.instance_type().map(|t| t.as_str().to_owned()),
        state: i
            .state()
            .and_then(|s| s.name())
            .map(|n| n.as_str().to_owned())
            .unwrap_or_else(|| "unknown".to_owned()),
        private_ip: i.private_ip_address().map(str::to_owned),
        public_ip: i.public_ip_address().map(str::to_owned),
        subnet_id: i.subnet_id().map(str::to_owned),
        vpc_id: i.vpc_id().map(str::to_owned),
        launch_time: i.launch_time().and_then(datetime),
        tags: from_sdk_tags(i.tags()),
        availability_zone: i
            .placement()
            .and_then(|p| p.availability_zone())
            .map(str::to_owned),
        root_device_name: i.root_device_name().map(str::to_owned),
    }
}

pub fn volume(v: &aws_sdk_ec2::types::Volume) -> Volume {
    Volume {
        volume_id: v.volume_id().unwrap_or_default().to_owned(),
        attached_to: v
            .attachments()
            .iter()
            .filter_map(|a| a.instance_id().map(str::to_owned))
            .collect(),
        tags: from_sdk_tags(v.tags()),
        state: v.state().map(|s| s.as_str().to_owned()),
        availability_zone: v.availability_zone().map(str::to_owned),
        size_gib: v.size(),
        volume_type: v.volume_type().map(|t| t.as_str().to_owned()),
        iops: v.iops(),
        encrypted: v.encrypted(),
        snapshot_id: v.snapshot_id().filter(|s| !s.is_empty()).map(str::to_owned),
        attachments: volume_attachments(v.attachments()),
    }
}

/// A volume's attachments that name an instance.
pub fn volume_attachments(
    attachments: &[aws_sdk_ec2::types::VolumeAttachment],
) -> Vec<VolumeAttachment> {
    attachments
        .iter()
        .filter_map(|a| {
            a.instance_id().map(|id| VolumeAttachment {
                instance_id: id.to_owned(),
                device: a.device().map(str::to_owned),
                state: a.state().map(|s| s.as_str().to_owned()),
            })
        })
        .collect()
}

pub fn address(a: &aws_sdk_ec2::types::Address) -> Address {
    Address {
        allocation_id: a.allocation_id().map(str::to_owned),
        public_ip: a.public_ip().map(str::to_owned),
        instance_id: a.instance_id().map(str::to_owned),
        association_id: a.association_id().map(str::to_owned),
        network_interface_id: a.network_interface_id().map(str::to_owned),
        private_ip: a.private_ip_address().map(str::to_owned),
        tags: from_sdk_tags(a.tags()),
    }
}

/// An SDK timestamp as UTC, when in range.
pub fn datetime(t: &aws_sdk_ec2::primitives::DateTime) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

pub fn network_interface(n: &aws_sdk_ec2::types::NetworkInterface) -> NetworkInterface {
    NetworkInterface {
        network_interface_id: n.network_interface_id().unwrap_or_default().to_owned(),
        subnet_id: n.subnet_id().map(str::to_owned),
        vpc_id: n.vpc_id().map(str::to_owned),
        availability_zone: n.availability_zone().map(str::to_owned),
        private_ip: n.private_ip_address().map(str::to_owned),
        status: n.status().map(|s| s.as_str().to_owned()),
        description: n.description().filter(|d| !d.is_empty()).map(str::to_owned),
        security_group_ids: n
            .groups()
            .iter()
            .filter_map(|g| g.group_id().map(str::to_owned))
            .collect(),
        attachment: n.attachment().map(|a| InterfaceAttachment {
            attachment_id: a.attachment_id().map(str::to_owned),
            instance_id: a.instance_id().map(str::to_owned),
            device_index: a.device_index(),
            status: a.status().map(|s| s.as_str().to_owned()),
        }),
        tags: from_sdk_tags(n.tag_set()),
    }
}

/// One rule per IPv4 range, IPv6 range and security group of each permission (prefix lists are
/// not represented).
fn rules(permissions: &[aws_sdk_ec2::types::IpPermission]) -> Vec<SecurityGroupRule> {
    let mut found = Vec::new();
    for p in permissions {
        let rule = |cidr: Option<&str>, group_id: Option<&str>, description: Option<&str>| {
            SecurityGroupRule {
                protocol: p.ip_protocol().unwrap_or_default().to_owned(),
                from_port: p.from_port(),
                to_port: p.to_port(),
                cidr: cidr.map(str::to_owned),
                group_id: group_id.map(str::to_owned),
                description: description.map(str::to_owned),
            }
        };
        for r in p.ip_ranges() {
            found.push(rule(r.cidr_ip(), None, r.description()));
        }
        for r in p.ipv6_ranges() {
            found.push(rule(r.cidr_ipv6(), None, r.description()));
        }
        for g in p.user_id_group_pairs() {
            found.push(rule(None, g.group_id(), g.description()));
        }
    }
    found
}

pub fn security_group(g: &aws_sdk_ec2::types::SecurityGroup) -> SecurityGroup {
    SecurityGroup {
        group_id: g.group_id().unwrap_or_default().to_owned(),
        group_name: g.group_name().unwrap_or_default().to_owned(),
        description: g.description().map(str::to_owned),
        vpc_id: g.vpc_id().map(str::to_owned),
        ingress: rules(g.ip_permissions()),
        egress: rules(g.ip_permissions_egress()),
        tags: from_sdk_tags(g.tags()),
    }
}

/// A subnet as the plain type.
pub fn subnet(s: &aws_sdk_ec2::types::Subnet) -> Subnet {
    Subnet {
        subnet_id: s.subnet_id().unwrap_or_default().to_owned(),
        vpc_id: s.vpc_id().map(str::to_owned),
        availability_zone: s.availability_zone().map(str::to_owned),
        cidr_block: s.cidr_block().map(str::to_owned),
        available_ip_address_count: s.available_ip_address_count(),
        default_for_az: s.default_for_az(),
        tags: from_sdk_tags(s.tags()),
    }
}

/// The SDK's permissions for rules: one `IpPermission` per rule, the CIDR as IPv6 when it has a
/// colon.
pub fn ip_permissions(rules: &[SecurityGroupRule]) -> Vec<aws_sdk_ec2::types::IpPermission> {
    use aws_sdk_ec2::types::{IpPermission, IpRange, Ipv6Range, UserIdGroupPair};
    rules
        .iter()
        .map(|r| {
            let mut p = IpPermission::builder()
                .ip_protocol(&r.protocol)
                .set_from_port(r.from_port)
                .set_to_port(r.to_port);
            if let Some(cidr) = &r.cidr {
                p = if cidr.contains(':') {
                    p.ipv6_ranges(
                        Ipv6Range::builder()
                            .cidr_ipv6(cidr)
                            .set_description(r.description.clone())
                            .build(),
                    )
                } else {
                    p.ip_ranges(
                        IpRange::builder()
                            .cidr_ip(cidr)
                            .set_description(r.description.clone())
                            .build(),
                    )
                };
            }
            if let Some(group_id) = &r.group_id {
                p = p.user_id_group_pairs(
                    UserIdGroupPair::builder()
                        .group_id(group_id)
                        .set_description(r.description.clone())
                        .build(),
                );
            }
            p.build()
        })
        .collect()
}

pub fn key_pair(k: &aws_sdk_ec2::types::KeyPairInfo) -> KeyPair {
    KeyPair {
        key_pair_id: k.key_pair_id().map(str::to_owned),
        key_name: k.key_name().unwrap_or_default().to_owned(),
        key_fingerprint: k.key_fingerprint().map(str::to_owned),
        key_type: k.key_type().map(|t| t.as_str().to_owned()),
        created_at: k.create_time().and_then(datetime),
        tags: from_sdk_tags(k.tags()),
    }
}

pub fn snapshot(s: &aws_sdk_ec2::types::Snapshot) -> Snapshot {
    Snapshot {
        snapshot_id: s.snapshot_id().unwrap_or_default().to_owned(),
        volume_id: s.volume_id().map(str::to_owned),
        state: s.state().map(|s| s.as_str().to_owned()),
        progress: s.progress().map(str::to_owned),
        volume_size_gib: s.volume_size(),
        description: s.description().filter(|d| !d.is_empty()).map(str::to_owned),
        encrypted: s.encrypted(),
        owner_id: s.owner_id().map(str::to_owned),
        start_time: s.start_time().and_then(datetime),
        tags: from_sdk_tags(s.tags()),
    }
}

pub fn image(i: &aws_sdk_ec2::types::Image) -> Image {
    Image {
        image_id: i.image_id().unwrap_or_default().to_owned(),
        name: i.name().map(str::to_owned),
        state: i.state().map(|s| s.as_str().to_owned()),
        description: i.description().filter(|d| !d.is_empty()).map(str::to_owned),
        owner_id: i.owner_id().map(str::to_owned),
        creation_date: i.creation_date().map(str::to_owned),
        snapshot_ids: i
            .block_device_mappings()
            .iter()
            .filter_map(|m| m.ebs().and_then(|e| e.snapshot_id()).map(str::to_owned))
            .collect(),
        tags: from_sdk_tags(i.tags()),
    }
}

pub fn instance_status(s: &aws_sdk_ec2::types::InstanceStatus) -> InstanceStatus {
    InstanceStatus {
        instance_id: s.instance_id().unwrap_or_default().to_owned(),
        state: s
            .instance_state()
            .and_then(|st| st.name())
            .map(|n| n.as_str().to_owned()),
        system_status: s
            .system_status()
            .and_then(|st| st.status())
            .map(|st| st.as_str().to_owned()),
        instance_status: s
            .instance_status()
            .and_then(|st| st.status())
            .map(|st| st.as_str().to_owned()),
        availability_zone: s.availability_zone().map(str::to_owned),
    }
}

/// Tags for `DeleteTags`: an empty value means "whatever the value".
pub fn tag_keys(tags: &[Tag]) -> Vec<aws_sdk_ec2::types::Tag> {
    tags.iter()
        .map(|t| {
            let tag = aws_sdk_ec2::types::Tag::builder().key(&t.key);
            if t.value.is_empty() {
                tag.build()
            } else {
                tag.value(&t.value).build()
            }
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rule(cidr: Option<&str>, group_id: Option<&str>) -> SecurityGroupRule {
        SecurityGroupRule {
            protocol: "tcp".to_owned(),
            from_port: Some(22),
            to_port: Some(22),
            cidr: cidr.map(str::to_owned),
            group_id: group_id.map(str::to_owned),
            description: Some("ssh".to_owned()),
        }
    }

    #[test]
    fn rules_round_trip_through_ip_permissions() {
        let wanted = vec![
            rule(Some("10.0.0.0/8"), None),
            rule(Some("2001:db8::/32"), None),
            rule(None, Some("sg-0123")),
        ];
        let permissions = ip_permissions(&wanted);
        assert_eq!(permissions.len(), 3);
        assert_eq!(
            permissions[1].ipv6_ranges()[0].cidr_ipv6(),
            Some("2001:db8::/32")
        );
        let group = aws_sdk_ec2::types::SecurityGroup::builder()
            .group_id("sg-1")
            .group_name("web")
            .set_ip_permissions(Some(permissions))
            .build();
        let converted = security_group(&group);
        assert_eq!(converted.ingress, wanted);
        assert!(converted.egress.is_empty());
    }
}
