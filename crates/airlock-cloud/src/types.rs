//! Plain data for EC2 requests and answers, in EC2's own vocabulary.

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// An AWS access key, held so that the secret half never prints.
#[derive(Clone, Debug)]
pub struct AccessKey {
    /// The public half, e.g. `AKIA…`; safe to show.
    pub access_key_id: String,
    /// The secret half.
    pub secret_access_key: SecretString,
    /// Present for temporary credentials.
    pub session_token: Option<SecretString>,
}

/// Where and as whom to call AWS: a region, an optional endpoint and credentials.
#[derive(Clone, Debug)]
pub struct Target {
    /// The AWS region, e.g. `us-east-1`.
    pub region: String,
    /// An EC2/STS-compatible endpoint instead of AWS's own (tests use a local one).
    pub endpoint_url: Option<String>,
    /// The stored access key.
    pub credentials: AccessKey,
    /// A role to assume with the access key before every call.
    pub role_arn: Option<String>,
    /// The external id the role's trust policy asks for.
    pub external_id: Option<String>,
}

/// What STS `GetCallerIdentity` says of the credentials.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CallerIdentity {
    /// The 12-digit account id.
    pub account: String,
    /// The caller's ARN.
    pub arn: String,
    /// The caller's unique id.
    pub user_id: String,
}

/// An EC2 resource tag.
#[derive(
    Clone, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash, utoipa::ToSchema,
)]
pub struct Tag {
    /// The tag key (case-sensitive).
    pub key: String,
    /// The tag value (case-sensitive).
    pub value: String,
}

impl Tag {
    /// A tag from key and value.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Tag {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// An EC2 `Filter`: a name such as `tag:Team` or `instance-state-name` and the values it accepts.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct Filter {
    /// The filter name.
    pub name: String,
    /// Any one of these values matches.
    pub values: Vec<String>,
}

impl Filter {
    /// A filter with one value.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Filter {
            name: name.into(),
            values: vec![value.into()],
        }
    }
}

/// Everything `RunInstances` needs for one launch.
#[derive(Clone, Debug)]
pub struct RunInstancesInput {
    /// The AMI id.
    pub image_id: String,
    /// The instance type, e.g. `t3.micro`.
    pub instance_type: String,
    /// How many instances (both MinCount and MaxCount, so the launch is all or nothing).
    pub count: u32,
    /// The subnet to launch into.
    pub subnet_id: Option<String>,
    /// Security group ids.
    pub security_group_ids: Vec<String>,
    /// The key pair name.
    pub key_name: Option<String>,
    /// Tags applied on creation to the instances and their volumes.
    pub tags: Vec<Tag>,
    /// Raw user data (base64-encoded by the adapter).
    pub user_data: Vec<u8>,
    /// Idempotency token: EC2 launches once per token.
    pub client_token: String,
    /// IMDSv2 response hop limit: 1, or 2 for containers.
    pub metadata_hop_limit: u8,
    /// Where EC2 puts them.
    pub placement: Placement,
}

/// Where EC2 puts a launch's instances (`Placement` of `RunInstances`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Placement {
    /// The Availability Zone (without a subnet: its default subnet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    /// Shared or dedicated hardware.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenancy: Option<Tenancy>,
    /// The placement group's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_name: Option<String>,
}

/// Whether instances share hardware with other accounts' (`ec2:Tenancy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Tenancy {
    /// Shared hardware.
    Default,
    /// Hardware dedicated to this account.
    Dedicated,
}

impl Tenancy {
    /// EC2's word, as `ec2:Tenancy` carries it.
    pub fn as_str(self) -> &'static str {
        match self {
            Tenancy::Default => "default",
            Tenancy::Dedicated => "dedicated",
        }
    }
}

/// What a `RunInstances` call returned.
#[derive(Clone, Debug)]
pub struct Launched {
    /// The new instances.
    pub instances: Vec<Instance>,
    /// AWS's request id.
    pub request_id: Option<String>,
}

/// An AWS request id, when AWS returned one.
pub type RequestId = Option<String>;

/// An instance as `DescribeInstances` reports it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Instance {
    /// e.g. `i-0123456789abcdef0`.
    pub instance_id: String,
    /// The AMI it was started from.
    pub image_id: Option<String>,
    /// The instance type.
    pub instance_type: Option<String>,
    /// `pending`, `running`, `stopping`, `stopped`, `shutting-down` or `terminated`.
    pub state: String,
    /// The private IPv4 address.
    pub private_ip: Option<String>,
    /// The public IPv4 address.
    pub public_ip: Option<String>,
    /// The subnet.
    pub subnet_id: Option<String>,
    /// The VPC.
    pub vpc_id: Option<String>,
    /// When it was launched.
    pub launch_time: Option<DateTime<Utc>>,
    /// Its tags.
    pub tags: Vec<Tag>,
    /// Its Availability Zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    /// The device name of its root volume, e.g. `/dev/xvda`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_device_name: Option<String>,
}

