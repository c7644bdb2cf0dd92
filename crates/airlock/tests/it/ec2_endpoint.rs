//! The console as an EC2 endpoint, driven by the real `aws` CLI and boto3 (and, for requests no
//! honest client makes, signed here with the SDK's own signer): every call goes through the
//! users' policies and the audit log, refusals are EC2's own errors, and nothing refused reaches
//! EC2.

use crate::common::*;
use serde_json::{json, Value};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

/// Policies of someone who may describe and launch in `dev`, and terminate only team=red.
fn red_team_policies() -> Vec<Value> {
    vec![json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "airlock:UseAccount", "Resource": "arn:airlock:console:::account/dev"},
        {"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"},
        {"Effect": "Allow", "Action": ["ec2:RunInstances", "ec2:CreateTags"], "Resource": "*"},
        {"Effect": "Allow", "Action": "ec2:TerminateInstances", "Resource": "*",
         "Condition": {"StringEquals": {"ec2:ResourceTag/team": "red"}}}
    ]})]
}

/// An Airlock key for `user`, made by the admin: (id, secret).
fn key_for(console: &Console, user: &str) -> (String, String) {
    let key = console.json(&["access-key", "create", "--user", user]);
    (
        key["access_key_id"].as_str().unwrap().to_owned(),
        key["secret_access_key"].as_str().unwrap().to_owned(),
    )
}

/// The `aws` CLI with only this key and the console as its EC2 and STS endpoints: no files,
/// no instance metadata, nothing else it could fall back to.
struct Aws<'a> {
    console: &'a Console,
    key: (String, String),
}

impl Aws<'_> {
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.console.dir.path())
            .env("AWS_ACCESS_KEY_ID", &self.key.0)
            .env("AWS_SECRET_ACCESS_KEY", &self.key.1)
            .env("AWS_DEFAULT_REGION", REGION)
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_MAX_ATTEMPTS", "1")
            .env(
                "AWS_ENDPOINT_URL_EC2",
                format!("{}/ec2/dev", self.console.url),
            )
            .env("AWS_ENDPOINT_URL_STS", format!("{}/sts", self.console.url));
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        let cli = std::env::var("AIRLOCK_AWS_CLI").expect(
            "AIRLOCK_AWS_CLI is not set: run the tests with scripts/test, which installs awscli",
        );
        self.command(&cli)
            .args(args)
            .args(["--output", "json"])
            .output()
            .unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "aws {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The error the CLI printed for a refused call.
    fn refused(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "aws {args:?} succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn python(&self, script: &str) -> Output {
        let python = std::env::var("AIRLOCK_PYTHON")
            .expect("AIRLOCK_PYTHON is not set: run the tests with scripts/test");
        self.command(&python).args(["-c", script]).output().unwrap()
    }
}

async fn running(ec2: &aws_sdk_ec2::Client, id: &str) -> bool {
    matches!(
        instance_state(ec2, id).await.as_str(),
        "running" | "pending"
    )
}

/// The instance is tagged on creation in EC2, and the console launched it with IMDSv2 only.
async fn assert_tagged_on_creation_with_imdsv2_only(ec2: &aws_sdk_ec2::Client, id: &str) {
    let described = described(ec2, id).await;
    let team = described.tags().iter().find(|t| t.key() == Some("team"));
    assert_eq!(
        team.and_then(|t| t.value()),
        Some("blue"),
        "tagged on creation in EC2"
    );
    let tokens = described
        .metadata_options()
        .and_then(|m| m.http_tokens())
        .map(|t| t.as_str().to_owned());
    assert_eq!(
        tokens.as_deref(),
        Some("required"),
        "the console launches with IMDSv2 only"
    );
}

