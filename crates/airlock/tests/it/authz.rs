//! End-to-end tests of authorization: users, policies with tag conditions enforced before any
//! EC2 call, the audit log, and the policy simulator through the CLI and the API.

use crate::common::*;
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
    let records = console.audit_records(&["--user", "bob"]);
    let denial = records
        .iter()
        .find(|r| {
            r["action"] == "airlock:UseAccount" && r["decision"] == "implicitDeny"
                || r["detail"].as_str().unwrap_or("").contains(&alices)
        })
        .unwrap_or_else(|| panic!("no record of the denial: {records:?}"));
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
    console.sql(&format!(
        "UPDATE audit_log SET decision = 'allowed' WHERE seq = {seq}"
    ));
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
    assert!(no_instances(&ec2).await);
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

/// The one-time code of a TOTP secret (as `user enable-mfa` shows it) now.
fn current_code(secret: &str, user: &str) -> String {
    totp_rs::TOTP::new(
        totp_rs::Algorithm::SHA1,
        6,
        1,
        30,
        totp_rs::Secret::Encoded(secret.to_owned())
            .to_bytes()
            .unwrap(),
        Some("Airlock".into()),
        user.into(),
    )
    .unwrap()
    .generate_current()
    .unwrap()
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

    let code = current_code(secret, "erin");
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

/// Writes a JSON document into the console's test directory and gives its path.
fn file(console: &Console, name: &str, value: &Value) -> String {
    let path = console.dir.path().join(name);
    std::fs::write(&path, value.to_string()).unwrap();
    path.to_string_lossy().into_owned()
}

/// Everything in EC2 but terminating instances tagged `env=prod`, and the console's own
/// deployments.
fn all_but_prod_termination() -> Value {
    json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["ec2:*", "airlock:UseAccount", "airlock:GetDeployment"], "Resource": "*"},
        {"Sid": "KeepProd", "Effect": "Deny", "Action": "ec2:TerminateInstances", "Resource": "*",
         "Condition": {"StringEquals": {"ec2:ResourceTag/env": "prod"}}}
    ]})
}

#[tokio::test(flavor = "multi_thread")]
async fn session_policy_escape_is_refused() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);
    let mallory = console.add_user("mallory", &[all_but_prod_termination()]);
    // Their instances' credentials would terminate anything, prod included.
    for (name, statement) in [
        (
            "star",
            json!({"Effect": "Allow", "Action": "ec2:TerminateInstances", "Resource": "*"}),
        ),
        (
            "wild",
            json!({"Sid": "Wild", "Effect": "Allow", "Action": "ec2:Term*", "Resource": "arn:aws:ec2:*:*:instance/*"}),
        ),
    ] {
        let extra = file(&console, &format!("{name}.json"), &json!([statement]));
        let out = mallory.cli(&deploy_args(&net, &["--policy-statements", &extra]));
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("Forbidden"), "{err}");
        assert!(err.contains("ec2:Term"), "{err}");
        assert!(
            err.contains("KeepProd"),
            "the overlapping Deny is named: {err}"
        );
    }
    assert!(no_instances(&ec2).await);
    // What they may do is still granted, and the generated part leaves termination out.
    let stop = file(
        &console,
        "stop.json",
        &json!([{"Effect": "Allow", "Action": "ec2:StopInstances", "Resource": "*"}]),
    );
    let dep = mallory.json(&deploy_args(&net, &["--policy-statements", &stop]));
    let shown = mallory.json(&["deployment", "policy", dep["id"].as_str().unwrap()]);
    let text = shown["policy"].to_string();
    assert!(text.contains("ec2:StopInstances"), "{text}");
    assert!(!text.contains("ec2:TerminateInstances"), "{text}");
}

/// No instance in EC2 at all.
async fn no_instances(ec2: &aws_sdk_ec2::Client) -> bool {
    ec2.describe_instances()
        .send()
        .await
        .unwrap()
        .reservations()
        .is_empty()
}

