//! What an attacker (or a broken client) may send: requests changed after signing, replayed,
//! signed with the wrong key, or shaped to cost the verifier. Each is refused with the error
//! code EC2 answers, and no error tells the secret or the signature the server expected.

use std::time::Duration;

use aws_sigv4::http_request::SignableBody;
use sha2::{Digest, Sha256};

use super::sdk::{
    describe_instances, describe_instances_with_content_sha256, header_settings, later,
    presigned_settings, sdk_signed, sdk_signed_as, signed_at, with_content_sha256,
    without_host_signed, DESCRIBE, FORM_TYPE, SECRET,
};
use super::support::Wire;
use crate::{canonical, key, SigV4Error};

const TERMINATE: &[u8] = b"Action=TerminateInstances&Version=2016-11-15&InstanceId.1=i-0abc";

fn refused(wire: &Wire, secret: &str, now: chrono::DateTime<chrono::Utc>) -> SigV4Error {
    wire.verify(secret, now).unwrap_err()
}

/// `wire` with its Authorization header rewritten by `change`.
fn with_authorization(wire: &Wire, change: impl Fn(&str) -> String) -> Wire {
    let mut changed = wire.clone();
    let authorization = wire.headers["authorization"].to_str().unwrap();
    changed.set_header("authorization", &change(authorization));
    changed
}

/// `wire` signing `signed_headers` instead of what the SDK signed.
fn with_signed_headers(wire: &Wire, signed_headers: &str) -> Wire {
    with_authorization(wire, |authorization| {
        let (before, rest) = authorization.split_once("SignedHeaders=").unwrap();
        let (_, after) = rest.split_once(',').unwrap();
        format!("{before}SignedHeaders={signed_headers},{after}")
    })
}

fn presigned(expires: u64) -> Wire {
    sdk_signed(
        "GET",
        "/ec2/prod/?Action=DescribeInstances&Version=2016-11-15",
        &[],
        b"",
        presigned_settings(Duration::from_secs(expires)),
    )
}

#[test]
fn tampered_body_is_refused() {
    let mut wire = describe_instances();
    wire.verify(SECRET, signed_at()).unwrap();
    wire.body = TERMINATE.to_vec();
    let error = refused(&wire, SECRET, signed_at());
    assert!(matches!(error, SigV4Error::SignatureMismatch), "{error:?}");
    assert_eq!(error.code(), "SignatureDoesNotMatch");
}

#[test]
fn tampered_signature_is_refused() {
    let wire = describe_instances();
    let tampered = with_authorization(&wire, |authorization| {
        let last = authorization.chars().last().unwrap();
        let flipped = if last == '0' { '1' } else { '0' };
        format!("{}{flipped}", &authorization[..authorization.len() - 1])
    });
    let error = refused(&tampered, SECRET, signed_at());
    assert!(matches!(error, SigV4Error::SignatureMismatch), "{error:?}");
    assert_eq!(error.code(), "SignatureDoesNotMatch");
}

#[test]
fn tampered_query_of_a_presigned_request_is_refused() {
    let mut wire = presigned(60);
    wire.verify(SECRET, signed_at()).unwrap();
    wire.query = wire
        .query
        .replace("DescribeInstances", "TerminateInstances");
    let error = refused(&wire, SECRET, signed_at());
    assert!(matches!(error, SigV4Error::SignatureMismatch), "{error:?}");
}

#[test]
fn wrong_secret_is_refused() {
    let error = refused(
        &describe_instances(),
        "sdk/Test+Secret/0123456789abcdefABCDEG",
        signed_at(),
    );
    assert!(matches!(error, SigV4Error::SignatureMismatch), "{error:?}");
    assert_eq!(error.code(), "SignatureDoesNotMatch");
}

/// The error for `wire` checked `refused_at` seconds after signing, once it is known to verify
/// `good_at` seconds after.
fn refused_in_time(wire: &Wire, good_at: i64, refused_at: i64) -> SigV4Error {
    wire.verify(SECRET, later(good_at)).unwrap();
    let error = refused(wire, SECRET, later(refused_at));
    assert_eq!(error.code(), "RequestExpired");
    error
}

