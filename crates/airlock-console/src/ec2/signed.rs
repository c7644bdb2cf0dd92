//! Who signed a request to the EC2 or STS endpoint: its SigV4 signature checked with the
//! Airlock access key's sealed secret, the key's status and expiry, and the clock.
//!
//! Failed signatures count against the key and the source address in the same throttle as
//! failed logins, so guessing secrets or replaying old requests gets slower each time and costs
//! the console almost nothing; each failure that is not throttled is audited.

use super::answer::Ec2Error;
use crate::access_keys::is_key_id;
use crate::audit::{self, AuditDecision, AuditOutcome, Entry};
use crate::auth::Caller;
use crate::authz::SessionBound;
use crate::instance_keys::{self, Unbound};
use crate::state::AppState;
use crate::throttle;
use airlock_api::state::AccessKeyStatus;
use airlock_store::{secret_record, AccessKeyRow};
use axum::http::request::Parts;
use axum::http::StatusCode;
use std::net::IpAddr;
use std::sync::Arc;

/// A request whose signature holds: the user its key acts as, and where it is meant to go.
#[derive(Debug)]
pub struct Signed {
    /// The key's user, as the authorization core sees them (no second factor: a key is not a
    /// login).
    pub caller: Caller,
    /// The key that signed.
    pub access_key_id: String,
    /// The region of the signature's credential scope.
    pub region: String,
}

/// The audit action of a refused signature.
const AUTHENTICATE: &str = "airlock:Authenticate";

fn status_of(code: &str) -> StatusCode {
    match code {
        "IncompleteSignature" | "RequestExpired" => StatusCode::BAD_REQUEST,
        "SignatureDoesNotMatch" => StatusCode::FORBIDDEN,
        _ => StatusCode::UNAUTHORIZED,
    }
}

fn sigv4_error(e: &airlock_sigv4::SigV4Error) -> Ec2Error {
    Ec2Error::new(status_of(e.code()), e.code(), e.to_string())
}

/// Checks the signature of a request to `service` (`ec2`, `sts`) from `source`.
pub async fn authenticate(
    state: &AppState,
    parts: &Parts,
    body: &[u8],
    service: &str,
    source: Option<IpAddr>,
) -> Result<Signed, Ec2Error> {
    let headers = with_host(parts);
    let req = airlock_sigv4::Request {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers: headers.as_ref().unwrap_or(&parts.headers),
        body,
    };
    let claim = airlock_sigv4::parse(&req).map_err(|e| sigv4_error(&e))?;
    check_scope(&req, &claim, service)?;
    let id = claim.access_key_id.clone();
    let keys = throttle_keys(&id, source);
    let throttled = state
        .logins
        .check(&state.store, &keys)
        .await
        .map_err(|e| Ec2Error::from(crate::ApiError::from(e)))?;
    if throttled.is_err() {
        return Err(Ec2Error::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "RequestLimitExceeded",
            "too many refused signatures for this key or from this address: try again later",
        ));
    }
    let checked = match check(state, &req, &claim).await {
        Ok(key) => held(state, key, source).await?,
        Err(refusal) => Err(refusal),
    };
    let (key, session) = match checked {
        Ok(found) => found,
        Err(Refused { why, user }) => {
            if let Err(e) = state.logins.failed(&state.store, &keys).await {
                tracing::error!(access_key_id = %id, error = %e, "cannot count a refused signature");
            }
            refused(state, source, &id, user, why.clone()).await;
            return Err(Ec2Error::auth_failure_or(why));
        }
    };
    note_use(state, &id).await;
    Ok(Signed {
        caller: Caller {
            user: key.user_name,
            source_ip: source,
            mfa: false,
            token_hash: String::new(),
            session,
        },
        access_key_id: id,
        region: claim.scope.region,
    })
}

/// The headers with `host` added from the URI when the request has none: over HTTP/2 the host
/// travels as `:authority`, and the signature covers it as `host`.
fn with_host(parts: &Parts) -> Option<axum::http::HeaderMap> {
    if parts.headers.contains_key(axum::http::header::HOST) {
        return None;
    }
    let authority = parts.uri.authority()?;
    let value = axum::http::HeaderValue::from_str(authority.as_str()).ok()?;
    let mut headers = parts.headers.clone();
    headers.insert(axum::http::header::HOST, value);
    Some(headers)
}

/// What a claim must be before any key is looked up: no session token, this service, a region.
fn check_scope(
    req: &airlock_sigv4::Request<'_>,
    claim: &airlock_sigv4::Claim,
    service: &str,
) -> Result<(), Ec2Error> {
    // Airlock keys have no session token: a request carrying one was meant for somewhere else.
    // An empty one is none (SDKs reading an instance's key from the agent's endpoint, which
    // must give them a `Token`, send it so).
    let token_param = req.query.split('&').any(|p| {
        p.strip_prefix("X-Amz-Security-Token=")
            .is_some_and(|v| !v.is_empty())
    });
    let token_header = req
        .headers
        .get("x-amz-security-token")
        .is_some_and(|v| !v.is_empty());
    if token_header || token_param {
        return Err(Ec2Error::new(
            StatusCode::BAD_REQUEST,
            "InvalidClientTokenId",
            "Airlock access keys have no session token: remove X-Amz-Security-Token (unset AWS_SESSION_TOKEN)",
        ));
    }
    if claim.scope.service != service {
        return Err(Ec2Error::new(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            format!(
                "the credential is scoped to the service {:?}; this endpoint is {service}",
                claim.scope.service
            ),
        ));
    }
    airlock_fleet::validate::region("the credential scope's region", &claim.scope.region).map_err(
        |e| {
            Ec2Error::new(
                StatusCode::BAD_REQUEST,
                "InvalidParameterValue",
                e.to_string(),
            )
        },
    )
}

