//! `airlock address|eni|security-group|key-pair|volume|snapshot|image`: fleet operations through
//! a console, or with `--direct` straight to EC2 with this machine's AWS credentials (on an
//! instance, the agent's), running the same `airlock-fleet` code either way.
//!
//! Each family's module declares its commands' arguments and turns each into the library's
//! request; this module runs what they ask for: a listing, or a change (and a wait after it).

mod address;
mod image;
mod interface;
mod key_pair;
pub(crate) mod listing;
mod security_group;
mod snapshot;
mod volume;

pub use address::AddressCommand;
pub use image::ImageCommand;
pub use interface::EniCommand;
pub use key_pair::KeyPairCommand;
pub use security_group::SecurityGroupCommand;
pub use snapshot::SnapshotCommand;
pub use volume::VolumeCommand;

use crate::cli::{parse_tag, ConsoleArgs, Output};
use crate::client::Client;
use crate::commands::account_or_only;
use airlock_cloud::{Cloud, Ec2, Tag};
use airlock_fleet::{FleetFamily, FleetRequest, Outcome, Scope};
use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where an operation runs.
#[derive(Debug, Clone, Args)]
pub struct Where {
    /// Account (default: the console's only account).
    #[arg(long)]
    pub account: Option<String>,
    /// Run straight against EC2 with this machine's AWS credentials (the default chain: on an
    /// instance, the agent's credentials endpoint), in AWS_REGION, without a console. AWS then
    /// authorizes the calls itself.
    #[arg(long, conflicts_with = "account")]
    pub direct: bool,
}

/// Options of every listing.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub at: Where,
    /// Only resources tagged with this deployment.
    #[arg(long)]
    pub deployment: Option<String>,
    /// Tag filter KEY=VALUE (repeatable; all must match, case-sensitive).
    #[arg(long = "tag", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,
    /// EC2 filter NAME=VALUE[,VALUE…], e.g. tag:Team=web or status=available (repeatable).
    #[arg(long = "filter")]
    pub filters: Vec<String>,
}

/// Tags applied on creation.
#[derive(Debug, Args)]
pub struct NewTags {
    /// Tag KEY=VALUE applied on creation, atomically with the resource (repeatable).
    #[arg(long = "tag", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,
}

impl NewTags {
    fn tags(&self) -> Vec<Tag> {
        self.tags.iter().map(|(k, v)| Tag::new(k, v)).collect()
    }
}

/// One fleet command, of any family.
#[derive(Debug)]
pub enum FleetCommand {
    Address(AddressCommand),
    Eni(EniCommand),
    SecurityGroup(SecurityGroupCommand),
    KeyPair(KeyPairCommand),
    Volume(VolumeCommand),
    Snapshot(SnapshotCommand),
    Image(ImageCommand),
}

impl FleetCommand {
    fn plan(self) -> Result<Plan> {
        Ok(match self {
            FleetCommand::Address(c) => c.plan(),
            FleetCommand::Eni(c) => c.plan(),
            FleetCommand::SecurityGroup(c) => c.plan()?,
            FleetCommand::KeyPair(c) => c.plan()?,
            FleetCommand::Volume(c) => c.plan(),
            FleetCommand::Snapshot(c) => c.plan(),
            FleetCommand::Image(c) => c.plan(),
        })
    }
}

/// What a command asks for: a listing, or a change.
enum Plan {
    List {
        family: FleetFamily,
        args: ListArgs,
        /// Show this one security group's rules instead of a table of groups.
        only: Option<String>,
    },
    Change(Change),
}

impl Plan {
    fn list(family: FleetFamily, args: ListArgs) -> Plan {
        Plan::List {
            family,
            args,
            only: None,
        }
    }
}

/// A request, where it runs, and what to do after it.
struct Change {
    request: FleetRequest,
    at: Where,
    wait: Option<Wait>,
    private_key_file: Option<PathBuf>,
}

impl Change {
    fn new(at: Where, request: impl Into<FleetRequest>) -> Change {
        Change {
            request: request.into(),
            at,
            wait: None,
            private_key_file: None,
        }
    }

    /// Waits for `ready` after the change when `wait` was asked for.
    fn waiting(mut self, wait: bool, ready: Wait) -> Change {
        self.wait = wait.then_some(ready);
        self
    }
}

impl From<Change> for Plan {
    fn from(change: Change) -> Plan {
        Plan::Change(change)
    }
}

/// A state to wait for after a creation.
#[derive(Clone, Copy)]
struct Wait {
    family: FleetFamily,
    id_filter: &'static str,
    ready: &'static str,
}

/// A console, or EC2 itself with this machine's credentials.
enum Backend {
    Console { client: Client, account: String },
    Direct { ec2: Arc<dyn Ec2>, scope: Scope },
}

impl Backend {
    async fn open(console: &ConsoleArgs, at: &Where) -> Result<Backend> {
        if at.direct {
            let region = std::env::var("AWS_REGION")
                .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
                .ok()
                .context("--direct needs a region: set AWS_REGION (for example us-east-1)")?;
            let credentials = airlock_aws::default_chain_credentials()
                .await
                .context("--direct found no AWS credentials in the default chain")?;
            let target = airlock_cloud::Target {
                region: region.clone(),
                endpoint_url: std::env::var("AWS_ENDPOINT_URL_EC2")
                    .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
                    .ok(),
                credentials,
                role_arn: None,
                external_id: None,
            };
            let ec2 = airlock_aws::AwsCloud::new().ec2(&target).await?;
            // The account id only names resources in ARNs, which only the console's audit log
            // needs; a direct call is in CloudTrail instead.
            let scope = Scope {
                region,
                account_id: String::new(),
            };
            return Ok(Backend::Direct { ec2, scope });
        }
        let client = Client::new(console)?;
        let account = account_or_only(&client, at.account.clone()).await?;
        Ok(Backend::Console { client, account })
    }

