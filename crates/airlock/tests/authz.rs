//! End-to-end tests of authorization: users, policies with tag conditions enforced before any
//! EC2 call, the audit log, and the policy simulator through the CLI and the API.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::{json, Value};

const ACCOUNT_ARN: &str = "arn:airlock:console:::account/*";

fn owners_policy() -> Value {
    json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "UseAccounts", "Effect": "Allow", "Action": "airlock:UseAccount", "Resource": ACCOUNT_ARN},
        {"Sid": "Describe", "Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"},
        {"Sid": "TerminateOwn", "Effect": "Allow", "Action": ["ec2:TerminateInstances", "ec2:CreateTags"],
         "Resource": "arn:aws:ec2:*:*:instance/*",
         "Condition": {"StringEquals": {"ec2:ResourceTag/owner": "${aws:username}"}}}
    ]})
}

fn deploy_as_owner_policy() -> Value {
    json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "airlock:UseAccount", "Resource": ACCOUNT_ARN},
        {"Effect": "Allow", "Action": "airlock:GetDeployment", "Resource": "arn:airlock:console:::deployment/*"},
        {"Effect": "Allow", "Action": "ec2:RunInstances", "Resource": [
            "arn:aws:ec2:*::image/*", "arn:aws:ec2:*:*:subnet/*", "arn:aws:ec2:*:*:security-group/*",
            "arn:aws:ec2:*:*:network-interface/*", "arn:aws:ec2:*:*:volume/*"]},
        {"Sid": "OwnInstances", "Effect": "Allow", "Action": "ec2:RunInstances", "Resource": "arn:aws:ec2:*:*:instance/*",
         "Condition": {"StringEquals": {"aws:RequestTag/owner": "${aws:username}"}}},
        {"Effect": "Allow", "Action": "ec2:CreateTags", "Resource": "*",
         "Condition": {"StringEquals": {"ec2:CreateAction": "RunInstances"}}}
    ]})
}

