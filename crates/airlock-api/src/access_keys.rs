//! Airlock access keys: credentials for AWS tools (the `aws` CLI, SDKs, Terraform) that sign
//! EC2 requests to the console's EC2 endpoint and act as their console user.
//!
//! The secret is in one body only, the answer to its creation; every other view shows the id.

use crate::state::AccessKeyStatus;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /v1/access-keys`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAccessKeyRequest {
    /// The user the key acts as; the caller when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Seconds until the key stops working; it never expires when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_seconds: Option<u64>,
}

/// An access key as the API shows it: never the secret.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
#[schema(as = AccessKey)]
pub struct AccessKeyView {
    /// The key's id, what clients send in their signature's credential.
    pub access_key_id: String,
    /// The console user it acts as.
    pub user: String,
    /// Whether it may sign requests.
    pub status: AccessKeyStatus,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339; `None` when it does not expire.
    pub expires_at: Option<String>,
    /// RFC 3339, to the minute: when a request it signed was last accepted.
    pub last_used_at: Option<String>,
}

/// The answer to `POST /v1/access-keys`: the key and, this once, its secret.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = NewAccessKey)]
pub struct NewAccessKeyView {
    /// The key.
    #[serde(flatten)]
    pub key: AccessKeyView,
    /// The secret access key: shown once, stored sealed, never shown again.
    #[serde(serialize_with = "crate::expose")]
    #[schema(value_type = String)]
    pub secret_access_key: SecretString,
}

/// `GET /v1/access-keys`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct AccessKeyList {
    /// The user's keys, oldest first.
    pub access_keys: Vec<AccessKeyView>,
}

/// `PUT /v1/access-keys/{id}/status`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAccessKeyRequest {
    /// `Active` or `Inactive`.
    pub status: AccessKeyStatus,
}
