//! The console API's request and response bodies, shared by the server and the `airlock` client.
//!
//! No response type has a field that could carry a secret: accounts show the access key id only.

use airlock_cloud::{Instance, Tag};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// `POST /v1/login`.
#[derive(Debug, Deserialize)]
pub struct LoginRequest {
    /// The console user name.
    pub user: String,
    /// The password.
    pub password: SecretString,
    /// The current TOTP code, for users with a second factor.
    #[serde(default)]
    pub otp: Option<String>,
}

/// A new API token, shown once.
#[derive(Debug, Serialize, Deserialize)]
pub struct LoginResponse {
    /// Bearer token for `Authorization: Bearer …`.
    pub token: String,
    /// The user it acts as.
    pub user: String,
    /// RFC 3339 expiry.
    pub expires_at: String,
}

/// `GET /v1/whoami`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Whoami {
    /// The user name.
    pub user: String,
}

/// `POST /v1/accounts`.
#[derive(Debug, Deserialize)]
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
    pub secret_access_key: SecretString,
    /// A role to assume with the key.
    #[serde(default)]
    pub role_arn: Option<String>,
    /// The external id the role asks for.
    #[serde(default)]
    pub external_id: Option<String>,
}

/// An account as the API shows it: never the secret.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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

/// `POST /v1/deployments`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    /// Idempotency token: the same token returns the same deployment instead of launching again.
    #[serde(default)]
    pub client_token: Option<String>,
    /// The account to deploy in.
    pub account: String,
    /// The AMI id.
    pub image_id: String,
    /// The instance type.
    pub instance_type: String,
    /// How many instances (default 1).
    #[serde(default = "one")]
    pub count: u32,
    /// The subnet.
    #[serde(default)]
    pub subnet_id: Option<String>,
    /// Security group ids.
    #[serde(default)]
    pub security_group_ids: Vec<String>,
    /// Key pair name.
    #[serde(default)]
    pub key_name: Option<String>,
    /// Tags for the instances and volumes, applied on creation.
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// The user's own script or cloud-config, run by cloud-init next to the payload.
    #[serde(default)]
    pub user_script: Option<String>,
    /// IMDSv2 hop limit: 1 (default) or 2 for containers on the instance.
    #[serde(default = "one_u8")]
    pub metadata_hop_limit: u8,
    /// Boot tasks the agent runs on every instance (see docs/payload.md).
    #[serde(default)]
    pub tasks: Vec<airlock_payload::BootTask>,
    /// What credentials the instances get (default `scoped`).
    #[serde(default = "CredentialMode::safe_default")]
    pub credentials: CredentialMode,
    /// Lifetime of scoped credentials in seconds (default 3600; STS limits apply).
    #[serde(default)]
    pub credentials_duration_seconds: Option<u32>,
    /// Extra IAM statements for the instances' session policy, beyond the generated ones.
    #[serde(default)]
    pub policy_statements: Vec<serde_json::Value>,
}

/// What credentials a deployment's instances receive.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum CredentialMode {
    /// Temporary STS credentials limited to the deployment's own resources, refreshed by the
    /// agent through the console.
    Scoped,
    /// No credentials in the user data: a one-time token the agent exchanges at first boot for
    /// scoped credentials limited to its own instance.
    Bootstrap,
    /// The account's stored long-term key in the user data: the pattern as published, risky.
    /// What deployments made before credential modes existed used.
    #[default]
    Account,
    /// No credentials and no payload: only the user's script.
    None,
}

impl CredentialMode {
    /// The default of a new deployment request.
    pub fn safe_default() -> CredentialMode {
        CredentialMode::Scoped
    }

    /// Its name as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialMode::Scoped => "scoped",
            CredentialMode::Bootstrap => "bootstrap",
            CredentialMode::Account => "account",
            CredentialMode::None => "none",
        }
    }

    /// Whether the instances refresh their credentials at the console.
    pub fn refreshes(self) -> bool {
        matches!(self, CredentialMode::Scoped | CredentialMode::Bootstrap)
    }
}

fn one() -> u32 {
    1
}

fn one_u8() -> u8 {
    1
}

