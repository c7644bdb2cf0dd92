//! Checks on user input made before anything reaches EC2, with EC2's own limits.

use crate::error::ApiError;
use airlock_cloud::{Filter, Tag};
use airlock_fleet::FieldError;

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError::field(e.field, e.message)
    }
}

/// Validates user tags as EC2 would (keys equal ignoring case are refused, naming both), and
/// refuses the console's reserved prefix in any case.
///
/// `field` names the request field (e.g. `tags`) so the error points at `tags[3].key`;
/// `reserved` is how many tags the console adds of its own.
pub fn tags(field: &str, tags: &[Tag], reserved: usize) -> Result<(), ApiError> {
    airlock_fleet::validate::tags(field, tags, reserved)?;
    airlock_access::tags::refuse_reserved(field, tags)?;
    Ok(())
}

/// Validates that a name is usable as an identifier in URLs and records: 1–64 of `[A-Za-z0-9._-]`.
pub fn name(field: &str, value: &str) -> Result<(), ApiError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::field(
            field,
            format!("{value:?} is not a valid name: use 1 to 64 letters, digits, '.', '_' or '-'"),
        ))
    }
}

/// Validates an AWS region name such as `us-east-1`.
pub fn region(field: &str, value: &str) -> Result<(), ApiError> {
    Ok(airlock_fleet::validate::region(field, value)?)
}

/// Validates an EC2 id with a given prefix, such as `ami-` or `sg-`.
pub fn ec2_id(field: &str, value: &str, prefix: &str) -> Result<(), ApiError> {
    Ok(airlock_fleet::validate::ec2_id(field, value, prefix)?)
}

/// `tag:KEY=VALUE` (the targets of snapshot policies and commands) as the EC2 filter it
/// stands for.
pub fn tag_target(field: &str, target: &str) -> Result<Filter, ApiError> {
    let bad = || {
        ApiError::field(
            field,
            format!("{target:?} is not tag:KEY=VALUE (e.g. tag:Backup=daily)"),
        )
    };
    let (key, value) = target
        .strip_prefix("tag:")
        .and_then(|rest| rest.split_once('='))
        .ok_or_else(bad)?;
    if key.is_empty() || key.len() > 128 || value.len() > 256 {
        return Err(bad());
    }
    Ok(Filter::new(format!("tag:{key}"), value))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn field(err: ApiError) -> String {
        match err {
            ApiError::BadRequest { field, .. } => field.unwrap_or_default(),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn tag_limits() {
        let many: Vec<Tag> = (0..49).map(|i| Tag::new(format!("k{i}"), "v")).collect();
        assert!(tags("tags", &many, 1).is_ok());
        assert!(tags("tags", &many, 2).is_err());
        let long_key = vec![Tag::new("k".repeat(129), "v")];
        assert_eq!(
            field(tags("tags", &long_key, 0).unwrap_err()),
            "tags[0].key"
        );
        assert!(tags("tags", &[Tag::new("k".repeat(128), "v".repeat(256))], 0).is_ok());
        let long_value = vec![Tag::new("a", "b"), Tag::new("k", "v".repeat(257))];
        assert_eq!(
            field(tags("tags", &long_value, 0).unwrap_err()),
            "tags[1].value"
        );
        assert!(tags("tags", &[Tag::new("AWS:x", "v")], 0).is_err());
        assert!(tags("tags", &[Tag::new("airlock:deployment", "v")], 0).is_err());
        assert!(tags("tags", &[Tag::new("AIRLOCK:upstream", "v")], 0).is_err());
        assert!(tags("tags", &[Tag::new("owner", "a"), Tag::new("Owner", "b")], 0).is_err());
        assert!(tags("tags", &[Tag::new("a", "1"), Tag::new("a", "2")], 0).is_err());
        assert!(tags("tags", &[Tag::new("", "1")], 0).is_err());
    }

    #[test]
    fn tag_lengths_count_characters_not_bytes() {
        assert!(tags("tags", &[Tag::new("é".repeat(128), "v")], 0).is_ok());
    }

    #[test]
    fn ids_and_names() {
        assert!(ec2_id("image_id", "ami-12ab", "ami-").is_ok());
        assert!(ec2_id("image_id", "ami-", "ami-").is_err());
        assert!(ec2_id("image_id", "sg-12", "ami-").is_err());
        assert!(name("name", "prod-1").is_ok());
        assert!(name("name", "a b").is_err());
        assert!(region("region", "us-east-1").is_ok());
        assert!(region("region", "US").is_err());
    }
}
