//! Run command: a command line run on the instances a tag (or a list of ids) selects, by their
//! agents, which fetch the work from the console over their own outbound channel.
//!
//! Two sides: operators send commands and read results (`/v1/commands`), agents fetch work and
//! report (`/v1/agent/commands`, authenticated by the agent token each refresh answer carries).

use crate::state::{CommandStatus, InvocationStatus};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Body of `POST /v1/commands`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendCommandRequest {
    /// The console account whose instances run it.
    pub account: String,
    /// `tag:KEY=VALUE` selections; an instance must match every one.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Instance ids; with `targets`, an instance must also be one of these.
    #[serde(default)]
    pub instance_ids: Vec<String>,
    /// The program and its arguments, run without a shell.
    pub command: Vec<String>,
    /// Seconds the command may run on each instance, and may wait for its agent to fetch it.
    pub timeout_seconds: u32,
    /// How many instances run it at once: `N` or `N%` of the targets (default `50`).
    #[serde(default)]
    pub max_concurrency: Option<String>,
    /// How many errors (failures and timeouts) are allowed before the rest are cancelled: `N`
    /// or `N%` (default `0`).
    #[serde(default)]
    pub max_errors: Option<String>,
}

/// One instance's part in a command.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CommandResultView {
    /// The instance.
    pub instance_id: String,
    /// Where it is.
    pub status: CommandStatus,
    /// The program's exit code, once it exited.
    pub exit_code: Option<i32>,
    /// Its standard output, at most [`MAX_OUTPUT`] bytes (`null` without
    /// `airlock:ReadCommandOutput` on the instance).
    pub output: Option<String>,
    /// Its standard error, bounded the same way.
    pub error_output: Option<String>,
    /// Whether output or error output was cut at the limit.
    pub truncated: bool,
    /// When the agent fetched it (RFC 3339).
    pub started_at: Option<String>,
    /// When it ended (RFC 3339).
    pub ended_at: Option<String>,
}

/// A command as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CommandView {
    /// `cmd-…`.
    pub id: String,
    /// The console account.
    pub account: String,
    /// Who sent it.
    pub created_by: String,
    /// RFC 3339.
    pub created_at: String,
    /// The program and its arguments.
    pub command: Vec<String>,
    /// The `tag:KEY=VALUE` selections it was sent with.
    pub targets: Vec<String>,
    /// The instance ids it was sent with.
    pub instance_ids: Vec<String>,
    /// As sent, e.g. `1` or `10%`.
    pub max_concurrency: String,
    /// As sent.
    pub max_errors: String,
    /// Per instance.
    pub timeout_seconds: u32,
    /// Over all its instances.
    pub status: InvocationStatus,
    /// One per instance, by instance id.
    pub results: Vec<CommandResultView>,
}

/// `GET /v1/commands`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CommandList {
    /// The latest commands, newest first.
    pub commands: Vec<CommandView>,
}

/// The most output (each of standard output and standard error) kept per instance, in bytes:
/// what Systems Manager keeps in the command's own record.
pub const MAX_OUTPUT: usize = 24_000;

/// What `GET /v1/agent/commands/next` hands an agent.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentWork {
    /// The command.
    pub command_id: String,
    /// The program and its arguments.
    pub command: Vec<String>,
    /// Kill it after this many seconds.
    pub timeout_seconds: u32,
}

/// How a command ended on the instance, as its agent reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AgentOutcome {
    /// It exited (its code says how).
    Exited,
    /// It ran past its timeout and was killed.
    TimedOut,
    /// It could not be started (no such program, not allowed).
    NotStarted,
}

/// Body of `POST /v1/agent/commands/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentReport {
    /// How it ended.
    pub outcome: AgentOutcome,
    /// The exit code (`exited`).
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// Standard output, at most [`MAX_OUTPUT`] bytes.
    #[serde(default)]
    pub output: String,
    /// Standard error, at most [`MAX_OUTPUT`] bytes (or why it could not start).
    #[serde(default)]
    pub error_output: String,
    /// Whether the agent cut either at the limit.
    #[serde(default)]
    pub truncated: bool,
}
