//! The states the API reports, as types rather than strings.
//!
//! Each state is written the same way in JSON and in the database (`as_str` is the stored
//! word, `FromStr` reads it back), so a value read from either side can only be one the
//! console knows, and a misspelled state is a compile error rather than a silent mismatch.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A word that names no state of its kind (a corrupt row, or a newer console's state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownState {
    /// Which kind of state was expected, e.g. `deployment state`.
    pub kind: &'static str,
    /// The word found.
    pub value: String,
}

impl fmt::Display for UnknownState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not a {}", self.value, self.kind)
    }
}

impl std::error::Error for UnknownState {}

/// Where a deployment is on its way to its desired count of running instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeploymentState {
    /// Recorded (created or rescaled) but the launch or trim is not yet recorded.
    Pending,
    /// Launched or trimmed; waiting for the instances to run.
    Launching,
    /// Every desired instance runs.
    Running,
    /// An EC2 error, a timeout, or instances terminated during launch.
    Failed,
}

impl DeploymentState {
    /// Every value.
    pub const ALL: &'static [Self] = &[
        DeploymentState::Pending,
        DeploymentState::Launching,
        DeploymentState::Running,
        DeploymentState::Failed,
    ];

    /// The word stored and sent for this value.
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentState::Pending => "pending",
            DeploymentState::Launching => "launching",
            DeploymentState::Running => "running",
            DeploymentState::Failed => "failed",
        }
    }
}

/// Where a snapshot policy's run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotRunState {
    /// Snapshots are being taken and old ones deleted.
    Running,
    /// Every volume got its snapshot and retention went through.
    Succeeded,
    /// Something was refused or failed (the run's errors say what); the rest went on.
    Failed,
}

impl SnapshotRunState {
    /// Every value.
    pub const ALL: &'static [Self] = &[
        SnapshotRunState::Running,
        SnapshotRunState::Succeeded,
        SnapshotRunState::Failed,
    ];

    /// The word stored and sent for this value.
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotRunState::Running => "running",
            SnapshotRunState::Succeeded => "succeeded",
            SnapshotRunState::Failed => "failed",
        }
    }
}

/// What was decided about a request, as the audit log records it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AuditDecision {
    /// Every check was allowed.
    #[default]
    Allowed,
    /// A statement denied it.
    ExplicitDeny,
    /// Nothing allowed it.
    ImplicitDeny,
    /// It stopped before a decision (bad input, a resource EC2 does not know).
    NotEvaluated,
    /// A refresh secret was presented again.
    Replay,
}

impl AuditDecision {
    /// Every value.
    pub const ALL: &'static [Self] = &[
        AuditDecision::Allowed,
        AuditDecision::ExplicitDeny,
        AuditDecision::ImplicitDeny,
        AuditDecision::NotEvaluated,
        AuditDecision::Replay,
    ];

    /// The word stored and sent for this value.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditDecision::Allowed => "allowed",
            AuditDecision::ExplicitDeny => "explicitDeny",
            AuditDecision::ImplicitDeny => "implicitDeny",
            AuditDecision::NotEvaluated => "notEvaluated",
            AuditDecision::Replay => "replay",
        }
    }
}

/// How a request ended, as the audit log records it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AuditOutcome {
    /// Decided and allowed; what came of it is recorded separately.
    #[default]
    Allowed,
    /// Done.
    Ok,
    /// Refused.
    Denied,
    /// EC2, STS or the console failed.
    Error,
    /// Done, but with a risk the operator should know of.
    Risk,
    /// The input was refused before a decision.
    Invalid,
}

impl AuditOutcome {
    /// Every value.
    pub const ALL: &'static [Self] = &[
        AuditOutcome::Allowed,
        AuditOutcome::Ok,
        AuditOutcome::Denied,
        AuditOutcome::Error,
        AuditOutcome::Risk,
        AuditOutcome::Invalid,
    ];

    /// The word stored and sent for this value.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Allowed => "allowed",
            AuditOutcome::Ok => "ok",
            AuditOutcome::Denied => "denied",
            AuditOutcome::Error => "error",
            AuditOutcome::Risk => "risk",
            AuditOutcome::Invalid => "invalid",
        }
    }
}

/// What a refresh secret stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RefreshSecretKind {
    /// Shared by the instances of one launch, exchanged once per instance.
    Enrolment,
    /// Held by one instance, rotated at every refresh.
    Instance,
}

impl RefreshSecretKind {
    /// Every value.
    pub const ALL: &'static [Self] = &[RefreshSecretKind::Enrolment, RefreshSecretKind::Instance];
    /// The word stored and sent for this value.
    pub fn as_str(self) -> &'static str {
        match self {
            RefreshSecretKind::Enrolment => "enrolment",
            RefreshSecretKind::Instance => "instance",
        }
    }
}

