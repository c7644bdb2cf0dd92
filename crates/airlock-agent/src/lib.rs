//! The Airlock instance agent: the half of the External Console pattern that runs on the
//! instance.
//!
//! `airlock agent` reads the Airlock payload a deployment put in the instance's user data
//! (through IMDSv2), keeps it in a private state directory so it survives reboots, hands the
//! credentials to local programs in the standard AWS ways (a shared-credentials profile and a
//! loopback endpoint for the SDKs' container provider), runs the payload's boot tasks, and
//! keeps the served credentials fresh. `docs/agent.md` describes it for operators.
//!
//! The binary owns the command line, the AWS SDK client and the process exit: this crate takes
//! an [`AgentSettings`] and an `Arc<dyn Cloud>`, and returns an [`AgentError`].
#![warn(missing_docs)]

mod agent;
pub mod commands;
pub mod console;
pub mod endpoint;
mod error;
pub mod firewall;
pub mod imds;
pub mod profile;
mod settings;
pub mod status;
pub mod store;
pub mod tasks;

pub use agent::run;
pub use error::AgentError;
pub use settings::AgentSettings;
