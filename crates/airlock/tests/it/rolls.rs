//! Rolling replacement against moto: a 3-node deployment whose nodes each have a secondary
//! interface at a fixed address and a data volume is rolled to a new image node by node, each
//! identity moving to the replacement; a replacement that never gets healthy is rolled back; a
//! console killed mid-roll resumes; and a user who may not terminate the nodes cannot roll.

use crate::common::*;
use aws_sdk_ec2::Client as Ec2;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// One node's identity, as made by the test.
struct Identity {
    eni: String,
    address: String,
    volume: String,
}

/// Deploys `count` nodes and gives each a secondary interface at a fixed address (device
/// index 1) and a data volume (/dev/sdf).
async fn ring(
    console: &Console,
    ec2: &Ec2,
    net: &TestNet,
    count: usize,
) -> (String, Vec<Identity>) {
    let count_arg = count.to_string();
    let dep = console.json(&deploy_args(
        net,
        &[
            "--count",
            &count_arg,
            "--credentials",
            "none",
            "--tag",
            "role=db",
            "--wait",
        ],
    ));
    let mut ids: Vec<String> = dep["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["instance_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    let mut identities = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        let address = format!("127.0.10.{}", n + 10);
        let eni = ec2
            .create_network_interface()
            .subnet_id(&net.subnet_id)
            .private_ip_address(&address)
            .send()
            .await
            .unwrap()
            .network_interface()
            .unwrap()
            .network_interface_id()
            .unwrap()
            .to_owned();
        ec2.attach_network_interface()
            .network_interface_id(&eni)
            .instance_id(id)
            .device_index(1)
            .send()
            .await
            .unwrap();
        let zone = described(ec2, id)
            .await
            .placement()
            .and_then(|p| p.availability_zone())
            .unwrap()
            .to_owned();
        let volume = ec2
            .create_volume()
            .availability_zone(zone)
            .size(1)
            .send()
            .await
            .unwrap()
            .volume_id()
            .unwrap()
            .to_owned();
        ec2.attach_volume()
            .volume_id(&volume)
            .instance_id(id)
            .device("/dev/sdf")
            .send()
            .await
            .unwrap();
        identities.push(Identity {
            eni,
            address,
            volume,
        });
    }
    (dep["id"].as_str().unwrap().to_owned(), identities)
}