/// The part of a deployment request kept with the deployment (the user script is sealed apart).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeploymentSpec {
    /// The AMI id.
    pub image_id: String,
    /// The instance type.
    pub instance_type: String,
    /// The subnet.
    pub subnet_id: Option<String>,
    /// Security group ids.
    pub security_group_ids: Vec<String>,
    /// Key pair name.
    pub key_name: Option<String>,
    /// User tags.
    pub tags: Vec<Tag>,
    /// Whether a user script was given.
    pub has_user_script: bool,
    /// IMDSv2 hop limit.
    pub metadata_hop_limit: u8,
    /// Boot tasks carried in the payload.
    #[serde(default)]
    pub tasks: Vec<airlock_payload::BootTask>,
    /// What credentials the instances get (`account` for deployments stored before modes).
    #[serde(default)]
    pub credentials: CredentialMode,
    /// Lifetime of scoped credentials in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_duration_seconds: Option<u32>,
    /// Extra statements asked for in the session policy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policy_statements: Vec<serde_json::Value>,
}

/// A deployment as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeploymentView {
    /// e.g. `dep-3f9a…`.
    pub id: String,
    /// The account.
    pub account: String,
    /// `pending`, `launching`, `running` or `failed`.
    pub state: String,
    /// Why it failed.
    pub error: Option<String>,
    /// Desired instance count.
    pub count: i64,
    /// What was asked for.
    pub spec: DeploymentSpec,
    /// Its instances as last seen.
    pub instances: Vec<DeploymentInstance>,
    /// Who deployed it.
    pub created_by: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// A warning when the instances hold the account's long-term key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<String>,
}

/// `GET /v1/deployments/{id}/policy`: the session policy of a scoped deployment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeploymentPolicy {
    /// The deployment.
    pub deployment_id: String,
    /// `scoped` or `bootstrap`.
    pub credentials: CredentialMode,
    /// Lifetime of each issue of credentials, seconds.
    pub duration_seconds: u32,
    /// The IAM session policy STS is given.
    pub policy: serde_json::Value,
}

/// `POST /v1/deployments/{id}/revoke`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RevokeResult {
    /// The deployment.
    pub deployment_id: String,
    /// How many refresh secrets were revoked.
    pub revoked: u64,
}

/// `POST /v1/refresh`: an instance asks for fresh credentials with its refresh secret.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The deployment.
    pub deployment_id: String,
    /// The instance asking.
    pub instance_id: String,
    /// The secret from the payload (first time) or from the last refresh.
    pub refresh_secret: SecretString,
}

/// `POST /v1/accounts/{name}/rotate-key`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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

/// One instance of a deployment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeploymentInstance {
    /// The instance id.
    pub instance_id: String,
    /// EC2 state name.
    pub state: String,
    /// Private IPv4.
    pub private_ip: Option<String>,
    /// Public IPv4.
    pub public_ip: Option<String>,
}

/// `POST /v1/deployments/{id}/scale`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleRequest {
    /// The new instance count (0 terminates them all).
    pub count: u32,
}

/// `GET /v1/instances` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstanceList {
    /// The instances, with the account each belongs to.
    pub instances: Vec<AccountInstance>,
}

/// An instance and the account it was listed with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountInstance {
    /// The account name.
    pub account: String,
    /// The instance.
    #[serde(flatten)]
    pub instance: Instance,
    /// Its status checks, when asked for (`status=true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<airlock_cloud::InstanceStatus>,
}

/// `GET /v1/{family}` (addresses, volumes, snapshots…): each item as EC2 describes it, with
/// the `account` it was listed in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FleetList {
    /// The resources.
    pub items: Vec<serde_json::Value>,
}

/// `POST /v1/instances/{action}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceActionRequest {
    /// The account the instances belong to.
    pub account: String,
    /// Instance ids.
    pub instance_ids: Vec<String>,
}

/// The answer to an instance action.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstanceActionResponse {
    /// `start`, `stop`, `reboot` or `terminate`.
    pub action: String,
    /// The instances acted on.
    pub instance_ids: Vec<String>,
    /// AWS's request id.
    pub aws_request_id: Option<String>,
}

/// `POST /v1/users`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddUserRequest {
    /// Login name.
    pub name: String,
    /// Initial password (at least 12 characters).
    pub password: SecretString,
    /// Names of stored policies to attach.
    #[serde(default)]
    pub policies: Vec<String>,
}

