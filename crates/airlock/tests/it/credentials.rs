//! Scoped, short-lived instance credentials end to end: the session policy, the refresh
//! protocol (rotation, replays, addresses, termination, revocation), bootstrap tokens, the
//! agent refreshing through the console, and account key rotation through IAM.

use crate::common::fleet::{eventually, served, Fleet};
use crate::common::*;
use serde_json::Value;
use std::time::Duration;

/// The payload in an instance's user data, and the raw user data.
async fn payload_of(ec2: &aws_sdk_ec2::Client, id: &str) -> (airlock_payload::Payload, String) {
    let raw = user_data_of(ec2, id).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    (airlock_payload::find_payload(&raw).unwrap(), text)
}

/// The instance's private address and tags, from EC2.
async fn address_and_tags(ec2: &aws_sdk_ec2::Client, id: &str) -> (String, Vec<(String, String)>) {
    let out = ec2
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .unwrap();
    let i = &out.reservations()[0].instances()[0];
    let tags = i
        .tags()
        .iter()
        .map(|t| (t.key().unwrap().to_owned(), t.value().unwrap().to_owned()))
        .collect();
    (i.private_ip_address().unwrap().to_owned(), tags)
}

/// A loopback address that is not `ip`: where a copied secret is presented from.
fn elsewhere(ip: &str) -> &'static str {
    if ip == "127.0.0.250" {
        "127.0.0.251"
    } else {
        "127.0.0.250"
    }
}

fn first_instance(dep: &Value) -> String {
    dep["instances"][0]["instance_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn decide(
    policy: &Value,
    action: &str,
    resource: &str,
    tags: &[(String, String)],
) -> airlock_policy::Decision {
    let policy = airlock_policy::Policy::parse("session", &policy.to_string()).unwrap();
    let mut context = airlock_policy::Context::new();
    context.insert("aws:RequestedRegion", REGION);
    context.insert("ec2:Region", REGION);
    for (k, v) in tags {
        context.insert(&format!("aws:ResourceTag/{k}"), v.as_str());
        context.insert(&format!("ec2:ResourceTag/{k}"), v.as_str());
    }
    let request = airlock_policy::Request {
        action: action.into(),
        resource: resource.into(),
        context,
    };
    airlock_policy::evaluate(&[policy], &request).decision
}

/// A refresh answer that refuses with 403 and says `why`.
fn assert_refused((status, body): (u16, Value), why: &str) {
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains(why),
        "{body}"
    );
}

/// The generated session policy, through the project's evaluator: the deployment's own
/// instance may be tagged and stopped; another deployment's may not.
async fn assert_policy_scoped_to_own_instances(
    console: &Console,
    ec2: &aws_sdk_ec2::Client,
    dep_id: &str,
    (mine, theirs): (&str, &str),
) {
    let shown = console.json(&["deployment", "policy", dep_id]);
    assert_eq!(shown["credentials"], "scoped");
    let policy = &shown["policy"];
    let (_, my_tags) = address_and_tags(ec2, mine).await;
    let (_, their_tags) = address_and_tags(ec2, theirs).await;
    let arn = |id: &str| format!("arn:aws:ec2:{REGION}:123456789012:instance/{id}");
    use airlock_policy::Decision;
    for action in ["ec2:StopInstances", "ec2:CreateTags"] {
        assert_eq!(
            decide(policy, action, &arn(mine), &my_tags),
            Decision::Allowed,
            "{action}"
        );
        assert_ne!(
            decide(policy, action, &arn(theirs), &their_tags),
            Decision::Allowed,
            "{action}"
        );
    }
    assert_eq!(
        decide(policy, "ec2:DescribeInstances", "*", &[]),
        Decision::Allowed
    );
    assert!(console
        .ok(&["deployment", "policy", dep_id])
        .contains("KeepAirlockTags"));
}

