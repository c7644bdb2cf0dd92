//! End-to-end tests of fleet operations through the `airlock` binary against moto: addresses
//! moved without a gap, interfaces moved with their private address, snapshots gated by the
//! announcement's policies, key pairs' private keys shown once, rules and sizes checked before
//! EC2, and instances watched.

use crate::common::*;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const ACCOUNT_ARN: &str = "arn:airlock:console:::account/*";

/// Deploys `count` running instances and returns their ids.
pub fn instances(console: &Console, net: &TestNet, count: &str) -> Vec<String> {
    let dep = console.json(&deploy_args(net, &["--count", count, "--wait"]));
    dep["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["instance_id"].as_str().unwrap().to_owned())
        .collect()
}

async fn zone_of(ec2: &aws_sdk_ec2::Client, instance: &str) -> String {
    described(ec2, instance)
        .await
        .placement()
        .unwrap()
        .availability_zone()
        .unwrap()
        .to_owned()
}

fn failed(out: std::process::Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected a failure, got {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    stderr(&out)
}

fn audit_actions(console: &Console) -> Vec<(String, String)> {
    action_outcomes(&console.audit_records(&[]))
}

/// The instance an address is associated with, straight from EC2.
async fn holder_of(ec2: &aws_sdk_ec2::Client, alloc: &str) -> Option<String> {
    let out = ec2
        .describe_addresses()
        .allocation_ids(alloc)
        .send()
        .await
        .unwrap();
    out.addresses()[0].instance_id().map(str::to_owned)
}

/// `address move` of `alloc` to `to` while EC2 is asked again and again who holds it: (the
/// command's answer, every holder seen).
async fn move_watched(
    console: &Console,
    ec2: &aws_sdk_ec2::Client,
    alloc: &str,
    to: &str,
) -> (Value, Vec<Option<String>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (ec2, stop, alloc) = (ec2.clone(), stop.clone(), alloc.to_owned());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                seen.push(holder_of(&ec2, &alloc).await);
            }
            seen
        })
    };
    let moved = console.json(&["address", "move", alloc, "--to", to]);
    stop.store(true, Ordering::SeqCst);
    (moved, watcher.await.unwrap())
}