/// The launch and the listing are audited for admin, the launch with EC2's request id.
fn assert_audited_with_aws_request_ids(console: &Console) {
    let records = console.audit_records(&["--user", "admin"]);
    let done = action_outcomes(&records);
    for action in ["ec2:RunInstances", "ec2:DescribeInstances"] {
        assert!(
            done.contains(&(action.to_owned(), "ok".to_owned())),
            "{action} not audited: {done:?}"
        );
    }
    let run = records
        .iter()
        .rev()
        .find(|r| r["action"] == "ec2:RunInstances" && r["outcome"] == "ok")
        .unwrap();
    assert!(
        run["aws_request_id"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{run}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn aws_cli_and_boto3_describe_launch_and_are_audited_through_the_console() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);
    let key = key_for(&console, "admin");
    let aws = Aws {
        console: &console,
        key: key.clone(),
    };

    let who = aws.json(&["sts", "get-caller-identity"]);
    assert_eq!(who["Arn"], "arn:airlock:console:::user/admin");
    assert_eq!(who["UserId"], key.0.as_str());

    let launched = aws.json(&[
        "ec2",
        "run-instances",
        "--image-id",
        &net.image_id,
        "--instance-type",
        "t3.micro",
        "--subnet-id",
        &net.subnet_id,
        "--count",
        "1",
        "--tag-specifications",
        "ResourceType=instance,Tags=[{Key=team,Value=blue}]",
    ]);
    let id = launched["Instances"][0]["InstanceId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_tagged_on_creation_with_imdsv2_only(&ec2, &id).await;

    let listed = aws.json(&["ec2", "describe-instances", "--instance-ids", &id]);
    assert_eq!(
        listed["Reservations"][0]["Instances"][0]["InstanceId"],
        id.as_str()
    );

    let boto = aws.python(&format!(
        "import boto3; c = boto3.client('ec2'); \
         r = c.describe_instances(InstanceIds=['{id}']); \
         print(r['Reservations'][0]['Instances'][0]['InstanceId'])"
    ));
    assert!(
        boto.status.success(),
        "boto3: {}",
        String::from_utf8_lossy(&boto.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&boto.stdout).trim(), id);

    assert_audited_with_aws_request_ids(&console);
    assert_no_secret(&console, &key.1);
}

/// The secret never appears in the console's output, audit log or files (the vault aside).
fn assert_no_secret(console: &Console, secret: &str) {
    assert!(
        !console.output_text().contains(secret),
        "secret in the console's log"
    );
    let audit = serde_json::to_string(&console.audit_records(&[])).unwrap();
    assert!(!audit.contains(secret), "secret in the audit log");
    for (path, bytes) in files_under(console.dir.path()) {
        assert!(!contains(&bytes, secret), "secret in {}", path.display());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn user_denied_a_terminate_gets_unauthorized_operation_and_the_instance_keeps_running() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);
    let bob = console.add_user("bob", &red_team_policies());
    let aws = Aws {
        console: &console,
        key: key_for(&console, "bob"),
    };
    let blue = aws.json(&[
        "ec2",
        "run-instances",
        "--image-id",
        &net.image_id,
        "--instance-type",
        "t3.micro",
        "--subnet-id",
        &net.subnet_id,
        "--tag-specifications",
        "ResourceType=instance,Tags=[{Key=team,Value=blue}]",
    ]);
    let id = blue["Instances"][0]["InstanceId"]
        .as_str()
        .unwrap()
        .to_owned();
    moto.record().await;

    let err = aws.refused(&["ec2", "terminate-instances", "--instance-ids", &id]);
    assert!(err.contains("UnauthorizedOperation"), "{err}");
    assert!(
        err.contains("ec2:TerminateInstances") && err.contains(&id),
        "names action and resource: {err}"
    );
    assert_eq!(
        moto.calls("TerminateInstances").await,
        0,
        "the denied call reached EC2"
    );
    assert!(running(&ec2, &id).await);
    let denied = console.audit_records(&["--user", "bob"]);
    assert!(
        action_outcomes(&denied).contains(&("ec2:TerminateInstances".into(), "denied".into())),
        "{denied:?}"
    );

    // A user with only their own rights cannot mint a key acting as someone else.
    let err = stderr(&bob.cli(&["access-key", "create", "--user", "admin"]));
    assert!(err.contains("airlock:CreateAccessKey"), "{err}");
}

/// A request for the console's EC2 endpoint signed here with the SDK's signer, at `when`.
fn signed(
    console: &Console,
    key: (&str, &str),
    body: &str,
    when: SystemTime,
) -> reqwest::RequestBuilder {
    signed_as(console, key, body, when, "ec2", None)
}

/// As [`signed`], for `service` and with a session token if given.
fn signed_as(
    console: &Console,
    key: (&str, &str),
    body: &str,
    when: SystemTime,
    service: &str,
    token: Option<&str>,
) -> reqwest::RequestBuilder {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    let url = format!("{}/ec2/dev/", console.url);
    let identity = aws_credential_types::Credentials::new(
        key.0,
        key.1,
        token.map(str::to_owned),
        None,
        "test",
    )
    .into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name(service)
        .time(when)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let content_type = "application/x-www-form-urlencoded; charset=utf-8";
    let headers = [("content-type", content_type)];
    let request = SignableRequest::new(
        "POST",
        url.as_str(),
        headers.into_iter(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .unwrap();
    let (instructions, _) = sign(request, &params).unwrap().into_parts();
    let mut req = reqwest::Client::new()
        .post(&url)
        .header("content-type", content_type);
    for (name, value) in instructions.headers() {
        req = req.header(name, value);
    }
    req
}

async fn refusal(req: reqwest::RequestBuilder, body: &str) -> (u16, String) {
    let resp = req.body(body.to_owned()).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_wrongly_signed_old_and_disabled_requests_never_reach_ec2() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);
    let id = deploy_one(&console, &net);
    let (key_id, secret) = key_for(&console, "admin");
    moto.record().await;
    let terminate = format!("Action=TerminateInstances&Version=2016-11-15&InstanceId.1={id}");
    let now = SystemTime::now();

    // Anyone on the network who changes a signed request: the body is the signature's.
    let describe = "Action=DescribeInstances&Version=2016-11-15";
    let (status, text) = refusal(
        signed(&console, (&key_id, &secret), describe, now),
        &terminate,
    )
    .await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("SignatureDoesNotMatch"), "{text}");

    // Someone who knows the key id but not its secret.
    let (status, text) = refusal(
        signed(&console, (&key_id, "not-the-secret"), &terminate, now),
        &terminate,
    )
    .await;
    assert!(text.contains("SignatureDoesNotMatch"), "{status} {text}");

    // A request recorded ten minutes ago and replayed.
    let old = now - Duration::from_secs(600);
    let (status, text) = refusal(
        signed(&console, (&key_id, &secret), &terminate, old),
        &terminate,
    )
    .await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("RequestExpired"), "{text}");

    // A key the owner disabled, then deleted, and one made up: all the same AuthFailure.
    console.ok(&["access-key", "update", &key_id, "--status", "Inactive"]);
    let (status, text) = refusal(
        signed(&console, (&key_id, &secret), &terminate, now),
        &terminate,
    )
    .await;
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("AuthFailure"), "{text}");
    console.ok(&["access-key", "delete", &key_id]);
    let (_, deleted) = refusal(
        signed(&console, (&key_id, &secret), &terminate, now),
        &terminate,
    )
    .await;
    let (_, made_up) = refusal(
        signed(&console, ("ALAKAAAAAAAAAAAAAAAA", &secret), &terminate, now),
        &terminate,
    )
    .await;
    for text in [&deleted, &made_up] {
        assert!(text.contains("AuthFailure"), "{text}");
    }

    assert_eq!(
        moto.calls("TerminateInstances").await,
        0,
        "a refused request reached EC2"
    );
    assert!(running(&ec2, &id).await);
    let records = console.audit_records(&[]);
    let refused = action_outcomes(&records)
        .into_iter()
        .filter(|(a, o)| a == "airlock:Authenticate" && o == "denied")
        .count();
    assert!(
        refused >= 4,
        "each refused signature is audited: {records:?}"
    );
}