/// Account mode is flagged in the listing and the audit log.
fn assert_account_mode_flagged(console: &Console, net: &TestNet) {
    let risky = console.json(&deploy_args(net, &["--credentials", "account"]));
    assert!(risky["risk"].as_str().unwrap().contains("long-term key"));
    assert!(console
        .ok(&["deployment", "list"])
        .contains("account (RISK)"));
    assert!(console
        .ok(&["audit", "--all", "--output", "json"])
        .contains("RISK"));
}

/// Mode none: the user data is the user's own script and nothing else; tasks need
/// credentials, so they are refused with the field named.
async fn assert_mode_none_is_the_script_alone(
    console: &Console,
    ec2: &aws_sdk_ec2::Client,
    net: &TestNet,
) {
    let script = console.dir.path().join("script.sh");
    std::fs::write(&script, "#!/bin/sh\necho plain\n").unwrap();
    let bare = console.json(&deploy_args(
        net,
        &[
            "--credentials",
            "none",
            "--user-script",
            script.to_str().unwrap(),
        ],
    ));
    let raw = user_data_of(ec2, &first_instance(&bare)).await;
    assert_eq!(raw, b"#!/bin/sh\necho plain\n");
    let tasks = console.dir.path().join("tasks.json");
    std::fs::write(&tasks, r#"[{"task":"tag_instance","tags":{"a":"b"}}]"#).unwrap();
    let out = console.cli(&deploy_args(
        net,
        &["--credentials", "none", "--tasks", tasks.to_str().unwrap()],
    ));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("(tasks)"),
        "{out:?}"
    );
}

/// No secret reaches the console's log, the audit log or API listings.
fn assert_no_secret_listed(console: &Console, secrets: &[&str]) {
    let listings = [
        console.ok(&["deployment", "list", "--output", "json"]),
        console.ok(&["audit", "--all", "--output", "json"]),
        console.output_text(),
    ]
    .join("\n");
    for secret in secrets.iter().chain([&SECRET_ACCESS_KEY]) {
        assert!(!listings.contains(secret), "a secret leaked");
    }
}

/// Revocation of a deployment: its instance cannot enrol any more.
async fn assert_revoked_cannot_enrol(
    console: &Console,
    ec2: &aws_sdk_ec2::Client,
    dep_id: &str,
    instance_id: &str,
) {
    let secret = enrolment_secret(ec2, instance_id).await;
    let (ip, _) = address_and_tags(ec2, instance_id).await;
    let revoked = console.json(&["deployment", "revoke", dep_id]);
    assert!(revoked["revoked"].as_u64().unwrap() >= 1, "{revoked}");
    let answer = refresh(console, &ip, dep_id, instance_id, &secret).await;
    assert_refused(answer, "revoked");
}

