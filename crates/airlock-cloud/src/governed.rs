//! Every EC2 call of one account and region through its [`Budget`]: wait for a turn, call,
//! record the call's metrics, and when EC2 still answers "too many requests" (after the SDK's
//! own retries) slow the budget down and try again, for as long as [`PATIENCE`] allows. A
//! throttle reaches a caller only when the budget gives up.

use crate::budget::Budget;
use crate::calls::{self, Outcome};
use crate::*;
use async_trait::async_trait;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one call keeps retrying throttled answers before the throttle is its answer.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// One call through a budget: what it is, for its metrics, and how long it may keep trying.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a, T> {
    /// The AWS service, e.g. `ec2`.
    pub service: &'static str,
    /// The API action, e.g. `DescribeInstances`.
    pub action: &'a str,
    /// How long throttled answers are tried again ([`PATIENCE`] for EC2's clients).
    pub patience: Duration,
    /// How an answer ended ([`Outcome::of`] unless errors come back as answers).
    pub classify: fn(&Result<T, CloudError>) -> Outcome,
}

impl<'a, T> Call<'a, T> {
    /// An EC2 action whose errors are errors.
    pub fn ec2(action: &'a str) -> Call<'a, T> {
        Call {
            service: "ec2",
            action,
            patience: PATIENCE,
            classify: Outcome::of,
        }
    }
}

/// Calls `attempt` in turns of `budget` until it is answered with something other than a
/// throttle, or the next turn would come after the call's patience.
pub async fn call<T, F, Fut>(
    budget: &Budget,
    call: Call<'_, T>,
    mut attempt: F,
) -> Result<T, CloudError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CloudError>>,
{
    let give_up_at = Instant::now() + call.patience;
    take_turn(budget, None).await;
    loop {
        let started = Instant::now();
        let result = attempt().await;
        let outcome = (call.classify)(&result);
        calls::record(call.service, call.action, outcome, started.elapsed());
        match outcome {
            Outcome::Ok => budget.succeeded(),
            Outcome::Throttled => {
                budget.throttled();
                if take_turn(budget, Some(give_up_at)).await {
                    continue;
                }
                metrics::counter!("airlock_ec2_budget_gave_up_total").increment(1);
            }
            _ => {}
        }
        return result;
    }
}

/// An EC2 client whose every call goes through [`call`] with one budget: the client the
/// console uses for an account and region.
pub struct Governed {
    inner: Arc<dyn Ec2>,
    budget: Arc<Budget>,
}

impl Governed {
    /// `inner`'s calls, governed by `budget`.
    pub fn new(inner: Arc<dyn Ec2>, budget: Arc<Budget>) -> Governed {
        Governed { inner, budget }
    }

    async fn call<T, Fut>(
        &self,
        action: &str,
        attempt: impl FnMut() -> Fut,
    ) -> Result<T, CloudError>
    where
        Fut: Future<Output = Result<T, CloudError>>,
    {
        call(&self.budget, Call::ec2(action), attempt).await
    }
}

#[async_trait]
impl Ec2 for Governed {
    async fn run_instances(&self, input: &RunInstancesInput) -> Result<Launched, CloudError> {
        self.call("RunInstances", || self.inner.run_instances(input))
            .await
    }

    async fn describe_instances(
        &self,
        filters: &[Filter],
        instance_ids: &[String],
    ) -> Result<Vec<Instance>, CloudError> {
        self.call("DescribeInstances", || {
            self.inner.describe_instances(filters, instance_ids)
        })
        .await
    }

    async fn change_state(
        &self,
        action: StateAction,
        instance_ids: &[String],
    ) -> Result<RequestId, CloudError> {
        self.call(action.api_name(), || {
            self.inner.change_state(action, instance_ids)
        })
        .await
    }

    async fn describe_volumes(&self, filters: &[Filter]) -> Result<Vec<Volume>, CloudError> {
        self.call("DescribeVolumes", || self.inner.describe_volumes(filters))
            .await
    }

    async fn create_tags(
        &self,
        resource_ids: &[String],
        tags: &[Tag],
    ) -> Result<RequestId, CloudError> {
        self.call("CreateTags", || self.inner.create_tags(resource_ids, tags))
            .await
    }

