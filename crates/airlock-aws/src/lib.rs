//! The one place Airlock talks to EC2 and STS: the [`airlock_cloud::Cloud`] trait implemented with
//! the official AWS SDK for Rust.
//!
//! Everything else in the workspace sees only `airlock-cloud`'s plain types, so the heavy SDK is
//! compiled once, here.

#![warn(missing_docs)]

mod convert;
mod query;

use airlock_cloud::{
    AccessKey, AccessKeyMetadata, Address, AddressTarget, Budget, BudgetSettings, CallerIdentity,
    Cloud, CloudError, CreateImageInput, CreateNetworkInterfaceInput, CreateSecurityGroupInput,
    CreateVolumeInput, Direction, Ec2, Filter, Governed, Image, Instance, InstanceStatus, KeyPair,
    Launched, NetworkInterface, NewAccessKey, NewKeyPair, QueryAnswer, RequestId,
    RunInstancesInput, ScopedSessionRequest, SecurityGroup, SecurityGroupRule, SessionCredentials,
    Snapshot, StateAction, Subnet, Tag, Target, Volume,
};
use async_trait::async_trait;
use aws_config::{retry::RetryConfig, timeout::TimeoutConfig, BehaviorVersion, Region, SdkConfig};
use aws_sdk_ec2::config::retry::RetryPartition;
use aws_sdk_ec2::operation::RequestId as _;
use aws_sdk_ec2::primitives::Blob;
use aws_sdk_ec2::types::{
    DomainType, HttpTokensState, InstanceMetadataEndpointState, InstanceMetadataOptionsRequest,
    KeyType, ResourceType, TagSpecification,
};
use base64::Engine;
use secrecy::ExposeSecret;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use convert::{
    address, cloud_error, filters, image, instance, instance_status, ip_permissions, key_pair,
    network_interface, security_group, snapshot, subnet, tag_keys, tags, volume,
};

/// Instances per `DescribeInstances` page (EC2 allows 5 to 1000).
const DESCRIBE_PAGE_SIZE: i32 = 1000;

/// The production [`Cloud`]: SDK clients built per target and reused across calls, every EC2
/// call of one account and region governed by one [`Budget`].
#[derive(Default)]
pub struct AwsCloud {
    clients: Mutex<HashMap<String, Arc<dyn Ec2>>>,
    /// STS clients of targets' own keys: building one loads a configuration and an HTTP
    /// client, which cost more than the call on every deploy that issues scoped credentials.
    sts: Mutex<HashMap<String, aws_sdk_sts::Client>>,
    budgets: Mutex<HashMap<String, Arc<Budget>>>,
    budget: BudgetSettings,
    credentials: query::CredentialCache,
    http: std::sync::OnceLock<reqwest::Client>,
}

impl AwsCloud {
    /// A cloud with no clients yet; they are created on first use per target, with EC2's
    /// default request budget.
    pub fn new() -> Self {
        Self::default()
    }

    /// A cloud whose EC2 budgets have this rate and burst.
    pub fn with_budget(budget: BudgetSettings) -> Self {
        AwsCloud {
            budget,
            ..Self::default()
        }
    }

    /// The STS client of the target's own key (never the role it names), built once.
    async fn sts_of(&self, target: &Target) -> aws_sdk_sts::Client {
        let own = without_role(target);
        let key = cache_key(&own);
        let cached = self
            .sts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        if let Some(client) = cached {
            return client;
        }
        let client = aws_sdk_sts::Client::new(&sdk_config(&own).await);
        self.sts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, client.clone());
        client
    }

    /// The budget of the target's account and region, shared by every client and credential
    /// of it.
    fn budget_of(&self, target: &Target) -> Arc<Budget> {
        let mut budgets = self.budgets.lock().unwrap_or_else(|e| e.into_inner());
        budgets
            .entry(budget_key(target))
            .or_insert_with(|| Arc::new(Budget::new(self.budget)))
            .clone()
    }
}

/// Identifies an account and region as EC2's throttling sees it, without any secret: the
/// budget's key and the SDK's retry partition.
fn budget_key(target: &Target) -> String {
    format!(
        "{}|{}|{}|{}",
        target.region,
        target.endpoint_url.as_deref().unwrap_or(""),
        target.credentials.access_key_id,
        target.role_arn.as_deref().unwrap_or(""),
    )
}

/// Identifies a target without its secret, so changed credentials get a new client.
fn cache_key(target: &Target) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    target
        .credentials
        .secret_access_key
        .expose_secret()
        .hash(&mut h);
    format!(
        "{}|{}|{}|{}|{}|{:x}",
        target.region,
        target.endpoint_url.as_deref().unwrap_or(""),
        target.credentials.access_key_id,
        target.role_arn.as_deref().unwrap_or(""),
        target.external_id.as_deref().unwrap_or(""),
        h.finish()
    )
}