/// `address move --direct`: no console, the machine's own credentials (as an instance has with
/// its agent's), straight against EC2.
fn move_directly(moto: &Moto, alloc: &str, to: &str) {
    let direct = std::process::Command::new(airlock_bin())
        .args(["address", "move", alloc, "--to", to, "--direct"])
        .env("AWS_REGION", REGION)
        .env("AWS_ENDPOINT_URL", &moto.url)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AIRLOCK_CONSOLE", "http://127.0.0.1:9")
        .output()
        .unwrap();
    ok(direct, &["address move --direct"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_address_moves_between_instances_without_a_gap() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);
    let ids = instances(&console, &net, "2");
    let (a, b) = (ids[0].clone(), ids[1].clone());

    let allocated = console.json(&["address", "allocate", "--tag", "Role=db"]);
    let alloc = allocated["resource_id"].as_str().unwrap().to_owned();
    assert_eq!(allocated["address"]["tags"][0]["key"], "Role");
    console.ok(&["address", "associate", &alloc, "--instance", &a]);

    // Watch the address in EC2 itself while it moves: it must be associated at every look.
    let (moved, seen) = move_watched(&console, &ec2, &alloc, &b).await;
    assert!(!seen.is_empty());
    assert!(
        seen.iter()
            .all(|i| i.as_deref() == Some(a.as_str()) || i.as_deref() == Some(b.as_str())),
        "the address was unassociated during the move: {seen:?}"
    );
    // Decided without a look-up (the admin's policies read no tags): where it was is not said.
    assert_eq!(
        moved["message"].as_str().unwrap(),
        format!("moved {alloc} to {b}"),
        "{moved}"
    );
    let listed = console.json(&["address", "list", "--filter", "tag:Role=db"]);
    assert_eq!(listed[0]["instance_id"].as_str(), Some(b.as_str()));
    assert_eq!(listed[0]["account"], "dev");

    // One AssociateAddress per association, never a DisassociateAddress in between.
    let actions = audit_actions(&console);
    assert!(actions
        .iter()
        .all(|(action, _)| action != "ec2:DisassociateAddress"));
    assert_eq!(
        actions
            .iter()
            .filter(|(action, outcome)| action == "ec2:AssociateAddress" && outcome == "ok")
            .count(),
        2,
        "{actions:?}"
    );

    // The same operation runs without any console, with the machine's own credentials (as an
    // instance does with its agent's), straight against EC2.
    move_directly(&moto, &alloc, &a);
    assert_eq!(holder_of(&ec2, &alloc).await.as_deref(), Some(a.as_str()));

    // Someone who may only look is refused, and the address stays where it is.
    let viewer = console.add_user(
        "viewer",
        &[json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "airlock:UseAccount", "Resource": ACCOUNT_ARN},
            {"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"}
        ]})],
    );
    let err = failed(viewer.cli(&["address", "move", &alloc, "--to", &b, "--account", "dev"]));
    assert!(err.contains("ec2:AssociateAddress"), "{err}");
    assert_eq!(holder_of(&ec2, &alloc).await.as_deref(), Some(a.as_str()));

    // Bad input is refused before EC2, naming the field, and the refusal is audited.
    let err = failed(console.cli(&["address", "move", "eipalloc-1", "--to", "instance-1"]));
    assert!(err.contains("to_instance_id"), "{err}");
    assert!(audit_actions(&console)
        .iter()
        .any(|(action, outcome)| action == "ec2:AssociateAddress" && outcome == "invalid"));
    console.ok(&["address", "disassociate", &alloc]);
    console.ok(&["address", "release", &alloc]);
    let out = ec2.describe_addresses().send().await.unwrap();
    assert!(out.addresses().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interface_move_keeps_its_private_address() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);
    let ids = instances(&console, &net, "2");
    let (a, b) = (ids[0].clone(), ids[1].clone());

    // A bad address never reaches EC2.
    let err = failed(console.cli(&[
        "eni",
        "create",
        "--subnet",
        &net.subnet_id,
        "--private-ip",
        "127.0.0.300",
    ]));
    assert!(err.contains("private_ip"), "{err}");
    let before = ec2.describe_network_interfaces().send().await.unwrap();

    let created = console.json(&[
        "eni",
        "create",
        "--subnet",
        &net.subnet_id,
        "--private-ip",
        "127.0.0.200",
        "--tag",
        "Role=db",
    ]);
    let eni = created["resource_id"].as_str().unwrap().to_owned();
    assert_eq!(created["network_interface"]["private_ip"], "127.0.0.200");
    let after = ec2.describe_network_interfaces().send().await.unwrap();
    assert_eq!(
        after.network_interfaces().len(),
        before.network_interfaces().len() + 1
    );
    console.ok(&[
        "eni",
        "attach",
        &eni,
        "--instance",
        &a,
        "--device-index",
        "2",
    ]);

    let moved = console.json(&["eni", "move", &eni, "--to", &b]);
    assert_eq!(moved["network_interface"]["private_ip"], "127.0.0.200");
    let out = ec2
        .describe_network_interfaces()
        .network_interface_ids(&eni)
        .send()
        .await
        .unwrap();
    let n = &out.network_interfaces()[0];
    assert_eq!(n.private_ip_address(), Some("127.0.0.200"));
    let attachment = n.attachment().unwrap();
    assert_eq!(attachment.instance_id(), Some(b.as_str()));
    assert_eq!(attachment.device_index(), Some(2));
    let listed = console.json(&["eni", "list", "--filter", "tag:Role=db"]);
    assert_eq!(
        listed[0]["attachment"]["instance_id"].as_str(),
        Some(b.as_str())
    );

    // Detach and attach were each audited.
    let actions = audit_actions(&console);
    for action in ["ec2:DetachNetworkInterface", "ec2:AttachNetworkInterface"] {
        assert!(
            actions.iter().any(|(a, o)| a == action && o == "ok"),
            "{action} not audited: {actions:?}"
        );
    }
    console.ok(&["eni", "detach", &eni]);
    console.ok(&["eni", "delete", &eni]);
}

/// The announcement's snapshot policies: create from volumes tagged costcenter=115 only when the
/// new snapshot is tagged costcenter=115 and User=<caller>, and delete only one's own.
pub fn snapshot_policies() -> Vec<Value> {
    vec![
        json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "airlock:UseAccount", "Resource": ACCOUNT_ARN},
            {"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"}
        ]}),
        json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "ec2:CreateSnapshot",
             "Resource": "arn:aws:ec2:us-east-1:123456789012:volume/*",
             "Condition": {"StringEquals": {"ec2:ResourceTag/costcenter": "115"}}},
            {"Sid": "AllowCreateTaggedSnapshots", "Effect": "Allow", "Action": "ec2:CreateSnapshot",
             "Resource": "arn:aws:ec2:us-east-1::snapshot/*",
             "Condition": {"StringEquals": {"aws:RequestTag/costcenter": "115",
                                            "aws:RequestTag/User": "${aws:username}"},
                           "ForAllValues:StringEquals": {"aws:TagKeys": ["costcenter", "User"]}}},
            {"Effect": "Allow", "Action": "ec2:CreateTags",
             "Resource": "arn:aws:ec2:us-east-1::snapshot/*",
             "Condition": {"StringEquals": {"ec2:CreateAction": "CreateSnapshot"}}}
        ]}),
        json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "ec2:DeleteSnapshot",
             "Resource": "arn:aws:ec2:us-east-1::snapshot/*",
             "Condition": {"StringEquals": {"ec2:ResourceTag/User": "${aws:username}"}}}
        ]}),
    ]
}

