//! The local fleet (development and tests only): makes the instances a local EC2-compatible
//! server (moto) reports really "boot".
//!
//! For every instance running with a loopback private address (a VPC of 127.0.0.0/16, see
//! DESIGN.md), it serves an IMDSv2-faithful metadata endpoint on the instance's own address
//! with the user data EC2 holds for it (DescribeInstanceAttribute), and runs `airlock agent`
//! against it with a state directory of its own. When the instance stops or terminates the
//! agent is stopped; when it runs again (a stop/start is a reboot that keeps the disk) the
//! agent starts again on the same state directory. moto's RebootInstances changes nothing
//! observable, so a reboot can also be asked for by creating the file `DIR/ID/reboot`.
//!
//! `DIR/fleet.json` lists the instances, their metadata URL, state directory and agent.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use airlock_cloud::{AccessKey, Cloud, CloudError, Ec2, Filter, Instance, Target};
use airlock_os::UsageError;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::imds_server::{ImdsServer, InstanceData};

/// What `airlock agent fleet` was asked to do.
#[derive(Debug, Clone)]
pub struct FleetSettings {
    /// The EC2-compatible endpoint (moto).
    pub endpoint_url: String,
    /// The region to watch.
    pub region: String,
    /// Where each instance's state directory, profile file and agent log go.
    pub dir: PathBuf,
    /// How often to look at the instances, in seconds.
    pub poll_interval: f64,
    /// The airlock binary to run agents with (default: the running one).
    pub airlock_bin: Option<PathBuf>,
    /// Extra arguments for every agent.
    pub agent_args: Vec<String>,
}

/// What stops the fleet or the boot of one of its instances.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// A setting cannot be used.
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// An EC2 call failed.
    #[error("{0}")]
    Cloud(#[from] CloudError),
    /// A file or directory could not be written.
    #[error("{}: {source}", path.display())]
    File {
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// Anything else (a metadata server that cannot bind, an agent that cannot start).
    #[error("{0}")]
    Other(String),
}

fn file_error(path: &Path) -> impl FnOnce(std::io::Error) -> FleetError + '_ {
    move |source| FleetError::File {
        path: path.to_owned(),
        source,
    }
}

/// One instance as `fleet.json` lists it.
#[derive(Clone, Debug, Serialize)]
struct Entry {
    instance_id: String,
    private_ip: String,
    state: String,
    imds_url: Option<String>,
    state_dir: PathBuf,
    profile_file: PathBuf,
    log: PathBuf,
    agent_pid: Option<u32>,
    agent_exit: Option<i32>,
    boots: u32,
    running_seen_at: Option<DateTime<Utc>>,
    agent_started_at: Option<DateTime<Utc>>,
}

struct Member {
    entry: Entry,
    imds: Option<ImdsServer>,
    agent: Option<tokio::process::Child>,
}