/// Whether a refresh secret may still be exchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RefreshSecretState {
    /// It may be exchanged.
    Active,
    /// Rotated away: presenting it again is a replay.
    Used,
    /// Its instance left the deployment, or the deployment was revoked.
    Revoked,
}

impl RefreshSecretState {
    /// Every value.
    pub const ALL: &'static [Self] = &[
        RefreshSecretState::Active,
        RefreshSecretState::Used,
        RefreshSecretState::Revoked,
    ];

    /// The word stored and sent for this value.
    pub fn as_str(self) -> &'static str {
        match self {
            RefreshSecretState::Active => "active",
            RefreshSecretState::Used => "used",
            RefreshSecretState::Revoked => "revoked",
        }
    }
}

/// Whether an Airlock access key signs requests, as IAM words it.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
pub enum AccessKeyStatus {
    /// It may sign requests.
    #[default]
    Active,
    /// Disabled: requests signed with it are refused, and it can be enabled again.
    Inactive,
}

impl AccessKeyStatus {
    /// Every value.
    pub const ALL: &'static [Self] = &[AccessKeyStatus::Active, AccessKeyStatus::Inactive];

    /// The word stored and sent for this value.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessKeyStatus::Active => "Active",
            AccessKeyStatus::Inactive => "Inactive",
        }
    }
}

/// `FromStr` (the stored word back to its value) and `Display` (the word) for each state, from
/// its `ALL` and `as_str`, so the two directions cannot disagree.
macro_rules! words {
    ($($state:ty => $kind:literal),* $(,)?) => {$(
        impl FromStr for $state {
            type Err = UnknownState;
            fn from_str(word: &str) -> Result<Self, UnknownState> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == word)
                    .ok_or_else(|| UnknownState {
                        kind: $kind,
                        value: word.to_owned(),
                    })
            }
        }

        impl fmt::Display for $state {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}

/// Where one instance is in a command: the states Systems Manager's Run Command reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CommandStatus {
    /// Not yet fetched by the instance's agent (waiting for a concurrency slot, or for the
    /// agent's next poll).
    Pending,
    /// The agent fetched it and runs it.
    Running,
    /// It exited 0.
    Success,
    /// It exited with another code, or could not be started.
    Failed,
    /// It ran longer than the command's timeout and was killed (or never reported back).
    TimedOut,
    /// No agent fetched it within the timeout: the instance is down, or has no agent channel.
    Undeliverable,
    /// Never sent: the command stopped after more errors than it allows.
    Cancelled,
}

impl CommandStatus {
    /// Every value.
    pub const ALL: &'static [Self] = &[
        CommandStatus::Pending,
        CommandStatus::Running,
        CommandStatus::Success,
        CommandStatus::Failed,
        CommandStatus::TimedOut,
        CommandStatus::Undeliverable,
        CommandStatus::Cancelled,
    ];

    /// The word stored and sent for this value.
    pub fn as_str(self) -> &'static str {
        match self {
            CommandStatus::Pending => "pending",
            CommandStatus::Running => "running",
            CommandStatus::Success => "success",
            CommandStatus::Failed => "failed",
            CommandStatus::TimedOut => "timed-out",
            CommandStatus::Undeliverable => "undeliverable",
            CommandStatus::Cancelled => "cancelled",
        }
    }

    /// Whether nothing more happens to it.
    pub fn is_final(self) -> bool {
        !matches!(self, CommandStatus::Pending | CommandStatus::Running)
    }

    /// Whether it counts toward the command's `max_errors` (as in Systems Manager: a failure or
    /// an execution timeout; an undeliverable instance does not).
    pub fn is_error(self) -> bool {
        matches!(self, CommandStatus::Failed | CommandStatus::TimedOut)
    }
}

/// What a command came to over all its instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum InvocationStatus {
    /// Some instance is still pending or running.
    InProgress,
    /// Every instance succeeded.
    Success,
    /// Some instance failed, timed out, was unreachable or was never sent the command.
    Failed,
}

impl InvocationStatus {
    /// The word sent for this value.
    pub fn as_str(self) -> &'static str {
        match self {
            InvocationStatus::InProgress => "in-progress",
            InvocationStatus::Success => "success",
            InvocationStatus::Failed => "failed",
        }
    }

    /// The status of a command whose instances are in `statuses`.
    pub fn of(statuses: impl IntoIterator<Item = CommandStatus>) -> Self {
        let mut all_success = true;
        for status in statuses {
            if !status.is_final() {
                return InvocationStatus::InProgress;
            }
            all_success &= status == CommandStatus::Success;
        }
        if all_success {
            InvocationStatus::Success
        } else {
            InvocationStatus::Failed
        }
    }
}

/// Where an opening of a maintenance window is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionState {
    /// Its tasks are running.
    Running,
    /// Every task ran and succeeded on every instance.
    Succeeded,
    /// A task failed on some instance, or was refused, or the cutoff skipped one.
    Failed,
}

