//! Authorization of every console action: the request context AWS would build, evaluated
//! against the caller's policies before anything reaches EC2, and audited either way.

use crate::audit::{self, Entry};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use airlock_cloud::{Ec2, Tag};
use airlock_policy::{Context, Decision, Policy, Request};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// ARN of a console object (account, user, policy, deployment): `arn:airlock:console:::KIND/NAME`.
pub fn console_arn(kind: &str, name: &str) -> String {
    format!("arn:airlock:console:::{kind}/{name}")
}

/// ARN of an EC2 resource, as AWS writes it (one definition, shared with the fleet operations).
pub use airlock_fleet::arn as ec2_arn;
/// One action on one resource, with the context keys specific to it.
pub use airlock_fleet::Check;

/// The caller's policies, parsed. A stored policy that no longer parses grants nothing and is
/// reported in the log.
pub(crate) async fn policies_of(state: &AppState, user: &str) -> ApiResult<Vec<Policy>> {
    let mut out = Vec::new();
    for row in state.store.user_policies(user).await? {
        match Policy::parse(&row.name, &row.document) {
            Ok(p) => out.push(p),
            Err(e) => {
                tracing::error!(policy = %row.name, error = %e, "stored policy does not parse; it grants nothing")
            }
        }
    }
    Ok(out)
}

pub(crate) fn global_context(caller: &Caller, context: &mut Context) {
    let now = chrono::Utc::now();
    context.insert("aws:username", caller.user.as_str());
    context.insert("aws:userid", caller.user.as_str());
    context.insert(
        "aws:CurrentTime",
        now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    );
    context.insert("aws:EpochTime", now.timestamp().to_string());
    context.insert(
        "aws:MultiFactorAuthPresent",
        if caller.mfa { "true" } else { "false" },
    );
    if let Some(ip) = caller.source_ip {
        context.insert("aws:SourceIp", ip.to_string());
    }
}

/// Whether the policies allow one check for the caller, without auditing (for computing what
/// to grant, not for deciding a request).
pub(crate) fn allows(policies: &[Policy], caller: &Caller, check: &Check) -> bool {
    airlock_policy::evaluate(policies, &request_for(caller, check)).decision == Decision::Allowed
}

/// The request AWS would evaluate: the check with the caller's global context keys.
fn request_for(caller: &Caller, check: &Check) -> Request {
    let mut context = check.context.clone();
    global_context(caller, &mut context);
    Request {
        action: check.action.clone(),
        resource: check.resource.clone(),
        context,
    }
}

/// Decides every check with the caller's policies; all must be allowed. The decision is audited;
/// a denial is a 403 naming the action, the resource and why.
pub async fn authorize(state: &AppState, caller: &Caller, checks: Vec<Check>) -> ApiResult<()> {
    let policies = policies_of(state, &caller.user).await?;
    let action = checks.first().map(|c| c.action.clone()).unwrap_or_default();
    let resources: Vec<String> = checks
        .iter()
        .map(|c| format!("{} {}", c.action, c.resource))
        .collect();
    let mut allowed_by = Vec::new();
    for check in checks {
        let response = airlock_policy::evaluate(&policies, &request_for(caller, &check));
        let statements: Vec<String> = response
            .matched_statements
            .iter()
            .map(ToString::to_string)
            .collect();
        let (decision, why) = match response.decision {
            Decision::Allowed => {
                allowed_by.extend(statements);
                continue;
            }
            Decision::ExplicitDeny => (
                "explicitDeny",
                format!("explicitly denied by {}", statements.join(", ")),
            ),
            Decision::ImplicitDeny => (
                "implicitDeny",
                "no statement in your policies allows it".to_owned(),
            ),
        };
        let mut entry = Entry::for_caller(caller, &action, resources);
        entry.decision = decision.into();
        entry.outcome = "denied".into();
        entry.detail = Some(format!("{} on {}: {why}", check.action, check.resource));
        audit::record(state, entry).await;
        return Err(ApiError::Forbidden(format!(
            "{} is not authorized to perform {} on {}: {why}",
            caller.user, check.action, check.resource
        )));
    }
    allowed_by.sort();
    allowed_by.dedup();
    let mut entry = Entry::for_caller(caller, &action, resources);
    entry.decision = "allowed".into();
    entry.outcome = "allowed".into();
    entry.detail = Some(format!("allowed by {}", allowed_by.join(", ")));
    audit::record(state, entry).await;
    Ok(())
}

/// Authorizes one action on one resource (the common case for console objects).
pub async fn authorize_one(
    state: &AppState,
    caller: &Caller,
    action: &str,
    resource: &str,
) -> ApiResult<()> {
    authorize(state, caller, vec![Check::new(action, resource)]).await
}

/// Tags of existing resources, looked up in EC2 and kept briefly: a policy on
/// `ec2:ResourceTag/*` must see the resource's real tags, never what a client claims.
#[derive(Default)]
pub struct TagCache {
    entries: Mutex<HashMap<String, (Instant, Vec<Tag>)>>,
}

/// How long looked-up tags are trusted.
const TAG_TTL: Duration = Duration::from_secs(5);

impl TagCache {
    /// The current tags of each resource id in `account` (ids EC2 does not know have none).
    pub async fn tags(
        &self,
        ec2: &dyn Ec2,
        account: &str,
        ids: &[String],
    ) -> ApiResult<HashMap<String, Vec<Tag>>> {
        let mut out = HashMap::new();
        let mut missing = Vec::new();
        {
            let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            for id in ids {
                match entries.get(&format!("{account}/{id}")) {
                    Some((at, tags)) if at.elapsed() < TAG_TTL => {
                        out.insert(id.clone(), tags.clone());
                    }
                    _ => missing.push(id.clone()),
                }
            }
        }
        if missing.is_empty() {
            return Ok(out);
        }
        let found = ec2.describe_tags(&missing).await?;
        let mut fresh: HashMap<String, Vec<Tag>> =
            missing.iter().map(|id| (id.clone(), Vec::new())).collect();
        for (id, tag) in found {
            fresh.entry(id).or_default().push(tag);
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        for (id, tags) in fresh {
            entries.insert(format!("{account}/{id}"), (now, tags.clone()));
            out.insert(id, tags);
        }
        Ok(out)
    }

    /// Forgets what is known of these resources (after the console changed their tags).
    pub fn forget(&self, account: &str, ids: &[String]) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        for id in ids {
            entries.remove(&format!("{account}/{id}"));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn console_arns() {
        assert_eq!(
            console_arn("account", "prod"),
            "arn:airlock:console:::account/prod"
        );
    }
}