/// SDK configuration for a target: static keys, optional role, explicit timeouts and retries.
pub async fn sdk_config(target: &Target) -> SdkConfig {
    let credentials = aws_credential_types::Credentials::new(
        target.credentials.access_key_id.clone(),
        target
            .credentials
            .secret_access_key
            .expose_secret()
            .to_owned(),
        target
            .credentials
            .session_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned()),
        None,
        "airlock-account",
    );
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(target.region.clone()))
        .credentials_provider(credentials)
        .retry_config(RetryConfig::standard().with_max_attempts(4))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(30))
                .operation_timeout(Duration::from_secs(90))
                .build(),
        );
    if let Some(url) = &target.endpoint_url {
        loader = loader.endpoint_url(url.clone());
    }
    let base = loader.load().await;
    match &target.role_arn {
        None => base,
        Some(role_arn) => {
            let mut role = aws_config::sts::AssumeRoleProvider::builder(role_arn.clone())
                .session_name("airlock-console")
                .configure(&base);
            if let Some(id) = &target.external_id {
                role = role.external_id(id.clone());
            }
            let provider = role.build().await;
            base.into_builder()
                .credentials_provider(
                    aws_credential_types::provider::SharedCredentialsProvider::new(provider),
                )
                .build()
        }
    }
}

#[async_trait]
impl Cloud for AwsCloud {
    async fn caller_identity(&self, target: &Target) -> Result<CallerIdentity, CloudError> {
        let config = sdk_config(target).await;
        let sts = aws_sdk_sts::Client::new(&config);
        let out = sts
            .get_caller_identity()
            .send()
            .await
            .map_err(cloud_error)?;
        Ok(CallerIdentity {
            account: out.account.unwrap_or_default(),
            arn: out.arn.unwrap_or_default(),
            user_id: out.user_id.unwrap_or_default(),
        })
    }

    async fn ec2(&self, target: &Target) -> Result<Arc<dyn Ec2>, CloudError> {
        let key = cache_key(target);
        if let Some(client) = self.lock().get(&key) {
            return Ok(client.clone());
        }
        let config = aws_sdk_ec2::config::Builder::from(&sdk_config(target).await)
            .retry_partition(RetryPartition::new(format!("ec2|{}", budget_key(target))))
            .build();
        let sdk: Arc<dyn Ec2> = Arc::new(AwsEc2 {
            client: aws_sdk_ec2::Client::from_conf(config),
        });
        let client: Arc<dyn Ec2> = Arc::new(Governed::new(sdk, self.budget_of(target)));
        self.lock().insert(key, client.clone());
        Ok(client)
    }

    async fn session_credentials(
        &self,
        target: &Target,
        duration_seconds: u32,
    ) -> Result<SessionCredentials, CloudError> {
        // The base configuration (the target's own key), not the role provider: the role is
        // assumed explicitly so that its temporary key is what comes back.
        let sts = self.sts_of(target).await;
        let duration = seconds(duration_seconds)?;
        let credentials = match &target.role_arn {
            Some(role_arn) => {
                assume_role(&sts, target, role_arn, "airlock-agent", None, duration).await?
            }
            None => {
                sts.get_session_token()
                    .duration_seconds(duration)
                    .send()
                    .await
                    .map_err(cloud_error)?
                    .credentials
            }
        };
        session_of(credentials)
    }

    async fn scoped_credentials(
        &self,
        target: &Target,
        request: &ScopedSessionRequest,
    ) -> Result<SessionCredentials, CloudError> {
        let sts = self.sts_of(target).await;
        let duration = seconds(request.duration_seconds)?;
        let credentials = match &target.role_arn {
            Some(role_arn) => {
                assume_role(
                    &sts,
                    target,
                    role_arn,
                    &request.session_name,
                    Some(&request.policy),
                    duration,
                )
                .await?
            }
            None => {
                sts.get_federation_token()
                    .name(&request.session_name)
                    .policy(&request.policy)
                    .duration_seconds(duration)
                    .send()
                    .await
                    .map_err(cloud_error)?
                    .credentials
            }
        };
        session_of(credentials)
    }

    async fn list_access_keys(
        &self,
        target: &Target,
    ) -> Result<Vec<AccessKeyMetadata>, CloudError> {
        let iam = iam_client(target).await;
        let out = iam.list_access_keys().send().await.map_err(cloud_error)?;
        Ok(out
            .access_key_metadata()
            .iter()
            .map(|k| AccessKeyMetadata {
                access_key_id: k.access_key_id().unwrap_or_default().to_owned(),
                status: k
                    .status()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
                created_at: k.create_date().and_then(timestamp),
            })
            .collect())
    }

    async fn create_access_key(&self, target: &Target) -> Result<NewAccessKey, CloudError> {
        let iam = iam_client(target).await;
        let out = iam.create_access_key().send().await.map_err(cloud_error)?;
        let k = out
            .access_key()
            .ok_or_else(|| CloudError::local("IAM returned no access key"))?;
        Ok(NewAccessKey {
            key: AccessKey {
                access_key_id: k.access_key_id().to_owned(),
                secret_access_key: k.secret_access_key().to_owned().into(),
                session_token: None,
            },
            user_name: k.user_name().to_owned(),
            created_at: k.create_date().and_then(timestamp),
        })
    }

