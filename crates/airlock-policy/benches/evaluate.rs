//! Measures one decision against AWS's EBS snapshot tag-on-create policies,
//! the policies the console evaluates most; the target is well under a
//! microsecond per decision.

#![allow(clippy::unwrap_used)]

use airlock_policy::{evaluate, Policy, Request};
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

criterion_group!(benches, bench);
criterion_main!(benches);
