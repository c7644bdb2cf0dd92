//! The one place Airlock talks to EC2 and STS: the [`airlock_cloud::Cloud`] trait implemented with
//! the official AWS SDK for Rust.
//!
//! Everything else in the workspace sees only `airlock-cloud`'s plain types, so the heavy SDK is
//! compiled once, here.

#![warn(missing_docs)]

mod convert;

use airlock_cloud::{
    AccessKey, AccessKeyMetadata, Address, CallerIdentity, Cloud, CloudError, Ec2, Filter,
    Instance, Launched, NewAccessKey, RequestId, RunInstancesInput, ScopedSessionRequest,
    SessionCredentials, StateAction, Tag, Target, Volume,
};
use async_trait::async_trait;
use aws_config::{retry::RetryConfig, timeout::TimeoutConfig, BehaviorVersion, Region, SdkConfig};
use aws_sdk_ec2::types::{
    HttpTokensState, InstanceMetadataEndpointState, InstanceMetadataOptionsRequest, ResourceType,
    TagSpecification,
};
use base64::Engine;
use secrecy::ExposeSecret;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use convert::{address, cloud_error, filters, instance, tag_keys, tags, volume};

/// Instances per `DescribeInstances` page (EC2 allows 5 to 1000).
const DESCRIBE_PAGE_SIZE: i32 = 1000;

/// The production [`Cloud`]: SDK clients built per target and reused across calls.
#[derive(Default)]
pub struct AwsCloud {
    clients: Mutex<HashMap<String, Arc<AwsEc2>>>,
}

impl AwsCloud {
    /// A cloud with no clients yet; they are created on first use per target.
    pub fn new() -> Self {
        Self::default()
    }
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
        let config = sdk_config(target).await;
        let client = Arc::new(AwsEc2 {
            client: aws_sdk_ec2::Client::new(&config),
        });
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
        let sts = aws_sdk_sts::Client::new(&sdk_config(&without_role(target)).await);
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
        let sts = aws_sdk_sts::Client::new(&sdk_config(&without_role(target)).await);
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
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<AwsEc2>>> {
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
        if !input.tags.is_empty() {
            request = request
                .tag_specifications(tag_spec(ResourceType::Instance))
                .tag_specifications(tag_spec(ResourceType::Volume));
        }
        let out = request.send().await.map_err(cloud_error)?;
        use aws_sdk_ec2::operation::RequestId as _;
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
        use aws_sdk_ec2::operation::RequestId as _;
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
        use aws_sdk_ec2::operation::RequestId as _;
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
        use aws_sdk_ec2::operation::RequestId as _;
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
        use aws_sdk_ec2::operation::RequestId as _;
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

    async fn associate_address(
        &self,
        allocation_id: &str,
        instance_id: &str,
    ) -> Result<Option<String>, CloudError> {
        let out = self
            .client
            .associate_address()
            .allocation_id(allocation_id)
            .instance_id(instance_id)
            .allow_reassociation(true)
            .send()
            .await
            .map_err(cloud_error)?;
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
