//! The command line: every flag defined once, with its help, validated before anything runs.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Airlock: an external console for Amazon EC2.
///
/// Keeps AWS credentials sealed, deploys images with API access passed through user data, and
/// decides every action of every console user. `airlock serve` runs the console, `airlock agent`
/// runs on the instances it deploys, `airlock gateway` routes traffic to instances chosen by tags;
/// the other commands are the console's client (log in first with `airlock login`).
#[derive(Debug, Parser)]
#[command(
    name = "airlock",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// How to print results: a table for people or JSON for scripts.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,

    #[command(flatten)]
    pub console: ConsoleArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Which console the client commands, the gateway and the agent talk to, and how it is trusted.
#[derive(Debug, Clone, Default, Args)]
pub struct ConsoleArgs {
    /// Console URL (default: the one saved by `airlock login`).
    #[arg(long, global = true, env = "AIRLOCK_CONSOLE")]
    pub console: Option<String>,

    /// PEM bundle of certificate authorities to trust for an https:// console, besides the
    /// built-in web roots (a console with a private CA).
    #[arg(long, global = true, env = "AIRLOCK_CONSOLE_CA", value_name = "PEM")]
    pub console_ca: Option<PathBuf>,
}

impl ConsoleArgs {
    /// The URL, if one was given.
    pub fn url(&self) -> Option<&str> {
        self.console.as_deref().filter(|c| !c.is_empty())
    }
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns.
    Table,
    /// JSON, one document.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the console: HTTP API, vault, deployments.
    Serve(ServeArgs),
    /// Log in to a console and save an API token in your config directory (mode 0600).
    Login(LoginArgs),
    /// Revoke the saved token and forget it.
    Logout,
    /// Show who the saved token (or AIRLOCK_TOKEN) logs in as.
    Whoami,
    /// Manage AWS accounts (credentials are verified with STS, then sealed).
    #[command(subcommand)]
    Account(AccountCommand),
    /// Deploy an image: instances get API access through their user data.
    Deploy(DeployArgs),
    /// Inspect and scale deployments.
    #[command(subcommand)]
    Deployment(DeploymentCommand),
    /// List instances, filtered by account, deployment, tags or EC2 filters.
    Instances(InstancesArgs),
    /// List subnets with their zone, range and free addresses (the ones you may describe).
    Subnets(SubnetsArgs),
    /// Start, stop, reboot or terminate instances.
    #[command(subcommand)]
    Instance(InstanceCommand),
    /// Elastic IPs: allocate, associate, move between instances, release.
    #[command(subcommand)]
    Address(crate::fleet::AddressCommand),
    /// Network interfaces: create with a fixed private address, attach, move, delete.
    #[command(subcommand)]
    Eni(crate::fleet::EniCommand),
    /// Security groups and their rules (SSH/RDP open to the world only with --allow-world).
    #[command(subcommand, name = "security-group")]
    SecurityGroup(crate::fleet::SecurityGroupCommand),
    /// Key pairs: create (private key shown once), import, delete.
    #[command(subcommand, name = "key-pair")]
    KeyPair(crate::fleet::KeyPairCommand),
    /// EBS volumes: create (tagged on creation), attach, detach, delete.
    #[command(subcommand)]
    Volume(crate::fleet::VolumeCommand),
    /// EBS snapshots: create (tagged on creation), copy to another region, delete.
    #[command(subcommand)]
    Snapshot(crate::fleet::SnapshotCommand),
    /// Images (AMIs) of instances: create, list, deregister.
    #[command(subcommand)]
    Image(crate::fleet::ImageCommand),
    /// Master key operations on a console's database.
    #[command(subcommand)]
    Vault(VaultCommand),
    /// Console users and the policies attached to them.
    #[command(subcommand)]
    User(UserCommand),
    /// Airlock access keys for the `aws` CLI, SDKs and Terraform: they sign requests to the
    /// console's EC2 endpoint (CONSOLE_URL/ec2/ACCOUNT) and act as their user, through its
    /// policies and the audit log, with no AWS key handed out.
    #[command(subcommand, name = "access-key")]
    AccessKey(crate::access_key::AccessKeyCommand),
    /// IAM-style policies: validate and simulate locally, store them in the console.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Add or remove tags of an EC2 resource (authorized with ec2:CreateTags / ec2:DeleteTags).
    #[command(subcommand)]
    Tag(TagCommand),
    /// The audit log: every decision and every EC2 call, chained under a key the vault holds.
    ///
    /// Prints one page (--limit records); --cursor gives the next, --all follows to the end.
    Audit(AuditArgs),
    /// Route HTTP traffic to EC2 instances selected by tags (Gloo-compatible EC2 upstreams).
    ///
    /// With --console URL (token from AIRLOCK_TOKEN or `airlock login`) it follows that console:
    /// instance changes made through it apply at once, upstreams may name its accounts, and
    /// without --config its stored gateway configurations are the configuration.
    Gateway(crate::gateway_cli::GatewayArgs),
    /// Gateway configurations stored in the console (Gloo Upstream and VirtualService YAML),
    /// which `airlock gateway --console URL` loads and follows.
    #[command(subcommand, name = "gateway-config")]
    GatewayConfig(GatewayConfigCommand),
    /// Run on an instance: store the credentials from the user data, serve them to local
    /// programs, run boot tasks (`airlock agent status` shows what it knows).
    Agent(crate::agent_cli::AgentArgs),
    /// Consoles sharing one database: their heartbeats and who holds each lease.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Snapshot policies: EBS snapshots of the volumes a tag selects, on a schedule
    /// (cron(...) or rate(...), UTC), keeping the newest N and/or those younger than D days.
    /// Every snapshot and deletion is decided with the creator's permissions.
    #[command(subcommand, name = "snapshot-policy")]
    SnapshotPolicy(SnapshotPolicyCommand),
    /// Run command: a command line run by the agents of the instances a tag selects, fetched
    /// over their own channel to the console (no inbound port), with max-concurrency and
    /// max-errors as Systems Manager defines them.
    #[command(subcommand, name = "command")]
    Commands(CommandCommand),
    /// Maintenance windows: when the schedule opens one, its tasks (snapshots of the targets'
    /// volumes, a command, a reboot) run in order on the instances a tag selects, with max
    /// concurrency and max errors, until the cutoff; with the creator's permissions.
    #[command(subcommand, name = "maintenance-window")]
    MaintenanceWindow(MaintenanceWindowCommand),
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// List the console nodes seen in the last day (alive or not, last heartbeat) and who holds
    /// each lease (deployments, key-rotation); needs airlock:GetClusterStatus.
    Status,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7070", env = "AIRLOCK_LISTEN")]
    pub listen: String,
    /// Database: sqlite://PATH (embedded, the default) or postgres://USER@HOST/DB.
    #[arg(long, default_value = "sqlite://airlock.db", env = "AIRLOCK_DATABASE")]
    pub database: String,
    /// Master key file, created with mode 0600 if missing. AIRLOCK_MASTER_KEY (base64 keys,
    /// comma-separated, current first) is used instead when set.
    #[arg(long, default_value = "airlock-master.key")]
    pub master_key_file: PathBuf,
    /// URL instances and clients reach this console at (default: http://LISTEN).
    #[arg(long, env = "AIRLOCK_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// How often launching deployments are checked, in seconds.
    #[arg(long, default_value_t = 2.0)]
    pub poll_interval: f64,
    /// Lifetime of API tokens from `login`, in hours.
    #[arg(long, default_value_t = 12)]
    pub token_ttl_hours: u64,
    /// Rotate every account key older than this many days (checked hourly, as
    /// `account rotate-key` does); off unless given.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub rotate_keys_after_days: Option<u64>,
    /// Schedules (snapshot policies) read the time from this file (one RFC 3339 time) instead
    /// of the system clock, looking every second: how tests drive schedules without waiting.
    /// Tokens, audit and AWS calls keep the system clock.
    #[arg(long, hide = true)]
    pub schedule_clock_file: Option<PathBuf>,
    /// Seconds a connection may take to send a request's headers (and an idle kept-alive
    /// connection may wait for its next request) before it is closed.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub header_timeout: u64,
    /// Connections served at once; beyond, new ones wait to be accepted.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,
    /// Serve HTTPS (h2 and HTTP/1.1) with this PEM certificate chain; needs --tls-key.
    /// Both files are read again on SIGHUP (a bad pair is logged and the old one kept).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Seconds a client may take to finish the TLS handshake.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=120))]
    pub tls_handshake_timeout: u64,
    /// Serve plain HTTP on a non-loopback address (passwords, tokens, refresh secrets and
    /// instance credentials then cross the network in clear text): only behind a balancer that
    /// terminates TLS, on a network you trust.
    #[arg(long, conflicts_with = "tls_cert")]
    pub insecure_http: bool,
    /// Behind a TCP load balancer: connections from these networks (comma-separated CIDRs)
    /// must start with a PROXY protocol header (v1 or v2), whose client address is then the
    /// one policies and the refresh address check see. Others are served as direct clients.
    #[arg(long, value_name = "CIDR,...", value_delimiter = ',', num_args = 1..)]
    pub proxy_protocol: Vec<airlock_listen::IpNet>,
    /// Let accounts use this endpoint host (HOST or HOST:PORT, repeatable) besides AWS's own
    /// https://…amazonaws.com endpoints: an EC2-compatible test endpoint, a VPC endpoint by IP.
    /// Users who may add accounts can otherwise not aim the console's signed calls elsewhere.
    #[arg(long, value_name = "HOST[:PORT]")]
    pub allow_endpoint: Vec<airlock_console::endpoints::AllowedEndpoint>,
    /// Seconds requests in flight get to finish after SIGTERM or SIGINT. Draining, the node
    /// fails /readyz, gives up its leases (another node takes its work at once), ends event
    /// streams (their watchers reconnect elsewhere) and accepts no new connection.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub drain_timeout: u64,
    /// EC2 requests per second per account and region, shared by every console feature
    /// (EC2's own bucket for non-mutating actions refills 20 a second). After a
    /// `RequestLimitExceeded` the console slows below it and climbs back with each success.
    #[arg(long, default_value_t = 20.0, value_name = "N")]
    pub ec2_rate: f64,
    /// EC2 requests per account and region that may go at once after a quiet while (EC2's own
    /// bucket holds 100).
    #[arg(long, default_value_t = 100, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub ec2_burst: u32,
    /// Serve Prometheus metrics (`GET /metrics`) on this address, apart from the API; off
    /// unless given.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// Let --metrics-listen use a non-loopback address (metrics are served without
    /// authentication, in plain HTTP).
    #[arg(long, requires = "metrics_listen")]
    pub metrics_allow_remote: bool,
    /// Log format on standard error.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Log format on standard error (`serve` and `agent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Your console user name.
    #[arg(long)]
    pub user: String,
    /// Read the password from standard input (first line).
    #[arg(long, required = true)]
    pub password_stdin: bool,
    /// The current one-time code, for users with a second factor.
    #[arg(long)]
    pub otp: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Add an account; its key is checked with STS GetCallerIdentity before it is stored.
    Add(AccountAddArgs),
    /// List accounts (key ids only, never secrets).
    List,
    /// Check a stored key with STS GetCallerIdentity again.
    Verify {
        /// Account name.
        name: String,
    },
    /// Remove an account and its sealed secret.
    Remove {
        /// Account name.
        name: String,
    },
    /// Replace the account's access key: IAM CreateAccessKey, wait until STS accepts the new
    /// key, seal it, then delete the old one. Needs a free key slot (IAM allows two per user).
    RotateKey {
        /// Account name.
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct AccountAddArgs {
    /// The console's name for the account.
    pub name: String,
    /// Default region, e.g. us-east-1.
    #[arg(long)]
    pub region: String,
    /// EC2/STS endpoint when not AWS's own (e.g. a local test endpoint).
    #[arg(long)]
    pub endpoint_url: Option<String>,
    /// Access key id.
    #[arg(long)]
    pub access_key_id: String,
    /// Read the secret access key from standard input (never from a flag, which `ps` shows).
    #[arg(long, required = true)]
    pub secret_access_key_stdin: bool,
    /// Role to assume with the key before every call.
    #[arg(long)]
    pub role_arn: Option<String>,
    /// External id the role's trust policy asks for.
    #[arg(long, requires = "role_arn")]
    pub external_id: Option<String>,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Account to deploy in.
    #[arg(long)]
    pub account: String,
    /// AMI id.
    #[arg(long)]
    pub image: String,
    /// Instance type, e.g. t3.micro.
    #[arg(long)]
    pub instance_type: String,
    /// Number of instances.
    #[arg(long, default_value_t = 1)]
    pub count: u32,
    /// Subnet id.
    #[arg(long)]
    pub subnet: Option<String>,
    /// Security group id (repeatable).
    #[arg(long = "security-group")]
    pub security_groups: Vec<String>,
    /// Key pair name.
    #[arg(long)]
    pub key_name: Option<String>,
    /// Tag KEY=VALUE applied on creation to instances and volumes (repeatable).
    #[arg(long = "tag", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,
    /// Your own shell script or cloud-config, run by cloud-init beside the Airlock payload.
    #[arg(long)]
    pub user_script: Option<PathBuf>,
    /// IMDSv2 hop limit: 1, or 2 when containers on the instance need the metadata service.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub metadata_hop_limit: u8,
    /// A JSON file with the boot tasks the agent runs on each instance: a list of
    /// {"task": "tag_instance" | "attach_volume" | "associate_address", ...} (docs/payload.md).
    #[arg(long)]
    pub tasks: Option<PathBuf>,
    /// Idempotency token: repeating a deploy with the same token never launches twice
    /// (default: a fresh one per run).
    #[arg(long)]
    pub client_token: Option<String>,
    /// Wait until every instance runs (or the deployment fails), showing progress.
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 900)]
    pub timeout: u64,
    /// What credentials the instances get: `scoped` (temporary STS credentials limited to the
    /// deployment's own resources, refreshed through the console), `bootstrap` (a one-time
    /// token the agent exchanges at first boot; nothing reusable in the user data), `account`
    /// (the account's long-term key in the user data: risky), `proxy` (a one-time token
    /// exchanged for an Airlock access key that reaches EC2 only through the console, from the
    /// instance's address: no AWS credentials on the instance) or `none`.
    #[arg(long, value_enum, default_value_t = CredentialsArg::Scoped)]
    pub credentials: CredentialsArg,
    /// Lifetime of scoped credentials in seconds (900 up to STS's limit; default 3600).
    #[arg(long)]
    pub credentials_duration: Option<u32>,
    /// A JSON file with extra IAM statements for the instances' session policy (a list); they
    /// may not exceed what your own console policies allow.
    #[arg(long)]
    pub policy_statements: Option<PathBuf>,
    /// Spread the instances evenly over these Availability Zones (comma-separated, e.g.
    /// us-east-1a,us-east-1b,us-east-1c; each launch goes to the zone with the fewest). Not
    /// with --subnet, which fixes the zone.
    #[arg(long, value_delimiter = ',', conflicts_with = "subnet")]
    pub availability_zones: Vec<String>,
    /// Shared hardware (default) or hardware dedicated to the account (`ec2:Tenancy`).
    #[arg(long, value_enum)]
    pub tenancy: Option<TenancyArg>,
    /// Launch into this placement group (`ec2:PlacementGroup`).
    #[arg(long)]
    pub placement_group: Option<String>,
}

