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
}

/// The EC2 operations the console performs.
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
}