/// The deployment's running instances as EC2 shows them: (id, image).
async fn running(ec2: &Ec2, dep: &str) -> Vec<(String, String)> {
    let out = ec2
        .describe_instances()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:airlock:deployment")
                .values(dep)
                .build(),
        )
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("instance-state-name")
                .values("running")
                .build(),
        )
        .send()
        .await
        .unwrap();
    out.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .map(|i| {
            (
                i.instance_id().unwrap().to_owned(),
                i.image_id().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Where an identity is now: (instance of its interface, its device index, its address,
/// instance of its volume, its device).
async fn whereabouts(ec2: &Ec2, identity: &Identity) -> (String, i32, String, String, String) {
    let eni = ec2
        .describe_network_interfaces()
        .network_interface_ids(&identity.eni)
        .send()
        .await
        .unwrap();
    let eni = &eni.network_interfaces()[0];
    let attachment = eni.attachment().unwrap();
    let volume = ec2
        .describe_volumes()
        .volume_ids(&identity.volume)
        .send()
        .await
        .unwrap();
    let attached = &volume.volumes()[0].attachments()[0];
    (
        attachment.instance_id().unwrap_or_default().to_owned(),
        attachment.device_index().unwrap_or(-1),
        eni.private_ip_address().unwrap_or_default().to_owned(),
        attached.instance_id().unwrap_or_default().to_owned(),
        attached.device().unwrap_or_default().to_owned(),
    )
}

/// Counts the deployment's running instances until told to stop; returns the fewest seen.
fn watch_running(ec2: Ec2, dep: String) -> (Arc<AtomicBool>, tokio::task::JoinHandle<usize>) {
    let stop = Arc::new(AtomicBool::new(false));
    let fewest = Arc::new(AtomicUsize::new(usize::MAX));
    let (s, f) = (stop.clone(), fewest.clone());
    let task = tokio::spawn(async move {
        while !s.load(Ordering::SeqCst) {
            let n = running(&ec2, &dep).await.len();
            f.fetch_min(n, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        f.load(Ordering::SeqCst)
    });
    (stop, task)
}

async fn new_image(ec2: &Ec2, from: &str) -> String {
    ec2.create_image()
        .instance_id(from)
        .name("db-v2")
        .send()
        .await
        .unwrap()
        .image_id()
        .unwrap()
        .to_owned()
}

fn roll(console: &Console, args: &[&str]) -> (bool, Value) {
    let mut all = vec!["deployment", "roll"];
    all.extend_from_slice(args);
    all.extend(["--output", "json"]);
    let out = console.cli(&all);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{all:?} printed non-JSON ({e}): {text} {}", stderr(&out)));
    (out.status.success(), value)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ring_is_rolled_node_by_node_keeping_each_identity_and_a_sick_node_is_rolled_back() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);
    let (dep, identities) = ring(&console, &ec2, &net, 3).await;
    let before: BTreeSet<String> = running(&ec2, &dep)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let image = new_image(&ec2, before.iter().next().unwrap()).await;

    // The plan first: each node with its interface, volume and address; nothing changes.
    let (ok, plan) = roll(&console, &[&dep, "--image", &image, "--dry-run"]);
    assert!(ok, "{plan}");
    let nodes = plan["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    for node in nodes {
        assert_eq!(node["interfaces"][0]["device_index"], 1, "{node}");
        assert_eq!(node["volumes"][0]["device"], "/dev/sdf", "{node}");
    }
    assert_eq!(running(&ec2, &dep).await.len(), 3);

    let (stop, watcher) = watch_running(ec2.clone(), dep.clone());
    let (ok, done) = roll(
        &console,
        &[&dep, "--image", &image, "--batch", "1", "--wait"],
    );
    stop.store(true, Ordering::SeqCst);
    let fewest = watcher.await.unwrap();
    assert!(ok, "{done}");
    assert_eq!(done["state"], "succeeded");
    assert!(fewest >= 2, "only {fewest} nodes ran at one moment");

    // Three running instances of the new image, none of the old ones.
    let after = running(&ec2, &dep).await;
    assert_eq!(after.len(), 3, "{after:?}");
    assert!(after.iter().all(|(_, img)| *img == image), "{after:?}");
    let new_ids: BTreeSet<String> = after.iter().map(|(id, _)| id.clone()).collect();
    assert!(new_ids.is_disjoint(&before));
    for old in &before {
        assert_eq!(instance_state(&ec2, old).await, "terminated");
    }
    // Every identity on one of them: same address, same device index, same device name.
    let mut holders = BTreeSet::new();
    for identity in &identities {
        let (eni_on, index, address, volume_on, device) = whereabouts(&ec2, identity).await;
        assert!(new_ids.contains(&eni_on), "{eni_on}");
        assert_eq!(
            eni_on, volume_on,
            "a node's interface and volume went apart"
        );
        assert_eq!(
            (index, address.as_str(), device.as_str()),
            (1, identity.address.as_str(), "/dev/sdf")
        );
        holders.insert(eni_on);
    }
    assert_eq!(holders, new_ids);
    // The deployment launches the new image from now on.
    let shown = console.json(&["deployment", "show", &dep]);
    assert_eq!(shown["spec"]["image_id"], image.as_str());

    // A replacement that never answers its health check: the first node gets its identity back
    // and runs again, the other two are untouched, and the roll says why it stopped.
    let image3 = new_image(&ec2, new_ids.iter().next().unwrap()).await;
    let placed: Vec<_> = {
        let mut v = Vec::new();
        for identity in &identities {
            v.push(whereabouts(&ec2, identity).await);
        }
        v
    };
    let (ok, failed) = roll(
        &console,
        &[
            &dep,
            "--image",
            &image3,
            "--health",
            "http:9/healthz",
            "--health-timeout",
            "3s",
            "--wait",
        ],
    );
    assert!(!ok);
    assert_eq!(failed["state"], "failed", "{failed}");
    assert!(
        failed["error"].as_str().unwrap().contains("not healthy"),
        "{failed}"
    );
    let first = &failed["nodes"][0];
    assert_eq!(first["step"], "rolled-back");
    for later in [&failed["nodes"][1], &failed["nodes"][2]] {
        assert_eq!(later["step"], "waiting");
    }
    let sick = first["new_instance_id"].as_str().unwrap();
    assert_eq!(instance_state(&ec2, sick).await, "terminated");
    let still: BTreeSet<String> = running(&ec2, &dep)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        still, new_ids,
        "the nodes are not those before the failed roll"
    );
    for (identity, before) in identities.iter().zip(&placed) {
        assert_eq!(&whereabouts(&ec2, identity).await, before);
    }
    let status = console.ok(&["deployment", "roll-status", &dep]);
    assert!(
        status.contains("rolled-back") && status.contains("not healthy"),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_who_may_not_terminate_the_nodes_cannot_roll_them() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);
    let (dep, _) = ring(&console, &ec2, &net, 1).await;
    let old = running(&ec2, &dep).await;
    let image = new_image(&ec2, &old[0].0).await;
    let keeper = console.add_user(
        "keeper",
        &[json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"},
            {"Effect": "Deny", "Action": "ec2:TerminateInstances", "Resource": "*",
             "Condition": {"StringEquals": {"ec2:ResourceTag/role": "db"}}}
        ]})],
    );
    let out = keeper.cli(&["deployment", "roll", &dep, "--image", &image]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("ec2:TerminateInstances"), "{err}");
    // Nothing was launched, stopped or recorded.
    assert_eq!(running(&ec2, &dep).await, old);
    let out = console.cli(&["deployment", "roll-status", &dep]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("never rolled"));
}

/// Answers `GET /ok` on `port` of every address of the loopback subnet's first 64: 503 until
/// `healthy` is set, then 200 (the replacement's address is not known before it launches).
async fn health_servers(port: u16, healthy: Arc<AtomicBool>) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for host in 1..64 {
        let Ok(listener) = tokio::net::TcpListener::bind(format!("127.0.0.{host}:{port}")).await
        else {
            continue;
        };
        let healthy = healthy.clone();
        tasks.push(tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf).await;
                let status = if healthy.load(Ordering::SeqCst) {
                    "200 OK"
                } else {
                    "503 Service Unavailable"
                };
                let _ = stream
                    .write_all(
                        format!(
                            "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        )
                        .as_bytes(),
                    )
                    .await;
            }
        }));
    }
    tasks
}