/// A console user as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UserView {
    /// Login name.
    pub name: String,
    /// Attached policy names.
    pub policies: Vec<String>,
    /// Whether a TOTP second factor is enabled.
    pub mfa: bool,
}

/// `PUT /v1/policies/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutPolicyRequest {
    /// The IAM JSON policy document, as text.
    pub document: String,
}

/// A stored policy.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PolicyView {
    /// Its name.
    pub name: String,
    /// The document as stored.
    pub document: String,
    /// Who stored it.
    pub created_by: String,
    /// RFC 3339.
    pub created_at: String,
}

/// `POST /v1/users/{name}/policies`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachPolicyRequest {
    /// The policy name.
    pub policy: String,
}

/// The TOTP secret of a user, shown once when the second factor is enabled.
#[derive(Debug, Serialize, Deserialize)]
pub struct MfaEnabled {
    /// The user.
    pub user: String,
    /// Base32 secret for authenticator apps.
    pub secret: String,
    /// `otpauth://` URL (QR code content).
    pub otpauth_url: String,
}

/// `POST /v1/policies/simulate`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulateRequest {
    /// Policy documents (JSON objects).
    pub policies: Vec<serde_json::Value>,
    /// The request to decide.
    pub request: airlock_policy::Request,
}

/// `POST /v1/tags` and `POST /v1/tags/remove`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagRequest {
    /// The account the resource is in.
    pub account: String,
    /// The EC2 resource id (`i-…`, `vol-…`, `ami-…`, `sg-…`, …).
    pub resource_id: String,
    /// Tags to add, or (for removal) to remove; an empty value removes the key whatever its value.
    pub tags: Vec<Tag>,
}

/// Tags of a resource after a change.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TagsView {
    /// The resource id.
    pub resource_id: String,
    /// Its tags now.
    pub tags: Vec<Tag>,
    /// AWS's request id.
    pub aws_request_id: Option<String>,
}

/// `POST /v1/authorize/check`: what the caller's own policies would decide, before acting.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizeCheckRequest {
    /// The questions, answered in order.
    pub checks: Vec<AuthorizeCheckItem>,
}

/// One question to [`AuthorizeCheckRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizeCheckItem {
    /// e.g. `ec2:TerminateInstances`.
    pub action: String,
    /// A full ARN, `*`, or with `account` the short EC2 form `KIND/ID` (`instance/i-0abc…`,
    /// `instance/*`), which the console expands with the account's region and AWS account id.
    pub resource: String,
    /// The account the resource is in: `airlock:UseAccount` is decided too, and the current tags
    /// of an existing resource are looked up in EC2 as the real action would.
    #[serde(default)]
    pub account: Option<String>,
    /// Request-specific context keys (`aws:RequestTag/K`, `ec2:InstanceType`…). Global keys and
    /// resource tags are always the console's own.
    #[serde(default)]
    pub context: airlock_policy::Context,
}

/// The answers of `POST /v1/authorize/check`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthorizeCheckResponse {
    /// One result per question, in order.
    pub results: Vec<AuthorizeCheckResult>,
}

/// One decision.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthorizeCheckResult {
    /// The action asked about.
    pub action: String,
    /// The resource ARN it was decided for.
    pub resource: String,
    /// `allowed`, `explicitDeny` or `implicitDeny`.
    pub decision: airlock_policy::Decision,
    /// Whether the action would be allowed.
    pub allowed: bool,
    /// The deciding statements (`policy#index (Sid)`).
    pub statements: Vec<String>,
    /// Why, in words.
    pub reason: String,
}

/// `POST /v1/policies/validate`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidatePolicyRequest {
    /// The IAM JSON policy document, as text.
    pub document: String,
}

/// The answer of `POST /v1/policies/validate`: the same checks `PUT /v1/policies/{name}` makes.
#[derive(Debug, Clone, Serialize)]
pub struct ValidatePolicyResponse {
    /// True when the document would be accepted.
    pub valid: bool,
    /// Number of statements (when valid).
    pub statements: usize,
    /// Every problem found, with line and column for JSON syntax errors.
    pub errors: Vec<airlock_policy::PolicyError>,
}

/// A page of the audit log (`GET /v1/audit`), in order of `seq`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditPage {
    /// The records.
    pub records: Vec<airlock_store::AuditRow>,
    /// Give it back as `cursor` for the next page; `None` when there were no more records.
    pub next_cursor: Option<String>,
}