    async fn delete_tags(
        &self,
        resource_ids: &[String],
        tags: &[Tag],
    ) -> Result<RequestId, CloudError> {
        self.call("DeleteTags", || self.inner.delete_tags(resource_ids, tags))
            .await
    }

    async fn describe_tags(
        &self,
        resource_ids: &[String],
    ) -> Result<Vec<(String, Tag)>, CloudError> {
        self.call("DescribeTags", || self.inner.describe_tags(resource_ids))
            .await
    }

    async fn describe_user_data(&self, instance_id: &str) -> Result<Option<Vec<u8>>, CloudError> {
        self.call("DescribeInstanceAttribute", || {
            self.inner.describe_user_data(instance_id)
        })
        .await
    }

    async fn attach_volume(
        &self,
        volume_id: &str,
        instance_id: &str,
        device: &str,
    ) -> Result<RequestId, CloudError> {
        self.call("AttachVolume", || {
            self.inner.attach_volume(volume_id, instance_id, device)
        })
        .await
    }

    async fn detach_volume(
        &self,
        volume_id: &str,
        instance_id: Option<&str>,
        force: bool,
    ) -> Result<RequestId, CloudError> {
        self.call("DetachVolume", || {
            self.inner.detach_volume(volume_id, instance_id, force)
        })
        .await
    }

    async fn create_volume(&self, input: &CreateVolumeInput) -> Result<Volume, CloudError> {
        self.call("CreateVolume", || self.inner.create_volume(input))
            .await
    }

    async fn delete_volume(&self, volume_id: &str) -> Result<RequestId, CloudError> {
        self.call("DeleteVolume", || self.inner.delete_volume(volume_id))
            .await
    }

    async fn associate_address(
        &self,
        allocation_id: &str,
        target: &AddressTarget,
        allow_reassociation: bool,
    ) -> Result<Option<String>, CloudError> {
        self.call("AssociateAddress", || {
            self.inner
                .associate_address(allocation_id, target, allow_reassociation)
        })
        .await
    }

    async fn describe_addresses(&self, filters: &[Filter]) -> Result<Vec<Address>, CloudError> {
        self.call("DescribeAddresses", || {
            self.inner.describe_addresses(filters)
        })
        .await
    }

    async fn allocate_address(&self, tags: &[Tag]) -> Result<Address, CloudError> {
        self.call("AllocateAddress", || self.inner.allocate_address(tags))
            .await
    }

    async fn disassociate_address(&self, association_id: &str) -> Result<RequestId, CloudError> {
        self.call("DisassociateAddress", || {
            self.inner.disassociate_address(association_id)
        })
        .await
    }

    async fn release_address(&self, allocation_id: &str) -> Result<RequestId, CloudError> {
        self.call("ReleaseAddress", || {
            self.inner.release_address(allocation_id)
        })
        .await
    }

    async fn create_network_interface(
        &self,
        input: &CreateNetworkInterfaceInput,
    ) -> Result<NetworkInterface, CloudError> {
        self.call("CreateNetworkInterface", || {
            self.inner.create_network_interface(input)
        })
        .await
    }

    async fn describe_network_interfaces(
        &self,
        filters: &[Filter],
        ids: &[String],
    ) -> Result<Vec<NetworkInterface>, CloudError> {
        self.call("DescribeNetworkInterfaces", || {
            self.inner.describe_network_interfaces(filters, ids)
        })
        .await
    }

    async fn attach_network_interface(
        &self,
        network_interface_id: &str,
        instance_id: &str,
        device_index: i32,
    ) -> Result<Option<String>, CloudError> {
        self.call("AttachNetworkInterface", || {
            self.inner
                .attach_network_interface(network_interface_id, instance_id, device_index)
        })
        .await
    }

    async fn detach_network_interface(
        &self,
        attachment_id: &str,
        force: bool,
    ) -> Result<RequestId, CloudError> {
        self.call("DetachNetworkInterface", || {
            self.inner.detach_network_interface(attachment_id, force)
        })
        .await
    }

    async fn delete_network_interface(
        &self,
        network_interface_id: &str,
    ) -> Result<RequestId, CloudError> {
        self.call("DeleteNetworkInterface", || {
            self.inner.delete_network_interface(network_interface_id)
        })
        .await
    }