    async fn list(&self, family: FleetFamily, args: &ListArgs) -> Result<Vec<Value>> {
        let tags: Vec<String> = args.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        match self {
            Backend::Direct { ec2, .. } => {
                let filters =
                    airlock_fleet::filters(args.deployment.as_deref(), &tags, &args.filters)?;
                Ok(airlock_fleet::describe(ec2.as_ref(), family, &filters).await?)
            }
            Backend::Console { client, account } => {
                let mut query: Vec<(&str, String)> = vec![("account", account.clone())];
                if let Some(d) = &args.deployment {
                    query.push(("deployment", d.clone()));
                }
                query.extend(tags.into_iter().map(|t| ("tag", t)));
                query.extend(args.filters.iter().map(|f| ("filter", f.clone())));
                let list: airlock_console::api::FleetList =
                    client.get_query(&format!("/v1/{family}"), &query).await?;
                Ok(list.items)
            }
        }
    }

    async fn run(&self, mut request: FleetRequest) -> Result<Outcome> {
        match self {
            Backend::Direct { ec2, scope } => {
                request.validate()?;
                let facts = airlock_fleet::prepare(ec2.as_ref(), &request).await?;
                if let Some(region) = request.copy_destination() {
                    bail!(
                        "--direct cannot copy to {region}: run it in the destination region with the console"
                    )
                }
                let run = airlock_fleet::execute(ec2.as_ref(), None, &request, &facts, scope).await;
                Ok(run.result?)
            }
            Backend::Console { client, account } => {
                let mut body = request.to_json();
                if let Some(o) = body.as_object_mut() {
                    o.insert("account".into(), Value::String(account.clone()));
                }
                client.post(&format!("/v1/{}", request.path()), &body).await
            }
        }
    }
}

/// Runs one fleet command.
pub async fn run(console: &ConsoleArgs, command: FleetCommand, output: Output) -> Result<()> {
    match command.plan()? {
        Plan::List { family, args, only } => {
            let backend = Backend::open(console, &args.at).await?;
            let items = backend.list(family, &args).await?;
            if let Some(id) = only {
                let Some(group) = items.into_iter().next() else {
                    bail!("no security group {id}");
                };
                return security_group::show_group(&group, output);
            }
            listing::print_list(family, &items, output)
        }
        Plan::Change(change) => run_change(console, change, output).await,
    }
}

async fn run_change(console: &ConsoleArgs, change: Change, output: Output) -> Result<()> {
    let backend = Backend::open(console, &change.at).await?;
    let mut outcome = backend.run(change.request).await?;
    if let Some(path) = &change.private_key_file {
        let Some(key) = outcome.private_key.take() else {
            bail!("EC2 returned no private key to save");
        };
        save_private_key(path, &key)?;
        outcome.message = format!(
            "{}; saved to {} (mode 0600)",
            outcome.message,
            path.display()
        );
    }
    if let (Some(w), Some(id)) = (change.wait, outcome.resource_id.clone()) {
        wait_for(&backend, w, &id, output).await?;
    }
    print_outcome(&outcome, output)
}

fn save_private_key(path: &std::path::Path, key: &airlock_fleet::PrivateKey) -> Result<()> {
    use secrecy::ExposeSecret;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(key.0.expose_secret().as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn print_outcome(outcome: &Outcome, output: Output) -> Result<()> {
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(outcome)?);
        return Ok(());
    }
    println!("{}", outcome.message);
    if let Some(key) = &outcome.private_key {
        use secrecy::ExposeSecret;
        // Shown once: EC2 keeps only the public half and the console keeps nothing.
        print!("{}", key.0.expose_secret());
        if !key.0.expose_secret().ends_with('\n') {
            println!();
        }
    }
    Ok(())
}

/// Polls the new resource until it is ready, with progress on a terminal.
async fn wait_for(backend: &Backend, w: Wait, id: &str, output: Output) -> Result<()> {
    let bar = if std::io::stderr().is_terminal() && output == Output::Table {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    let deadline = Instant::now() + Duration::from_secs(3600);
    let args = ListArgs {
        at: Where {
            account: None,
            direct: false,
        },
        deployment: None,
        tags: Vec::new(),
        filters: vec![format!("{}={id}", w.id_filter)],
    };
    let mut last = String::new();
    loop {
        let items = backend.list(w.family, &args).await?;
        let item = items.first();
        let state = item
            .and_then(|v| v.get("state"))
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_owned();
        let progress = item
            .and_then(|v| v.get("progress"))
            .and_then(Value::as_str)
            .map(|p| format!(" {p}"))
            .unwrap_or_default();
        let line = format!("{id}: {state}{progress}");
        bar.set_message(line.clone());
        if bar.is_hidden() && line != last {
            eprintln!("{line}");
        }
        last = line;
        if state == w.ready {
            bar.finish_and_clear();
            return Ok(());
        }
        if matches!(
            state.as_str(),
            "error" | "failed" | "deleted" | "deregistered"
        ) {
            bar.abandon();
            bail!("{id} is {state}");
        }
        if Instant::now() >= deadline {
            bar.abandon();
            bail!("gave up waiting for {id} after an hour; it is {state}");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
