//! Run command against moto, with agents booted by the local fleet: results and outputs of a
//! tag group, max-concurrency and max-errors, undeliverable instances, who may send to which
//! instance, and what an agent token lets its holder do.

use crate::common::fleet::{eventually, Fleet};
use crate::common::*;
use serde_json::{json, Value};
use std::time::Duration;

const GROUP: &str = "tag:Patch Group=Linux Servers";

pub fn instances_of(deployment: &Value) -> Vec<String> {
    let mut ids: Vec<String> = deployment["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["instance_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// Waits until every instance's agent holds an agent token (it enrolled with the console).
pub async fn agents_ready(fleet: &Fleet, ids: &[String]) {
    for id in ids {
        let token = fleet.state_dir(id).join("agent-token");
        eventually(
            &format!("the agent of {id} to get its agent token"),
            Duration::from_secs(60),
            || token.exists().then_some(()),
        )
        .await;
    }
}

fn result_of<'a>(command: &'a Value, id: &str) -> &'a Value {
    command["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["instance_id"] == id)
        .unwrap_or_else(|| panic!("no result for {id}: {command}"))
}

/// `command run ... --wait --output json`, which may exit 1 (a failed command): its JSON.
fn run_command(cli: &dyn Fn(&[&str]) -> std::process::Output, args: &[&str]) -> (bool, Value) {
    let mut all = vec!["command", "run", "--account", "dev"];
    all.extend_from_slice(args);
    let out = cli(&all);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{all:?} printed non-JSON ({e}): {text} {}", stderr(&out)));
    (out.status.success(), value)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_on_a_tag_group_runs_one_at_a_time_and_stops_at_the_first_error() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);
    let tmp = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(&moto.url, tmp.path());
    let group = console.json(&deploy_args(
        &net,
        &[
            "--count",
            "2",
            "--credentials",
            "bootstrap",
            "--tag",
            "Patch Group=Linux Servers",
            "--wait",
        ],
    ));
    let ids = instances_of(&group);
    agents_ready(&fleet, &ids).await;
    let admin = |args: &[&str]| console.cli(args);

    // Both instances answer, one after the other.
    let (ok, done) = run_command(
        &admin,
        &[
            "--target",
            GROUP,
            "--max-concurrency",
            "1",
            "--timeout",
            "30",
            "--wait",
            "--output",
            "json",
            "--",
            "sh",
            "-c",
            "echo patched; echo warning >&2; sleep 1",
        ],
    );
    assert!(ok, "{done}");
    assert_eq!(done["status"], "success");
    for id in &ids {
        let r = result_of(&done, id);
        assert_eq!(r["status"], "success", "{r}");
        assert_eq!(r["exit_code"], 0);
        assert_eq!(r["output"], "patched\n");
        assert_eq!(r["error_output"], "warning\n");
    }
    let (first, second) = (result_of(&done, &ids[0]), result_of(&done, &ids[1]));
    assert!(
        second["started_at"].as_str().unwrap() >= first["ended_at"].as_str().unwrap(),
        "max-concurrency 1, yet both ran at once: {done}"
    );

    // The first failure is one more error than max-errors 0 allows: the other is never sent.
    let (ok, failed) = run_command(
        &admin,
        &[
            "--target",
            GROUP,
            "--max-concurrency",
            "1",
            "--max-errors",
            "0",
            "--timeout",
            "30",
            "--wait",
            "--output",
            "json",
            "--",
            "sh",
            "-c",
            "echo broken; exit 7",
        ],
    );
    assert!(!ok, "a failed command exits 1");
    assert_eq!(failed["status"], "failed");
    let first = result_of(&failed, &ids[0]);
    assert_eq!(
        (&first["status"], &first["exit_code"]),
        (&json!("failed"), &json!(7))
    );
    assert_eq!(first["output"], "broken\n");
    assert_eq!(result_of(&failed, &ids[1])["status"], "cancelled");

    // `command show` and `command list` tell the same story.
    let shown = console.json(&["command", "show", failed["id"].as_str().unwrap()]);
    assert_eq!(shown["results"], failed["results"]);
    let listed = console.json(&["command", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 2);

    // An instance whose agent never fetches (this one has no Airlock payload at all) ends
    // undeliverable once the timeout has passed, and the command says it failed.
    let (lonely, _) = launch_tagged(&ec2, &net, &[("role", "lonely")]).await;
    let (ok, undelivered) = run_command(
        &admin,
        &[
            "--target",
            "tag:role=lonely",
            "--timeout",
            "2",
            "--wait",
            "--output",
            "json",
            "--",
            "true",
        ],
    );
    assert!(!ok);
    assert_eq!(result_of(&undelivered, &lonely)["status"], "undeliverable");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_without_send_command_on_prod_is_refused_for_it_and_allowed_for_the_others() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);
    let tmp = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(&moto.url, tmp.path());
    let dev = console.json(&deploy_args(
        &net,
        &[
            "--credentials",
            "bootstrap",
            "--tag",
            "env=dev",
            "--tag",
            "Patch Group=Linux Servers",
            "--wait",
        ],
    ));
    let prod = console.json(&deploy_args(
        &net,
        &[
            "--credentials",
            "bootstrap",
            "--tag",
            "env=prod",
            "--tag",
            "Patch Group=Linux Servers",
            "--wait",
        ],
    ));
    let (dev_id, prod_id) = (instances_of(&dev).remove(0), instances_of(&prod).remove(0));
    agents_ready(&fleet, &[dev_id.clone(), prod_id.clone()]).await;

    let operator = console.add_user(
        "operator",
        &[json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["airlock:UseAccount", "airlock:GetCommand",
                "airlock:ListCommands", "airlock:ReadCommandOutput"], "Resource": "*"},
            {"Effect": "Allow", "Action": "airlock:SendCommand", "Resource": "*",
             "Condition": {"StringNotEquals": {"ec2:ResourceTag/env": "prod"}}}
        ]})],
    );
    let as_operator = |args: &[&str]| operator.cli(args);

    // Refused for the prod instance, whether named or reached through a tag group.
    for target in [
        vec!["--instance", prod_id.as_str()],
        vec!["--target", GROUP],
    ] {
        let mut args = vec!["command", "run", "--account", "dev"];
        args.extend(target);
        args.extend(["--timeout", "10", "--", "hostname"]);
        let out = operator.cli(&args);
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(
            err.contains("airlock:SendCommand") && err.contains(&prod_id),
            "{err}"
        );
    }
    // Nothing was recorded by the refused sends.
    assert!(console
        .json(&["command", "list"])
        .as_array()
        .unwrap()
        .is_empty());

    // Allowed for the dev instance.
    let (ok, done) = run_command(
        &as_operator,
        &[
            "--target",
            "tag:env=dev",
            "--timeout",
            "30",
            "--wait",
            "--output",
            "json",
            "--",
            "echo",
            "hi",
        ],
    );
    assert!(ok, "{done}");
    assert_eq!(result_of(&done, &dev_id)["output"], "hi\n");

    // A user who may read commands but not this instance's output sees its status, not what it
    // printed.
    let auditor = console.add_user(
        "auditor",
        &[json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["airlock:GetCommand"], "Resource": "*"}
        ]})],
    );
    let seen = auditor.json(&["command", "show", done["id"].as_str().unwrap()]);
    let r = result_of(&seen, &dev_id);
    assert_eq!(r["status"], "success");
    assert!(r["output"].is_null(), "{r}");
}

