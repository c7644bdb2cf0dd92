//! The EC2 and STS operations Airlock needs, described as plain data and one trait.
//!
//! The console, the agent and the gateway depend on this crate only; the AWS SDK for Rust lives
//! behind [`Cloud`] in `airlock-aws`, so everything else builds and tests without compiling it.

#![warn(missing_docs)]

mod arn;
pub mod budget;
pub mod calls;
pub mod coalesce;
mod error;
mod fleet;
pub mod governed;
mod query;
mod types;

pub use arn::{arn, Scope};
pub use budget::{Budget, BudgetSettings};
pub use coalesce::Coalescer;
pub use error::CloudError;
pub use fleet::*;
pub use governed::Governed;
pub use query::{AnswerBody, QueryAnswer};
pub use types::*;

use async_trait::async_trait;
use std::sync::Arc;

/// Opens EC2 sessions for a [`Target`] and answers STS questions about it.
#[async_trait]
pub trait Cloud: Send + Sync {
    /// STS `GetCallerIdentity`: proves the credentials work and says whose they are.
    async fn caller_identity(&self, target: &Target) -> Result<CallerIdentity, CloudError>;

    /// An EC2 client for the target's region, endpoint and credentials.
    async fn ec2(&self, target: &Target) -> Result<Arc<dyn Ec2>, CloudError>;

    /// STS `GetSessionToken` (or `AssumeRole` when the target names a role): temporary
    /// credentials for `duration_seconds`, e.g. for the agent to hand local programs a session
    /// token instead of a long-term key.
    async fn session_credentials(
        &self,
        target: &Target,
        duration_seconds: u32,
    ) -> Result<SessionCredentials, CloudError>;

    /// Temporary credentials limited by a session policy, from the target's own key (never
    /// through the role the console itself assumes): `AssumeRole` of `target.role_arn` with
    /// `Policy`, or `GetFederationToken` when the target names no role.
    async fn scoped_credentials(
        &self,
        target: &Target,
        request: &ScopedSessionRequest,
    ) -> Result<SessionCredentials, CloudError>;

    /// IAM `ListAccessKeys` for the user that owns the target's key.
    async fn list_access_keys(&self, target: &Target)
        -> Result<Vec<AccessKeyMetadata>, CloudError>;

    /// IAM `CreateAccessKey` for the user that owns the target's key (IAM allows two per user).
    async fn create_access_key(&self, target: &Target) -> Result<NewAccessKey, CloudError>;

    /// IAM `DeleteAccessKey` of one of the target user's keys.
    async fn delete_access_key(
        &self,
        target: &Target,
        access_key_id: &str,
    ) -> Result<(), CloudError>;

    /// Credentials from the standard AWS chain, resolved now (environment, shared files, web
    /// identity, container and instance metadata): for callers without a key of their own,
    /// such as a gateway listing with the instance's role.
    async fn default_credentials(&self) -> Result<AccessKey, CloudError>;

    /// An EC2 Query API request (`form`, already decided) signed with the target's credentials
    /// for its region and sent to EC2; the answer is returned as EC2 gave it, errors included.
    async fn ec2_query(&self, target: &Target, form: String) -> Result<QueryAnswer, CloudError>;
}

/// The EC2 operations the console and the agent perform.
#[async_trait]
pub trait Ec2: Send + Sync {
    /// `RunInstances` with tags on creation, a client token and IMDSv2 required.
    async fn run_instances(&self, input: &RunInstancesInput) -> Result<Launched, CloudError>;

    /// `DescribeInstances`, every page, by filters and/or ids.
    async fn describe_instances(
        &self,
        filters: &[Filter],
        instance_ids: &[String],
    ) -> Result<Vec<Instance>, CloudError>;

    /// `StartInstances`, `StopInstances`, `RebootInstances` or `TerminateInstances`.
    async fn change_state(
        &self,
        action: StateAction,
        instance_ids: &[String],
    ) -> Result<RequestId, CloudError>;