/// Runs, tags and terminates only what is tagged `owner` = the caller, in requests and on
/// resources; describes anything and creates volumes.
fn owner_guardrail() -> Value {
    json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["airlock:UseAccount", "airlock:GetDeployment", "ec2:Describe*", "ec2:CreateVolume"], "Resource": "*"},
        {"Effect": "Allow", "Action": ["ec2:RunInstances", "ec2:CreateTags", "ec2:TerminateInstances"], "Resource": "*",
         "Condition": {"StringEquals": {"aws:RequestTag/owner": "${aws:username}"}}},
        {"Effect": "Allow", "Action": ["ec2:RunInstances", "ec2:TerminateInstances"], "Resource": "*",
         "Condition": {"StringEquals": {"ec2:ResourceTag/owner": "${aws:username}"}}},
        {"Effect": "Allow", "Action": "ec2:RunInstances", "Resource": ["arn:aws:ec2:*::image/*", "arn:aws:ec2:*:*:subnet/*",
          "arn:aws:ec2:*:*:security-group/*", "arn:aws:ec2:*:*:network-interface/*", "arn:aws:ec2:*:*:volume/*"]}
    ]})
}

/// Two keys policies read as one (owner/Owner, owner/OWNER): refused, naming both, before
/// anything reaches EC2.
async fn assert_case_twins_refused_before_ec2(
    ec2: &aws_sdk_ec2::Client,
    bob: &UserCli<'_>,
    net: &TestNet,
) {
    let out = bob.cli(&deploy_args(
        net,
        &["--tag", "owner=alice", "--tag", "Owner=bob"],
    ));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("\"owner\"") && err.contains("\"Owner\""),
        "{err}"
    );
    assert!(no_instances(ec2).await);
    let out = bob.cli(&[
        "volume",
        "create",
        "--account",
        "dev",
        "--availability-zone",
        "us-east-1a",
        "--size",
        "8",
        "--tag",
        "owner=bob",
        "--tag",
        "OWNER=alice",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("differ only in case"),
        "{}",
        stderr(&out)
    );
}