/// A volume tagged `costcenter=COST`, as the snapshot policies' examples need.
pub fn cost_center_volume(console: &Console, cost: &str) -> String {
    let tag = format!("costcenter={cost}");
    let v = console.json(&[
        "volume",
        "create",
        "--availability-zone",
        "us-east-1a",
        "--size",
        "8",
        "--tag",
        &tag,
        "--wait",
    ]);
    v["resource_id"].as_str().unwrap().to_owned()
}

async fn snapshots_in(ec2: &aws_sdk_ec2::Client) -> Vec<aws_sdk_ec2::types::Snapshot> {
    ec2.describe_snapshots()
        .owner_ids("self")
        .send()
        .await
        .unwrap()
        .snapshots()
        .to_vec()
}

/// Refused before EC2, and no snapshot left behind: no tags, another user's name, an extra tag,
/// no User tag, the wrong volume.
async fn assert_snapshots_refused_before_ec2(
    ec2: &aws_sdk_ec2::Client,
    alice: &UserCli<'_>,
    (v115, v116): (&str, &str),
    start: usize,
) {
    for (volume, tags, why) in [
        (v115, vec![], "no tags"),
        (
            v115,
            vec!["costcenter=115", "User=bob"],
            "another user's name",
        ),
        (
            v115,
            vec!["costcenter=115", "User=alice", "Project=x"],
            "an extra tag",
        ),
        (v115, vec!["costcenter=115"], "no User tag"),
        (
            v116,
            vec!["costcenter=115", "User=alice"],
            "a volume of costcenter 116",
        ),
    ] {
        let mut args = vec!["snapshot", "create", volume, "--account", "dev"];
        for t in &tags {
            args.extend(["--tag", t]);
        }
        let err = failed(alice.cli(&args));
        assert!(err.contains("ec2:CreateSnapshot"), "{why}: {err}");
        assert_eq!(
            snapshots_in(ec2).await.len(),
            start,
            "{why}: a snapshot was left behind"
        );
    }
}

/// Deleting: only snapshots tagged with her name. Returns the id of the snapshot she may not
/// delete (bob's), still there.
async fn assert_only_her_snapshots_are_deleted(
    ec2: &aws_sdk_ec2::Client,
    (console, alice): (&Console, &UserCli<'_>),
    v115: &str,
    snap: &str,
) -> String {
    let bobs = console.json(&[
        "snapshot",
        "create",
        v115,
        "--tag",
        "User=bob",
        "--tag",
        "costcenter=115",
    ]);
    let bobs = bobs["resource_id"].as_str().unwrap().to_owned();
    let err = failed(alice.cli(&["snapshot", "delete", &bobs, "--account", "dev"]));
    assert!(err.contains("ec2:DeleteSnapshot"), "{err}");
    assert!(
        err.contains(&format!("arn:aws:ec2:us-east-1::snapshot/{bobs}")),
        "{err}"
    );
    assert!(snapshots_in(ec2)
        .await
        .iter()
        .any(|s| s.snapshot_id() == Some(bobs.as_str())));
    alice.ok(&["snapshot", "delete", snap, "--account", "dev"]);
    assert!(!snapshots_in(ec2)
        .await
        .iter()
        .any(|s| s.snapshot_id() == Some(snap)));
    bobs
}

/// Copies go to another region, tagged on creation there.
async fn assert_copies_are_tagged_in_the_other_region(console: &Console, moto: &Moto, snap: &str) {
    let copy = console.json(&[
        "snapshot",
        "copy",
        snap,
        "--to-region",
        "us-west-2",
        "--tag",
        "Backup=weekly",
    ]);
    let copy_id = copy["resource_id"].as_str().unwrap().to_owned();
    let copies = snapshots_in(&moto.ec2_in("us-west-2").await).await;
    let copied = copies
        .iter()
        .find(|s| s.snapshot_id() == Some(copy_id.as_str()))
        .expect("the copy is in us-west-2");
    assert!(copied
        .tags()
        .iter()
        .any(|t| t.key() == Some("Backup") && t.value() == Some("weekly")));
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshots_follow_the_announcement_policies() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let _net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);
    let v115 = cost_center_volume(&console, "115");
    let v116 = cost_center_volume(&console, "116");
    let alice = console.add_user("alice", &snapshot_policies());
    let start = snapshots_in(&ec2).await.len();

    assert_snapshots_refused_before_ec2(&ec2, &alice, (&v115, &v116), start).await;

    // With the required tags it succeeds, created and tagged in one call.
    let made = alice.json(&[
        "snapshot",
        "create",
        &v115,
        "--account",
        "dev",
        "--tag",
        "costcenter=115",
        "--tag",
        "User=alice",
        "--wait",
    ]);
    let snap = made["resource_id"].as_str().unwrap().to_owned();
    let now = snapshots_in(&ec2).await;
    assert_eq!(now.len(), start + 1);
    let tags: Vec<(String, String)> = now
        .iter()
        .find(|s| s.snapshot_id() == Some(snap.as_str()))
        .unwrap()
        .tags()
        .iter()
        .map(|t| (t.key().unwrap().to_owned(), t.value().unwrap().to_owned()))
        .collect();
    assert!(tags.contains(&("User".into(), "alice".into())), "{tags:?}");
    assert!(
        tags.contains(&("costcenter".into(), "115".into())),
        "{tags:?}"
    );

    let bobs = assert_only_her_snapshots_are_deleted(&ec2, (&console, &alice), &v115, &snap).await;
    assert_copies_are_tagged_in_the_other_region(&console, &moto, &bobs).await;

    // Every denial is in the audit log.
    let actions = audit_actions(&console);
    assert!(
        actions
            .iter()
            .filter(|(a, o)| a == "ec2:CreateSnapshot" && o == "denied")
            .count()
            >= 5,
        "{actions:?}"
    );
}

