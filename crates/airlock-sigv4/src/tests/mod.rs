//! The verifier against what real signers produce (the AWS test suite, the Rust SDK's
//! `aws-sigv4`, botocore) and against an attacker's changes to signed requests.

mod attacks;
mod botocore;
mod sdk;
mod support;
mod vectors;