/// The console's prefix is reserved in any case, for adding and for removing, and twins are
/// refused in `tag add` too.
fn assert_reserved_prefix_and_twins_refused_in_tags(console: &Console, alices: &str) {
    for args in [
        vec![
            "tag",
            "add",
            alices,
            "AIRLOCK:upstream=web",
            "--account",
            "dev",
        ],
        vec![
            "tag",
            "add",
            alices,
            "owner=x",
            "Owner=y",
            "--account",
            "dev",
        ],
        vec![
            "tag",
            "remove",
            alices,
            "Airlock:deployment",
            "--account",
            "dev",
        ],
    ] {
        let out = console.cli(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&out).contains("BadRequest") || stderr(&out).contains("tags["),
            "{}",
            stderr(&out)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tag_key_case_twins_are_refused() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);
    let bob = console.add_user("bob", &[owner_guardrail()]);

    assert_case_twins_refused_before_ec2(&ec2, &bob, &net).await;

    // The console's prefix is reserved in any case, for adding and for removing.
    let alices =
        first_instance(&console.json(&deploy_args(&net, &["--tag", "owner=alice", "--wait"])));
    assert_reserved_prefix_and_twins_refused_in_tags(&console, &alices);

    // Twins already on a resource (set in EC2 directly) are ambiguous: bob's Allow on
    // `owner = bob` does not match an instance tagged both owner=alice and Owner=bob.
    ec2.create_tags()
        .resources(&alices)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("Owner")
                .value("bob")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let out = bob.cli(&["instance", "terminate", &alices, "--account", "dev"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("Forbidden"), "{}", stderr(&out));
    assert_eq!(instance_state(&ec2, &alices).await, "running");
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_re_tag_themselves_into_traffic() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);
    let dep = console.json(&deploy_args(&net, &["--wait"]));
    let id = dep["id"].as_str().unwrap();
    let instance = first_instance(&dep);
    let shown = console.json(&["deployment", "policy", id]);
    let policy = file(&console, "session.json", &shown["policy"]);
    // What AWS would decide for the instance's own credentials tagging its own instance.
    let decide = |keys: &[&str]| {
        let request = file(
            &console,
            "request.json",
            &json!({
            "action": "ec2:CreateTags",
            "resource": format!("arn:aws:ec2:us-east-1:123456789012:instance/{instance}"),
            "context": {"aws:TagKeys": keys, "aws:RequestTag/x": "y", "ec2:Region": "us-east-1",
                        "aws:ResourceTag/airlock:deployment": id}}),
        );
        console.json(&[
            "policy",
            "simulate",
            "--policy",
            &policy,
            "--request",
            &request,
        ])["decision"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    for keys in [
        &["airlock:upstream"][..],
        &["Airlock:port"],
        &["AIRLOCK:deployed-by"],
        &["team", "airlock:port"],
    ] {
        assert_eq!(decide(keys), "explicitDeny", "{keys:?}");
    }
    assert_eq!(decide(&["team"]), "allowed");
}

fn upstream_yaml(secret_ref: &str, role: &str) -> String {
    format!(
        "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata:\n  name: web\n  namespace: gloo-system\nspec:\n  awsEc2:\n    region: us-east-1\n    filters:\n    - key: web\n{secret_ref}{role}"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn gateway_config_as_a_confused_deputy() {
    let moto = Moto::start();
    let console = Console::start();
    console.login_with_account(&moto);
    let writer_only = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "airlock:PutGatewayConfig", "Resource": "*"}]});
    let eve = console.add_user("eve", &[writer_only]);
    let put = |user: &UserCli, yaml: String| {
        let path = console.dir.path().join("upstream.yaml");
        std::fs::write(&path, yaml).unwrap();
        user.cli(&["gateway-config", "put", "web", path.to_str().unwrap()])
    };
    let console_account = "    secretRef:\n      name: dev\n      namespace: airlock-console\n";
    for (yaml, needed) in [
        (upstream_yaml(console_account, ""), "airlock:UseAccount"),
        (upstream_yaml("", ""), "airlock:UseGatewayCredentials"),
        (
            upstream_yaml(
                "    secretRef:\n      name: ops-key\n      namespace: gloo-system\n",
                "",
            ),
            "airlock:UseGatewayCredentials",
        ),
        (
            upstream_yaml("", "    roleArn: arn:aws:iam::123456789012:role/admin\n"),
            "airlock:UseGatewayCredentials",
        ),
    ] {
        let out = put(&eve, yaml);
        assert_eq!(out.status.code(), Some(1), "{needed}");
        assert!(stderr(&out).contains(needed), "{needed}: {}", stderr(&out));
    }
    assert!(console
        .json(&["gateway-config", "list"])
        .as_array()
        .unwrap()
        .is_empty());

    // Whoever holds the rights the upstream uses may store it; a role needs its own grant.
    let lister = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["airlock:PutGatewayConfig", "airlock:UseAccount"], "Resource": "*"},
        {"Effect": "Allow", "Action": "airlock:UseGatewayCredentials", "Resource": "arn:airlock:console:::gateway-credentials/default"},
        {"Effect": "Allow", "Action": "ec2:DescribeInstances", "Resource": "*",
         "Condition": {"StringEquals": {"ec2:Region": "us-east-1"}}}]});
    let ops = console.add_user("ops", &[lister]);
    let out = put(
        &ops,
        upstream_yaml("", "    roleArn: arn:aws:iam::123456789012:role/admin\n"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("airlock:UseGatewayRole"),
        "{}",
        stderr(&out)
    );
    ok(
        put(&ops, upstream_yaml("", "")),
        &["put as ops, default credentials"],
    );
    ok(
        put(&ops, upstream_yaml(console_account, "")),
        &["put as ops, console account"],
    );
}

