//! The console as an EC2 Query API endpoint (`/ec2/{account}`) and an STS endpoint for
//! `GetCallerIdentity` (`/sts`): the `aws` CLI, SDKs and Terraform, pointed here with their
//! endpoint URL and an Airlock access key, go through the same policies and audit as the
//! console, and nobody is handed an AWS key.
//!
//! Each call: the SigV4 signature is checked with the key's sealed secret ([`signed`]); its
//! parameters become the operation the console models, refusing anything it cannot authorize
//! precisely ([`params`]); the authorization core decides it as the console's own operation
//! would ([`decide`]) before the account's key is unsealed; the exact parameters decided are
//! signed with the account's credentials and sent to EC2; EC2's answer streams back unchanged;
//! the call is audited with EC2's request id. Refusals are EC2's own XML errors ([`answer`]).

pub mod answer;
mod decide;
pub mod params;
mod signed;

use crate::accounts;
use crate::audit::{self, Entry};
use crate::state::AppState;
use crate::validate;
use answer::{xml_escape, Ec2Error};
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, request::Parts, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use decide::{Context, Decided};
use params::{Operation, Params};
use std::net::{IpAddr, SocketAddr};

/// The largest request body taken (EC2's own limit for a Query request is far below).
pub const MAX_BODY: usize = 1024 * 1024;
/// The most of an EC2 error document read to find its code and request id.
const MAX_ERROR_READ: usize = 64 * 1024;

/// `/ec2/{account}` (with or without the trailing slash clients add) and `/sts`.
pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router
        .route("/ec2/{account}", any(ec2))
        .route("/ec2/{account}/", any(ec2))
        .route("/sts", any(sts))
        .route("/sts/", any(sts))
}

async fn ec2(
    State(state): State<AppState>,
    Path(account): Path<String>,
    request: Request,
) -> Response {
    match call(&state, &account, request).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn sts(State(state): State<AppState>, request: Request) -> Response {
    match caller_identity(&state, request).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// The request's parts, body (bounded) and source address.
async fn read(request: Request) -> Result<(Parts, Bytes, Option<IpAddr>), Ec2Error> {
    let (parts, body) = request.into_parts();
    if parts.method != Method::GET && parts.method != Method::POST {
        return Err(Ec2Error::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "InvalidAction",
            format!(
                "{} is not a Query API method: use POST or GET",
                parts.method
            ),
        ));
    }
    let body = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        Ec2Error::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            format!("the request body is larger than {MAX_BODY} bytes"),
        )
    })?;
    let source = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_canonical());
    Ok((parts, body, source))
}

/// The parameters of the body and the query string together.
fn params_of(parts: &Parts, body: &[u8]) -> Result<Params, Ec2Error> {
    let mut params = Params::from_form(body)?;
    params.merge(Params::from_form(
        parts.uri.query().unwrap_or("").as_bytes(),
    )?)?;
    Ok(params)
}

async fn call(state: &AppState, account: &str, request: Request) -> Result<Response, Ec2Error> {
    let (parts, body, source) = read(request).await?;
    let signed = signed::authenticate(state, &parts, &body, "ec2", source).await?;
    let caller = &signed.caller;
    let mut params = params_of(&parts, &body)?;
    let op = match params::operation(&params) {
        Ok(op) => op,
        Err(e) => {
            not_taken(state, caller, &params, &e.to_string()).await;
            return Err(e.into());
        }
    };
    validate::name("account", account)?;
    crate::authz::precheck(
        state,
        caller,
        vec![airlock_access::ops::use_account(account)],
    )
    .await?;
    let (row, mut target) = accounts::target_for_request(state, account).await?;
    target.region.clone_from(&signed.region);
    let scope = airlock_cloud::Scope {
        region: signed.region.clone(),
        account_id: row.aws_account_id.clone(),
    };
    let ec2 = state
        .cloud
        .ec2(&target)
        .await
        .map_err(crate::error::ApiError::Aws)?;
    let cx = Context {
        state,
        caller,
        account: &row,
        scope: &scope,
        ec2: ec2.as_ref(),
    };
    let decided = decide::decide(&cx, &op, &mut params).await?;
    let sent = state.cloud.ec2_query(&target, params.encode()).await;
    let answer = match sent {
        Ok(a) => a,
        Err(e) => {
            let result: Result<(), _> = Err(e.clone());
            audit::record_call(state, entry(caller, &decided), &result, |_| None).await;
            return Err(crate::error::ApiError::Aws(e).into());
        }
    };
    let (head, answer) = peek(answer).await?;
    audit::record_call(state, entry(caller, &decided), &head.result(), Clone::clone).await;
    if head.result().is_ok() {
        aftermath(state, &row.name, &op, &decided).await;
    }
    Ok(respond(answer, head))
}

fn entry(caller: &crate::auth::Caller, decided: &Decided) -> Entry {
    Entry::for_caller(caller, &decided.action, decided.resources.clone())
}

/// Audits a request whose parameters could not be taken: nothing was decided or sent.
async fn not_taken(state: &AppState, caller: &crate::auth::Caller, params: &Params, why: &str) {
    let action = params
        .action()
        .ok()
        .filter(|a| a.len() <= 64 && a.bytes().all(|b| b.is_ascii_alphanumeric()))
        .map_or_else(|| "ec2:-".to_owned(), |a| format!("ec2:{a}"));
    let mut e = Entry::for_caller(caller, &action, Vec::new());
    e.decision = audit::AuditDecision::NotEvaluated;
    e.outcome = audit::AuditOutcome::Invalid;
    e.detail = Some(why.to_owned());
    audit::record(state, e).await;
}

