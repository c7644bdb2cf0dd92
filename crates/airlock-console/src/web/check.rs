//! What the pages ask before acting: the caller's own decision for a list of actions
//! (`POST /v1/authorize/check`), and policy validation as you type (`POST /v1/policies/validate`).
//!
//! A check decides exactly as the real action would (same evaluator, same global context, the
//! resource's real tags looked up in EC2), but changes nothing and is not audited: it is asked
//! again whenever a page's selection changes. The real action is still authorized on its own.

use crate::accounts;
use crate::auth::Caller;
use crate::authz::{ec2_arn, policies_of, principal, Check};
use crate::error::{ApiError, ApiResult};
use crate::json::Body;
use crate::state::AppState;
use airlock_access::Principal;
use airlock_api::users::{
    AuthorizeCheckItem, AuthorizeCheckRequest, AuthorizeCheckResponse, AuthorizeCheckResult,
    ValidatePolicyRequest, ValidatePolicyResponse,
};
use airlock_policy::{Context, Decision, Policy};
use airlock_store::AccountRow;
use axum::extract::State;
use axum::Json;
use std::collections::HashMap;

/// At most this many questions per request (a page of 1,000 instances times four actions).
const MAX_CHECKS: usize = 5000;

/// EC2 resource kinds whose current tags a policy can see (`ec2:ResourceTag/K`).
const TAGGED_KINDS: &[&str] = &[
    "instance",
    "image",
    "subnet",
    "security-group",
    "volume",
    "snapshot",
    "key-pair",
    "network-interface",
    "elastic-ip",
];

fn decide(
    policies: &[Policy],
    caller: &Principal,
    action: &str,
    resource: &str,
    context: Context,
) -> AuthorizeCheckResult {
    let check = Check {
        action: action.to_owned(),
        resource: resource.to_owned(),
        context,
    };
    let response = airlock_access::decide::evaluate(policies, caller, &check);
    let statements: Vec<String> = response
        .matched_statements
        .iter()
        .map(ToString::to_string)
        .collect();
    // The same words `authorize` uses in its refusals.
    let reason = airlock_access::decide::reason(&response);
    AuthorizeCheckResult {
        action: action.to_owned(),
        resource: resource.to_owned(),
        allowed: response.decision == Decision::Allowed,
        decision: response.decision,
        statements,
        reason,
    }
}

/// The client's context without keys only the console may set (resource tags, global keys).
fn request_context(given: &Context) -> Context {
    given
        .iter()
        .filter(|(k, _)| {
            !(k.starts_with("ec2:resourcetag/")
                || k.starts_with("aws:resourcetag/")
                || Principal::is_global_key(k))
        })
        .map(|(k, v)| (k, v.clone()))
        .collect()
}

/// `KIND/ID` of a short EC2 resource form.
fn short_form(resource: &str) -> Option<(&str, &str)> {
    if resource.starts_with("arn:") || resource == "*" {
        return None;
    }
    resource
        .split_once('/')
        .filter(|(k, id)| !k.is_empty() && !id.is_empty())
}

/// Each account named in a check, and the caller's right to use it (`None` for the row when it
/// may not: the answer is then the same whether the account exists or not).
type Accounts = HashMap<String, (Option<AccountRow>, AuthorizeCheckResult)>;

/// Per account, the current tags of the resources asked about, by id.
type Tags = HashMap<String, HashMap<String, Vec<airlock_cloud::Tag>>>;

/// `POST /v1/authorize/check`.
#[utoipa::path(
    post,
    path = "/v1/authorize/check",
    summary = "What the caller's own policies decide for actions on resources, with the deciding statements (changes nothing, not audited)",
    request_body = airlock_api::users::AuthorizeCheckRequest,
    responses(
        (status = 200, description = "One decision per check, in order", body = airlock_api::users::AuthorizeCheckResponse),
        (status = 400, description = "Error", body = airlock_api::ErrorBody),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = []), ("session" = [])),
)]
pub async fn authorize_check(
    State(state): State<AppState>,
    caller: Caller,
    Body(req): Body<AuthorizeCheckRequest>,
) -> ApiResult<Json<AuthorizeCheckResponse>> {
    validate_checks(&req.checks)?;
    let policies = policies_of(&state, &caller.user).await?;
    let caller = principal(&caller);
    let accounts = accounts_named(&state, &policies, &caller, &req.checks).await?;
    let tags = current_tags(&state, &req.checks, &accounts).await?;
    let results = req
        .checks
        .iter()
        .map(|c| answer(&policies, &caller, c, &accounts, &tags))
        .collect();
    Ok(Json(AuthorizeCheckResponse { results }))
}

