//! What AWS checks for volume operations.

use super::On;
use crate::check::{Check, ScopeChecks};
use airlock_fleet::volume::{CreateVolume, VolumeRequest};

pub(super) fn checks(request: &VolumeRequest, on: &On) -> Vec<Check> {
    use VolumeRequest as R;
    match request {
        R::Create(r) => create(r, on),
        R::Attach(r) => vec![
            on.volume("ec2:AttachVolume", &r.volume_id),
            on.instance("ec2:AttachVolume", &r.instance_id),
        ],
        R::Detach(r) => {
            let mut out = vec![on.volume("ec2:DetachVolume", &r.volume_id)];
            if let Some(v) = on.facts.volume(&r.volume_id) {
                for i in &v.attached_to {
                    out.push(on.instance("ec2:DetachVolume", i));
                }
            }
            out
        }
        R::Delete(r) => vec![on.volume("ec2:DeleteVolume", &r.volume_id)],
    }
}

/// A new volume, with its size from the snapshot it restores when none is given.
fn create(r: &CreateVolume, on: &On) -> Vec<Check> {
    let s = on.s;
    let size = r.size_gib.or_else(|| {
        r.snapshot_id
            .as_deref()
            .and_then(|x| on.facts.snapshot(x))
            .and_then(|x| x.volume_size_gib)
    });
    let mut out = vec![s
        .created("ec2:CreateVolume", "volume", "*", &r.tags)
        .with("ec2:VolumeType", r.volume_type.as_str())
        .with("ec2:Encrypted", r.encrypted.to_string())
        .with("ec2:AvailabilityZone", r.availability_zone.as_str())
        .with_some("ec2:VolumeIops", r.iops.map(|i| i.to_string()))
        .with_some(
            "ec2:ParentSnapshot",
            r.snapshot_id.as_deref().map(|x| s.arn("snapshot", x)),
        )
        .with_some("ec2:VolumeSize", size.map(|v| v.to_string()))];
    if let Some(x) = &r.snapshot_id {
        out.push(on.snapshot("ec2:CreateVolume", x));
    }
    out.extend(s.tagging("CreateVolume", "volume", "*", &r.tags));
    out
}