/// A raw request to the agent endpoints from `source`, with `token`.
async fn agent_call(
    console: &Console,
    source: &str,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, String) {
    let client = reqwest::Client::builder()
        .local_address(source.parse::<std::net::IpAddr>().unwrap())
        .no_proxy()
        .build()
        .unwrap();
    let mut req = client
        .request(method, format!("http://127.0.0.1:{}{path}", console.port))
        .bearer_auth(token)
        .timeout(Duration::from_secs(30));
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.unwrap();
    (
        resp.status().as_u16(),
        resp.text().await.unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_token_works_only_for_its_instance_from_its_address() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);
    let tmp = tempfile::tempdir().unwrap();
    let fleet = Fleet::start_with(&moto.url, tmp.path(), &["--no-commands"]);
    let dep = console.json(&deploy_args(
        &net,
        &[
            "--count",
            "2",
            "--credentials",
            "bootstrap",
            "--tag",
            "Patch Group=Linux Servers",
            "--wait",
        ],
    ));
    let ids = instances_of(&dep);
    agents_ready(&fleet, &ids).await;
    let token_of =
        |id: &str| std::fs::read_to_string(fleet.state_dir(id).join("agent-token")).unwrap();
    let ip_of = |id: &str| {
        fleet.entry(id).unwrap()["private_ip"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (a, b) = (&ids[0], &ids[1]);
    let next = "/v1/agent/commands/next?wait=0";
    use reqwest::Method;

    // Anyone on the network holding a copy of the token, from another address: refused.
    let (status, body) =
        agent_call(&console, "127.0.0.1", &token_of(a), Method::GET, next, None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("not from the instance's address"), "{body}");
    // A made-up token: refused.
    let (status, _) = agent_call(&console, &ip_of(a), "alt_madeup", Method::GET, next, None).await;
    assert_eq!(status, 401);

    // The agents here do not fetch (--no-commands): a command waits for them.
    let sent = console.ok(&[
        "command",
        "run",
        "--account",
        "dev",
        "--target",
        GROUP,
        "--max-concurrency",
        "2",
        "--timeout",
        "60",
        "--output",
        "json",
        "--",
        "id",
    ]);
    let sent: Value = serde_json::from_str(&sent).unwrap();
    let id = sent["id"].as_str().unwrap().to_owned();
    // Instance A's token fetches A's part, never B's.
    let (status, body) =
        agent_call(&console, &ip_of(a), &token_of(a), Method::GET, next, None).await;
    assert_eq!(status, 200, "{body}");
    let work: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(work["command_id"], id.as_str());
    let (status, _) = agent_call(&console, &ip_of(a), &token_of(a), Method::GET, next, None).await;
    assert_eq!(status, 204, "A's one part was fetched once");
    // A process holding A's token cannot report for B (B's part is not A's to report).
    let report = json!({"outcome": "exited", "exit_code": 0, "output": "forged"});
    let (status, body) = agent_call(
        &console,
        &ip_of(a),
        &token_of(a),
        Method::POST,
        &format!("/v1/agent/commands/{id}"),
        Some(report.clone()),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = agent_call(
        &console,
        &ip_of(a),
        &token_of(a),
        Method::POST,
        &format!("/v1/agent/commands/{id}"),
        Some(report),
    )
    .await;
    assert_eq!(status, 409, "a second report of one part: {body}");
    let shown = console.json(&["command", "show", &id]);
    assert_eq!(result_of(&shown, a)["status"], "success");
    assert_eq!(result_of(&shown, b)["status"], "pending");

    // Output beyond the limit is cut and marked, whatever the agent sends.
    let (status, _) = agent_call(&console, &ip_of(b), &token_of(b), Method::GET, next, None).await;
    assert_eq!(status, 200);
    let flood = "x".repeat(30_000);
    let (status, body) = agent_call(
        &console,
        &ip_of(b),
        &token_of(b),
        Method::POST,
        &format!("/v1/agent/commands/{id}"),
        Some(json!({"outcome": "exited", "exit_code": 1, "output": flood})),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let shown = console.json(&["command", "show", &id]);
    let rb = result_of(&shown, b);
    assert_eq!(rb["output"].as_str().unwrap().len(), 24_000);
    assert_eq!(rb["truncated"], true);

    // Revoking the deployment revokes its agents' tokens.
    console.ok(&["deployment", "revoke", dep["id"].as_str().unwrap()]);
    let (status, _) = agent_call(&console, &ip_of(a), &token_of(a), Method::GET, next, None).await;
    assert_eq!(status, 401);

    // No token is ever written to the audit log or shown by the console.
    let records = serde_json::to_string(&console.audit_records(&[])).unwrap();
    for id in &ids {
        assert!(
            !records.contains(token_of(id).trim()),
            "an agent token is in the audit log"
        );
    }
}