fn first_instance(dep: &Value) -> String {
    dep["instances"][0]["instance_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_terminates_only_instances_tagged_with_their_name() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);
    let deploy = |owner: &str| {
        let tag = format!("owner={owner}");
        console.json(&deploy_args(&net, &["--tag", &tag, "--wait"]))
    };
    let bobs = first_instance(&deploy("bob"));
    let alices = first_instance(&deploy("alice"));
    let bob = console.add_user("bob", &[owners_policy()]);

    // Not his: refused with the action, the resource and why; nothing reaches EC2.
    let denied = bob.cli(&["instance", "terminate", &alices, "--account", "dev"]);
    assert_eq!(denied.status.code(), Some(1));
    let err = stderr(&denied);
    assert!(err.contains("Forbidden"), "{err}");
    assert!(err.contains("ec2:TerminateInstances"), "{err}");
    assert!(err.contains(&format!(":instance/{alices}")), "{err}");
    assert!(
        err.contains("no statement in your policies allows it"),
        "{err}"
    );
    assert_eq!(instance_state(&ec2, &alices).await, "running");

    // Nor can he make it his by re-tagging it.
    let retag = bob.cli(&["tag", "add", &alices, "owner=bob", "--account", "dev"]);
    assert_eq!(retag.status.code(), Some(1), "{}", stderr(&retag));
    assert!(stderr(&retag).contains("ec2:CreateTags"));

    // His own: allowed.
    let done = bob.json(&["instance", "terminate", &bobs, "--account", "dev"]);
    assert_eq!(done["action"], "terminate");
    assert!(matches!(
        instance_state(&ec2, &bobs).await.as_str(),
        "shutting-down" | "terminated"
    ));

    // Console-level actions need their own grants.
    let users = bob.cli(&["user", "list"]);
    assert_eq!(users.status.code(), Some(1));
    assert!(stderr(&users).contains("airlock:ListUsers"));

    // Every decision is in the audit log, chained; an edit is detected.
    let audit = console.json(&["audit", "--user", "bob"]);
    let records = audit.as_array().unwrap();
    let denial = records
        .iter()
        .find(|r| {
            r["action"] == "airlock:UseAccount" && r["decision"] == "implicitDeny"
                || r["detail"].as_str().unwrap_or("").contains(&alices)
        })
        .unwrap_or_else(|| panic!("no record of the denial: {audit}"));
    assert_eq!(denial["decision"], "implicitDeny");
    assert_eq!(denial["outcome"], "denied");
    assert!(records
        .iter()
        .any(|r| r["action"] == "ec2:TerminateInstances"
            && r["outcome"] == "ok"
            && r["aws_request_id"].is_string()));
    let verified = console.json(&["audit", "verify"]);
    assert_eq!(verified["intact"], true, "{verified}");

    let seq = denial["seq"].as_i64().unwrap();
    let update = format!("UPDATE audit_log SET decision = 'allowed' WHERE seq = {seq}");
    let edited = if is_sqlite(&console.database) {
        let path = console.database.trim_start_matches("sqlite://").to_owned();
        std::process::Command::new("python3")
            .args(["-c", &format!("import sqlite3; c = sqlite3.connect({path:?}); c.execute({update:?}); c.commit()")])
            .status()
            .unwrap()
    } else {
        std::process::Command::new("psql")
            .args([console.database.as_str(), "-qc", &update])
            .status()
            .unwrap()
    };
    assert!(edited.success());
    let broken = console.cli(&["audit", "verify", "--output", "json"]);
    assert_eq!(broken.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&broken.stdout).unwrap();
    assert_eq!(report["intact"], false);
    assert_eq!(report["first_broken"], seq);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_deploys_only_when_the_requested_tags_name_them_as_owner() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);
    let carol = console.add_user("carol", &[deploy_as_owner_policy()]);
    let deploy = |extra: &[&str]| carol.cli(&deploy_args(&net, extra));
    for refused in [
        &["--tag", "owner=dave"][..],
        &[][..],
        &["--tag", "owner=Carol"][..],
    ] {
        let out = deploy(refused);
        assert_eq!(out.status.code(), Some(1), "{refused:?}");
        assert!(
            stderr(&out).contains("ec2:RunInstances"),
            "{}",
            stderr(&out)
        );
        assert!(stderr(&out).contains(":instance/*"), "{}", stderr(&out));
    }
    // Nothing reached EC2 and nothing was recorded.
    assert!(ec2
        .describe_instances()
        .send()
        .await
        .unwrap()
        .reservations()
        .is_empty());
    assert!(console
        .json(&["deployment", "list"])
        .as_array()
        .unwrap()
        .is_empty());

    let out = deploy(&["--tag", "owner=carol", "--wait", "--output", "json"]);
    let dep: Value = serde_json::from_str(&ok(out, &["deploy as carol"])).unwrap();
    assert_eq!(dep["state"], "running");
    assert_eq!(dep["created_by"], "carol");
    let instances = live_instances(&ec2, dep["id"].as_str().unwrap()).await;
    assert_eq!(instances.len(), 1);
    assert!(instances[0]
        .tags()
        .iter()
        .any(|t| t.key() == Some("airlock:deployed-by") && t.value() == Some("carol")));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_policy_corpus_decides_the_same_through_the_cli_and_the_api() {
    let corpus: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../airlock-policy/tests/cases.json"
        ))
        .unwrap(),
    )
    .unwrap();
    assert!(corpus.len() >= 80);
    let console = Console::start();
    console.login();
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    for (n, case) in corpus.iter().enumerate() {
        let name = case["name"].as_str().unwrap();
        let expected = case["decision"].as_str().unwrap();
        let mut args: Vec<String> = vec![
            "policy".into(),
            "simulate".into(),
            "--output".into(),
            "json".into(),
        ];
        for (i, p) in case["policies"].as_array().unwrap().iter().enumerate() {
            let path = dir.path().join(format!("{n}-{i}.json"));
            std::fs::write(&path, p.to_string()).unwrap();
            args.extend(["--policy".into(), path.to_string_lossy().to_string()]);
        }
        let request = dir.path().join(format!("{n}-request.json"));
        std::fs::write(&request, case["request"].to_string()).unwrap();
        args.extend(["--request".into(), request.to_string_lossy().to_string()]);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let cli: Value = serde_json::from_str(&ok(console.cli(&argv), &argv)).unwrap();
        assert_eq!(cli["decision"], expected, "CLI, case {name}");

        let api: Value = client
            .post(format!("{}/v1/policies/simulate", console.url))
            .bearer_auth(console.token())
            .json(&json!({"policies": case["policies"], "request": case["request"]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(api["decision"], expected, "API, case {name}: {api}");
        // Policy ids differ (file names, list positions); the statements must not.
        let statements = |v: &Value| -> Vec<(Value, Value)> {
            v["matchedStatements"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| (s["index"].clone(), s["sid"].clone()))
                .collect()
        };
        assert_eq!(statements(&api), statements(&cli), "case {name}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn policy_validate_names_the_statement_and_element() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.json");
    std::fs::write(&good, owners_policy().to_string()).unwrap();
    let out = std::process::Command::new(airlock_bin())
        .args(["policy", "validate"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"A","Effect":"Allow","Action":"ec2:*","Resource":"*"},
            {"Sid":"Two","Effect":"Allow","Action":"ec2:RunInstances","Resource":"*","Condition":{"StringEqual":{"aws:RequestTag/owner":"x"}}}]}"#,
    )
    .unwrap();
    let out = std::process::Command::new(airlock_bin())
        .args(["policy", "validate"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("statement[1]") && err.contains("Two") && err.contains("Condition"),
        "{err}"
    );
    assert!(err.contains("did you mean StringEquals"), "{err}");

    let syntax = dir.path().join("syntax.json");
    std::fs::write(
        &syntax,
        "{\"Version\": \"2012-10-17\",\n \"Statement\": [,]}",
    )
    .unwrap();
    let out = std::process::Command::new(airlock_bin())
        .args(["policy", "validate"])
        .arg(&syntax)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("line 2"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_factor_is_required_at_login_and_sets_multi_factor_auth_present() {
    let console = Console::start();
    console.login();
    let mfa_only = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "airlock:ListUsers", "Resource": "*",
         "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}}}]});
    let erin = console.add_user("erin", &[mfa_only]);
    // Logged in without a second factor: the MFA condition does not hold.
    let out = erin.cli(&["user", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("airlock:ListUsers"),
        "{}",
        stderr(&out)
    );

    let enabled = console.json(&["user", "enable-mfa", "erin"]);
    let secret = enabled["secret"].as_str().unwrap();
    assert!(enabled["otpauth_url"]
        .as_str()
        .unwrap()
        .starts_with("otpauth://totp/"));
    let password = "erin-password-123\n";
    let login = |otp: Option<&str>| {
        let mut args = vec!["login", "--user", "erin", "--password-stdin"];
        if let Some(code) = otp {
            args.extend(["--otp", code]);
        }
        console.cli_in("config-erin", &args, password)
    };
    let without = login(None);
    assert_eq!(without.status.code(), Some(1));
    assert!(
        stderr(&without).contains("one-time code"),
        "{}",
        stderr(&without)
    );
    assert_eq!(login(Some("000000")).status.code(), Some(1));

    let totp = totp_rs::TOTP::new(
        totp_rs::Algorithm::SHA1,
        6,
        1,
        30,
        totp_rs::Secret::Encoded(secret.to_owned())
            .to_bytes()
            .unwrap(),
        Some("Airlock".into()),
        "erin".into(),
    )
    .unwrap();
    let code = totp.generate_current().unwrap();
    ok(login(Some(&code)), &["login with otp"]);
    let users = erin.json(&["user", "list"]);
    assert!(users
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["name"] == "erin" && u["mfa"] == true));
    // The secret is shown once: no listing carries it.
    assert!(!console
        .ok(&["user", "list", "--output", "json"])
        .contains(secret));
}
