//! Evaluating a request against a user's policies.
//!
//! IAM's logic for identity policies: an explicit Deny in any statement of
//! any policy wins; otherwise an Allow grants; otherwise the request is
//! implicitly denied.
//!
//! A condition that cannot be evaluated (a context value of the wrong type,
//! or an ambiguous key, see [`Context::insert_ambiguous`]) fails closed: it
//! counts as false in an Allow statement and as true in a Deny statement, so
//! a malformed request can only lose access, and the problem is reported in
//! [`Response::errors`]. A Resource entry whose policy variable names an
//! ambiguous key fails closed the same way.

use serde::{Deserialize, Serialize};

use crate::arn::split_arn;
use crate::context::{Context, Request, AMBIGUOUS};
use crate::pattern::glob_match;
use crate::policy::{Effect, Policy, Statement};

/// The outcome of an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Decision {
    /// At least one Allow statement applies and no Deny does.
    Allowed,
    /// A Deny statement applies.
    ExplicitDeny,
    /// No statement applies.
    ImplicitDeny,
}

/// Names one statement of one policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatementRef {
    /// The id of the policy, as given to [`Policy::parse`].
    pub policy_id: String,
    /// The statement's position in the policy (0-based).
    pub index: usize,
    /// The statement's Sid, if it has one.
    pub sid: Option<String>,
}

impl std::fmt::Display for StatementRef {
    /// `policy#index (Sid)`, the form decisions are reported in.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.sid {
            Some(sid) => write!(f, "{}#{} ({sid})", self.policy_id, self.index),
            None => write!(f, "{}#{}", self.policy_id, self.index),
        }
    }
}

/// The decision and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    /// Allowed, explicitly denied or implicitly denied.
    pub decision: Decision,
    /// The statements that decided it: the Deny statements that applied for
    /// an explicit deny, the Allow statements that applied for allowed, and
    /// none for an implicit deny.
    pub matched_statements: Vec<StatementRef>,
    /// Problems met while evaluating (e.g. a context value of the wrong type
    /// for its operator); they never grant access.
    pub errors: Vec<String>,
}

/// Evaluates `request` against all of `policies` (typically all the
/// policies of one user).
pub fn evaluate(policies: &[Policy], request: &Request) -> Response {
    let arn = split_arn(&request.resource);
    let ctx = &request.context;
    let mut allows = Vec::new();
    let mut denies = Vec::new();
    let mut errors = Vec::new();
    for policy in policies {
        for (index, st) in policy.statements.iter().enumerate() {
            if !action_applies(st, &request.action) {
                continue;
            }
            let here = Here { policy, index, st };
            if !resource_applies(here, arn.as_ref(), ctx, &mut errors) {
                continue;
            }
            if !conditions_hold(here, ctx, &mut errors) {
                continue;
            }
            let sref = StatementRef {
                policy_id: policy.id().to_string(),
                index,
                sid: st.sid.clone(),
            };
            match st.effect {
                Effect::Allow => allows.push(sref),
                Effect::Deny => denies.push(sref),
            }
        }
    }
    let (decision, matched_statements) = if !denies.is_empty() {
        (Decision::ExplicitDeny, denies)
    } else if !allows.is_empty() {
        (Decision::Allowed, allows)
    } else {
        (Decision::ImplicitDeny, Vec::new())
    };
    Response {
        decision,
        matched_statements,
        errors,
    }
}

/// Every context key (lower-cased) a decision on `action` can read from `policies`: the keys
/// of the conditions of each statement that applies to the action, whatever its resource, and
/// the policy variables in those conditions' values and in the statements' resources. What is
/// not among them cannot change the decision.
pub fn context_keys<'a>(policies: &'a [Policy], action: &'a str) -> impl Iterator<Item = &'a str> {
    policies
        .iter()
        .flat_map(|p| p.statements.iter())
        .filter(move |st| action_applies(st, action))
        .flat_map(statement_keys)
}

/// The context keys one statement reads.
fn statement_keys(st: &Statement) -> impl Iterator<Item = &str> {
    let conditions = st.conditions.iter().flat_map(|c| {
        let in_values: Vec<&str> = match &c.values {
            crate::condition::Values::Str(templates) => templates
                .iter()
                .flat_map(|t| t.vars.iter().map(|v| v.key.as_str()))
                .collect(),
            crate::condition::Values::Arn(patterns) => patterns
                .iter()
                .flat_map(|p| p.templates())
                .flat_map(|t| t.vars.iter().map(|v| v.key.as_str()))
                .collect(),
            _ => Vec::new(),
        };
        std::iter::once(c.key.as_str()).chain(in_values)
    });
    let resources = st
        .resources
        .iter()
        .flat_map(|r| r.templates())
        .flat_map(|t| t.vars.iter().map(|v| v.key.as_str()));
    conditions.chain(resources)
}

fn action_applies(st: &Statement, action: &str) -> bool {
    let hit = st
        .actions
        .iter()
        .any(|a| glob_match(&a.parts, &[], action, true));
    hit != st.not_action
}

