//! Requests signed by the Rust SDK's own signer (`aws-sigv4`, with the settings the SDK uses for
//! EC2: normalized, double-encoded paths) verify, in the header and the presigned form.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use aws_sigv4::sign::v4;
use chrono::{DateTime, TimeDelta, Utc};

use super::support::{at, Wire};
use crate::Form;

pub(super) const KEY_ID: &str = "ALKSDKTEST0000000001";
pub(super) const SECRET: &str = "sdk/Test+Secret/0123456789abcdefABCDEF";
pub(super) const CONSOLE: &str = "http://127.0.0.1:7070";
pub(super) const FORM_TYPE: (&str, &str) = (
    "content-type",
    "application/x-www-form-urlencoded; charset=utf-8",
);
pub(super) const DESCRIBE: &[u8] = b"Action=DescribeInstances&Version=2016-11-15";

/// When every request here is signed.
pub(super) fn signed_at() -> DateTime<Utc> {
    at("20260115T120000Z")
}

/// `seconds` after [`signed_at`] (before, when negative).
pub(super) fn later(seconds: i64) -> DateTime<Utc> {
    signed_at() + TimeDelta::seconds(seconds)
}

pub(super) fn header_settings() -> SigningSettings {
    SigningSettings::default()
}

pub(super) fn presigned_settings(expires: Duration) -> SigningSettings {
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(expires);
    settings
}

pub(super) fn with_content_sha256(mut settings: SigningSettings) -> SigningSettings {
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings
}

/// `method path_and_query` with `body`, signed by the SDK for EC2 in eu-west-1.
pub(super) fn sdk_signed(
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    settings: SigningSettings,
) -> Wire {
    sdk_signed_as(
        method,
        path_and_query,
        headers,
        body,
        SignableBody::Bytes(body),
        settings,
    )
}

/// As [`sdk_signed`], with the SDK told `signable` about the body.
pub(super) fn sdk_signed_as(
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    signable: SignableBody<'_>,
    settings: SigningSettings,
) -> Wire {
    let url = format!("{CONSOLE}{path_and_query}");
    let identity =
        aws_credential_types::Credentials::new(KEY_ID, SECRET, None, None, "test").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("eu-west-1")
        .name("ec2")
        .time(SystemTime::from(signed_at()))
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let signable = SignableRequest::new(method, &url, headers.iter().copied(), signable).unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut request = http::Request::builder().method(method).uri(&url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut request = request.body(body.to_vec()).unwrap();
    instructions.apply_to_request_http1x(&mut request);
    Wire::from_http(&request)
}

/// The EC2 call the `aws` CLI makes most: a form-encoded POST to the account's endpoint.
pub(super) fn describe_instances() -> Wire {
    sdk_signed(
        "POST",
        "/ec2/prod/",
        &[FORM_TYPE],
        DESCRIBE,
        header_settings(),
    )
}

/// The same, with the body's hash in `x-amz-content-sha256`, signed.
pub(super) fn describe_instances_with_content_sha256() -> Wire {
    sdk_signed(
        "POST",
        "/ec2/prod/",
        &[FORM_TYPE],
        DESCRIBE,
        with_content_sha256(header_settings()),
    )
}

#[test]
fn a_form_encoded_ec2_call_signed_in_the_header_verifies() {
    let claim = describe_instances().verify(SECRET, signed_at()).unwrap();
    assert_eq!(claim.access_key_id, KEY_ID);
    assert_eq!(claim.form, Form::Header);
    assert_eq!(claim.scope.date, "20260115");
    assert_eq!(claim.scope.region, "eu-west-1");
    assert_eq!(claim.scope.service, "ec2");
    assert_eq!(claim.signed_headers, ["content-type", "host", "x-amz-date"]);
    assert_eq!(claim.timestamp, signed_at());
    assert_eq!(claim.expires, None);
}

#[test]
fn a_call_with_x_amz_content_sha256_verifies() {
    let wire = describe_instances_with_content_sha256();
    assert!(wire.headers.contains_key("x-amz-content-sha256"));
    let claim = wire.verify(SECRET, signed_at()).unwrap();
    assert!(claim
        .signed_headers
        .contains(&"x-amz-content-sha256".to_owned()));
}

#[test]
fn a_presigned_ec2_call_verifies_until_it_expires() {
    let wire = sdk_signed(
        "GET",
        "/ec2/prod/?Action=DescribeInstances&Version=2016-11-15&InstanceId.1=i-0abc",
        &[],
        b"",
        presigned_settings(Duration::from_secs(300)),
    );
    assert!(wire.query.contains("X-Amz-Signature="));
    let claim = wire.verify(SECRET, later(299)).unwrap();
    assert_eq!(claim.form, Form::Query);
    assert_eq!(claim.expires, Some(Duration::from_secs(300)));
    assert_eq!(claim.signed_headers, ["host"]);
}

#[test]
fn paths_verify_as_the_sdk_encodes_and_normalizes_them() {
    for path in [
        "/",
        "/ec2/prod",
        "/ec2/prod/",
        "/ec2/my%20account/",
        "/ec2/%E1%88%B4/",
        "/ec2/a:b@c,d=e/",
        "/ec2/./prod/../prod//",
        "/ec2/prod/-._~%2F%25",
    ] {
        let header = sdk_signed("POST", path, &[FORM_TYPE], DESCRIBE, header_settings());
        header
            .verify(SECRET, signed_at())
            .unwrap_or_else(|e| panic!("{path} header form: {e}"));
        let presigned = sdk_signed(
            "POST",
            path,
            &[FORM_TYPE],
            DESCRIBE,
            presigned_settings(Duration::from_secs(60)),
        );
        presigned
            .verify(SECRET, signed_at())
            .unwrap_or_else(|e| panic!("{path} query form: {e}"));
    }
}

#[test]
fn queries_verify_as_the_sdk_encodes_them() {
    let query = "/ec2/prod/?Action=DescribeInstances&Filter.1.Name=tag%3ATeam\
                 &Filter.1.Value.1=web%20%26%20db&Filter.1.Value.2=a%2Bb%2Fc~d&Empty=&Flag";
    sdk_signed("GET", query, &[], b"", header_settings())
        .verify(SECRET, signed_at())
        .unwrap();
    sdk_signed(
        "GET",
        query,
        &[],
        b"",
        presigned_settings(Duration::from_secs(60)),
    )
    .verify(SECRET, signed_at())
    .unwrap();
}

#[test]
fn repeated_and_spaced_headers_verify() {
    let wire = sdk_signed(
        "POST",
        "/ec2/prod/",
        &[FORM_TYPE, ("x-custom", "  a   b "), ("x-custom", "c")],
        DESCRIBE,
        header_settings(),
    );
    assert_eq!(wire.headers.get_all("x-custom").iter().count(), 2);
    wire.verify(SECRET, signed_at()).unwrap();
}

/// Used by the attack tests: the SDK told not to sign `host`.
pub(super) fn without_host_signed() -> Wire {
    let mut settings = header_settings();
    settings.excluded_headers = Some(vec![Cow::Borrowed("host")]);
    sdk_signed("POST", "/ec2/prod/", &[FORM_TYPE], DESCRIBE, settings)
}
