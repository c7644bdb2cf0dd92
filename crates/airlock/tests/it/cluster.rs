//! Several consoles on one PostgreSQL database: any node serves any request, changes made
//! through one reach the others' watchers, and the work only one node may do (watching
//! deployments) moves to a live node when its holder dies. These tests always use PostgreSQL:
//! SQLite has one node by design.

use crate::common::fleet::eventually;
use crate::common::*;
use serde_json::Value;
use std::time::{Duration, Instant};

/// A console node on `database`, started.
fn start_node(database: &str, extra: &[&str]) -> Console {
    let mut console = Console::node(database, extra);
    console.launch();
    console
}

/// Reads `resp` (an event stream) until its text contains every one of `needles`, or panics
/// after `deadline`.
async fn read_until(resp: &mut reqwest::Response, needles: &[&str], deadline: Instant) -> String {
    let mut seen = String::new();
    while !needles.iter().all(|n| seen.contains(n)) {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, resp.chunk())
            .await
            .unwrap_or_else(|_| panic!("no {needles:?} in time; stream so far:\n{seen}"))
            .unwrap()
            .expect("the stream ended");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    seen
}

/// Who holds `lease`, as `airlock cluster status` through `console` says.
fn holder(console: &Console, lease: &str) -> Option<String> {
    let status = console.json(&["cluster", "status"]);
    status["leases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == lease && l["expired"] == false)
        .map(|l| l["holder"].as_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_from_one_node_works_on_the_other_and_a_tag_change_reaches_its_watchers_within_a_second(
) {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let database = postgres_database();
    let a = start_node(&database, &[]);
    a.login_with_account(&moto);
    let b = Console::start_sharing(&a, &[]);
    let token = a.token();
    let http = reqwest::Client::new();

    // A login made through A is a login at B.
    let me: Value = http
        .get(format!("{}/v1/whoami", b.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"], "admin", "{me}");

    let dep = a.json(&deploy_args(&net, &["--wait"]));
    let id = dep["instances"][0]["instance_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // B's watchers hear of a tag change made through A.
    let mut events = http
        .get(format!("{}/v1/events", b.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    read_until(
        &mut events,
        &["event: resync"],
        Instant::now() + Duration::from_secs(5),
    )
    .await;
    a.ok(&["tag", "add", &id, "team=blue", "--account", "dev"]);
    let answered = Instant::now();
    read_until(
        &mut events,
        &["ec2:CreateTags", &id],
        answered + Duration::from_secs(1),
    )
    .await;

    // A user without the permission learns nothing of the cluster.
    let out = a
        .add_user(
            "carol",
            &[serde_json::json!({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"}]
            })],
        )
        .cli(&["cluster", "status"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("airlock:GetClusterStatus"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deploy_through_a_node_killed_right_after_it_answers_is_finished_by_the_other() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let database = postgres_database();
    // A looks at its deployments only every 30 s: whatever brings this one to `running`
    // after A's death is B.
    let mut a = start_node(&database, &["--poll-interval", "30"]);
    a.login_with_account(&moto);
    let mut b = Console::start_sharing(&a, &[]);
    b.login();
    let a_id = holder(&a, "deployments").expect("A holds the deployments lease");
    let status = b.json(&["cluster", "status"]);
    assert_eq!(status["nodes"].as_array().unwrap().len(), 2, "{status}");
    assert_ne!(status["answered_by"], a_id.as_str());

    moto.record().await;
    let dep = a.json(&deploy_args(&net, &["--count", "3"]));
    a.stop(); // SIGKILL, right after the answer
    let killed = Instant::now();
    let dep_id = dep["id"].as_str().unwrap().to_owned();
    assert_ne!(dep["state"], "running", "{dep}");

    let b_id = eventually(
        "B to take the deployments lease",
        Duration::from_secs(15),
        || holder(&b, "deployments").filter(|h| *h != a_id),
    )
    .await;
    let takeover = killed.elapsed();
    assert!(takeover < Duration::from_secs(10), "took {takeover:?}");
    assert_eq!(b.json(&["cluster", "status"])["answered_by"], b_id.as_str());

    let running = eventually(
        "B to settle the deployment",
        Duration::from_secs(60),
        || {
            let d = b.json(&["deployment", "show", &dep_id]);
            (d["state"] == "running").then_some(d)
        },
    )
    .await;
    assert_eq!(
        running["instances"].as_array().unwrap().len(),
        3,
        "{running}"
    );
    assert_eq!(moto.calls("RunInstances").await, 1, "exactly one launch");
    let live = live_instances(&ec2, &dep_id).await;
    assert_eq!(live.len(), 3);

    // Restarted, A does not take the lease back while B holds it.
    b.restart();
    a.launch();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let now = holder(&b, "deployments");
    assert!(now.is_some() && now.as_deref() != Some(a_id.as_str()));
}

#[tokio::test(flavor = "multi_thread")]
async fn two_nodes_started_at_once_on_an_empty_database_migrate_it_once_and_make_one_admin() {
    let database = postgres_database();
    let mut a = Console::node(&database, &[]);
    let mut b = Console::node(&database, &[]);
    // Nodes of one cluster share the master key.
    let key = airlock_vault::Keyring::generate().to_text();
    for node in [&a, &b] {
        use secrecy::ExposeSecret;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(node.key_file())
            .unwrap();
        std::io::Write::write_all(&mut file, key.expose_secret().as_bytes()).unwrap();
    }
    std::thread::scope(|s| {
        s.spawn(|| a.launch());
        s.spawn(|| b.launch());
    });
    a.login();
    b.login();
    let out = std::process::Command::new("psql")
        .args([
            database.as_str(),
            "-Atc",
            "SELECT (SELECT COUNT(*) FROM _sqlx_migrations WHERE success), \
             (SELECT COUNT(DISTINCT version) FROM _sqlx_migrations), \
             (SELECT COUNT(*) FROM users)",
        ])
        .output()
        .unwrap();
    let counts = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let migrations = std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../airlock-store/migrations"
    ))
    .unwrap()
    .count();
    assert_eq!(counts, format!("{migrations}|{migrations}|1"));
    // One audit key for both: each verifies the other's records.
    a.ok(&["user", "list"]);
    b.ok(&["user", "list"]);
    let verified = b.json(&["audit", "verify"]);
    assert_eq!(verified["intact"], true, "{verified}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_stopped_with_sigterm_ends_its_streams_and_hands_its_leases_over_at_once() {
    let database = postgres_database();
    let a = start_node(&database, &[]);
    a.login();
    let b = Console::start_sharing(&a, &[]);
    b.login();
    let a_id = holder(&a, "deployments").expect("A holds the deployments lease");
    let mut events = reqwest::Client::new()
        .get(format!("{}/v1/events", a.url))
        .bearer_auth(a.token())
        .send()
        .await
        .unwrap();
    read_until(
        &mut events,
        &["event: resync"],
        Instant::now() + Duration::from_secs(5),
    )
    .await;

    let term = std::process::Command::new("kill")
        .args(["-TERM", &a.pid().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let sent = Instant::now();
    // The event stream ends (its watcher reconnects elsewhere) instead of holding the drain.
    loop {
        let chunk = tokio::time::timeout(Duration::from_secs(5), events.chunk())
            .await
            .expect("the stream did not end while draining");
        if chunk.map_or(true, |c| c.is_none()) {
            break;
        }
    }
    // The leases are handed over, not left to lapse (5 s).
    let b_id = eventually(
        "B to hold the deployments lease",
        Duration::from_secs(5),
        || holder(&b, "deployments").filter(|h| *h != a_id),
    )
    .await;
    assert!(
        sent.elapsed() < Duration::from_secs(4),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(holder(&b, "key-rotation").as_deref(), Some(b_id.as_str()));
    // Draining, then stopped once its last connection has closed (within --drain-timeout):
    // either way no longer serving, and not alive.
    let status = b.json(&["cluster", "status"]);
    let a_row = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == a_id.as_str())
        .unwrap()
        .clone();
    assert!(
        a_row["state"] == "draining" || a_row["state"] == "stopped",
        "{status}"
    );
    assert_eq!(a_row["alive"], false, "{a_row}");
}