/// Notes the key's last use (at most a write a minute); a failure only costs the note.
async fn note_use(state: &AppState, id: &str) {
    let now = chrono::Utc::now();
    let minute_ago = now - chrono::Duration::minutes(1);
    let stamp =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let noted = state
        .store
        .touch_access_key(id, &stamp(now), &stamp(minute_ago))
        .await;
    if let Err(e) = noted {
        tracing::warn!(access_key_id = %id, error = %e, "cannot note the key's last use");
    }
}

/// Why a signature was refused, and whose key it named when known.
struct Refused {
    why: Why,
    user: Option<String>,
}

/// What was wrong, for the audit record; the client is told only what it may know.
#[derive(Debug, Clone)]
pub enum Why {
    /// An instance's key, used from elsewhere or no longer backed by its deployment.
    Instance(Unbound),
    /// No such key.
    UnknownKey,
    /// The key is disabled.
    Inactive,
    /// The key has expired.
    Expired,
    /// The signature or its time does not hold.
    Signature(&'static str, StatusCode),
}

impl Ec2Error {
    /// What the client is told: the signature's own error when the key is known and good, the
    /// same `AuthFailure` otherwise.
    fn auth_failure_or(why: Why) -> Ec2Error {
        match why {
            Why::Signature(code, status) => Ec2Error::new(
                status,
                code,
                match code {
                    "RequestExpired" => "the request was signed more than 5 minutes from the console's time, or its presigned URL has expired",
                    "SignatureDoesNotMatch" => "the request signature we calculated does not match the signature you provided: check your secret access key and signing method",
                    _ => "the request's signature is incomplete or malformed",
                },
            ),
            _ => Ec2Error::auth_failure(),
        }
    }
}

/// A good key with what holds it: nothing more for a user's key; for an instance's key, the
/// instance's address and the deployment's session policy.
async fn held(
    state: &AppState,
    key: AccessKeyRow,
    source: Option<IpAddr>,
) -> Result<Result<(AccessKeyRow, Option<Arc<SessionBound>>), Refused>, Ec2Error> {
    let Some(binding) = &key.instance else {
        return Ok(Ok((key, None)));
    };
    match instance_keys::bound(state, binding, source).await? {
        Ok(session) => Ok(Ok((key, Some(Arc::new(session))))),
        Err(unbound) => Ok(Err(Refused {
            why: Why::Instance(unbound),
            user: Some(key.user_name),
        })),
    }
}

async fn check(
    state: &AppState,
    req: &airlock_sigv4::Request<'_>,
    claim: &airlock_sigv4::Claim,
) -> Result<AccessKeyRow, Refused> {
    let unknown = || Refused {
        why: Why::UnknownKey,
        user: None,
    };
    if !is_key_id(&claim.access_key_id) {
        return Err(unknown());
    }
    let key = state
        .store
        .access_key(&claim.access_key_id)
        .await
        .ok()
        .flatten()
        .ok_or_else(unknown)?;
    let refuse = |why| Refused {
        why,
        user: Some(key.user_name.clone()),
    };
    if key.status == AccessKeyStatus::Inactive {
        return Err(refuse(Why::Inactive));
    }
    let now = chrono::Utc::now();
    let expired = key
        .expires_at
        .as_deref()
        .is_some_and(|at| chrono::DateTime::parse_from_rfc3339(at).map_or(true, |t| t < now));
    if expired {
        return Err(refuse(Why::Expired));
    }
    let secret = state
        .vault
        .get(&secret_record(&key.access_key_id))
        .await
        .ok()
        .flatten()
        .ok_or_else(|| refuse(Why::UnknownKey))?;
    airlock_sigv4::verify(req, claim, &secret, now)
        .map_err(|e| refuse(Why::Signature(e.code(), status_of(e.code()))))?;
    // A presigned URL is good until it expires at AWS; here, as a signed header, only within
    // the clock skew, so a URL copied from a log or a history is not a key for days.
    let skew = (now - claim.timestamp).abs();
    if skew
        .to_std()
        .map_or(true, |s| s > airlock_sigv4::MAX_CLOCK_SKEW)
    {
        return Err(refuse(Why::Signature(
            "RequestExpired",
            StatusCode::BAD_REQUEST,
        )));
    }
    Ok(key)
}

fn throttle_keys(id: &str, source: Option<IpAddr>) -> Vec<throttle::Key> {
    let mut keys = vec![throttle::Key::User(format!(
        "access-key:{}",
        id.to_lowercase()
    ))];
    keys.extend(source.map(throttle::Key::Source));
    keys
}

async fn refused(
    state: &AppState,
    source: Option<IpAddr>,
    id: &str,
    user: Option<String>,
    why: Why,
) {
    let detail = match why {
        Why::UnknownKey => "no such access key".to_owned(),
        Why::Inactive => "the access key is inactive".to_owned(),
        Why::Expired => "the access key has expired".to_owned(),
        Why::Signature(code, _) => format!("signature refused: {code}"),
        Why::Instance(unbound) => unbound.to_string(),
    };
    // An id that is not a key id at all is not written as given: it could be anything.
    let resource = if is_key_id(id) {
        id.to_owned()
    } else {
        "-".to_owned()
    };
    let entry = Entry {
        user: user.unwrap_or_else(|| "-".to_owned()),
        source_ip: source.map(|ip| ip.to_string()),
        action: AUTHENTICATE.to_owned(),
        resources: vec![resource],
        decision: AuditDecision::ImplicitDeny,
        outcome: AuditOutcome::Denied,
        detail: Some(detail),
        ..Entry::default()
    };
    audit::record(state, entry).await;
}
