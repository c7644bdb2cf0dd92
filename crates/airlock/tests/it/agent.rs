//! End-to-end tests of `airlock agent` (issue 4): real agent processes against moto, with
//! IMDSv2-faithful metadata servers (in-process, or the local fleet's), and the AWS SDK as the
//! local program that uses the credentials.

use std::path::Path;
use std::time::Duration;

use crate::common::fleet::*;
use crate::common::*;
use airlock_payload::{
    build_user_data, find_payload, BootTask, Credentials, Payload, SecretString,
};
use airlock_testbed::imds_server::{ImdsServer, InstanceData};

const TOKEN: &str = "IQoJb3JpZ2luX2VjEXAMPLE-session-token-7c1d";
const LONG: Duration = Duration::from_secs(60);

/// A payload for moto with the test account's key (long-term: the endpoint serves an STS
/// session made from it).
fn payload_for(moto: &Moto, deployment: &str, tasks: Vec<BootTask>) -> Payload {
    let credentials = Credentials::new(ACCESS_KEY_ID, SecretString::from(SECRET_ACCESS_KEY));
    let mut p = Payload::new(deployment, REGION, credentials);
    p.endpoint_url = Some(moto.url.clone());
    p.tasks = tasks;
    p
}

/// A payload with temporary credentials, served as they are (no EC2 or STS needed).
fn temporary_payload(deployment: &str) -> Payload {
    let json = format!(
        r#"{{"airlock_payload":1,"deployment_id":"{deployment}","region":"{REGION}","endpoint_url":"http://127.0.0.1:9","credentials":{{"access_key_id":"ASIATESTTEMPORARY01","secret_access_key":"{SECRET_ACCESS_KEY}","session_token":"{TOKEN}","expiration":"2099-01-02T03:04:05Z"}}}}"#
    );
    find_payload(json.as_bytes()).unwrap()
}

fn instance_data(id: &str, user_data: Option<Vec<u8>>) -> InstanceData {
    InstanceData {
        instance_id: id.to_owned(),
        availability_zone: format!("{REGION}a"),
        user_data,
        local_ipv4: None,
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// No secret of the test account or the served session in `text`.
fn assert_no_secret(text: &str, served: &serde_json::Value) {
    assert!(
        !text.contains(SECRET_ACCESS_KEY),
        "secret access key in:\n{text}"
    );
    assert!(!text.contains(TOKEN), "session token in:\n{text}");
    for k in ["SecretAccessKey", "Token"] {
        if let Some(v) = served[k].as_str() {
            assert!(!text.contains(v), "served {k} in:\n{text}");
        }
    }
}

/// An EC2 client whose credentials come from `provider`, straight to moto.
async fn ec2_with(
    moto: &Moto,
    provider: impl aws_sdk_ec2::config::ProvideCredentials + 'static,
) -> aws_sdk_ec2::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .credentials_provider(provider)
        .endpoint_url(&moto.url)
        .load()
        .await;
    aws_sdk_ec2::Client::new(&config)
}

/// A console deploy of one instance carrying the account's long-term key: (deployment id,
/// instance id).
fn deploy_with_account_credentials(console: &Console, net: &TestNet) -> (String, String) {
    let dep = console.json(&deploy_args(
        net,
        &[
            "--tag",
            "team=web",
            // The pattern as published: the long-term key in the user data, which the agent turns
            // into STS sessions for local programs. (Scoped credentials: credentials.rs.)
            "--credentials",
            "account",
            "--wait",
        ],
    ));
    let dep_id = dep["id"].as_str().unwrap().to_owned();
    let instance_id = dep["instances"][0]["instance_id"]
        .as_str()
        .unwrap()
        .to_owned();
    (dep_id, instance_id)
}

/// The SDK's container provider, pointed at the endpoint, gets the served key and lists the
/// instance.
async fn assert_container_provider_works(
    moto: &Moto,
    (url, token, body): (&str, &str, &serde_json::Value),
    instance_id: &str,
) {
    std::env::set_var("AWS_CONTAINER_CREDENTIALS_FULL_URI", url);
    std::env::set_var("AWS_CONTAINER_AUTHORIZATION_TOKEN", token);
    let container = aws_config::ecs::EcsCredentialsProvider::builder().build();
    {
        use aws_sdk_ec2::config::ProvideCredentials as _;
        let creds = container.provide_credentials().await.unwrap();
        assert_eq!(creds.access_key_id(), body["AccessKeyId"].as_str().unwrap());
        assert!(creds.session_token().is_some() && creds.expiry().is_some());
    }
    let listed = ec2_with(moto, container)
        .await
        .describe_instances()
        .instance_ids(instance_id)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.reservations().len(), 1);
    // All end-to-end tests share this process: leave its environment as it was.
    std::env::remove_var("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    std::env::remove_var("AWS_CONTAINER_AUTHORIZATION_TOKEN");
}

/// The shared-credentials profile the agent wrote works with the SDK and finds the deployment's
/// instance.
async fn assert_profile_works(moto: &Moto, profile_file: &Path, dep_id: &str, instance_id: &str) {
    // aws-runtime's new names for these types are not reachable from aws-config alone.
    #[allow(deprecated)]
    let files = aws_config::profile::profile_file::ProfileFiles::builder()
        .with_file(
            aws_config::profile::profile_file::ProfileFileKind::Credentials,
            profile_file,
        )
        .build();
    let profile = aws_config::profile::ProfileFileCredentialsProvider::builder()
        .profile_files(files)
        .profile_name("airlock")
        .build();
    let listed = ec2_with(moto, profile)
        .await
        .describe_instances()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:airlock:deployment")
                .values(dep_id)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        listed.reservations()[0].instances()[0].instance_id(),
        Some(instance_id)
    );
}

