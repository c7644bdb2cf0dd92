//! The fleet operations as requests: one plain struct per operation, the JSON bodies of the
//! console's `POST /v1/{family}/{verb}` and what `airlock <family> <verb>` sends. Each family's
//! structs, validation and calls live in its own module; [`FleetRequest`] only says which
//! family a request belongs to and hands every question to it.

use crate::address::AddressRequest;
use crate::family::FleetFamily;
use crate::image::ImageRequest;
use crate::interface::InterfaceRequest;
use crate::key_pair::KeyPairRequest;
use crate::security_group::SecurityGroupRequest;
use crate::snapshot::SnapshotRequest;
use crate::validate::{self, Checked, FieldError};
use crate::volume::VolumeRequest;
use airlock_cloud::Tag;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Every fleet operation, by family. Serialized, it is the operation's JSON body.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
#[allow(missing_docs)]
pub enum FleetRequest {
    Address(AddressRequest),
    Interface(InterfaceRequest),
    SecurityGroup(SecurityGroupRequest),
    KeyPair(KeyPairRequest),
    Volume(VolumeRequest),
    Snapshot(SnapshotRequest),
    Image(ImageRequest),
}

/// One operation's JSON body as its request struct, the error naming the field that is wrong.
pub(crate) fn body<T: DeserializeOwned>(value: serde_json::Value) -> Checked<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        FieldError::new(if path == "." { "body".into() } else { path }, message)
    })
}

macro_rules! from_family {
    ($($family:ident => $variant:ident),*) => {$(
        impl From<$family> for FleetRequest {
            fn from(r: $family) -> Self {
                FleetRequest::$variant(r)
            }
        }
    )*};
}

from_family!(
    AddressRequest => Address,
    InterfaceRequest => Interface,
    SecurityGroupRequest => SecurityGroup,
    KeyPairRequest => KeyPair,
    VolumeRequest => Volume,
    SnapshotRequest => Snapshot,
    ImageRequest => Image
);

impl FleetRequest {
    /// The request for `POST /v1/{family}/{verb}` with a JSON body (without its `account`).
    /// `Ok(None)` when no such operation exists.
    pub fn parse(family: &str, verb: &str, value: serde_json::Value) -> Checked<Option<Self>> {
        use FleetFamily as F;
        let Some(family) = FleetFamily::from_path(family) else {
            return Ok(None);
        };
        Ok(match family {
            F::Addresses => AddressRequest::parse(verb, value)?.map(Self::Address),
            F::NetworkInterfaces => InterfaceRequest::parse(verb, value)?.map(Self::Interface),
            F::SecurityGroups => SecurityGroupRequest::parse(verb, value)?.map(Self::SecurityGroup),
            F::KeyPairs => KeyPairRequest::parse(verb, value)?.map(Self::KeyPair),
            F::Volumes => VolumeRequest::parse(verb, value)?.map(Self::Volume),
            F::Snapshots => SnapshotRequest::parse(verb, value)?.map(Self::Snapshot),
            F::Images => ImageRequest::parse(verb, value)?.map(Self::Image),
        })
    }

    /// The family the request acts on.
    pub fn family(&self) -> FleetFamily {
        match self {
            Self::Address(_) => FleetFamily::Addresses,
            Self::Interface(_) => FleetFamily::NetworkInterfaces,
            Self::SecurityGroup(_) => FleetFamily::SecurityGroups,
            Self::KeyPair(_) => FleetFamily::KeyPairs,
            Self::Volume(_) => FleetFamily::Volumes,
            Self::Snapshot(_) => FleetFamily::Snapshots,
            Self::Image(_) => FleetFamily::Images,
        }
    }

    /// The operation's verb within its family (`move`, `create`, …).
    pub fn verb(&self) -> &'static str {
        match self {
            Self::Address(r) => r.verb(),
            Self::Interface(r) => r.verb(),
            Self::SecurityGroup(r) => r.verb(),
            Self::KeyPair(r) => r.verb(),
            Self::Volume(r) => r.verb(),
            Self::Snapshot(r) => r.verb(),
            Self::Image(r) => r.verb(),
        }
    }

    /// The console path of this operation, `{family}/{verb}`.
    pub fn path(&self) -> String {
        format!("{}/{}", self.family().path(), self.verb())
    }

    /// The EC2 action the request is known by (its first call), e.g. `ec2:AssociateAddress`
    /// for an address move.
    pub fn action(&self) -> String {
        match self {
            Self::Address(r) => r.action(),
            Self::Interface(r) => r.action(),
            Self::SecurityGroup(r) => r.action(),
            Self::KeyPair(r) => r.action(),
            Self::Volume(r) => r.action(),
            Self::Snapshot(r) => r.action(),
            Self::Image(r) => r.action(),
        }
    }

    /// The region a snapshot copy goes to: EC2 copies from the destination's side, so that
    /// call is made with a client of that region.
    pub fn copy_destination(&self) -> Option<&str> {
        match self {
            Self::Snapshot(r) => r.destination_region(),
            _ => None,
        }
    }

    /// Whether the operation runs the same without looking its resources up first: its run
    /// reads nothing of them (an address moved, associated or released is acted on by id, and
    /// EC2 refuses one that does not exist). Such a request needs the look-up only when the
    /// caller's policies read the resources' tags or attributes.
    pub fn runs_without_facts(&self) -> bool {
        use crate::address::AddressRequest as A;
        matches!(
            self,
            Self::Address(A::Associate(_) | A::Move(_) | A::Release(_))
        )
    }

    /// The JSON body of this request.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// The tags the request applies on creation (empty for requests that create nothing).
    pub fn tags(&self) -> &[Tag] {
        match self {
            Self::Address(r) => r.tags(),
            Self::Interface(r) => r.tags(),
            Self::SecurityGroup(r) => r.tags(),
            Self::KeyPair(r) => r.tags(),
            Self::Volume(r) => r.tags(),
            Self::Snapshot(r) => r.tags(),
            Self::Image(r) => r.tags(),
        }
    }

    /// Checks every field as EC2 would, before any call, and puts rules in canonical form.
    /// Tags are checked by EC2's limits; callers add their own reserved-prefix rules.
    pub fn validate(&mut self) -> Checked {
        validate::tags("tags", self.tags(), 0)?;
        match self {
            Self::Address(r) => r.validate(),
            Self::Interface(r) => r.validate(),
            Self::SecurityGroup(r) => r.validate(),
            Self::KeyPair(r) => r.validate(),
            Self::Volume(r) => r.validate(),
            Self::Snapshot(r) => r.validate(),
            Self::Image(r) => r.validate(),
        }
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
        let path = r.path();
        let (family, verb) = path.split_once('/').unwrap();
        assert!(FleetFamily::from_path(family).is_some());
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