    async fn delete_access_key(
        &self,
        target: &Target,
        access_key_id: &str,
    ) -> Result<(), CloudError> {
        let iam = iam_client(target).await;
        iam.delete_access_key()
            .access_key_id(access_key_id)
            .send()
            .await
            .map_err(cloud_error)?;
        Ok(())
    }

    async fn ec2_query(&self, target: &Target, form: String) -> Result<QueryAnswer, CloudError> {
        let http = match self.http.get() {
            Some(h) => h.clone(),
            None => {
                let h = query::http_client()?;
                self.http.get_or_init(|| h).clone()
            }
        };
        let budget = self.budget_of(target);
        query::governed_forward(&budget, &http, &self.credentials, target, form).await
    }

    async fn default_credentials(&self) -> Result<AccessKey, CloudError> {
        default_chain_credentials().await
    }
}

fn seconds(duration: u32) -> Result<i32, CloudError> {
    i32::try_from(duration)
        .map_err(|_| CloudError::local(format!("duration {duration} s is too large")))
}

/// STS `AssumeRole` of `role_arn` with the target's external id and an optional session policy.
async fn assume_role(
    sts: &aws_sdk_sts::Client,
    target: &Target,
    role_arn: &str,
    session_name: &str,
    policy: Option<&str>,
    duration: i32,
) -> Result<Option<aws_sdk_sts::types::Credentials>, CloudError> {
    Ok(sts
        .assume_role()
        .role_arn(role_arn)
        .role_session_name(session_name)
        .set_external_id(target.external_id.clone())
        .set_policy(policy.map(str::to_owned))
        .duration_seconds(duration)
        .send()
        .await
        .map_err(cloud_error)?
        .credentials)
}

/// Credentials from the standard AWS chain, resolved now: environment, shared config and
/// credentials files (with SSO and `credential_process`), web identity, the container
/// provider and instance metadata (unless `AWS_EC2_METADATA_DISABLED=true`). For callers
/// without a key of their own, such as a gateway listing with the instance's role.
pub async fn default_chain_credentials() -> Result<AccessKey, CloudError> {
    use aws_credential_types::provider::ProvideCredentials as _;
    static CHAIN: tokio::sync::OnceCell<
        aws_config::default_provider::credentials::DefaultCredentialsChain,
    > = tokio::sync::OnceCell::const_new();
    let chain = CHAIN
        .get_or_init(|| async {
            aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
                .build()
                .await
        })
        .await;
    let c = chain.provide_credentials().await.map_err(|e| {
        CloudError::local(format!("{}", aws_sdk_ec2::error::DisplayErrorContext(&e)))
    })?;
    Ok(AccessKey {
        access_key_id: c.access_key_id().to_owned(),
        secret_access_key: c.secret_access_key().to_owned().into(),
        session_token: c.session_token().map(|t| t.to_owned().into()),
    })
}

/// An IAM client acting as the user that owns the target's key.
async fn iam_client(target: &Target) -> aws_sdk_iam::Client {
    aws_sdk_iam::Client::new(&sdk_config(&without_role(target)).await)
}

/// The target's own key without the role the console assumes for EC2 calls: STS and IAM calls
/// about the key itself must be made as the key's user.
fn without_role(target: &Target) -> Target {
    Target {
        role_arn: None,
        external_id: None,
        ..target.clone()
    }
}

fn timestamp(t: &aws_sdk_sts::primitives::DateTime) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

/// STS's credentials as the plain type, with their expiry.
fn session_of(
    credentials: Option<aws_sdk_sts::types::Credentials>,
) -> Result<SessionCredentials, CloudError> {
    let c = credentials.ok_or_else(|| CloudError::local("STS returned no credentials"))?;
    let expiration = timestamp(c.expiration())
        .ok_or_else(|| CloudError::local("STS returned an expiration out of range"))?;
    Ok(SessionCredentials {
        key: AccessKey {
            access_key_id: c.access_key_id().to_owned(),
            secret_access_key: c.secret_access_key().to_owned().into(),
            session_token: Some(c.session_token().to_owned().into()),
        },
        expiration,
    })
}