/// `agent status`, as JSON and as a table, names the instance and deployment and no secret.
fn assert_status_without_secrets(
    state_dir: &Path,
    (instance_id, dep_id): (&str, &str),
    url: &str,
    body: &serde_json::Value,
) {
    let out = agent_once(&["status", "--state-dir", s(state_dir), "--output", "json"]);
    let status_text = ok(out, &["agent status"]);
    let status: serde_json::Value = serde_json::from_str(&status_text).unwrap();
    assert_eq!(status["instance_id"], instance_id);
    assert_eq!(status["deployment_id"], dep_id);
    assert_eq!(status["credentials"]["access_key_id"], ACCESS_KEY_ID);
    assert_eq!(status["served"]["source"], "sts");
    assert_eq!(status["verified"], true);
    assert_eq!(status["endpoint_url"], url);
    assert_no_secret(&status_text, body);
    let table = ok(
        agent_once(&["status", "--state-dir", s(state_dir)]),
        &["agent status"],
    );
    assert!(
        table.contains(instance_id) && table.contains(dep_id),
        "{table}"
    );
    assert_no_secret(&table, body);
}

/// Stops the instance (its agent stops serving at `url`) and starts it again: the local fleet
/// boots it a second time.
async fn stop_and_start(
    ec2: &aws_sdk_ec2::Client,
    fleet: &Fleet,
    instance_id: &str,
    (url, token): (&str, &str),
) {
    ec2.stop_instances()
        .instance_ids(instance_id)
        .send()
        .await
        .unwrap();
    eventually("the agent to stop", LONG, || {
        fleet
            .entry(instance_id)
            .filter(|e| e["agent_pid"].is_null())
            .map(|_| ())
    })
    .await;
    assert_eq!(
        get_credentials(url, Some(token)).await.0,
        0,
        "stopped agent still serving"
    );
    ec2.start_instances()
        .instance_ids(instance_id)
        .send()
        .await
        .unwrap();
    eventually("a second boot", LONG, || {
        fleet
            .entry(instance_id)
            .filter(|e| e["boots"] == 2)
            .map(|_| ())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_console_deploy_boots_an_agent_whose_credentials_work_with_the_sdk() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);
    let tmp = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(&moto.url, tmp.path());

    let (dep_id, instance_id) = deploy_with_account_credentials(&console, &net);
    let state_dir = fleet.state_dir(&instance_id);
    let (url, token, body) = served(&state_dir, LONG).await;

    // The agent stored the payload from the user data the console wrote.
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state_dir.join("state.json")).unwrap()).unwrap();
    assert_eq!(state["instance_id"], instance_id.as_str());
    assert_eq!(state["deployment_id"], dep_id.as_str());
    assert_eq!(
        state["payload"]["credentials"]["access_key_id"],
        ACCESS_KEY_ID
    );

    // The endpoint: 401 without the token, SDK container-provider JSON with it.
    assert_eq!(get_credentials(&url, None).await.0, 401);
    assert_eq!(get_credentials(&url, Some("wrong")).await.0, 401);
    for k in ["AccessKeyId", "SecretAccessKey", "Token", "Expiration"] {
        assert!(body[k].is_string(), "{k} missing in the endpoint's answer");
    }
    assert!(url.starts_with("http://127.0.0."), "{url}");

    assert_container_provider_works(&moto, (&url, &token, &body), &instance_id).await;
    let profile_file = fleet.dir.join(&instance_id).join("aws-credentials");
    assert_profile_works(&moto, &profile_file, &dep_id, &instance_id).await;
    assert_status_without_secrets(&state_dir, (&instance_id, &dep_id), &url, &body);

    // A stop/start (a reboot that keeps the disk): the agent comes back from its stored state.
    stop_and_start(&ec2, &fleet, &instance_id, (&url, &token)).await;
    let (url2, token2, body2) = served(&state_dir, LONG).await;
    assert_eq!(
        token2, token,
        "local programs keep their authorization token"
    );
    assert_eq!(body2["AccessKeyId"], body["AccessKeyId"]);
    let log = fleet.agent_log(&instance_id);
    assert!(log.contains("using the stored state"), "{log}");
    assert!(log.contains(&url2.replace("/credentials", "")) || !url2.is_empty());

    // Permissions of everything the agent wrote, and no secret in its log.
    assert_private(&state_dir);
    assert_private(&fleet.dir.join(&instance_id));
    assert_no_secret(&log, &body);
    assert_no_secret(&fleet.proc.log_text(), &body);
}

