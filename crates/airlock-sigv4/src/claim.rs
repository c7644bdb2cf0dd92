//! Reading what a request claims about its signature (which key, scope, headers and time) from
//! the `Authorization` header or the presigned `X-Amz-*` parameters, before any secret is looked
//! up. Everything is bounded and checked for shape here, so that [`crate::verify`] only rebuilds
//! and compares.

use std::time::Duration;

use chrono::{DateTime, Utc};
use http::HeaderMap;

use crate::canonical::ALGORITHM;
use crate::error::{Part, SigV4Error};
use crate::{
    time, Claim, Form, Request, Scope, MAX_CREDENTIAL_LEN, MAX_EXPIRES, MAX_SIGNED_HEADERS,
};

/// The longest `Authorization` header read; real ones are about 200 bytes.
const MAX_AUTHORIZATION_LEN: usize = 4096;

/// The longest signed-header list read, whatever the count.
const MAX_SIGNED_HEADERS_LEN: usize = 2048;

/// How much of an unsupported algorithm's name an error repeats.
const ALGORITHM_ECHO_LEN: usize = 32;

/// Reads the signature a request carries, in either form, and checks its shape: the algorithm is
/// `AWS4-HMAC-SHA256`, the credential and signed headers are well formed and bounded, `host` (and
/// the header that gives the time) is signed, and the scope's date is the request's date.
pub fn parse(req: &Request<'_>) -> Result<Claim, SigV4Error> {
    let authorization = single_header(req.headers, "authorization", Part::Authorization)?;
    match (authorization, QueryAuth::find(req.query)?) {
        (Some(_), Some(_)) => Err(SigV4Error::TwoForms),
        (Some(value), None) => header_form(value, req.headers),
        (None, Some(params)) => params.claim(),
        (None, None) => Err(SigV4Error::Unsigned),
    }
}

/// The one value of the header `name`, if there is one, as text.
pub(crate) fn single_header<'h>(
    headers: &'h HeaderMap,
    name: &str,
    part: Part,
) -> Result<Option<&'h str>, SigV4Error> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(SigV4Error::Repeated(part));
    }
    value
        .to_str()
        .map(Some)
        .map_err(|_| SigV4Error::malformed(part, "not visible ASCII"))
}

/// `AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`.
fn header_form(value: &str, headers: &HeaderMap) -> Result<Claim, SigV4Error> {
    if value.len() > MAX_AUTHORIZATION_LEN {
        return Err(SigV4Error::malformed(
            Part::Authorization,
            "longer than 4096 bytes",
        ));
    }
    let (algorithm, fields) = value.split_once(' ').unwrap_or((value, ""));
    check_algorithm(algorithm)?;
    let fields = AuthorizationFields::read(fields)?;
    let signed_headers = signed_headers(fields.signed_headers, Part::HeaderSignedHeaders)?;
    let timestamp = header_timestamp(headers, &signed_headers)?;
    claim(Parts {
        form: Form::Header,
        credential: (fields.credential, Part::HeaderCredential),
        signed_headers,
        signature: (fields.signature, Part::HeaderSignature),
        timestamp,
        expires: None,
    })
}

/// The three fields of the `Authorization` header after the algorithm.
struct AuthorizationFields<'a> {
    credential: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

impl<'a> AuthorizationFields<'a> {
    fn read(text: &'a str) -> Result<Self, SigV4Error> {
        let (mut credential, mut signed_headers, mut signature) = (None, None, None);
        for field in text.split(',') {
            let (name, value) =
                field
                    .trim_matches(' ')
                    .split_once('=')
                    .ok_or(SigV4Error::malformed(
                        Part::Authorization,
                        "a field is not NAME=VALUE",
                    ))?;
            let (slot, part) = match name {
                "Credential" => (&mut credential, Part::HeaderCredential),
                "SignedHeaders" => (&mut signed_headers, Part::HeaderSignedHeaders),
                "Signature" => (&mut signature, Part::HeaderSignature),
                _ => {
                    return Err(SigV4Error::malformed(
                        Part::Authorization,
                        "a field is not Credential, SignedHeaders or Signature",
                    ))
                }
            };
            if slot.replace(value).is_some() {
                return Err(SigV4Error::Repeated(part));
            }
        }
        Ok(Self {
            credential: credential.ok_or(SigV4Error::Missing(Part::HeaderCredential))?,
            signed_headers: signed_headers.ok_or(SigV4Error::Missing(Part::HeaderSignedHeaders))?,
            signature: signature.ok_or(SigV4Error::Missing(Part::HeaderSignature))?,
        })
    }
}

