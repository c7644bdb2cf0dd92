//! Listing a family's resources: EC2 filters from a listing's options, and each family's typed
//! `Describe…` turned into JSON items for the console's `GET /v1/{family}` and the CLI.

use crate::family::FleetFamily;
use crate::run::FleetError;
use crate::validate::FieldError;
use airlock_cloud::{Ec2, Filter};
use serde::Serialize;

/// `DescribeX` of a family by EC2 filters, each resource as JSON.
pub async fn describe(
    ec2: &dyn Ec2,
    family: FleetFamily,
    filters: &[Filter],
) -> Result<Vec<serde_json::Value>, FleetError> {
    use FleetFamily as F;
    Ok(match family {
        F::Addresses => json(crate::address::list(ec2, filters).await?),
        F::NetworkInterfaces => json(crate::interface::list(ec2, filters).await?),
        F::SecurityGroups => json(crate::security_group::list(ec2, filters).await?),
        F::KeyPairs => json(crate::key_pair::list(ec2, filters).await?),
        F::Volumes => json(crate::volume::list(ec2, filters).await?),
        F::Snapshots => json(crate::snapshot::list(ec2, filters).await?),
        F::Images => json(crate::image::list(ec2, filters).await?),
    })
}

fn json<T: Serialize>(found: Vec<T>) -> Vec<serde_json::Value> {
    found
        .into_iter()
        .filter_map(|x| serde_json::to_value(x).ok())
        .collect()
}

/// EC2 filters from a listing's options: `tag:KEY=VALUE` for each tag, the deployment's
/// `airlock:deployment` tag, and raw `NAME=VALUE[,VALUE…]` filters.
pub fn filters(
    deployment: Option<&str>,
    tags: &[String],
    raw: &[String],
) -> Result<Vec<Filter>, FieldError> {
    let mut out = Vec::new();
    if let Some(d) = deployment {
        out.push(Filter::new("tag:airlock:deployment", d));
    }
    for (i, t) in tags.iter().enumerate() {
        let (k, v) = t.split_once('=').ok_or_else(|| {
            FieldError::new(format!("tag[{i}]"), format!("{t:?} is not KEY=VALUE"))
        })?;
        if k.is_empty() {
            return Err(FieldError::new(format!("tag[{i}]"), "the tag key is empty"));
        }
        out.push(Filter::new(format!("tag:{k}"), v));
    }
    for (i, f) in raw.iter().enumerate() {
        let (name, values) = f.split_once('=').ok_or_else(|| {
            FieldError::new(
                format!("filter[{i}]"),
                format!("{f:?} is not NAME=VALUE (for example instance-state-name=running)"),
            )
        })?;
        if name.is_empty() {
            return Err(FieldError::new(
                format!("filter[{i}]"),
                "the filter name is empty",
            ));
        }
        out.push(Filter {
            name: name.to_owned(),
            values: values.split(',').map(str::to_owned).collect(),
        });
    }
    Ok(out)
}