/// The key's secret bits (`needle`) are in no other output: not the listing, the audit log,
/// the console's log or any file under its directory.
fn assert_only_in_the_create_response(console: &Console, needle: &str) {
    let listed = console.ok(&["key-pair", "list", "--output", "json"]);
    assert!(listed.contains("deploy-key"));
    assert!(!listed.contains(needle));
    let audit = console.ok(&["audit", "--all", "--output", "json"]);
    assert!(audit.contains("ec2:CreateKeyPair"));
    assert!(
        !audit.contains(needle),
        "the private key is in the audit log"
    );
    assert!(
        !console.output_text().contains(needle),
        "the private key is in the console's log"
    );
    for (path, bytes) in files_under(console.dir.path()) {
        assert!(
            !contains(&bytes, needle),
            "the private key is in {}",
            path.display()
        );
    }
}

/// Saved to a new file with mode 0600, and then not printed; an existing file is not
/// overwritten.
fn assert_saved_to_a_new_private_file(console: &Console) {
    let file = console.dir.path().join("second.pem");
    let out = console.ok(&[
        "key-pair",
        "create",
        "second",
        "--private-key-file",
        file.to_str().unwrap(),
    ]);
    assert!(!out.contains("PRIVATE KEY"), "{out}");
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(std::fs::read_to_string(&file)
        .unwrap()
        .contains("PRIVATE KEY"));
    let err = failed(console.cli(&[
        "key-pair",
        "create",
        "third",
        "--private-key-file",
        file.to_str().unwrap(),
    ]));
    assert!(err.contains("exists"), "{err}");
}

