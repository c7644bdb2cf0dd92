//! Credential mode `proxy` end to end: an instance of the local fleet holds no AWS credentials,
//! only an Airlock access key its agent got from the console, and reaches EC2 with the real
//! `aws` CLI through the console's EC2 endpoint with nothing but the agent's `credentials.env`.
//!
//! In the local fleet every instance shares the host's loopback, so the `aws` process is made
//! to leave from the instance's own address (as every process on a real instance does) by
//! binding its connections' source address; binding another address plays the thief.

use super::{address_and_tags, elsewhere, first_instance, payload_of};
use crate::common::fleet::{served, Fleet};
use crate::common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

/// Runs the `aws` CLI from `source` with botocore's connections bound to that address.
const BOUND_AWS: &str = r#"
import sys
import urllib3.util.connection as connection
source = sys.argv[1]
create = connection.create_connection
def bound(address, *args, **kwargs):
    kwargs["source_address"] = (source, 0)
    return create(address, *args, **kwargs)
connection.create_connection = bound
from awscli.clidriver import main
sys.argv = ["aws"] + sys.argv[2:]
sys.exit(main())
"#;

/// The variables of the agent's `credentials.env`.
fn env_file(state_dir: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(state_dir.join("credentials.env")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// `aws ARGS --output json` from `source` with only `env` (and no files, no metadata service).
fn aws(env: &BTreeMap<String, String>, source: &str, args: &[&str]) -> Output {
    let python = std::env::var("AIRLOCK_PYTHON")
        .expect("AIRLOCK_PYTHON is not set: run the tests with scripts/test");
    let home = tempfile::tempdir().unwrap();
    std::process::Command::new(python)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_MAX_ATTEMPTS", "1")
        .envs(env)
        .args(["-c", BOUND_AWS, source])
        .args(args)
        .args(["--output", "json"])
        .output()
        .unwrap()
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// One proxy-mode instance booted by the local fleet, its agent serving its key.
struct ProxyInstance {
    moto: Moto,
    net: TestNet,
    console: Console,
    fleet: Fleet,
    _tmp: tempfile::TempDir,
    deployment: String,
    instance: String,
    ip: String,
    env: BTreeMap<String, String>,
}

impl ProxyInstance {
    async fn start() -> ProxyInstance {
        let moto = Moto::start();
        let ec2 = moto.ec2().await;
        let net = loopback_net(&ec2).await;
        let console = Console::start();
        console.login_with_account(&moto);
        let tmp = tempfile::tempdir().unwrap();
        let fleet = Fleet::start(&moto.url, tmp.path());
        let dep = console.json(&deploy_args(&net, &["--credentials", "proxy", "--wait"]));
        assert_eq!(dep["spec"]["credentials"], "proxy", "{dep}");
        let instance = first_instance(&dep);
        let (ip, _) = address_and_tags(&ec2, &instance).await;
        let (_, _, body) = served(&fleet.state_dir(&instance), Duration::from_secs(60)).await;
        assert!(
            body["AccessKeyId"].as_str().unwrap().starts_with("ALAK"),
            "{body}"
        );
        let env = env_file(&fleet.state_dir(&instance));
        ProxyInstance {
            moto,
            net,
            console,
            fleet,
            _tmp: tmp,
            deployment: dep["id"].as_str().unwrap().to_owned(),
            instance,
            ip,
            env,
        }
    }

    /// `aws ARGS` on the instance.
    fn aws(&self, args: &[&str]) -> Output {
        aws(&self.env, &self.ip, args)
    }

    fn aws_json(&self, args: &[&str]) -> Value {
        let out = self.aws(args);
        assert!(out.status.success(), "aws {args:?}: {}", stderr_of(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn audit(&self) -> Vec<Value> {
        self.console.audit_records(&[])
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_proxy_instance_runs_the_aws_cli_with_only_the_agent_s_credentials_env() {
    let p = ProxyInstance::start().await;
    // The agent points local programs at the console, in the instance's region.
    assert_eq!(
        p.env["AWS_ENDPOINT_URL_EC2"],
        format!("{}/ec2/dev", p.console.url)
    );
    assert_eq!(
        p.env["AWS_ENDPOINT_URL_STS"],
        format!("{}/sts", p.console.url)
    );
    assert_eq!(p.env["AWS_REGION"], REGION);

    let described = p.aws_json(&["ec2", "describe-instances"]);
    let ids: Vec<&str> = described["Reservations"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["Instances"].as_array().unwrap())
        .filter_map(|i| i["InstanceId"].as_str())
        .collect();
    assert!(ids.contains(&p.instance.as_str()), "{described}");
    let me = p.aws_json(&["sts", "get-caller-identity"]);
    assert_eq!(me["Arn"], "arn:airlock:console:::user/admin", "{me}");

    // The call went through the console's policies and audit, as the deployer.
    let audit = p.audit();
    assert!(
        audit.iter().any(|r| r["action"] == "ec2:DescribeInstances"
            && r["user_name"] == "admin"
            && r["source_ip"] == p.ip.as_str()),
        "{audit:?}"
    );
    // No AWS key was ever on the instance: not in the state directory, not served.
    for (path, bytes) in files_under(&p.fleet.dir.join(&p.instance)) {
        assert!(
            !contains(&bytes, ACCESS_KEY_ID) && !contains(&bytes, SECRET_ACCESS_KEY),
            "{} holds the account's key",
            path.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_copied_user_data_is_worth_nothing_after_enrolment() {
    let p = ProxyInstance::start().await;
    let ec2 = p.moto.ec2().await;
    // The thief reads the user data (ec2:DescribeInstanceAttribute, or a process on the
    // instance): no AWS key, no Airlock key, only a secret the agent has already spent.
    let (payload, text) = payload_of(&ec2, &p.instance).await;
    assert!(payload.credentials.is_none());
    assert!(payload.proxy);
    assert!(!text.contains(ACCESS_KEY_ID) && !text.contains(SECRET_ACCESS_KEY));
    assert!(!text.contains("ALAK"), "an access key id in the user data");
    use airlock_payload::ExposeSecret;
    let secret = payload.refresh_secret.unwrap().expose_secret().to_owned();
    // (From the instance's own address, within two minutes of the exchange and until the agent
    // uses its next secret, the same presentation is a retry answered as before: that is the
    // instance.)
    let thief = elsewhere(&p.ip);
    let (status, body) = refresh(&p.console, thief, &p.deployment, &p.instance, &secret).await;
    assert_eq!(status, 403, "{body}");
    // The instance itself still works.
    p.aws_json(&["ec2", "describe-instances"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_key_used_from_another_address_is_refused() {
    let p = ProxyInstance::start().await;
    // The thief copied the key the agent serves (or its profile) and uses it elsewhere.
    for from in [elsewhere(&p.ip), "127.0.0.1"] {
        let out = aws(&p.env, from, &["ec2", "describe-instances"]);
        assert!(!out.status.success(), "the key worked from {from}");
        assert!(
            stderr_of(&out).contains("AuthFailure"),
            "{}",
            stderr_of(&out)
        );
    }
    let audit = p.audit();
    assert!(
        audit.iter().any(|r| r["action"] == "airlock:Authenticate"
            && r["outcome"] == "denied"
            && r["detail"]
                .as_str()
                .is_some_and(|d| d.contains("not from the instance's address"))),
        "{audit:?}"
    );
    // From the instance it still works.
    p.aws_json(&["ec2", "describe-instances"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_cannot_do_more_than_its_session_policy_through_the_endpoint() {
    let p = ProxyInstance::start().await;
    let ec2 = p.moto.ec2().await;
    // The deployer (admin) may do anything; the instance, whoever controls it, may act only on
    // what is tagged with its deployment.
    let other = p
        .console
        .json(&deploy_args(&p.net, &["--credentials", "none", "--wait"]));
    let other = first_instance(&other);
    let stderr = stderr_of(&p.aws(&["ec2", "terminate-instances", "--instance-ids", &other]));
    assert!(stderr.contains("UnauthorizedOperation"), "{stderr}");
    assert!(stderr.contains("session policy"), "{stderr}");
    assert_eq!(instance_state(&ec2, &other).await, "running");
    // Nothing in the session policy launches instances.
    let stderr = stderr_of(&p.aws(&[
        "ec2",
        "run-instances",
        "--image-id",
        &p.net.image_id,
        "--instance-type",
        "t3.micro",
        "--subnet-id",
        &p.net.subnet_id,
    ]));
    assert!(stderr.contains("UnauthorizedOperation"), "{stderr}");
    // Another account is out of reach, whatever the deployer may do there.
    let mut env = p.env.clone();
    env.insert(
        "AWS_ENDPOINT_URL_EC2".into(),
        format!("{}/ec2/prod", p.console.url),
    );
    let stderr = stderr_of(&aws(&env, &p.ip, &["ec2", "describe-instances"]));
    assert!(stderr.contains("UnauthorizedOperation"), "{stderr}");
    // Its own instance is its own: tagging it is within the policy.
    let out = p.aws(&[
        "ec2",
        "create-tags",
        "--resources",
        &p.instance,
        "--tags",
        "Key=role,Value=web",
    ]);
    assert!(out.status.success(), "{}", stderr_of(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_deployment_s_key_is_refused() {
    let p = ProxyInstance::start().await;
    p.aws_json(&["ec2", "describe-instances"]);
    // The thief holds a copy of the key; the operator revokes the deployment.
    let revoked = p.console.json(&["deployment", "revoke", &p.deployment]);
    assert_eq!(revoked["deleted_keys"], 1, "{revoked}");
    let out = p.aws(&["ec2", "describe-instances"]);
    assert!(!out.status.success(), "a revoked key worked");
    assert!(
        stderr_of(&out).contains("AuthFailure"),
        "{}",
        stderr_of(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn each_refresh_rotates_the_key_and_termination_ends_it() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);
    let tmp = tempfile::tempdir().unwrap();
    // Renew when 895 of 900 seconds are left: every few seconds.
    let fleet = Fleet::start_with(&moto.url, tmp.path(), &["--refresh-before", "895"]);
    let dep = console.json(&deploy_args(
        &net,
        &[
            "--credentials",
            "proxy",
            "--credentials-duration",
            "900",
            "--wait",
        ],
    ));
    let instance = first_instance(&dep);
    let (ip, _) = address_and_tags(&ec2, &instance).await;
    let state_dir = fleet.state_dir(&instance);
    let (_, _, first) = served(&state_dir, Duration::from_secs(60)).await;
    crate::common::fleet::eventually("a refresh by the agent", Duration::from_secs(60), || {
        fleet
            .agent_log(&instance)
            .contains("credentials refreshed")
            .then_some(())
    })
    .await;
    let (_, _, now) = served(&state_dir, Duration::from_secs(10)).await;
    assert_ne!(first["AccessKeyId"], now["AccessKeyId"], "not rotated");

    // Whoever kept the replaced key (from the endpoint, a log, a core dump) holds nothing, even
    // on the instance.
    let mut env = env_file(&state_dir);
    env.remove("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    env.remove("AWS_CONTAINER_AUTHORIZATION_TOKEN");
    env.insert(
        "AWS_ACCESS_KEY_ID".into(),
        first["AccessKeyId"].as_str().unwrap().into(),
    );
    env.insert(
        "AWS_SECRET_ACCESS_KEY".into(),
        first["SecretAccessKey"].as_str().unwrap().into(),
    );
    let stderr = stderr_of(&aws(&env, &ip, &["ec2", "describe-instances"]));
    assert!(stderr.contains("AuthFailure"), "{stderr}");

    // Terminated through the console, the instance's keys are deleted with its secrets: the
    // last key its agent stored (no refresh succeeds once it is not running) is refused.
    console.ok(&["instance", "terminate", &instance]);
    crate::common::fleet::eventually("the agent stopped", Duration::from_secs(60), || {
        fleet.entry(&instance).filter(|e| e["agent_pid"].is_null())
    })
    .await;
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(state_dir.join("state.json")).unwrap())
            .unwrap();
    let last = &state["payload"]["credentials"];
    for (name, field) in [
        ("AWS_ACCESS_KEY_ID", "access_key_id"),
        ("AWS_SECRET_ACCESS_KEY", "secret_access_key"),
    ] {
        env.insert(name.into(), last[field].as_str().unwrap().into());
    }
    let stderr = stderr_of(&aws(&env, &ip, &["ec2", "describe-instances"]));
    assert!(stderr.contains("AuthFailure"), "{stderr}");
}