impl ExecutionState {
    /// Every value.
    pub const ALL: &'static [Self] = &[
        ExecutionState::Running,
        ExecutionState::Succeeded,
        ExecutionState::Failed,
    ];

    /// The word stored and sent for this value.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionState::Running => "running",
            ExecutionState::Succeeded => "succeeded",
            ExecutionState::Failed => "failed",
        }
    }
}

/// Where one task of a maintenance window's opening is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    /// Not started yet.
    Pending,
    /// Running.
    Running,
    /// Done on every instance.
    Succeeded,
    /// Failed (or was refused) on some instance.
    Failed,
    /// Not started: the window's cutoff had passed, or an earlier task failed.
    Skipped,
}

/// Where a rolling replacement is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RollState {
    /// Replacing nodes (or resuming after a console restart).
    Running,
    /// Every node replaced.
    Succeeded,
    /// A node could not be replaced and was rolled back; the roll stopped (`--resume` goes on).
    Failed,
    /// Stopped by an operator.
    Aborted,
}

impl RollState {
    /// Every value.
    pub const ALL: &'static [Self] = &[
        RollState::Running,
        RollState::Succeeded,
        RollState::Failed,
        RollState::Aborted,
    ];

    /// The word stored and sent for this value.
    pub fn as_str(self) -> &'static str {
        match self {
            RollState::Running => "running",
            RollState::Succeeded => "succeeded",
            RollState::Failed => "failed",
            RollState::Aborted => "aborted",
        }
    }
}

words!(
    DeploymentState => "deployment state",
    AuditDecision => "audit decision",
    AuditOutcome => "audit outcome",
    RefreshSecretKind => "refresh secret kind",
    RefreshSecretState => "refresh secret state",
    AccessKeyStatus => "access key status",
    SnapshotRunState => "snapshot run state",
    CommandStatus => "command status",
    ExecutionState => "execution state",
    RollState => "roll state",
);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// JSON and the database carry the same word, and every word reads back.
    fn round_trips<T>(all: &[T], as_str: fn(T) -> &'static str)
    where
        T: Copy + Serialize + for<'de> Deserialize<'de> + FromStr + PartialEq + fmt::Debug,
        <T as FromStr>::Err: fmt::Debug,
    {
        for &v in all {
            let json = serde_json::to_string(&v).unwrap();
            assert_eq!(json, format!("\"{}\"", as_str(v)));
            assert_eq!(serde_json::from_str::<T>(&json).unwrap(), v);
            assert_eq!(as_str(v).parse::<T>().unwrap(), v);
        }
    }

    #[test]
    fn json_and_stored_words_agree() {
        round_trips(DeploymentState::ALL, DeploymentState::as_str);
        round_trips(AuditDecision::ALL, AuditDecision::as_str);
        round_trips(AuditOutcome::ALL, AuditOutcome::as_str);
        round_trips(RefreshSecretKind::ALL, RefreshSecretKind::as_str);
        round_trips(RefreshSecretState::ALL, RefreshSecretState::as_str);
        round_trips(SnapshotRunState::ALL, SnapshotRunState::as_str);
        round_trips(CommandStatus::ALL, CommandStatus::as_str);
        round_trips(ExecutionState::ALL, ExecutionState::as_str);
        round_trips(RollState::ALL, RollState::as_str);
    }

    #[test]
    fn a_command_is_in_progress_until_every_instance_is_final() {
        use CommandStatus::*;
        assert_eq!(
            InvocationStatus::of([Success, Running]),
            InvocationStatus::InProgress
        );
        assert_eq!(
            InvocationStatus::of([Success, Success]),
            InvocationStatus::Success
        );
        assert_eq!(
            InvocationStatus::of([Success, Cancelled]),
            InvocationStatus::Failed
        );
        assert_eq!(
            InvocationStatus::of([Undeliverable]),
            InvocationStatus::Failed
        );
        assert!(TimedOut.is_error() && Failed.is_error() && !Undeliverable.is_error());
    }

    #[test]
    fn the_words_are_those_already_stored() {
        let words = |all: &[&str]| all.join(",");
        assert_eq!(
            words(
                &DeploymentState::ALL
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
            ),
            "pending,launching,running,failed"
        );
        assert_eq!(AuditDecision::ExplicitDeny.as_str(), "explicitDeny");
        assert_eq!(AuditOutcome::Invalid.as_str(), "invalid");
        assert_eq!(RefreshSecretKind::Enrolment.as_str(), "enrolment");
        assert_eq!(RefreshSecretState::Revoked.as_str(), "revoked");
    }

    #[test]
    fn an_unknown_word_names_its_kind() {
        let err = "done".parse::<DeploymentState>().unwrap_err();
        assert_eq!(err.to_string(), "\"done\" is not a deployment state");
    }
}
