//! The Airlock instance agent: the half of the External Console pattern that runs on the
//! instance.
//!
//! `airlock agent` reads the Airlock payload a deployment put in the instance's user data
//! (through IMDSv2), keeps it in a private state directory so it survives reboots, hands the
//! credentials to local programs in the standard AWS ways (a shared-credentials profile and a
//! loopback endpoint for the SDKs' container provider), runs the payload's boot tasks, and
//! keeps the served credentials fresh. `docs/agent.md` describes it for operators.
//!
//! The local fleet ([`fleet`]) and the metadata server ([`imds_server`]) make instances of a
//! local EC2-compatible server boot for tests and the demo.
#![warn(missing_docs)]

mod agent;
pub mod args;
pub mod console;
pub mod endpoint;
mod error;
pub mod firewall;
pub mod fleet;
pub mod imds;
pub mod imds_server;
mod logging;
pub mod profile;
pub mod status;
pub mod store;
pub mod tasks;

pub use args::{AgentArgs, AgentCommand, LockImdsArgs, LogFormat, RunArgs, StatusArgs};
pub use error::AgentError;

/// Runs `airlock agent …`; `console_ca` are the authorities of the binary's global
/// `--console-ca`, trusted for the console's refresh URL; `json` is its global `--output json`.
///
/// A flag value that cannot be used ([`AgentError::Usage`], found before anything is read or
/// written) ends the process with exit status 2, as clap's own usage errors do; every other
/// error is returned (the binary exits 1).
pub async fn run(
    args: AgentArgs,
    console_ca: Vec<reqwest::Certificate>,
    json: bool,
) -> Result<(), AgentError> {
    match run_command(args, console_ca, json).await {
        Err(AgentError::Usage(message)) => {
            eprintln!("airlock agent: {message}");
            std::process::exit(2)
        }
        other => other,
    }
}

async fn run_command(
    args: AgentArgs,
    console_ca: Vec<reqwest::Certificate>,
    json: bool,
) -> Result<(), AgentError> {
    match args.command {
        Some(AgentCommand::Status(status)) => {
            status::print(&store::StateDir::new(status.state_dir), json)
        }
        Some(AgentCommand::LockImds(lock)) => {
            logging::init(LogFormat::Text);
            firewall::lock(&lock.imds_endpoint)
        }
        Some(AgentCommand::Fleet(fleet)) => {
            logging::init(LogFormat::Text);
            fleet::run(fleet).await
        }
        None => {
            logging::init(args.run.log_format);
            agent::run(args.run, console_ca).await
        }
    }
}