    /// `DescribeVolumes` by filters.
    async fn describe_volumes(&self, filters: &[Filter]) -> Result<Vec<Volume>, CloudError>;

    /// `CreateTags` on resources (instances, volumes, ...): adds tags or overwrites their values.
    async fn create_tags(
        &self,
        resource_ids: &[String],
        tags: &[Tag],
    ) -> Result<RequestId, CloudError>;

    /// `DeleteTags`: removes tags from resources; a tag whose value is `""` is removed whatever
    /// its value.
    async fn delete_tags(
        &self,
        resource_ids: &[String],
        tags: &[Tag],
    ) -> Result<RequestId, CloudError>;

    /// `DescribeTags`, every page, filtered by `resource-id`: each tag with its resource's id.
    async fn describe_tags(
        &self,
        resource_ids: &[String],
    ) -> Result<Vec<(String, Tag)>, CloudError>;

    /// `DescribeInstanceAttribute` `userData`, base64-decoded; `None` when the instance has none.
    async fn describe_user_data(&self, instance_id: &str) -> Result<Option<Vec<u8>>, CloudError>;

    /// `AttachVolume`: attaches a volume to an instance at a device name such as `/dev/sdf`.
    async fn attach_volume(
        &self,
        volume_id: &str,
        instance_id: &str,
        device: &str,
    ) -> Result<RequestId, CloudError>;

    /// `DetachVolume`, from `instance_id` when given; `force` skips the file system's clean
    /// unmount.
    async fn detach_volume(
        &self,
        volume_id: &str,
        instance_id: Option<&str>,
        force: bool,
    ) -> Result<RequestId, CloudError>;

    /// `CreateVolume` with tags on creation.
    async fn create_volume(&self, input: &CreateVolumeInput) -> Result<Volume, CloudError>;

    /// `DeleteVolume`.
    async fn delete_volume(&self, volume_id: &str) -> Result<RequestId, CloudError>;

    /// `AssociateAddress`: puts an Elastic IP (by allocation id) on an instance or network
    /// interface. With `allow_reassociation` an address already associated elsewhere moves in
    /// the same call, never left unassociated in between. Returns the association id.
    async fn associate_address(
        &self,
        allocation_id: &str,
        target: &AddressTarget,
        allow_reassociation: bool,
    ) -> Result<Option<String>, CloudError>;

    /// `DescribeAddresses` by filters (e.g. `tag:Role`, `allocation-id`).
    async fn describe_addresses(&self, filters: &[Filter]) -> Result<Vec<Address>, CloudError>;

    /// `AllocateAddress` in the VPC domain, with tags on creation.
    async fn allocate_address(&self, tags: &[Tag]) -> Result<Address, CloudError>;

    /// `DisassociateAddress` of one association.
    async fn disassociate_address(&self, association_id: &str) -> Result<RequestId, CloudError>;

    /// `ReleaseAddress` of an allocation.
    async fn release_address(&self, allocation_id: &str) -> Result<RequestId, CloudError>;

    /// `CreateNetworkInterface` with tags on creation.
    async fn create_network_interface(
        &self,
        input: &CreateNetworkInterfaceInput,
    ) -> Result<NetworkInterface, CloudError>;

    /// `DescribeNetworkInterfaces`, every page, by filters and/or ids.
    async fn describe_network_interfaces(
        &self,
        filters: &[Filter],
        ids: &[String],
    ) -> Result<Vec<NetworkInterface>, CloudError>;

    /// `AttachNetworkInterface` at a device index. Returns the attachment id.
    async fn attach_network_interface(
        &self,
        network_interface_id: &str,
        instance_id: &str,
        device_index: i32,
    ) -> Result<Option<String>, CloudError>;

    /// `DetachNetworkInterface` of one attachment.
    async fn detach_network_interface(
        &self,
        attachment_id: &str,
        force: bool,
    ) -> Result<RequestId, CloudError>;

    /// `DeleteNetworkInterface`.
    async fn delete_network_interface(
        &self,
        network_interface_id: &str,
    ) -> Result<RequestId, CloudError>;

