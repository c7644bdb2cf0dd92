//! AWS accounts: adding a key (sealed at once), listing, verifying, rotating.
//!
//! No response type has a field that could carry a secret: accounts show the access key id only.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /v1/accounts`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddAccountRequest {
    /// The console's name for the account.
    pub name: String,
    /// Default region.
    pub region: String,
    /// EC2/STS endpoint when not AWS's own.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key; sealed at once, never returned.
    #[serde(serialize_with = "crate::expose")]
    #[schema(value_type = String)]
    pub secret_access_key: SecretString,
    /// A role to assume with the key.
    #[serde(default)]
    pub role_arn: Option<String>,
    /// The external id the role asks for.
    #[serde(default)]
    pub external_id: Option<String>,
}

/// An account as the API shows it: never the secret.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
#[schema(as = Account)]
pub struct AccountView {
    /// The console's name for it.
    pub name: String,
    /// Default region.
    pub region: String,
    /// EC2/STS endpoint when not AWS's own.
    pub endpoint_url: Option<String>,
    /// The access key id (public half only).
    pub access_key_id: String,
    /// Role assumed before each call.
    pub role_arn: Option<String>,
    /// The 12-digit AWS account id.
    pub aws_account_id: String,
    /// Whose key it is, per STS.
    pub caller_arn: String,
    /// Who added it.
    pub created_by: String,
    /// RFC 3339.
    pub created_at: String,
    /// Last successful verification, RFC 3339.
    pub verified_at: String,
    /// When IAM created the current key (RFC 3339), if known: its age is what rotation fixes.
    #[serde(default)]
    pub key_created_at: Option<String>,
}

/// `POST /v1/accounts/{name}/rotate-key`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct RotateKeyResult {
    /// The account.
    pub account: String,
    /// The key that was replaced (now deleted in IAM).
    pub old_access_key_id: String,
    /// The new key's id.
    pub new_access_key_id: String,
    /// How long the new key took to be accepted by STS, milliseconds.
    pub propagation_ms: u64,
}