/// A volume tagged `Role=data` in `zone` and an address tagged `Role=web`, for the boot tasks
/// to find: (volume id, allocation id).
async fn boot_task_targets(ec2: &aws_sdk_ec2::Client, zone: &str) -> (String, String) {
    use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
    let spec = |kind: ResourceType, v: &str| {
        TagSpecification::builder()
            .resource_type(kind)
            .tags(Tag::builder().key("Role").value(v).build())
            .build()
    };
    let volume = ec2
        .create_volume()
        .availability_zone(zone)
        .size(1)
        .tag_specifications(spec(ResourceType::Volume, "data"))
        .send()
        .await
        .unwrap();
    let address = ec2
        .allocate_address()
        .domain(aws_sdk_ec2::types::DomainType::Vpc)
        .tag_specifications(spec(ResourceType::ElasticIp, "web"))
        .send()
        .await
        .unwrap();
    (
        volume.volume_id().unwrap().to_owned(),
        address.allocation_id().unwrap().to_owned(),
    )
}

/// Four boot tasks, the second of which finds no volume.
fn boot_tasks() -> Vec<BootTask> {
    vec![
        BootTask::TagInstance {
            tags: [("port".to_owned(), "8080".to_owned())].into(),
        },
        BootTask::AttachVolume {
            filters: [("tag:Role".to_owned(), vec!["nothing-has-this".to_owned()])].into(),
            device: "/dev/sdg".to_owned(),
        },
        BootTask::AttachVolume {
            filters: [("tag:Role".to_owned(), vec!["data".to_owned()])].into(),
            device: "/dev/sdf".to_owned(),
        },
        BootTask::AssociateAddress {
            allocation_id: None,
            filters: [("tag:Role".to_owned(), vec!["web".to_owned()])].into(),
        },
    ]
}

/// One instance in the loopback subnet, launched straight in EC2 with `user_data`.
async fn run_with_user_data(ec2: &aws_sdk_ec2::Client, net: &TestNet, user_data: &[u8]) -> String {
    use base64::Engine as _;
    let run = ec2
        .run_instances()
        .image_id(&net.image_id)
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .subnet_id(&net.subnet_id)
        .user_data(base64::engine::general_purpose::STANDARD.encode(user_data))
        .send()
        .await
        .unwrap();
    run.instances()[0].instance_id().unwrap().to_owned()
}

/// `airlock agent` with `args`, run to its end off the async runtime.
async fn agent_off_runtime(args: &[impl AsRef<str>]) -> std::process::Output {
    let args: Vec<String> = args.iter().map(|a| a.as_ref().to_owned()).collect();
    tokio::task::spawn_blocking(move || agent_once_owned(&args))
        .await
        .unwrap()
}

/// `agent --once` running the boot tasks of the user data `imds` serves.
async fn run_boot_tasks(
    state_dir: &Path,
    imds: &ImdsServer,
    profile: &Path,
    task_wait: &str,
) -> std::process::Output {
    agent_off_runtime(&[
        "--once",
        "--state-dir",
        s(state_dir),
        "--imds-endpoint",
        &imds.url(),
        "--profile-file",
        s(profile),
        "--task-wait",
        task_wait,
    ])
    .await
}

/// The boot task results the agent stored, and each one's outcome.
fn task_outcomes(state_dir: &Path) -> (serde_json::Value, Vec<String>) {
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state_dir.join("tasks.json")).unwrap()).unwrap();
    let outcomes = results
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap().to_owned())
        .collect();
    (results, outcomes)
}

/// EC2 (moto) shows the effect of the tasks that ran: the tag, the attachment, the association.
async fn assert_boot_tasks_done(
    ec2: &aws_sdk_ec2::Client,
    instance_id: &str,
    volume_id: &str,
    allocation_id: &str,
) {
    let tags = ec2
        .describe_tags()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("resource-id")
                .values(instance_id)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(tags
        .tags()
        .iter()
        .any(|t| t.key() == Some("port") && t.value() == Some("8080")));
    let volumes = ec2
        .describe_volumes()
        .volume_ids(volume_id)
        .send()
        .await
        .unwrap();
    let attachment = &volumes.volumes()[0].attachments()[0];
    assert_eq!(attachment.instance_id(), Some(instance_id));
    assert_eq!(attachment.device(), Some("/dev/sdf"));
    let addresses = ec2
        .describe_addresses()
        .allocation_ids(allocation_id)
        .send()
        .await
        .unwrap();
    assert_eq!(addresses.addresses()[0].instance_id(), Some(instance_id));
}

