//! Images (AMIs): create from an instance (the image tagged on creation), deregister.
//! Everything an image operation is (its request, validation, look-ups and EC2 calls) is here,
//! so adding one touches this file only.

use crate::facts::Facts;
use crate::request::body;
use crate::run::{none, FleetError, Outcome, Recorder};
use crate::validate::{self as v, Checked};
use airlock_cloud::{CreateImageInput, Ec2, Filter, Image, Tag};
use serde::{Deserialize, Serialize};

/// `CreateImage` from an instance, the image tagged on creation.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateImage {
    /// The instance.
    pub instance_id: String,
    /// The image name.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Do not reboot the instance first (file systems may be inconsistent).
    #[serde(default)]
    pub no_reboot: bool,
    /// Tags applied on creation.
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// `DeregisterImage`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeregisterImage {
    /// The image (`ami-…`).
    pub image_id: String,
}

/// An image operation.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(missing_docs)]
pub enum ImageRequest {
    Create(CreateImage),
    Deregister(DeregisterImage),
}

impl ImageRequest {
    /// The operation `verb` with its JSON body; `Ok(None)` when there is no such verb.
    pub fn parse(verb: &str, value: serde_json::Value) -> Checked<Option<Self>> {
        Ok(Some(match verb {
            "create" => Self::Create(body(value)?),
            "deregister" => Self::Deregister(body(value)?),
            _ => return Ok(None),
        }))
    }

    /// The verb in the operation's path.
    pub fn verb(&self) -> &'static str {
        match self {
            Self::Create(_) => "create",
            Self::Deregister(_) => "deregister",
        }
    }

    /// The EC2 action the operation is known by.
    pub fn action(&self) -> String {
        let name = match self {
            Self::Create(_) => "CreateImage",
            Self::Deregister(_) => "DeregisterImage",
        };
        format!("ec2:{name}")
    }

    /// The tags applied on creation.
    pub fn tags(&self) -> &[Tag] {
        match self {
            Self::Create(r) => &r.tags,
            Self::Deregister(_) => &[],
        }
    }

    pub(crate) fn validate(&mut self) -> Checked {
        match self {
            Self::Create(r) => {
                v::ec2_id("instance_id", &r.instance_id, "i-")?;
                v::image_name("name", &r.name)?;
                v::optional_description("description", r.description.as_deref())
            }
            Self::Deregister(r) => v::ec2_id("image_id", &r.image_id, "ami-"),
        }
    }

    pub(crate) async fn prepare(&self, ec2: &dyn Ec2, f: &mut Facts) -> Result<(), FleetError> {
        match self {
            Self::Create(r) => f.load_instances(ec2, &[&r.instance_id]).await,
            Self::Deregister(r) => f.load_image(ec2, &r.image_id).await,
        }
    }

    pub(crate) async fn run(
        &self,
        ec2: &dyn Ec2,
        rec: &mut Recorder<'_>,
    ) -> Result<Outcome, FleetError> {
        match self {
            Self::Create(r) => r.run(ec2, rec).await,
            Self::Deregister(r) => {
                let out = ec2.deregister_image(&r.image_id).await;
                let message = format!("deregistered {}", r.image_id);
                rec.changed("DeregisterImage", &[("image", &r.image_id)], out, message)
            }
        }
    }
}

/// The account's own images that match `filters`.
pub async fn list(ec2: &dyn Ec2, filters: &[Filter]) -> Result<Vec<Image>, FleetError> {
    Ok(ec2.describe_images(filters, &[]).await?)
}

impl CreateImage {
    async fn run(&self, ec2: &dyn Ec2, rec: &mut Recorder<'_>) -> Result<Outcome, FleetError> {
        let out = ec2
            .create_image(&CreateImageInput {
                instance_id: self.instance_id.clone(),
                name: self.name.clone(),
                description: self.description.clone(),
                no_reboot: self.no_reboot,
                tags: self.tags.clone(),
            })
            .await;
        let id = rec.call(
            "CreateImage",
            &[("instance", &self.instance_id), ("image", "*")],
            out,
            none,
        )?;
        let message = format!("creating {id} ({}) from {}", self.name, self.instance_id);
        Ok(Outcome::created(message, &id))
    }
}