/// The names of the key pairs EC2 holds.
async fn key_pair_names(ec2: &aws_sdk_ec2::Client) -> Vec<String> {
    ec2.describe_key_pairs()
        .send()
        .await
        .unwrap()
        .key_pairs()
        .iter()
        .map(|k| k.key_name().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_pairs_private_key_is_in_the_create_response_only() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let console = Console::start();
    console.login_with_account(&moto);

    let created = console.json(&["key-pair", "create", "deploy-key", "--tag", "Team=ops"]);
    let private = created["private_key"].as_str().unwrap().to_owned();
    assert!(private.contains("PRIVATE KEY"), "{private}");
    // The key's last full line: its own secret bits, never in any other output.
    let needle = private
        .lines()
        .rfind(|l| l.len() > 40 && !l.starts_with("-----"))
        .unwrap()
        .to_owned();

    assert_only_in_the_create_response(&console, &needle);

    assert_saved_to_a_new_private_file(&console);

    // Importing takes a public key only.
    let public = console.dir.path().join("id.pub");
    std::fs::write(
        &public,
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBm8l7bQ3Sx5CKcx2gIcHykCPHk4UTKyW0oqGQ2PZgcX me@laptop\n",
    )
    .unwrap();
    console.ok(&[
        "key-pair",
        "import",
        "laptop",
        "--public-key-file",
        public.to_str().unwrap(),
    ]);
    std::fs::write(&public, "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n").unwrap();
    let err = failed(console.cli(&[
        "key-pair",
        "import",
        "oops",
        "--public-key-file",
        public.to_str().unwrap(),
    ]));
    assert!(err.contains("public_key"), "{err}");
    console.ok(&["key-pair", "delete", "laptop"]);
    let names = key_pair_names(&ec2).await;
    assert!(names.contains(&"deploy-key".to_owned()));
    assert!(!names.contains(&"laptop".to_owned()));
    assert!(!names.contains(&"oops".to_owned()));
}

async fn ingress_ports(ec2: &aws_sdk_ec2::Client, group: &str) -> Vec<i32> {
    let out = ec2
        .describe_security_groups()
        .group_ids(group)
        .send()
        .await
        .unwrap();
    out.security_groups()[0]
        .ip_permissions()
        .iter()
        .filter_map(|p| p.from_port())
        .collect()
}

/// A security group `web` in the loopback VPC, tagged `Team=web`: its id.
fn web_group(console: &Console, net: &TestNet) -> String {
    let made = console.json(&[
        "security-group",
        "create",
        "web",
        "--description",
        "web servers",
        "--vpc",
        &net.vpc_id,
        "--tag",
        "Team=web",
    ]);
    made["resource_id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn security_group_rules_are_checked_before_ec2() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);

    let sg = web_group(&console, &net);
    console.ok(&[
        "security-group",
        "authorize",
        &sg,
        "--port",
        "443",
        "--cidr",
        "0.0.0.0/0",
    ]);

    // Refused before EC2, naming the field or the risk.
    for (port, cidr, needles) in [
        (
            "22",
            "0.0.0.0/0",
            &["rules[0].cidr", "SSH", "--allow-world"][..],
        ),
        ("3389", "::/0", &["RDP"][..]),
        ("90-80", "10.0.0.0/8", &["rules[0].to_port"][..]),
        ("8080", "10.1.2.3/8", &["10.0.0.0/8"][..]),
    ] {
        let err = failed(console.cli(&[
            "security-group",
            "authorize",
            &sg,
            "--port",
            port,
            "--cidr",
            cidr,
        ]));
        for needle in needles {
            assert!(err.contains(needle), "{port} from {cidr}: {err}");
        }
    }
    assert_eq!(ingress_ports(&ec2, &sg).await, vec![443]);

    console.ok(&[
        "security-group",
        "authorize",
        &sg,
        "--port",
        "22",
        "--cidr",
        "0.0.0.0/0",
        "--allow-world",
    ]);
    let shown = console.ok(&["security-group", "show", &sg]);
    assert!(shown.contains("ingress") && shown.contains("22"), "{shown}");
    console.ok(&[
        "security-group",
        "revoke",
        &sg,
        "--port",
        "22",
        "--cidr",
        "0.0.0.0/0",
        "--allow-world",
    ]);
    assert_eq!(ingress_ports(&ec2, &sg).await, vec![443]);
    let listed = console.json(&["security-group", "list", "--filter", "tag:Team=web"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["ingress"][0]["from_port"], 443);
    console.ok(&["security-group", "delete", &sg]);
}

/// A volume is created tagged, refused a device name EC2 would not take, attached under a good
/// one, listed by tag, detached and deleted.
fn assert_volume_attached_by_name(console: &Console, zone: &str, instance: &str) {
    let made = console.json(&[
        "volume",
        "create",
        "--availability-zone",
        zone,
        "--size",
        "20",
        "--type",
        "io1",
        "--iops",
        "500",
        "--tag",
        "Role=data",
        "--wait",
    ]);
    let vol = made["resource_id"].as_str().unwrap().to_owned();
    assert_eq!(made["volume"]["size_gib"], 20);
    let err = failed(console.cli(&[
        "volume",
        "attach",
        &vol,
        "--instance",
        instance,
        "--device",
        "/dev/nvme1n1",
    ]));
    assert!(err.contains("device"), "{err}");
    console.ok(&[
        "volume",
        "attach",
        &vol,
        "--instance",
        instance,
        "--device",
        "/dev/sdf",
    ]);
    let listed = console.json(&["volume", "list", "--tag", "Role=data"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["attachments"][0]["device"], "/dev/sdf");
    console.ok(&["volume", "detach", &vol]);
    console.ok(&["volume", "delete", &vol]);
}

/// An image of the instance, tagged on creation, listed by its tag and deregistered.
fn assert_image_created_and_tagged(console: &Console, instance: &str) {
    let image = console.json(&[
        "image",
        "create",
        instance,
        "--name",
        "web-2026.11.23",
        "--no-reboot",
        "--tag",
        "Release=1",
        "--wait",
    ]);
    let ami = image["resource_id"].as_str().unwrap().to_owned();
    let mine = console.json(&["image", "list", "--filter", "tag:Release=1"]);
    assert_eq!(mine[0]["image_id"].as_str(), Some(ami.as_str()));
    assert_eq!(mine[0]["name"], "web-2026.11.23");
    console.ok(&["image", "deregister", &ami]);
    let left = console.json(&["image", "list", "--filter", "tag:Release=1"]);
    assert!(left.as_array().unwrap().is_empty(), "{left}");
}

#[tokio::test(flavor = "multi_thread")]
async fn volumes_and_images_are_created_tagged_and_checked() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);
    let instance = instances(&console, &net, "1").remove(0);
    let zone = zone_of(&ec2, &instance).await;
    let volumes_in_ec2 = || async { ec2.describe_volumes().send().await.unwrap().volumes().len() };
    let before = volumes_in_ec2().await;

    // Sizes, IOPS and device names are checked before EC2.
    for (args, field) in [
        (vec!["--type", "st1", "--size", "100"], "size_gib"),
        (vec!["--type", "gp3", "--size", "0"], "size_gib"),
        (vec!["--type", "io1", "--size", "8"], "iops"),
        (vec!["--type", "gp5", "--size", "8"], "volume_type"),
    ] {
        let mut all = vec!["volume", "create", "--availability-zone", &zone];
        all.extend(args);
        let err = failed(console.cli(&all));
        assert!(err.contains(field), "{all:?}: {err}");
    }
    assert_eq!(volumes_in_ec2().await, before);

    assert_volume_attached_by_name(&console, &zone, &instance);

    assert_image_created_and_tagged(&console, &instance);

    // Unknown resources are named; EC2's own errors come back with AWS's code.
    let err = failed(console.cli(&["volume", "delete", "vol-0123456789abcdef0"]));
    assert!(err.contains("no volume vol-0123456789abcdef0"), "{err}");
    let spare = console.json(&[
        "volume",
        "create",
        "--availability-zone",
        &zone,
        "--size",
        "1",
    ]);
    let err = failed(console.cli(&[
        "volume",
        "attach",
        spare["resource_id"].as_str().unwrap(),
        "--instance",
        "i-0123456789abcdef0",
        "--device",
        "/dev/sdg",
    ]));
    assert!(err.contains("InvalidInstanceID.NotFound"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_show_status_checks_and_stream_changes() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);
    let instance = instances(&console, &net, "1").remove(0);

    let listed = console.json(&["instances", "--status"]);
    assert_eq!(listed["instances"][0]["status"]["instance_status"], "ok");
    let table = console.ok(&["instances", "--status"]);
    assert!(table.contains("SYSTEM CHECK"), "{table}");

    // The stream: every instance first, then `ready`, then changes as they happen.
    let client = reqwest::Client::new();
    let mut response = client
        .get(format!("{}/v1/instances/watch?interval=0.3", console.url))
        .bearer_auth(console.token())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while !text.contains("event: ready") {
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .expect("ready within 30 s")
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains(&instance), "{text}");
    console.ok(&["instance", "stop", &instance, "--account", "dev"]);
    let mut after = String::new();
    while !(after.contains(&instance) && after.contains("\"state\":\"stopp")) {
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .expect("the stop is streamed within 30 s")
            .unwrap()
            .unwrap();
        after.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(after.contains("event: instance"), "{after}");
}

#[tokio::test(flavor = "multi_thread")]
async fn user_opening_many_watches_of_one_page_costs_ec2_one_poller() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);
    instances(&console, &net, "1");

    // Eight tabs on the same page, each looking every 0.5 s for about 3 s.
    let client = reqwest::Client::new();
    moto.record().await;
    let mut streams = Vec::new();
    for _ in 0..8 {
        let response = client
            .get(format!("{}/v1/instances/watch?interval=0.5", console.url))
            .bearer_auth(console.token())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        streams.push(response);
    }
    for response in &mut streams {
        let mut text = String::new();
        while !text.contains("event: ready") {
            let chunk = tokio::time::timeout(std::time::Duration::from_secs(30), response.chunk())
                .await
                .expect("ready within 30 s")
                .unwrap()
                .unwrap();
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let calls = moto.calls("DescribeInstances").await;
    drop(streams);
    // One poller: about 3.5 s / 0.5 s looks (plus slack); eight pollers would be over 50.
    assert!((1..=14).contains(&calls), "{calls} DescribeInstances calls");
}

/// `GET /v1/subnets` as `token` sees it: the ids listed.
async fn subnets_seen(console: &Console, token: &str) -> Vec<String> {
    let (_, list) = api_get(console, token, "/v1/subnets?account=dev").await;
    list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items in {list}"))
        .iter()
        .map(|s| s["subnet_id"].as_str().unwrap().to_owned())
        .collect()
}

/// The deploy page picks subnets from `GET /v1/subnets`: each with its zone and free addresses,
/// shown only to a caller who may describe it. A user allowed DescribeSubnets only on `env=dev`
/// subnets does not learn that the `env=prod` one exists.
#[tokio::test(flavor = "multi_thread")]
async fn user_allowed_dev_subnets_does_not_see_the_prod_subnet() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let tagged = |env: &str| {
        aws_sdk_ec2::types::TagSpecification::builder()
            .resource_type(aws_sdk_ec2::types::ResourceType::Subnet)
            .tags(
                aws_sdk_ec2::types::Tag::builder()
                    .key("env")
                    .value(env)
                    .build(),
            )
            .build()
    };
    let mut made = Vec::new();
    for (env, cidr) in [("dev", "127.0.1.0/24"), ("prod", "127.0.2.0/24")] {
        let out = ec2
            .create_subnet()
            .vpc_id(&net.vpc_id)
            .cidr_block(cidr)
            .tag_specifications(tagged(env))
            .send()
            .await
            .unwrap();
        made.push(out.subnet().unwrap().subnet_id().unwrap().to_owned());
    }
    let console = Console::start();
    console.login_with_account(&moto);

    let (_, all) = api_get(&console, &console.token(), "/v1/subnets?account=dev").await;
    let dev = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["subnet_id"] == made[0].as_str())
        .unwrap_or_else(|| panic!("the dev subnet is not listed: {all}"));
    assert_eq!(dev["account"], "dev");
    assert_eq!(dev["cidr_block"], "127.0.1.0/24");
    assert!(dev["availability_zone"]
        .as_str()
        .unwrap()
        .starts_with("us-east-1"));
    assert!(dev["available_ip_address_count"].as_i64().unwrap() > 200);
    assert_eq!(dev["vpc_id"], net.vpc_id.as_str());

    let dana = console.add_user(
        "dana",
        &[json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "airlock:UseAccount", "Resource": ACCOUNT_ARN},
            {"Effect": "Allow", "Action": "ec2:DescribeSubnets", "Resource": "*",
             "Condition": {"StringEquals": {"ec2:ResourceTag/env": "dev"}}},
        ]})],
    );
    assert_eq!(
        subnets_seen(&console, &dana.token()).await,
        vec![made[0].clone()]
    );
    // The same from the command line.
    let cli = dana.json(&["subnets", "--account", "dev"]);
    assert_eq!(cli.as_array().unwrap().len(), 1, "{cli}");
    assert_eq!(cli[0]["subnet_id"], made[0].as_str());
    let table = console.ok(&["subnets", "--filter", "tag:env=prod"]);
    assert!(
        table.contains(&made[1]) && table.contains("127.0.2.0/24"),
        "{table}"
    );
    assert!(!table.contains(&made[0]), "{table}");
    let listed = console
        .audit_records(&["--user", "dana"])
        .into_iter()
        .any(|r| r["action"] == "ec2:DescribeSubnets");
    assert!(listed, "the listing is audited");
}