#[test]
fn request_ten_minutes_old_is_refused() {
    let error = refused_in_time(&describe_instances(), 300, 600);
    assert!(matches!(error, SigV4Error::Skewed { .. }), "{error:?}");
}

#[test]
fn request_from_the_future_is_refused() {
    let error = refused_in_time(&describe_instances(), -300, -600);
    assert!(matches!(error, SigV4Error::Skewed { .. }), "{error:?}");
    let error = refused_in_time(&presigned(3600), -300, -600);
    assert!(matches!(error, SigV4Error::Skewed { .. }), "{error:?}");
}

#[test]
fn unsigned_host_header_is_refused() {
    let wire = without_host_signed();
    assert!(wire.headers.contains_key("host"));
    let error = wire.parse().unwrap_err();
    assert!(
        matches!(error, SigV4Error::MustBeSigned("host")),
        "{error:?}"
    );
    assert_eq!(error.code(), "IncompleteSignature");
}

#[test]
fn unsigned_x_amz_date_is_refused() {
    let error = with_signed_headers(&describe_instances(), "content-type;host")
        .parse()
        .unwrap_err();
    assert!(
        matches!(error, SigV4Error::MustBeSigned("x-amz-date")),
        "{error:?}"
    );
}

#[test]
fn query_form_past_its_expiry_is_refused() {
    let error = refused_in_time(&presigned(60), 60, 61);
    assert!(matches!(error, SigV4Error::Expired { .. }), "{error:?}");
}

#[test]
fn query_form_asking_for_more_than_seven_days_is_refused() {
    let mut wire = presigned(60);
    wire.query = wire
        .query
        .replace("X-Amz-Expires=60", "X-Amz-Expires=604801");
    let error = wire.parse().unwrap_err();
    assert!(
        matches!(error, SigV4Error::ExpiresTooLong(604_801)),
        "{error:?}"
    );
    assert_eq!(error.code(), "RequestExpired");
}

#[test]
fn content_sha256_header_that_lies_is_refused() {
    let signed = describe_instances_with_content_sha256();
    signed.verify(SECRET, signed_at()).unwrap();
    let mut swapped = signed.clone();
    swapped.body = TERMINATE.to_vec();
    let error = refused(&swapped, SECRET, signed_at());
    assert!(
        matches!(error, SigV4Error::PayloadHashMismatch),
        "{error:?}"
    );
    assert_eq!(error.code(), "SignatureDoesNotMatch");

    // Even unsigned, the header may not state another body's hash.
    let mut unsigned_lie = describe_instances();
    unsigned_lie.set_header(
        "x-amz-content-sha256",
        &hex::encode(Sha256::digest(TERMINATE)),
    );
    let error = refused(&unsigned_lie, SECRET, signed_at());
    assert!(
        matches!(error, SigV4Error::PayloadHashMismatch),
        "{error:?}"
    );
}

/// Signed by the SDK for a body it did not hash: `x-amz-content-sha256: UNSIGNED-PAYLOAD`.
fn unsigned_payload() -> Wire {
    sdk_signed_as(
        "POST",
        "/ec2/prod/",
        &[FORM_TYPE],
        DESCRIBE,
        SignableBody::UnsignedPayload,
        with_content_sha256(header_settings()),
    )
}

#[test]
fn unsigned_payload_is_refused() {
    let wire = unsigned_payload();
    assert_eq!(wire.headers["x-amz-content-sha256"], "UNSIGNED-PAYLOAD");
    let error = refused(&wire, SECRET, signed_at());
    assert!(matches!(error, SigV4Error::UnsignedPayload), "{error:?}");
    assert_eq!(error.code(), "AuthFailure");
}

/// `content-type;host;x-amz-date` and `extra` more headers, each also put in the request.
fn with_many_signed_headers(extra: usize) -> Wire {
    let mut wire = describe_instances();
    let mut names = vec!["content-type".to_owned(), "host".to_owned()];
    for at in 0..extra {
        let name = format!("x-a{at:03}");
        wire.set_header(&name, "v");
        names.push(name);
    }
    names.push("x-amz-date".to_owned());
    with_signed_headers(&wire, &names.join(";"))
}