/// `--tenancy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TenancyArg {
    /// Shared hardware.
    Default,
    /// Hardware dedicated to the account.
    Dedicated,
}

/// `--credentials`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CredentialsArg {
    /// Temporary credentials limited to the deployment's resources (the default).
    Scoped,
    /// A one-time token exchanged at first boot for credentials limited to that instance.
    Bootstrap,
    /// The account's long-term key in the user data (risky).
    Account,
    /// No credentials and no payload.
    None,
    /// No AWS credentials: an Airlock access key usable only through the console's EC2
    /// endpoint, from the instance's own address, within the deployment's session policy.
    Proxy,
}

/// Parses `KEY=VALUE`.
pub fn parse_tag(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

#[derive(Debug, Subcommand)]
pub enum DeploymentCommand {
    /// List deployments.
    List,
    /// Show one deployment and its instances.
    Show {
        /// Deployment id.
        id: String,
    },
    /// Show the IAM session policy a scoped deployment's credentials are issued with.
    Policy {
        /// Deployment id.
        id: String,
    },
    /// Revoke every refresh secret of the deployment: its instances get no new credentials
    /// (those already issued expire at their end time).
    Revoke {
        /// Deployment id.
        id: String,
    },
    /// Replace every node with an instance of a new image, a batch at a time, each replacement
    /// taking over its node's secondary interfaces (same device index and address), data volumes
    /// (same device names) and Elastic IP before the old instance is terminated. A node whose
    /// replacement fails or is not healthy in time gets its identity back and runs again, and
    /// the roll stops (`--resume` goes on; `--abort` stops a running one, rolling back the nodes
    /// in flight).
    #[command(
        after_help = "Examples:\n  airlock deployment roll dep-3f9a... --image ami-0new... --dry-run\n  airlock deployment roll dep-3f9a... --image ami-0new... --health http:9042/health --health-timeout 10m --wait\n  airlock deployment roll dep-3f9a... --resume --wait"
    )]
    Roll {
        /// Deployment id.
        id: String,
        /// The new image (not with --resume or --abort).
        #[arg(long, required_unless_present_any = ["resume", "abort"])]
        image: Option<String>,
        /// A new instance type (default: the deployment's).
        #[arg(long)]
        instance_type: Option<String>,
        /// Nodes replaced at once: never more are out of service.
        #[arg(long, default_value_t = 1)]
        batch: u32,
        /// When a replacement is healthy: status-checks, agent (its agent refreshed through the
        /// console) or http:PORT/PATH (2xx from its private address).
        #[arg(long, default_value = "status-checks")]
        health: String,
        /// How long to wait for health before rolling the node back (e.g. 10m).
        #[arg(long, default_value = "10m", value_parser = parse_span)]
        health_timeout: u32,
        /// Print the plan (each node's interfaces, volumes and address) and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Go on with a failed or aborted roll from where it stopped.
        #[arg(long, conflicts_with_all = ["image", "abort"])]
        resume: bool,
        /// Stop a running roll: nodes in flight are rolled back, those not started stay.
        #[arg(long, conflicts_with_all = ["image", "resume"])]
        abort: bool,
        /// Wait until the roll ends, showing each node's step.
        #[arg(long)]
        wait: bool,
    },
    /// Where the deployment's latest roll is: each node's step, replacement and error.
    RollStatus {
        /// Deployment id.
        id: String,
    },
    /// Set the instance count: launch more with the same spec, or terminate the newest surplus.
    Scale {
        /// Deployment id.
        id: String,
        /// New instance count.
        #[arg(long)]
        count: u32,
        /// Wait until every instance runs.
        #[arg(long)]
        wait: bool,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 900)]
        timeout: u64,
    },
}

