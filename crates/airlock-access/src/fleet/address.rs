//! What AWS checks for Elastic IP operations.

use super::On;
use crate::check::{Check, ScopeChecks};
use airlock_fleet::address::AddressRequest;

pub(super) fn checks(request: &AddressRequest, on: &On) -> Vec<Check> {
    use AddressRequest as R;
    match request {
        R::Allocate(r) => {
            let mut out = vec![on
                .s
                .created("ec2:AllocateAddress", "elastic-ip", "*", &r.tags)];
            out.extend(on.s.tagging("AllocateAddress", "elastic-ip", "*", &r.tags));
            out
        }
        R::Associate(r) => {
            let mut out = vec![on.address("ec2:AssociateAddress", &r.allocation_id)];
            if let Some(i) = &r.instance_id {
                out.push(on.instance("ec2:AssociateAddress", i));
            }
            if let Some(n) = &r.network_interface_id {
                out.push(on.interface("ec2:AssociateAddress", n));
            }
            out
        }
        R::Move(r) => vec![
            on.address("ec2:AssociateAddress", &r.allocation_id),
            on.instance("ec2:AssociateAddress", &r.to_instance_id),
        ],
        R::Disassociate(r) => vec![on.address("ec2:DisassociateAddress", &r.allocation_id)],
        R::Release(r) => vec![on.address("ec2:ReleaseAddress", &r.allocation_id)],
    }
}
