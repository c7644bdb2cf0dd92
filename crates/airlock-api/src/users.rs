//! Console users, their IAM-style policies, and asking what a policy would decide.

use airlock_policy::{Context, Decision, PolicyError, Request};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /v1/users`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddUserRequest {
    /// Login name.
    pub name: String,
    /// Initial password (at least 12 characters).
    #[serde(serialize_with = "crate::expose")]
    #[schema(value_type = String)]
    pub password: SecretString,
    /// Names of stored policies to attach.
    #[serde(default)]
    pub policies: Vec<String>,
}

/// A console user as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
#[schema(as = User)]
pub struct UserView {
    /// Login name.
    pub name: String,
    /// Attached policy names.
    pub policies: Vec<String>,
    /// Whether a TOTP second factor is enabled.
    pub mfa: bool,
}

/// `PUT /v1/policies/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutPolicyRequest {
    /// The IAM JSON policy document, as text.
    pub document: String,
}

/// A stored policy.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
#[schema(as = Policy)]
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
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachPolicyRequest {
    /// The policy name.
    pub policy: String,
}

/// The TOTP secret of a user, shown once when the second factor is enabled.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MfaEnabled {
    /// The user.
    pub user: String,
    /// Base32 secret for authenticator apps.
    pub secret: String,
    /// `otpauth://` URL (QR code content).
    pub otpauth_url: String,
}

/// `POST /v1/policies/simulate`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulateRequest {
    /// Policy documents (JSON objects).
    pub policies: Vec<serde_json::Value>,
    /// The request to decide: `{"action": …, "resource": …, "context": {…}}`.
    #[schema(value_type = Object)]
    pub request: Request,
}

/// `POST /v1/authorize/check`: what the caller's own policies would decide, before acting.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthorizeCheckRequest {
    /// The questions, answered in order.
    pub checks: Vec<AuthorizeCheckItem>,
}

/// One question to [`AuthorizeCheckRequest`].
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
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
    #[schema(value_type = Object)]
    pub context: Context,
}

/// The answers of `POST /v1/authorize/check`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuthorizeCheckResponse {
    /// One result per question, in order.
    pub results: Vec<AuthorizeCheckResult>,
}

/// One decision.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuthorizeCheckResult {
    /// The action asked about.
    pub action: String,
    /// The resource ARN it was decided for.
    pub resource: String,
    /// `allowed`, `explicitDeny` or `implicitDeny`.
    #[schema(value_type = String)]
    pub decision: Decision,
    /// Whether the action would be allowed.
    pub allowed: bool,
    /// The deciding statements (`policy#index (Sid)`).
    pub statements: Vec<String>,
    /// Why, in words.
    pub reason: String,
}

/// `POST /v1/policies/validate`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidatePolicyRequest {
    /// The IAM JSON policy document, as text.
    pub document: String,
}

/// The answer of `POST /v1/policies/validate`: the same checks `PUT /v1/policies/{name}` makes.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ValidatePolicyResponse {
    /// True when the document would be accepted.
    pub valid: bool,
    /// Number of statements (when valid).
    pub statements: usize,
    /// Every problem found, with line and column for JSON syntax errors.
    #[schema(value_type = Vec<Object>)]
    pub errors: Vec<PolicyError>,
}
