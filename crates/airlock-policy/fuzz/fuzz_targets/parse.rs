//! Fuzzes the policy parser with arbitrary UTF-8, then evaluates whatever
//! parses against a fixed request: neither may panic.
#![no_main]

use airlock_policy::{evaluate, Policy, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(policy) = Policy::parse("fuzz", text) else {
        return;
    };
    let mut request = Request::new(
        "ec2:CreateSnapshot",
        "arn:aws:ec2:us-east-1::snapshot/snap-0123",
    );
    request.context.insert("aws:username", "alice");
    request.context.insert("aws:TagKeys", vec!["costcenter", "User"]);
    request.context.insert("aws:SourceIp", "203.0.113.5");
    request.context.insert("aws:CurrentTime", "2024-06-01T12:00:00Z");
    let _ = evaluate(&[policy], &request);
});
