//! Evaluating a request against a user's policies.
//!
//! IAM's logic for identity policies: an explicit Deny in any statement of
//! any policy wins; otherwise an Allow grants; otherwise the request is
//! implicitly denied.
//!
//! A condition that cannot be evaluated (a context value of the wrong type)
//! fails closed: it counts as false in an Allow statement and as true in a
//! Deny statement, so a malformed request can only lose access, and the
//! problem is reported in [`Response::errors`].

use serde::{Deserialize, Serialize};

use crate::arn::split_arn;
use crate::context::{Context, Request};
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
            let resource_hit = st.resources.iter().any(|r| r.matches(arn.as_ref(), ctx));
            if resource_hit == st.not_resource {
                continue;
            }
            if !conditions_hold(st, ctx, policy, index, &mut errors) {
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

fn action_applies(st: &Statement, action: &str) -> bool {
    let hit = st
        .actions
        .iter()
        .any(|a| glob_match(&a.parts, &[], action, true));
    hit != st.not_action
}

fn conditions_hold(
    st: &Statement,
    ctx: &Context,
    policy: &Policy,
    index: usize,
    errors: &mut Vec<String>,
) -> bool {
    for cond in &st.conditions {
        let holds = match cond.evaluate(ctx) {
            Ok(b) => b,
            Err(msg) => {
                let sid = st
                    .sid
                    .as_ref()
                    .map(|s| format!(" (Sid {s:?})"))
                    .unwrap_or_default();
                errors.push(format!(
                    "policy {:?}, statement[{index}]{sid}, Condition: {msg}; \
                     treated as {} because the statement is a {}",
                    policy.id(),
                    if st.effect == Effect::Deny {
                        "true"
                    } else {
                        "false"
                    },
                    if st.effect == Effect::Deny {
                        "Deny"
                    } else {
                        "Allow"
                    },
                ));
                st.effect == Effect::Deny
            }
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
