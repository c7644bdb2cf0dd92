//! The canonical request and the string to sign, rebuilt from the request as received exactly as
//! the client built them from the request it sent. The rules are those botocore's `SigV4Auth` and
//! the Rust SDK's `aws-sigv4` follow for every service but S3:
//!
//! - the path is normalized (dot segments removed, empty segments dropped, as RFC 3986 §5.2.4)
//!   and then URI-encoded again as it stands, so `%20` on the wire is signed as `%2520`;
//! - query parameters are decoded, re-encoded with RFC 3986's unreserved set, sorted by name then
//!   value; the presigned form leaves out `X-Amz-Signature`;
//! - each signed header is `name:value`, the value trimmed with inner runs of spaces collapsed,
//!   repeated headers joined by `,`;
//! - the payload hash is always the SHA-256 of the body received.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};

use crate::claim::single_header;
use crate::error::{Part, SigV4Error};
use crate::{time, Claim, Form, Request};

/// The one algorithm accepted.
pub(crate) const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Everything but RFC 3986's unreserved characters is encoded.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// In the path, `/` separates segments and stays.
const PATH: &AsciiSet = &UNRESERVED.remove(b'/');

/// The hex SHA-256 of the body; an `x-amz-content-sha256` header must state the same.
pub(crate) fn payload_hash(req: &Request<'_>) -> Result<String, SigV4Error> {
    let hash = hex::encode(Sha256::digest(req.body));
    let stated = single_header(
        req.headers,
        "x-amz-content-sha256",
        Part::ContentSha256Header,
    )?;
    match stated {
        None => Ok(hash),
        Some(stated) if stated == hash => Ok(hash),
        Some(stated) if stated.len() == 64 && stated.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Err(SigV4Error::PayloadHashMismatch)
        }
        Some(_) => Err(SigV4Error::UnsignedPayload),
    }
}

/// The canonical request for `req` as `claim` says it was signed.
pub(crate) fn request(
    req: &Request<'_>,
    claim: &Claim,
    payload_hash: &str,
) -> Result<String, SigV4Error> {
    Ok(format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        uri(req.path),
        query(req.query, claim.form),
        headers(req.headers, &claim.signed_headers)?,
        claim.signed_headers.join(";"),
        payload_hash,
    ))
}

/// `AWS4-HMAC-SHA256`, the time, the scope and the canonical request's hash, a line each.
pub(crate) fn string_to_sign(claim: &Claim, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{}\n{}/{}/{}/aws4_request\n{}",
        time::format_basic(claim.timestamp),
        claim.scope.date,
        claim.scope.region,
        claim.scope.service,
        hex::encode(Sha256::digest(canonical_request.as_bytes())),
    )
}

/// The raw path normalized, then encoded again.
fn uri(path: &str) -> String {
    utf8_percent_encode(&normalize(path), PATH).to_string()
}

/// RFC 3986's dot-segment removal, with empty segments dropped too and a trailing `/` kept, as
/// `aws-sigv4` normalizes (botocore does the same on the paths its HTTP client sends).
fn normalize(path: &str) -> String {
    let mut segments = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            segment => segments.push(segment),
        }
    }
    let mut normalized = String::with_capacity(path.len() + 1);
    for segment in &segments {
        normalized.push('/');
        normalized.push_str(segment);
    }
    let directory = ["/", "/.", "/.."].iter().any(|end| path.ends_with(end));
    if normalized.is_empty() || directory {
        normalized.push('/');
    }
    normalized
}

/// The query's parameters decoded, encoded again, sorted by name then value.
fn query(raw: &str, form: Form) -> String {
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(raw.as_bytes())
        .filter(|(name, _)| !(form == Form::Query && name == "X-Amz-Signature"))
        .map(|(name, value)| {
            (
                utf8_percent_encode(&name, UNRESERVED).to_string(),
                utf8_percent_encode(&value, UNRESERVED).to_string(),
            )
        })
        .collect();
    pairs.sort();
    let pairs: Vec<String> = pairs
        .into_iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    pairs.join("&")
}

/// `name:value\n` for each signed header, in the signed (sorted) order.
fn headers(headers: &http::HeaderMap, signed: &[String]) -> Result<String, SigV4Error> {
    let mut canonical = String::new();
    for name in signed {
        let mut values = headers.get_all(name.as_str()).iter().peekable();
        if values.peek().is_none() {
            return Err(SigV4Error::SignedHeaderAbsent(name.clone()));
        }
        canonical.push_str(name);
        canonical.push(':');
        for (at, value) in values.enumerate() {
            let value = std::str::from_utf8(value.as_bytes())
                .map_err(|_| SigV4Error::SignedHeaderNotText(name.clone()))?;
            if at > 0 {
                canonical.push(',');
            }
            push_trimmed(&mut canonical, value);
        }
        canonical.push('\n');
    }
    Ok(canonical)
}

/// The value without leading or trailing spaces, each inner run of spaces made one.
fn push_trimmed(out: &mut String, value: &str) {
    for (at, word) in value.split(' ').filter(|word| !word.is_empty()).enumerate() {
        if at > 0 {
            out.push(' ');
        }
        out.push_str(word);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalized_as_aws_sigv4_does() {
        for (path, expected) in [
            ("", "/"),
            ("/", "/"),
            ("//", "/"),
            ("/ec2/prod/", "/ec2/prod/"),
            ("//example//", "/example/"),
            ("/example/..", "/"),
            ("/example/.", "/example/"),
            ("/example/bar/..", "/example/"),
            ("/./example", "/example"),
            ("/../../example", "/example"),
            ("/example/../..", "/"),
            ("/a.b/c..d", "/a.b/c..d"),
            ("relative", "/relative"),
        ] {
            assert_eq!(normalize(path), expected, "{path:?}");
        }
    }

    #[test]
    fn the_path_is_encoded_again_as_sent() {
        assert_eq!(uri("/example%20space/"), "/example%2520space/");
        assert_eq!(uri("/ሴ"), "/%E1%88%B4");
        assert_eq!(uri("/a:b@c/~x"), "/a%3Ab%40c/~x");
    }

    #[test]
    fn the_query_is_sorted_by_encoded_name_then_value() {
        assert_eq!(
            query("b=2&a=&A=1&a=z&c&Param%201=x+y", Form::Header),
            "A=1&Param%201=x%20y&a=&a=z&b=2&c="
        );
        assert_eq!(
            query("X-Amz-Signature=00&Action=Describe", Form::Query),
            "Action=Describe"
        );
        assert_eq!(
            query("X-Amz-Signature=00", Form::Header),
            "X-Amz-Signature=00"
        );
    }

    #[test]
    fn header_values_are_trimmed_and_repeats_joined() {
        let mut map = http::HeaderMap::new();
        map.append("my-header", "  a   b  c ".parse().unwrap());
        map.append("my-header", "d".parse().unwrap());
        map.append("host", "example.com".parse().unwrap());
        let signed = ["host".to_owned(), "my-header".to_owned()];
        assert_eq!(
            headers(&map, &signed).unwrap(),
            "host:example.com\nmy-header:a b c,d\n"
        );
        let missing = ["host".to_owned(), "x-other".to_owned()];
        assert!(matches!(
            headers(&map, &missing),
            Err(SigV4Error::SignedHeaderAbsent(name)) if name == "x-other"
        ));
    }
}