#[derive(Debug, Args)]
pub struct InstancesArgs {
    /// Only this account.
    #[arg(long)]
    pub account: Option<String>,
    /// Only this deployment's instances.
    #[arg(long)]
    pub deployment: Option<String>,
    /// Tag filter KEY=VALUE (repeatable; all must match, case-sensitive).
    #[arg(long = "tag", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,
    /// EC2 filter NAME=VALUE[,VALUE…], e.g. instance-state-name=running (repeatable).
    #[arg(long = "filter")]
    pub filters: Vec<String>,
    /// Add the status checks (system and instance) of each instance.
    #[arg(long)]
    pub status: bool,
    /// Keep the list on screen, refreshed in place every --interval seconds, with status
    /// checks (Ctrl-C to stop). With --output json, one JSON line per change.
    #[arg(long)]
    pub watch: bool,
    /// Seconds between refreshes with --watch.
    #[arg(long, default_value_t = 2.0, requires = "watch")]
    pub interval: f64,
}

#[derive(Debug, Subcommand)]
pub enum InstanceCommand {
    /// StartInstances.
    Start(InstanceIds),
    /// StopInstances.
    Stop(InstanceIds),
    /// RebootInstances.
    Reboot(InstanceIds),
    /// TerminateInstances.
    Terminate(InstanceIds),
}

