//! The request side of an evaluation: the action, the resource ARN and the
//! request context (the condition keys and their values).
//!
//! Context key names are case-insensitive in IAM, so keys are stored
//! lowercased once, on insertion; evaluation then looks them up with keys
//! that were lowercased at parse time, without allocating.
//!
//! That case-insensitivity meets case-sensitive EC2 tag keys: a resource
//! tagged both `owner=alice` and `Owner=bob` has two values for
//! `ec2:ResourceTag/owner`. Picking one would let the tagger choose which
//! policy applies, so such a key is stored as *ambiguous*, and every
//! condition that reads it fails closed (see `condition` and `eval`).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

/// Why an ambiguous key has no value, for evaluation errors.
pub(crate) const AMBIGUOUS: &str = "the resource has (or is to get) tags whose keys differ \
     only in case, so its value is unknown";

/// `text` lowercased, without allocating in the common case of text that
/// is already lowercase ASCII.
pub(crate) fn lowercase(text: &str) -> Cow<'_, str> {
    if text.is_ascii() && !text.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(text.to_lowercase())
    }
}

/// The value of one context key: a single string, or a list for
/// multi-valued keys such as `aws:TagKeys`.
///
/// Serialized untagged: `"v"` or `["a", "b"]`. When deserializing, JSON
/// numbers and booleans are accepted and kept as their text (`5`, `true`),
/// because IAM compares context values as text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ContextValue {
    /// A single-valued key.
    Single(String),
    /// A multi-valued key; an empty list counts as an absent key.
    Multi(Vec<String>),
}

impl ContextValue {
    /// The values as a slice: one element for [`ContextValue::Single`].
    pub fn as_slice(&self) -> &[String] {
        match self {
            ContextValue::Single(s) => std::slice::from_ref(s),
            ContextValue::Multi(v) => v,
        }
    }
}

impl From<String> for ContextValue {
    fn from(s: String) -> Self {
        ContextValue::Single(s)
    }
}

impl From<&str> for ContextValue {
    fn from(s: &str) -> Self {
        ContextValue::Single(s.to_string())
    }
}

impl From<Vec<String>> for ContextValue {
    fn from(v: Vec<String>) -> Self {
        ContextValue::Multi(v)
    }
}

impl From<Vec<&str>> for ContextValue {
    fn from(v: Vec<&str>) -> Self {
        ContextValue::Multi(v.into_iter().map(str::to_string).collect())
    }
}

impl From<&[&str]> for ContextValue {
    fn from(v: &[&str]) -> Self {
        ContextValue::Multi(v.iter().map(|s| s.to_string()).collect())
    }
}

/// A scalar JSON value read as context text.
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for ContextValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

