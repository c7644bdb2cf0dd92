//! The containment property: whatever a generated session policy allows, the deployer's own
//! policies allow too, for random deployer policies, extra statements and requests.

use crate::principal::Principal;
use crate::session::{session_policy, Deployer, Scope};
use crate::tags::DEPLOYMENT_TAG;
use airlock_policy::{Context, Decision, Policy, Request};
use proptest::prelude::*;
use serde_json::{json, Value};

const SCOPE: Scope<'static> = Scope {
    deployment_id: "dep-0123456789abcdef",
    region: "us-east-1",
    account_id: "123456789012",
};

const ACTIONS: &[&str] = &[
    "ec2:*",
    "ec2:Stop*",
    "ec2:StopInstances",
    "ec2:TerminateInstances",
    "ec2:CreateTags",
    "ec2:Describe*",
    "ec2:CreateVolume",
    "s3:GetObject",
    "*",
];

const RESOURCES: &[&str] = &[
    "*",
    "arn:aws:ec2:*:*:instance/*",
    "arn:aws:ec2:us-east-1:123456789012:instance/*",
    "arn:aws:ec2:us-east-1:123456789012:instance/i-1",
    "arn:aws:ec2:*:*:volume/*",
    "arn:aws:s3:::logs/*",
];

fn condition() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        Just(Some(
            json!({"StringEquals": {"ec2:ResourceTag/env": "prod"}})
        )),
        Just(Some(
            json!({"StringEquals": {"ec2:ResourceTag/owner": "${aws:username}"}})
        )),
        Just(Some(
            json!({"StringEquals": {"aws:RequestTag/owner": "bob"}})
        )),
        Just(Some(json!({"StringEquals": {"ec2:Region": "us-east-1"}}))),
    ]
}

fn statement(allow_weight: u32) -> impl Strategy<Value = Value> {
    (
        prop_oneof![allow_weight => Just("Allow"), 1 => Just("Deny")],
        prop::sample::subsequence(ACTIONS, 1..3),
        prop::sample::subsequence(RESOURCES, 1..3),
        condition(),
    )
        .prop_map(|(effect, actions, resources, condition)| {
            let mut st = json!({"Effect": effect, "Action": actions, "Resource": resources});
            if let Some(c) = condition {
                st["Condition"] = c;
            }
            st
        })
}

fn request() -> impl Strategy<Value = Request> {
    (
        prop::sample::select(
            &[
                "ec2:StopInstances",
                "ec2:TerminateInstances",
                "ec2:CreateTags",
                "ec2:DescribeInstances",
                "ec2:CreateVolume",
                "s3:GetObject",
            ][..],
        ),
        prop::sample::select(
            &[
                "arn:aws:ec2:us-east-1:123456789012:instance/i-1",
                "arn:aws:ec2:us-east-1:123456789012:instance/i-2",
                "arn:aws:ec2:us-east-1:123456789012:volume/*",
                "arn:aws:ec2:eu-west-1:123456789012:instance/i-1",
                "arn:aws:s3:::logs/a",
                "*",
            ][..],
        ),
        any::<bool>(),
        prop::option::of(prop::sample::select(&["prod", "dev"][..])),
        prop::option::of(prop::sample::select(&["bob", "alice"][..])),
    )
        .prop_map(|(action, resource, own, env, owner)| {
            let mut context = Context::new();
            context.insert("aws:RequestedRegion", "us-east-1");
            context.insert("ec2:Region", "us-east-1");
            if own {
                context.insert(
                    &format!("aws:ResourceTag/{DEPLOYMENT_TAG}"),
                    SCOPE.deployment_id,
                );
                context.insert(
                    &format!("aws:RequestTag/{DEPLOYMENT_TAG}"),
                    SCOPE.deployment_id,
                );
            }
            if let Some(env) = env {
                context.insert("ec2:ResourceTag/env", env);
            }
            if let Some(owner) = owner {
                context.insert("ec2:ResourceTag/owner", owner);
                context.insert("aws:RequestTag/owner", owner);
            }
            Request {
                action: action.into(),
                resource: resource.into(),
                context,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn whatever_the_session_policy_allows_the_deployer_allows(
        deployer in prop::collection::vec(statement(3), 1..5),
        extra in prop::collection::vec(statement(4), 0..2),
        requests in prop::collection::vec(request(), 1..20),
    ) {
        let document = json!({"Version": "2012-10-17", "Statement": deployer}).to_string();
        let policies = vec![Policy::parse("deployer", &document).unwrap()];
        let principal = Principal::new("bob", false, None);
        let who = Deployer { policies: &policies, principal: &principal };
        let Ok(text) = session_policy(&SCOPE, &extra, &who) else { return Ok(()) };
        let session = Policy::parse("session", &text).unwrap();
        for request in requests {
            // AWS evaluates the session for the credentials' own principal, not the deployer.
            let by_session = airlock_policy::evaluate(std::slice::from_ref(&session), &request);
            if by_session.decision != Decision::Allowed {
                continue;
            }
            let mut as_deployer = request.clone();
            principal.add_global_keys(&mut as_deployer.context);
            let by_deployer = airlock_policy::evaluate(&policies, &as_deployer);
            prop_assert_eq!(
                by_deployer.decision,
                Decision::Allowed,
                "session allows {} on {} but the deployer does not\nsession: {}\ndeployer: {}",
                request.action, request.resource, text, document
            );
        }
    }
}
