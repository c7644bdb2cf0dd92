//! Snapshot policies against moto: retention by count, hand-made snapshots untouched, and every
//! snapshot and deletion decided with the creator's permissions.

use crate::common::*;
use serde_json::{json, Value};

/// A 1 GiB volume with these tags, made straight in EC2.
async fn volume(ec2: &aws_sdk_ec2::Client, tags: &[(&str, &str)]) -> String {
    let mut spec = aws_sdk_ec2::types::TagSpecification::builder()
        .resource_type(aws_sdk_ec2::types::ResourceType::Volume);
    for (k, v) in tags {
        spec = spec.tags(aws_sdk_ec2::types::Tag::builder().key(*k).value(*v).build());
    }
    ec2.create_volume()
        .availability_zone("us-east-1a")
        .size(1)
        .tag_specifications(spec.build())
        .send()
        .await
        .unwrap()
        .volume_id()
        .unwrap()
        .to_owned()
}

/// The snapshots of `volume` in EC2: (id, tags as KEY=VALUE).
async fn snapshots_of(ec2: &aws_sdk_ec2::Client, volume: &str) -> Vec<(String, Vec<String>)> {
    ec2.describe_snapshots()
        .owner_ids("self")
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("volume-id")
                .values(volume)
                .build(),
        )
        .send()
        .await
        .unwrap()
        .snapshots()
        .iter()
        .map(|s| {
            let tags = s
                .tags()
                .iter()
                .map(|t| format!("{}={}", t.key().unwrap(), t.value().unwrap()))
                .collect();
            (s.snapshot_id().unwrap().to_owned(), tags)
        })
        .collect()
}

