//! The AWS SigV4 test suite's cases that apply to services other than S3, copied with their
//! origin under `tests/vectors/` (see its README): each signed request verifies, and the
//! canonical request rebuilt from what arrives is the suite's, byte for byte.

use std::path::{Path, PathBuf};

use super::support::Wire;
use crate::{canonical, SigV4Error};

/// Every case is signed with this (published, example) secret.
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir())
        .collect();
    cases.sort();
    assert_eq!(cases.len(), 30, "the copied cases");
    cases
}

/// Checks every case's `{form}-signed-request.txt` against `{form}-canonical-request.txt`;
/// returns the names that failed, with why.
fn check(form: &str) -> (usize, Vec<String>) {
    let mut checked = 0;
    let mut failures = Vec::new();
    for case in cases() {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let Ok(signed) = std::fs::read_to_string(case.join(format!("{form}-signed-request.txt")))
        else {
            continue;
        };
        checked += 1;
        if let Err(why) = check_case(&signed, &case.join(format!("{form}-canonical-request.txt"))) {
            failures.push(format!("{name}: {why}"));
        }
    }
    (checked, failures)
}

fn check_case(signed: &str, canonical_path: &Path) -> Result<(), String> {
    let wire = Wire::from_http_text(signed);
    let claim = wire.parse().map_err(|e| e.to_string())?;
    let expected = std::fs::read_to_string(canonical_path).map_err(|e| e.to_string())?;
    let payload_hash = canonical::payload_hash(&wire.request()).map_err(|e| e.to_string())?;
    let rebuilt =
        canonical::request(&wire.request(), &claim, &payload_hash).map_err(|e| e.to_string())?;
    if rebuilt != expected.trim_end_matches('\n') {
        return Err(format!("canonical request\n{rebuilt}\nis not\n{expected}"));
    }
    wire.verify(SECRET, claim.timestamp)
        .map_err(|e| e.to_string())?;
    match wire.verify("not the secret", claim.timestamp) {
        Err(SigV4Error::SignatureMismatch) => Ok(()),
        other => Err(format!("a wrong secret gave {other:?}")),
    }
}

#[test]
fn suite_requests_signed_in_the_header_verify() {
    let (checked, failures) = check("header");
    assert_eq!(checked, 30);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn suite_requests_presigned_in_the_query_verify() {
    let (checked, failures) = check("query");
    assert_eq!(
        checked, 28,
        "all but two have a presigned form that applies"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
