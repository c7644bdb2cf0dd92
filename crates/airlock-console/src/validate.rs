//! Checks on user input made before anything reaches EC2, with EC2's own limits.

use crate::error::ApiError;
use airlock_cloud::Tag;

/// EC2 allows at most 50 user tags per resource.
pub const MAX_TAGS: usize = 50;
/// Tag keys are at most 128 Unicode characters.
pub const MAX_TAG_KEY: usize = 128;
/// Tag values are at most 256 Unicode characters.
pub const MAX_TAG_VALUE: usize = 256;
/// The prefix of the console's own tags; users may read but not set them.
pub const AIRLOCK_TAG_PREFIX: &str = "airlock:";

/// Validates user tags as EC2 would, plus the console's reserved prefix.
///
/// `field` names the request field (e.g. `tags`) so the error points at `tags[3].key`.
pub fn tags(field: &str, tags: &[Tag], reserved: usize) -> Result<(), ApiError> {
    if tags.len() + reserved > MAX_TAGS {
        return Err(ApiError::field(
            field,
            format!(
                "{} tags given; EC2 allows {MAX_TAGS} per resource and the console adds {reserved} of its own, so at most {}",
                tags.len(),
                MAX_TAGS - reserved
            ),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, tag) in tags.iter().enumerate() {
        let at = format!("{field}[{i}].key");
        let keylen = tag.key.chars().count();
        if keylen == 0 {
            return Err(ApiError::field(at, "tag key is empty"));
        }
        if keylen > MAX_TAG_KEY {
            return Err(ApiError::field(
                at,
                format!("tag key is {keylen} characters; EC2 allows at most {MAX_TAG_KEY}"),
            ));
        }
        if tag.key.to_ascii_lowercase().starts_with("aws:") {
            return Err(ApiError::field(
                at,
                format!(
                    "tag key {:?} uses the prefix aws:, which AWS reserves",
                    tag.key
                ),
            ));
        }
        if tag.key.starts_with(AIRLOCK_TAG_PREFIX) {
            return Err(ApiError::field(
                at,
                format!(
                    "tag key {:?} uses the prefix {AIRLOCK_TAG_PREFIX}, which the console reserves for its own tags",
                    tag.key
                ),
            ));
        }
        let valuelen = tag.value.chars().count();
        if valuelen > MAX_TAG_VALUE {
            return Err(ApiError::field(
                format!("{field}[{i}].value"),
                format!("tag value is {valuelen} characters; EC2 allows at most {MAX_TAG_VALUE}"),
            ));
        }
        if !seen.insert(tag.key.as_str()) {
            return Err(ApiError::field(
                at,
                format!("tag key {:?} is given twice", tag.key),
            ));
        }
    }
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
    let ok = !value.is_empty()
        && value.len() <= 32
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && value.contains('-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::field(
            field,
            format!("{value:?} is not an AWS region name (for example us-east-1)"),
        ))
    }
}

/// Validates an EC2 id with a given prefix, such as `ami-` or `sg-`.
pub fn ec2_id(field: &str, value: &str, prefix: &str) -> Result<(), ApiError> {
    let rest = value.strip_prefix(prefix);
    let ok = rest.is_some_and(|r| !r.is_empty() && r.chars().all(|c| c.is_ascii_alphanumeric()));
    if ok {
        Ok(())
    } else {
        Err(ApiError::field(
            field,
            format!(
                "{value:?} is not a valid id: expected {prefix} followed by letters and digits"
            ),
        ))
    }
}

/// Validates an http(s) URL well enough to hand it to the SDK.
pub fn url(field: &str, value: &str) -> Result<(), ApiError> {
    let ok = (value.starts_with("https://") || value.starts_with("http://"))
        && value.len() > "http://".len()
        && !value.contains(char::is_whitespace);
    if ok {
        Ok(())
    } else {
        Err(ApiError::field(
            field,
            format!("{value:?} is not an http or https URL"),
        ))
    }
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
        assert!(url("endpoint_url", "http://127.0.0.1:5000").is_ok());
        assert!(url("endpoint_url", "ftp://x").is_err());
    }
}
