//! Measures one decision against AWS's EBS snapshot tag-on-create policies,
//! the policies the console evaluates most; the target is well under a
//! microsecond per decision.
//!
//! Also measures a whole console request: the ten checks of one
//! RunInstances with tags on creation (as `airlock-access` lists them) against
//! ten attached policies, with and without parsing the policies first (the
//! console parses them per request when it has no cache).

#![allow(clippy::unwrap_used)]

use airlock_policy::{evaluate, Decision, Policy, Request};
use criterion::{black_box, criterion_group, criterion_main, Criterion};

const CREATE: &str = r#"{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Action":"ec2:CreateSnapshot","Resource":"arn:aws:ec2:us-east-1:123456789012:volume/*","Condition":{"StringEquals":{"ec2:ResourceTag/costcenter":"115"}}},
 {"Sid":"AllowCreateTaggedSnapshots","Effect":"Allow","Action":"ec2:CreateSnapshot","Resource":"arn:aws:ec2:us-east-1::snapshot/*","Condition":{"StringEquals":{"aws:RequestTag/costcenter":"115","aws:RequestTag/User":"${aws:username}"},"ForAllValues:StringEquals":{"aws:TagKeys":["costcenter","User"]}}},
 {"Effect":"Allow","Action":"ec2:CreateTags","Resource":"arn:aws:ec2:us-east-1::snapshot/*","Condition":{"StringEquals":{"ec2:CreateAction":"CreateSnapshot"}}}]}"#;

