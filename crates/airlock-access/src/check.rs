//! One question for the evaluator: an action on a resource with the condition keys AWS would
//! put in the request context. Tag keys are where IAM and EC2 disagree (EC2 keys are
//! case-sensitive, condition keys are not), so tags enter a context only through here.

use airlock_cloud::{Scope, Tag};
use airlock_policy::{Context, ContextValue};

/// ARN of a console object (account, user, policy, deployment): `arn:airlock:console:::KIND/NAME`.
pub fn console_arn(kind: &str, name: &str) -> String {
    format!("arn:airlock:console:::{kind}/{name}")
}

/// One action on one resource, with the context keys specific to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// e.g. `ec2:CreateSnapshot`.
    pub action: String,
    /// The resource ARN.
    pub resource: String,
    /// Keys beyond the global ones (tags, region, sizes…).
    pub context: Context,
}

impl Check {
    /// A check with no specific context.
    pub fn new(action: &str, resource: impl Into<String>) -> Check {
        Check {
            action: action.to_owned(),
            resource: resource.into(),
            context: Context::new(),
        }
    }

    /// Adds a context key.
    pub fn with(mut self, key: &str, value: impl Into<ContextValue>) -> Check {
        self.context.insert(key, value);
        self
    }

    /// Adds a context key when there is a value.
    pub fn with_some(self, key: &str, value: Option<impl Into<ContextValue>>) -> Check {
        match value {
            Some(v) => self.with(key, v),
            None => self,
        }
    }

    /// Adds `ec2:ResourceTag/K` and `aws:ResourceTag/K` for each current tag of the resource.
    /// Keys that differ only in case (EC2 allows both) make the key ambiguous: an Allow that
    /// reads it does not match, a Deny does.
    pub fn with_resource_tags(mut self, tags: &[Tag]) -> Check {
        for prefix in ["ec2:ResourceTag/", "aws:ResourceTag/"] {
            insert_tags(&mut self.context, prefix, tags);
        }
        self
    }

    /// Adds `aws:RequestTag/K` for each requested tag and `aws:TagKeys`.
    pub fn with_request_tags(mut self, tags: &[Tag]) -> Check {
        insert_tags(&mut self.context, "aws:RequestTag/", tags);
        let keys: Vec<String> = tags.iter().map(|t| t.key.clone()).collect();
        if !keys.is_empty() {
            self.context.insert("aws:TagKeys", keys);
        }
        self
    }
}

fn insert_tags(context: &mut Context, prefix: &str, tags: &[Tag]) {
    for (i, t) in tags.iter().enumerate() {
        let key = format!("{prefix}{}", t.key);
        let folded = t.key.to_lowercase();
        let twin = tags
            .iter()
            .take(i)
            .any(|earlier| earlier.key.to_lowercase() == folded);
        if twin {
            context.insert_ambiguous(&key);
        } else {
            context.insert(&key, t.value.as_str());
        }
    }
}

/// Checks on resources of one account and region.
pub trait ScopeChecks {
    /// A check on an existing resource with its current tags.
    fn existing(&self, action: &str, kind: &str, id: &str, tags: &[Tag]) -> Check;
    /// A check on a resource being created, with the tags requested for it.
    fn created(&self, action: &str, kind: &str, id: &str, tags: &[Tag]) -> Check;
    /// `ec2:CreateTags` as AWS checks it for tags on creation: on the new resource, with
    /// `ec2:CreateAction` naming the creating action. Nothing when no tags are requested.
    fn tagging(&self, create_action: &str, kind: &str, id: &str, tags: &[Tag]) -> Option<Check>;
}

impl ScopeChecks for Scope {
    fn existing(&self, action: &str, kind: &str, id: &str, tags: &[Tag]) -> Check {
        Check::new(action, self.arn(kind, id))
            .with_resource_tags(tags)
            .with("ec2:Region", self.region.as_str())
    }

    fn created(&self, action: &str, kind: &str, id: &str, tags: &[Tag]) -> Check {
        Check::new(action, self.arn(kind, id))
            .with_request_tags(tags)
            .with("ec2:Region", self.region.as_str())
    }

    fn tagging(&self, create_action: &str, kind: &str, id: &str, tags: &[Tag]) -> Option<Check> {
        (!tags.is_empty()).then(|| {
            self.created("ec2:CreateTags", kind, id, tags)
                .with("ec2:CreateAction", create_action)
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn request_tags_give_tag_keys() {
        let c = Check::new("ec2:RunInstances", "*")
            .with_request_tags(&[Tag::new("owner", "ana"), Tag::new("team", "web")]);
        assert!(
            matches!(c.context.get("aws:tagkeys"), Some(ContextValue::Multi(v)) if v.len() == 2)
        );
        assert!(
            matches!(c.context.get("AWS:RequestTag/owner"), Some(ContextValue::Single(v)) if v == "ana")
        );
    }

    #[test]
    fn tag_keys_differing_only_in_case_are_ambiguous() {
        let c = Check::new("ec2:TerminateInstances", "*")
            .with_resource_tags(&[Tag::new("owner", "alice"), Tag::new("Owner", "bob")]);
        assert!(c.context.is_ambiguous("ec2:ResourceTag/owner"));
        assert!(c.context.is_ambiguous("aws:ResourceTag/OWNER"));
        let plain = Check::new("ec2:TerminateInstances", "*")
            .with_resource_tags(&[Tag::new("owner", "alice"), Tag::new("team", "web")]);
        assert!(!plain.context.is_ambiguous("ec2:ResourceTag/owner"));
    }

    #[test]
    fn console_arns() {
        assert_eq!(
            console_arn("account", "prod"),
            "arn:airlock:console:::account/prod"
        );
    }
}
