//! `POST /v1/refresh`: an instance exchanges its refresh secret for fresh credentials and the
//! next secret. Both directions carry a secret, so both bodies serialize it on purpose.

use airlock_payload::Credentials;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /v1/refresh`: an instance asks for fresh credentials with its refresh secret.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The deployment.
    pub deployment_id: String,
    /// The instance asking.
    pub instance_id: String,
    /// The secret from the payload (first time) or from the last refresh.
    #[serde(serialize_with = "crate::expose")]
    #[schema(value_type = String)]
    pub refresh_secret: SecretString,
}

/// Prefix of agent tokens, so a leaked one is recognisable by secret scanners.
pub const AGENT_TOKEN_PREFIX: &str = "alt_";

/// `POST /v1/refresh`'s answer: the payload's credential shape and the next secret.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct RefreshResponse {
    /// Fresh credentials.
    #[schema(value_type = Object)]
    pub credentials: Credentials,
    /// The secret to present next time; the one just used no longer works.
    #[serde(serialize_with = "crate::expose")]
    #[schema(value_type = String)]
    pub refresh_secret: SecretString,
    /// The token the instance's agent fetches commands with (`Authorization: Bearer`), valid
    /// from this address until the credentials expire. Consoles without run command send none.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::expose_some"
    )]
    #[schema(value_type = Option<String>)]
    pub agent_token: Option<SecretString>,
}