impl AwsCloud {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<dyn Ec2>>> {
        // A poisoned cache only means another task panicked mid-insert; the map is still usable.
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// EC2 calls through one SDK client.
pub struct AwsEc2 {
    client: aws_sdk_ec2::Client,
}

#[async_trait]
impl Ec2 for AwsEc2 {
    async fn run_instances(&self, input: &RunInstancesInput) -> Result<Launched, CloudError> {
        let count = i32::try_from(input.count)
            .map_err(|_| CloudError::local(format!("count {} is too large", input.count)))?;
        let tag_spec = |kind: ResourceType| {
            TagSpecification::builder()
                .resource_type(kind)
                .set_tags(Some(tags(&input.tags)))
                .build()
        };
        let mut request = self
            .client
            .run_instances()
            .image_id(&input.image_id)
            .instance_type(input.instance_type.as_str().into())
            .min_count(count)
            .max_count(count)
            .client_token(&input.client_token)
            .set_user_data(
                (!input.user_data.is_empty())
                    .then(|| base64::engine::general_purpose::STANDARD.encode(&input.user_data)),
            )
            .metadata_options(
                InstanceMetadataOptionsRequest::builder()
                    .http_endpoint(InstanceMetadataEndpointState::Enabled)
                    .http_tokens(HttpTokensState::Required)
                    .http_put_response_hop_limit(i32::from(input.metadata_hop_limit))
                    .build(),
            )
            .set_security_group_ids(if input.security_group_ids.is_empty() {
                None
            } else {
                Some(input.security_group_ids.clone())
            })
            .set_subnet_id(input.subnet_id.clone())
            .set_key_name(input.key_name.clone());
        let placement = &input.placement;
        if *placement != airlock_cloud::Placement::default() {
            request = request.placement(
                aws_sdk_ec2::types::Placement::builder()
                    .set_availability_zone(placement.availability_zone.clone())
                    .set_tenancy(placement.tenancy.map(|t| t.as_str().into()))
                    .set_group_name(placement.group_name.clone())
                    .build(),
            );
        }
        if !input.tags.is_empty() {
            request = request
                .tag_specifications(tag_spec(ResourceType::Instance))
                .tag_specifications(tag_spec(ResourceType::Volume));
        }
        let out = request.send().await.map_err(cloud_error)?;
        Ok(Launched {
            request_id: out.request_id().map(str::to_owned),
            instances: out.instances().iter().map(instance).collect(),
        })
    }

    async fn describe_instances(
        &self,
        filters_in: &[Filter],
        instance_ids: &[String],
    ) -> Result<Vec<Instance>, CloudError> {
        let mut pages = self
            .client
            .describe_instances()
            .set_filters(filters(filters_in))
            .set_instance_ids(if instance_ids.is_empty() {
                None
            } else {
                Some(instance_ids.to_vec())
            })
            // Explicit page size, as EC2 asks of good citizens; it cannot be combined with ids.
            .set_max_results(instance_ids.is_empty().then_some(DESCRIBE_PAGE_SIZE))
            .into_paginator()
            .send();
        let mut found = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(cloud_error)?;
            for reservation in page.reservations() {
                found.extend(reservation.instances().iter().map(instance));
            }
        }
        Ok(found)
    }

    async fn change_state(
        &self,
        action: StateAction,
        ids: &[String],
    ) -> Result<RequestId, CloudError> {
        let ids = Some(ids.to_vec());
        let request_id = match action {
            StateAction::Start => self
                .client
                .start_instances()
                .set_instance_ids(ids)
                .send()
                .await
                .map_err(cloud_error)?
                .request_id()
                .map(str::to_owned),
            StateAction::Stop => self
                .client
                .stop_instances()
                .set_instance_ids(ids)
                .send()
                .await
                .map_err(cloud_error)?
                .request_id()
                .map(str::to_owned),
            StateAction::Reboot => self
                .client
                .reboot_instances()
                .set_instance_ids(ids)
                .send()
                .await
                .map_err(cloud_error)?
                .request_id()
                .map(str::to_owned),
            StateAction::Terminate => self
                .client
                .terminate_instances()
                .set_instance_ids(ids)
                .send()
                .await
                .map_err(cloud_error)?
                .request_id()
                .map(str::to_owned),
        };
        Ok(request_id)
    }

    async fn describe_volumes(&self, filters_in: &[Filter]) -> Result<Vec<Volume>, CloudError> {
        let mut pages = self
            .client
            .describe_volumes()
            .set_filters(filters(filters_in))
            .into_paginator()
            .send();
        let mut found = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(cloud_error)?;
            found.extend(page.volumes().iter().map(volume));
        }
        Ok(found)
    }

    async fn create_tags(
        &self,
        resource_ids: &[String],
        tags_in: &[Tag],
    ) -> Result<RequestId, CloudError> {
        let out = self
            .client
            .create_tags()
            .set_resources(Some(resource_ids.to_vec()))
            .set_tags(Some(tags(tags_in)))
            .send()
            .await
            .map_err(cloud_error)?;
        Ok(out.request_id().map(str::to_owned))
    }

    async fn delete_tags(
        &self,
        resource_ids: &[String],
        tags_in: &[Tag],
    ) -> Result<RequestId, CloudError> {
        let out = self
            .client
            .delete_tags()
            .set_resources(Some(resource_ids.to_vec()))
            .set_tags(Some(tag_keys(tags_in)))
            .send()
            .await
            .map_err(cloud_error)?;
        Ok(out.request_id().map(str::to_owned))
    }

