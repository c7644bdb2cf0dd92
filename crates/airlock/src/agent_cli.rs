//! The `airlock agent` command line, and the edge between it and the agent library: flags
//! become an [`AgentSettings`], the AWS SDK client is built here, logs are set up here.

use std::path::PathBuf;
use std::sync::Arc;

use airlock_agent::{AgentError, AgentSettings};
use airlock_os::UsageError;
use airlock_testbed::fleet::FleetSettings;
use clap::{Args, Subcommand};

use crate::cli::{ConsoleArgs, LogFormat};

/// `airlock agent`: run on an instance.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AgentArgs {
    /// Something other than running the agent.
    #[command(subcommand)]
    pub command: Option<AgentCommand>,
    /// How the agent runs.
    #[command(flatten)]
    pub run: RunArgs,
}

/// `airlock agent <command>`.
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Print what the agent knows: instance, deployment, credential key id and expiry, tasks
    /// (never a secret). Use `--output json` for scripts.
    Status(StatusArgs),
    /// Lock the metadata service to the user running this command (iptables and ip6tables
    /// rules; routed traffic from containers and VMs is rejected too), then exit. Idempotent;
    /// the packaged unit runs it before the agent reads the user data.
    LockImds(LockImdsArgs),
    /// Development only: run agents for the instances a local EC2-compatible server (moto)
    /// reports running in a loopback VPC, each with its own metadata server.
    #[command(hide = true)]
    Fleet(FleetArgs),
}

/// `airlock agent status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The agent's state directory.
    #[arg(
        long,
        env = "AIRLOCK_AGENT_STATE_DIR",
        default_value = "/var/lib/airlock"
    )]
    pub state_dir: PathBuf,
}

/// `airlock agent lock-imds`.
#[derive(Debug, Args)]
pub struct LockImdsArgs {
    /// Instance metadata service URL: its IPv4 or IPv6 address is locked, with EC2's other
    /// metadata address.
    #[arg(
        long,
        env = "AWS_EC2_METADATA_SERVICE_ENDPOINT",
        default_value = airlock_agent::imds::DEFAULT_ENDPOINT
    )]
    pub imds_endpoint: String,
}

/// How `airlock agent` runs.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Do the boot work (store credentials, write the profile, run boot tasks), then exit;
    /// for cloud-init or a systemd oneshot. Without it the agent keeps running: it serves the
    /// credentials endpoint, refreshes credentials and retries failed tasks.
    #[arg(long)]
    pub once: bool,

    /// Where credentials and state are kept (mode 0700, files 0600).
    #[arg(
        long,
        env = "AIRLOCK_AGENT_STATE_DIR",
        default_value = "/var/lib/airlock"
    )]
    pub state_dir: PathBuf,

    /// Instance metadata service URL.
    #[arg(
        long,
        env = "AWS_EC2_METADATA_SERVICE_ENDPOINT",
        default_value = airlock_agent::imds::DEFAULT_ENDPOINT
    )]
    pub imds_endpoint: String,

    /// Allow IMDSv1 (reads without a session token) when the metadata service hands out no
    /// tokens. Off by default: Airlock's instances require IMDSv2.
    #[arg(long)]
    pub imds_v1: bool,

    /// Timeout of each metadata request, in seconds.
    #[arg(long, default_value_t = 2.0)]
    pub imds_timeout: f64,

    /// How long to keep retrying the metadata service at boot when nothing is stored yet, in
    /// seconds.
    #[arg(long, default_value_t = 120.0)]
    pub imds_wait: f64,

    /// With stored state: how long to try the metadata service before serving the stored
    /// credentials unverified (checked again in the background), in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub stored_state_wait: f64,

    /// Lifetime asked for IMDSv2 session tokens, in seconds (1 to 21600).
    #[arg(long, default_value_t = 21600)]
    pub imds_token_ttl: u64,

    /// Before reading the user data, allow only the agent's user to reach the metadata
    /// service (what `airlock agent lock-imds` does).
    #[arg(long)]
    pub lock_imds: bool,

    /// Allow an http:// refresh URL whose host is not this machine. Without it such a URL is
    /// refused: the refresh secret and the credentials it buys would cross the network in clear
    /// text.
    #[arg(long)]
    pub insecure_http: bool,

    /// Reach the console's refresh URL through this HTTP proxy (http://HOST:PORT). Without it
    /// the agent ignores HTTP_PROXY, HTTPS_PROXY and ALL_PROXY for the console: a proxy sees
    /// every refresh, and the console checks that a refresh comes from the instance's address.
    #[arg(long, env = "AIRLOCK_REFRESH_PROXY", value_name = "URL")]
    pub refresh_proxy: Option<String>,

    /// Address of the loopback credentials endpoint (port 0: any free port; the URL and token
    /// are written to STATE_DIR/credentials.env).
    #[arg(long, env = "AIRLOCK_AGENT_LISTEN", default_value = "127.0.0.1:9911")]
    pub listen: String,

    /// Shared-credentials file to write the profile to (default: ~/.aws/credentials of the
    /// agent's user).
    #[arg(long, env = "AIRLOCK_PROFILE_FILE")]
    pub profile_file: Option<PathBuf>,

    /// Name of the profile the agent writes.
    #[arg(long, default_value = "airlock")]
    pub profile: String,

    /// Do not write a shared-credentials profile.
    #[arg(long, conflicts_with_all = ["profile_file"])]
    pub no_profile: bool,

    /// Lifetime of the session credentials the endpoint serves when the payload holds a
    /// long-term key, in seconds (STS GetSessionToken: 900 to 129600).
    #[arg(long, default_value_t = 3600)]
    pub session_duration: u32,

    /// Renew credentials when this many seconds of their lifetime are left (default: a tenth
    /// of the session duration, at least 60 and at most 600).
    #[arg(long)]
    pub refresh_before: Option<u32>,

    /// How long `attach_volume` waits for its volume to become available, in seconds.
    #[arg(long, default_value_t = 300.0)]
    pub task_wait: f64,

    /// Do not fetch and run commands sent with `airlock command run`. Without this flag, an
    /// agent whose deployment refreshes through the console (scoped, bootstrap or proxy
    /// credentials) long-polls it for commands and runs them.
    #[arg(long)]
    pub no_commands: bool,

    /// Run commands from the console as this user (default: the agent's own user).
    #[arg(long, value_name = "USER")]
    pub command_user: Option<String>,

    /// Log format on standard error.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl RunArgs {
    fn settings(self) -> AgentSettings {
        AgentSettings {
            once: self.once,
            state_dir: self.state_dir,
            imds_endpoint: self.imds_endpoint,
            imds_v1: self.imds_v1,
            imds_timeout: self.imds_timeout,
            imds_wait: self.imds_wait,
            stored_state_wait: self.stored_state_wait,
            imds_token_ttl: self.imds_token_ttl,
            lock_imds: self.lock_imds,
            insecure_http: self.insecure_http,
            refresh_proxy: self.refresh_proxy,
            listen: self.listen,
            profile_file: self.profile_file,
            profile: self.profile,
            no_profile: self.no_profile,
            session_duration: self.session_duration,
            refresh_before: self.refresh_before,
            task_wait: self.task_wait,
            no_commands: self.no_commands,
            command_user: self.command_user,
        }
    }
}

