//! The signing key, derived from the secret for the claim's day, region and service, and the
//! comparison of the signature it gives with the one the request carries, in constant time.
//! The secret and every key derived from it are wiped from memory once used.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{Part, SigV4Error};
use crate::{Claim, Form};

type HmacSha256 = Hmac<Sha256>;

/// `Ok` when the claimed signature is the one `secret` gives for `string_to_sign`.
pub(crate) fn check_signature(
    secret: &[u8],
    claim: &Claim,
    string_to_sign: &str,
) -> Result<(), SigV4Error> {
    let claimed = hex::decode(&claim.signature).map_err(|_| {
        let part = match claim.form {
            Form::Header => Part::HeaderSignature,
            Form::Query => Part::QuerySignature,
        };
        SigV4Error::malformed(part, "not 64 lower-case hex digits")
    })?;
    let signing_key = signing_key(secret, claim);
    keyed(signing_key.as_slice())
        .chain_update(string_to_sign.as_bytes())
        .verify_slice(&claimed)
        .map_err(|_| SigV4Error::SignatureMismatch)
}

/// `HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
fn signing_key(secret: &[u8], claim: &Claim) -> Zeroizing<[u8; 32]> {
    let mut first = Zeroizing::new(Vec::with_capacity(4 + secret.len()));
    first.extend_from_slice(b"AWS4");
    first.extend_from_slice(secret);
    let date = hmac(first.as_slice(), claim.scope.date.as_bytes());
    let region = hmac(date.as_slice(), claim.scope.region.as_bytes());
    let service = hmac(region.as_slice(), claim.scope.service.as_bytes());
    hmac(service.as_slice(), b"aws4_request")
}

fn hmac(key: &[u8], data: &[u8]) -> Zeroizing<[u8; 32]> {
    Zeroizing::new(keyed(key).chain_update(data).finalize().into_bytes().into())
}

/// The signature `secret` gives, for tests to make sure no error shows it.
#[cfg(test)]
pub(crate) fn expected_signature(secret: &[u8], claim: &Claim, string_to_sign: &str) -> String {
    let mac = keyed(signing_key(secret, claim).as_slice()).chain_update(string_to_sign.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[expect(
    clippy::expect_used,
    reason = "HMAC takes a key of any length; new_from_slice cannot fail"
)]
fn keyed(key: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Scope;

    /// The derived key of AWS's own example ("Derive a signing key for Signature Version 4").
    #[test]
    fn the_signing_key_is_derived_as_aws_documents() {
        let claim = Claim {
            access_key_id: "AKIDEXAMPLE".into(),
            scope: Scope {
                date: "20120215".into(),
                region: "us-east-1".into(),
                service: "iam".into(),
            },
            form: Form::Header,
            signed_headers: vec!["host".into()],
            signature: "0".repeat(64),
            timestamp: chrono::DateTime::UNIX_EPOCH,
            expires: None,
        };
        let key = signing_key(b"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", &claim);
        assert_eq!(
            hex::encode(key.as_slice()),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }
}
