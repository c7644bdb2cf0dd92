//! The console's own tags. `airlock:deployment` says which deployment a resource belongs to
//! (and so which instances may refresh credentials for it); `airlock:upstream`-style tags decide
//! where gateways send traffic. Whoever could set or remove them could move a resource into or
//! out of a deployment or into traffic, so only the console sets them, on creation.

use airlock_cloud::Tag;
use airlock_fleet::FieldError;

/// The prefix of the console's own tags, reserved in any case (`Airlock:`, `AIRLOCK:` too).
pub const RESERVED_TAG_PREFIX: &str = "airlock:";
/// Tag naming the deployment an instance or volume belongs to.
pub const DEPLOYMENT_TAG: &str = "airlock:deployment";
/// Tag naming the console user who deployed it.
pub const DEPLOYED_BY_TAG: &str = "airlock:deployed-by";

/// Whether a tag key is one of the console's own, ignoring case.
pub fn is_reserved(key: &str) -> bool {
    key.get(..RESERVED_TAG_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(RESERVED_TAG_PREFIX))
}

/// Refuses any reserved key among tags a user asks to set or remove, naming it.
pub fn refuse_reserved(field: &str, tags: &[Tag]) -> Result<(), FieldError> {
    match tags.iter().enumerate().find(|(_, t)| is_reserved(&t.key)) {
        None => Ok(()),
        Some((i, tag)) => Err(FieldError::new(
            format!("{field}[{i}].key"),
            format!(
                "tag key {:?} uses the prefix {RESERVED_TAG_PREFIX} (in any case), which the console reserves for its own tags",
                tag.key
            ),
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_is_reserved_in_any_case() {
        for key in [
            "airlock:deployment",
            "Airlock:upstream",
            "AIRLOCK:port",
            "aIrLoCk:x",
        ] {
            assert!(is_reserved(key), "{key}");
        }
        for key in ["airlock", "airlocks:x", "team", "é"] {
            assert!(!is_reserved(key), "{key}");
        }
        let err = refuse_reserved(
            "tags",
            &[Tag::new("a", "1"), Tag::new("AIRLOCK:port", "80")],
        )
        .unwrap_err();
        assert_eq!(err.field, "tags[1].key");
    }
}
