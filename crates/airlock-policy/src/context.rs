//! The request side of an evaluation: the action, the resource ARN and the
//! request context (the condition keys and their values).
//!
//! Context key names are case-insensitive in IAM, so keys are stored
//! lowercased once, on insertion; evaluation then looks them up with keys
//! that were lowercased at parse time, without allocating.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

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
        struct V;
        impl<'de> Visitor<'de> for V {
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
        d.deserialize_any(V)
    }
}

/// The request context: condition keys (case-insensitive) and their values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Context {
    values: HashMap<String, ContextValue>,
}

impl Context {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` (any case) to `value`, replacing an earlier value.
    pub fn insert(&mut self, key: &str, value: impl Into<ContextValue>) {
        self.values.insert(key.to_lowercase(), value.into());
    }

    /// The value of `key`, looked up without regard to case.
    pub fn get(&self, key: &str) -> Option<&ContextValue> {
        self.values.get(lowercase(key).as_ref())
    }

    /// Lookup with a key the caller has already lowercased.
    pub(crate) fn get_lowercased(&self, key: &str) -> Option<&ContextValue> {
        self.values.get(key)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when the context has no keys.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The keys (lowercased) and values, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ContextValue)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v))
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
                while let Some((k, v)) = map.next_entry::<String, ContextValue>()? {
                    ctx.insert(&k, v);
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
    fn serializes_untagged() {
        let ctx: Context = [("K", ContextValue::from(vec!["x", "y"]))]
            .into_iter()
            .collect();
        assert_eq!(serde_json::to_string(&ctx).unwrap(), r#"{"k":["x","y"]}"#);
    }
}
