//! Deciding a request: every check with the caller's policies, all must be allowed. The one
//! place that turns the evaluator's answers into a verdict and the words users read.

use crate::check::Check;
use crate::principal::Principal;
use airlock_policy::{Decision, Policy, Request, Response};

/// Why a request was refused: the first check that was not allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// The action of that check.
    pub action: String,
    /// Its resource.
    pub resource: String,
    /// Explicit or implicit.
    pub decision: Decision,
    /// The deciding statements, or that none allows it.
    pub why: String,
    /// Problems the evaluator met (they never grant anything).
    pub errors: Vec<String>,
}

impl Denial {
    /// The sentence the caller reads: who, what, on which resource and why.
    pub fn message(&self, user: &str) -> String {
        format!(
            "{user} is not authorized to perform {} on {}: {}",
            self.action, self.resource, self.why
        )
    }

    /// The audit record's detail.
    pub fn detail(&self) -> String {
        with_errors(
            format!("{} on {}: {}", self.action, self.resource, self.why),
            &self.errors,
        )
    }
}

/// The answer to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every check is allowed.
    Allowed {
        /// The statements that allowed them.
        allowed_by: Vec<String>,
        /// Problems the evaluator met on the way.
        errors: Vec<String>,
    },
    /// One check is not.
    Denied(Denial),
}

impl Verdict {
    /// True when every check was allowed.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Verdict::Allowed { .. })
    }
}

/// The request AWS would evaluate: the check with the principal's global keys.
pub fn request_for(principal: &Principal, check: &Check) -> Request {
    let mut context = check.context.clone();
    principal.add_global_keys(&mut context);
    Request {
        action: check.action.clone(),
        resource: check.resource.clone(),
        context,
    }
}

/// One check's evaluation.
pub fn evaluate(policies: &[Policy], principal: &Principal, check: &Check) -> Response {
    airlock_policy::evaluate(policies, &request_for(principal, check))
}

/// Whether deciding `checks` can depend on what EC2 says of their resources (their tags and the
/// other attributes looked up before a change): true when a statement of `policies` or of the
/// session policy that applies to one of their actions reads a context key other than the
/// principal's own (`aws:username`, `aws:SourceIp`, …), in a condition or a policy variable.
/// When false, the decision is the same whatever the resources' tags and attributes, so it can
/// be made without looking them up; ids, ARNs and the principal decide alone.
pub fn needs_resource_facts(
    policies: &[Policy],
    session: Option<&Policy>,
    checks: &[Check],
) -> bool {
    let session = session.map(std::slice::from_ref).unwrap_or_default();
    checks.iter().any(|c| {
        [policies, session].into_iter().any(|set| {
            airlock_policy::context_keys(set, &c.action).any(|k| !Principal::is_global_key(k))
        })
    })
}

/// Whether the policies allow one check.
pub fn allows(policies: &[Policy], principal: &Principal, check: &Check) -> bool {
    evaluate(policies, principal, check).decision == Decision::Allowed
}

/// The words for a decision: the deciding statements, or that none allows it.
pub fn reason(response: &Response) -> String {
    let statements: Vec<String> = response
        .matched_statements
        .iter()
        .map(ToString::to_string)
        .collect();
    match response.decision {
        Decision::Allowed => format!("allowed by {}", statements.join(", ")),
        Decision::ExplicitDeny => format!("explicitly denied by {}", statements.join(", ")),
        Decision::ImplicitDeny => "no statement in your policies allows it".to_owned(),
    }
}

/// Decides every check; all must be allowed. A request with no checks is refused: something
/// that asks nothing must not pass by accident.
pub fn decide(policies: &[Policy], principal: &Principal, checks: &[Check]) -> Verdict {
    if checks.is_empty() {
        return Verdict::Denied(Denial {
            action: String::new(),
            resource: String::new(),
            decision: Decision::ImplicitDeny,
            why: "the request names no action to decide".into(),
            errors: Vec::new(),
        });
    }
    let mut allowed_by = Vec::new();
    let mut errors = Vec::new();
    for check in checks {
        let response = evaluate(policies, principal, check);
        errors.extend(response.errors.iter().cloned());
        if response.decision != Decision::Allowed {
            return Verdict::Denied(Denial {
                action: check.action.clone(),
                resource: check.resource.clone(),
                decision: response.decision,
                why: reason(&response),
                errors,
            });
        }
        allowed_by.extend(response.matched_statements.iter().map(ToString::to_string));
    }
    allowed_by.sort();
    allowed_by.dedup();
    errors.sort();
    errors.dedup();
    Verdict::Allowed { allowed_by, errors }
}