/// The request's form: how many checks, and that each action and resource can be decided.
fn validate_checks(checks: &[AuthorizeCheckItem]) -> ApiResult<()> {
    if checks.len() > MAX_CHECKS {
        return Err(ApiError::field(
            "checks",
            format!("at most {MAX_CHECKS} checks per request"),
        ));
    }
    for (i, c) in checks.iter().enumerate() {
        if c.action.is_empty() || !c.action.contains(':') {
            return Err(ApiError::field(
                format!("checks[{i}].action"),
                "an action is SERVICE:Action (for example ec2:TerminateInstances)",
            ));
        }
        if short_form(&c.resource).is_some() && c.account.is_none() {
            return Err(ApiError::field(
                format!("checks[{i}].resource"),
                "a short resource (KIND/ID) needs `account`; otherwise give an ARN or *",
            ));
        }
        if !c.resource.starts_with("arn:") && c.resource != "*" && short_form(&c.resource).is_none()
        {
            return Err(ApiError::field(
                format!("checks[{i}].resource"),
                "give an ARN, *, or KIND/ID with `account`",
            ));
        }
    }
    Ok(())
}

/// The accounts the checks name, each decided for `airlock:UseAccount` first and looked up
/// only if the caller may use it.
async fn accounts_named(
    state: &AppState,
    policies: &[Policy],
    caller: &Principal,
    checks: &[AuthorizeCheckItem],
) -> ApiResult<Accounts> {
    let mut accounts = Accounts::new();
    for (i, c) in checks.iter().enumerate() {
        let Some(name) = &c.account else { continue };
        if accounts.contains_key(name) {
            continue;
        }
        let check = airlock_access::ops::use_account(name);
        let using = decide(
            policies,
            caller,
            &check.action,
            &check.resource,
            Context::new(),
        );
        let row = if using.allowed {
            Some(state.store.account(name).await?.ok_or_else(|| {
                ApiError::field(
                    format!("checks[{i}].account"),
                    format!("unknown account {name:?}"),
                )
            })?)
        } else {
            None
        };
        accounts.insert(name.clone(), (row, using));
    }
    Ok(accounts)
}

/// The current tags of the concrete resources asked about, one EC2 lookup per account the
/// caller may use.
async fn current_tags(
    state: &AppState,
    checks: &[AuthorizeCheckItem],
    accounts: &Accounts,
) -> ApiResult<Tags> {
    let mut tags = Tags::new();
    for (name, (_, using)) in accounts {
        if !using.allowed {
            continue;
        }
        let mut ids: Vec<String> = checks
            .iter()
            .filter(|c| c.account.as_deref() == Some(name))
            .filter_map(|c| short_form(&c.resource))
            .filter(|(kind, id)| TAGGED_KINDS.contains(kind) && *id != "*")
            .map(|(_, id)| id.to_owned())
            .collect();
        ids.sort();
        ids.dedup();
        if ids.is_empty() {
            continue;
        }
        let (_, target) = accounts::target(state, name).await?;
        let ec2 = state.cloud.ec2(&target).await?;
        tags.insert(
            name.clone(),
            state.tags.tags(ec2.as_ref(), name, &ids).await?,
        );
    }
    Ok(tags)
}