/// `airlock agent fleet`.
#[derive(Debug, Clone, Args)]
pub struct FleetArgs {
    /// The EC2-compatible endpoint (moto). Credentials come from AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY (moto accepts any).
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    pub endpoint_url: String,
    /// The region to watch.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// Where each instance's state directory, profile file and agent log go.
    #[arg(long)]
    pub dir: PathBuf,
    /// How often to look at the instances, in seconds.
    #[arg(long, default_value_t = 0.5)]
    pub poll_interval: f64,
    /// The airlock binary to run agents with (default: this one).
    #[arg(long)]
    pub airlock_bin: Option<PathBuf>,
    /// An extra argument for every agent (repeat it).
    #[arg(long = "agent-arg", allow_hyphen_values = true)]
    pub agent_args: Vec<String>,
}

impl FleetArgs {
    fn settings(self) -> FleetSettings {
        FleetSettings {
            endpoint_url: self.endpoint_url,
            region: self.region,
            dir: self.dir,
            poll_interval: self.poll_interval,
            airlock_bin: self.airlock_bin,
            agent_args: self.agent_args,
        }
    }
}

/// Runs `airlock agent …`; `console` is the binary's global `--console-ca` (trusted for the
/// refresh URL) and `json` its global `--output json`. An unusable flag value comes back as a
/// [`UsageError`].
pub async fn run(args: AgentArgs, console: &ConsoleArgs, json: bool) -> anyhow::Result<()> {
    let text_logs = || airlock_os::init_logging(false, airlock_os::DEFAULT_LOG_FILTER);
    match args.command {
        Some(AgentCommand::Status(status)) => Ok(airlock_agent::status::print(
            &airlock_agent::store::StateDir::new(status.state_dir),
            json,
        )
        .map_err(usage)?),
        Some(AgentCommand::LockImds(lock)) => {
            text_logs();
            Ok(airlock_agent::firewall::lock(&lock.imds_endpoint).map_err(usage)?)
        }
        Some(AgentCommand::Fleet(fleet)) => {
            text_logs();
            let cloud = Arc::new(airlock_aws::AwsCloud::new());
            Ok(airlock_testbed::fleet::run(fleet.settings(), cloud).await?)
        }
        None => {
            airlock_os::init_logging(
                args.run.log_format == LogFormat::Json,
                airlock_os::DEFAULT_LOG_FILTER,
            );
            // Only the running agent talks to the console.
            let roots = crate::client::console_roots(console.console_ca.as_deref())?;
            let cloud = Arc::new(airlock_aws::AwsCloud::new());
            Ok(airlock_agent::run(args.run.settings(), cloud, roots)
                .await
                .map_err(usage)?)
        }
    }
}

/// The agent's usage errors as the one [`UsageError`] the binary exits 2 for.
fn usage(e: AgentError) -> anyhow::Error {
    match e {
        AgentError::Usage(message) => UsageError(message).into(),
        e => e.into(),
    }
}