#[tokio::test(flavor = "multi_thread")]
async fn scoped_credentials_are_limited_rotated_and_refused_when_replayed() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);

    let dep = console.json(&deploy_args(&net, &["--wait"]));
    let other = console.json(&deploy_args(&net, &["--wait"]));
    let (dep_id, other_id) = (dep["id"].as_str().unwrap(), other["id"].as_str().unwrap());
    let (mine, theirs) = (first_instance(&dep), first_instance(&other));

    // The user data holds temporary credentials and a refresh secret, nothing long-lived.
    let (payload, text) = payload_of(&ec2, &mine).await;
    assert!(!text.contains(SECRET_ACCESS_KEY) && !text.contains(ACCESS_KEY_ID));
    let first = payload.credentials.as_ref().unwrap();
    assert!(first.session_token.is_some());
    assert!(first.expiration.unwrap() > chrono::Utc::now());
    let enrolment = enrolment_secret(&ec2, &mine).await;

    assert_policy_scoped_to_own_instances(&console, &ec2, dep_id, (&mine, &theirs)).await;

    // Enrolment from the instance's address: new credentials and a secret of its own.
    let (ip, _) = address_and_tags(&ec2, &mine).await;
    assert!(ip.starts_with("127.0.0."), "{ip}");
    let (status, body) = refresh(&console, &ip, dep_id, &mine, &enrolment).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["credentials"]["expiration"].is_string());
    assert!(body["credentials"]["session_token"].is_string());
    let s1 = body["refresh_secret"].as_str().unwrap().to_owned();
    assert!(s1.starts_with("alr_") && s1 != enrolment);
    let issued_secret = body["credentials"]["secret_access_key"]
        .as_str()
        .unwrap()
        .to_owned();

    // The enrolment secret works once per instance: a copy presented from elsewhere is refused
    // (the instance itself asking again at once is a retry, given the same answer).
    let wrong = elsewhere(&ip);
    let answer = refresh(&console, wrong, dep_id, &mine, &enrolment).await;
    assert_refused(answer, "already exchanged");

    // A request that does not come from the instance is refused and spends nothing.
    assert_refused(
        refresh(&console, wrong, dep_id, &mine, &s1).await,
        "address",
    );
    // Another instance's secret is not this one's.
    let (status, _) = refresh(&console, &ip, other_id, &mine, &s1).await;
    assert_eq!(status, 403);

    // Each refresh rotates the secret; presenting a used one is refused and raised.
    let (status, body) = refresh(&console, &ip, dep_id, &mine, &s1).await;
    assert_eq!(status, 200, "{body}");
    let s2 = body["refresh_secret"].as_str().unwrap().to_owned();
    assert_refused(
        refresh(&console, wrong, dep_id, &mine, &s1).await,
        "already used",
    );
    let audit = console.ok(&["audit", "--all", "--output", "json"]);
    assert!(
        audit.contains("replay") && audit.contains("ALERT"),
        "{audit}"
    );

    assert_revoked_cannot_enrol(&console, &ec2, other_id, &theirs).await;

    // A terminated instance gets nothing, even with its current secret.
    console.ok(&["instance", "terminate", &mine]);
    assert_refused(refresh(&console, &ip, dep_id, &mine, &s2).await, "revoked");

    assert_account_mode_flagged(&console, &net);
    assert_mode_none_is_the_script_alone(&console, &ec2, &net).await;
    assert_no_secret_listed(&console, &[&enrolment, &s1, &s2, &issued_secret]);
}

#[tokio::test(flavor = "multi_thread")]
async fn bootstrap_tokens_work_once_and_agents_refresh_through_the_console() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);
    let tmp = tempfile::tempdir().unwrap();
    // Renew when 895 of 900 seconds are left: every few seconds, so the test sees refreshes.
    let fleet = Fleet::start_with(&moto.url, tmp.path(), &["--refresh-before", "895"]);

    let boot = console.json(&deploy_args(
        &net,
        &["--credentials", "bootstrap", "--wait"],
    ));
    let scoped = console.json(&deploy_args(
        &net,
        &["--credentials-duration", "900", "--wait"],
    ));
    let (boot_id, boot_dep) = (first_instance(&boot), boot["id"].as_str().unwrap());
    let scoped_id = first_instance(&scoped);

    // Bootstrap user data: a one-time token and no credentials at all.
    let (payload, text) = payload_of(&ec2, &boot_id).await;
    assert!(payload.credentials.is_none());
    assert!(!text.contains(SECRET_ACCESS_KEY) && !text.contains(ACCESS_KEY_ID));
    let token = enrolment_secret(&ec2, &boot_id).await;

    // The agent exchanged it at first boot and serves temporary credentials with an expiry.
    let (_, _, body) = served(&fleet.state_dir(&boot_id), Duration::from_secs(60)).await;
    assert!(
        body["Expiration"].is_string() && body["Token"].is_string(),
        "{body}"
    );
    let state = std::fs::read_to_string(fleet.state_dir(&boot_id).join("state.json")).unwrap();
    assert!(
        !state.contains(&token),
        "the used bootstrap token was stored"
    );

    // The token worked once: a copy presented for the same instance from elsewhere is refused.
    let (ip, _) = address_and_tags(&ec2, &boot_id).await;
    let (status, body) = refresh(&console, elsewhere(&ip), boot_dep, &boot_id, &token).await;
    assert_eq!(status, 403, "{body}");

    // Bootstrap credentials are narrowed to the instance that exchanged the token.
    let shown = console.json(&["deployment", "policy", boot_dep]);
    assert_eq!(shown["credentials"], "bootstrap");

    // The scoped deployment's agent enrolled at boot: the secret in its user data is spent.
    let spent = enrolment_secret(&ec2, &scoped_id).await;
    let (scoped_ip, _) = address_and_tags(&ec2, &scoped_id).await;
    served(&fleet.state_dir(&scoped_id), Duration::from_secs(60)).await;
    let (status, body) = refresh(
        &console,
        elsewhere(&scoped_ip),
        scoped["id"].as_str().unwrap(),
        &scoped_id,
        &spent,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(fleet
        .agent_log(&scoped_id)
        .contains("enrolled with the console"));

    assert_agent_refreshes_through_the_console(&console, &fleet, &scoped_id).await;
}

