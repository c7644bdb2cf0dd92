//! Maintenance windows against moto, with agents booted by the local fleet: a window opens on
//! its schedule under the test clock, runs its tasks in order per instance, stops starting
//! tasks at the cutoff, and acts with its creator's permissions only.

use crate::commands::{agents_ready, instances_of};
use crate::common::fleet::{eventually, Fleet};
use crate::common::*;
use chrono::{DateTime, Duration as Span, Utc};
use serde_json::{json, Value};
use std::time::Duration;

fn executions(console: &Console, name: &str) -> Vec<Value> {
    console
        .json(&["maintenance-window", "executions", name])
        .as_array()
        .cloned()
        .unwrap()
}

fn task(execution: &Value, index: usize) -> &Value {
    &execution["tasks"][index]
}

/// A window on the patch group, a day apart, open 2 h with a 1 h cutoff: snapshots, a command
/// that takes 3 s, another command, a reboot.
fn create_patch_window(console: &Console, dir: &std::path::Path) {
    let first = dir.join("first.sh");
    std::fs::write(&first, "sleep 3; echo patched").unwrap();
    let second = dir.join("second.sh");
    std::fs::write(&second, "echo too late").unwrap();
    let created = console.json(&[
        "maintenance-window",
        "create",
        "patch",
        "--account",
        "dev",
        "--target",
        "tag:Patch Group=Linux Servers",
        "--schedule",
        "rate(1 day)",
        "--duration",
        "2h",
        "--cutoff",
        "1h",
        "--task-snapshot",
        "--task-command",
        first.to_str().unwrap(),
        "--task-command",
        second.to_str().unwrap(),
        "--task-reboot",
        "--max-concurrency",
        "2",
    ]);
    let kinds: Vec<&str> = created["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["snapshot", "command", "command", "reboot"]);
}

/// The execution snapshotted and patched every instance, started nothing after the cutoff, and
/// keeps the command's output behind `command show`.
fn assert_ran_until_the_cutoff(console: &Console, done: &Value, ids: &[String]) {
    assert_eq!(done["trigger"], "scheduled");
    assert_eq!(done["instance_ids"], json!(ids));
    // Snapshots of every instance's volumes, one result per instance.
    let snap = task(done, 0);
    assert_eq!(snap["state"], "succeeded", "{done}");
    for id in ids {
        let r = snap["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["instance_id"] == id.as_str())
            .unwrap();
        assert!(r["detail"].as_str().unwrap().contains("snap-"), "{r}");
    }
    // The command that started before the cutoff ran everywhere; its output stays behind
    // airlock:ReadCommandOutput, in `command show`.
    let patched = task(done, 1);
    assert_eq!(patched["state"], "succeeded", "{done}");
    for r in patched["results"].as_array().unwrap() {
        assert_eq!(
            (&r["status"], &r["exit_code"]),
            (&json!("success"), &json!(0))
        );
    }
    let command = console.json(&["command", "show", patched["command_id"].as_str().unwrap()]);
    assert_eq!(command["results"][0]["output"], "patched\n");
    assert_eq!(command["created_by"], "admin");
    // The tasks after the cutoff never started.
    for index in [2, 3] {
        let t = task(done, index);
        assert_eq!(t["state"], "skipped", "{t}");
        assert!(t["detail"].as_str().unwrap().contains("cutoff"), "{t}");
        assert!(t["results"].as_array().unwrap().is_empty());
    }
    assert_eq!(done["state"], "failed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_window_opens_on_schedule_runs_its_tasks_per_instance_and_honours_the_cutoff() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let dir = tempfile::tempdir().unwrap();
    let clock = dir.path().join("clock");
    let now = Utc::now();
    let set = |t: DateTime<Utc>| std::fs::write(&clock, t.to_rfc3339()).unwrap();
    set(now);
    let clock_flag = clock.to_string_lossy().to_string();
    let console = Console::start_with(&["--schedule-clock-file", &clock_flag]);
    console.login_with_account(&moto);
    let fleet = Fleet::start(&moto.url, dir.path());
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
    create_patch_window(&console, dir.path());

    // Not before its time.
    set(now + Span::hours(23));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(executions(&console, "patch").is_empty());

    // A day later it opens; while its first command runs, the clock passes the cutoff.
    let opened = now + Span::days(1) + Span::minutes(1);
    set(opened);
    eventually(
        "the window to open and run its command",
        Duration::from_secs(60),
        || {
            let list = executions(&console, "patch");
            list.first()
                .filter(|e| task(e, 1)["state"] == "running")
                .cloned()
        },
    )
    .await;
    set(opened + Span::minutes(90));
    let done = eventually("the execution to end", Duration::from_secs(60), || {
        executions(&console, "patch")
            .into_iter()
            .next()
            .filter(|e| e["state"] != "running")
    })
    .await;

    assert_ran_until_the_cutoff(&console, &done, &ids);

    // The table names each instance's result.
    let table = console.ok(&["maintenance-window", "executions", "patch"]);
    assert!(
        table.contains(&ids[0]) && table.contains("success (exit 0)"),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_window_acts_with_its_creators_permissions_only() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);
    let dir = tempfile::tempdir().unwrap();
    let dep = console.json(&deploy_args(&net, &["--tag", "Patch Group=web", "--wait"]));
    let id = instances_of(&dep).remove(0);
    // Ana may make windows and look up instances, and reboot them, but not send commands.
    let ana = console.add_user(
        "ana",
        &[json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["airlock:UseAccount", "airlock:CreateMaintenanceWindow",
                "airlock:GetMaintenanceWindow", "ec2:DescribeInstances", "ec2:RebootInstances"],
             "Resource": "*"}
        ]})],
    );
    let script = dir.path().join("patch.sh");
    std::fs::write(&script, "echo patched").unwrap();
    ana.ok(&[
        "maintenance-window",
        "create",
        "ana-window",
        "--account",
        "dev",
        "--target",
        "tag:Patch Group=web",
        "--schedule",
        "rate(7 days)",
        "--duration",
        "1h",
        "--cutoff",
        "0s",
        "--task-command",
        script.to_str().unwrap(),
        "--task-reboot",
        "--max-errors",
        "1",
    ]);
    // Ana may not open it now; the admin may, and it still acts as Ana.
    assert!(!ana
        .cli(&["maintenance-window", "run-now", "ana-window"])
        .status
        .success());
    let out = console.cli(&[
        "maintenance-window",
        "run-now",
        "ana-window",
        "--wait",
        "--output",
        "json",
    ]);
    assert!(!out.status.success(), "a refused task fails the execution");
    let done: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(done["trigger"], "admin");
    let command = task(&done, 0);
    assert_eq!(command["state"], "failed");
    assert!(
        command["detail"]
            .as_str()
            .unwrap()
            .contains("airlock:SendCommand"),
        "{command}"
    );
    let reboot = task(&done, 1);
    assert_eq!(reboot["state"], "succeeded", "{done}");
    assert_eq!(reboot["results"][0]["instance_id"], id.as_str());
    // Nothing was sent in Ana's name.
    assert!(console
        .json(&["command", "list"])
        .as_array()
        .unwrap()
        .is_empty());
}