    async fn describe_tags(
        &self,
        resource_ids: &[String],
    ) -> Result<Vec<(String, Tag)>, CloudError> {
        let mut pages = self
            .client
            .describe_tags()
            .set_filters(filters(&[Filter {
                name: "resource-id".to_owned(),
                values: resource_ids.to_vec(),
            }]))
            .into_paginator()
            .send();
        let mut found = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(cloud_error)?;
            for t in page.tags() {
                found.push((
                    t.resource_id().unwrap_or_default().to_owned(),
                    Tag::new(t.key().unwrap_or_default(), t.value().unwrap_or_default()),
                ));
            }
        }
        Ok(found)
    }

    async fn describe_user_data(&self, instance_id: &str) -> Result<Option<Vec<u8>>, CloudError> {
        let out = self
            .client
            .describe_instance_attribute()
            .instance_id(instance_id)
            .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
            .send()
            .await
            .map_err(cloud_error)?;
        match out.user_data().and_then(|v| v.value()) {
            None | Some("") => Ok(None),
            Some(encoded) => base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map(Some)
                .map_err(|e| CloudError::local(format!("the user data is not valid base64: {e}"))),
        }
    }

    async fn attach_volume(
        &self,
        volume_id: &str,
        instance_id: &str,
        device: &str,
    ) -> Result<RequestId, CloudError> {
        let out = self
            .client
            .attach_volume()
            .volume_id(volume_id)
            .instance_id(instance_id)
            .device(device)
            .send()
            .await
            .map_err(cloud_error)?;
        Ok(out.request_id().map(str::to_owned))
    }

    async fn detach_volume(
        &self,
        volume_id: &str,
        instance_id: Option<&str>,
        force: bool,
    ) -> Result<RequestId, CloudError> {
        let out = self
            .client
            .detach_volume()
            .volume_id(volume_id)
            .set_instance_id(instance_id.map(str::to_owned))
            .force(force)
            .send()
            .await
            .map_err(cloud_error)?;
        Ok(out.request_id().map(str::to_owned))
    }

    async fn create_volume(&self, input: &CreateVolumeInput) -> Result<Volume, CloudError> {
        let out = self
            .client
            .create_volume()
            .availability_zone(&input.availability_zone)
            .set_size(input.size_gib)
            .volume_type(input.volume_type.as_str().into())
            .set_iops(input.iops)
            .encrypted(input.encrypted)
            .set_snapshot_id(input.snapshot_id.clone())
            .set_tag_specifications(tag_specifications(&[ResourceType::Volume], &input.tags))
            .send()
            .await
            .map_err(cloud_error)?;
        Ok(Volume {
            volume_id: out.volume_id().unwrap_or_default().to_owned(),
            attached_to: out
                .attachments()
                .iter()
                .filter_map(|a| a.instance_id().map(str::to_owned))
                .collect(),
            tags: if out.tags().is_empty() {
                input.tags.clone()
            } else {
                convert::from_sdk_tags(out.tags())
            },
            state: out.state().map(|s| s.as_str().to_owned()),
            availability_zone: out.availability_zone().map(str::to_owned),
            size_gib: out.size(),
            volume_type: out.volume_type().map(|t| t.as_str().to_owned()),
            iops: out.iops(),
            encrypted: out.encrypted(),
            snapshot_id: out
                .snapshot_id()
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            attachments: convert::volume_attachments(out.attachments()),
        })
    }

    async fn delete_volume(&self, volume_id: &str) -> Result<RequestId, CloudError> {
        let out = self
            .client
            .delete_volume()
            .volume_id(volume_id)
            .send()
            .await
            .map_err(cloud_error)?;
        Ok(out.request_id().map(str::to_owned))
    }

    async fn associate_address(
        &self,
        allocation_id: &str,
        target: &AddressTarget,
        allow_reassociation: bool,
    ) -> Result<Option<String>, CloudError> {
        let request = self
            .client
            .associate_address()
            .allocation_id(allocation_id)
            .allow_reassociation(allow_reassociation);
        let request = match target {
            AddressTarget::Instance(instance_id) => request.instance_id(instance_id),
            AddressTarget::NetworkInterface {
                network_interface_id,
                private_ip,
            } => request
                .network_interface_id(network_interface_id)
                .set_private_ip_address(private_ip.clone()),
        };
        let out = request.send().await.map_err(cloud_error)?;
        Ok(out.association_id().map(str::to_owned))
    }

    async fn describe_addresses(&self, filters_in: &[Filter]) -> Result<Vec<Address>, CloudError> {
        let out = self
            .client
            .describe_addresses()
            .set_filters(filters(filters_in))
            .send()
            .await
            .map_err(cloud_error)?;
        Ok(out.addresses().iter().map(address).collect())
    }

    async fn allocate_address(&self, tags_in: &[Tag]) -> Result<Address, CloudError> {
        let out = self
            .client
            .allocate_address()
            .domain(DomainType::Vpc)
            .set_tag_specifications(tag_specifications(&[ResourceType::ElasticIp], tags_in))
            .send()
            .await
            .map_err(cloud_error)?;
        Ok(Address {
            allocation_id: out.allocation_id().map(str::to_owned),
            public_ip: out.public_ip().map(str::to_owned),
            instance_id: None,
            association_id: None,
            network_interface_id: None,
            private_ip: None,
            tags: tags_in.to_vec(),
        })
    }

    async fn disassociate_address(&self, association_id: &str) -> Result<RequestId, CloudError> {
        let out = self
            .client
            .disassociate_address()
            .association_id(association_id)
            .send()
            .await
            .map_err(cloud_error)?;
        Ok(out.request_id().map(str::to_owned))
    }

    async fn release_address(&self, allocation_id: &str) -> Result<RequestId, CloudError> {
        let out = self
            .client
            .release_address()
            .allocation_id(allocation_id)
            .send()
            .await
            .map_err(cloud_error)?;
        Ok(out.request_id().map(str::to_owned))
    }

    async fn create_network_interface(
        &self,
        input: &CreateNetworkInterfaceInput,
    ) -> Result<NetworkInterface, CloudError> {
        let out = self
            .client
            .create_network_interface()
            .subnet_id(&input.subnet_id)
            .set_private_ip_address(input.private_ip.clone())
            .set_groups(non_empty(&input.security_group_ids))
            .set_description(input.description.clone())
            .set_tag_specifications(tag_specifications(
                &[ResourceType::NetworkInterface],
                &input.tags,
            ))
            .send()
            .await
            .map_err(cloud_error)?;
        out.network_interface()
            .map(network_interface)
            .ok_or_else(|| CloudError::local("EC2 returned no network interface"))
    }

    async fn describe_network_interfaces(
        &self,
        filters_in: &[Filter],
        ids: &[String],
    ) -> Result<Vec<NetworkInterface>, CloudError> {
        let mut pages = self
            .client
            .describe_network_interfaces()
            .set_filters(filters(filters_in))
            .set_network_interface_ids(non_empty(ids))
            .into_paginator()
            .send();
        let mut found = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(cloud_error)?;
            found.extend(page.network_interfaces().iter().map(network_interface));
        }
        Ok(found)
    }

    async fn attach_network_interface(
        &self,
        network_interface_id: &str,
        instance_id: &str,
        device_index: i32,
    ) -> Result<Option<String>, CloudError> {
        let out = self
            .client
            .attach_network_interface()
            .network_interface_id(network_interface_id)
            .instance_id(instance_id)
            .device_index(device_index)
            .send()
            .await
            .map_err(cloud_error)?;
        Ok(out.attachment_id().map(str::to_owned))
    }

    async fn detach_network_interface(
        &self,
        attachment_id: &str,
        force: bool,
    ) -> Result<RequestId, CloudError> {
        let out = self
            .client
            .detach_network_interface()
            .attachment_id(attachment_id)
            .force(force)
            .send()
            .await
            .map_err(cloud_error)?;
        Ok(out.request_id().map(str::to_owned))
    }

    async fn delete_network_interface(
        &self,
        network_interface_id: &str,
    ) -> Result<RequestId, CloudError> {
        let out = self
            .client
            .delete_network_interface()
            .network_interface_id(network_interface_id)
            .send()
            .await
            .map_err(cloud_error)?;
        Ok(out.request_id().map(str::to_owned))
    }

    async fn create_security_group(
        &self,
        input: &CreateSecurityGroupInput,
    ) -> Result<String, CloudError> {
        let out = self
            .client
            .create_security_group()
            .group_name(&input.group_name)
            .description(&input.description)
            .set_vpc_id(input.vpc_id.clone())
            .set_tag_specifications(tag_specifications(
                &[ResourceType::SecurityGroup],
                &input.tags,
            ))
            .send()
            .await
            .map_err(cloud_error)?;
        out.group_id()
            .map(str::to_owned)
            .ok_or_else(|| CloudError::local("EC2 returned no security group id"))
    }

    async fn describe_subnets(&self, filters_in: &[Filter]) -> Result<Vec<Subnet>, CloudError> {
        let mut pages = self
            .client
            .describe_subnets()
            .set_filters(filters(filters_in))
            .into_paginator()
            .send();
        let mut found = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(cloud_error)?;
            found.extend(page.subnets().iter().map(subnet));
        }
        Ok(found)
    }

    async fn describe_security_groups(
        &self,
        filters_in: &[Filter],
        ids: &[String],
    ) -> Result<Vec<SecurityGroup>, CloudError> {
        let mut pages = self
            .client
            .describe_security_groups()
            .set_filters(filters(filters_in))
            .set_group_ids(non_empty(ids))
            .into_paginator()
            .send();
        let mut found = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(cloud_error)?;
            found.extend(page.security_groups().iter().map(security_group));
        }
        Ok(found)
    }

    async fn authorize_security_group(
        &self,
        direction: Direction,
        group_id: &str,
        rules: &[SecurityGroupRule],
    ) -> Result<RequestId, CloudError> {
        let permissions = Some(ip_permissions(rules));
        let request_id = match direction {
            Direction::Ingress => self
                .client
                .authorize_security_group_ingress()
                .group_id(group_id)
                .set_ip_permissions(permissions)
                .send()
                .await
                .map_err(cloud_error)?
                .request_id()
                .map(str::to_owned),
            Direction::Egress => self
                .client
                .authorize_security_group_egress()
                .group_id(group_id)
                .set_ip_permissions(permissions)
                .send()
                .await
                .map_err(cloud_error)?
                .request_id()
                .map(str::to_owned),
        };
        Ok(request_id)
    }

    async fn revoke_security_group(
        &self,
        direction: Direction,
        group_id: &str,
        rules: &[SecurityGroupRule],
    ) -> Result<RequestId, CloudError> {
        let permissions = Some(ip_permissions(rules));
        let request_id = match direction {
            Direction::Ingress => self
                .client
                .revoke_security_group_ingress()
                .group_id(group_id)
                .set_ip_permissions(permissions)
                .send()
                .await
                .map_err(cloud_error)?
                .request_id()
                .map(str::to_owned),
            Direction::Egress => self
                .client
                .revoke_security_group_egress()
                .group_id(group_id)
                .set_ip_permissions(permissions)
                .send()
                .await
                .map_err(cloud_error)?
                .request_id()
                .map(str::to_owned),
        };
        Ok(request_id)
    }

    async fn delete_security_group(&self, group_id: &str) -> Result<RequestId, CloudError> {
        let out = self
            .client
            .delete_security_group()
            .group_id(group_id)
            .send()
            .await
            .map_err(cloud_error)?;
        Ok(out.request_id().map(str::to_owned))
    }

    async fn create_key_pair(
        &self,
        key_name: &str,
        key_type: &str,
        tags_in: &[Tag],
    ) -> Result<NewKeyPair, CloudError> {
        let kind = match key_type {
            "rsa" => KeyType::Rsa,
            "ed25519" => KeyType::Ed25519,
            other => {
                return Err(CloudError::local(format!(
                    "unknown key type {other:?}: expected rsa or ed25519"
                )))
            }
        };
        let out = self
            .client
            .create_key_pair()
            .key_name(key_name)
            .key_type(kind.clone())
            .set_tag_specifications(tag_specifications(&[ResourceType::KeyPair], tags_in))
            .send()
            .await
            .map_err(cloud_error)?;
        let private_key = out
            .key_material()
            .ok_or_else(|| CloudError::local("EC2 returned no private key"))?
            .to_owned()
            .into();
        Ok(NewKeyPair {
            key_pair: KeyPair {
                key_pair_id: out.key_pair_id().map(str::to_owned),
                key_name: out.key_name().unwrap_or(key_name).to_owned(),
                key_fingerprint: out.key_fingerprint().map(str::to_owned),
                key_type: Some(kind.as_str().to_owned()),
                created_at: None,
                tags: returned_tags(out.tags(), tags_in),
            },
            private_key,
        })
    }

    async fn import_key_pair(
        &self,
        key_name: &str,
        public_key: &str,
        tags_in: &[Tag],
    ) -> Result<KeyPair, CloudError> {
        let out = self
            .client
            .import_key_pair()
            .key_name(key_name)
            .public_key_material(Blob::new(public_key.as_bytes()))
            .set_tag_specifications(tag_specifications(&[ResourceType::KeyPair], tags_in))
            .send()
            .await
            .map_err(cloud_error)?;
        Ok(KeyPair {
            key_pair_id: out.key_pair_id().map(str::to_owned),
            key_name: out.key_name().unwrap_or(key_name).to_owned(),
            key_fingerprint: out.key_fingerprint().map(str::to_owned),
            key_type: None,
            created_at: None,
            tags: returned_tags(out.tags(), tags_in),
        })
    }

    async fn describe_key_pairs(
        &self,
        filters_in: &[Filter],
        names: &[String],
    ) -> Result<Vec<KeyPair>, CloudError> {
        let out = self
            .client
            .describe_key_pairs()
            .set_filters(filters(filters_in))
            .set_key_names(non_empty(names))
            .send()
            .await
            .map_err(cloud_error)?;
        Ok(out.key_pairs().iter().map(key_pair).collect())
    }

    async fn delete_key_pair(&self, key_name: &str) -> Result<RequestId, CloudError> {
        let out = self
            .client
            .delete_key_pair()
            .key_name(key_name)
            .send()
            .await
            .map_err(cloud_error)?;
        Ok(out.request_id().map(str::to_owned))
    }

    async fn create_snapshot(
        &self,
        volume_id: &str,
        description: Option<&str>,
        tags_in: &[Tag],
    ) -> Result<Snapshot, CloudError> {
        let out = self
            .client
            .create_snapshot()
            .volume_id(volume_id)
            .set_description(description.map(str::to_owned))
            .set_tag_specifications(tag_specifications(&[ResourceType::Snapshot], tags_in))
            .send()
            .await
            .map_err(cloud_error)?;
        Ok(Snapshot {
            snapshot_id: out
                .snapshot_id()
                .ok_or_else(|| CloudError::local("EC2 returned no snapshot id"))?
                .to_owned(),
            volume_id: out.volume_id().map(str::to_owned),
            state: out.state().map(|s| s.as_str().to_owned()),
            progress: out.progress().map(str::to_owned),
            volume_size_gib: out.volume_size(),
            description: out
                .description()
                .filter(|d| !d.is_empty())
                .map(str::to_owned),
            encrypted: out.encrypted(),
            owner_id: out.owner_id().map(str::to_owned),
            start_time: out.start_time().and_then(convert::datetime),
            tags: returned_tags(out.tags(), tags_in),
        })
    }

    async fn describe_snapshots(
        &self,
        filters_in: &[Filter],
        ids: &[String],
    ) -> Result<Vec<Snapshot>, CloudError> {
        let mut pages = self
            .client
            .describe_snapshots()
            .owner_ids("self")
            .set_filters(filters(filters_in))
            .set_snapshot_ids(non_empty(ids))
            .into_paginator()
            .send();
        let mut found = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(cloud_error)?;
            found.extend(page.snapshots().iter().map(snapshot));
        }
        Ok(found)
    }

    async fn delete_snapshot(&self, snapshot_id: &str) -> Result<RequestId, CloudError> {
        let out = self
            .client
            .delete_snapshot()
            .snapshot_id(snapshot_id)
            .send()
            .await
            .map_err(cloud_error)?;
        Ok(out.request_id().map(str::to_owned))
    }

    async fn copy_snapshot(
        &self,
        source_region: &str,
        source_snapshot_id: &str,
        description: Option<&str>,
        tags_in: &[Tag],
    ) -> Result<String, CloudError> {
        let out = self
            .client
            .copy_snapshot()
            .source_region(source_region)
            .source_snapshot_id(source_snapshot_id)
            .set_description(description.map(str::to_owned))
            .set_tag_specifications(tag_specifications(&[ResourceType::Snapshot], tags_in))
            .send()
            .await
            .map_err(cloud_error)?;
        out.snapshot_id()
            .map(str::to_owned)
            .ok_or_else(|| CloudError::local("EC2 returned no snapshot id for the copy"))
    }

    async fn create_image(&self, input: &CreateImageInput) -> Result<String, CloudError> {
        let out = self
            .client
            .create_image()
            .instance_id(&input.instance_id)
            .name(&input.name)
            .set_description(input.description.clone())
            .no_reboot(input.no_reboot)
            // The image only: its snapshots are not tagged on creation, as the moto endpoint
            // the tests use does not implement that (tag them with CreateTags if needed).
            .set_tag_specifications(tag_specifications(&[ResourceType::Image], &input.tags))
            .send()
            .await
            .map_err(cloud_error)?;
        out.image_id()
            .map(str::to_owned)
            .ok_or_else(|| CloudError::local("EC2 returned no image id"))
    }

    async fn describe_images(
        &self,
        filters_in: &[Filter],
        ids: &[String],
    ) -> Result<Vec<Image>, CloudError> {
        let mut pages = self
            .client
            .describe_images()
            .owners("self")
            .set_filters(filters(filters_in))
            .set_image_ids(non_empty(ids))
            .into_paginator()
            .send();
        let mut found = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(cloud_error)?;
            found.extend(page.images().iter().map(image));
        }
        Ok(found)
    }

    async fn deregister_image(&self, image_id: &str) -> Result<RequestId, CloudError> {
        let out = self
            .client
            .deregister_image()
            .image_id(image_id)
            .send()
            .await
            .map_err(cloud_error)?;
        Ok(out.request_id().map(str::to_owned))
    }

    async fn describe_instance_status(
        &self,
        instance_ids: &[String],
    ) -> Result<Vec<InstanceStatus>, CloudError> {
        let mut pages = self
            .client
            .describe_instance_status()
            .include_all_instances(true)
            .set_instance_ids(non_empty(instance_ids))
            .into_paginator()
            .send();
        let mut found = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(cloud_error)?;
            found.extend(page.instance_statuses().iter().map(instance_status));
        }
        Ok(found)
    }
}

