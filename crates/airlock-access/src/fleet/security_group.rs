//! What AWS checks for security group operations.

use super::On;
use crate::check::{Check, ScopeChecks};
use airlock_fleet::security_group::SecurityGroupRequest;

pub(super) fn checks(request: &SecurityGroupRequest, on: &On) -> Vec<Check> {
    use SecurityGroupRequest as R;
    match request {
        R::Create(r) => {
            let action = "ec2:CreateSecurityGroup";
            let mut out = vec![on.s.created(action, "security-group", "*", &r.tags)];
            if let Some(vpc) = &r.vpc_id {
                out.push(on.existing(action, "vpc", vpc));
            }
            out.extend(on.s.tagging("CreateSecurityGroup", "security-group", "*", &r.tags));
            out
        }
        // The action names the rules' direction.
        R::Authorize(r) | R::Revoke(r) => vec![on.group(&request.action(), &r.group_id)],
        R::Delete(r) => vec![on.group("ec2:DeleteSecurityGroup", &r.group_id)],
    }
}