/// Runs the fleet until SIGTERM or Ctrl-C.
pub async fn run(args: FleetSettings, cloud: Arc<dyn Cloud>) -> Result<(), FleetError> {
    let poll = Duration::try_from_secs_f64(args.poll_interval)
        .map_err(|_| UsageError::new("--poll-interval must be a number of seconds"))?;
    let bin = match &args.airlock_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()
            .map_err(|e| FleetError::Other(format!("cannot find this binary: {e}")))?,
    };
    airlock_os::ensure_private_dir(&args.dir).map_err(file_error(&args.dir))?;
    let ec2 = cloud.ec2(&moto_target(&args)).await?;
    tracing::info!(endpoint = %args.endpoint_url, dir = %args.dir.display(), "local fleet watching loopback instances");
    let mut members: HashMap<String, Member> = HashMap::new();
    let mut last_written = String::new();
    let stop = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
    };
    tokio::pin!(stop);
    loop {
        match ec2.describe_instances(&[], &[]).await {
            Ok(instances) => {
                for instance in instances {
                    if let Some(ip) = loopback_ip(&instance) {
                        step(&args, &bin, &ec2, &mut members, &instance, ip).await;
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list instances"),
        }
        for member in members.values_mut() {
            if let Some(child) = member.agent.as_mut() {
                if let Ok(Some(exit)) = child.try_wait() {
                    tracing::warn!(instance = %member.entry.instance_id, ?exit, "agent exited");
                    member.entry.agent_exit = exit.code();
                    member.entry.agent_pid = None;
                    member.agent = None;
                }
            }
        }
        let list: BTreeMap<_, _> = members
            .iter()
            .map(|(id, m)| (id.clone(), m.entry.clone()))
            .collect();
        let text = serde_json::to_string_pretty(&serde_json::json!({ "instances": list }))
            .unwrap_or_default();
        if text != last_written {
            if let Err(e) = airlock_os::write_private(&args.dir.join("fleet.json"), text.as_bytes())
            {
                tracing::warn!(error = %e, "cannot write fleet.json");
            }
            last_written = text;
        }
        tokio::select! {
            () = &mut stop => break,
            () = tokio::time::sleep(poll) => {}
        }
    }
    for member in members.values_mut() {
        stop_agent(member).await;
    }
    tracing::info!("local fleet stopped");
    Ok(())
}

/// The local endpoint, with the environment's keys (moto accepts any).
fn moto_target(args: &FleetSettings) -> Target {
    Target {
        region: args.region.clone(),
        endpoint_url: Some(args.endpoint_url.clone()),
        credentials: AccessKey {
            access_key_id: std::env::var("AWS_ACCESS_KEY_ID")
                .unwrap_or_else(|_| "AKIAIOSFODNN7EXAMPLE".to_owned()),
            secret_access_key: std::env::var("AWS_SECRET_ACCESS_KEY")
                .unwrap_or_else(|_| "fleet-not-secret".to_owned())
                .into(),
            session_token: None,
        },
        role_arn: None,
        external_id: None,
    }
}

/// The instance's private address if it is an IPv4 loopback one (nothing else is ever used).
fn loopback_ip(instance: &Instance) -> Option<Ipv4Addr> {
    instance
        .private_ip
        .as_deref()
        .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
        .filter(Ipv4Addr::is_loopback)
}

async fn step(
    args: &FleetSettings,
    bin: &Path,
    ec2: &Arc<dyn Ec2>,
    members: &mut HashMap<String, Member>,
    instance: &Instance,
    ip: Ipv4Addr,
) {
    let id = &instance.instance_id;
    let home = args.dir.join(id);
    let member = members.entry(id.clone()).or_insert_with(|| Member {
        entry: Entry {
            instance_id: id.clone(),
            private_ip: ip.to_string(),
            state: instance.state.clone(),
            imds_url: None,
            state_dir: home.join("state"),
            profile_file: home.join("aws-credentials"),
            log: home.join("agent.log"),
            agent_pid: None,
            agent_exit: None,
            boots: 0,
            running_seen_at: None,
            agent_started_at: None,
        },
        imds: None,
        agent: None,
    });
    let was_running = member.entry.state == "running" && member.entry.running_seen_at.is_some();
    member.entry.state = instance.state.clone();
    let reboot = home.join("reboot");
    if instance.state == "running" {
        if reboot.exists() {
            let _ = std::fs::remove_file(&reboot);
            tracing::info!(instance = %id, "rebooting (asked by the reboot file)");
            stop_agent(member).await;
            member.entry.running_seen_at = None;
        }
        if !was_running || member.entry.running_seen_at.is_none() {
            member.entry.running_seen_at = Some(Utc::now());
            if let Err(e) = boot(args, bin, ec2, member, ip).await {
                tracing::warn!(instance = %id, error = %e, "cannot boot the instance's agent");
            }
        }
    } else if member.agent.is_some() || member.entry.running_seen_at.is_some() {
        tracing::info!(instance = %id, state = %instance.state, "instance no longer running; stopping its agent");
        stop_agent(member).await;
        member.entry.running_seen_at = None;
        if instance.state == "terminated" {
            member.imds = None;
            member.entry.imds_url = None;
        }
    }
}

async fn boot(
    args: &FleetSettings,
    bin: &Path,
    ec2: &Arc<dyn Ec2>,
    member: &mut Member,
    ip: Ipv4Addr,
) -> Result<(), FleetError> {
    let id = member.entry.instance_id.clone();
    let user_data = ec2.describe_user_data(&id).await?;
    match &member.imds {
        Some(server) => server.set_user_data(user_data),
        None => {
            let zone = ec2
                .describe_volumes(&[Filter::new("attachment.instance-id", &id)])
                .await
                .ok()
                .and_then(|v| v.into_iter().find_map(|v| v.availability_zone))
                .unwrap_or_else(|| format!("{}a", args.region));
            let server = ImdsServer::start(
                &format!("{ip}:0"),
                InstanceData {
                    instance_id: id.clone(),
                    availability_zone: zone,
                    user_data,
                    local_ipv4: Some(ip.to_string()),
                },
                false,
            )
            .await
            .map_err(|e| FleetError::Other(format!("cannot serve metadata on {ip}: {e}")))?;
            member.entry.imds_url = Some(server.url());
            member.imds = Some(server);
        }
    }
    let home = args.dir.join(&id);
    airlock_os::ensure_private_dir(&home).map_err(file_error(&home))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&member.entry.log)
        .map_err(file_error(&member.entry.log))?;
    let log2 = log.try_clone().map_err(file_error(&member.entry.log))?;
    let child = tokio::process::Command::new(bin)
        .arg("agent")
        .arg("--state-dir")
        .arg(&member.entry.state_dir)
        .arg("--imds-endpoint")
        .arg(member.entry.imds_url.clone().unwrap_or_default())
        .arg("--listen")
        .arg(format!("{ip}:0"))
        .arg("--profile-file")
        .arg(&member.entry.profile_file)
        .args(&args.agent_args)
        .env_remove("AWS_EC2_METADATA_SERVICE_ENDPOINT")
        .env_remove("AIRLOCK_AGENT_STATE_DIR")
        .env_remove("AIRLOCK_AGENT_LISTEN")
        .env_remove("AIRLOCK_PROFILE_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2))
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| FleetError::Other(format!("cannot start {}: {e}", bin.display())))?;
    member.entry.boots += 1;
    member.entry.agent_pid = child.id();
    member.entry.agent_exit = None;
    member.entry.agent_started_at = Some(Utc::now());
    tracing::info!(instance = %id, %ip, boot = member.entry.boots, pid = child.id().unwrap_or_default(), "agent started");
    member.agent = Some(child);
    Ok(())
}

/// SIGTERM, then SIGKILL after five seconds.
async fn stop_agent(member: &mut Member) {
    let Some(mut child) = member.agent.take() else {
        return;
    };
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
    match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
        Ok(Ok(exit)) => member.entry.agent_exit = exit.code(),
        _ => {
            let _ = child.kill().await;
        }
    }
    member.entry.agent_pid = None;
    tracing::info!(instance = %member.entry.instance_id, "agent stopped");
}
