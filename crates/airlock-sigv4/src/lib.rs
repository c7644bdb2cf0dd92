//! Verifies AWS Signature Version 4 on requests that clients (the `aws` CLI, boto3, the SDKs,
//! Terraform) sign with an Airlock access key, so that the console can answer as an EC2 Query API
//! endpoint and decide who is calling before anything reaches AWS.
//!
//! Two steps, because the secret is looked up by the access key the request names:
//! [`parse`] reads what the request claims (key, credential scope, signed headers, time) and
//! refuses a malformed or incomplete signature before any secret is touched; [`verify`] rebuilds
//! the canonical request exactly as botocore and the Rust SDK's `aws-sigv4` build it for non-S3
//! services, recomputes the signature with the secret, compares it in constant time and checks
//! the time against the caller's clock.
//!
//! Pure: no I/O and no clock (the caller passes `now`). Errors name the header or parameter at
//! fault and never carry the secret, the expected signature or the string to sign; [`SigV4Error::code`]
//! gives the error code EC2 would answer with.

#![warn(missing_docs)]

mod canonical;
mod claim;
mod error;
mod key;
mod time;

#[cfg(test)]
mod tests;

use std::time::Duration;

pub use claim::parse;
pub use error::{Part, SigV4Error};

/// How far a request's signing time may be from the server's clock, either way.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// The longest `X-Amz-Expires` a presigned request may ask for: seven days, as AWS allows.
pub const MAX_EXPIRES: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The most signed headers a request may list; real clients sign fewer than ten.
pub const MAX_SIGNED_HEADERS: usize = 64;

/// The longest credential (`AKID/date/region/service/aws4_request`) accepted.
pub const MAX_CREDENTIAL_LEN: usize = 256;

/// A request as received: everything the signature covers, nothing decoded or normalized yet.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The HTTP method, as sent (`GET`, `POST`).
    pub method: &'a str,
    /// The raw path as received on the wire (percent-encoded as sent).
    pub path: &'a str,
    /// The raw query string without `?`, `""` when there is none.
    pub query: &'a str,
    /// The request's headers. Over HTTP/2 the caller inserts `host` from the `:authority`.
    pub headers: &'a http::HeaderMap,
    /// The whole body.
    pub body: &'a [u8],
}

/// Where the signature travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// The `Authorization` header.
    Header,
    /// `X-Amz-*` parameters in the query string (a presigned request).
    Query,
}

/// The credential scope: the day, region and service the signing key is derived for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// `yyyymmdd`.
    pub date: String,
    /// The region the client signs for, e.g. `us-east-1`: the region the call is meant for.
    pub region: String,
    /// The service, e.g. `ec2` or `sts`.
    pub service: String,
}

/// What a request says about its signature, before any secret is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The access key the request is signed with.
    pub access_key_id: String,
    /// The credential scope.
    pub scope: Scope,
    /// Header or presigned query form.
    pub form: Form,
    /// The signed header names: lower case, sorted, each once, `host` among them.
    pub signed_headers: Vec<String>,
    /// The signature as sent: 64 lower-case hex digits.
    pub signature: String,
    /// When the request was signed (`X-Amz-Date`, or the `date` header).
    pub timestamp: chrono::DateTime<chrono::Utc>,
    /// The query form's `X-Amz-Expires`, at most [`MAX_EXPIRES`]; `None` in the header form.
    pub expires: Option<Duration>,
}

/// Checks the signature with the secret looked up for `claim.access_key_id`, and the time.
///
/// `claim` is what [`parse`] returned for this same `req`. The header form must be signed within
/// [`MAX_CLOCK_SKEW`] of `now`; a presigned request is good from [`MAX_CLOCK_SKEW`] before its
/// `X-Amz-Date` until `X-Amz-Expires` after it, as AWS treats presigned URLs. The payload hash is
/// always the SHA-256 of `req.body`; an `x-amz-content-sha256` header must state exactly that.
pub fn verify(
    req: &Request<'_>,
    claim: &Claim,
    secret_access_key: &[u8],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), SigV4Error> {
    time::check(claim, now)?;
    let payload_hash = canonical::payload_hash(req)?;
    let canonical_request = canonical::request(req, claim, &payload_hash)?;
    let string_to_sign = canonical::string_to_sign(claim, &canonical_request);
    key::check_signature(secret_access_key, claim, &string_to_sign)
}
