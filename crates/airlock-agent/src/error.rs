//! The agent's error type: what failed, in words an operator can act on, never with a secret.

use std::path::PathBuf;

/// Everything that stops the agent or one of its steps.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The instance metadata service could not be used.
    #[error("instance metadata service: {0}")]
    Imds(String),

    /// The user data holds no usable payload. Nothing was written.
    #[error("the user data cannot be used ({0}); nothing was written")]
    UserData(#[from] airlock_payload::PayloadError),

    /// The instance has no user data at all.
    #[error("the instance has no user data, so no Airlock payload; nothing was written")]
    NoUserData,

    /// A file in the state directory (or the profile file) could not be read or written.
    #[error("{}: {source}", path.display())]
    File {
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },

    /// A stored file is not what this agent wrote.
    #[error("{}: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// Nothing is stored yet (for `status`).
    #[error("no agent state in {} (has the agent run yet?)", .0.display())]
    NoState(PathBuf),

    /// An EC2 or STS call failed.
    #[error("{0}")]
    Cloud(#[from] airlock_cloud::CloudError),

    /// Some boot tasks failed; the others ran. Details are in the log and `tasks.json`.
    #[error("{failed} of {total} boot tasks failed (see `airlock agent status`)")]
    TasksFailed {
        /// How many failed.
        failed: usize,
        /// How many there are.
        total: usize,
    },

    /// A flag's value cannot be used.
    #[error("{0}")]
    Usage(String),

    /// The console refused to issue credentials (a revoked, used or foreign refresh secret, or
    /// an instance that is no longer the deployment's): retrying will not help.
    #[error("{0}")]
    Refused(String),
    /// The refresh URL is `http://` to another host, and `--insecure-http` was not given: the
    /// refresh secret and the credentials would cross the network in clear text. Retrying will
    /// not help.
    #[error(
        "the refresh URL is http:// to {host}: the refresh secret and credentials would cross \
         the network in clear text, so it is not used; give the console an https:// URL (with \
         --console-ca for a private CA), or pass --insecure-http if the network to {host} is \
         trusted"
    )]
    ClearText {
        /// The URL's host.
        host: String,
    },

    /// Anything else (a listener that cannot bind, a command that cannot run).
    #[error("{0}")]
    Other(String),
}

impl AgentError {
    /// A file error for `path`.
    pub fn file(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        AgentError::File {
            path: path.into(),
            source,
        }
    }
}
