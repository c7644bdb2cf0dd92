//! Printing a family's listing: the columns people read for each family, or the items as JSON.

use crate::cli::Output;
use crate::output::print;
use airlock_cloud::Tag;
use airlock_fleet::FleetFamily;
use anyhow::Result;
use serde_json::Value;

/// A field of an item as a table cell (`-` when empty).
pub(crate) fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => "-".into(),
    }
}

fn tags_cell(v: &Value) -> String {
    let tags: Vec<Tag> = v
        .get("tags")
        .and_then(|t| serde_json::from_value(t.clone()).ok())
        .unwrap_or_default();
    tags.iter()
        .map(|t| format!("{}={}", t.key, t.value))
        .collect::<Vec<_>>()
        .join(",")
}

/// The table columns of a family: header and field. The second column is the item's state,
/// which [`attached_to`] completes.
fn columns(family: FleetFamily) -> &'static [(&'static str, &'static str)] {
    match family {
        FleetFamily::Addresses => &[
            ("ALLOCATION", "allocation_id"),
            ("PUBLIC IP", "public_ip"),
            ("INSTANCE", "instance_id"),
            ("INTERFACE", "network_interface_id"),
            ("PRIVATE IP", "private_ip"),
        ],
        FleetFamily::NetworkInterfaces => &[
            ("INTERFACE", "network_interface_id"),
            ("STATUS", "status"),
            ("PRIVATE IP", "private_ip"),
            ("SUBNET", "subnet_id"),
            ("ZONE", "availability_zone"),
        ],
        FleetFamily::SecurityGroups => &[
            ("GROUP", "group_id"),
            ("NAME", "group_name"),
            ("VPC", "vpc_id"),
            ("DESCRIPTION", "description"),
        ],
        FleetFamily::KeyPairs => &[
            ("NAME", "key_name"),
            ("ID", "key_pair_id"),
            ("TYPE", "key_type"),
            ("FINGERPRINT", "key_fingerprint"),
        ],
        FleetFamily::Volumes => &[
            ("VOLUME", "volume_id"),
            ("STATE", "state"),
            ("SIZE GIB", "size_gib"),
            ("TYPE", "volume_type"),
            ("ZONE", "availability_zone"),
        ],
        FleetFamily::Snapshots => &[
            ("SNAPSHOT", "snapshot_id"),
            ("STATE", "state"),
            ("PROGRESS", "progress"),
            ("VOLUME", "volume_id"),
            ("SIZE GIB", "volume_size_gib"),
        ],
        FleetFamily::Images => &[
            ("IMAGE", "image_id"),
            ("NAME", "name"),
            ("STATE", "state"),
            ("CREATED", "creation_date"),
        ],
    }
}

/// What an interface or a volume is attached to, shown beside its state.
fn attached_to(family: FleetFamily, v: &Value) -> Option<String> {
    match family {
        FleetFamily::NetworkInterfaces => v
            .get("attachment")
            .and_then(|a| a.get("instance_id"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        FleetFamily::Volumes => {
            let attached: Vec<String> = v
                .get("attachments")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|x| format!("{}@{}", text(x, "instance_id"), text(x, "device")))
                        .collect()
                })
                .unwrap_or_default();
            (!attached.is_empty()).then(|| attached.join(","))
        }
        _ => None,
    }
}

fn row(family: FleetFamily, v: &Value) -> Vec<String> {
    let mut row: Vec<String> = columns(family).iter().map(|(_, k)| text(v, k)).collect();
    if let (Some(on), Some(state)) = (attached_to(family, v), row.get_mut(1)) {
        *state = format!("{state} ({on})");
    }
    row.push(tags_cell(v));
    row
}

/// Prints a family's items as a table (with their tags) or as JSON.
pub(super) fn print_list(family: FleetFamily, items: &[Value], output: Output) -> Result<()> {
    let mut headers: Vec<&str> = columns(family).iter().map(|(h, _)| *h).collect();
    headers.push("TAGS");
    print(output, &items, &headers, || {
        items.iter().map(|v| row(family, v)).collect()
    })
}