/// The statement being evaluated, for error messages.
#[derive(Clone, Copy)]
struct Here<'a> {
    policy: &'a Policy,
    index: usize,
    st: &'a Statement,
}

impl Here<'_> {
    /// Reports `msg` about `element`, which is taken to apply if the
    /// statement is a Deny and not if it is an Allow; returns that outcome.
    fn fail_closed(self, element: &str, msg: &str, errors: &mut Vec<String>) -> bool {
        let deny = self.st.effect == Effect::Deny;
        let sid = self
            .st
            .sid
            .as_ref()
            .map(|s| format!(" (Sid {s:?})"))
            .unwrap_or_default();
        let (outcome, kind) = match (element, deny) {
            ("Condition", true) => ("true", "Deny"),
            ("Condition", false) => ("false", "Allow"),
            // For Resource and NotResource alike: whether the statement applies.
            (_, true) => ("applying", "Deny"),
            (_, false) => ("not applying", "Allow"),
        };
        errors.push(format!(
            "policy {:?}, statement[{}]{sid}, {element}: {msg}; \
             treated as {outcome} because the statement is a {kind}",
            self.policy.id(),
            self.index,
        ));
        deny
    }
}

fn resource_applies(
    here: Here<'_>,
    arn: Option<&[&str; 6]>,
    ctx: &Context,
    errors: &mut Vec<String>,
) -> bool {
    let st = here.st;
    if let Some(key) = ambiguous_resource_variable(st, ctx) {
        let msg = format!("the policy variable ${{{key}}} is ambiguous: {AMBIGUOUS}");
        let element = if st.not_resource {
            "NotResource"
        } else {
            "Resource"
        };
        return here.fail_closed(element, &msg, errors);
    }
    let hit = st.resources.iter().any(|r| r.matches(arn, ctx));
    hit != st.not_resource
}

/// The first ambiguous key a Resource entry uses as a policy variable.
fn ambiguous_resource_variable<'a>(st: &'a Statement, ctx: &Context) -> Option<&'a str> {
    if !ctx.has_ambiguous() {
        return None;
    }
    st.resources
        .iter()
        .flat_map(|r| r.templates())
        .flat_map(|t| &t.vars)
        .map(|v| v.key.as_str())
        .find(|k| ctx.is_ambiguous_lowercased(k))
}

