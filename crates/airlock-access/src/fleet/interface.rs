//! What AWS checks for network interface operations.

use super::On;
use crate::check::{Check, ScopeChecks};
use airlock_fleet::interface::{CreateNetworkInterface, InterfaceRequest};

pub(super) fn checks(request: &InterfaceRequest, on: &On) -> Vec<Check> {
    use InterfaceRequest as R;
    match request {
        R::Create(r) => create(r, on),
        R::Attach(r) => vec![
            on.interface("ec2:AttachNetworkInterface", &r.network_interface_id),
            on.instance("ec2:AttachNetworkInterface", &r.instance_id),
        ],
        R::Detach(r) => detach(&r.network_interface_id, on),
        R::Move(r) => {
            let id = &r.network_interface_id;
            let mut out = detach(id, on);
            out.push(on.interface("ec2:AttachNetworkInterface", id));
            out.push(on.instance("ec2:AttachNetworkInterface", &r.to_instance_id));
            // A failed attach puts the interface back, which is an attach to the old instance.
            if let Some(i) = on.facts.attached_instance(id) {
                out.push(on.instance("ec2:AttachNetworkInterface", i));
            }
            out
        }
        R::Delete(r) => vec![on.interface("ec2:DeleteNetworkInterface", &r.network_interface_id)],
    }
}

fn create(r: &CreateNetworkInterface, on: &On) -> Vec<Check> {
    let action = "ec2:CreateNetworkInterface";
    let mut out = vec![
        on.s.created(action, "network-interface", "*", &r.tags)
            .with("ec2:Subnet", on.s.arn("subnet", &r.subnet_id)),
        on.existing(action, "subnet", &r.subnet_id),
    ];
    for g in &r.security_group_ids {
        out.push(on.group(action, g));
    }
    out.extend(on.s.tagging("CreateNetworkInterface", "network-interface", "*", &r.tags));
    out
}

/// Detaching an interface: the interface, and the instance it is attached to.
fn detach(id: &str, on: &On) -> Vec<Check> {
    let mut out = vec![on.interface("ec2:DetachNetworkInterface", id)];
    if let Some(i) = on.facts.attached_instance(id) {
        out.push(on.instance("ec2:DetachNetworkInterface", i));
    }
    out
}
