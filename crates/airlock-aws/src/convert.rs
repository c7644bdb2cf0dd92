//! Conversions between the SDK's generated types and `airlock-cloud`'s plain ones.

use airlock_cloud::{Address, CloudError, Filter, Instance, Tag, Volume};
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
    ) || matches!(
        err.code(),
        Some("RequestLimitExceeded" | "Throttling" | "ThrottlingException")
    );
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

fn from_sdk_tags(tags: &[aws_sdk_ec2::types::Tag]) -> Vec<Tag> {
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
        launch_time: i
            .launch_time()
            .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
        tags: from_sdk_tags(i.tags()),
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
    }
}

pub fn address(a: &aws_sdk_ec2::types::Address) -> Address {
    Address {
        allocation_id: a.allocation_id().map(str::to_owned),
        public_ip: a.public_ip().map(str::to_owned),
        instance_id: a.instance_id().map(str::to_owned),
        association_id: a.association_id().map(str::to_owned),
        tags: from_sdk_tags(a.tags()),
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
