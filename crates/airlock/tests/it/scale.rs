//! The console at fleet scale: 2,000 instances over two accounts, and how many EC2 calls each
//! console feature makes for them, counted by moto's request recorder and printed.

use crate::common::*;
use std::time::{Duration, Instant};

/// Instances per account.
const PER_ACCOUNT: i32 = 1000;

/// Launches `PER_ACCOUNT` instances in `region` straight in EC2 (not through the console), half
/// of them tagged `tier=web`, the rest `tier=db`.
async fn fill(moto: &Moto, region: &str) {
    let ec2 = moto.ec2_in(region).await;
    for tier in ["web", "db"] {
        let tags = aws_sdk_ec2::types::TagSpecification::builder()
            .resource_type(aws_sdk_ec2::types::ResourceType::Instance)
            .tags(
                aws_sdk_ec2::types::Tag::builder()
                    .key("tier")
                    .value(tier)
                    .build(),
            )
            .build();
        ec2.run_instances()
            .image_id(TEST_IMAGE)
            .instance_type("t3.micro".into())
            .min_count(PER_ACCOUNT / 2)
            .max_count(PER_ACCOUNT / 2)
            .tag_specifications(tags)
            .send()
            .await
            .unwrap();
    }
}

/// Runs `what` against the console and prints (and returns) the `DescribeInstances` calls it
/// cost and how long it took.
async fn counted<T>(
    moto: &Moto,
    name: &str,
    what: impl std::future::Future<Output = T>,
) -> (T, usize) {
    moto.record().await;
    let started = Instant::now();
    let out = what.await;
    let took = started.elapsed();
    let calls = moto.calls("DescribeInstances").await;
    println!(
        "{name:<44} {calls:>3} DescribeInstances  {:>7.0} ms",
        took.as_secs_f64() * 1000.0
    );
    (out, calls)
}

/// Deploys with `args` and gives each instance's (id, address, enrolment secret).
async fn enrolled(
    console: &Console,
    moto: &Moto,
    args: &[&str],
) -> (String, Vec<(String, String, String)>) {
    let dep = console.json(args);
    let ec2 = moto.ec2().await;
    let mut instances = Vec::new();
    for i in dep["instances"].as_array().unwrap() {
        let id = i["instance_id"].as_str().unwrap().to_owned();
        let ip = i["private_ip"].as_str().unwrap().to_owned();
        let secret = enrolment_secret(&ec2, &id).await;
        instances.push((id, ip, secret));
    }
    (dep["id"].as_str().unwrap().to_owned(), instances)
}

