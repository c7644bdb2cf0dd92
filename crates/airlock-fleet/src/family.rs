//! The resource families fleet operations act on, as one type: the console's paths
//! (`/v1/{family}`), the `Describe…` action each is listed with and how its items are named in
//! ARNs are facts of the family, so they are kept together here instead of matched on strings
//! in every crate.

use serde::{Deserialize, Serialize};

/// A family of EC2 resources with fleet operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FleetFamily {
    /// Elastic IPs.
    Addresses,
    /// Network interfaces.
    NetworkInterfaces,
    /// Security groups.
    SecurityGroups,
    /// Key pairs.
    KeyPairs,
    /// EBS volumes.
    Volumes,
    /// EBS snapshots.
    Snapshots,
    /// Images (AMIs).
    Images,
}

impl FleetFamily {
    /// Every family, in the order the console and the CLI present them.
    pub const ALL: [FleetFamily; 7] = [
        FleetFamily::Addresses,
        FleetFamily::NetworkInterfaces,
        FleetFamily::SecurityGroups,
        FleetFamily::KeyPairs,
        FleetFamily::Volumes,
        FleetFamily::Snapshots,
        FleetFamily::Images,
    ];

    /// The family as it appears in console paths (`/v1/{family}`).
    pub fn path(self) -> &'static str {
        match self {
            FleetFamily::Addresses => "addresses",
            FleetFamily::NetworkInterfaces => "network-interfaces",
            FleetFamily::SecurityGroups => "security-groups",
            FleetFamily::KeyPairs => "key-pairs",
            FleetFamily::Volumes => "volumes",
            FleetFamily::Snapshots => "snapshots",
            FleetFamily::Images => "images",
        }
    }

    /// The family of a console path segment.
    pub fn from_path(path: &str) -> Option<FleetFamily> {
        FleetFamily::ALL.into_iter().find(|f| f.path() == path)
    }

    /// The `Describe…` action the family is listed with, as IAM names it.
    pub fn describe_action(self) -> &'static str {
        match self {
            FleetFamily::Addresses => "ec2:DescribeAddresses",
            FleetFamily::NetworkInterfaces => "ec2:DescribeNetworkInterfaces",
            FleetFamily::SecurityGroups => "ec2:DescribeSecurityGroups",
            FleetFamily::KeyPairs => "ec2:DescribeKeyPairs",
            FleetFamily::Volumes => "ec2:DescribeVolumes",
            FleetFamily::Snapshots => "ec2:DescribeSnapshots",
            FleetFamily::Images => "ec2:DescribeImages",
        }
    }

    /// The resource type of the family's items in ARNs (`elastic-ip`, `volume`, …).
    pub fn resource_kind(self) -> &'static str {
        match self {
            FleetFamily::Addresses => "elastic-ip",
            FleetFamily::NetworkInterfaces => "network-interface",
            FleetFamily::SecurityGroups => "security-group",
            FleetFamily::KeyPairs => "key-pair",
            FleetFamily::Volumes => "volume",
            FleetFamily::Snapshots => "snapshot",
            FleetFamily::Images => "image",
        }
    }

    /// The field of a listed item (as serialized) that holds its id in ARNs.
    pub fn id_field(self) -> &'static str {
        match self {
            FleetFamily::Addresses => "allocation_id",
            FleetFamily::NetworkInterfaces => "network_interface_id",
            FleetFamily::SecurityGroups => "group_id",
            FleetFamily::KeyPairs => "key_name",
            FleetFamily::Volumes => "volume_id",
            FleetFamily::Snapshots => "snapshot_id",
            FleetFamily::Images => "image_id",
        }
    }
}

impl std::fmt::Display for FleetFamily {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.path())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip_and_match_serde() {
        for family in FleetFamily::ALL {
            assert_eq!(FleetFamily::from_path(family.path()), Some(family));
            assert_eq!(
                serde_json::to_value(family).unwrap(),
                serde_json::Value::String(family.path().to_owned())
            );
        }
        assert_eq!(FleetFamily::from_path("instances"), None);
    }
}