/// The web preview answers alike for a real account and a made-up one, without looking the
/// account up: `caller` may use neither.
async fn assert_preview_answers_alike(console: &Console, caller: &UserCli<'_>) {
    let answers: Vec<Value> = {
        let mut out = Vec::new();
        for account in ["dev", "no-such-account"] {
            let body: Value = reqwest::Client::new()
                .post(format!("{}/v1/authorize/check", console.url))
                .bearer_auth(caller.token())
                .json(&json!({"checks": [{"action": "ec2:StopInstances",
                    "resource": "instance/i-0123456789abcdef0", "account": account}]}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            out.push(body["results"][0].clone());
        }
        out
    };
    for answer in &answers {
        assert_eq!(answer["allowed"], false, "{answer}");
        assert!(
            answer["reason"]
                .as_str()
                .unwrap()
                .contains("airlock:UseAccount"),
            "{answer}"
        );
    }
    assert_eq!(answers[0]["resource"], answers[1]["resource"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn unauthorized_callers_learn_nothing_of_what_exists() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);
    let alices =
        first_instance(&console.json(&deploy_args(&net, &["--tag", "owner=alice", "--wait"])));
    let nobody = console.add_user(
        "nobody",
        &[json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "airlock:ListUsers", "Resource": "*"}]})],
    );
    // No account may be used: a real account and a made-up one answer alike.
    for account in ["dev", "no-such-account"] {
        let out = nobody.cli(&[
            "instance",
            "stop",
            "i-0123456789abcdef0",
            "--account",
            account,
        ]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("Forbidden"),
            "{account}: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("airlock:UseAccount"),
            "{}",
            stderr(&out)
        );
    }
    assert_preview_answers_alike(&console, &nobody).await;
    // Allowed only on instances they own: someone else's and a missing one answer alike.
    let bob = console.add_user("bob", &[owners_policy()]);
    for id in [alices.as_str(), "i-0123456789abcdef0"] {
        let out = bob.cli(&["instance", "terminate", id, "--account", "dev"]);
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert!(
            err.contains("Forbidden") && err.contains("no statement in your policies allows it"),
            "{id}: {err}"
        );
    }
    // Deployments they may not get, existing or not, answer alike.
    let dep = console.json(&["deployment", "list"])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for id in [dep.as_str(), "dep-0000000000000000"] {
        let out = bob.cli(&["deployment", "show", id]);
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains("Forbidden"), "{id}: {}", stderr(&out));
    }
    assert_eq!(instance_state(&ec2, &alices).await, "running");
}