/// `GET /v1/instances/trend` as `token` sees it.
async fn trend_seen(console: &Console, token: &str, query: &str) -> (u16, Value) {
    api_get(console, token, &format!("/v1/instances/trend{query}")).await
}

/// Waits until the trend has `n` points (the schedule holder samples once a minute of the test
/// clock, looking every second).
async fn trend_points(console: &Console, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        let (_, t) = trend_seen(console, &console.token(), "").await;
        let samples = t["samples"].as_array().cloned().unwrap_or_default();
        if samples.len() >= n {
            return samples;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("the trend never reached {n} points");
}

/// The instances page's trend: instances by state sampled once a minute (of the test clock)
/// and summed over accounts; a user who may describe only some of an account's instances gets
/// no counts for it (a count is about every instance), and a bad query is named.
#[tokio::test(flavor = "multi_thread")]
async fn user_allowed_some_instances_gets_no_counts_of_the_account() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let dir = tempfile::tempdir().unwrap();
    let clock = dir.path().join("clock");
    let set = |t: chrono::DateTime<chrono::Utc>| std::fs::write(&clock, t.to_rfc3339()).unwrap();
    let now = chrono::Utc::now();
    let (a, _) = launch_tagged(&ec2, &net, &[("team", "web")]).await;
    launch_tagged(&ec2, &net, &[("team", "api")]).await;
    set(now - chrono::Duration::minutes(2));
    let clock_flag = clock.to_string_lossy().to_string();
    let console = Console::start_with(&["--schedule-clock-file", &clock_flag]);
    // A new account is sampled at once, not at the next minute.
    console.login_with_account(&moto);

    let first = trend_points(&console, 1).await;
    assert_eq!(first[0]["counts"], json!({"running": 2}), "{first:?}");
    ec2.stop_instances().instance_ids(&a).send().await.unwrap();
    // Past the shared listing's lifetime, then the next minute of the test clock.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    set(now - chrono::Duration::minutes(1));
    let both = trend_points(&console, 2).await;
    let last = &both[both.len() - 1]["counts"];
    assert_eq!(last["running"], 1, "{both:?}");
    assert!(
        last["stopping"] == 1 || last["stopped"] == 1,
        "the stopped instance is counted: {both:?}"
    );

    let gail = console.add_user(
        "gail",
        &[json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "airlock:UseAccount", "Resource": ACCOUNT_ARN},
            {"Effect": "Allow", "Action": "ec2:DescribeInstances", "Resource": "*",
             "Condition": {"StringEquals": {"ec2:ResourceTag/team": "web"}}},
        ]})],
    );
    let (status, t) = trend_seen(&console, &gail.token(), "").await;
    assert_eq!(status, 200);
    assert_eq!(t["accounts"], json!([]), "{t}");
    assert_eq!(t["samples"], json!([]), "{t}");

    let (status, t) = trend_seen(&console, &console.token(), "?minutes=0").await;
    assert_eq!(status, 400, "{t}");
    assert_eq!(t["error"]["field"], "minutes", "{t}");
    let (status, t) = trend_seen(&console, &console.token(), "?hours=1").await;
    assert_eq!(status, 400, "{t}");
    assert!(
        t["error"]["message"].as_str().unwrap().contains("hours"),
        "{t}"
    );
}