    /// `CreateSecurityGroup` with tags on creation. Returns the group id.
    async fn create_security_group(
        &self,
        input: &CreateSecurityGroupInput,
    ) -> Result<String, CloudError>;

    /// `DescribeSubnets`, every page, by filters.
    async fn describe_subnets(&self, filters: &[Filter]) -> Result<Vec<Subnet>, CloudError>;

    /// `DescribeSecurityGroups`, every page, by filters and/or ids.
    async fn describe_security_groups(
        &self,
        filters: &[Filter],
        ids: &[String],
    ) -> Result<Vec<SecurityGroup>, CloudError>;

    /// `AuthorizeSecurityGroupIngress` or `AuthorizeSecurityGroupEgress`.
    async fn authorize_security_group(
        &self,
        direction: Direction,
        group_id: &str,
        rules: &[SecurityGroupRule],
    ) -> Result<RequestId, CloudError>;

    /// `RevokeSecurityGroupIngress` or `RevokeSecurityGroupEgress`.
    async fn revoke_security_group(
        &self,
        direction: Direction,
        group_id: &str,
        rules: &[SecurityGroupRule],
    ) -> Result<RequestId, CloudError>;

    /// `DeleteSecurityGroup`.
    async fn delete_security_group(&self, group_id: &str) -> Result<RequestId, CloudError>;

    /// `CreateKeyPair` (`rsa` or `ed25519`) with tags on creation: the private key comes back
    /// this once.
    async fn create_key_pair(
        &self,
        key_name: &str,
        key_type: &str,
        tags: &[Tag],
    ) -> Result<NewKeyPair, CloudError>;

    /// `ImportKeyPair` of a public key (OpenSSH format), with tags on creation.
    async fn import_key_pair(
        &self,
        key_name: &str,
        public_key: &str,
        tags: &[Tag],
    ) -> Result<KeyPair, CloudError>;

    /// `DescribeKeyPairs` by filters and/or names.
    async fn describe_key_pairs(
        &self,
        filters: &[Filter],
        names: &[String],
    ) -> Result<Vec<KeyPair>, CloudError>;

    /// `DeleteKeyPair` by name.
    async fn delete_key_pair(&self, key_name: &str) -> Result<RequestId, CloudError>;

    /// `CreateSnapshot` with tags on creation (`TagSpecifications`: both or neither).
    async fn create_snapshot(
        &self,
        volume_id: &str,
        description: Option<&str>,
        tags: &[Tag],
    ) -> Result<Snapshot, CloudError>;

    /// `DescribeSnapshots` owned by this account, every page, by filters and/or ids.
    async fn describe_snapshots(
        &self,
        filters: &[Filter],
        ids: &[String],
    ) -> Result<Vec<Snapshot>, CloudError>;

    /// `DeleteSnapshot`.
    async fn delete_snapshot(&self, snapshot_id: &str) -> Result<RequestId, CloudError>;

    /// `CopySnapshot` into this client's region from `source_region`, with tags on creation.
    /// Returns the new snapshot's id.
    async fn copy_snapshot(
        &self,
        source_region: &str,
        source_snapshot_id: &str,
        description: Option<&str>,
        tags: &[Tag],
    ) -> Result<String, CloudError>;

    /// `CreateImage` with the image tagged on creation. Returns the image id.
    async fn create_image(&self, input: &CreateImageInput) -> Result<String, CloudError>;

    /// `DescribeImages` owned by this account, by filters and/or ids.
    async fn describe_images(
        &self,
        filters: &[Filter],
        ids: &[String],
    ) -> Result<Vec<Image>, CloudError>;

    /// `DeregisterImage`.
    async fn deregister_image(&self, image_id: &str) -> Result<RequestId, CloudError>;

    /// `DescribeInstanceStatus` of these instances (every state, not only running), every page.
    async fn describe_instance_status(
        &self,
        instance_ids: &[String],
    ) -> Result<Vec<InstanceStatus>, CloudError>;
}