#[tokio::test(flavor = "multi_thread")]
async fn boot_tasks_tag_the_instance_attach_a_volume_and_associate_an_address() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let subnets = ec2
        .describe_subnets()
        .subnet_ids(&net.subnet_id)
        .send()
        .await
        .unwrap();
    let zone = subnets.subnets()[0].availability_zone().unwrap().to_owned();
    let (volume_id, allocation_id) = boot_task_targets(&ec2, &zone).await;
    let user_data = build_user_data(
        &payload_for(&moto, "dep-tasks", boot_tasks()),
        Some(b"#!/bin/sh\necho operator script\n"),
    )
    .unwrap();
    let instance_id = run_with_user_data(&ec2, &net, &user_data).await;

    // The metadata server serves what moto holds for the instance.
    let held = user_data_of(&ec2, &instance_id).await;
    let imds = ImdsServer::start(
        "127.0.0.1:0",
        InstanceData {
            instance_id: instance_id.clone(),
            availability_zone: zone.clone(),
            user_data: Some(held),
            local_ipv4: None,
        },
        false,
    )
    .await
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let state_dir = tmp.path().join("state");
    let profile = tmp.path().join("aws").join("credentials");
    let out = run_boot_tasks(&state_dir, &imds, &profile, "5").await;
    let log = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "one task fails, so the exit status says so:\n{log}"
    );
    assert!(log.contains("1 of 4 boot tasks failed"), "{log}");

    // The other tasks ran: EC2 (moto) shows their effect.
    assert_boot_tasks_done(&ec2, &instance_id, &volume_id, &allocation_id).await;
    let (results, outcomes) = task_outcomes(&state_dir);
    assert_eq!(outcomes, ["done", "failed", "done", "done"], "{results}");
    assert!(results[1]["detail"]
        .as_str()
        .unwrap()
        .contains("no volume matches"));

    // Every boot runs them again: idempotent, nothing changes.
    let out = run_boot_tasks(&state_dir, &imds, &profile, "1").await;
    let log2 = stderr(&out);
    assert!(log2.contains("using the stored state"), "{log2}");
    let (results, outcomes) = task_outcomes(&state_dir);
    assert_eq!(
        outcomes,
        ["unchanged", "failed", "unchanged", "unchanged"],
        "{results}"
    );
    assert_eq!(imds.stats().tokenless_reads, 0);
    assert_private(&state_dir);
    assert_private(profile.parent().unwrap());
    assert_no_secret(&format!("{log}{log2}"), &serde_json::Value::Null);
}

fn agent_once_owned(args: &[String]) -> std::process::Output {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    agent_once(&refs)
}

/// A long-running agent serving credentials, waiting at most a second for the metadata
/// service before it falls back to its stored state.
fn spawn_serving_agent(state_dir: &Path, imds_url: &str, profile: &Path, log: &Path) -> Proc {
    Proc::spawn(
        &[
            "agent",
            "--state-dir",
            s(state_dir),
            "--imds-endpoint",
            imds_url,
            "--listen",
            "127.0.0.1:0",
            "--profile-file",
            s(profile),
            "--stored-state-wait",
            "1",
        ],
        log,
        &[],
    )
}

