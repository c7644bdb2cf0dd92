//! Requests signed by botocore, the signer of the `aws` CLI and boto3, recorded as they would go
//! on the wire by `tests/fixtures/make.py` (a made-up key, a fixed time): each verifies, and
//! each stops verifying when one byte of what it signs changes.

use std::path::Path;

use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;
use serde_json::Value;

use super::support::{at, Wire};
use crate::{Form, SigV4Error};

struct Fixtures {
    secret: String,
    access_key_id: String,
    signed_at: String,
    requests: Vec<(String, Wire)>,
}

fn fixtures() -> Fixtures {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/botocore.json");
    let json: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let text = |value: &Value| value.as_str().unwrap().to_owned();
    let requests = json["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|request| (text(&request["name"]), wire(request)))
        .collect();
    Fixtures {
        secret: text(&json["secret_access_key"]),
        access_key_id: text(&json["access_key_id"]),
        signed_at: text(&json["signed_at"]),
        requests,
    }
}

fn wire(request: &Value) -> Wire {
    let text = |key: &str| request[key].as_str().unwrap().to_owned();
    let mut headers = HeaderMap::new();
    for pair in request["headers"].as_array().unwrap() {
        headers.append(
            HeaderName::from_bytes(pair[0].as_str().unwrap().as_bytes()).unwrap(),
            HeaderValue::from_str(pair[1].as_str().unwrap()).unwrap(),
        );
    }
    Wire {
        method: text("method"),
        path: text("path"),
        query: text("query"),
        headers,
        body: text("body").into_bytes(),
    }
}

#[test]
fn requests_signed_by_botocore_verify() {
    let fixtures = fixtures();
    let now = at(&fixtures.signed_at);
    assert_eq!(fixtures.requests.len(), 8);
    for (name, wire) in &fixtures.requests {
        let claim = wire
            .verify(&fixtures.secret, now)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(claim.access_key_id, fixtures.access_key_id, "{name}");
        assert_eq!(claim.scope.region, "eu-west-1", "{name}");
        let presigned = name.starts_with("presigned");
        assert_eq!(claim.form == Form::Query, presigned, "{name}");
    }
}

#[test]
fn requests_signed_by_botocore_fail_when_changed() {
    let fixtures = fixtures();
    let now = at(&fixtures.signed_at);
    for (name, wire) in &fixtures.requests {
        let mut changed = wire.clone();
        if wire.body.is_empty() {
            changed.query = changed.query.replacen("i-0abc", "i-0abd", 1);
        } else {
            changed.body = String::from_utf8(wire.body.clone())
                .unwrap()
                .replacen("Version=", "Version=1", 1)
                .into_bytes();
        }
        let error = changed.verify(&fixtures.secret, now).unwrap_err();
        assert!(
            matches!(error, SigV4Error::SignatureMismatch),
            "{name}: {error:?}"
        );
    }
}
