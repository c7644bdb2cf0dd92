//! The payload's data model and its JSON form.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize, Serializer};

use crate::{PayloadError, PAYLOAD_VERSION};

/// What the console hands to an instance through its user data.
///
/// In JSON the version is the marker key `"airlock_payload"`, written first:
/// `{"airlock_payload":1,"deployment_id":...}`. Unknown keys are ignored when
/// reading, so version 1 can gain optional fields without breaking agents.
#[derive(Clone, Serialize, Deserialize)]
pub struct Payload {
    /// Format version, serialized as the marker key `airlock_payload`.
    #[serde(rename = "airlock_payload")]
    pub version: u32,
    /// The Airlock deployment this instance belongs to.
    pub deployment_id: String,
    /// AWS region of the instance and its credentials.
    pub region: String,
    /// Base URL of the Airlock console, if the agent should report to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_url: Option<String>,
    /// EC2 endpoint URL when it is not AWS's (e.g. a local EC2-compatible
    /// server in tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// The AWS credentials the instance uses; absent in bootstrap mode, where the agent
    /// exchanges `refresh_secret` for them at first boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Credentials>,
    /// The credentials are an Airlock access key (credential mode `proxy`), not AWS's: they
    /// reach EC2 only through the console's EC2 endpoint, which `endpoint_url` then names, and
    /// are served as they are, with no session from STS.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub proxy: bool,
    /// A role for the agent to assume with the credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// External id to pass when assuming `role_arn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Where the agent asks the console for fresh credentials before `credentials.expiration`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_url: Option<String>,
    /// The secret the agent presents at `refresh_url`; the console answers with credentials
    /// and the next secret, so each one works once.
    #[serde(
        default,
        serialize_with = "expose_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub refresh_secret: Option<SecretString>,
    /// Work the agent does at every boot with the credentials, in order; each task is idempotent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<BootTask>,
}

/// EC2 filters as a JSON object: filter name (e.g. `tag:Role`) to the values it accepts.
pub type TaskFilters = BTreeMap<String, Vec<String>>;

/// One boot task, in JSON an object whose `task` key names the kind:
/// `{"task":"tag_instance","tags":{"port":"8080"}}`.
///
/// A kind this build does not know is read as [`BootTask::Unsupported`] rather than rejecting
/// the payload, so a newer console can add kinds within version 1 without cutting older agents
/// off their credentials.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "snake_case")]
pub enum BootTask {
    /// Tag the instance itself (e.g. with the port its service listens on, for a gateway).
    TagInstance {
        /// Tag key to value.
        tags: BTreeMap<String, String>,
    },
    /// Attach the volume the filters select (waiting until it is available) at `device`.
    AttachVolume {
        /// EC2 `DescribeVolumes` filters, e.g. `{"tag:Role": ["data"]}`.
        filters: TaskFilters,
        /// Device name, e.g. `/dev/sdf`.
        device: String,
    },
    /// Associate an Elastic IP with the instance, moving it from another instance if needed.
    AssociateAddress {
        /// The address's allocation id (`eipalloc-…`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        allocation_id: Option<String>,
        /// Or EC2 `DescribeAddresses` filters that select it, e.g. `{"tag:Role": ["web"]}`.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        filters: TaskFilters,
    },
    /// A kind of task this build does not know.
    #[serde(other)]
    Unsupported,
}

impl BootTask {
    /// The task's kind as it is spelled in JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            BootTask::TagInstance { .. } => "tag_instance",
            BootTask::AttachVolume { .. } => "attach_volume",
            BootTask::AssociateAddress { .. } => "associate_address",
            BootTask::Unsupported => "unsupported",
        }
    }
}

impl Payload {
    /// A payload of the current version with no optional fields set.
    pub fn new(
        deployment_id: impl Into<String>,
        region: impl Into<String>,
        credentials: Credentials,
    ) -> Self {
        Self {
            version: PAYLOAD_VERSION,
            deployment_id: deployment_id.into(),
            region: region.into(),
            console_url: None,
            endpoint_url: None,
            credentials: Some(credentials),
            proxy: false,
            role_arn: None,
            external_id: None,
            refresh_url: None,
            refresh_secret: None,
            tasks: Vec::new(),
        }
    }

    /// The payload's compact JSON form, secrets included, with a trailing
    /// newline.
    pub fn to_json(&self) -> Result<Vec<u8>, PayloadError> {
        let mut json = serde_json::to_vec(self)
            .map_err(|e| PayloadError::malformed(format!("cannot serialize the payload: {e}")))?;
        json.push(b'\n');
        Ok(json)
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Payload")
            .field("version", &self.version)
            .field("deployment_id", &self.deployment_id)
            .field("region", &self.region)
            .field("console_url", &self.console_url)
            .field("endpoint_url", &self.endpoint_url)
            .field("credentials", &self.credentials)
            .field("proxy", &self.proxy)
            .field("role_arn", &self.role_arn)
            .field("external_id", &self.external_id)
            .field("refresh_url", &self.refresh_url)
            .field(
                "refresh_secret",
                &self.refresh_secret.as_ref().map(|_| "[REDACTED]"),
            )
            .field("tasks", &self.tasks)
            .finish()
    }
}

/// AWS credentials carried by the payload.
#[derive(Clone, Serialize, Deserialize)]
pub struct Credentials {
    /// The access key id (an identifier, not a secret).
    pub access_key_id: String,
    /// The secret access key.
    #[serde(serialize_with = "serialize_secret")]
    pub secret_access_key: SecretString,
    /// The session token of temporary credentials.
    #[serde(
        default,
        serialize_with = "expose_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub session_token: Option<SecretString>,
    /// When temporary credentials expire (RFC 3339 in JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration: Option<DateTime<Utc>>,
}

impl Credentials {
    /// Long-term credentials: no session token, no expiration.
    pub fn new(access_key_id: impl Into<String>, secret_access_key: SecretString) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret_access_key,
            session_token: None,
            expiration: None,
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"[REDACTED]")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "[REDACTED]"),
            )
            .field("expiration", &self.expiration)
            .finish()
    }
}

/// Writes a secret as the plain string it is: for the fields of a body that must carry one.
pub fn serialize_secret<S: Serializer>(
    secret: &SecretString,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(secret.expose_secret())
}

fn expose_opt<S: Serializer>(
    secret: &Option<SecretString>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match secret {
        Some(secret) => serializer.serialize_some(secret.expose_secret()),
        None => serializer.serialize_none(),
    }
}
