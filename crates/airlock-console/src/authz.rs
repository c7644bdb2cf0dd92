//! Authorization of every console action, as I/O around the pure core in `airlock-access`:
//! the caller's policies are loaded (parsed once per version), the core decides, and the
//! decision is audited. An allowed decision that cannot be written to the audit log refuses
//! the request, so nothing reaches EC2 unrecorded.

use crate::audit::{self, AuditDecision, AuditOutcome, Entry};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use airlock_access::{Principal, Verdict};
use airlock_cloud::{Ec2, Tag};
use airlock_policy::Policy;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use airlock_access::{arn as ec2_arn, console_arn, Check};

/// Parsed policies per user, kept while the stored documents are the same: the documents are
/// read on every request (so a change made through any console node counts at once), the
/// parsing is not repeated.
#[derive(Default)]
pub struct PolicyCache {
    entries: Mutex<HashMap<String, Parsed>>,
}

/// A user's policy documents (name, text) and what they parse to.
struct Parsed {
    documents: Vec<(String, String)>,
    policies: Arc<Vec<Policy>>,
}

/// Users whose parsed policies are kept at most; beyond it the cache starts again.
const POLICY_CACHE_USERS: usize = 10_000;

impl PolicyCache {
    fn get(&self, user: &str, documents: &[(String, String)]) -> Option<Arc<Vec<Policy>>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(user)
            .filter(|p| p.documents == documents)
            .map(|p| p.policies.clone())
    }

    fn put(&self, user: &str, documents: Vec<(String, String)>, parsed: Arc<Vec<Policy>>) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= POLICY_CACHE_USERS {
            entries.clear();
        }
        entries.insert(
            user.to_owned(),
            Parsed {
                documents,
                policies: parsed,
            },
        );
    }
}

/// The caller's policies, parsed. A stored policy that no longer parses grants nothing and is
/// reported in the log.
pub(crate) async fn policies_of(state: &AppState, user: &str) -> ApiResult<Arc<Vec<Policy>>> {
    let documents: Vec<(String, String)> = state
        .store
        .user_policies(user)
        .await?
        .into_iter()
        .map(|row| (row.name, row.document))
        .collect();
    if let Some(parsed) = state.policies.get(user, &documents) {
        return Ok(parsed);
    }
    let mut out = Vec::new();
    for (name, document) in &documents {
        match Policy::parse(name, document) {
            Ok(p) => out.push(p),
            Err(e) => {
                tracing::error!(policy = %name, error = %e, "stored policy does not parse; it grants nothing")
            }
        }
    }
    let parsed = Arc::new(out);
    state.policies.put(user, documents, parsed.clone());
    Ok(parsed)
}

/// What binds a caller acting for a deployment's instance (an instance's access key in `proxy`
/// mode): the deployment's account, and its session policy as generated now from the
/// deployer's policies.
#[derive(Debug)]
pub struct SessionBound {
    /// The deployment.
    pub deployment_id: String,
    /// The account it runs in: the only one the key may reach.
    pub account: String,
    /// The session policy.
    pub policy: Policy,
}

/// The caller's verdict: their policies and, when bound, the session policy; a bound caller
/// reaches no account but its deployment's.
fn verdict(policies: &[Policy], caller: &Caller, checks: &[Check]) -> Verdict {
    let Some(bound) = &caller.session else {
        return airlock_access::decide(policies, &principal(caller), checks);
    };
    let own = airlock_access::ops::use_account(&bound.account);
    let elsewhere = checks
        .iter()
        .find(|c| c.action == own.action && c.resource != own.resource);
    if let Some(check) = elsewhere {
        return Verdict::Denied(airlock_access::Denial {
            action: check.action.clone(),
            resource: check.resource.clone(),
            decision: airlock_policy::Decision::ExplicitDeny,
            why: format!(
                "the instances of deployment {} reach only its account {}",
                bound.deployment_id, bound.account
            ),
            errors: Vec::new(),
        });
    }
    airlock_access::decide_within(policies, Some(&bound.policy), &principal(caller), checks)
}

/// The caller as the policy language sees them, deciding now.
pub(crate) fn principal(caller: &Caller) -> Principal {
    Principal::new(caller.user.as_str(), caller.mfa, caller.source_ip)
}

fn resources_of(checks: &[Check]) -> Vec<String> {
    checks
        .iter()
        .map(|c| format!("{} {}", c.action, c.resource))
        .collect()
}