/// Hana may move addresses only onto `env=dev` instances. Her decisions read the instances'
/// tags, so they are looked up fresh for every move: a tag changed in EC2 directly counts at
/// once, both ways. An administrator's policies read no tags, so the same move costs EC2 one
/// call, the change itself.
#[tokio::test(flavor = "multi_thread")]
async fn user_allowed_dev_instances_is_decided_on_tags_changed_a_moment_ago() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);
    let (dev, _) = launch_tagged(&ec2, &net, &[("env", "dev")]).await;
    let (prod, _) = launch_tagged(&ec2, &net, &[("env", "prod")]).await;
    let alloc = console.json(&["address", "allocate"])["resource_id"]
        .as_str()
        .unwrap()
        .to_owned();

    moto.record().await;
    console.ok(&["address", "move", &alloc, "--to", &prod]);
    assert_eq!(moto.actions().await, ["AssociateAddress"]);
    assert_eq!(
        holder_of(&ec2, &alloc).await.as_deref(),
        Some(prod.as_str())
    );

    let hana = console.add_user(
        "hana",
        &[json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "airlock:UseAccount", "Resource": ACCOUNT_ARN},
            {"Effect": "Allow", "Action": "ec2:AssociateAddress", "Resource": "arn:aws:ec2:*:*:elastic-ip/*"},
            {"Effect": "Allow", "Action": "ec2:AssociateAddress", "Resource": "arn:aws:ec2:*:*:instance/*",
             "Condition": {"StringEquals": {"ec2:ResourceTag/env": "dev"}}},
        ]})],
    );
    moto.record().await;
    hana.ok(&["address", "move", &alloc, "--to", &dev, "--account", "dev"]);
    let actions = moto.actions().await;
    assert!(
        actions.contains(&"DescribeInstances".to_owned())
            && actions.last().map(String::as_str) == Some("AssociateAddress"),
        "{actions:?}"
    );
    assert_eq!(holder_of(&ec2, &alloc).await.as_deref(), Some(dev.as_str()));

    // Retagged in EC2 directly, not through the console: the next decisions see it.
    for (id, env) in [(&dev, "prod"), (&prod, "dev")] {
        ec2.create_tags()
            .resources(id.as_str())
            .tags(
                aws_sdk_ec2::types::Tag::builder()
                    .key("env")
                    .value(env)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    hana.ok(&["address", "move", &alloc, "--to", &prod, "--account", "dev"]);
    assert_eq!(
        holder_of(&ec2, &alloc).await.as_deref(),
        Some(prod.as_str())
    );
    let refused = failed(hana.cli(&["address", "move", &alloc, "--to", &dev, "--account", "dev"]));
    assert!(
        refused.contains("hana is not authorized to perform ec2:AssociateAddress"),
        "{refused}"
    );
    assert_eq!(
        holder_of(&ec2, &alloc).await.as_deref(),
        Some(prod.as_str())
    );
}