fn deploy_one(console: &Console, net: &TestNet) -> String {
    crate::fleet::instances(console, net, "1").remove(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_snapshot_policies_decide_aws_ec2_create_snapshot() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let _net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);
    let v115 = crate::fleet::cost_center_volume(&console, "115");
    let v116 = crate::fleet::cost_center_volume(&console, "116");
    console.add_user("alice", &crate::fleet::snapshot_policies());
    let aws = Aws {
        console: &console,
        key: key_for(&console, "alice"),
    };
    let tags = |user: &str| {
        format!(
            "ResourceType=snapshot,Tags=[{{Key=costcenter,Value=115}},{{Key=User,Value={user}}}]"
        )
    };
    moto.record().await;

    for (volume, spec, why) in [
        (&v115, tags("bob"), "another user's name"),
        (&v116, tags("alice"), "a volume of costcenter 116"),
    ] {
        let err = aws.refused(&[
            "ec2",
            "create-snapshot",
            "--volume-id",
            volume,
            "--tag-specifications",
            &spec,
        ]);
        assert!(
            err.contains("UnauthorizedOperation") && err.contains("ec2:CreateSnapshot"),
            "{why}: {err}"
        );
    }
    assert_eq!(
        moto.calls("CreateSnapshot").await,
        0,
        "a denied snapshot reached EC2"
    );

    let made = aws.json(&[
        "ec2",
        "create-snapshot",
        "--volume-id",
        &v115,
        "--tag-specifications",
        &tags("alice"),
    ]);
    let snap = made["SnapshotId"].as_str().unwrap().to_owned();
    let shown = ec2
        .describe_snapshots()
        .snapshot_ids(&snap)
        .send()
        .await
        .unwrap();
    let tagged = shown.snapshots()[0]
        .tags()
        .iter()
        .any(|t| t.key() == Some("User") && t.value() == Some("alice"));
    assert!(tagged, "created and tagged in one call");
    let deleted = aws.run(&["ec2", "delete-snapshot", "--snapshot-id", &snap]);
    assert!(
        deleted.status.success(),
        "{}",
        String::from_utf8_lossy(&deleted.stderr)
    );
    let left = ec2
        .describe_snapshots()
        .owner_ids("self")
        .send()
        .await
        .unwrap();
    assert!(left
        .snapshots()
        .iter()
        .all(|s| s.snapshot_id() != Some(snap.as_str())));
}