/// The first snapshot of `GET /v1/instances/watch` (everything up to `event: ready`).
async fn first_watch_snapshot(console: &Console) -> String {
    let mut response = reqwest::Client::new()
        .get(format!("{}/v1/instances/watch?interval=60", console.url))
        .bearer_auth(console.token())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut text = String::new();
    loop {
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .expect("the watch's first snapshot within 120 s")
            .unwrap()
            .unwrap();
        // Only the new end is searched: the snapshot is a megabyte of events.
        let from = text.len().saturating_sub(16);
        text.push_str(&String::from_utf8_lossy(&chunk));
        if text.as_bytes()[from..]
            .windows(b"event: ready".len())
            .any(|w| w == b"event: ready")
        {
            return text;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_thousand_instances_over_two_accounts_are_listed_filtered_watched_and_refreshed_with_few_ec2_calls(
) {
    let moto = Moto::start();
    let net = loopback_net(&moto.ec2().await).await;
    let console = Console::start();
    console.login_with_account(&moto);
    ok(
        console.add_account_in(&moto, "other", OTHER_REGION),
        &["account add other"],
    );
    fill(&moto, REGION).await;
    fill(&moto, OTHER_REGION).await;
    println!("2,000 instances over 2 accounts; EC2 calls counted by moto's recorder");

    let (listed, calls) = counted(&moto, "list every instance of both accounts", async {
        console.json(&["instances"])
    })
    .await;
    let listed = listed["instances"].as_array().unwrap().len();
    assert_eq!(listed, 2 * PER_ACCOUNT as usize);
    // One page of a thousand per account.
    assert!(
        calls <= 2,
        "{calls} DescribeInstances to list 2,000 instances"
    );

    let (web, calls) = counted(&moto, "list tag:tier=web", async {
        console.json(&["instances", "--filter", "tag:tier=web"])
    })
    .await;
    assert_eq!(
        web["instances"].as_array().unwrap().len(),
        PER_ACCOUNT as usize
    );
    assert!(
        calls <= 2,
        "{calls} DescribeInstances to filter 2,000 instances"
    );

    let (snapshot, calls) = counted(
        &moto,
        "watch: the first snapshot",
        first_watch_snapshot(&console),
    )
    .await;
    assert_eq!(
        snapshot.matches("event: instance").count(),
        2 * PER_ACCOUNT as usize
    );
    assert!(
        calls <= 2,
        "{calls} DescribeInstances for the watch's first snapshot"
    );

    refresh_burst_shares_look_ups(&console, &moto, &net, 40).await;
}

/// `burst` instances of a new deployment refresh at the same moment: every one succeeds, with
/// clearly fewer `DescribeInstances` than refreshes.
async fn refresh_burst_shares_look_ups(
    console: &Console,
    moto: &Moto,
    net: &TestNet,
    burst: usize,
) {
    let (dep_id, instances) = enrolled(
        console,
        moto,
        &deploy_args(net, &["--count", &burst.to_string(), "--wait"]),
    )
    .await;
    let (answers, calls) = counted(
        moto,
        &format!("{burst} refreshes at the same moment"),
        async {
            let refreshes = instances
                .iter()
                .map(|(id, ip, secret)| refresh(console, ip, &dep_id, id, secret));
            futures_util::future::join_all(refreshes).await
        },
    )
    .await;
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
    }
    // bench/refresh holds a burst of 100 to 5 calls on a quiet machine; a loaded test machine
    // spreads the burst out, so the test asks only for clear sharing.
    assert!(
        calls <= burst / 4,
        "{calls} DescribeInstances for {burst} refreshes at once: they should share calls"
    );
}

/// Someone with a copied secret hides in a burst of genuine refreshes, hoping the shared look-up
/// vouches for them: each request is still checked against its own instance.
#[tokio::test(flavor = "multi_thread")]
async fn a_stolen_secret_or_made_up_instance_hidden_in_a_refresh_burst_is_refused_while_the_rest_succeed(
) {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);
    let (dep_id, mut nodes) = enrolled(
        &console,
        &moto,
        &deploy_args(&net, &["--count", "4", "--wait"]),
    )
    .await;
    let (victim_id, victim_ip, victim_secret) = nodes.pop().unwrap();
    let thief_ip = nodes[0].1.clone();
    let made_up = "i-0123456789abcdef0";

    moto.record().await;
    let genuine = nodes
        .iter()
        .map(|(id, ip, secret)| refresh(&console, ip, &dep_id, id, secret));
    let (genuine, from_elsewhere, invented) = tokio::join!(
        futures_util::future::join_all(genuine),
        refresh(&console, &thief_ip, &dep_id, &victim_id, &victim_secret),
        refresh(&console, &victim_ip, &dep_id, made_up, &victim_secret),
    );
    for (status, body) in &genuine {
        assert_eq!(*status, 200, "{body}");
    }
    assert_eq!(from_elsewhere.0, 403, "{}", from_elsewhere.1);
    assert!(
        from_elsewhere.1.to_string().contains("address"),
        "{}",
        from_elsewhere.1
    );
    assert_eq!(invented.0, 403, "{}", invented.1);
    assert!(
        invented.1.to_string().contains("no such instance"),
        "{}",
        invented.1
    );
    assert!(
        moto.calls("DescribeInstances").await < 5,
        "five refreshes at once share their look-ups"
    );

    // Neither refusal spent the victim's secret: the instance itself still enrols with it.
    let (status, body) = refresh(&console, &victim_ip, &dep_id, &victim_id, &victim_secret).await;
    assert_eq!(status, 200, "{body}");
}

/// The EC2 calls a request made before its first `RunInstances`.
fn before_launch(actions: &[String]) -> Vec<&str> {
    actions
        .iter()
        .map(String::as_str)
        .take_while(|a| *a != "RunInstances")
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_deployment_launches_without_looking_for_instances_it_cannot_have_yet_and_a_scale_up_still_looks(
) {
    let moto = Moto::start();
    let net = loopback_net(&moto.ec2().await).await;
    let console = Console::start();
    console.login_with_account(&moto);

    moto.record().await;
    let dep = console.json(&deploy_args(&net, &["--count", "1"]));
    let actions = moto.actions().await;
    assert!(actions.iter().any(|a| a == "RunInstances"), "{actions:?}");
    let before = before_launch(&actions);
    // Only the image's and subnet's tags, for the policies' ec2:ResourceTag conditions (and
    // STS for the instances' scoped credentials).
    let ec2_calls: Vec<&&str> = before
        .iter()
        .filter(|a| **a != "GetFederationToken")
        .collect();
    assert_eq!(
        ec2_calls,
        [&"DescribeTags"],
        "calls before the first launch: {before:?}"
    );

    // A later launch of the same deployment must first count what runs: it looks.
    let id = dep["id"].as_str().unwrap();
    moto.record().await;
    console.json(&["deployment", "scale", id, "--count", "2", "--wait"]);
    let actions = moto.actions().await;
    assert!(
        before_launch(&actions).contains(&"DescribeInstances"),
        "{actions:?}"
    );
}

/// `GET /v1/instances?account=dev` as `token`'s user: (instance ids, described_at).
async fn listed(console: &Console, token: &str) -> (Vec<String>, String) {
    let body: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/v1/instances?account=dev", console.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids = body["instances"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|i| i["instance_id"].as_str().unwrap().to_owned())
        .collect();
    (ids, body["described_at"].as_str().unwrap().to_owned())
}

/// Launches one instance tagged `owner=OWNER` straight in EC2.
async fn owned_instance(ec2: &aws_sdk_ec2::Client, owner: &str) -> String {
    let tags = aws_sdk_ec2::types::TagSpecification::builder()
        .resource_type(aws_sdk_ec2::types::ResourceType::Instance)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("owner")
                .value(owner)
                .build(),
        )
        .build();
    let out = ec2
        .run_instances()
        .image_id(TEST_IMAGE)
        .instance_type("t3.micro".into())
        .min_count(1)
        .max_count(1)
        .tag_specifications(tags)
        .send()
        .await
        .unwrap();
    out.instances()[0].instance_id().unwrap().to_owned()
}

/// Another user asks the same question within a moment and is answered from the snapshot the
/// admin's listing took: the snapshot is shared, what each user sees of it is not.
#[tokio::test(flavor = "multi_thread")]
async fn listings_at_once_share_one_describe_but_each_user_sees_only_what_they_may_and_a_change_shows_at_once(
) {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let console = Console::start();
    console.login_with_account(&moto);
    let own_only = serde_json::json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "airlock:UseAccount", "Resource": "*"},
        {"Effect": "Allow", "Action": "ec2:DescribeInstances", "Resource": "*",
         "Condition": {"StringEquals": {"ec2:ResourceTag/owner": "${aws:username}"}}}]});
    let dana = console.add_user("dana", &[own_only]);
    let admins = owned_instance(&ec2, "admin").await;
    let danas = owned_instance(&ec2, "dana").await;

    moto.record().await;
    let (admin_token, dana_token) = (console.token(), dana.token());
    let (all, only_hers) = tokio::join!(
        listed(&console, &admin_token),
        listed(&console, &dana_token)
    );
    let (both, _) = tokio::join!(
        listed(&console, &admin_token),
        listed(&console, &admin_token)
    );
    assert!(all.0.contains(&admins) && all.0.contains(&danas), "{all:?}");
    assert_eq!(only_hers.0, std::slice::from_ref(&danas));
    assert_eq!(both.0.len(), 2);
    assert!(
        moto.calls("DescribeInstances").await <= 2,
        "four listings within a moment should share their looks"
    );

    // A change through the console is seen by the very next listing, not a moment later.
    console.ok(&["instance", "stop", &admins, "--account", "dev"]);
    let state = console.json(&["instances", "--account", "dev"])["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["instance_id"] == admins.as_str())
        .unwrap()["state"]
        .clone();
    assert_ne!(state, "running");
}