#[derive(Debug, Args)]
pub struct InstanceIds {
    /// Instance ids.
    #[arg(required = true)]
    pub ids: Vec<String>,
    /// The account they belong to (default: the only account, if there is one).
    #[arg(long)]
    pub account: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum VaultCommand {
    /// Re-wrap every sealed record under a new master key while consoles keep running.
    ///
    /// With --master-key-file, the new key is added to the file first (consoles reading that
    /// file pick it up when they meet a re-wrapped record), every record is re-wrapped, then the
    /// old key is removed from the file.
    Rotate(RotateArgs),
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    /// The console's database.
    #[arg(long, env = "AIRLOCK_DATABASE")]
    pub database: String,
    /// The master key file the console uses.
    #[arg(long, default_value = "airlock-master.key")]
    pub master_key_file: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user; the password is read from standard input.
    Add {
        /// Login name.
        name: String,
        /// A policy document to store (named USER-FILESTEM) and attach (repeatable).
        #[arg(long = "policy")]
        policy_files: Vec<PathBuf>,
        /// A stored policy to attach (repeatable).
        #[arg(long = "attach")]
        attach: Vec<String>,
        /// Read the initial password from standard input.
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List users and their policies.
    List,
    /// Remove a user.
    Remove {
        /// Login name.
        name: String,
    },
    /// Attach a stored policy to a user.
    AttachPolicy {
        /// Login name.
        user: String,
        /// Policy name.
        policy: String,
    },
    /// Detach a policy from a user.
    DetachPolicy {
        /// Login name.
        user: String,
        /// Policy name.
        policy: String,
    },
    /// Enable a TOTP second factor; prints its secret once.
    EnableMfa {
        /// Login name.
        user: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Check a policy document; exit 0 if valid, 1 with every problem otherwise.
    Validate {
        /// The policy file (JSON).
        file: PathBuf,
    },
    /// Decide a request against policies, as the console would.
    ///
    /// The request file is {"action": "...", "resource": "arn:...", "context": {"key": "value" | ["v1", "v2"]}}.
    /// The answer's decision is allowed, explicitDeny or implicitDeny, with the deciding statements.
    Simulate {
        /// A policy file (repeatable; all apply together, like a user's policies; none denies
        /// everything).
        #[arg(long = "policy")]
        policies: Vec<PathBuf>,
        /// The request file.
        #[arg(long)]
        request: PathBuf,
    },
    /// Store (or replace) a named policy in the console.
    Create {
        /// Policy name.
        name: String,
        /// The policy file (JSON).
        file: PathBuf,
    },
    /// List stored policies.
    List,
    /// Show a stored policy's document.
    Show {
        /// Policy name.
        name: String,
    },
    /// Delete a stored policy (detach it from every user first).
    Delete {
        /// Policy name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum CommandCommand {
    /// Send a command (airlock:SendCommand on every target instance, decided with its tags).
    ///
    /// The program runs without a shell, as the agent's --command-user, on every running
    /// instance that matches all the --target tags (and is one of the --instance ids, when
    /// given). With --file, the file is run by `sh -c`. Exits 1 when --wait sees an instance
    /// fail, time out, stay unreachable or be cancelled.
    #[command(
        after_help = "Examples:\n  airlock command run --account prod --target 'tag:Patch Group=Linux Servers' --max-concurrency 1 --timeout 600 --wait -- yum -y update\n  airlock command run --account prod --instance i-0123456789abcdef0 --timeout 60 --file ./check.sh --wait --output json"
    )]
    Run {
        /// Console account whose instances run it.
        #[arg(long)]
        account: String,
        /// tag:KEY=VALUE; repeat to narrow (an instance must match every one).
        #[arg(long = "target", value_name = "tag:KEY=VALUE")]
        targets: Vec<String>,
        /// An instance id; repeatable.
        #[arg(long = "instance", value_name = "INSTANCE_ID")]
        instances: Vec<String>,
        /// How many instances run it at once: N or N% of the targets.
        #[arg(long, default_value = "50")]
        max_concurrency: String,
        /// Errors (failures and timeouts) allowed before the instances not yet sent it are
        /// cancelled: N or N%.
        #[arg(long, default_value = "0")]
        max_errors: String,
        /// Seconds it may run on each instance (and wait for the instance's agent to fetch it).
        #[arg(long)]
        timeout: u32,
        /// Wait until every instance is done, showing progress, and print the results.
        #[arg(long)]
        wait: bool,
        /// Run this script with `sh -c` instead of a command line.
        #[arg(long, value_name = "FILE", conflicts_with = "command")]
        file: Option<PathBuf>,
        /// The program and its arguments (after `--`).
        #[arg(last = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// List the latest commands (airlock:ListCommands).
    List,
    /// Show a command's per-instance status, exit code and output (airlock:GetCommand; output
    /// needs airlock:ReadCommandOutput on the instance).
    Show {
        /// The command id (cmd-…).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum MaintenanceWindowCommand {
    /// Create a window (airlock:CreateMaintenanceWindow); it first opens at the schedule's next
    /// time after now.
    ///
    /// Tasks run in this order: --task-snapshot, each --task-command in the order given, then
    /// --task-reboot (snapshot, patch, reboot).
    #[command(
        after_help = "Example:\n  airlock maintenance-window create patch-sunday --account prod --target 'tag:Patch Group=Linux Servers' \\\n    --schedule 'cron(0 3 ? * SUN *)' --duration 2h --cutoff 30m \\\n    --task-snapshot --task-command ./patch.sh --task-reboot --max-concurrency 1 --max-errors 0"
    )]
    Create {
        /// Window name (1-64 of letters, digits, '.', '_', '-').
        name: String,
        /// Console account whose instances it maintains.
        #[arg(long)]
        account: String,
        /// The instances: tag:KEY=VALUE (those running when it opens).
        #[arg(long)]
        target: String,
        /// When it opens: 'cron(0 3 ? * SUN *)' or 'rate(1 day)' (EventBridge syntax, UTC).
        #[arg(long)]
        schedule: String,
        /// How long it stays open: 1h to 24h (e.g. 2h, 90m).
        #[arg(long, value_parser = parse_span)]
        duration: u32,
        /// How long before it closes no new task starts (e.g. 30m).
        #[arg(long, value_parser = parse_span)]
        cutoff: u32,
        /// A script each instance's agent runs with `sh -c`; repeatable.
        #[arg(long = "task-command", value_name = "FILE")]
        task_commands: Vec<PathBuf>,
        /// Seconds each command task may run on an instance.
        #[arg(long, default_value_t = 600)]
        task_timeout: u32,
        /// Snapshot every volume attached to each instance first.
        #[arg(long)]
        task_snapshot: bool,
        /// Reboot each instance last.
        #[arg(long)]
        task_reboot: bool,
        /// Instances a task works on at once: N or N%.
        #[arg(long, default_value = "1")]
        max_concurrency: String,
        /// Errors a task allows before it stops: N or N%.
        #[arg(long, default_value = "0")]
        max_errors: String,
    },
    /// List windows with their next opening.
    List,
    /// Show a window.
    Show {
        /// Window name.
        name: String,
    },
    /// Its latest executions, each task's result per instance (airlock:GetMaintenanceWindow).
    Executions {
        /// Window name.
        name: String,
    },
    /// Open a window now, for its duration (airlock:RunMaintenanceWindow); exits 1 if --wait
    /// sees it fail.
    RunNow {
        /// Window name.
        name: String,
        /// Wait until its last task ended, and print the execution.
        #[arg(long)]
        wait: bool,
    },
    /// Delete a window and its history.
    Delete {
        /// Window name.
        name: String,
    },
}

/// A span like `2h`, `90m`, `45s`, `1h30m` or `0s`, in seconds.
fn parse_span(text: &str) -> Result<u32, String> {
    let bad = || format!("{text:?} is not a span like 2h, 30m or 1h30m");
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        total = total
            .checked_add(n.checked_mul(unit).ok_or_else(bad)?)
            .ok_or_else(bad)?;
        digits.clear();
    }
    if !digits.is_empty() || text.trim().is_empty() {
        return Err(bad());
    }
    u32::try_from(total).map_err(|_| bad())
}

#[derive(Debug, Subcommand)]
pub enum SnapshotPolicyCommand {
    /// Create a policy; it first fires at the schedule's next time after now.
    Create {
        /// Policy name (1-64 of letters, digits, '.', '_', '-').
        name: String,
        /// Console account whose volumes it snapshots.
        #[arg(long)]
        account: String,
        /// The volumes: tag:KEY=VALUE.
        #[arg(long)]
        target: String,
        /// When: 'cron(0 3 ? * SUN *)' or 'rate(1 day)' (EventBridge syntax, UTC).
        #[arg(long)]
        schedule: String,
        /// Snapshots of each volume kept, newest first.
        #[arg(long)]
        retain: Option<u32>,
        /// Snapshots younger than this many days are kept.
        #[arg(long)]
        retain_days: Option<u32>,
    },
    /// Run a policy now (airlock:RunSnapshotPolicy); exits 1 if a volume failed.
    Run {
        /// Policy name.
        name: String,
        /// Wait until EC2 reports every new snapshot completed.
        #[arg(long)]
        wait: bool,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
    /// List policies with their next run.
    List,
    /// Show a policy's latest runs (with --output json, the policy too).
    Show {
        /// Policy name.
        name: String,
    },
    /// Delete a policy; its snapshots stay in EC2.
    Delete {
        /// Policy name.
        name: String,
    },
}

/// `airlock subnets`.
#[derive(Debug, Args)]
pub struct SubnetsArgs {
    /// Only this account.
    #[arg(long)]
    pub account: Option<String>,
    /// Tag filter KEY=VALUE (repeatable; all must match, case-sensitive).
    #[arg(long = "tag", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,
    /// EC2 filter NAME=VALUE[,VALUE…], e.g. availability-zone=us-east-1a or vpc-id=vpc-0abc…
    /// (repeatable).
    #[arg(long = "filter")]
    pub filters: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum GatewayConfigCommand {
    /// Store (or replace) a configuration after the console validated it with every other one.
    Put {
        /// Configuration name.
        name: String,
        /// Gloo YAML file (Upstream and VirtualService documents; no Secret documents).
        file: PathBuf,
    },
    /// Print a stored configuration's YAML.
    Get {
        /// Configuration name.
        name: String,
    },
    /// List stored configurations.
    List,
    /// What the stored upstreams route to now: each upstream's instances, and how many others
    /// carry its tag keys but get no traffic (--output json: every instance, each with why).
    Upstreams,
    /// Delete a configuration (refused while another one routes to its upstreams).
    Delete {
        /// Configuration name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TagCommand {
    /// Add or overwrite tags: airlock tag add RESOURCE KEY=VALUE...
    Add(TagArgs),
    /// Remove tags: airlock tag remove RESOURCE KEY[=VALUE]...
    Remove(TagArgs),
}

#[derive(Debug, Args)]
pub struct TagArgs {
    /// The resource id (i-, vol-, snap-, ami-, sg-, subnet-, vpc-, eni-, eipalloc-, key-).
    pub resource: String,
    /// Tags as KEY=VALUE (for remove, KEY alone removes the key whatever its value).
    #[arg(required = true)]
    pub tags: Vec<String>,
    /// The account the resource is in (default: the only account, if there is one).
    #[arg(long)]
    pub account: Option<String>,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: Option<AuditCommand>,
    /// Only this user's records.
    #[arg(long)]
    pub user: Option<String>,
    /// Only records at or after this time (RFC 3339, e.g. 2026-01-31T12:00:00Z).
    #[arg(long)]
    pub since: Option<String>,
    /// Records per page.
    #[arg(
        long,
        default_value_t = airlock_console::audit::DEFAULT_LIMIT,
        value_parser = clap::value_parser!(u32).range(1..=i64::from(airlock_console::audit::MAX_LIMIT)),
    )]
    pub limit: u32,
    /// Start after the records a previous page held (the cursor it printed).
    #[arg(long)]
    pub cursor: Option<String>,
    /// Follow the cursor to the end of the log, printing page after page (JSON: one record a
    /// line).
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the chain of the whole log; exit 1 if a record was edited, removed or downgraded.
    Verify {
        /// Also check that record SEQ still has HASH, as `airlock audit head` printed it: finds
        /// the newest records removed, or the log rewritten, after it was written down.
        #[arg(long, value_name = "SEQ:HASH")]
        anchor: Option<airlock_console::audit::Anchor>,
    },
    /// The newest record's seq, time and hash: write it down elsewhere to anchor the log.
    Head,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_as_an_operator_writes_them() {
        assert_eq!(parse_span("2h"), Ok(7200));
        assert_eq!(parse_span("30m"), Ok(1800));
        assert_eq!(parse_span("1h30m"), Ok(5400));
        assert_eq!(parse_span("0s"), Ok(0));
        for bad in ["", "2", "h", "2d", "1.5h", "-1h", "99999999999h"] {
            let err = parse_span(bad).unwrap_err();
            assert!(err.contains("2h, 30m or 1h30m"), "{bad}: {err}");
        }
    }
}