fn by_policy(snapshots: &[(String, Vec<String>)], policy: &str) -> usize {
    let tag = format!("airlock:snapshot-policy={policy}");
    snapshots.iter().filter(|(_, t)| t.contains(&tag)).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_run_three_times_keeps_two_snapshots_per_volume_and_never_touches_a_hand_made_one()
{
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let console = Console::start();
    console.login_with_account(&moto);
    let db = volume(&ec2, &[("Backup", "daily"), ("team", "db")]).await;
    let web = volume(&ec2, &[("Backup", "daily")]).await;
    let scratch = volume(&ec2, &[("Backup", "never")]).await;
    let by_hand = ec2
        .create_snapshot()
        .volume_id(&db)
        .send()
        .await
        .unwrap()
        .snapshot_id()
        .unwrap()
        .to_owned();

    let created = console.json(&[
        "snapshot-policy",
        "create",
        "daily",
        "--account",
        "dev",
        "--target",
        "tag:Backup=daily",
        "--schedule",
        "cron(0 3 ? * SUN *)",
        "--retain",
        "2",
    ]);
    assert_eq!(created["created_by"], "admin", "{created}");
    assert!(created["next_run_at"]
        .as_str()
        .unwrap()
        .ends_with("T03:00:00Z"));
    for _ in 0..3 {
        let run = console.json(&["snapshot-policy", "run", "daily", "--wait"]);
        assert_eq!(run["state"], "succeeded", "{run}");
        assert_eq!(run["created"].as_array().unwrap().len(), 2, "{run}");
    }

    for v in [&db, &web] {
        assert_eq!(by_policy(&snapshots_of(&ec2, v).await, "daily"), 2, "{v}");
    }
    let db_snapshots = snapshots_of(&ec2, &db).await;
    assert!(
        db_snapshots.iter().any(|(id, _)| *id == by_hand),
        "the hand-made snapshot is gone"
    );
    // The volume's own tags come along.
    assert!(db_snapshots
        .iter()
        .filter(|(id, _)| *id != by_hand)
        .all(|(_, t)| t.contains(&"team=db".to_owned())));
    assert!(snapshots_of(&ec2, &scratch).await.is_empty());

    let shown = console.json(&["snapshot-policy", "show", "daily"]);
    let runs = shown["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    assert_eq!(runs[0]["deleted"].as_array().unwrap().len(), 2, "{shown}");
    let audit = action_outcomes(&console.audit_records(&[]));
    for action in ["ec2:CreateSnapshot", "ec2:DeleteSnapshot"] {
        assert!(
            audit.iter().any(|(a, o)| a == action && o == "ok"),
            "{action} is audited: {audit:?}"
        );
    }
}

/// Someone allowed to create and run policies, but to snapshot only their own team's volumes
/// and to delete nothing, tries to use a policy to do more.
#[tokio::test(flavor = "multi_thread")]
async fn a_policy_can_do_only_what_its_creator_may_and_only_those_allowed_make_or_run_policies() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let console = Console::start();
    console.login_with_account(&moto);
    let sams = volume(&ec2, &[("Backup", "daily"), ("team", "sam")]).await;
    let others = volume(&ec2, &[("Backup", "daily"), ("team", "ops")]).await;
    let narrow: Value = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["airlock:UseAccount", "airlock:CreateSnapshotPolicy",
                                       "airlock:RunSnapshotPolicy", "airlock:GetSnapshotPolicy"],
         "Resource": "*"},
        {"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"},
        {"Effect": "Allow", "Action": "ec2:CreateSnapshot", "Resource": "arn:aws:ec2:*:*:volume/*",
         "Condition": {"StringEquals": {"ec2:ResourceTag/team": "sam"}}},
        {"Effect": "Allow", "Action": ["ec2:CreateSnapshot", "ec2:CreateTags"],
         "Resource": "arn:aws:ec2:*::snapshot/*"}]});
    let sam = console.add_user("sam", &[narrow]);
    let nobody = console.add_user(
        "nobody",
        &[json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "airlock:UseAccount", "Resource": "*"}]})],
    );
    let create = [
        "snapshot-policy",
        "create",
        "team",
        "--account",
        "dev",
        "--target",
        "tag:Backup=daily",
        "--schedule",
        "rate(1 day)",
        "--retain",
        "1",
    ];
    let refused = nobody.cli(&create);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("airlock:CreateSnapshotPolicy"),
        "{}",
        stderr(&refused)
    );
    sam.json(&create);
    let refused = nobody.cli(&["snapshot-policy", "run", "team"]);
    assert!(
        stderr(&refused).contains("airlock:RunSnapshotPolicy"),
        "{}",
        stderr(&refused)
    );

    // The other team's volume is refused for the policy as it would be for sam by hand.
    let first = sam.cli(&["snapshot-policy", "run", "team", "--output", "json"]);
    assert_eq!(
        first.status.code(),
        Some(1),
        "a failed volume fails the run"
    );
    let run: Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(run["state"], "failed");
    assert_eq!(run["created"].as_array().unwrap().len(), 1, "{run}");
    assert!(
        run["errors"][0].as_str().unwrap().contains(&others),
        "{run}"
    );
    assert!(snapshots_of(&ec2, &others).await.is_empty());

    // Retention would delete sam's older snapshot, but sam may not delete snapshots.
    let second = sam.cli(&["snapshot-policy", "run", "team", "--output", "json"]);
    let run: Value = serde_json::from_slice(&second.stdout).unwrap();
    assert!(run["deleted"].as_array().unwrap().is_empty(), "{run}");
    assert!(
        run["errors"].to_string().contains("ec2:DeleteSnapshot"),
        "{run}"
    );
    assert_eq!(snapshots_of(&ec2, &sams).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_fires_on_its_schedule_under_the_test_clock_and_not_before() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = dir.path().join("clock");
    let now = chrono::Utc::now();
    let set = |t: chrono::DateTime<chrono::Utc>| std::fs::write(&clock, t.to_rfc3339()).unwrap();
    set(now);
    let clock_flag = clock.to_string_lossy().to_string();
    let console = Console::start_with(&["--schedule-clock-file", &clock_flag]);
    console.login_with_account(&moto);
    let vol = volume(&ec2, &[("Backup", "hourly")]).await;
    console.json(&[
        "snapshot-policy",
        "create",
        "hourly",
        "--account",
        "dev",
        "--target",
        "tag:Backup=hourly",
        "--schedule",
        "rate(1 hour)",
        "--retain",
        "5",
    ]);
    let runs = || {
        // No runs yet: the field is left out.
        console.json(&["snapshot-policy", "show", "hourly"])["runs"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };

    // Fifty-nine minutes later: not yet.
    set(now + chrono::Duration::minutes(59));
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert!(runs().is_empty());

    // An hour and a minute later it fires once, as scheduled.
    set(now + chrono::Duration::minutes(61));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while runs().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the schedule did not fire"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let fired = runs();
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(fired[0]["trigger"], "scheduled");
    assert_eq!(by_policy(&snapshots_of(&ec2, &vol).await, "hourly"), 1);
    let shown = console.json(&["snapshot-policy", "show", "hourly"]);
    let next =
        chrono::DateTime::parse_from_rfc3339(shown["next_run_at"].as_str().unwrap()).unwrap();
    assert!(next > now + chrono::Duration::minutes(120), "{shown}");
}