/// Decides every check with the caller's policies and, for credentials bound by a session
/// policy (an instance's key in `proxy` mode), with that policy too: an AWS action must be
/// allowed by both, as AWS intersects an STS session policy with its identity's policies.
/// Console actions (`airlock:*`) are the console's own, which a session policy does not name;
/// the caller's policies alone decide them.
pub fn decide_within(
    policies: &[Policy],
    session: Option<&Policy>,
    principal: &Principal,
    checks: &[Check],
) -> Verdict {
    let verdict = decide(policies, principal, checks);
    let (Some(session), Verdict::Allowed { allowed_by, errors }) = (session, &verdict) else {
        return verdict;
    };
    let (mut allowed_by, mut errors) = (allowed_by.clone(), errors.clone());
    for check in checks.iter().filter(|c| !c.action.starts_with("airlock:")) {
        let response = evaluate(std::slice::from_ref(session), principal, check);
        errors.extend(response.errors.iter().cloned());
        if response.decision != Decision::Allowed {
            let why = match response.decision {
                Decision::ImplicitDeny => "no statement of the session policy allows it".to_owned(),
                _ => format!("in the session policy, {}", reason(&response)),
            };
            return Verdict::Denied(Denial {
                action: check.action.clone(),
                resource: check.resource.clone(),
                decision: response.decision,
                why,
                errors,
            });
        }
        allowed_by.extend(response.matched_statements.iter().map(ToString::to_string));
    }
    allowed_by.sort();
    allowed_by.dedup();
    errors.sort();
    errors.dedup();
    Verdict::Allowed { allowed_by, errors }
}