impl Instance {
    /// The value of a tag, if the instance has it.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|t| t.key == key)
            .map(|t| t.value.as_str())
    }
}

/// An EBS volume as `DescribeVolumes` reports it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Volume {
    /// e.g. `vol-0123…`.
    pub volume_id: String,
    /// The instances it is attached to.
    pub attached_to: Vec<String>,
    /// Its tags.
    pub tags: Vec<Tag>,
    /// `creating`, `available`, `in-use`, `deleting`, `deleted` or `error`.
    #[serde(default)]
    pub state: Option<String>,
    /// The availability zone it lives in (it can attach only to instances there).
    #[serde(default)]
    pub availability_zone: Option<String>,
    /// Size in GiB.
    #[serde(default)]
    pub size_gib: Option<i32>,
    /// `gp3`, `gp2`, `io1`, `io2`, `st1`, `sc1` or `standard`.
    #[serde(default)]
    pub volume_type: Option<String>,
    /// Provisioned IOPS.
    #[serde(default)]
    pub iops: Option<i32>,
    /// Whether it is encrypted.
    #[serde(default)]
    pub encrypted: Option<bool>,
    /// The snapshot it was restored from.
    #[serde(default)]
    pub snapshot_id: Option<String>,
    /// Its attachments: instance and device name.
    #[serde(default)]
    pub attachments: Vec<VolumeAttachment>,
}

/// A volume's attachment to an instance.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct VolumeAttachment {
    /// The instance.
    pub instance_id: String,
    /// The device name, e.g. `/dev/sdf`.
    pub device: Option<String>,
    /// `attaching`, `attached`, `detaching` or `detached`.
    pub state: Option<String>,
}

/// An Elastic IP address as `DescribeAddresses` reports it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Address {
    /// e.g. `eipalloc-0123…`.
    pub allocation_id: Option<String>,
    /// The public IPv4 address.
    pub public_ip: Option<String>,
    /// The instance it is associated with.
    pub instance_id: Option<String>,
    /// The current association, if any.
    pub association_id: Option<String>,
    /// The network interface it is associated with.
    #[serde(default)]
    pub network_interface_id: Option<String>,
    /// The private address it maps to.
    #[serde(default)]
    pub private_ip: Option<String>,
    /// Its tags.
    pub tags: Vec<Tag>,
}

/// Temporary credentials from STS, and when they expire.
#[derive(Clone, Debug)]
pub struct SessionCredentials {
    /// The temporary key (always with a session token).
    pub key: AccessKey,
    /// When the key stops working.
    pub expiration: DateTime<Utc>,
}

/// The instance state changes the console offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StateAction {
    /// `StartInstances`.
    Start,
    /// `StopInstances`.
    Stop,
    /// `RebootInstances`.
    Reboot,
    /// `TerminateInstances`.
    Terminate,
}

impl StateAction {
    /// The EC2 API action name, as IAM policies spell it after `ec2:`.
    pub fn api_name(self) -> &'static str {
        match self {
            StateAction::Start => "StartInstances",
            StateAction::Stop => "StopInstances",
            StateAction::Reboot => "RebootInstances",
            StateAction::Terminate => "TerminateInstances",
        }
    }
}

/// A request for temporary credentials limited by a session policy: STS `AssumeRole` with
/// `Policy` when the target names a role, `GetFederationToken` otherwise.
#[derive(Clone, Debug)]
pub struct ScopedSessionRequest {
    /// `RoleSessionName` (2–64 characters) or the federated user's `Name` (2–32), in the
    /// character set STS accepts (`[\w+=,.@-]`); shows in CloudTrail.
    pub session_name: String,
    /// The session policy (IAM JSON); the credentials can do at most what it and the base
    /// identity both allow. STS limits its packed size.
    pub policy: String,
    /// Lifetime in seconds (GetFederationToken 900–129600, AssumeRole 900 up to the role's
    /// maximum).
    pub duration_seconds: u32,
}

/// An IAM access key as `ListAccessKeys` describes it (never its secret).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessKeyMetadata {
    /// The access key id.
    pub access_key_id: String,
    /// `Active` or `Inactive`.
    pub status: String,
    /// When IAM created it.
    pub created_at: Option<DateTime<Utc>>,
}

/// A new IAM access key, secret included (shown to nobody: it goes straight into the vault).
#[derive(Clone, Debug)]
pub struct NewAccessKey {
    /// The key.
    pub key: AccessKey,
    /// The IAM user it belongs to.
    pub user_name: String,
    /// When IAM created it.
    pub created_at: Option<DateTime<Utc>>,
}
