//! What AWS checks for image operations.

use super::On;
use crate::check::{Check, ScopeChecks};
use airlock_fleet::image::ImageRequest;

pub(super) fn checks(request: &ImageRequest, on: &On) -> Vec<Check> {
    use ImageRequest as R;
    let s = on.s;
    match request {
        R::Create(r) => {
            let mut out = vec![
                on.instance("ec2:CreateImage", &r.instance_id),
                s.created("ec2:CreateImage", "image", "*", &r.tags),
                s.created("ec2:CreateImage", "snapshot", "*", &[]),
            ];
            out.extend(s.tagging("CreateImage", "image", "*", &r.tags));
            out
        }
        R::Deregister(r) => {
            let owner = on.facts.image(&r.image_id).and_then(|i| i.owner_id.clone());
            vec![on
                .existing("ec2:DeregisterImage", "image", &r.image_id)
                .with_some("ec2:Owner", owner)]
        }
    }
}