/// What changed in EC2 that the console keeps track of.
async fn aftermath(state: &AppState, account: &str, op: &Operation, decided: &Decided) {
    if !decided.touched.is_empty() {
        state.tags.forget(account, &decided.touched);
    }
    if matches!(op, Operation::ChangeState(..)) && !decided.terminated.is_empty() {
        crate::instances::revoke_terminated(state, &decided.terminated).await;
    }
}

/// EC2's answer so far: status, type, request id and the bytes read to find it.
struct Head {
    status: u16,
    content_type: Option<String>,
    request_id: Option<String>,
    error_code: Option<String>,
    read: Vec<u8>,
}

impl Head {
    /// The call's result as the audit log records it.
    fn result(&self) -> Result<Option<String>, airlock_cloud::CloudError> {
        if self.status < 300 {
            return Ok(self.request_id.clone());
        }
        Err(airlock_cloud::CloudError {
            code: self.error_code.clone(),
            message: format!("EC2 answered HTTP {}", self.status),
            request_id: self.request_id.clone(),
            retryable: self.status >= 500,
        })
    }
}

/// Reads enough of the answer to know its request id (and, for an error, its code).
async fn peek(
    mut answer: airlock_cloud::QueryAnswer,
) -> Result<(Head, airlock_cloud::QueryAnswer), Ec2Error> {
    let mut read = Vec::new();
    let is_error = answer.status >= 300;
    loop {
        let found = element(&read, "requestId").or_else(|| element(&read, "RequestID"));
        let enough = if is_error {
            read.len() >= MAX_ERROR_READ
        } else {
            found.is_some() || !read.is_empty()
        };
        if enough {
            break;
        }
        match answer
            .body
            .next_chunk()
            .await
            .map_err(crate::error::ApiError::Aws)?
        {
            Some(chunk) => read.extend_from_slice(&chunk),
            None => break,
        }
    }
    let request_id = answer
        .request_id
        .clone()
        .or_else(|| element(&read, "requestId"))
        .or_else(|| element(&read, "RequestID"));
    let head = Head {
        status: answer.status,
        content_type: answer.content_type.clone(),
        request_id,
        error_code: if is_error {
            element(&read, "Code")
        } else {
            None
        },
        read,
    };
    Ok((head, answer))
}

/// The text of the first `<name>…</name>` in `xml`, if short and plain.
fn element(xml: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(xml).ok().or_else(|| {
        // A chunk may end inside a character; what is before it is enough.
        std::str::from_utf8(xml.get(..xml.len().saturating_sub(3))?).ok()
    })?;
    let open = format!("<{name}>");
    let start = text.find(&open)? + open.len();
    let len = text.get(start..)?.find("</")?;
    let value = text.get(start..start + len)?;
    (value.len() <= 128 && !value.contains('<')).then(|| value.to_owned())
}

/// EC2's answer as it came: what was read, then the rest as it arrives.
fn respond(answer: airlock_cloud::QueryAnswer, head: Head) -> Response {
    let first = Bytes::from(head.read);
    let rest = futures_util::stream::unfold(Some(answer.body), |body| async move {
        let mut body = body?;
        match body.next_chunk().await {
            Ok(Some(chunk)) => Some((Ok(Bytes::from(chunk)), Some(body))),
            Ok(None) => None,
            Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
        }
    });
    let stream = futures_util::StreamExt::chain(
        futures_util::stream::once(async move { Ok::<_, std::io::Error>(first) }),
        rest,
    );
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = StatusCode::from_u16(head.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let headers = response.headers_mut();
    if let Some(v) = head
        .content_type
        .and_then(|t| HeaderValue::from_str(&t).ok())
    {
        headers.insert(header::CONTENT_TYPE, v);
    }
    if let Some(v) = head.request_id.and_then(|t| HeaderValue::from_str(&t).ok()) {
        headers.insert("x-amzn-requestid", v);
    }
    response
}

/// `sts:GetCallerIdentity` for an Airlock key: the user's console ARN.
async fn caller_identity(state: &AppState, request: Request) -> Result<Response, Ec2Error> {
    let (parts, body, source) = read(request).await?;
    let signed = signed::authenticate(state, &parts, &body, "sts", source).await?;
    let params = params_of(&parts, &body)?;
    if params.action()? != "GetCallerIdentity" {
        return Err(Ec2Error::new(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            "the console's STS endpoint answers GetCallerIdentity only",
        ));
    }
    let arn = crate::authz::console_arn("user", &signed.caller.user);
    let body = format!(
        "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
         <GetCallerIdentityResult><Arn>{}</Arn><UserId>{}</UserId><Account>{}</Account>\
         </GetCallerIdentityResult><ResponseMetadata><RequestId>{}</RequestId>\
         </ResponseMetadata></GetCallerIdentityResponse>",
        xml_escape(&arn),
        xml_escape(&signed.access_key_id),
        CONSOLE_ACCOUNT,
        answer::request_id()
    );
    Ok(([(header::CONTENT_TYPE, "text/xml")], body).into_response())
}

/// The account `GetCallerIdentity` reports: console users belong to no AWS account, and tools
/// expect twelve digits.
pub const CONSOLE_ACCOUNT: &str = "000000000000";