fn conditions_hold(here: Here<'_>, ctx: &Context, errors: &mut Vec<String>) -> bool {
    for cond in &here.st.conditions {
        let holds = match cond.evaluate(ctx) {
            Ok(b) => b,
            Err(msg) => here.fail_closed("Condition", &msg, errors),
        };
        if !holds {
            return false;
        }
    }
    true
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn policy(id: &str, json: &str) -> Policy {
        Policy::parse(id, json).unwrap()
    }

    #[test]
    fn context_keys_are_those_of_statements_for_the_action_with_their_variables() {
        let p = policy(
            "p",
            r#"{"Version":"2012-10-17","Statement":[
              {"Effect":"Allow","Action":"ec2:*","Resource":"*"},
              {"Effect":"Deny","Action":"ec2:Associate*","Resource":"*",
               "Condition":{"StringEquals":{"ec2:ResourceTag/Env":"prod"}}},
              {"Effect":"Allow","Action":"ec2:AssociateAddress",
               "Resource":"arn:aws:ec2:*:*:instance/${ec2:ResourceTag/Owner}",
               "Condition":{"StringEquals":{"aws:username":"${ec2:ResourceTag/Team}"}}},
              {"Effect":"Allow","Action":"ec2:TerminateInstances","Resource":"*",
               "Condition":{"Bool":{"aws:MultiFactorAuthPresent":"true"}}}
            ]}"#,
        );
        let mut keys: Vec<&str> =
            context_keys(std::slice::from_ref(&p), "ec2:AssociateAddress").collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "aws:username",
                "ec2:resourcetag/env",
                "ec2:resourcetag/owner",
                "ec2:resourcetag/team"
            ]
        );
        let keys: Vec<&str> =
            context_keys(std::slice::from_ref(&p), "ec2:TerminateInstances").collect();
        assert_eq!(keys, ["aws:multifactorauthpresent"]);
        assert_eq!(
            context_keys(std::slice::from_ref(&p), "ec2:StopInstances").count(),
            0
        );
    }

    #[test]
    fn deny_beats_allow_across_policies() {
        let allow = policy(
            "allow",
            r#"{"Version":"2012-10-17","Statement":{"Sid":"All","Effect":"Allow","Action":"ec2:*","Resource":"*"}}"#,
        );
        let deny = policy(
            "deny",
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"ec2:TerminateInstances","Resource":"*"}}"#,
        );
        let req = Request::new(
            "ec2:TerminateInstances",
            "arn:aws:ec2:us-east-1:1:instance/i-1",
        );
        let r = evaluate(&[allow.clone(), deny.clone()], &req);
        assert_eq!(r.decision, Decision::ExplicitDeny);
        assert_eq!(
            r.matched_statements,
            vec![StatementRef {
                policy_id: "deny".into(),
                index: 0,
                sid: None
            }]
        );
        let r = evaluate(&[allow, deny], &Request::new("ec2:StartInstances", "*"));
        assert_eq!(r.decision, Decision::Allowed);
        assert_eq!(r.matched_statements[0].sid.as_deref(), Some("All"));
        let r = evaluate(&[], &Request::new("ec2:StartInstances", "*"));
        assert_eq!(r.decision, Decision::ImplicitDeny);
        assert!(r.matched_statements.is_empty());
    }

    #[test]
    fn type_errors_fail_closed() {
        let p = policy(
            "p",
            r#"{"Version":"2012-10-17","Statement":[
              {"Effect":"Allow","Action":"*","Resource":"*"},
              {"Effect":"Deny","Action":"*","Resource":"*","Condition":{"NumericGreaterThan":{"n":"5"}}}]}"#,
        );
        let mut req = Request::new("s3:GetObject", "*");
        req.context.insert("n", "lots");
        let r = evaluate(std::slice::from_ref(&p), &req);
        assert_eq!(r.decision, Decision::ExplicitDeny);
        assert_eq!(r.errors.len(), 1);
        assert!(r.errors[0].contains("statement[1]"), "{}", r.errors[0]);
    }

    const OWNER_ALICE: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"EFFECT",
        "Action":"ec2:StopInstances","Resource":"*",
        "Condition":{"StringEquals":{"ec2:ResourceTag/owner":"alice"}}}}"#;

    fn owner_tagged_twice() -> Request {
        let mut req = Request::new("ec2:StopInstances", "arn:aws:ec2:us-east-1:1:instance/i-1");
        // Tagged owner=alice and Owner=bob.
        req.context.insert_ambiguous("ec2:ResourceTag/owner");
        req
    }

    #[test]
    fn ambiguous_key_does_not_match_an_allow() {
        let allow = policy("allow", &OWNER_ALICE.replace("EFFECT", "Allow"));
        let r = evaluate(&[allow], &owner_tagged_twice());
        assert_eq!(r.decision, Decision::ImplicitDeny);
        assert_eq!(r.errors.len(), 1);
        let e = &r.errors[0];
        assert!(
            e.contains("ambiguous") && e.contains("differ only in case"),
            "{e}"
        );
        assert!(
            e.contains("treated as false because the statement is a Allow"),
            "{e}"
        );
    }

    #[test]
    fn ambiguous_key_matches_a_deny() {
        let deny = policy("deny", &OWNER_ALICE.replace("EFFECT", "Deny"));
        let all = policy(
            "all",
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#,
        );
        let r = evaluate(&[all, deny], &owner_tagged_twice());
        assert_eq!(r.decision, Decision::ExplicitDeny);
        assert_eq!(r.matched_statements[0].policy_id, "deny");
        assert!(r.errors[0].contains("treated as true"), "{:?}", r.errors);
    }

    #[test]
    fn ambiguous_key_fails_null_closed() {
        // Null would otherwise say "absent" (true) or "present" (false).
        for wants in ["true", "false"] {
            let p = policy(
                "null",
                &format!(
                    r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Action":"*",
                    "Resource":"*","Condition":{{"Null":{{"ec2:ResourceTag/owner":"{wants}"}}}}}}}}"#
                ),
            );
            let r = evaluate(&[p], &owner_tagged_twice());
            assert_eq!(r.decision, Decision::ImplicitDeny, "Null {wants}");
            assert_eq!(r.errors.len(), 1);
        }
    }

    #[test]
    fn ambiguous_resource_variable_fails_closed() {
        let json = r#"{"Version":"2012-10-17","Statement":{"Effect":"EFFECT","Action":"*",
            "NotResource":"arn:aws:ec2:*:*:instance/${ec2:ResourceTag/owner, 'x'}"}}"#;
        let allow = policy("allow", &json.replace("EFFECT", "Allow"));
        let r = evaluate(&[allow], &owner_tagged_twice());
        assert_eq!(r.decision, Decision::ImplicitDeny);
        assert!(
            r.errors[0].contains("NotResource: the policy variable"),
            "{:?}",
            r.errors
        );
        let deny = policy("deny", &json.replace("EFFECT", "Deny"));
        let r = evaluate(&[deny], &owner_tagged_twice());
        assert_eq!(r.decision, Decision::ExplicitDeny);
        assert!(
            r.errors[0].contains("treated as applying"),
            "{:?}",
            r.errors
        );
    }

    #[test]
    fn serializes_camel_case() {
        let r = Response {
            decision: Decision::ExplicitDeny,
            matched_statements: vec![StatementRef {
                policy_id: "p".into(),
                index: 0,
                sid: None,
            }],
            errors: vec![],
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"decision":"explicitDeny","matchedStatements":[{"policyId":"p","index":0,"sid":null}],"errors":[]}"#
        );
    }
}