/// Reads a [`ContextValue`]; shared with [`Entry`], which adds the marker
/// object of an ambiguous key.
struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = ContextValue;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string, number, boolean, or a list of those")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<ContextValue, E> {
        Ok(ContextValue::Single(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<ContextValue, E> {
        Ok(ContextValue::Single(v))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<ContextValue, E> {
        Ok(ContextValue::Single(v.to_string()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<ContextValue, E> {
        Ok(ContextValue::Single(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<ContextValue, E> {
        Ok(ContextValue::Single(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<ContextValue, E> {
        Ok(ContextValue::Single(v.to_string()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ContextValue, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(Scalar(s)) = seq.next_element()? {
            out.push(s);
        }
        Ok(ContextValue::Multi(out))
    }
}

/// The request context: condition keys (case-insensitive) and their values.
///
/// Serialized as a JSON object of keys and values; an ambiguous key (see
/// [`Context::insert_ambiguous`]) is written as `{"ambiguous": true}` so that
/// its ambiguity survives a round trip instead of silently turning into an
/// absent key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    values: HashMap<String, ContextValue>,
    /// Lowercased keys whose value is unknown; never also in `values`.
    ambiguous: HashSet<String>,
}

impl Context {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` (any case) to `value`, replacing an earlier value.
    ///
    /// Does nothing for an ambiguous key: ambiguity wins, so that adding
    /// keys in a different order can never turn an unknown value into a
    /// known one.
    pub fn insert(&mut self, key: &str, value: impl Into<ContextValue>) {
        let key = key.to_lowercase();
        if !self.ambiguous.contains(&key) {
            self.values.insert(key, value.into());
        }
    }

    /// Marks `key` (any case) as ambiguous: it has a value, but not one
    /// value that can be told. This is the case of `ec2:ResourceTag/owner`
    /// on a resource tagged both `owner=alice` and `Owner=bob`, since tag
    /// keys are case-sensitive and condition keys are not.
    ///
    /// Every condition that reads an ambiguous key, with any operator
    /// (`Null`, `...IfExists` and `ForAnyValue:`/`ForAllValues:` included),
    /// or uses it as a policy variable, cannot be evaluated: it counts as
    /// false in an Allow statement and true in a Deny statement, and the
    /// problem is reported in [`crate::Response::errors`]. A value inserted
    /// before is dropped, and one inserted later is ignored.
    pub fn insert_ambiguous(&mut self, key: &str) {
        let key = key.to_lowercase();
        self.values.remove(&key);
        self.ambiguous.insert(key);
    }

    /// Whether `key` (any case) was marked with [`Context::insert_ambiguous`].
    pub fn is_ambiguous(&self, key: &str) -> bool {
        self.is_ambiguous_lowercased(lowercase(key).as_ref())
    }

    /// [`Context::is_ambiguous`] with a key the caller has already
    /// lowercased; cheap when no key is ambiguous, the common case.
    pub(crate) fn is_ambiguous_lowercased(&self, key: &str) -> bool {
        !self.ambiguous.is_empty() && self.ambiguous.contains(key)
    }

    /// Whether any key is ambiguous.
    pub(crate) fn has_ambiguous(&self) -> bool {
        !self.ambiguous.is_empty()
    }

    /// The value of `key`, looked up without regard to case; `None` when
    /// the key is absent or ambiguous (tell them apart with
    /// [`Context::is_ambiguous`]).
    pub fn get(&self, key: &str) -> Option<&ContextValue> {
        self.values.get(lowercase(key).as_ref())
    }

    /// Lookup with a key the caller has already lowercased.
    pub(crate) fn get_lowercased(&self, key: &str) -> Option<&ContextValue> {
        self.values.get(key)
    }

    /// Number of keys, ambiguous ones included.
    pub fn len(&self) -> usize {
        self.values.len() + self.ambiguous.len()
    }

    /// True when the context has no keys.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty() && self.ambiguous.is_empty()
    }

    /// The keys (lowercased) and values, in no particular order; ambiguous
    /// keys, which have no value, are listed by [`Context::ambiguous_keys`].
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ContextValue)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The ambiguous keys (lowercased), in no particular order.
    pub fn ambiguous_keys(&self) -> impl Iterator<Item = &str> {
        self.ambiguous.iter().map(String::as_str)
    }
}

impl<K: AsRef<str>, V: Into<ContextValue>> FromIterator<(K, V)> for Context {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut ctx = Context::new();
        for (k, v) in iter {
            ctx.insert(k.as_ref(), v);
        }
        ctx
    }
}

/// The JSON form of an ambiguous key's value.
#[derive(Serialize)]
struct AmbiguousMarker {
    ambiguous: bool,
}

impl Serialize for Context {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.len()))?;
        for (k, v) in &self.values {
            map.serialize_entry(k, v)?;
        }
        for k in &self.ambiguous {
            map.serialize_entry(k, &AmbiguousMarker { ambiguous: true })?;
        }
        map.end()
    }
}

/// One value of a serialized context: a [`ContextValue`], or the marker
/// `{"ambiguous": true}`.
enum Entry {
    Value(ContextValue),
    Ambiguous,
}

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entry;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number, boolean, a list of those, or {\"ambiguous\": true}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Entry, E> {
                ValueVisitor.visit_str(v).map(Entry::Value)
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Entry, E> {
                ValueVisitor.visit_string(v).map(Entry::Value)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Entry, E> {
                ValueVisitor.visit_bool(v).map(Entry::Value)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Entry, E> {
                ValueVisitor.visit_i64(v).map(Entry::Value)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Entry, E> {
                ValueVisitor.visit_u64(v).map(Entry::Value)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Entry, E> {
                ValueVisitor.visit_f64(v).map(Entry::Value)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Entry, A::Error> {
                ValueVisitor.visit_seq(seq).map(Entry::Value)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entry, A::Error> {
                // Only the exact marker is accepted: anything else is more
                // likely a mistake than a value.
                let bad = || de::Error::custom("an object value must be {\"ambiguous\": true}");
                match map.next_entry::<String, bool>()? {
                    Some((k, true)) if k == "ambiguous" => {}
                    _ => return Err(bad()),
                }
                if map.next_key::<de::IgnoredAny>()?.is_some() {
                    return Err(bad());
                }
                Ok(Entry::Ambiguous)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Context {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Context;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of context keys and values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Context, A::Error> {
                let mut ctx = Context::new();
                while let Some((k, v)) = map.next_entry::<String, Entry>()? {
                    match v {
                        Entry::Value(v) => ctx.insert(&k, v),
                        Entry::Ambiguous => ctx.insert_ambiguous(&k),
                    }
                }
                Ok(ctx)
            }
        }
        d.deserialize_map(V)
    }
}

/// One authorization question: may this action be done on this resource,
/// given this context?
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The action, as `service:Action` (e.g. `ec2:CreateSnapshot`).
    pub action: String,
    /// The resource ARN, or `*` for actions without resource-level
    /// permissions.
    pub resource: String,
    /// The condition keys of the request (`aws:username`,
    /// `aws:RequestTag/...`, ...).
    #[serde(default)]
    pub context: Context,
}

impl Request {
    /// A request with an empty context.
    pub fn new(action: impl Into<String>, resource: impl Into<String>) -> Self {
        Request {
            action: action.into(),
            resource: resource.into(),
            context: Context::new(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_case_insensitive() {
        let mut ctx = Context::new();
        ctx.insert("aws:UserName", "Bob");
        assert_eq!(ctx.get("AWS:username"), Some(&ContextValue::from("Bob")));
        assert_eq!(
            ctx.get_lowercased("aws:username").unwrap().as_slice(),
            ["Bob"]
        );
    }

    #[test]
    fn deserializes_request() {
        let r: Request = serde_json::from_str(
            r#"{"action":"ec2:RunInstances","resource":"*",
                "context":{"aws:TagKeys":["a","b"],"N":5,"aws:SecureTransport":true}}"#,
        )
        .unwrap();
        assert_eq!(
            r.context.get("aws:tagkeys"),
            Some(&ContextValue::Multi(vec!["a".into(), "b".into()]))
        );
        assert_eq!(r.context.get("n"), Some(&ContextValue::from("5")));
        assert_eq!(
            r.context.get("aws:securetransport"),
            Some(&ContextValue::from("true"))
        );
        let no_ctx: Request = serde_json::from_str(r#"{"action":"a:b","resource":"*"}"#).unwrap();
        assert!(no_ctx.context.is_empty());
    }

    #[test]
    fn ambiguity_wins_over_values() {
        let mut ctx = Context::new();
        ctx.insert("ec2:ResourceTag/owner", "alice");
        ctx.insert_ambiguous("EC2:ResourceTag/Owner");
        ctx.insert("ec2:resourcetag/OWNER", "bob");
        assert!(ctx.is_ambiguous("ec2:resourcetag/owner"));
        assert!(!ctx.is_ambiguous("ec2:resourcetag/env"));
        assert_eq!(ctx.get("ec2:ResourceTag/owner"), None);
        assert_eq!(ctx.len(), 1);
        assert_eq!(ctx.iter().count(), 0);
        assert_eq!(
            ctx.ambiguous_keys().collect::<Vec<_>>(),
            ["ec2:resourcetag/owner"]
        );
    }

    #[test]
    fn ambiguity_survives_json() {
        let mut ctx = Context::new();
        ctx.insert("a", "1");
        ctx.insert_ambiguous("B");
        let json = serde_json::to_string(&ctx).unwrap();
        let back: Context = serde_json::from_str(&json).unwrap();
        assert_eq!(back, ctx);
        let marker: Context = serde_json::from_str(r#"{"K":{"ambiguous":true}}"#).unwrap();
        assert!(marker.is_ambiguous("k"));
        for bad in [
            r#"{"k":{"ambiguous":false}}"#,
            r#"{"k":{"other":true}}"#,
            r#"{"k":{"ambiguous":true,"x":1}}"#,
        ] {
            assert!(serde_json::from_str::<Context>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn serializes_untagged() {
        let ctx: Context = [("K", ContextValue::from(vec!["x", "y"]))]
            .into_iter()
            .collect();
        assert_eq!(serde_json::to_string(&ctx).unwrap(), r#"{"k":["x","y"]}"#);
    }
}