#[test]
fn huge_signed_header_list_is_refused() {
    assert_eq!(
        with_many_signed_headers(61)
            .parse()
            .unwrap()
            .signed_headers
            .len(),
        64
    );
    let error = with_many_signed_headers(62).parse().unwrap_err();
    assert!(
        matches!(error, SigV4Error::Malformed { reason, .. } if reason.contains("more than 64")),
        "{error:?}"
    );
    assert_eq!(error.code(), "IncompleteSignature");
    let error = with_many_signed_headers(5000).parse().unwrap_err();
    assert_eq!(error.code(), "IncompleteSignature");
}

#[test]
fn unsorted_or_repeated_signed_headers_are_refused() {
    for list in [
        "host;content-type;x-amz-date",
        "content-type;host;host;x-amz-date",
        "content-type;Host;x-amz-date",
        "content-type;;host;x-amz-date",
    ] {
        let error = with_signed_headers(&describe_instances(), list)
            .parse()
            .unwrap_err();
        assert!(
            matches!(error, SigV4Error::Malformed { .. }),
            "{list}: {error:?}"
        );
    }
}

#[test]
fn an_unsigned_request_misses_its_authentication_token() {
    let mut wire = describe_instances();
    wire.headers.remove("authorization");
    let error = wire.parse().unwrap_err();
    assert!(matches!(error, SigV4Error::Unsigned), "{error:?}");
    assert_eq!(error.code(), "MissingAuthenticationToken");
}

#[test]
fn other_algorithms_are_refused() {
    for algorithm in ["AWS4-ECDSA-P256-SHA256", "AWS", "Bearer"] {
        let wire = with_authorization(&describe_instances(), |authorization| {
            authorization.replacen("AWS4-HMAC-SHA256", algorithm, 1)
        });
        let error = wire.parse().unwrap_err();
        assert!(
            matches!(error, SigV4Error::UnsupportedAlgorithm(_)),
            "{error:?}"
        );
        assert_eq!(error.code(), "AuthFailure");
    }
}

#[test]
fn a_scope_date_other_than_the_request_date_is_refused() {
    let wire = with_authorization(&describe_instances(), |authorization| {
        authorization.replacen("/20260115/", "/20260114/", 1)
    });
    let error = wire.parse().unwrap_err();
    assert!(matches!(error, SigV4Error::ScopeDate { .. }), "{error:?}");
    assert_eq!(error.code(), "AuthFailure");
}

#[test]
fn malformed_and_incomplete_signatures_are_refused() {
    let long_key = "A".repeat(300);
    let cases: Vec<(Wire, &str)> = vec![
        (
            with_authorization(&describe_instances(), |a| {
                a.replacen(", Signature=", ", Sig=", 1)
            }),
            "Signature missing",
        ),
        (
            with_authorization(&describe_instances(), |a| {
                format!("{a}, Signature={}", "0".repeat(64))
            }),
            "Signature twice",
        ),
        (
            with_authorization(&describe_instances(), |a| {
                a.replacen("/aws4_request", "/aws4_req", 1)
            }),
            "terminator",
        ),
        (
            with_authorization(&describe_instances(), |a| {
                a.replacen("ALKSDKTEST0000000001", &long_key, 1)
            }),
            "credential too long",
        ),
        (
            with_authorization(&describe_instances(), |a| {
                a.replacen("/eu-west-1/", "/EU West/", 1)
            }),
            "region",
        ),
        (
            with_authorization(&describe_instances(), |a| a[..a.len() - 1].to_owned()),
            "short signature",
        ),
        (
            with_authorization(&describe_instances(), |a| {
                a.to_uppercase().replacen(
                    "AWS4-HMAC-SHA256 CREDENTIAL",
                    "AWS4-HMAC-SHA256 Credential",
                    1,
                )
            }),
            "upper-case",
        ),
    ];
    for (wire, case) in cases {
        let error = wire.parse().unwrap_err();
        assert_eq!(error.code(), "IncompleteSignature", "{case}: {error:?}");
    }
    let mut both = describe_instances();
    both.query = format!("X-Amz-Signature={}", "0".repeat(64));
    assert!(matches!(both.parse().unwrap_err(), SigV4Error::TwoForms));
    let mut twice = describe_instances();
    let authorization = twice.headers["authorization"].clone();
    twice.headers.append("authorization", authorization);
    assert!(matches!(
        twice.parse().unwrap_err(),
        SigV4Error::Repeated(_)
    ));
}