/// The agent's `status.json` once `ready` holds for it.
async fn status_once(
    what: &str,
    state_dir: &Path,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    eventually(what, LONG, || {
        let text = std::fs::read_to_string(state_dir.join("status.json")).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        ready(&v).then_some(v)
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_reboot_with_the_metadata_service_down_the_stored_credentials_are_served() {
    let user_data = build_user_data(&temporary_payload("dep-reboot"), None).unwrap();
    let imds = ImdsServer::start(
        "127.0.0.1:0",
        instance_data("i-0reboot", Some(user_data)),
        false,
    )
    .await
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let state_dir = tmp.path().join("state");
    let profile = tmp.path().join("credentials");
    let imds_url = imds.url();
    let mut agent = spawn_serving_agent(
        &state_dir,
        &imds_url,
        &profile,
        &tmp.path().join("agent-1.log"),
    );
    let (_, token, body) = served(&state_dir, LONG).await;
    assert_eq!(body["AccessKeyId"], "ASIATESTTEMPORARY01");
    assert_eq!(body["Token"], TOKEN);
    assert_eq!(body["Expiration"], "2099-01-02T03:04:05Z");
    assert_eq!(agent.stop(), Some(0), "SIGTERM stops the agent cleanly");
    assert_eq!(imds.stats().tokenless_reads, 0);

    // "Reboot": the metadata service is down (nothing listens there any more).
    drop(imds);
    let mut agent = spawn_serving_agent(
        &state_dir,
        &imds_url,
        &profile,
        &tmp.path().join("agent-2.log"),
    );
    let (_, token2, body2) = served(&state_dir, LONG).await;
    assert_eq!(token2, token);
    assert_eq!(body2, body);
    let log = agent.log_text();
    assert!(
        log.contains("metadata service unreachable; serving the stored credentials"),
        "{log}"
    );
    // The status written at start says "not-needed" until the refresh loop has planned.
    let status = status_once(
        "the status to say why nothing is refreshed",
        &state_dir,
        |v| v["refresh"] == "unavailable",
    )
    .await;
    assert_eq!(status["verified"], false);
    assert!(status["refresh_message"]
        .as_str()
        .unwrap()
        .contains("no refresh URL"));
    assert!(std::fs::read_to_string(&profile)
        .unwrap()
        .contains("[airlock]"));

    // The metadata service comes back: the agent verifies the stored state is this instance's.
    let addr = imds_url.trim_start_matches("http://").to_owned();
    let _back = ImdsServer::start(&addr, instance_data("i-0reboot", None), false)
        .await
        .unwrap();
    status_once("the stored state to be verified", &state_dir, |v| {
        v["verified"] == true
    })
    .await;
    assert_eq!(served(&state_dir, LONG).await.2, body);
    agent.stop();
    assert_private(&state_dir);
    let logs = format!(
        "{}{}",
        std::fs::read_to_string(tmp.path().join("agent-1.log")).unwrap(),
        log
    );
    assert_no_secret(&logs, &body);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_never_reads_metadata_without_a_token_unless_allowed() {
    let user_data = build_user_data(&temporary_payload("dep-v1"), None).unwrap();
    // Token-less reads are refused by the test server, as by EC2 with IMDSv2 required.
    let strict = ImdsServer::start(
        "127.0.0.1:0",
        instance_data("i-0strict", Some(user_data.clone())),
        false,
    )
    .await
    .unwrap();
    let (status, _) = get_credentials(
        &format!("{}/latest/meta-data/instance-id", strict.url()),
        None,
    )
    .await;
    assert_eq!(status, 401);

    // A service that hands out no tokens: the agent refuses it, writes nothing...
    let v1_only =
        ImdsServer::start_without_tokens("127.0.0.1:0", instance_data("i-0v1", Some(user_data)))
            .await
            .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let state_dir = tmp.path().join("state");
    let profile = tmp.path().join("credentials");
    let base = vec![
        "--once".to_owned(),
        "--state-dir".to_owned(),
        s(&state_dir).to_owned(),
        "--imds-endpoint".to_owned(),
        v1_only.url(),
        "--profile-file".to_owned(),
        s(&profile).to_owned(),
        "--imds-wait".to_owned(),
        "2".to_owned(),
    ];
    let out = agent_off_runtime(&base).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("IMDSv1") && err.contains("--imds-v1"), "{err}");
    assert_eq!(
        v1_only.stats().tokenless_reads,
        0,
        "no read was tried without a token"
    );
    assert!(!state_dir.exists() && !profile.exists());

    // ...and uses it only with --imds-v1.
    let mut args = base;
    args.push("--imds-v1".to_owned());
    let out = agent_off_runtime(&args).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(v1_only.stats().tokenless_reads > 0);
    assert!(state_dir.join("state.json").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_user_data_is_refused_with_a_clear_error_and_nothing_written() {
    let good =
        build_user_data(&temporary_payload("dep-bad"), Some(b"#!/bin/sh\necho hi\n")).unwrap();
    let truncated = good[..good.len() * 2 / 3].to_vec();
    let mut random = vec![0u8; 600];
    for (i, b) in random.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(151).wrapping_add(7) ^ 0x5a;
    }
    let wrong_version =
        br#"{"airlock_payload":3,"deployment_id":"d","region":"r","credentials":{}}"#.to_vec();
    let cases: Vec<(&str, Option<Vec<u8>>, &str)> = vec![
        (
            "random bytes",
            Some(random),
            "no Airlock payload in the user data",
        ),
        (
            "a wrong version",
            Some(wrong_version),
            "version 3, this build reads only version 1",
        ),
        (
            "a truncated MIME document",
            Some(truncated),
            "the user data cannot be used",
        ),
        ("no user data", None, "has no user data"),
    ];
    for (what, user_data, needle) in cases {
        let imds = ImdsServer::start("127.0.0.1:0", instance_data("i-0bad", user_data), false)
            .await
            .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let state_dir = tmp.path().join("state");
        let profile = tmp.path().join("credentials");
        for once in [true, false] {
            let mut args = vec![
                "--state-dir".to_owned(),
                s(&state_dir).to_owned(),
                "--imds-endpoint".to_owned(),
                imds.url(),
                "--profile-file".to_owned(),
                s(&profile).to_owned(),
                "--listen".to_owned(),
                "127.0.0.1:0".to_owned(),
            ];
            if once {
                args.push("--once".to_owned());
            }
            let out = agent_off_runtime(&args).await;
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(1), "{what} (once: {once}): {err}");
            assert!(err.contains(needle), "{what}: {err}");
            assert!(err.contains("nothing was written"), "{what}: {err}");
            assert!(!state_dir.exists(), "{what}: the state dir was created");
            assert!(!profile.exists(), "{what}: the profile was written");
            assert!(
                !err.contains(SECRET_ACCESS_KEY) && !err.contains(TOKEN),
                "{err}"
            );
        }
    }
}

/// `date -u` shifted by `minutes`, RFC 3339 (chrono is not a dependency of this crate).
fn utc_in(minutes: i64) -> String {
    let out = std::process::Command::new("date")
        .args([
            "-u",
            "-d",
            &format!("{minutes} minutes"),
            "+%Y-%m-%dT%H:%M:%SZ",
        ])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_refresh_keeps_serving_the_last_good_credentials_until_they_expire() {
    // Temporary credentials that expire in three minutes, and a refresh URL where nothing
    // answers (the console's refresh endpoint is issue 7).
    let dead = format!("http://127.0.0.1:{}/v1/refresh", free_port());
    let json = format!(
        r#"{{"airlock_payload":1,"deployment_id":"dep-refresh","region":"{REGION}","refresh_url":"{dead}","credentials":{{"access_key_id":"ASIATESTTEMPORARY02","secret_access_key":"{SECRET_ACCESS_KEY}","session_token":"{TOKEN}","expiration":"{}"}}}}"#,
        utc_in(3)
    );
    let user_data = build_user_data(&find_payload(json.as_bytes()).unwrap(), None).unwrap();
    let imds = ImdsServer::start(
        "127.0.0.1:0",
        instance_data("i-0refresh", Some(user_data)),
        false,
    )
    .await
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let state_dir = tmp.path().join("state");
    let args = [
        "agent".to_owned(),
        "--state-dir".to_owned(),
        s(&state_dir).to_owned(),
        "--imds-endpoint".to_owned(),
        imds.url(),
        "--listen".to_owned(),
        "127.0.0.1:0".to_owned(),
        "--no-profile".to_owned(),
    ];
    let agent = Proc::spawn(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &tmp.path().join("agent.log"),
        &[],
    );
    let (_, _, body) = served(&state_dir, LONG).await;
    assert_eq!(body["AccessKeyId"], "ASIATESTTEMPORARY02");
    let status = status_once("the refresh to fail", &state_dir, |v| {
        v["refresh"] == "failing"
    })
    .await;
    let message = status["refresh_message"].as_str().unwrap();
    assert!(
        message.contains("serving the last good credentials until"),
        "{message}"
    );
    // Still served after the failure.
    let (_, _, again) = served(&state_dir, LONG).await;
    assert_eq!(again, body);
    let log = agent.log_text();
    assert!(log.contains("credential refresh failed"), "{log}");
    assert_no_secret(&log, &body);
}

#[test]
fn unusable_flags_are_usage_errors_before_anything_is_touched() {
    let tmp = tempfile::tempdir().unwrap();
    let state_dir = tmp.path().join("state");
    for bad in [
        &["--listen", "0.0.0.0:9911"][..],
        &["--imds-token-ttl", "0"],
        &["--session-duration", "60"],
        &["--lock-imds", "--imds-endpoint", "http://127.0.0.1:1"],
    ] {
        let mut args = vec![
            "--state-dir",
            s(&state_dir),
            "--imds-endpoint",
            "http://127.0.0.1:1",
        ];
        args.extend_from_slice(bad);
        let out = agent_once(&args);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", stderr(&out));
        assert!(!state_dir.exists());
    }
}

/// A TCP listener that counts the connections it gets and keeps what each sent first, then
/// answers 502: a stand-in for a console or a proxy, to see who a refresh reaches.
struct Recorder {
    port: u16,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    async fn start() -> Recorder {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut buf = vec![0u8; 4096];
                let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .unwrap_or(0);
                record
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                let _ = stream
                    .write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            }
        });
        Recorder { port, seen, task }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What each connection sent first.
    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// User data whose payload holds temporary credentials valid for `minutes`, a refresh URL and
/// the launch's enrolment secret, which the agent spends at first boot.
fn enrolling_user_data(deployment: &str, refresh_url: &str, minutes: i64) -> Vec<u8> {
    let json = format!(
        r#"{{"airlock_payload":1,"deployment_id":"{deployment}","region":"{REGION}","refresh_url":"{refresh_url}","refresh_secret":"{ENROLMENT_SECRET}","credentials":{{"access_key_id":"ASIATESTTEMPORARY03","secret_access_key":"{SECRET_ACCESS_KEY}","session_token":"{TOKEN}","expiration":"{}"}}}}"#,
        utc_in(minutes)
    );
    build_user_data(&find_payload(json.as_bytes()).unwrap(), None).unwrap()
}

const ENROLMENT_SECRET: &str = "rs1-enrolment-secret-4b7f0c2e9a";

/// `agent --once` against `imds` with a fresh state dir, `extra` flags and `env`; (exit code,
/// stderr).
async fn boot_once(
    imds: &ImdsServer,
    tmp: &Path,
    name: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (Option<i32>, String) {
    let state_dir = tmp.join(name);
    let mut args = vec![
        "--once".to_owned(),
        "--state-dir".to_owned(),
        s(&state_dir).to_owned(),
        "--imds-endpoint".to_owned(),
        imds.url(),
        "--no-profile".to_owned(),
    ];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        agent_once_with(&args, &env)
    })
    .await
    .unwrap();
    (out.status.code(), stderr(&out))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_proxy_set_in_the_environment_by_a_compromised_image_never_sees_a_refresh() {
    let console = Recorder::start().await;
    let hostile = Recorder::start().await;
    let chosen = Recorder::start().await;
    let refresh_url = format!("{}/v1/refresh", console.url());
    let user_data = enrolling_user_data("dep-proxy", &refresh_url, 60);
    let imds = ImdsServer::start(
        "127.0.0.1:0",
        instance_data("i-0proxy", Some(user_data)),
        false,
    )
    .await
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let proxy = hostile.url();
    let env: Vec<(&str, &str)> = [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ]
    .into_iter()
    .map(|k| (k, proxy.as_str()))
    .collect();

    // The enrolment goes straight to the console; the environment's proxy gets nothing.
    let (code, err) = boot_once(&imds, tmp.path(), "direct", &[], &env).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("cannot enrol with the console yet"), "{err}");
    assert!(
        hostile.seen().is_empty(),
        "the proxy saw {:?}",
        hostile.seen()
    );
    assert_eq!(console.seen().len(), 1, "{err}");
    assert!(console.seen()[0].starts_with("POST /v1/refresh "));

    // A proxy the operator names is used, and only it.
    let (code, err) = boot_once(
        &imds,
        tmp.path(),
        "chosen",
        &["--refresh-proxy", &chosen.url()],
        &env,
    )
    .await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(chosen.seen().len(), 1, "{err}");
    assert!(
        chosen.seen()[0].starts_with(&format!("POST {refresh_url} ")),
        "{:?}",
        chosen.seen()
    );
    assert!(
        hostile.seen().is_empty(),
        "the proxy saw {:?}",
        hostile.seen()
    );
    assert_eq!(console.seen().len(), 1, "only the chosen proxy was asked");
    assert_no_secret(&err, &serde_json::Value::Null);
}

#[tokio::test(flavor = "multi_thread")]
async fn anyone_on_the_network_reading_refresh_traffic_gets_nothing_from_an_http_url() {
    // 0.0.0.0 is not loopback, so the URL counts as a network one; a connection to it lands on
    // this machine all the same, where the recorder sees whether anything was sent.
    let console = Recorder::start().await;
    let refresh_url = format!("http://0.0.0.0:{}/v1/refresh", console.port);
    let user_data = enrolling_user_data("dep-clear", &refresh_url, 3);
    let imds = ImdsServer::start(
        "127.0.0.1:0",
        instance_data("i-0clear", Some(user_data)),
        false,
    )
    .await
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();

    // The long-running agent neither enrols nor refreshes over it, and says why in its log and
    // its status, as for any refresh failure.
    let state_dir = tmp.path().join("serve");
    let args = [
        "agent",
        "--state-dir",
        s(&state_dir),
        "--imds-endpoint",
        &imds.url(),
        "--listen",
        "127.0.0.1:0",
        "--no-profile",
    ];
    let mut agent = Proc::spawn(&args, &tmp.path().join("agent.log"), &[]);
    served(&state_dir, LONG).await;
    let status = status_once("the refresh to fail", &state_dir, |v| {
        v["refresh"] == "failing"
    })
    .await;
    let message = status["refresh_message"].as_str().unwrap();
    assert!(
        message.contains("http:// to 0.0.0.0") && message.contains("--insecure-http"),
        "{message}"
    );
    agent.stop();
    let log = agent.log_text();
    assert!(log.contains("cannot enrol with the console yet"), "{log}");
    assert!(log.contains("credential refresh failed"), "{log}");
    assert!(
        console.seen().is_empty(),
        "the refresh secret was sent in clear text: {:?}",
        console.seen()
    );

    // With --insecure-http the operator takes the risk: a warning, and the request goes out.
    let (code, err) = boot_once(&imds, tmp.path(), "insecure", &["--insecure-http"], &[]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("--insecure-http: an http:// refresh URL"),
        "{err}"
    );
    assert_eq!(console.seen().len(), 1, "{err}");
    assert_no_secret(&format!("{log}{err}"), &serde_json::Value::Null);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_trusts_a_console_with_a_private_ca_only_when_given_it() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let tmp = tempfile::tempdir().unwrap();
    let console = Console::start_tls(&[]);
    console.login_with_account(&moto);
    let dep = console.json(&deploy_args(&net, &["--wait"]));
    let id = dep["instances"][0]["instance_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ip = described(&ec2, &id)
        .await
        .private_ip_address()
        .unwrap()
        .to_owned();
    let user_data = user_data_of(&ec2, &id).await;
    let payload = find_payload(&user_data).unwrap();
    assert!(
        payload
            .refresh_url
            .as_deref()
            .unwrap()
            .starts_with("https://127.0.0.1:"),
        "{:?}",
        payload.refresh_url
    );
    let imds = ImdsServer::start(
        "127.0.0.1:0",
        InstanceData {
            local_ipv4: Some(ip),
            ..instance_data(&id, Some(user_data))
        },
        false,
    )
    .await
    .unwrap();

    // Without the authority the console's certificate is not trusted: no enrolment.
    let (code, err) = boot_once(&imds, tmp.path(), "untrusted", &[], &[]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("cannot enrol with the console yet"), "{err}");
    assert!(!err.contains("enrolled with the console"), "{err}");

    // With the global --console-ca the refresh client trusts it, and the agent enrols.
    let ca = console.ca.as_deref().unwrap().to_str().unwrap();
    let (code, err) = boot_once(&imds, tmp.path(), "trusted", &["--console-ca", ca], &[]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("enrolled with the console"), "{err}");
    assert_no_secret(&err, &serde_json::Value::Null);
}

/// A stand-in for `iptables`/`ip6tables` (the real ones need root and a kernel to change):
/// keeps its rules, one `CHAIN spec` per line, in `<itself>.rules`, and implements `-C`, `-A`
/// and `-I CHAIN 1` on them.
const FAKE_IPTABLES: &str = r#"#!/bin/sh
rules="$0.rules"
touch "$rules"
[ "$1" = "-w" ] && shift
op=$1; chain=$2; shift 2
case $op in
  -C) grep -qxF -- "$chain $*" "$rules" ;;
  -A) echo "$chain $*" >> "$rules" ;;
  -I) shift; { echo "$chain $*"; cat "$rules"; } > "$rules.new" && mv "$rules.new" "$rules" ;;
  *) echo "fake iptables: $op is not implemented" >&2; exit 2 ;;
