//! Tag filters as Gloo's EC2 upstreams write them (`key` and `kvPair`), matched against an
//! instance's tags exactly as EC2's own `tag:` filters match: case-sensitive, no trimming.
//!
//! (Gloo lowercases keys before comparing; Airlock does not, so `Team` and `team` differ.)

use airlock_cloud::Tag;
use serde::Serialize;

/// One tag filter of an upstream.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum TagFilter {
    /// The instance has a tag with this key, whatever its value.
    Key(String),
    /// The instance has a tag with this key and exactly this value.
    KvPair {
        /// Tag key.
        key: String,
        /// Tag value.
        value: String,
    },
}

impl TagFilter {
    /// True when the tags satisfy this filter.
    pub fn matches(&self, tags: &[Tag]) -> bool {
        match self {
            TagFilter::Key(key) => tags.iter().any(|t| &t.key == key),
            TagFilter::KvPair { key, value } => {
                tags.iter().any(|t| &t.key == key && &t.value == value)
            }
        }
    }

    /// The tag key this filter requires.
    pub fn key(&self) -> &str {
        match self {
            TagFilter::Key(key) | TagFilter::KvPair { key, .. } => key,
        }
    }
}

impl std::fmt::Display for TagFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TagFilter::Key(key) => write!(f, "tag-key={key}"),
            TagFilter::KvPair { key, value } => write!(f, "tag:{key}={value}"),
        }
    }
}

/// True when the tags satisfy every filter (an empty list matches everything the credentials see).
pub fn matches_all(filters: &[TagFilter], tags: &[Tag]) -> bool {
    filters.iter().all(|f| f.matches(tags))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Vec<Tag> {
        pairs.iter().map(|(k, v)| Tag::new(*k, *v)).collect()
    }

    #[test]
    fn key_matches_presence_whatever_the_value() {
        let f = TagFilter::Key("gloo-id".into());
        assert!(f.matches(&tags(&[("gloo-id", "")])));
        assert!(f.matches(&tags(&[("x", "y"), ("gloo-id", "7")])));
        assert!(!f.matches(&tags(&[("gloo-idx", "1")])));
        assert!(!f.matches(&[]));
    }

    #[test]
    fn kv_pair_needs_key_and_value() {
        let f = TagFilter::KvPair {
            key: "gloo-tag".into(),
            value: "group1".into(),
        };
        assert!(f.matches(&tags(&[("gloo-tag", "group1")])));
        assert!(!f.matches(&tags(&[("gloo-tag", "group2")])));
        assert!(!f.matches(&tags(&[("other", "group1")])));
    }

    #[test]
    fn matching_is_case_sensitive_unlike_gloo() {
        let key = TagFilter::Key("Team".into());
        assert!(!key.matches(&tags(&[("team", "a")])));
        let kv = TagFilter::KvPair {
            key: "env".into(),
            value: "Prod".into(),
        };
        assert!(!kv.matches(&tags(&[("env", "prod")])));
        assert!(!kv.matches(&tags(&[("Env", "Prod")])));
        assert!(kv.matches(&tags(&[("env", "Prod")])));
    }

    #[test]
    fn all_filters_must_match() {
        let filters = vec![
            TagFilter::Key("gloo-id".into()),
            TagFilter::KvPair {
                key: "gloo-tag".into(),
                value: "group1".into(),
            },
        ];
        assert!(matches_all(
            &filters,
            &tags(&[("gloo-id", "1"), ("gloo-tag", "group1")])
        ));
        assert!(!matches_all(&filters, &tags(&[("gloo-tag", "group1")])));
        assert!(matches_all(&[], &[]));
    }
}