/// `None` for an empty list, as EC2 treats an absent list and an empty one differently.
fn non_empty(items: &[String]) -> Option<Vec<String>> {
    (!items.is_empty()).then(|| items.to_vec())
}

/// Tags on creation for each resource type, or none at all when there are no tags (EC2 refuses
/// a `TagSpecification` without tags).
fn tag_specifications(kinds: &[ResourceType], tags_in: &[Tag]) -> Option<Vec<TagSpecification>> {
    if tags_in.is_empty() {
        return None;
    }
    Some(
        kinds
            .iter()
            .map(|kind| {
                TagSpecification::builder()
                    .resource_type(kind.clone())
                    .set_tags(Some(tags(tags_in)))
                    .build()
            })
            .collect(),
    )
}

/// The tags EC2 echoed back, or the requested ones when it echoed none.
fn returned_tags(returned: &[aws_sdk_ec2::types::Tag], requested: &[Tag]) -> Vec<Tag> {
    if returned.is_empty() {
        requested.to_vec()
    } else {
        convert::from_sdk_tags(returned)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_default_chain_reads_the_shared_credentials_file() {
        let dir = std::env::temp_dir().join(format!("airlock-chain-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("credentials");
        std::fs::write(
            &file,
            "[default]\naws_access_key_id = AKIAFROMFILE0000TEST\naws_secret_access_key = from-file\n",
        )
        .unwrap();
        // The only test in this crate that touches the environment.
        for key in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
        ] {
            std::env::remove_var(key);
        }
        std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", &file);
        std::env::set_var("AWS_CONFIG_FILE", dir.join("config"));
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        let key = default_chain_credentials().await.unwrap();
        assert_eq!(key.access_key_id, "AKIAFROMFILE0000TEST");
        assert_eq!(key.secret_access_key.expose_secret(), "from-file");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