/// `x-amz-date`, or `date` when there is no `x-amz-date`; whichever gives the time is signed.
fn header_timestamp(headers: &HeaderMap, signed: &[String]) -> Result<DateTime<Utc>, SigV4Error> {
    if let Some(value) = single_header(headers, "x-amz-date", Part::DateHeader)? {
        require_signed(signed, "x-amz-date")?;
        return time::parse_basic(value).ok_or(SigV4Error::malformed(
            Part::DateHeader,
            "x-amz-date is not a time like 20260115T120000Z",
        ));
    }
    let value = single_header(headers, "date", Part::DateHeader)?
        .ok_or(SigV4Error::Missing(Part::DateHeader))?;
    require_signed(signed, "date")?;
    time::parse_http_date(value).ok_or(SigV4Error::malformed(
        Part::DateHeader,
        "date is neither an HTTP date nor a time like 20260115T120000Z",
    ))
}

/// The presigned form's parameters, each found at most once.
#[derive(Default)]
struct QueryAuth {
    algorithm: Option<String>,
    credential: Option<String>,
    date: Option<String>,
    expires: Option<String>,
    signed_headers: Option<String>,
    signature: Option<String>,
}

impl QueryAuth {
    /// The `X-Amz-*` signing parameters, if the query has any that only a presigned request has.
    fn find(query: &str) -> Result<Option<Self>, SigV4Error> {
        let mut found = Self::default();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            let (slot, part) = match name.as_ref() {
                "X-Amz-Algorithm" => (&mut found.algorithm, Part::QueryAlgorithm),
                "X-Amz-Credential" => (&mut found.credential, Part::QueryCredential),
                "X-Amz-Date" => (&mut found.date, Part::QueryDate),
                "X-Amz-Expires" => (&mut found.expires, Part::QueryExpires),
                "X-Amz-SignedHeaders" => (&mut found.signed_headers, Part::QuerySignedHeaders),
                "X-Amz-Signature" => (&mut found.signature, Part::QuerySignature),
                _ => continue,
            };
            if slot.replace(value.into_owned()).is_some() {
                return Err(SigV4Error::Repeated(part));
            }
        }
        let presigned =
            found.algorithm.is_some() || found.credential.is_some() || found.signature.is_some();
        Ok(presigned.then_some(found))
    }

    fn claim(self) -> Result<Claim, SigV4Error> {
        check_algorithm(&required(self.algorithm, Part::QueryAlgorithm)?)?;
        let credential = required(self.credential, Part::QueryCredential)?;
        let signature = required(self.signature, Part::QuerySignature)?;
        let signed_headers = signed_headers(
            &required(self.signed_headers, Part::QuerySignedHeaders)?,
            Part::QuerySignedHeaders,
        )?;
        let timestamp = time::parse_basic(&required(self.date, Part::QueryDate)?).ok_or(
            SigV4Error::malformed(Part::QueryDate, "not a time like 20260115T120000Z"),
        )?;
        let expires = expires(&required(self.expires, Part::QueryExpires)?)?;
        claim(Parts {
            form: Form::Query,
            credential: (&credential, Part::QueryCredential),
            signed_headers,
            signature: (&signature, Part::QuerySignature),
            timestamp,
            expires: Some(expires),
        })
    }
}

fn required(value: Option<String>, part: Part) -> Result<String, SigV4Error> {
    value.ok_or(SigV4Error::Missing(part))
}