/// The agent of `scoped_id` refreshes through the console again and again, and says the next
/// refresh is scheduled.
async fn assert_agent_refreshes_through_the_console(
    console: &Console,
    fleet: &Fleet,
    scoped_id: &str,
) {
    let log_has_refreshes = || {
        let log = fleet.agent_log(scoped_id);
        (log.matches("credentials refreshed").count() >= 2).then_some(log)
    };
    eventually(
        "two refreshes by the agent",
        Duration::from_secs(60),
        log_has_refreshes,
    )
    .await;
    let audit = console.ok(&["audit", "--all", "--output", "json"]);
    let refreshed = audit
        .lines()
        .filter(|l| l.contains("airlock:RefreshCredentials") || l.contains(scoped_id))
        .count();
    assert!(refreshed >= 2, "{audit}");
    let status = std::fs::read_to_string(fleet.state_dir(scoped_id).join("status.json")).unwrap();
    assert!(status.contains("\"refresh\": \"scheduled\""), "{status}");
}

/// Bytes the console's database takes on disk (SQLite), or its audit records (PostgreSQL).
fn database_size(console: &Console) -> u64 {
    if is_sqlite(&console.database) {
        let path = console.database.trim_start_matches("sqlite://");
        ["", "-wal", "-shm"]
            .iter()
            .filter_map(|s| std::fs::metadata(format!("{path}{s}")).ok())
            .map(|m| m.len())
            .sum()
    } else {
        0
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn fat_unauthenticated_refreshes_leave_the_database_as_it_was() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);
    let dep = console.json(&deploy_args(&net, &["--wait"]));
    let dep_id = dep["id"].as_str().unwrap();
    let mine = first_instance(&dep);
    let enrolment = enrolment_secret(&ec2, &mine).await;
    let (ip, _) = address_and_tags(&ec2, &mine).await;
    let records = || console.audit_records(&[]).len();
    let (size, before) = (database_size(&console), records());

    // 200 requests from anyone on the network: 100 KB ids, malformed ids, and well-formed
    // guesses, from ten addresses.
    let fat = "i-".to_owned() + &"f".repeat(100 * 1024);
    let mut answers = std::collections::BTreeMap::new();
    for n in 0..200u32 {
        let source = format!("127.0.9.{}", 1 + n % 10);
        let guess = format!("alr_{n:043}");
        let (id, secret) = match n % 3 {
            0 => (fat.as_str(), enrolment.as_str()),
            1 => ("not-an-instance", guess.as_str()),
            _ => ("i-0123456789abcdef0", guess.as_str()),
        };
        let (status, _) = refresh(&console, &source, dep_id, id, secret).await;
        *answers.entry(status).or_insert(0) += 1;
    }
    assert!(
        answers.keys().all(|s| [400, 403, 413, 429].contains(s)),
        "{answers:?}"
    );
    assert!(
        answers.contains_key(&413) && answers.contains_key(&400),
        "{answers:?}"
    );
    let grown = database_size(&console).saturating_sub(size);
    assert!(grown <= 1 << 20, "the database grew by {grown} bytes");
    // At most one record per address and window (and the record of reading the log).
    let added = records() - before;
    assert!(added <= 10 + 1, "{added} audit records for 200 refusals");

    // The instance itself still gets its credentials.
    let (status, body) = refresh(&console, &ip, dep_id, &mine, &enrolment).await;
    assert_eq!(status, 200, "{body}");
}

