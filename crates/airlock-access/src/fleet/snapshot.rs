//! What AWS checks for snapshot operations.

use super::On;
use crate::check::{Check, ScopeChecks};
use airlock_cloud::Scope;
use airlock_fleet::snapshot::SnapshotRequest;

pub(super) fn checks(request: &SnapshotRequest, on: &On) -> Vec<Check> {
    use SnapshotRequest as R;
    let s = on.s;
    match request {
        R::Create(r) => {
            let source = on.facts.volume(&r.volume_id);
            let mut out = vec![
                on.volume("ec2:CreateSnapshot", &r.volume_id),
                s.created("ec2:CreateSnapshot", "snapshot", "*", &r.tags)
                    .with("ec2:ParentVolume", s.arn("volume", &r.volume_id))
                    .with_some(
                        "ec2:VolumeSize",
                        source.and_then(|v| v.size_gib).map(|v| v.to_string()),
                    ),
            ];
            out.extend(s.tagging("CreateSnapshot", "snapshot", "*", &r.tags));
            out
        }
        R::Delete(r) => vec![on.snapshot("ec2:DeleteSnapshot", &r.snapshot_id)],
        R::Copy(r) => {
            // The copy is created in the destination region, and named there.
            let dest = Scope {
                region: r.destination_region.clone(),
                account_id: s.account_id.clone(),
            };
            let mut out = vec![
                on.snapshot("ec2:CopySnapshot", &r.snapshot_id),
                dest.created("ec2:CopySnapshot", "snapshot", "*", &r.tags),
            ];
            out.extend(dest.tagging("CopySnapshot", "snapshot", "*", &r.tags));
            out
        }
    }
}