/// What both forms hand over once read, with the part each text came from.
struct Parts<'a> {
    form: Form,
    credential: (&'a str, Part),
    signed_headers: Vec<String>,
    signature: (&'a str, Part),
    timestamp: DateTime<Utc>,
    expires: Option<Duration>,
}

/// The checks both forms share, and the claim.
fn claim(parts: Parts<'_>) -> Result<Claim, SigV4Error> {
    let (access_key_id, scope) = credential(parts.credential.0, parts.credential.1)?;
    let signature = signature(parts.signature.0, parts.signature.1)?;
    require_signed(&parts.signed_headers, "host")?;
    let request_date = time::format_date(parts.timestamp);
    if scope.date != request_date {
        return Err(SigV4Error::ScopeDate {
            scope: scope.date,
            request: request_date,
        });
    }
    Ok(Claim {
        access_key_id,
        scope,
        form: parts.form,
        signed_headers: parts.signed_headers,
        signature,
        timestamp: parts.timestamp,
        expires: parts.expires,
    })
}

fn check_algorithm(algorithm: &str) -> Result<(), SigV4Error> {
    if algorithm == ALGORITHM {
        Ok(())
    } else {
        Err(SigV4Error::UnsupportedAlgorithm(
            algorithm.chars().take(ALGORITHM_ECHO_LEN).collect(),
        ))
    }
}

/// `ACCESS_KEY_ID/yyyymmdd/region/service/aws4_request`.
fn credential(value: &str, part: Part) -> Result<(String, Scope), SigV4Error> {
    if value.len() > MAX_CREDENTIAL_LEN {
        return Err(SigV4Error::malformed(part, "longer than 256 bytes"));
    }
    let mut fields = value.split('/');
    let (Some(key), Some(date), Some(region), Some(service), Some(terminator), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(SigV4Error::malformed(
            part,
            "not ACCESS_KEY_ID/yyyymmdd/region/service/aws4_request",
        ));
    };
    let wrong = |reason| Err(SigV4Error::malformed(part, reason));
    if terminator != "aws4_request" {
        return wrong("it does not end in /aws4_request");
    }
    if key.is_empty()
        || !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return wrong("the access key id is empty or not letters, digits, '-' and '_'");
    }
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return wrong("the date is not yyyymmdd");
    }
    if !is_scope_name(region) {
        return wrong("the region is empty or not lower-case letters, digits and '-'");
    }
    if !is_scope_name(service) {
        return wrong("the service is empty or not lower-case letters, digits and '-'");
    }
    let scope = Scope {
        date: date.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
    };
    Ok((key.to_owned(), scope))
}

fn is_scope_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `a;b;c`: lower-case header names, sorted, each once, at most [`MAX_SIGNED_HEADERS`].
fn signed_headers(value: &str, part: Part) -> Result<Vec<String>, SigV4Error> {
    if value.len() > MAX_SIGNED_HEADERS_LEN {
        return Err(SigV4Error::malformed(part, "longer than 2048 bytes"));
    }
    let names: Vec<&str> = value.split(';').take(MAX_SIGNED_HEADERS + 1).collect();
    if names.len() > MAX_SIGNED_HEADERS {
        return Err(SigV4Error::malformed(part, "it lists more than 64 headers"));
    }
    if !names.iter().all(|name| is_lower_case_token(name)) {
        return Err(SigV4Error::malformed(
            part,
            "a header name is empty or not a lower-case HTTP token",
        ));
    }
    if !names.windows(2).all(|pair| matches!(pair, [a, b] if a < b)) {
        return Err(SigV4Error::malformed(
            part,
            "the header names are not sorted, or one is repeated",
        ));
    }
    Ok(names.into_iter().map(str::to_owned).collect())
}

fn is_lower_case_token(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b)
        })
}

fn require_signed(signed: &[String], header: &'static str) -> Result<(), SigV4Error> {
    if signed.iter().any(|name| name == header) {
        Ok(())
    } else {
        Err(SigV4Error::MustBeSigned(header))
    }
}

/// 64 lower-case hex digits, as botocore and the SDKs write it.
fn signature(value: &str, part: Part) -> Result<String, SigV4Error> {
    if value.len() == 64
        && value
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        Ok(value.to_owned())
    } else {
        Err(SigV4Error::malformed(part, "not 64 lower-case hex digits"))
    }
}

fn expires(value: &str) -> Result<Duration, SigV4Error> {
    let seconds = Some(value)
        .filter(|value| !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|value| value.parse::<u64>().ok())
        .ok_or(SigV4Error::malformed(
            Part::QueryExpires,
            "not a whole number of seconds",
        ))?;
    if seconds > MAX_EXPIRES.as_secs() {
        return Err(SigV4Error::ExpiresTooLong(seconds));
    }
    Ok(Duration::from_secs(seconds))
}