    async fn create_security_group(
        &self,
        input: &CreateSecurityGroupInput,
    ) -> Result<String, CloudError> {
        self.call("CreateSecurityGroup", || {
            self.inner.create_security_group(input)
        })
        .await
    }

    async fn describe_subnets(&self, filters: &[Filter]) -> Result<Vec<Subnet>, CloudError> {
        self.call("DescribeSubnets", || self.inner.describe_subnets(filters))
            .await
    }

    async fn describe_security_groups(
        &self,
        filters: &[Filter],
        ids: &[String],
    ) -> Result<Vec<SecurityGroup>, CloudError> {
        self.call("DescribeSecurityGroups", || {
            self.inner.describe_security_groups(filters, ids)
        })
        .await
    }

    async fn authorize_security_group(
        &self,
        direction: Direction,
        group_id: &str,
        rules: &[SecurityGroupRule],
    ) -> Result<RequestId, CloudError> {
        self.call(
            &format!("AuthorizeSecurityGroup{}", direction.api_name()),
            || {
                self.inner
                    .authorize_security_group(direction, group_id, rules)
            },
        )
        .await
    }

    async fn revoke_security_group(
        &self,
        direction: Direction,
        group_id: &str,
        rules: &[SecurityGroupRule],
    ) -> Result<RequestId, CloudError> {
        self.call(
            &format!("RevokeSecurityGroup{}", direction.api_name()),
            || self.inner.revoke_security_group(direction, group_id, rules),
        )
        .await
    }

    async fn delete_security_group(&self, group_id: &str) -> Result<RequestId, CloudError> {
        self.call("DeleteSecurityGroup", || {
            self.inner.delete_security_group(group_id)
        })
        .await
    }

    async fn create_key_pair(
        &self,
        key_name: &str,
        key_type: &str,
        tags: &[Tag],
    ) -> Result<NewKeyPair, CloudError> {
        self.call("CreateKeyPair", || {
            self.inner.create_key_pair(key_name, key_type, tags)
        })
        .await
    }

    async fn import_key_pair(
        &self,
        key_name: &str,
        public_key: &str,
        tags: &[Tag],
    ) -> Result<KeyPair, CloudError> {
        self.call("ImportKeyPair", || {
            self.inner.import_key_pair(key_name, public_key, tags)
        })
        .await
    }

    async fn describe_key_pairs(
        &self,
        filters: &[Filter],
        names: &[String],
    ) -> Result<Vec<KeyPair>, CloudError> {
        self.call("DescribeKeyPairs", || {
            self.inner.describe_key_pairs(filters, names)
        })
        .await
    }

    async fn delete_key_pair(&self, key_name: &str) -> Result<RequestId, CloudError> {
        self.call("DeleteKeyPair", || self.inner.delete_key_pair(key_name))
            .await
    }

    async fn create_snapshot(
        &self,
        volume_id: &str,
        description: Option<&str>,
        tags: &[Tag],
    ) -> Result<Snapshot, CloudError> {
        self.call("CreateSnapshot", || {
            self.inner.create_snapshot(volume_id, description, tags)
        })
        .await
    }

    async fn describe_snapshots(
        &self,
        filters: &[Filter],
        ids: &[String],
    ) -> Result<Vec<Snapshot>, CloudError> {
        self.call("DescribeSnapshots", || {
            self.inner.describe_snapshots(filters, ids)
        })
        .await
    }

    async fn delete_snapshot(&self, snapshot_id: &str) -> Result<RequestId, CloudError> {
        self.call("DeleteSnapshot", || self.inner.delete_snapshot(snapshot_id))
            .await
    }

    async fn copy_snapshot(
        &self,
        source_region: &str,
        source_snapshot_id: &str,
        description: Option<&str>,
        tags: &[Tag],
    ) -> Result<String, CloudError> {
        self.call("CopySnapshot", || {
            self.inner
                .copy_snapshot(source_region, source_snapshot_id, description, tags)
        })
        .await
    }

    async fn create_image(&self, input: &CreateImageInput) -> Result<String, CloudError> {
        self.call("CreateImage", || self.inner.create_image(input))
            .await
    }