#[tokio::test(flavor = "multi_thread")]
async fn listings_show_only_what_the_caller_may_describe() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);
    let own_only = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["airlock:UseAccount", "airlock:ListDeployments"], "Resource": "*"},
        {"Effect": "Allow", "Action": "airlock:GetDeployment", "Resource": "*",
         "Condition": {"StringEquals": {"airlock:DeployedBy": "${aws:username}"}}},
        {"Effect": "Allow", "Action": ["ec2:RunInstances", "ec2:CreateTags"], "Resource": "*"},
        {"Effect": "Allow", "Action": "ec2:DescribeInstances", "Resource": "*",
         "Condition": {"StringEquals": {"ec2:ResourceTag/owner": "${aws:username}"}}}]});
    let dana = console.add_user("dana", &[own_only]);
    let admins =
        first_instance(&console.json(&deploy_args(&net, &["--tag", "owner=admin", "--wait"])));
    let danas = dana.json(&deploy_args(&net, &["--tag", "owner=dana", "--wait"]));
    let listed = dana.json(&["instances"]);
    let ids: Vec<&str> = listed["instances"]
        .as_array()
        .or_else(|| listed.as_array())
        .unwrap()
        .iter()
        .map(|i| {
            i["instance_id"]
                .as_str()
                .or_else(|| i["instance"]["instance_id"].as_str())
                .unwrap()
        })
        .collect();
    assert_eq!(ids, [first_instance(&danas)], "{listed}");
    assert!(!listed.to_string().contains(&admins));
    let deployments = dana.json(&["deployment", "list"]);
    let deployments = deployments.as_array().unwrap();
    assert_eq!(deployments.len(), 1, "{deployments:?}");
    assert_eq!(deployments[0]["created_by"], "dana");
    // The admin still sees both.
    assert_eq!(
        console
            .json(&["deployment", "list"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn instance_credentials_follow_the_deployers_current_policies() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);
    let broad = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["ec2:*", "airlock:UseAccount", "airlock:GetDeployment"], "Resource": "*"}]});
    let fay = console.add_user("fay", &[broad]);
    let dep = fay.json(&deploy_args(&net, &["--wait"]));
    let id = dep["id"].as_str().unwrap();
    let policy = || console.json(&["deployment", "policy", id])["policy"].to_string();
    assert!(policy().contains("ec2:StopInstances"));
    assert!(policy().contains("ec2:TerminateInstances"));

    // Narrower policies narrow what the next credentials may do.
    let narrower = file(
        &console,
        "narrower.json",
        &json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["ec2:*", "airlock:UseAccount", "airlock:GetDeployment"], "Resource": "*"},
        {"Effect": "Deny", "Action": "ec2:TerminateInstances", "Resource": "*"}]}),
    );
    console.ok(&["policy", "create", "fay-fay-policy0", &narrower]);
    let now = policy();
    assert!(now.contains("ec2:StopInstances"), "{now}");
    assert!(!now.contains("ec2:TerminateInstances"), "{now}");

    // A deployer who is gone gets their instances nothing more.
    console.ok(&["user", "remove", "fay"]);
    let out = console.cli(&["deployment", "policy", id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no longer exists"),
        "{}",
        stderr(&out)
    );
    let instance = first_instance(&dep);
    let secret = enrolment_secret(&ec2, &instance).await;
    let ip = described(&ec2, &instance)
        .await
        .private_ip_address()
        .unwrap()
        .to_owned();
    let (status, _) = refresh(&console, &ip, id, &instance, &secret).await;
    assert_eq!(status, 403);
    let audit = console.ok(&["audit", "--all", "--output", "json"]);
    assert!(
        audit.contains("no longer allow these credentials"),
        "{audit}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_decision_that_cannot_be_audited_refuses_the_request() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);
    let instance = first_instance(&console.json(&deploy_args(&net, &["--wait"])));
    let refuse_writes = if is_sqlite(&console.database) {
        let path = console.database.trim_start_matches("sqlite://").to_owned();
        std::process::Command::new("python3")
            .args(["-c", &format!("import sqlite3; c = sqlite3.connect({path:?}); c.execute(\"CREATE TRIGGER no_audit BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'audit log unavailable'); END\"); c.commit()")])
            .status()
            .unwrap()
    } else {
        std::process::Command::new("psql")
            .args([console.database.as_str(), "-qc",
                "CREATE FUNCTION no_audit() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'audit log unavailable'; END $$ LANGUAGE plpgsql; \
                 CREATE TRIGGER no_audit BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION no_audit();"])
            .status()
            .unwrap()
    };
    assert!(refuse_writes.success());
    let out = console.cli(&["instance", "stop", &instance, "--account", "dev"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("audit log"), "{}", stderr(&out));
    assert_eq!(instance_state(&ec2, &instance).await, "running");
}

/// `POST /v1/login` as a script would: (status, Retry-After, body).
async fn login_http(console: &Console, user: &str, password: &str) -> (u16, Option<u64>, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/login", console.url))
        .json(&json!({"user": user, "password": password}))
        .send()
        .await
        .unwrap();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    (
        resp.status().as_u16(),
        retry_after,
        resp.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn password_guessing_is_throttled_with_429_and_audited_without_the_guesses() {
    let console = Console::start();
    console.login();
    let guess = "guess-Zq81-not-the-password";
    for _ in 0..5 {
        let (status, _, body) = login_http(&console, "admin", guess).await;
        assert_eq!(status, 401, "{body}");
    }
    // Now every attempt waits, the right password too, and is not even checked; it is held
    // (here for the whole one-second wait) before being told, so asking again at once cannot
    // make a flood.
    let asked = std::time::Instant::now();
    let (status, retry_after, body) = login_http(&console, "admin", ADMIN_PASSWORD).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "TooManyRequests");
    let wait = retry_after.expect("a Retry-After header");
    assert!((1..=300).contains(&wait), "{wait}");
    assert!(
        asked.elapsed() >= std::time::Duration::from_millis(900),
        "{:?}",
        asked.elapsed()
    );
    // After the wait, the right password works (and clears the count).
    let (status, _, body) = login_http(&console, "admin", ADMIN_PASSWORD).await;
    assert_eq!(status, 200, "{body}");

    // Each refusal is in the audit log; what was typed is nowhere.
    let audit = console.audit_records(&[]);
    let refusals = audit
        .iter()
        .filter(|r| r["action"] == "airlock:Login" && r["outcome"] == "denied")
        .count();
    assert_eq!(refusals, 5, "{audit:?}");
    assert!(!format!("{audit:?}").contains(guess));
    assert!(!console.output_text().contains(guess));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replayed_one_time_code_is_refused() {
    let console = Console::start();
    console.login();
    console.add_user("gus", &[]);
    let enabled = console.json(&["user", "enable-mfa", "gus"]);
    let secret = enabled["secret"].as_str().unwrap();
    let code = current_code(secret, "gus");
    let login = || {
        console.cli_in(
            "config-gus-2",
            &["login", "--user", "gus", "--password-stdin", "--otp", &code],
            "gus-password-123\n",
        )
    };
    ok(login(), &["first login with the code"]);
    // Someone who saw the code (over a shoulder, in a log) cannot use it again.
    let again = login();
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("already used"),
        "{}",
        stderr(&again)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn event_streams_end_with_their_login_and_are_capped_per_user() {
    let console = Console::start();
    console.login();
    let watcher = console.add_user(
        "watcher",
        &[json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "airlock:WatchEvents", "Resource": "*"}]})],
    );
    let token = watcher.token();
    let client = reqwest::Client::new();
    let open = || {
        client
            .get(format!("{}/v1/events", console.url))
            .bearer_auth(&token)
            .send()
    };
    let mut streams = Vec::new();
    for _ in 0..16 {
        let stream = open().await.unwrap();
        assert_eq!(stream.status().as_u16(), 200);
        streams.push(stream);
    }
    // One user cannot hold the console's connections and tasks without end.
    let refused = open().await.unwrap();
    assert_eq!(refused.status().as_u16(), 429);

    // Logging out ends every stream opened with that login.
    let out = client
        .post(format!("{}/v1/logout", console.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status().as_u16(), 204);
    for mut stream in streams {
        let ended = tokio::time::timeout(std::time::Duration::from_secs(15), async move {
            while let Ok(Some(_)) = stream.chunk().await {}
        })
        .await;
        assert!(ended.is_ok(), "a stream outlived its login");
    }
}

/// `GET` on the console's API with a token, as a script would: (status, body).
async fn get_api(console: &Console, token: &str, path: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .get(format!("{}{path}", console.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

fn audit_rows(records: &[Value]) -> Vec<airlock_store::AuditRow> {
    records
        .iter()
        .map(|r| serde_json::from_value(r.clone()).unwrap())
        .collect()
}

/// What someone who can write to the database but holds no key can do: rewrite the records
/// from `from` on, the one at `from` edited, with plain SHA-256 hashes and links recomputed.
fn rechain_plain(rows: &[airlock_store::AuditRow], from: i64, chain: &str) -> String {
    let mut prev = airlock_console::audit::GENESIS.to_owned();
    let mut sql = String::new();
    for row in rows {
        let mut row = row.clone();
        if row.seq >= from {
            if row.seq == from {
                row.decision = "allowed".into();
            }
            row.prev_hash.clone_from(&prev);
            row.hash = airlock_console::audit::chain::plain_hash(&row);
            sql.push_str(&format!(
                "UPDATE audit_log SET decision = '{}', prev_hash = '{}', hash = '{}', chain = '{chain}' WHERE seq = {};\n",
                row.decision, row.prev_hash, row.hash, row.seq
            ));
        }
        prev = row.hash;
    }
    sql
}

fn verify_report(console: &Console, extra: &[&str]) -> (Option<i32>, Value) {
    let mut args = vec!["audit", "verify", "--output", "json"];
    args.extend(extra);
    let out = console.cli(&args);
    (
        out.status.code(),
        serde_json::from_slice(&out.stdout).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_writer_who_recomputes_the_plain_sha256_chain_is_found() {
    let console = Console::start();
    console.login();
    let dave = console.add_user("dave", &[]);
    for _ in 0..3 {
        assert_eq!(dave.cli(&["user", "list"]).status.code(), Some(1));
    }
    let rows = audit_rows(&console.audit_records(&[]));
    assert!(rows.iter().all(|r| r.chain == "hmac-sha256"), "{rows:?}");
    let denial = rows
        .iter()
        .find(|r| r.user_name == "dave" && r.decision == "implicitDeny")
        .unwrap()
        .seq;
    let (code, intact) = verify_report(&console, &[]);
    assert_eq!(
        (code, intact["intact"].clone()),
        (Some(0), json!(true)),
        "{intact}"
    );
    assert_eq!(intact["unkeyed"], 0);

    // The refusal turned into an allowed decision, every hash after it recomputed: keyed
    // records whose hashes anyone could compute do not verify.
    console.sql(&rechain_plain(&rows, denial, "hmac-sha256"));
    let (code, report) = verify_report(&console, &[]);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["first_broken"], denial, "{report}");
    assert!(
        report["problem"].as_str().unwrap().contains("edited"),
        "{report}"
    );

    // Marked as plain records as well: a downgrade, refused.
    console.sql(&rechain_plain(&rows, denial, "sha256"));
    let (code, report) = verify_report(&console, &[]);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["first_broken"], denial, "{report}");
    assert!(
        report["problem"].as_str().unwrap().contains("downgraded"),
        "{report}"
    );
    assert_eq!(report["checked"], denial - 1, "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn truncating_the_newest_records_after_the_head_was_anchored_is_found() {
    let console = Console::start();
    console.login();
    console.ok(&["user", "list"]);
    let head = console.json(&["audit", "head"]);
    let seq = head["seq"].as_i64().unwrap();
    let hash = head["hash"].as_str().unwrap();
    assert_eq!(hash.len(), 64, "{head}");
    assert!(head["at"].as_str().unwrap().starts_with("20"), "{head}");
    let anchor = format!("{seq}:{hash}");
    console.ok(&["user", "list"]);
    let (code, report) = verify_report(&console, &["--anchor", &anchor]);
    assert_eq!(code, Some(0), "{report}");
    assert!(report["head"]["seq"].as_i64().unwrap() > seq, "{report}");

    // The anchored record and everything after it removed: what is left is a sound chain, and
    // the console chains on from it, so only the anchor can tell.
    console.sql(&format!("DELETE FROM audit_log WHERE seq >= {seq}"));
    let (code, report) = verify_report(&console, &[]);
    assert_eq!(code, Some(0), "{report}");
    let (code, report) = verify_report(&console, &["--anchor", &anchor]);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["intact"], false);
    assert_eq!(report["first_broken"], seq, "{report}");
    assert!(
        report["problem"].as_str().unwrap().contains("anchored"),
        "{report}"
    );

    // A malformed anchor is refused before anything is read.
    let out = console.cli(&["audit", "verify", "--anchor", "12:not-a-hash"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("SEQ:HASH"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_asking_for_a_huge_page_or_a_forged_cursor_is_refused_naming_it() {
    let console = Console::start();
    console.login();
    let token = console.token();
    for (path, field) in [
        ("/v1/audit?limit=1000000", "limit"),
        ("/v1/audit?limit=0", "limit"),
        ("/v1/audit?cursor=garbage", "cursor"),
        ("/v1/audit?cursor=MTIz", "cursor"),
        ("/v1/audit?since=yesterday", "since"),
        ("/v1/audit?offset=5", "offset"),
        ("/v1/audit/verify?anchor=1:xyz", "anchor"),
    ] {
        let (status, body) = get_api(&console, &token, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"]["field"], field, "{path}: {body}");
    }
    let (status, page) = get_api(&console, &token, "/v1/audit?limit=1000").await;
    assert_eq!(status, 200, "{page}");
    assert!(page["records"].as_array().unwrap().len() <= 1000);
    let out = console.cli(&["audit", "--limit", "1000000"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--limit"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_without_read_audit_log_gets_no_page_no_head_and_no_verification() {
    let console = Console::start();
    console.login();
    let erin = console.add_user(
        "erin",
        &[json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "airlock:ListUsers", "Resource": "*"}]})],
    );
    for args in [
        &["audit"][..],
        &["audit", "--all"],
        &["audit", "head"],
        &["audit", "verify"],
    ] {
        let out = erin.cli(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?} printed {:?}", out.stdout);
        assert!(
            stderr(&out).contains("airlock:ReadAuditLog"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    // Authorization comes first: a forged cursor tells nothing either.
    let token = erin.token();
    for path in ["/v1/audit?cursor=garbage&limit=1000000", "/v1/audit/head"] {
        let (status, body) = get_api(&console, &token, path).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert!(body.get("records").is_none() && body.get("hash").is_none());
    }
    let refusals = console
        .audit_records(&["--user", "erin"])
        .iter()
        .filter(|r| r["action"] == "airlock:ReadAuditLog" && r["outcome"] == "denied")
        .count();
    assert_eq!(refusals, 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn paging_returns_every_record_once_while_records_are_appended() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let console = Console::start();
    console.login();
    let token = console.token();
    // Someone making the console write records all along (each listing is audited).
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, url, token) = (stop.clone(), console.url.clone(), token.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut sent = 0;
            while !stop.load(Ordering::Relaxed) {
                let resp = client
                    .get(format!("{url}/v1/users"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status().as_u16(), 200);
                sent += 1;
            }
            sent
        })
    };
    while get_api(&console, &token, "/v1/audit/head").await.1["seq"]
        .as_i64()
        .unwrap()
        < 40
    {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut seen = Vec::new();
    let mut path = "/v1/audit?limit=7".to_owned();
    let mut pages = 0;
    loop {
        let (status, page) = get_api(&console, &token, &path).await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        seen.extend(
            page["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["seq"].as_i64().unwrap()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/audit?limit=7&cursor={cursor}"),
            None => break,
        }
        assert!(pages < 1000, "the cursor never reached the end");
    }
    stop.store(true, Ordering::Relaxed);
    assert!(writer.await.unwrap() > 0);
    let expected: Vec<i64> = (1..=seen.len() as i64).collect();
    assert_eq!(seen, expected, "each record once, in order, none skipped");
    assert!(pages > 5, "{pages} pages");

    // The client follows the same cursor: every record once, pages streamed under one heading.
    let all = console.audit_records(&["--limit", "7"]);
    let seqs: Vec<i64> = all.iter().map(|r| r["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    assert!(seqs.len() >= seen.len());
    let table = console.ok(&["audit", "--all", "--limit", "7"]);
    assert_eq!(table.matches("SEQ").count(), 1, "{table}");
    // One page by default, and the way to the next on standard error.
    let out = console.cli(&["audit", "--limit", "5"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 6);
    assert!(
        stderr(&out).contains("airlock audit --limit 5 --cursor "),
        "{}",
        stderr(&out)
    );
    let page = console.json(&["audit", "--limit", "5"]);
    assert_eq!(page["records"].as_array().unwrap().len(), 5);
    assert!(page["next_cursor"].is_string(), "{page}");
}