fn answer(
    policies: &[Policy],
    caller: &Principal,
    c: &AuthorizeCheckItem,
    accounts: &Accounts,
    tags: &Tags,
) -> AuthorizeCheckResult {
    let context = request_context(&c.context);
    let Some((row, using)) = c.account.as_ref().and_then(|a| accounts.get(a)) else {
        return decide(policies, caller, &c.action, &c.resource, context);
    };
    let Some(row) = row else {
        return AuthorizeCheckResult {
            action: c.action.clone(),
            resource: c.resource.clone(),
            reason: format!(
                "you may not use account {:?} (airlock:UseAccount): {}",
                c.account.as_deref().unwrap_or_default(),
                using.reason
            ),
            ..using.clone()
        };
    };
    let resource = match short_form(&c.resource) {
        Some((kind, id)) => ec2_arn(&row.region, &row.aws_account_id, kind, id),
        None => c.resource.clone(),
    };
    let mut check = Check {
        action: c.action.clone(),
        resource: resource.clone(),
        context,
    }
    .with("ec2:Region", row.region.as_str());
    if let Some((_, id)) = short_form(&c.resource) {
        if let Some(t) = tags.get(&row.name).and_then(|t| t.get(id)) {
            check = check.with_resource_tags(t);
        }
    }
    decide(
        policies,
        caller,
        &check.action,
        &check.resource,
        check.context,
    )
}

/// `POST /v1/policies/validate`: the project's own validator, nothing stored.
#[utoipa::path(
    post,
    path = "/v1/policies/validate",
    summary = "Validate a policy document as PUT /v1/policies/{name} would, without storing it",
    request_body = airlock_api::users::ValidatePolicyRequest,
    responses(
        (status = 200, description = "Valid, or every problem found", body = airlock_api::users::ValidatePolicyResponse),
        (status = 400, description = "Error", body = airlock_api::ErrorBody),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = []), ("session" = [])),
)]
pub async fn validate_policy(
    _caller: Caller,
    Body(req): Body<ValidatePolicyRequest>,
) -> Json<ValidatePolicyResponse> {
    Json(match Policy::parse("document", &req.document) {
        Ok(p) => ValidatePolicyResponse {
            valid: true,
            statements: p.statement_count(),
            errors: Vec::new(),
        },
        Err(e) => ValidatePolicyResponse {
            valid: false,
            statements: 0,
            errors: e.errors().to_vec(),
        },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn caller() -> Principal {
        Principal::new("bob", false, None)
    }

    #[test]
    fn decisions_name_the_deciding_statements() {
        let p = Policy::parse(
            "p",
            r#"{"Version":"2012-10-17","Statement":[
                {"Effect":"Allow","Action":"ec2:*","Resource":"*"},
                {"Sid":"NoTerminate","Effect":"Deny","Action":"ec2:TerminateInstances","Resource":"*"}]}"#,
        )
        .unwrap();
        let r = decide(
            std::slice::from_ref(&p),
            &caller(),
            "ec2:TerminateInstances",
            "*",
            Context::new(),
        );
        assert!(!r.allowed);
        assert_eq!(r.decision, Decision::ExplicitDeny);
        assert_eq!(r.reason, "explicitly denied by p#1 (NoTerminate)");
        let r = decide(&[p], &caller(), "ec2:StopInstances", "*", Context::new());
        assert!(r.allowed);
        let r = decide(&[], &caller(), "ec2:StopInstances", "*", Context::new());
        assert_eq!(r.reason, "no statement in your policies allows it");
    }

    #[test]
    fn clients_cannot_claim_tags_or_identity() {
        let given: Context = [
            ("ec2:ResourceTag/owner", "bob"),
            ("aws:username", "admin"),
            ("aws:RequestTag/team", "web"),
        ]
        .into_iter()
        .collect();
        let kept = request_context(&given);
        assert_eq!(kept.len(), 1);
        assert!(kept.get("aws:RequestTag/team").is_some());
    }

    #[test]
    fn short_forms() {
        assert_eq!(short_form("instance/i-1"), Some(("instance", "i-1")));
        assert_eq!(short_form("arn:aws:ec2:r:1:instance/i-1"), None);
        assert_eq!(short_form("*"), None);
        assert_eq!(short_form("instance/"), None);
    }
}
