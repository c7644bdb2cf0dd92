//! What the running agent was asked to do, as plain values: the binary's command line fills it
//! in, and [`crate::run`] validates it before anything is read or written.

use std::path::PathBuf;

/// How `airlock agent` runs (each field is the flag of the same name).
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// Do the boot work, then exit, instead of serving and refreshing.
    pub once: bool,
    /// Where credentials and state are kept.
    pub state_dir: PathBuf,
    /// Instance metadata service URL.
    pub imds_endpoint: String,
    /// Allow IMDSv1 when the metadata service hands out no tokens.
    pub imds_v1: bool,
    /// Timeout of each metadata request, in seconds.
    pub imds_timeout: f64,
    /// How long to keep retrying the metadata service at boot with nothing stored, in seconds.
    pub imds_wait: f64,
    /// With stored state: how long to try the metadata service before serving the stored
    /// credentials unverified, in seconds.
    pub stored_state_wait: f64,
    /// Lifetime asked for IMDSv2 session tokens, in seconds.
    pub imds_token_ttl: u64,
    /// Lock the metadata service to the agent's user before reading the user data.
    pub lock_imds: bool,
    /// Allow an http:// refresh URL whose host is not this machine.
    pub insecure_http: bool,
    /// Reach the console's refresh URL through this HTTP proxy.
    pub refresh_proxy: Option<String>,
    /// Address of the loopback credentials endpoint.
    pub listen: String,
    /// Shared-credentials file to write the profile to (default: ~/.aws/credentials).
    pub profile_file: Option<PathBuf>,
    /// Name of the profile the agent writes.
    pub profile: String,
    /// Do not write a shared-credentials profile.
    pub no_profile: bool,
    /// Lifetime of the session credentials made from a long-term key, in seconds.
    pub session_duration: u32,
    /// Renew credentials when this many seconds of their lifetime are left.
    pub refresh_before: Option<u32>,
    /// How long `attach_volume` waits for its volume, in seconds.
    pub task_wait: f64,
    /// Do not fetch and run commands from the console.
    pub no_commands: bool,
    /// Run commands as this user (default: the agent's own).
    pub command_user: Option<String>,
}