esac
"#;

/// The command the packaged unit runs before the agent, for the binary under test.
fn unit_exec_start_pre() -> Vec<String> {
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/airlock-agent.service"),
    )
    .unwrap();
    let lines: Vec<&str> = unit.lines().collect();
    let pre = lines
        .iter()
        .position(|l| l.starts_with("ExecStartPre="))
        .expect("the unit has no ExecStartPre");
    let start = lines
        .iter()
        .position(|l| l.starts_with("ExecStart="))
        .unwrap();
    assert!(pre < start);
    let command = lines[pre]
        .trim_start_matches("ExecStartPre=")
        .trim_start_matches(['+', '-']);
    let mut words = command.split_whitespace().map(str::to_owned);
    assert_eq!(words.next().as_deref(), Some("/usr/local/bin/airlock"));
    words.collect()
}

/// A directory holding the fake `iptables` and `ip6tables`, for `PATH`.
fn fake_iptables(dir: &Path) -> std::path::PathBuf {
    let tools = dir.join("sbin");
    std::fs::create_dir(&tools).unwrap();
    for tool in ["iptables", "ip6tables"] {
        let path = tools.join(tool);
        std::fs::write(&path, FAKE_IPTABLES).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    tools
}

/// With IPv6, the `v6` rules reject routed traffic and every user but `uid`; without it, the
/// agent's log (`err`) says why there are none.
fn assert_ipv6_locked(ipv6: bool, v6: &str, uid: u32, err: &str) {
    if ipv6 {
        assert!(v6.contains("FORWARD -d fd00:ec2::254/128 "), "{v6}");
        assert!(
            v6.contains(&format!(
                "OUTPUT -d fd00:ec2::254/128 -p tcp -m owner ! --uid-owner {uid} "
            )),
            "{v6}"
        );
    } else {
        assert!(err.contains("IPv6 is disabled"), "{err}");
    }
}

#[test]
fn a_local_process_or_container_cannot_reach_the_metadata_service_before_the_agent_starts() {
    let args = unit_exec_start_pre();
    assert_eq!(args, ["agent", "lock-imds"]);
    let tmp = tempfile::tempdir().unwrap();
    let tools = fake_iptables(tmp.path());
    let path = format!("{}:/usr/bin:/bin", tools.display());
    let run = || {
        std::process::Command::new(airlock_bin())
            .args(&args)
            .env("PATH", &path)
            .env_remove("AWS_EC2_METADATA_SERVICE_ENDPOINT")
            .output()
            .unwrap()
    };
    let rules = |tool: &str| {
        std::fs::read_to_string(tools.join(format!("{tool}.rules"))).unwrap_or_default()
    };
    let uid = {
        use std::os::unix::fs::MetadataExt as _;
        std::fs::metadata("/proc/self").unwrap().uid()
    };
    let ipv6 = Path::new("/proc/net/if_inet6").exists();

    let out = run();
    assert!(out.status.success(), "{}", stderr(&out));
    let v4 = rules("iptables");
    assert_eq!(
        v4.lines().collect::<Vec<_>>(),
        [
            // Routed traffic (containers, VMs): rejected, ahead of any rule that accepts it.
            "FORWARD -d 169.254.169.254/32 -m comment --comment airlock: no metadata service for routed traffic -j REJECT",
            // Local processes: only the agent's user.
            &format!("OUTPUT -d 169.254.169.254/32 -p tcp -m owner ! --uid-owner {uid} -m comment --comment airlock: metadata service for the agent only -j REJECT"),
        ],
        "{}",
        stderr(&out)
    );
    assert_ipv6_locked(ipv6, &rules("ip6tables"), uid, &stderr(&out));

    // Every boot runs it again: nothing is added twice.
    let out = run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(rules("iptables"), v4);
    assert!(stderr(&out).contains("metadata lock already in place"));

    // No ip6tables: a warning, and IPv4 stays locked.
    std::fs::remove_file(tools.join("ip6tables")).unwrap();
    let out = run();
    assert!(out.status.success(), "{}", stderr(&out));
    if ipv6 {
        assert!(
            stderr(&out).contains("ip6tables is not installed"),
            "{}",
            stderr(&out)
        );
    }

    // No iptables at all: the lock cannot be made, and the unit must not go on.
    std::fs::remove_file(tools.join("iptables")).unwrap();
    let out = run();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot run iptables"),
        "{}",
        stderr(&out)
    );
}