/// Every refusal a request can earn, with the secret it is checked against and when.
fn refusals() -> Vec<(Wire, &'static str, chrono::DateTime<chrono::Utc>)> {
    let mut tampered = describe_instances();
    tampered.body = TERMINATE.to_vec();
    let mut lying = describe_instances_with_content_sha256();
    lying.body = TERMINATE.to_vec();
    let mut unsigned = describe_instances();
    unsigned.headers.remove("authorization");
    let mut binary =
        with_signed_headers(&describe_instances(), "content-type;host;x-amz-date;x-bin");
    binary
        .headers
        .insert("x-bin", http::HeaderValue::from_bytes(b"\xff\xfe").unwrap());
    let mut too_long = presigned(60);
    too_long.query = too_long
        .query
        .replace("X-Amz-Expires=60", "X-Amz-Expires=999999");
    vec![
        (tampered, SECRET, signed_at()),
        (describe_instances(), "the wrong secret", signed_at()),
        (describe_instances(), SECRET, later(600)),
        (presigned(60), SECRET, later(61)),
        (too_long, SECRET, signed_at()),
        (lying, SECRET, signed_at()),
        (unsigned_payload(), SECRET, signed_at()),
        (unsigned, SECRET, signed_at()),
        (binary, SECRET, signed_at()),
        (
            with_signed_headers(
                &describe_instances(),
                "content-type;host;x-amz-date;x-missing",
            ),
            SECRET,
            signed_at(),
        ),
        (without_host_signed(), SECRET, signed_at()),
        (
            with_authorization(&describe_instances(), |a| {
                a.replacen("/20260115/", "/20260114/", 1)
            }),
            SECRET,
            signed_at(),
        ),
        (
            with_authorization(&describe_instances(), |a| {
                a.replacen("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256", 1)
            }),
            SECRET,
            signed_at(),
        ),
        (
            with_authorization(&describe_instances(), |a| {
                a.replacen("/aws4_request", "/x", 1)
            }),
            SECRET,
            signed_at(),
        ),
    ]
}

#[test]
fn error_messages_never_contain_the_secret_or_expected_signature() {
    let mut codes = std::collections::BTreeSet::new();
    for (wire, secret, now) in refusals() {
        let error = refused(&wire, secret, now);
        codes.insert(error.code());
        let shown = format!("{error} {error:?}");
        let mut forbidden = vec![SECRET.to_owned(), secret.to_owned()];
        if let Ok(claim) = wire.parse() {
            forbidden.push(claim.signature.clone());
            let payload_hash = hex::encode(Sha256::digest(&wire.body));
            if let Ok(canonical_request) =
                canonical::request(&wire.request(), &claim, &payload_hash)
            {
                let string_to_sign = canonical::string_to_sign(&claim, &canonical_request);
                forbidden.push(key::expected_signature(
                    secret.as_bytes(),
                    &claim,
                    &string_to_sign,
                ));
                forbidden.push(string_to_sign);
                forbidden.push(canonical_request);
            }
        }
        for needle in &forbidden {
            assert!(
                !shown.contains(needle.as_str()),
                "{shown:?} shows {needle:?}"
            );
        }
        assert!(!error.to_string().is_empty());
    }
    assert_eq!(
        codes.into_iter().collect::<Vec<_>>(),
        [
            "AuthFailure",
            "IncompleteSignature",
            "MissingAuthenticationToken",
            "RequestExpired",
            "SignatureDoesNotMatch"
        ]
    );
}
