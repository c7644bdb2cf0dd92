//! What AWS checks for key pair operations.

use super::On;
use crate::check::{Check, ScopeChecks};
use airlock_fleet::key_pair::KeyPairRequest;

pub(super) fn checks(request: &KeyPairRequest, on: &On) -> Vec<Check> {
    use KeyPairRequest as R;
    match request {
        R::Create(r) => {
            let mut out = vec![on
                .s
                .created("ec2:CreateKeyPair", "key-pair", &r.key_name, &r.tags)
                .with("ec2:KeyPairName", r.key_name.as_str())
                .with("ec2:KeyPairType", r.key_type.as_str())];
            out.extend(on.s.tagging("CreateKeyPair", "key-pair", &r.key_name, &r.tags));
            out
        }
        R::Import(r) => {
            let mut out = vec![on
                .s
                .created("ec2:ImportKeyPair", "key-pair", &r.key_name, &r.tags)
                .with("ec2:KeyPairName", r.key_name.as_str())];
            out.extend(on.s.tagging("ImportKeyPair", "key-pair", &r.key_name, &r.tags));
            out
        }
        R::Delete(r) => vec![on.key_pair("ec2:DeleteKeyPair", &r.key_name)],
    }
}