/// One call to moto's IAM query API as the owner of `key` (moto reads the caller from the
/// credential scope and does not check the signature).
async fn iam(moto: &Moto, key: &str, params: &[(&str, &str)]) -> String {
    let mut form = vec![("Version", "2010-05-08")];
    form.extend_from_slice(params);
    reqwest::Client::new()
        .post(format!("{}/", moto.url))
        .header(
            "Authorization",
            format!("AWS4-HMAC-SHA256 Credential={key}/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0"),
        )
        .form(&form)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn xml_field(xml: &str, name: &str) -> String {
    let open = format!("<{name}>");
    let start = xml
        .find(&open)
        .unwrap_or_else(|| panic!("no {name} in {xml}"))
        + open.len();
    let end = xml[start..].find(&format!("</{name}>")).unwrap() + start;
    xml[start..end].to_owned()
}

/// Makes the IAM user `airlock-ops` in moto with a key, and adds it as the account `ops`;
/// returns the key's id and secret.
async fn add_ops_account(console: &Console, moto: &Moto) -> (String, String) {
    iam(
        moto,
        ACCESS_KEY_ID,
        &[("Action", "CreateUser"), ("UserName", "airlock-ops")],
    )
    .await;
    let (key_id, secret) = new_key(moto, "airlock-ops").await;
    let added = console.cli_stdin(
        &[
            "account",
            "add",
            "ops",
            "--region",
            REGION,
            "--endpoint-url",
            &moto.url,
            "--access-key-id",
            &key_id,
            "--secret-access-key-stdin",
        ],
        &format!("{secret}\n"),
    );
    ok(added, &["account add"]);
    (key_id, secret)
}

/// A new access key of an IAM user in moto: (id, secret).
async fn new_key(moto: &Moto, user: &str) -> (String, String) {
    let xml = iam(
        moto,
        ACCESS_KEY_ID,
        &[("Action", "CreateAccessKey"), ("UserName", user)],
    )
    .await;
    (
        xml_field(&xml, "AccessKeyId"),
        xml_field(&xml, "SecretAccessKey"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn account_keys_rotate_through_iam_and_the_old_key_is_deleted() {
    let moto = Moto::start();
    let mut console = Console::start();
    console.login();
    let (key_id, secret) = add_ops_account(&console, &moto).await;
    let listed = console.json(&["account", "list"]);
    assert!(listed[0]["key_created_at"].is_string(), "{listed}");

    let rotated = console.json(&["account", "rotate-key", "ops"]);
    let rotated_to = rotated["new_access_key_id"].as_str().unwrap().to_owned();
    assert_eq!(rotated["old_access_key_id"], key_id.as_str());
    assert_ne!(rotated_to, key_id);
    let listed = console.json(&["account", "list"]);
    assert_eq!(listed[0]["access_key_id"], rotated_to.as_str());
    // The stored key works (STS again), and IAM holds only the new key.
    console.ok(&["account", "verify", "ops"]);
    let keys = iam(
        &moto,
        &rotated_to,
        &[("Action", "ListAccessKeys"), ("UserName", "airlock-ops")],
    )
    .await;
    assert!(
        keys.contains(&rotated_to) && !keys.contains(&key_id),
        "{keys}"
    );

    // The schedule: a key known to be older than the limit is rotated by the console itself.
    // (The key's age is set in the store directly, so this part runs on SQLite only.)
    let rotated_to = if is_sqlite(&console.database) {
        console.stop();
        let path = console.database.trim_start_matches("sqlite://").to_owned();
        let status = std::process::Command::new("python3")
            .args([
                "-c",
                "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(\"UPDATE accounts SET key_created_at='2020-01-01T00:00:00Z'\"); c.commit()",
                &path,
            ])
            .status()
            .unwrap();
        assert!(status.success());
        console
            .extra_args
            .extend(["--rotate-keys-after-days".to_owned(), "30".to_owned()]);
        console.launch();
        let before = rotated_to.clone();
        let after = eventually("the scheduled rotation", Duration::from_secs(60), || {
            let listed = console.json(&["account", "list"]);
            let key = listed[0]["access_key_id"].as_str().unwrap().to_owned();
            (key != before).then_some(key)
        })
        .await;
        assert!(console
            .ok(&["audit", "--all", "--output", "json"])
            .contains("scheduled"));
        after
    } else {
        rotated_to
    };

    // A second key made outside the console fills IAM's two slots: rotation refuses up front
    // rather than failing halfway, and the account keeps its key.
    let (extra_key, _) = new_key(&moto, "airlock-ops").await;
    let out = console.cli(&["account", "rotate-key", "ops"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("two access keys") && err.contains(&extra_key),
        "{err}"
    );
    let listed = console.json(&["account", "list"]);
    assert_eq!(listed[0]["access_key_id"], rotated_to.as_str());
    assert!(!console.output_text().contains(&secret));
}

/// One HTTP/1.1 `POST /v1/refresh` on a connection from `source`, after `preface` (a PROXY
/// header, or nothing): the status line ("" when the console closed the connection unanswered)
/// and the JSON body.
async fn raw_refresh(
    console: &Console,
    source: &str,
    preface: &[u8],
    body: &Value,
) -> (String, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let mut stream = socket
        .connect(format!("127.0.0.1:{}", console.port).parse().unwrap())
        .await
        .unwrap();
    let body = body.to_string();
    let mut request = preface.to_vec();
    request.extend_from_slice(
        format!(
            "POST /v1/refresh HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    // The console may close the connection before reading everything: ignore write errors.
    let _ = stream.write_all(&request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (
        head.lines().next().unwrap_or_default().to_owned(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn proxy_protocol_from_a_trusted_balancer_carries_the_instance_address() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    // 127.0.0.2 is the load balancer; everyone else connects directly.
    let console = Console::start_with(&["--proxy-protocol", "127.0.0.2/32"]);
    console.login_with_account(&moto);
    let dep = console.json(&deploy_args(&net, &["--wait"]));
    let dep_id = dep["id"].as_str().unwrap();
    let mine = first_instance(&dep);
    let enrolment = enrolment_secret(&ec2, &mine).await;
    let (ip, _) = address_and_tags(&ec2, &mine).await;
    let body = |secret: &str| serde_json::json!({"deployment_id": dep_id, "instance_id": mine, "refresh_secret": secret});
    let v1 = format!("PROXY TCP4 {ip} 127.0.0.1 40000 {}\r\n", console.port);

    // An attacker elsewhere on the network sends a header of its own claiming the instance's
    // address: headers are not believed from it, so HTTP sees garbage and refuses.
    let (status, _) = raw_refresh(&console, "127.0.0.3", v1.as_bytes(), &body(&enrolment)).await;
    assert!(status.contains(" 400"), "{status:?}");
    // Without a header the attacker is itself, not the instance.
    let (status, _) = raw_refresh(&console, "127.0.0.3", b"", &body(&enrolment)).await;
    assert!(status.contains(" 403"), "{status:?}");
    // The balancer must always say whom it forwards: a bare request from it is dropped.
    let (status, _) = raw_refresh(&console, "127.0.0.2", b"", &body(&enrolment)).await;
    assert_eq!(
        status, "",
        "answered a balancer connection without a PROXY header"
    );

    // The balancer forwarding the instance's connection: the address check sees the instance.
    let (status, answer) =
        raw_refresh(&console, "127.0.0.2", v1.as_bytes(), &body(&enrolment)).await;
    assert!(
        status.contains(" 200"),
        "{status:?}\n{}",
        console.output_text()
    );
    // So does the binary (v2) header.
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    v2.extend(ip.parse::<std::net::Ipv4Addr>().unwrap().octets());
    v2.extend([127, 0, 0, 1]);
    v2.extend(40001u16.to_be_bytes());
    v2.extend(console.port.to_be_bytes());
    let next = answer["refresh_secret"].as_str().unwrap();
    let (status, _) = raw_refresh(&console, "127.0.0.2", &v2, &body(next)).await;
    assert!(
        status.contains(" 200"),
        "{status:?}\n{}",
        console.output_text()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retried_exchange_gets_the_same_answer_but_a_copied_secret_is_still_a_replay() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);
    let dep = console.json(&deploy_args(&net, &["--wait"]));
    let dep_id = dep["id"].as_str().unwrap();
    let mine = first_instance(&dep);
    let enrolment = enrolment_secret(&ec2, &mine).await;
    let (ip, _) = address_and_tags(&ec2, &mine).await;

    let (status, first) = refresh(&console, &ip, dep_id, &mine, &enrolment).await;
    assert_eq!(status, 200, "{first}");
    // The answer was lost on the way; the agent asks again with the same secret.
    let (status, again) = refresh(&console, &ip, dep_id, &mine, &enrolment).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["refresh_secret"], first["refresh_secret"]);
    assert_eq!(
        again["credentials"]["access_key_id"],
        first["credentials"]["access_key_id"]
    );
    assert!(
        !console.output_text().contains("ALERT"),
        "a retry raised an alert"
    );

    // Someone who copied the secret, asking from elsewhere: not a retry.
    let (status, _) = refresh(&console, "127.0.0.99", dep_id, &mine, &enrolment).await;
    assert_eq!(status, 403);
    assert!(console.output_text().contains("ALERT"));

    // Once the instance has used what it was given, the old secret is a replay even from it.
    let next = first["refresh_secret"].as_str().unwrap();
    let (status, _) = refresh(&console, &ip, dep_id, &mine, next).await;
    assert_eq!(status, 200);
    let (status, body) = refresh(&console, &ip, dep_id, &mine, &enrolment).await;
    assert_eq!(status, 403, "{body}");
}

mod proxy;

#[tokio::test(flavor = "multi_thread")]
async fn the_rotation_schedule_runs_on_one_console_node_and_moves_when_it_dies() {
    let moto = Moto::start();
    // Two nodes on one PostgreSQL database, each with the schedule on; A starts first and
    // holds the key-rotation lease.
    let database = postgres_database();
    let schedule = ["--rotate-keys-after-days", "30"];
    let mut a = Console::node(&database, &schedule);
    a.launch();
    a.login();
    let mut b = Console::start_sharing(&a, &schedule);
    b.login();
    let status = a.json(&["cluster", "status"]);
    let rotation_holder = status["leases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "key-rotation")
        .map(|l| l["holder"].clone());
    assert_eq!(
        rotation_holder,
        Some(status["answered_by"].clone()),
        "{status}"
    );
    let (key_id, _) = add_ops_account(&a, &moto).await;
    let rotations = |console: &Console| {
        console
            .audit_records(&[])
            .iter()
            .filter(|r| r["action"] == "airlock:RotateAccountKey")
            .count()
    };

    // The key turns old. B, restarted, looks at its start as any schedule would, but it does
    // not hold the lease: nothing is rotated.
    a.sql("UPDATE accounts SET key_created_at = '2020-01-01T00:00:00Z'");
    b.restart();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        a.json(&["account", "list"])[0]["access_key_id"],
        key_id.as_str()
    );
    assert_eq!(rotations(&a), 0);

    // A dies: B takes the lease and rotates, once.
    a.stop();
    let rotated_to = eventually("B's scheduled rotation", Duration::from_secs(30), || {
        let listed = b.json(&["account", "list"]);
        let key = listed[0]["access_key_id"].as_str().unwrap().to_owned();
        (key != key_id).then_some(key)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(rotations(&b), 1);
    let keys = iam(
        &moto,
        &rotated_to,
        &[("Action", "ListAccessKeys"), ("UserName", "airlock-ops")],
    )
    .await;
    assert_eq!(keys.matches("<AccessKeyId>").count(), 1, "{keys}");
}
