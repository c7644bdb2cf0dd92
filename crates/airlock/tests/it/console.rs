//! End-to-end tests of the console through the `airlock` binary, against moto and a real store
//! (SQLite, or PostgreSQL with AIRLOCK_TEST_DATABASE=postgres).

use crate::common::*;
use base64::Engine;
use serde_json::Value;

fn ids(dep: &Value) -> Vec<String> {
    let mut ids: Vec<String> = dep["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["instance_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// The instance carries the user's tags and the console's, a loopback address a test can serve
/// on, and requires IMDSv2 with one hop.
fn assert_tagged_loopback_imdsv2(instance: &aws_sdk_ec2::types::Instance, dep_id: &str) {
    let tags: std::collections::BTreeMap<_, _> = instance
        .tags()
        .iter()
        .map(|t| (t.key().unwrap().to_owned(), t.value().unwrap().to_owned()))
        .collect();
    assert_eq!(tags.get("team").map(String::as_str), Some("web"));
    assert_eq!(tags.get("owner").map(String::as_str), Some("ana"));
    assert_eq!(
        tags.get("airlock:deployment").map(String::as_str),
        Some(dep_id)
    );
    assert_eq!(
        tags.get("airlock:deployed-by").map(String::as_str),
        Some("admin")
    );
    // The loopback VPC gives instances local addresses a test can serve on.
    assert!(
        instance
            .private_ip_address()
            .unwrap()
            .starts_with("127.0.0."),
        "{instance:?}"
    );
    let md = instance.metadata_options().unwrap();
    assert_eq!(md.http_tokens().unwrap().as_str(), "required");
    assert_eq!(md.http_put_response_hop_limit(), Some(1));
}

/// The instance's volumes are tagged on creation too.
async fn assert_volumes_tagged(ec2: &aws_sdk_ec2::Client, instance_id: &str, dep_id: &str) {
    let volumes = ec2
        .describe_volumes()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("attachment.instance-id")
                .values(instance_id)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(!volumes.volumes().is_empty());
    for v in volumes.volumes() {
        assert!(
            v.tags()
                .iter()
                .any(|t| t.key() == Some("airlock:deployment") && t.value() == Some(dep_id)),
            "volume {:?} lacks the deployment tag",
            v.volume_id()
        );
        assert!(v
            .tags()
            .iter()
            .any(|t| t.key() == Some("team") && t.value() == Some("web")));
    }
}

/// The user data holds the payload and the user's script. Scoped by default: temporary
/// credentials, a refresh URL and secret, and nothing of the account's long-term key.
async fn assert_scoped_payload(
    ec2: &aws_sdk_ec2::Client,
    instance_id: &str,
    dep_id: &str,
    (moto, console): (&Moto, &Console),
) {
    let raw = user_data_of(ec2, instance_id).await;
    let text = String::from_utf8_lossy(&raw);
    assert!(text.contains("multipart/mixed"), "{text}");
    assert!(text.contains("echo hello from the user script"));
    assert!(!text.contains(SECRET_ACCESS_KEY));
    assert!(!text.contains(ACCESS_KEY_ID));
    let payload = airlock_payload::find_payload(&raw).unwrap();
    assert_eq!(payload.deployment_id, dep_id);
    assert_eq!(payload.region, REGION);
    assert_eq!(payload.endpoint_url.as_deref(), Some(moto.url.as_str()));
    assert_eq!(payload.console_url.as_deref(), Some(console.url.as_str()));
    let credentials = payload.credentials.as_ref().unwrap();
    assert_ne!(credentials.access_key_id, ACCESS_KEY_ID);
    assert!(credentials.session_token.is_some());
    assert!(credentials.expiration.unwrap() > chrono::Utc::now());
    assert_eq!(
        payload.refresh_url.as_deref(),
        Some(format!("{}/v1/refresh", console.url).as_str())
    );
    assert!(payload.refresh_secret.is_some());
    assert!(payload.role_arn.is_none());
    assert_eq!(payload.tasks.len(), 2);
    assert_eq!(payload.tasks[1].kind(), "attach_volume");
}

/// Listing by tag and by deployment, as a table and as JSON.
fn assert_listed_by_tag_and_deployment(console: &Console, dep_id: &str) {
    let listed = console.json(&["instances", "--tag", "team=web"]);
    assert_eq!(listed["instances"].as_array().unwrap().len(), 2);
    let by_dep = console.json(&[
        "instances",
        "--deployment",
        dep_id,
        "--filter",
        "instance-state-name=running",
    ]);
    assert_eq!(by_dep["instances"].as_array().unwrap().len(), 2);
    assert!(
        console.json(&["instances", "--tag", "team=WEB"])["instances"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let table = console.ok(&["instances", "--deployment", dep_id]);
    assert!(table.starts_with("ACCOUNT"), "{table}");
    assert_eq!(table.lines().count(), 3, "{table}");
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_tags_on_creation_and_puts_the_payload_in_user_data() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);
    let script = console.dir.path().join("setup.sh");
    std::fs::write(&script, "#!/bin/sh\necho hello from the user script\n").unwrap();
    let script = script.to_string_lossy().to_string();
    let tasks = console.dir.path().join("tasks.json");
    std::fs::write(
        &tasks,
        r#"[{"task": "tag_instance", "tags": {"port": "8080"}},
            {"task": "attach_volume", "filters": {"tag:Role": ["data"]}, "device": "/dev/sdf"}]"#,
    )
    .unwrap();
    let tasks = tasks.to_string_lossy().to_string();
    let dep = console.json(&deploy_args(
        &net,
        &[
            "--count",
            "2",
            "--tag",
            "team=web",
            "--tag",
            "owner=ana",
            "--user-script",
            &script,
            "--tasks",
            &tasks,
            "--wait",
        ],
    ));
    assert_eq!(dep["state"], "running", "{dep}");
    let dep_id = dep["id"].as_str().unwrap();
    let instances = live_instances(&ec2, dep_id).await;
    assert_eq!(instances.len(), 2);
    for instance in &instances {
        assert_tagged_loopback_imdsv2(instance, dep_id);
        assert_volumes_tagged(&ec2, instance.instance_id().unwrap(), dep_id).await;
        assert_scoped_payload(
            &ec2,
            instance.instance_id().unwrap(),
            dep_id,
            (&moto, &console),
        )
        .await;
    }

    assert_listed_by_tag_and_deployment(&console, dep_id);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_client_token_yields_one_set_of_instances() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);
    let args = deploy_args(
        &net,
        &["--count", "3", "--client-token", "retry-me-1", "--wait"],
    );
    let first = console.json(&args);
    let second = console.json(&args);
    assert_eq!(first["id"], second["id"]);
    assert_eq!(
        live_instances(&ec2, first["id"].as_str().unwrap())
            .await
            .len(),
        3
    );
    assert_eq!(
        console
            .json(&["deployment", "list"])
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // The same token with a different request is refused, not silently merged.
    let other = console.cli(&deploy_args(
        &net,
        &["--count", "4", "--client-token", "retry-me-1"],
    ));
    assert_eq!(other.status.code(), Some(1));
    assert!(
        stderr(&other).contains("already used"),
        "{}",
        stderr(&other)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_after_launch_finds_instances_by_tag_and_never_launches_twice() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let mut console = Console::start();
    console.login_with_account(&moto);
    let dep = console.json(&deploy_args(&net, &["--count", "2", "--wait"]));
    let dep_id = dep["id"].as_str().unwrap().to_owned();
    let before = ids(&dep);

    // Simulate a crash between RunInstances and recording it: the store says "pending" again.
    // moto ignores ClientToken, so only the look-up by tag can prevent a second launch.
    console.stop();
    let store = airlock_store::Store::open(&console.database).await.unwrap();
    store
        .set_deployment_state(
            &dep_id,
            "pending".parse().unwrap(),
            None,
            "2026-01-01T00:00:00Z",
        )
        .await
        .unwrap();
    store
        .set_deployment_instances(&dep_id, &[], None)
        .await
        .unwrap();
    store.close().await;
    console.launch();

    let mut settled = Value::Null;
    for _ in 0..100 {
        settled = console.json(&["deployment", "show", &dep_id]);
        if settled["state"] == "running" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(settled["state"], "running", "{settled}");
    assert_eq!(ids(&settled), before);
    assert_eq!(live_instances(&ec2, &dep_id).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_console_restart_mid_wait_resumes() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    // A slow watcher keeps the deployment "launching" long enough to restart the console under it.
    let mut console = Console::start_with(&["--poll-interval", "3"]);
    console.login_with_account(&moto);
    let mut args: Vec<String> = deploy_args(&net, &["--count", "2", "--wait", "--output", "json"])
        .into_iter()
        .map(str::to_owned)
        .collect();
    args.extend(["--timeout".into(), "120".into()]);
    let waiting = std::process::Command::new(airlock_bin())
        .args(&args)
        .env("AIRLOCK_CONSOLE", &console.url)
        .env("AIRLOCK_CONFIG_DIR", console.dir.path().join("config"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the deployment exists, then take the console away while the client waits.
    let mut dep_id = String::new();
    for _ in 0..100 {
        let list = console.json(&["deployment", "list"]);
        if let Some(d) = list.as_array().unwrap().first() {
            dep_id = d["id"].as_str().unwrap().to_owned();
            // Killed while recording the launch or while watching it: both must resume.
            assert!(
                d["state"] == "launching" || d["state"] == "pending",
                "the watcher settled too early for this test: {d}"
            );
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!dep_id.is_empty());
    console.stop();
    std::thread::sleep(std::time::Duration::from_secs(2));
    console.extra_args = vec!["--poll-interval".into(), "0.2".into()];
    console.launch();
    let out = waiting.wait_with_output().unwrap();
    let text = ok(out, &["deploy --wait"]);
    let dep: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(dep["id"], dep_id.as_str());
    assert_eq!(dep["state"], "running");
    assert_eq!(live_instances(&ec2, &dep_id).await.len(), 2);
    assert!(console.output_text().contains("resuming deployment"));
}

#[tokio::test(flavor = "multi_thread")]
async fn scale_up_and_down() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);
    let dep = console.json(&deploy_args(
        &net,
        &["--count", "1", "--tag", "app=db", "--wait"],
    ));
    let id = dep["id"].as_str().unwrap().to_owned();
    let first = ids(&dep);

    let up = console.json(&["deployment", "scale", &id, "--count", "3", "--wait"]);
    assert_eq!(up["state"], "running");
    assert_eq!(up["count"], 3);
    let after_up = live_instances(&ec2, &id).await;
    assert_eq!(after_up.len(), 3);
    // New instances carry the same tags, on creation.
    for i in &after_up {
        assert!(i
            .tags()
            .iter()
            .any(|t| t.key() == Some("app") && t.value() == Some("db")));
    }

    let down = console.json(&["deployment", "scale", &id, "--count", "1", "--wait"]);
    assert_eq!(down["state"], "running");
    let remaining = live_instances(&ec2, &id).await;
    assert_eq!(remaining.len(), 1);
    // The oldest instance stays.
    assert_eq!(remaining[0].instance_id().unwrap(), first[0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn instance_actions_reach_ec2() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);
    let dep = console.json(&deploy_args(&net, &["--count", "2", "--wait"]));
    let ids = ids(&dep);
    let stopped = console.json(&["instance", "stop", &ids[0]]);
    assert_eq!(stopped["action"], "stop");
    assert!(matches!(
        instance_state(&ec2, &ids[0]).await.as_str(),
        "stopping" | "stopped"
    ));
    console.ok(&["instance", "start", &ids[0], "--account", "dev"]);
    assert!(matches!(
        instance_state(&ec2, &ids[0]).await.as_str(),
        "pending" | "running"
    ));
    console.ok(&["instance", "reboot", &ids[1]]);
    console.ok(&["instance", "terminate", &ids[1]]);
    assert!(matches!(
        instance_state(&ec2, &ids[1]).await.as_str(),
        "shutting-down" | "terminated"
    ));
    // EC2's own error comes back with AWS's code.
    let missing = console.cli(&["instance", "stop", "i-0123456789abcdef0"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("InvalidInstanceID.NotFound"),
        "{}",
        stderr(&missing)
    );
}

/// A user script that makes the user data too big, even compressed, and a boot task the agent
/// does not know: both refused naming the field.
fn assert_oversized_script_and_unknown_task_refused(console: &Console, net: &TestNet) {
    let big = console.dir.path().join("big.sh");
    let mut random = vec![0u8; 24_000];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut random);
    let noise = base64::engine::general_purpose::STANDARD.encode(random);
    std::fs::write(&big, format!("#!/bin/sh\n# {noise}\n")).unwrap();
    let out = console.cli(&deploy_args(net, &["--user-script", big.to_str().unwrap()]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("(user_script)") && stderr(&out).contains("16"),
        "{}",
        stderr(&out)
    );

    // A boot task the agent does not know.
    let bad_tasks = console.dir.path().join("bad-tasks.json");
    std::fs::write(&bad_tasks, r#"[{"task": "format_disk"}]"#).unwrap();
    let out = console.cli(&deploy_args(net, &["--tasks", bad_tasks.to_str().unwrap()]));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("(tasks[0].task)"), "{}", stderr(&out));
}

/// Malformed JSON straight to the API: 400 naming the field, or saying the JSON is malformed.
async fn assert_malformed_json_refused_with_the_field(console: &Console) {
    let post = |body: &'static str| {
        reqwest::Client::new()
            .post(format!("{}/v1/deployments", console.url))
            .bearer_auth(console.token())
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let resp =
        post(r#"{"account":"dev","image_id":"ami-1","instance_type":"t3.micro","count":"three"}"#)
            .await
            .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["field"], "count", "{body}");
    let resp = post(r#"{"account":"dev","#).await.unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("malformed JSON"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_before_ec2_with_the_field_named() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);

    let mut too_many: Vec<String> = Vec::new();
    for i in 0..49 {
        too_many.push("--tag".into());
        too_many.push(format!("k{i}=v"));
    }
    let mut args: Vec<&str> = deploy_args(&net, &[]);
    args.extend(too_many.iter().map(String::as_str));
    let refusals: Vec<(Vec<&str>, &str)> = vec![
        (args, "(tags)"),
        (deploy_args(&net, &["--count", "0"]), "(count)"),
        (deploy_args(&net, &["--tag", "aws:name=x"]), "(tags[0].key)"),
        (deploy_args(&net, &["--tag", "novalue"]), "is not KEY=VALUE"),
        (
            vec![
                "deploy",
                "--account",
                "nope",
                "--image",
                &net.image_id,
                "--instance-type",
                "t3.micro",
            ],
            "(account)",
        ),
        (
            deploy_args(&net, &["--security-group", "web"]),
            "(security_group_ids[0])",
        ),
    ];
    for (args, expected) in refusals {
        let out = console.cli(&args);
        assert_ne!(out.status.code(), Some(0), "{args:?} succeeded");
        assert!(
            stderr(&out).contains(expected),
            "{args:?}: expected {expected:?} in {}",
            stderr(&out)
        );
    }
    // A tag key of 129 characters, given properly.
    let long = format!("{}=v", "k".repeat(129));
    let out = console.cli(&deploy_args(&net, &["--tag", &long]));
    assert!(
        stderr(&out).contains("(tags[0].key)") && stderr(&out).contains("128"),
        "{}",
        stderr(&out)
    );

    assert_oversized_script_and_unknown_task_refused(&console, &net);

    // Usage errors exit 2.
    assert_eq!(
        console.cli(&["deploy", "--account", "dev"]).status.code(),
        Some(2)
    );

    // Nothing was launched or recorded by any of these.
    assert!(console
        .json(&["deployment", "list"])
        .as_array()
        .unwrap()
        .is_empty());
    let all = ec2.describe_instances().send().await.unwrap();
    assert!(all.reservations().is_empty());

    assert_malformed_json_refused_with_the_field(&console).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ec2_errors_come_back_with_aws_code_and_the_deployment_is_recorded_failed() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);
    let out = console.cli(&[
        "deploy",
        "--account",
        "dev",
        "--image",
        "ami-00000000deadbeef",
        "--instance-type",
        "t3.micro",
        "--subnet",
        &net.subnet_id,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("InvalidAMIID.NotFound"),
        "{}",
        stderr(&out)
    );
    let list = console.json(&["deployment", "list"]);
    let deps = list.as_array().unwrap();
    assert_eq!(deps.len(), 1);
    assert_eq!(deps[0]["state"], "failed");
    assert!(deps[0]["error"]
        .as_str()
        .unwrap()
        .contains("InvalidAMIID.NotFound"));
}

/// Everything the console answers about accounts, deployments, instances and the caller, and
/// its refusals (a wrong password, a duplicate account), through the CLI and the HTTP API.
async fn responses_of_every_kind(
    console: &Console,
    moto: &Moto,
    net: &TestNet,
    token: &str,
) -> String {
    let mut responses = String::new();
    let accounts = console.ok(&["account", "list", "--output", "json"]);
    responses.push_str(&accounts);
    let list: Value = serde_json::from_str(&accounts).unwrap();
    assert_eq!(list[0]["access_key_id"], ACCESS_KEY_ID);
    assert_eq!(list[0]["aws_account_id"], "123456789012");
    responses.push_str(&console.ok(&["account", "list"]));
    responses.push_str(&console.ok(&["account", "verify", "dev", "--output", "json"]));
    responses.push_str(&console.ok(&deploy_args(
        net,
        &["--count", "1", "--wait", "--output", "json"],
    )));
    responses.push_str(&console.ok(&["deployment", "list", "--output", "json"]));
    responses.push_str(&console.ok(&["instances", "--output", "json"]));
    responses.push_str(&console.ok(&["whoami", "--output", "json"]));
    let bad_login = console.cli_stdin(
        &["login", "--user", "admin", "--password-stdin"],
        "wrong-password\n",
    );
    assert_eq!(bad_login.status.code(), Some(1));
    responses.push_str(&stderr(&bad_login));
    let duplicate = console.add_account(moto);
    assert_eq!(duplicate.status.code(), Some(1));
    responses.push_str(&stderr(&duplicate));
    for path in [
        "/openapi.json",
        "/v1/accounts",
        "/v1/deployments",
        "/v1/instances",
    ] {
        let r = reqwest::Client::new()
            .get(format!("{}{path}", console.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        responses.push_str(&r.text().await.unwrap());
    }
    responses
}

/// No secret in the console's database files (SQLite) or tables (PostgreSQL).
fn assert_database_holds_no_secret(console: &Console, secrets: &[&str]) {
    if is_sqlite(&console.database) {
        let mut scanned = 0;
        for (path, bytes) in files_under(console.dir.path()) {
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with("airlock.db") {
                scanned += bytes.len();
                for secret in secrets.iter().copied() {
                    assert!(
                        !contains(&bytes, secret),
                        "{} contains a secret in plaintext",
                        path.display()
                    );
                }
            }
        }
        assert!(scanned > 0, "no database file was scanned");
    } else {
        let out = std::process::Command::new("pg_dump")
            .arg(&console.database)
            .output();
        if let Some(out) = out.ok().filter(|o| o.status.success()) {
            for secret in secrets.iter().copied() {
                assert!(
                    !contains(&out.stdout, secret),
                    "the PostgreSQL dump contains a secret"
                );
            }
        } else {
            let dump = std::process::Command::new("psql")
                .args([console.database.as_str(), "-c", "SELECT * FROM vault_records; SELECT * FROM accounts; SELECT * FROM api_tokens; SELECT * FROM users; SELECT * FROM deployments;"])
                .output()
                .unwrap();
            assert!(dump.status.success());
            for secret in secrets.iter().copied() {
                assert!(
                    !contains(&dump.stdout, secret),
                    "the PostgreSQL tables contain a secret"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn accounts_never_show_secrets_and_nothing_leaks_anywhere() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let mut console = Console::start();
    console.login_with_account(&moto);
    let token = console.token();

    let responses = responses_of_every_kind(&console, &moto, &net, &token).await;
    console.stop();

    let secrets = [SECRET_ACCESS_KEY, ADMIN_PASSWORD, token.as_str()];
    for secret in secrets {
        assert!(!responses.contains(secret), "a response contains a secret");
    }
    let logs = console.output_text();
    assert!(logs.contains("account added"), "logs look empty: {logs}");
    for secret in secrets {
        assert!(
            !logs.contains(secret),
            "the console's output contains a secret"
        );
    }
    assert_database_holds_no_secret(&console, &secrets);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_master_key_fails_to_open_the_vault() {
    let moto = Moto::start();
    let mut console = Console::start();
    console.login_with_account(&moto);
    console.stop();
    let other = airlock_vault::Keyring::generate();
    airlock_vault::file::write_key_file(&console.key_file(), &other).unwrap();
    let out = console.serve_once();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("master key does not open this vault"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn vault_rotation_rewraps_every_record_while_the_console_serves() {
    let moto = Moto::start();
    let mut console = Console::start();
    console.login_with_account(&moto);
    let key_file = console.key_file();
    let before = airlock_vault::file::load_key_file(&key_file).unwrap();
    let out = std::process::Command::new(airlock_bin())
        .args([
            "vault",
            "rotate",
            "--database",
            &console.database,
            "--output",
            "json",
            "--master-key-file",
        ])
        .arg(&key_file)
        .output()
        .unwrap();
    let report: Value = serde_json::from_str(&ok(out, &["vault rotate"])).unwrap();
    // The vault check record, the audit key and the account's secret.
    assert_eq!(report["rewrapped"], 3, "{report}");
    let after = airlock_vault::file::load_key_file(&key_file).unwrap();
    assert_eq!(after.ids().len(), 1);
    assert_ne!(after.ids(), before.ids());
    assert_eq!(report["new_key_id"], after.ids()[0].as_str());
    // The running console opens the re-wrapped secret without a restart.
    let verified = console.json(&["account", "verify", "dev"]);
    assert_eq!(verified["name"], "dev");
    // The audit key was re-wrapped, not replaced: after a restart the log verifies under it.
    console.restart();
    let chain = console.json(&["audit", "verify"]);
    assert_eq!(chain["intact"], true, "{chain}");
    assert_eq!(chain["unkeyed"], 0, "{chain}");
    // The old key alone no longer opens the vault.
    airlock_vault::file::write_key_file(&key_file, &before).unwrap();
    let out = console.serve_once();
    assert!(stderr(&out).contains("master key"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_openapi_document_lists_every_route_and_routes_need_a_token() {
    let console = Console::start();
    let doc: Value = reqwest::get(format!("{}/openapi.json", console.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 12);
    let client = reqwest::Client::new();
    for (path, ops) in paths {
        let concrete = path
            .replace("{name}", "x")
            .replace("{id}", "dep-x")
            .replace("{action}", "stop");
        for method in ops.as_object().unwrap().keys() {
            let resp = client
                .request(
                    method.to_uppercase().parse().unwrap(),
                    format!("{}{concrete}", console.url),
                )
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap();
            assert!(
                !text.contains("no such API path"),
                "{method} {path} is documented but not routed"
            );
            // /v1/refresh answers instances, which prove themselves with a refresh secret.
            let public = [
                "/healthz",
                "/readyz",
                "/openapi.json",
                "/v1/login",
                "/v1/refresh",
            ]
            .contains(&path.as_str());
            if !public {
                assert_eq!(
                    status, 401,
                    "{method} {path} answered {status} without a token"
                );
            }
        }
    }
    // And an undocumented path is not routed.
    let resp = client
        .get(format!("{}/v1/nothing", console.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

/// The document and the router agree: every documented method of a path is routed, and every
/// other method of it answers 405 (so no route hides beside a documented one). Only the pages
/// and the browser session are served without being documented.
#[tokio::test(flavor = "multi_thread")]
async fn every_documented_route_is_routed_and_only_those_methods() {
    let console = Console::start();
    let client = reqwest::Client::new();
    let send = |method: &str, path: &str| {
        client
            .request(method.parse().unwrap(), format!("{}{path}", console.url))
            .header("content-type", "application/json")
            .body("{}")
            .send()
    };
    let doc = send("GET", "/openapi.json").await.unwrap();
    let doc: Value = doc.json().await.unwrap();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{name}", "x")
            .replace("{id}", "dep-x")
            .replace("{action}", "stop");
        for method in ["get", "post", "put", "delete", "patch"] {
            let resp = send(&method.to_uppercase(), &concrete).await.unwrap();
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap();
            assert!(
                !text.contains("no such API path"),
                "{method} {path}: {text}"
            );
            if ops.get(method).is_some() {
                assert_ne!(status, 405, "{method} {path} is documented but not routed");
            } else {
                assert_eq!(status, 405, "{method} {path} is routed but not documented");
            }
        }
    }
    for path in ["/", "/assets/app.js", "/web/session"] {
        let resp = send("GET", path).await.unwrap();
        assert!(resp.status().as_u16() != 404, "GET {path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn login_tokens_are_checked_and_revocable() {
    let console = Console::start();
    let wrong = console.cli_stdin(
        &["login", "--user", "admin", "--password-stdin"],
        "not-the-password\n",
    );
    assert_eq!(wrong.status.code(), Some(1));
    assert!(stderr(&wrong).contains("wrong user name or password"));
    console.login();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(console.dir.path().join("config/login.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert_eq!(console.json(&["whoami"])["user"], "admin");
    console.ok(&["logout"]);
    let after = console.cli(&["whoami"]);
    assert_eq!(after.status.code(), Some(1));
    assert!(
        stderr(&after).contains("Unauthorized"),
        "{}",
        stderr(&after)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_key_is_refused_with_aws_message_and_nothing_is_stored() {
    // With authentication on, moto checks keys as AWS does; ours is unknown to it.
    let moto = Moto::start_with_env(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")]);
    let console = Console::start();
    console.login();
    let out = console.add_account(&moto);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("InvalidClientTokenId"), "{err}");
    assert!(!err.contains(SECRET_ACCESS_KEY));
    assert!(console
        .json(&["account", "list"])
        .as_array()
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_header_connections_are_closed_while_requests_are_served() {
    use std::io::{Read, Write};
    let console = Console::start_with(&["--header-timeout", "2"]);
    let addr = console.url.trim_start_matches("http://").to_owned();
    // 50 connections that send a request's first line and then one header byte a second, and
    // 10 that connect and send nothing at all.
    const SILENT: usize = 10;
    let mut slow: Vec<std::net::TcpStream> = (0..50 + SILENT)
        .map(|i| {
            let mut s = std::net::TcpStream::connect(&addr).unwrap();
            if i >= SILENT {
                s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                    .unwrap();
            }
            s
        })
        .collect();
    let started = std::time::Instant::now();
    let mut closed = vec![false; slow.len()];
    while started.elapsed() < std::time::Duration::from_secs(8) && closed.iter().any(|c| !c) {
        // Normal requests are served all along.
        let body = ureq_get(&format!("{}/healthz", console.url)).unwrap();
        assert!(body.contains("ok"), "{body}");
        for (i, s) in slow.iter_mut().enumerate() {
            if closed[i] {
                continue;
            }
            if i >= SILENT && s.write_all(b"a").is_err() {
                closed[i] = true;
                continue;
            }
            s.set_read_timeout(Some(std::time::Duration::from_millis(5)))
                .unwrap();
            let mut buf = [0u8; 512];
            match s.read(&mut buf) {
                // The server closed it (possibly after a 408).
                Ok(_) => closed[i] = true,
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => closed[i] = true,
            }
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    let open = closed.iter().filter(|c| !**c).count();
    assert_eq!(
        open,
        0,
        "{open} slow connections still open after {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
}

/// Anyone who can reach the console cannot make it hold a long request head (hyper alone would
/// read about 400 KiB before it gave up, and buffer up to twice that): a head whose end has not
/// come within 64 KiB is refused with 431, a long one within the limit is served.
#[tokio::test(flavor = "multi_thread")]
async fn a_request_head_over_64_kib_is_refused_and_one_within_is_served() {
    use std::io::{Read, Write};
    let console = Console::start();
    let addr = console.url.trim_start_matches("http://").to_owned();
    let status_for = |header_bytes: usize| {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let head = format!(
            "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: {}\r\nConnection: close\r\n\r\n",
            "a".repeat(header_bytes)
        );
        // The console may answer and close before it has read all of an oversized head.
        let _ = s.write_all(head.as_bytes());
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer).into_owned();
        answer.split(' ').nth(1).unwrap_or_default().to_owned()
    };
    assert_eq!(status_for(200 * 1024), "431");
    assert_eq!(status_for(32 * 1024), "200");
}

/// `curl` against a TLS console trusting `ca`: (HTTP version, body), or the error it printed.
fn curl_tls(url: &str, ca: &std::path::Path) -> Result<(String, String), String> {
    let out = std::process::Command::new("curl")
        .args(["--silent", "--show-error", "--http2", "--max-time", "10"])
        .arg("--cacert")
        .arg(ca)
        .args(["--write-out", "\n%{http_version}", url])
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, version) = text.rsplit_once('\n').unwrap();
    Ok((version.to_owned(), body.to_owned()))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tls_console_serves_clients_that_trust_its_ca_and_reloads_its_certificate_on_sighup() {
    let console = Console::start_tls(&[]);
    let ca = console.ca.clone().unwrap();
    // The CLI, told the CA with AIRLOCK_CONSOLE_CA, logs in and works over HTTPS.
    console.login();
    assert_eq!(console.json(&["whoami"])["user"], "admin");
    // h2 is offered by ALPN.
    let (version, body) = curl_tls(&format!("{}/healthz", console.url), &ca).unwrap();
    assert_eq!(version, "2", "{body}");

    // Someone on the path presenting another certificate: a client that trusts only the
    // console's CA refuses to talk, and one with no CA refuses the console itself.
    let out = std::process::Command::new(airlock_bin())
        .args(["whoami"])
        .env("AIRLOCK_CONSOLE", &console.url)
        .env("AIRLOCK_CONFIG_DIR", console.dir.path().join("config"))
        .env_remove("AIRLOCK_CONSOLE_CA")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("certificate") || stderr(&out).contains("cannot reach"),
        "{}",
        stderr(&out)
    );
    // Plain HTTP to the TLS port gets no HTTP answer.
    assert!(ureq_get(&format!("http://127.0.0.1:{}/healthz", console.port)).is_err());

    // A new certificate from another CA, put in place and signalled: new connections get it.
    let renewed = console.dir.path().join("renewed");
    std::fs::create_dir_all(&renewed).unwrap();
    let (new_ca, new_cert, new_key) = test_ca(&renewed);
    let cert_arg = |flag: &str| {
        let at = console.extra_args.iter().position(|a| a == flag).unwrap();
        std::path::PathBuf::from(&console.extra_args[at + 1])
    };
    // First a broken pair (the new certificate with the old key): refused, the old one kept.
    std::fs::copy(&new_cert, cert_arg("--tls-cert")).unwrap();
    let signal = || {
        let status = std::process::Command::new("kill")
            .args(["-HUP", &console.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    signal();
    assert!(curl_tls(&format!("{}/healthz", console.url), &ca).is_ok());
    assert!(console
        .output_text()
        .contains("kept the old TLS certificate"));
    std::fs::copy(&new_key, cert_arg("--tls-key")).unwrap();
    signal();
    assert!(curl_tls(&format!("{}/healthz", console.url), &new_ca).is_ok());
    // A client trusting only the old CA no longer accepts the console.
    assert!(curl_tls(&format!("{}/healthz", console.url), &ca).is_err());
}

#[test]
fn plain_http_on_a_non_loopback_address_needs_insecure_http() {
    let console = Console::start();
    let key = console.key_file();
    // Refused before anything is bound: the address is never listened on.
    let out = std::process::Command::new(airlock_bin())
        .args(["serve", "--listen", "0.0.0.0:1", "--database"])
        .arg(format!(
            "sqlite://{}",
            console.dir.path().join("other.db").display()
        ))
        .arg("--master-key-file")
        .arg(&key)
        .env("AIRLOCK_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("--insecure-http") && err.contains("--tls-cert"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn user_who_may_add_accounts_cannot_aim_the_console_at_an_endpoint_the_operator_did_not_allow(
) {
    let moto = Moto::start();
    // The operator allows only 127.0.0.2; moto listens on 127.0.0.1.
    let mut console = Console::start_with(&["--allow-endpoint", "127.0.0.2"]);
    console.login();
    let out = console.add_account(&moto);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("endpoint_url") && err.contains("--allow-endpoint 127.0.0.1"),
        "{err}"
    );
    assert!(console
        .json(&["account", "list"])
        .as_array()
        .unwrap()
        .is_empty());

    // Allowed, the account is added and used; once the allowance is withdrawn, it is refused
    // before its key is unsealed.
    console.extra_args = vec!["--allow-endpoint".into(), "127.0.0.1".into()];
    console.restart();
    ok(console.add_account(&moto), &["account", "add"]);
    console.ok(&["instances", "--account", "dev"]);
    console.extra_args = vec!["--allow-endpoint".into(), "127.0.0.2".into()];
    console.restart();
    let out = console.cli(&["instances", "--account", "dev"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("cannot be used"), "{}", stderr(&out));
}