#[tokio::test(flavor = "multi_thread")]
async fn what_the_console_cannot_authorize_is_refused_naming_it_before_ec2() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);
    let aws = Aws {
        console: &console,
        key: key_for(&console, "admin"),
    };
    let id = deploy_one(&console, &net);
    moto.record().await;

    // An instance profile would pass a role that no check covers.
    let err = aws.refused(&[
        "ec2",
        "run-instances",
        "--image-id",
        &net.image_id,
        "--instance-type",
        "t3.micro",
        "--iam-instance-profile",
        "Name=admin",
    ]);
    assert!(
        err.contains("UnsupportedOperation") && err.contains("IamInstanceProfile.Name"),
        "{err}"
    );
    let err = aws.refused(&["ec2", "create-vpc", "--cidr-block", "10.9.0.0/16"]);
    assert!(
        err.contains("UnsupportedOperation") && err.contains("CreateVpc"),
        "{err}"
    );
    // Without tags, DeleteTags would remove all of them, the console's own too.
    let err = aws.refused(&["ec2", "delete-tags", "--resources", &id]);
    assert!(err.contains("Tag.1.Key"), "{err}");
    for action in ["RunInstances", "CreateVpc", "DeleteTags"] {
        assert_eq!(moto.calls(action).await, 0, "{action} reached EC2");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn access_keys_are_listed_without_secrets_limited_and_managed_only_with_permission() {
    let moto = Moto::start();
    let console = Console::start();
    console.login_with_account(&moto);
    let carol = console.add_user("carol", &[json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["airlock:CreateAccessKey", "airlock:ListAccessKeys", "airlock:DeleteAccessKey"],
         "Resource": "arn:airlock:console:::user/${aws:username}"}
    ]})]);
    let own = carol.json(&["access-key", "create", "--expires-in-days", "1"]);
    let secret = own["secret_access_key"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 40);
    assert!(own["expires_at"].is_string());
    carol.json(&["access-key", "create"]);
    let third = stderr(&carol.cli(&["access-key", "create"]));
    assert!(third.contains("already has 2 access keys"), "{third}");
    let listed = carol.ok(&["access-key", "list", "--output", "json"]);
    assert!(
        !listed.contains(&secret) && !listed.contains("secret"),
        "{listed}"
    );

    // Someone with rights over their own keys only cannot list or delete the admin's.
    let (admin_key, _) = key_for(&console, "admin");
    let err = stderr(&carol.cli(&["access-key", "list", "--user", "admin"]));
    assert!(err.contains("airlock:ListAccessKeys"), "{err}");
    let err = stderr(&carol.cli(&["access-key", "delete", &admin_key]));
    assert!(err.contains("airlock:DeleteAccessKey"), "{err}");
    let admin_keys = console.json(&["access-key", "list"]);
    assert_eq!(
        admin_keys["access_keys"][0]["access_key_id"],
        admin_key.as_str()
    );

    // Removing the user removes their keys and sealed secrets.
    console.ok(&["user", "remove", "carol"]);
    let empty = console.json(&["access-key", "list", "--user", "carol"]);
    assert_eq!(empty["access_keys"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_meant_for_another_service_or_carrying_a_session_token_are_refused() {
    let moto = Moto::start();
    let console = Console::start();
    console.login_with_account(&moto);
    let (id, secret) = key_for(&console, "admin");
    moto.record().await;
    let body = "Action=DescribeInstances&Version=2016-11-15";
    let now = SystemTime::now();
    // A signature made for S3 (or any other service) is not a signature for EC2.
    let req = signed_as(&console, (&id, &secret), body, now, "s3", None);
    let (status, text) = refusal(req, body).await;
    assert_eq!(status, 403, "{text}");
    assert!(
        text.contains("SignatureDoesNotMatch") && text.contains("s3"),
        "{text}"
    );
    // Temporary AWS credentials signed with an Airlock key id: not something Airlock issued.
    let req = signed_as(
        &console,
        (&id, &secret),
        body,
        now,
        "ec2",
        Some("FwoGZXIvYXdzE"),
    );
    let (status, text) = refusal(req, body).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("InvalidClientTokenId"), "{text}");
    // Unsigned.
    let plain = reqwest::Client::new()
        .post(format!("{}/ec2/dev/", console.url))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status().as_u16(), 401);
    assert!(plain
        .text()
        .await
        .unwrap()
        .contains("MissingAuthenticationToken"));
    assert_eq!(moto.calls("DescribeInstances").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_bad_signatures_is_throttled_and_its_audit_stays_bounded() {
    let moto = Moto::start();
    let console = Console::start();
    console.login_with_account(&moto);
    let (id, _) = key_for(&console, "admin");
    let body = "Action=DescribeInstances&Version=2016-11-15";
    let mut throttled = 0;
    for _ in 0..12 {
        let req = signed(&console, (&id, "guessed-secret"), body, SystemTime::now());
        let (status, text) = refusal(req, body).await;
        if status == 503 {
            assert!(text.contains("RequestLimitExceeded"), "{text}");
            throttled += 1;
        } else {
            assert!(text.contains("SignatureDoesNotMatch"), "{status} {text}");
        }
    }
    assert!(
        throttled >= 6,
        "only {throttled} of 12 guesses were throttled"
    );
    let audited = action_outcomes(&console.audit_records(&[]))
        .into_iter()
        .filter(|(a, _)| a == "airlock:Authenticate")
        .count();
    assert!(
        audited <= 6,
        "{audited} records for 12 guesses: throttled ones are not written"
    );
}