/// Counts a decided request in `airlock_authz_decisions_total`.
fn count_decision(decision: AuditDecision) {
    metrics::counter!("airlock_authz_decisions_total", "decision" => decision.as_str())
        .increment(1);
}

/// Audits a refusal and turns it into the 403 the caller reads.
async fn refuse(
    state: &AppState,
    caller: &Caller,
    checks: &[Check],
    denial: airlock_access::Denial,
) -> ApiError {
    let action = checks
        .first()
        .map(|c| c.action.as_str())
        .unwrap_or_default();
    let mut entry = Entry::for_caller(caller, action, resources_of(checks));
    entry.decision = audit::decision_of(denial.decision);
    count_decision(entry.decision);
    entry.outcome = AuditOutcome::Denied;
    entry.detail = Some(denial.detail());
    audit::record(state, entry).await;
    ApiError::Forbidden(denial.message(&caller.user))
}

/// Decides every check with the caller's policies; all must be allowed. The decision is
/// audited, and an allowed one must be written before the request goes on; a denial is a 403
/// naming the action, the resource and why.
pub async fn authorize(state: &AppState, caller: &Caller, checks: Vec<Check>) -> ApiResult<()> {
    let policies = policies_of(state, &caller.user).await?;
    authorize_with(state, caller, &policies, checks).await
}

/// [`authorize`] with the caller's policies already loaded for this request.
pub(crate) async fn authorize_with(
    state: &AppState,
    caller: &Caller,
    policies: &[airlock_policy::Policy],
    checks: Vec<Check>,
) -> ApiResult<()> {
    match verdict(policies, caller, &checks) {
        Verdict::Denied(denial) => Err(refuse(state, caller, &checks, denial).await),
        Verdict::Allowed { allowed_by, errors } => {
            count_decision(AuditDecision::Allowed);
            let action = checks
                .first()
                .map(|c| c.action.as_str())
                .unwrap_or_default();
            let mut entry = Entry::for_caller(caller, action, resources_of(&checks));
            entry.decision = AuditDecision::Allowed;
            entry.outcome = AuditOutcome::Allowed;
            entry.detail = Some(airlock_access::decide::with_errors(
                format!("allowed by {}", allowed_by.join(", ")),
                &errors,
            ));
            audit::record_required(state, entry).await
        }
    }
}

/// Decides the checks that need no facts from EC2 (`airlock:UseAccount`, console objects)
/// before the account's key is unsealed or anything is looked up, so an unauthorized caller
/// learns nothing of what exists. Only a refusal is recorded here; the full decision that
/// follows is recorded in any case.
pub async fn precheck(state: &AppState, caller: &Caller, checks: Vec<Check>) -> ApiResult<()> {
    let policies = policies_of(state, &caller.user).await?;
    match verdict(&policies, caller, &checks) {
        Verdict::Denied(denial) => Err(refuse(state, caller, &checks, denial).await),
        Verdict::Allowed { .. } => Ok(()),
    }
}

/// Whether the caller may do one thing, without auditing: for filtering what a listing shows,
/// not for deciding a request.
pub(crate) fn permits(policies: &[Policy], caller: &Principal, check: &Check) -> bool {
    airlock_access::decide::allows(policies, caller, check)
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
/// Resources whose tags are kept at most; beyond, expired entries go, then all of them.
const TAG_CACHE_ENTRIES: usize = 100_000;

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
        if entries.len() + fresh.len() > TAG_CACHE_ENTRIES {
            entries.retain(|_, (at, _)| at.elapsed() < TAG_TTL);
            if entries.len() + fresh.len() > TAG_CACHE_ENTRIES {
                entries.clear();
            }
        }
        for (id, tags) in fresh {
            entries.insert(format!("{account}/{id}"), (now, tags.clone()));
            out.insert(id, tags);
        }
        Ok(out)
    }

    /// Forgets these resources in every account (another node changed them; its events name
    /// AWS account ids, not this console's account names).
    pub fn forget_everywhere(&self, ids: &[String]) {
        if ids.is_empty() {
            return;
        }
        let ids: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.retain(|key, _| key.rsplit_once('/').is_none_or(|(_, id)| !ids.contains(id)));
    }

    /// Forgets every resource's tags.
    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Forgets what is known of these resources (after the console changed their tags).
    pub fn forget(&self, account: &str, ids: &[String]) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        for id in ids {
            entries.remove(&format!("{account}/{id}"));
        }
    }
}