/// `text`, followed by the evaluator's problems when there were any.
pub fn with_errors(text: String, errors: &[String]) -> String {
    if errors.is_empty() {
        text
    } else {
        format!("{text} (evaluation problems: {})", errors.join("; "))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn principal() -> Principal {
        Principal::new("bob", false, None)
    }

    fn policy(json: &str) -> Policy {
        Policy::parse("p", json).unwrap()
    }

    #[test]
    fn the_first_refused_check_is_named() {
        let p = policy(
            r#"{"Version":"2012-10-17","Statement":[
                {"Effect":"Allow","Action":"ec2:*","Resource":"*"},
                {"Sid":"NoTerminate","Effect":"Deny","Action":"ec2:TerminateInstances","Resource":"*"}]}"#,
        );
        let checks = [
            Check::new("ec2:StopInstances", "arn:i-1"),
            Check::new("ec2:TerminateInstances", "arn:i-2"),
        ];
        let Verdict::Denied(d) = decide(std::slice::from_ref(&p), &principal(), &checks) else {
            panic!("allowed")
        };
        assert_eq!(d.decision, Decision::ExplicitDeny);
        assert_eq!(d.resource, "arn:i-2");
        assert_eq!(
            d.message("bob"),
            "bob is not authorized to perform ec2:TerminateInstances on arn:i-2: explicitly denied by p#1 (NoTerminate)"
        );
        assert!(decide(&[p], &principal(), &checks[..1]).is_allowed());
    }

    /// A user who may move addresses only onto `env=dev` instances: their decision reads the
    /// instance's tags, so the tags must be looked up; an administrator's does not. A deny with
    /// a tag condition, or a session policy with one, counts as much as an allow.
    #[test]
    fn resource_facts_are_needed_only_when_a_statement_for_the_action_reads_them() {
        let checks = [
            Check::new(
                "ec2:AssociateAddress",
                "arn:aws:ec2:us-east-1:1:elastic-ip/eipalloc-1",
            ),
            Check::new("airlock:UseAccount", "arn:airlock:console:::account/dev"),
        ];
        let admin = policy(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
        );
        assert!(!needs_resource_facts(
            std::slice::from_ref(&admin),
            None,
            &checks
        ));
        let from_office = policy(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*",
                "Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"},"Bool":{"aws:MultiFactorAuthPresent":"true"}}}]}"#,
        );
        assert!(!needs_resource_facts(&[from_office], None, &checks));
        let dev_only = policy(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:AssociateAddress","Resource":"*",
                "Condition":{"StringEquals":{"ec2:ResourceTag/env":"dev"}}}]}"#,
        );
        assert!(needs_resource_facts(
            std::slice::from_ref(&dev_only),
            None,
            &checks
        ));
        let no_prod = policy(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"ec2:*","Resource":"*",
                "Condition":{"StringEquals":{"ec2:ResourceTag/env":"prod"}}}]}"#,
        );
        assert!(needs_resource_facts(
            &[admin.clone(), no_prod],
            None,
            &checks
        ));
        assert!(needs_resource_facts(
            std::slice::from_ref(&admin),
            Some(&dev_only),
            &checks
        ));
        // A condition on another action does not count.
        let other = policy(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"ec2:TerminateInstances","Resource":"*",
                "Condition":{"StringEquals":{"ec2:ResourceTag/env":"prod"}}}]}"#,
        );
        assert!(!needs_resource_facts(&[admin, other], None, &checks));
    }

    #[test]
    fn nothing_to_decide_is_refused() {
        let p = policy(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
        );
        assert!(!decide(&[p], &principal(), &[]).is_allowed());
    }

    #[test]
    fn a_session_policy_narrows_aws_actions_but_not_the_console_s() {
        let user = policy(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ec2:*","airlock:UseAccount"],"Resource":"*"}]}"#,
        );
        let session = Policy::parse(
            "session",
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"Describe","Effect":"Allow","Action":"ec2:DescribeInstances","Resource":"*"},
                {"Sid":"NoStop","Effect":"Deny","Action":"ec2:StopInstances","Resource":"*"}]}"#,
        )
        .unwrap();
        let users = std::slice::from_ref(&user);
        let describe = [
            Check::new("ec2:DescribeInstances", "*"),
            Check::new("airlock:UseAccount", "arn:airlock:console:::account/dev"),
        ];
        let Verdict::Allowed { allowed_by, .. } =
            decide_within(users, Some(&session), &principal(), &describe)
        else {
            panic!("refused")
        };
        assert!(
            allowed_by.iter().any(|s| s.contains("Describe")),
            "{allowed_by:?}"
        );
        let Verdict::Denied(d) = decide_within(
            users,
            Some(&session),
            &principal(),
            &[Check::new("ec2:TerminateInstances", "arn:i-1")],
        ) else {
            panic!("allowed beyond the session policy")
        };
        assert_eq!(d.why, "no statement of the session policy allows it");
        let Verdict::Denied(d) = decide_within(
            users,
            Some(&session),
            &principal(),
            &[Check::new("ec2:StopInstances", "arn:i-1")],
        ) else {
            panic!("allowed against the session policy's Deny")
        };
        assert_eq!(d.decision, Decision::ExplicitDeny);
        assert!(d.why.contains("NoStop"), "{}", d.why);
        // Without a session policy the user's policies alone decide, as before.
        assert!(decide_within(
            users,
            None,
            &principal(),
            &[Check::new("ec2:StopInstances", "*")]
        )
        .is_allowed());
        // The session policy never widens: what the user may not do stays refused.
        assert!(!decide_within(
            &[],
            Some(&session),
            &principal(),
            &[Check::new("ec2:DescribeInstances", "*")]
        )
        .is_allowed());
    }

    #[test]
    fn variables_resolve_to_the_caller() {
        let p = policy(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:StopInstances","Resource":"*",
                "Condition":{"StringEquals":{"ec2:ResourceTag/owner":"${aws:username}"}}}]}"#,
        );
        let mine = Check::new("ec2:StopInstances", "*")
            .with_resource_tags(&[airlock_cloud::Tag::new("owner", "bob")]);
        let twins = Check::new("ec2:StopInstances", "*").with_resource_tags(&[
            airlock_cloud::Tag::new("owner", "bob"),
            airlock_cloud::Tag::new("OWNER", "bob"),
        ]);
        assert!(allows(std::slice::from_ref(&p), &principal(), &mine));
        assert!(!allows(&[p], &principal(), &twins));
    }
}
