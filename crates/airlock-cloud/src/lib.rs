//! The EC2 and STS operations Airlock needs, described as plain data and one trait.
//!
//! The console, the agent and the gateway depend on this crate only; the AWS SDK for Rust lives
//! behind [`Cloud`] in `airlock-aws`, so everything else builds and tests without compiling it.

#![warn(missing_docs)]

mod error;
mod types;

pub use error::CloudError;
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

    /// `AssociateAddress` with `AllowReassociation`: moves an Elastic IP (by allocation id) to an
    /// instance. Returns the association id.
    async fn associate_address(
        &self,
        allocation_id: &str,
        instance_id: &str,
    ) -> Result<Option<String>, CloudError>;

    /// `DescribeAddresses` by filters (e.g. `tag:Role`, `allocation-id`).
    async fn describe_addresses(&self, filters: &[Filter]) -> Result<Vec<Address>, CloudError>;
}