    async fn describe_images(
        &self,
        filters: &[Filter],
        ids: &[String],
    ) -> Result<Vec<Image>, CloudError> {
        self.call("DescribeImages", || {
            self.inner.describe_images(filters, ids)
        })
        .await
    }

    async fn deregister_image(&self, image_id: &str) -> Result<RequestId, CloudError> {
        self.call("DeregisterImage", || self.inner.deregister_image(image_id))
            .await
    }

    async fn describe_instance_status(
        &self,
        instance_ids: &[String],
    ) -> Result<Vec<InstanceStatus>, CloudError> {
        self.call("DescribeInstanceStatus", || {
            self.inner.describe_instance_status(instance_ids)
        })
        .await
    }
}

/// Waits for the budget's next turn. With a deadline the turn is given back, and the wait
/// skipped, when it would end after the deadline; returns whether a turn was taken.
async fn take_turn(budget: &Budget, deadline: Option<Instant>) -> bool {
    let wait = budget.reserve();
    if deadline.is_some_and(|at| Instant::now() + wait > at) {
        budget.refund();
        return false;
    }
    if wait.is_zero() {
        return true;
    }
    let waiting = Waiting::new(budget);
    tokio::time::sleep(wait).await;
    waiting.done();
    metrics::histogram!("airlock_ec2_budget_wait_seconds").record(wait.as_secs_f64());
    true
}

/// A caller waiting for its turn: counted in `airlock_ec2_budget_waiters`; if it goes away
/// before its turn, the turn is given back.
struct Waiting<'a> {
    budget: Option<&'a Budget>,
}

impl<'a> Waiting<'a> {
    fn new(budget: &'a Budget) -> Waiting<'a> {
        metrics::gauge!("airlock_ec2_budget_waiters").increment(1.0);
        Waiting {
            budget: Some(budget),
        }
    }

    fn done(mut self) {
        self.budget = None;
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        metrics::gauge!("airlock_ec2_budget_waiters").decrement(1.0);
        if let Some(budget) = self.budget {
            budget.refund();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BudgetSettings;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn throttle() -> CloudError {
        CloudError {
            code: Some("RequestLimitExceeded".into()),
            message: "Request limit exceeded.".into(),
            request_id: None,
            retryable: true,
        }
    }

    fn fast() -> Budget {
        Budget::new(BudgetSettings {
            rate: 200.0,
            burst: 1,
        })
    }

    /// A call answered with a throttle `throttles` times, then with its attempt number.
    async fn throttled_then_ok(
        budget: &Budget,
        patience: Duration,
        throttles: usize,
    ) -> (Result<usize, CloudError>, usize) {
        let attempts = AtomicUsize::new(0);
        let what = Call {
            patience,
            ..Call::ec2("DescribeInstances")
        };
        let result = call(budget, what, || async {
            let n = attempts.fetch_add(1, Ordering::SeqCst);
            if n < throttles {
                Err(throttle())
            } else {
                Ok(n)
            }
        })
        .await;
        (result, attempts.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn a_throttled_call_is_tried_again_and_succeeds() {
        let budget = fast();
        let (result, attempts) = throttled_then_ok(&budget, PATIENCE, 3).await;
        assert_eq!(result.unwrap(), 3);
        assert_eq!(attempts, 4);
        assert!(budget.rate() < 200.0, "the budget slowed down");
    }

    #[tokio::test]
    async fn the_throttle_is_the_answer_once_patience_runs_out() {
        let budget = fast();
        let (result, attempts) =
            throttled_then_ok(&budget, Duration::from_millis(300), usize::MAX).await;
        assert_eq!(
            result.unwrap_err().code.as_deref(),
            Some("RequestLimitExceeded")
        );
        assert!(attempts > 1, "tried again before giving up");
    }

    #[tokio::test]
    async fn other_errors_are_answered_at_once() {
        let budget = fast();
        let attempts = AtomicUsize::new(0);
        let result: Result<(), _> = call(&budget, Call::ec2("RunInstances"), || async {
            attempts.fetch_add(1, Ordering::SeqCst);
            Err(CloudError::local("InvalidAMIID.NotFound"))
        })
        .await;
        assert!(result.is_err());
        assert_eq!(attempts.load(Ordering::SeqCst), 1);
    }
}
