//! Key pairs: create (the private key returned once, never stored), import an OpenSSH public
//! key, delete. Everything a key pair operation is (its request, validation, look-ups and EC2
//! calls) is here, so adding one touches this file only.

use crate::facts::Facts;
use crate::request::body;
use crate::run::{none, FleetError, Outcome, PrivateKey, Recorder};
use crate::validate::{self as v, Checked, FieldError};
use airlock_cloud::{Ec2, Filter, KeyPair, Tag};
use serde::{Deserialize, Serialize};

/// `CreateKeyPair`: the private key is returned to the caller once, never stored.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyPair {
    /// The key pair's name.
    pub key_name: String,
    /// `ed25519` (default) or `rsa`.
    #[serde(default = "default_key_type")]
    pub key_type: String,
    /// Tags applied on creation.
    #[serde(default)]
    pub tags: Vec<Tag>,
}

fn default_key_type() -> String {
    "ed25519".to_owned()
}

/// `ImportKeyPair` of an OpenSSH public key.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportKeyPair {
    /// The key pair's name.
    pub key_name: String,
    /// The public key, one OpenSSH line.
    pub public_key: String,
    /// Tags applied on creation.
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// `DeleteKeyPair`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteKeyPair {
    /// The key pair's name.
    pub key_name: String,
}

/// A key pair operation.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(missing_docs)]
pub enum KeyPairRequest {
    Create(CreateKeyPair),
    Import(ImportKeyPair),
    Delete(DeleteKeyPair),
}

impl KeyPairRequest {
    /// The operation `verb` with its JSON body; `Ok(None)` when there is no such verb.
    pub fn parse(verb: &str, value: serde_json::Value) -> Checked<Option<Self>> {
        Ok(Some(match verb {
            "create" => Self::Create(body(value)?),
            "import" => Self::Import(body(value)?),
            "delete" => Self::Delete(body(value)?),
            _ => return Ok(None),
        }))
    }

    /// The verb in the operation's path.
    pub fn verb(&self) -> &'static str {
        match self {
            Self::Create(_) => "create",
            Self::Import(_) => "import",
            Self::Delete(_) => "delete",
        }
    }

    /// The EC2 action the operation is known by.
    pub fn action(&self) -> String {
        let name = match self {
            Self::Create(_) => "CreateKeyPair",
            Self::Import(_) => "ImportKeyPair",
            Self::Delete(_) => "DeleteKeyPair",
        };
        format!("ec2:{name}")
    }

    /// The tags applied on creation.
    pub fn tags(&self) -> &[Tag] {
        match self {
            Self::Create(r) => &r.tags,
            Self::Import(r) => &r.tags,
            Self::Delete(_) => &[],
        }
    }

    pub(crate) fn validate(&mut self) -> Checked {
        match self {
            Self::Create(r) => {
                v::key_name("key_name", &r.key_name)?;
                if !matches!(r.key_type.as_str(), "rsa" | "ed25519") {
                    return Err(FieldError::new(
                        "key_type",
                        format!("{:?} is not a key type: use ed25519 or rsa", r.key_type),
                    ));
                }
                Ok(())
            }
            Self::Import(r) => {
                v::key_name("key_name", &r.key_name)?;
                v::public_key("public_key", &r.public_key)
            }
            Self::Delete(r) => v::key_name("key_name", &r.key_name),
        }
    }

    pub(crate) async fn prepare(&self, ec2: &dyn Ec2, f: &mut Facts) -> Result<(), FleetError> {
        match self {
            Self::Create(_) | Self::Import(_) => Ok(()),
            Self::Delete(r) => f.load_key_pair(ec2, &r.key_name).await,
        }
    }

    pub(crate) async fn run(
        &self,
        ec2: &dyn Ec2,
        rec: &mut Recorder<'_>,
    ) -> Result<Outcome, FleetError> {
        match self {
            Self::Create(r) => r.run(ec2, rec).await,
            Self::Import(r) => r.run(ec2, rec).await,
            Self::Delete(r) => {
                let out = ec2.delete_key_pair(&r.key_name).await;
                let message = format!("deleted key pair {:?}", r.key_name);
                rec.changed("DeleteKeyPair", &[("key-pair", &r.key_name)], out, message)
            }
        }
    }
}

/// The account's key pairs that match `filters`.
pub async fn list(ec2: &dyn Ec2, filters: &[Filter]) -> Result<Vec<KeyPair>, FleetError> {
    Ok(ec2.describe_key_pairs(filters, &[]).await?)
}

impl CreateKeyPair {
    async fn run(&self, ec2: &dyn Ec2, rec: &mut Recorder<'_>) -> Result<Outcome, FleetError> {
        let out = ec2
            .create_key_pair(&self.key_name, &self.key_type, &self.tags)
            .await;
        let k = rec.call("CreateKeyPair", &[("key-pair", &self.key_name)], out, none)?;
        Ok(Outcome {
            message: format!(
                "created key pair {:?}; its private key is in this answer only",
                self.key_name
            ),
            resource_id: k.key_pair.key_pair_id.clone(),
            key_pair: Some(k.key_pair),
            private_key: Some(PrivateKey(k.private_key)),
            ..Outcome::default()
        })
    }
}

impl ImportKeyPair {
    async fn run(&self, ec2: &dyn Ec2, rec: &mut Recorder<'_>) -> Result<Outcome, FleetError> {
        let out = ec2
            .import_key_pair(&self.key_name, &self.public_key, &self.tags)
            .await;
        let k = rec.call("ImportKeyPair", &[("key-pair", &self.key_name)], out, none)?;
        Ok(Outcome {
            message: format!("imported key pair {:?}", self.key_name),
            resource_id: k.key_pair_id.clone(),
            key_pair: Some(k),
            ..Outcome::default()
        })
    }
}
