//! Placement on deploy against moto: instances spread evenly over Availability Zones, dedicated
//! tenancy reaching EC2, and both decided by policies on `ec2:AvailabilityZone` and
//! `ec2:Tenancy` as AWS decides them.

use crate::common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;

fn ids_of(dep: &Value) -> Vec<String> {
    dep["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["instance_id"].as_str().unwrap().to_owned())
        .collect()
}

fn deploy<'a>(image: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "deploy",
        "--account",
        "dev",
        "--image",
        image,
        "--instance-type",
        "t3.micro",
        "--credentials",
        "none",
    ];
    args.extend_from_slice(extra);
    args
}

#[tokio::test(flavor = "multi_thread")]
async fn six_instances_spread_two_per_zone_and_dedicated_tenancy_is_decided_by_policy() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);

    let ring = console.json(&deploy(
        &net.image_id,
        &[
            "--count",
            "6",
            "--availability-zones",
            "us-east-1a,us-east-1b,us-east-1c",
            "--wait",
        ],
    ));
    let mut per_zone: BTreeMap<String, usize> = BTreeMap::new();
    for id in ids_of(&ring) {
        let zone = described(&ec2, &id)
            .await
            .placement()
            .and_then(|p| p.availability_zone())
            .unwrap()
            .to_owned();
        *per_zone.entry(zone).or_default() += 1;
    }
    assert_eq!(
        per_zone,
        BTreeMap::from([
            ("us-east-1a".to_owned(), 2),
            ("us-east-1b".to_owned(), 2),
            ("us-east-1c".to_owned(), 2)
        ])
    );
    // Scaling down to 4 takes from the fullest zones: the ring stays as even as it can.
    console.ok(&[
        "deployment",
        "scale",
        ring["id"].as_str().unwrap(),
        "--count",
        "4",
        "--wait",
    ]);
    let mut left: BTreeMap<String, usize> = BTreeMap::new();
    let shown = console.json(&["deployment", "show", ring["id"].as_str().unwrap()]);
    for i in shown["instances"].as_array().unwrap() {
        if i["state"] == "running" {
            let zone = described(&ec2, i["instance_id"].as_str().unwrap())
                .await
                .placement()
                .and_then(|p| p.availability_zone())
                .unwrap()
                .to_owned();
            *left.entry(zone).or_default() += 1;
        }
    }
    let mut counts: Vec<usize> = left.values().copied().collect();
    counts.sort_unstable();
    assert_eq!(counts, [1, 1, 2], "{left:?}");

    // Dedicated tenancy reaches EC2: in the RunInstances request moto received (moto itself
    // reports every instance as default tenancy).
    moto.record().await;
    console.json(&deploy(
        &net.image_id,
        &["--tenancy", "dedicated", "--wait"],
    ));
    let launches: Vec<String> = moto
        .bodies()
        .await
        .into_iter()
        .filter(|b| b.contains("Action=RunInstances"))
        .collect();
    assert_eq!(launches.len(), 1, "{launches:?}");
    assert!(
        launches[0].contains("Placement.Tenancy=dedicated"),
        "{}",
        launches[0]
    );

    // A user kept on shared hardware and out of one zone is refused those, and only those.
    let shared = console.add_user(
        "shared",
        &[json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"},
            {"Effect": "Deny", "Action": "ec2:RunInstances", "Resource": "*",
             "Condition": {"StringEquals": {"ec2:Tenancy": "dedicated"}}},
            {"Effect": "Deny", "Action": "ec2:RunInstances", "Resource": "*",
             "Condition": {"StringEquals": {"ec2:AvailabilityZone": "us-east-1c"}}}
        ]})],
    );
    for refused in [
        deploy(&net.image_id, &["--tenancy", "dedicated"]),
        deploy(
            &net.image_id,
            &[
                "--count",
                "2",
                "--availability-zones",
                "us-east-1a,us-east-1c",
            ],
        ),
    ] {
        let out = shared.cli(&refused);
        assert!(!out.status.success(), "{refused:?}");
        let err = stderr(&out);
        assert!(err.contains("ec2:RunInstances"), "{err}");
    }
    shared.ok(&deploy(
        &net.image_id,
        &[
            "--availability-zones",
            "us-east-1a,us-east-1b",
            "--count",
            "2",
        ],
    ));
    shared.ok(&deploy(&net.image_id, &["--tenancy", "default"]));
}