#[tokio::test(flavor = "multi_thread")]
async fn a_console_killed_mid_roll_resumes_after_restart_without_moving_anything_twice() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let mut console = Console::start();
    console.login_with_account(&moto);
    let (dep, identities) = ring(&console, &ec2, &net, 2).await;
    let old = running(&ec2, &dep).await;
    let image = new_image(&ec2, &old[0].0).await;
    let healthy = Arc::new(AtomicBool::new(false));
    let port = free_port();
    let servers = health_servers(port, healthy.clone()).await;
    moto.record().await;

    let health = format!("http:{port}/ok");
    console.ok(&[
        "deployment",
        "roll",
        &dep,
        "--image",
        &image,
        "--health",
        &health,
    ]);
    // The first replacement launched, the identity moved, its health awaited: kill the console.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let status = console.json(&["deployment", "roll-status", &dep]);
        if status["nodes"][0]["step"] == "health" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the roll never reached health: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    console.stop();
    healthy.store(true, Ordering::SeqCst);
    console.restart();

    // Another console (here the same, restarted) takes the abandoned roll over and ends it.
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let done = loop {
        let status = console.json(&["deployment", "roll-status", &dep]);
        if status["state"] != "running" {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the roll never resumed: {status}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(done["state"], "succeeded", "{done}");
    let after = running(&ec2, &dep).await;
    assert_eq!(after.len(), 2);
    assert!(after.iter().all(|(_, img)| *img == image));
    // One launch, one detach and one attach per node and piece: nothing was done twice.
    for (action, times) in [
        ("RunInstances", 2),
        ("DetachNetworkInterface", 2),
        ("AttachNetworkInterface", 2),
        ("DetachVolume", 2),
        ("AttachVolume", 2),
        ("TerminateInstances", 2),
    ] {
        assert_eq!(moto.calls(action).await, times, "{action}");
    }
    for identity in &identities {
        let (eni_on, _, _, volume_on, _) = whereabouts(&ec2, identity).await;
        assert!(after.iter().any(|(id, _)| *id == eni_on) && eni_on == volume_on);
    }
    for task in servers {
        task.abort();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_abort_rolls_the_waiting_node_back_and_resume_finishes_the_roll() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);
    let (dep, identities) = ring(&console, &ec2, &net, 2).await;
    let old: BTreeSet<String> = running(&ec2, &dep)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let image = new_image(&ec2, old.iter().next().unwrap()).await;
    let healthy = Arc::new(AtomicBool::new(false));
    let port = free_port();
    let servers = health_servers(port, healthy.clone()).await;
    let health = format!("http:{port}/ok");
    console.ok(&[
        "deployment",
        "roll",
        &dep,
        "--image",
        &image,
        "--health",
        &health,
    ]);
    let status = |console: &Console| console.json(&["deployment", "roll-status", &dep]);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while status(&console)["nodes"][0]["step"] != "health" {
        assert!(
            std::time::Instant::now() < deadline,
            "the roll never reached health"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Aborted while its first replacement is not healthy: that node gets its identity back.
    console.ok(&["deployment", "roll", &dep, "--abort"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let aborted = loop {
        let s = status(&console);
        if s["nodes"][0]["step"] == "rolled-back" {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the abort was not taken: {s}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(aborted["state"], "aborted", "{aborted}");
    let now: BTreeSet<String> = running(&ec2, &dep)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(now, old);
    for identity in &identities {
        let (eni_on, _, _, volume_on, _) = whereabouts(&ec2, identity).await;
        assert!(old.contains(&eni_on) && eni_on == volume_on);
    }

    // Resumed once the service answers: both nodes are replaced.
    healthy.store(true, Ordering::SeqCst);
    let (ok, done) = roll(&console, &[&dep, "--resume", "--wait"]);
    assert!(ok, "{done}");
    assert_eq!(done["state"], "succeeded");
    let after = running(&ec2, &dep).await;
    assert_eq!(after.len(), 2);
    assert!(after
        .iter()
        .all(|(id, img)| *img == image && !old.contains(id)));
    for task in servers {
        task.abort();
    }
}