const DELETE: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:DeleteSnapshot","Resource":"arn:aws:ec2:us-east-1::snapshot/*","Condition":{"StringEquals":{"ec2:ResourceTag/User":"${aws:username}"}}}]}"#;

fn request(json: &str) -> Request {
    serde_json::from_str(json).unwrap()
}

fn bench(c: &mut Criterion) {
    let policies = vec![
        Policy::parse("create", CREATE).unwrap(),
        Policy::parse("delete", DELETE).unwrap(),
    ];
    let create = request(
        r#"{"action":"ec2:CreateSnapshot","resource":"arn:aws:ec2:us-east-1::snapshot/snap-0123",
            "context":{"aws:username":"alice","aws:RequestTag/costcenter":"115",
                       "aws:RequestTag/User":"alice","aws:TagKeys":["costcenter","User"]}}"#,
    );
    let delete_other = request(
        r#"{"action":"ec2:DeleteSnapshot","resource":"arn:aws:ec2:us-east-1::snapshot/snap-0123",
            "context":{"aws:username":"alice","ec2:ResourceTag/User":"bob"}}"#,
    );
    let unrelated = request(r#"{"action":"ec2:RunInstances","resource":"*","context":{}}"#);

    c.bench_function("snapshot: allowed CreateSnapshot", |b| {
        b.iter(|| evaluate(black_box(&policies), black_box(&create)))
    });
    c.bench_function("snapshot: denied DeleteSnapshot", |b| {
        b.iter(|| evaluate(black_box(&policies), black_box(&delete_other)))
    });
    c.bench_function("snapshot: unrelated action", |b| {
        b.iter(|| evaluate(black_box(&policies), black_box(&unrelated)))
    });
}

/// Ten policies as a team might attach them to a console user: tag-based
/// Allows with `${aws:username}`, region and instance-type guard rails as
/// Denies.
const ATTACHED: [(&str, &str); 10] = [
    (
        "console-accounts",
        r#"{"Version":"2012-10-17","Statement":[
 {"Sid":"Dev","Effect":"Allow","Action":"airlock:UseAccount","Resource":"arn:airlock:console:::account/dev"},
 {"Sid":"ProdWithMfa","Effect":"Allow","Action":"airlock:UseAccount","Resource":"arn:airlock:console:::account/prod","Condition":{"Bool":{"aws:MultiFactorAuthPresent":"true"}}}]}"#,
    ),
    (
        "ec2-read",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ec2:Describe*","ec2:GetConsoleOutput"],"Resource":"*"}]}"#,
    ),
    (
        "approved-images",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:RunInstances","Resource":"arn:aws:ec2:*::image/*","Condition":{"StringEquals":{"ec2:ResourceTag/approved":"true"}}}]}"#,
    ),
    (
        "network",
        r#"{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Action":"ec2:RunInstances","Resource":["arn:aws:ec2:*:123456789012:subnet/*","arn:aws:ec2:*:123456789012:security-group/*"],"Condition":{"StringEquals":{"ec2:ResourceTag/tier":["app","web"]}}},
 {"Effect":"Allow","Action":"ec2:RunInstances","Resource":["arn:aws:ec2:*:123456789012:network-interface/*","arn:aws:ec2:*:123456789012:key-pair/*"]}]}"#,
    ),
    (
        "own-instances",
        r#"{"Version":"2012-10-17","Statement":[
 {"Sid":"Instances","Effect":"Allow","Action":"ec2:RunInstances","Resource":"arn:aws:ec2:*:123456789012:instance/*","Condition":{"StringEquals":{"aws:RequestTag/owner":"${aws:username}"},"ForAllValues:StringEquals":{"aws:TagKeys":["owner","env","project","Name"]},"StringLike":{"ec2:InstanceType":["t3.*","m5.*"]}}},
 {"Sid":"Volumes","Effect":"Allow","Action":"ec2:RunInstances","Resource":"arn:aws:ec2:*:123456789012:volume/*","Condition":{"StringEquals":{"aws:RequestTag/owner":"${aws:username}"}}}]}"#,
    ),
    (
        "tag-on-create",
        r#"{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Action":"ec2:CreateTags","Resource":["arn:aws:ec2:*:123456789012:instance/*","arn:aws:ec2:*:123456789012:volume/*"],"Condition":{"StringEquals":{"ec2:CreateAction":["RunInstances","CreateVolume"]}}}]}"#,
    ),
    (
        "manage-own",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ec2:StartInstances","ec2:StopInstances","ec2:RebootInstances","ec2:TerminateInstances"],"Resource":"arn:aws:ec2:*:123456789012:instance/*","Condition":{"StringEquals":{"ec2:ResourceTag/owner":"${aws:username}"}}}]}"#,
    ),
    (
        "deny-prod-deletes",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":["ec2:TerminateInstances","ec2:DeleteVolume","ec2:DeleteSnapshot"],"Resource":"*","Condition":{"StringEquals":{"ec2:ResourceTag/env":"prod"}}}]}"#,
    ),
    (
        "deny-regions",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"ec2:*","Resource":"*","Condition":{"StringNotEquals":{"ec2:Region":["us-east-1","eu-west-1"]}}}]}"#,
    ),
    (
        "guard-rails",
        r#"{"Version":"2012-10-17","Statement":[
 {"Sid":"SmallInstances","Effect":"Deny","Action":"ec2:RunInstances","Resource":"arn:aws:ec2:*:*:instance/*","Condition":{"ForAnyValue:StringNotLike":{"ec2:InstanceType":["t3.*","m5.large","m5.xlarge"]}}},
 {"Sid":"KeepAirlockTags","Effect":"Deny","Action":["ec2:CreateTags","ec2:DeleteTags"],"Resource":"*","Condition":{"ForAnyValue:StringLike":{"aws:TagKeys":["airlock:*"]},"Null":{"ec2:CreateAction":"true"}}}]}"#,
    ),
];

/// The console's checks for one RunInstances with tags on creation.
fn run_instances_checks() -> Vec<Request> {
    let arn = |kind: &str, id: &str| format!("arn:aws:ec2:us-east-1:123456789012:{kind}/{id}");
    let existing = |action: &str, resource: String, tags: &[(&str, &str)]| {
        let mut r = Request::new(action, resource);
        for (k, v) in tags {
            r.context.insert(&format!("ec2:ResourceTag/{k}"), *v);
            r.context.insert(&format!("aws:ResourceTag/{k}"), *v);
        }
        r
    };
    let requested = [
        ("owner", "alice"),
        ("env", "dev"),
        ("project", "atlas"),
        ("Name", "atlas-1"),
    ];
    let created = |action: &str, resource: String| {
        let mut r = Request::new(action, resource);
        for (k, v) in requested {
            r.context.insert(&format!("aws:RequestTag/{k}"), v);
        }
        r.context.insert(
            "aws:TagKeys",
            requested.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
        );
        r
    };
    let run = "ec2:RunInstances";
    let mut instance = created(run, arn("instance", "*"));
    instance.context.insert("ec2:InstanceType", "t3.micro");
    let mut key_pair = existing(run, arn("key-pair", "deploy"), &[]);
    key_pair.context.insert("ec2:KeyPairName", "deploy");
    let tagging = |kind: &str| {
        let mut r = created("ec2:CreateTags", arn(kind, "*"));
        r.context.insert("ec2:CreateAction", "RunInstances");
        r
    };
    let mut checks = vec![
        existing(
            run,
            "arn:aws:ec2:us-east-1::image/ami-0abc".into(),
            &[("approved", "true")],
        ),
        existing(
            run,
            arn("subnet", "subnet-1"),
            &[("tier", "app"), ("env", "dev")],
        ),
        existing(run, arn("security-group", "sg-1"), &[("tier", "app")]),
        key_pair,
        instance,
        created(run, arn("volume", "*")),
        existing(run, arn("network-interface", "*"), &[]),
        tagging("instance"),
        tagging("volume"),
        Request::new("airlock:UseAccount", "arn:airlock:console:::account/prod"),
    ];
    for c in &mut checks {
        let ctx = &mut c.context;
        ctx.insert("ec2:Region", "us-east-1");
        ctx.insert("aws:RequestedRegion", "us-east-1");
        ctx.insert("aws:username", "alice");
        ctx.insert("aws:userid", "alice");
        ctx.insert("aws:CurrentTime", "2025-06-02T09:30:00Z");
        ctx.insert("aws:EpochTime", "1748856600");
        ctx.insert("aws:MultiFactorAuthPresent", "true");
        ctx.insert("aws:SourceIp", "203.0.113.7");
    }
    checks
}

fn parse_attached() -> Vec<Policy> {
    ATTACHED
        .iter()
        .map(|(id, json)| Policy::parse(id, black_box(json)).unwrap())
        .collect()
}

/// Whether every check is allowed, as the console asks.
fn all_allowed(policies: &[Policy], checks: &[Request]) -> bool {
    checks
        .iter()
        .all(|c| evaluate(policies, c).decision == Decision::Allowed)
}

fn bench_run_instances(c: &mut Criterion) {
    let checks = run_instances_checks();
    let policies = parse_attached();
    // The bench measures the path the console takes for a permitted launch.
    for check in &checks {
        let r = evaluate(&policies, check);
        assert_eq!(r.decision, Decision::Allowed, "{check:?}: {r:?}");
    }
    c.bench_function("run_instances_10_policies", |b| {
        b.iter(|| all_allowed(black_box(&policies), black_box(&checks)))
    });
    c.bench_function("run_instances_10_policies_with_parse", |b| {
        b.iter(|| all_allowed(&parse_attached(), black_box(&checks)))
    });
}

criterion_group!(benches, bench, bench_run_instances);
criterion_main!(benches);
