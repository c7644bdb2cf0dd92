//! The agent's life: find its credentials (stored state first, user data otherwise), hand them
//! to local programs, run the boot tasks, and — unless `--once` — keep serving, refreshing and
//! retrying until it is stopped.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airlock_api::refresh::RefreshRequest;
use airlock_cloud::{AccessKey, Cloud, Target};
use airlock_payload::{find_payload, Credentials, ExposeSecret as _, Payload};
use chrono::Utc;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::console::ConsoleLink;
use crate::endpoint::{Endpoint, Served};
use crate::imds::{ImdsClient, ImdsConfig};
use crate::profile::{write_profile, ProfileKeys};
use crate::settings::AgentSettings;
use crate::status::{KeyInfo, Status};
use crate::store::{
    StateDir, StoredState, ENV_FILE, SESSION_FILE, STATE_FILE, STATUS_FILE, TASKS_FILE,
};
use crate::tasks::{run_task, Outcome, TaskContext, TaskResult};
use crate::{firewall, AgentError};

/// What the agent works from after boot.
struct Boot {
    state: StoredState,
    payload: Payload,
    verified: bool,
    /// Where requests to the console leave from (the instance's private address), when the
    /// metadata service said.
    source: Option<IpAddr>,
}

/// Validated settings.
struct Settings {
    args: AgentSettings,
    dir: StateDir,
    profile_file: Option<PathBuf>,
    console: ConsoleLink,
    /// `--command-user`, looked up.
    run_as: Option<crate::commands::RunAs>,
}

fn seconds(name: &str, value: f64) -> Result<Duration, AgentError> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| AgentError::Usage(format!("{name} must be a non-negative number of seconds")))
}

/// Runs the agent (`airlock agent` and `airlock agent --once`) with `cloud` for EC2 and STS;
/// `console_ca` are the authorities trusted for the console besides the built-in roots.
///
/// A setting that cannot be used is an [`AgentError::Usage`], returned before anything is read
/// or written.
pub async fn run(
    args: AgentSettings,
    cloud: Arc<dyn Cloud>,
    console_ca: Vec<reqwest::Certificate>,
) -> Result<(), AgentError> {
    let (settings, imds) = validate(args, console_ca)?;
    announce(&settings);
    // The lock goes in before the user data is read, so nothing else reads it meanwhile.
    let lock_failed = settings.args.lock_imds && !lock_metadata(&settings.args.imds_endpoint);
    let boot = obtain(&settings, &imds)
        .await
        .inspect_err(|e| tracing::error!(error = %e, "cannot get credentials"))?;
    let status = Arc::new(Mutex::new(initial_status(&settings, &boot)));
    write_profile_for(&settings, boot.payload.credentials.as_ref())?;
    let target = target_of(&boot.payload)?;
    let ctx = TaskContext {
        instance_id: boot.state.instance_id.clone(),
        availability_zone: boot.state.availability_zone.clone(),
        wait: seconds("--task-wait", settings.args.task_wait)?,
        poll: Duration::from_millis(500),
    };
    if settings.args.once {
        let dir = &settings.dir;
        save_status(dir, &status);
        let results = run_tasks(
            cloud.as_ref(),
            &target,
            &ctx,
            &boot.payload,
            &[],
            dir,
            &status,
        );
        return once_outcome(&results.await, lock_failed);
    }
    Serving::start(settings, imds, cloud, target, boot, status)
        .await?
        .run(ctx)
        .await
}

/// Checks every setting before touching the network or the disk.
fn validate(
    args: AgentSettings,
    console_ca: Vec<reqwest::Certificate>,
) -> Result<(Settings, ImdsClient), AgentError> {
    if !(900..=129_600).contains(&args.session_duration) {
        return Err(AgentError::Usage(
            "--session-duration must be 900 to 129600 seconds".to_owned(),
        ));
    }
    let imds_config = ImdsConfig {
        endpoint: args.imds_endpoint.clone(),
        token_ttl: Duration::from_secs(args.imds_token_ttl),
        attempt_timeout: seconds("--imds-timeout", args.imds_timeout)?,
        allow_v1: args.imds_v1,
    };
    seconds("--imds-wait", args.imds_wait)?;
    seconds("--stored-state-wait", args.stored_state_wait)?;
    seconds("--task-wait", args.task_wait)?;
    if args.lock_imds {
        firewall::metadata_addresses(&args.imds_endpoint)?;
    }
    let console = ConsoleLink::new(
        args.insecure_http,
        args.refresh_proxy.as_deref(),
        console_ca,
    )?;
    if !args.once {
        check_listen(&args.listen)?;
    }
    let profile_file = profile_file(&args)?;
    let run_as = match (&args.command_user, args.no_commands) {
        (Some(user), false) => Some(crate::commands::run_as(user)?),
        _ => None,
    };
    let imds = ImdsClient::new(imds_config)?;
    let settings = Settings {
        dir: StateDir::new(&args.state_dir),
        args,
        profile_file,
        console,
        run_as,
    };
    Ok((settings, imds))
}

/// The credentials endpoint must not be reachable from the network.
fn check_listen(listen: &str) -> Result<(), AgentError> {
    let addr: std::net::SocketAddr = listen.parse().map_err(|_| {
        AgentError::Usage(format!("--listen {listen} is not an IP address and port"))
    })?;
    if !addr.ip().is_loopback() {
        return Err(AgentError::Usage(format!(
            "--listen {addr} is not a loopback address; the credentials endpoint must not \
             be reachable from the network"
        )));
    }
    Ok(())
}

/// The shared-credentials file to write, if any.
fn profile_file(args: &AgentSettings) -> Result<Option<PathBuf>, AgentError> {
    if args.no_profile {
        return Ok(None);
    }
    match &args.profile_file {
        Some(p) => Ok(Some(p.clone())),
        None => std::env::var_os("HOME")
            .map(|h| Some(PathBuf::from(h).join(".aws").join("credentials")))
            .ok_or_else(|| AgentError::Usage("HOME is not set: give --profile-file".to_owned())),
    }
}

/// Says which of the riskier settings are in force.
fn announce(settings: &Settings) {
    if settings.args.insecure_http {
        tracing::warn!("--insecure-http: an http:// refresh URL to another host is used, so the refresh secret and the credentials may cross the network in clear text");
    }
    if settings.console.proxy.is_some() {
        tracing::info!("refreshes go through the proxy of --refresh-proxy");
    }
}

/// Locks the metadata service to this user; false (and logged) when it could not be done.
fn lock_metadata(imds_endpoint: &str) -> bool {
    match firewall::lock(imds_endpoint) {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(error = %e, "cannot lock the metadata service");
            false
        }
    }
}

fn initial_status(settings: &Settings, boot: &Boot) -> Status {
    Status {
        mode: if settings.args.once { "once" } else { "serve" }.to_owned(),
        pid: std::process::id(),
        started_at: Some(Utc::now()),
        instance_id: Some(boot.state.instance_id.clone()),
        region: Some(boot.state.region.clone()),
        availability_zone: boot.state.availability_zone.clone(),
        deployment_id: Some(boot.payload.deployment_id.clone()),
        verified: boot.verified,
        stored_at: Some(boot.state.stored_at),
        credentials: boot.payload.credentials.as_ref().map(key_info),
        profile: settings
            .profile_file
            .as_ref()
            .map(|p| format!("{} [{}]", p.display(), settings.args.profile)),
        refresh: "not-needed".to_owned(),
        ..Status::default()
    }
}

/// `--once`: failed tasks, then a failed lock, make the run fail.
fn once_outcome(results: &[TaskResult], lock_failed: bool) -> Result<(), AgentError> {
    let failed = results
        .iter()
        .filter(|r| r.outcome == Outcome::Failed)
        .count();
    if failed > 0 {
        return Err(AgentError::TasksFailed {
            failed,
            total: results.len(),
        });
    }
    if lock_failed {
        return Err(AgentError::Other(
            "the metadata service could not be locked".to_owned(),
        ));
    }
    Ok(())
}

/// The long-running agent: the endpoint serves while this renews what it serves.
struct Serving {
    settings: Settings,
    imds: ImdsClient,
    cloud: Arc<dyn Cloud>,
    target: Target,
    state: StoredState,
    source: Option<IpAddr>,
    status: Arc<Mutex<Status>>,
    endpoint: Endpoint,
    payload: Payload,
    served: Option<Served>,
    /// The stored state is known to be this instance's.
    verified: bool,
    backoff: Duration,
    /// Why the last refresh failed, until one succeeds.
    failing: Option<String>,
}

/// What the loop does after its wait.
enum Step {
    Stop,
    Continue,
}

impl Serving {
    /// The endpoint first, so local programs get credentials while tasks wait.
    async fn start(
        settings: Settings,
        imds: ImdsClient,
        cloud: Arc<dyn Cloud>,
        target: Target,
        boot: Boot,
        status: Arc<Mutex<Status>>,
    ) -> Result<Self, AgentError> {
        let dir = &settings.dir;
        let token = endpoint_token(dir)?;
        let endpoint = Endpoint::start(
            &settings.args.listen,
            token.clone(),
            crate::endpoint::limits(),
        )
        .await?;
        let served = current_served(
            cloud.as_ref(),
            &target,
            &boot.payload,
            dir,
            &settings,
            false,
        )
        .await;
        endpoint.set(served.clone());
        write_env_file(dir, &endpoint.url(), &token, &boot.payload)?;
        {
            let mut s = lock(&status);
            s.endpoint_url = Some(endpoint.url());
            s.served = served.as_ref().map(served_info);
        }
        tracing::info!(
            url = %endpoint.url(),
            env_file = %dir.file(ENV_FILE).display(),
            key = served.as_ref().map(|s| s.access_key_id.as_str()).unwrap_or("-"),
            "serving credentials"
        );
        save_status(dir, &status);
        Ok(Serving {
            settings,
            imds,
            cloud,
            target,
            state: boot.state,
            source: boot.source,
            status,
            endpoint,
            payload: boot.payload,
            served,
            verified: boot.verified,
            backoff: Duration::from_secs(15),
            failing: None,
        })
    }

    /// Serves, verifies and renews until SIGTERM or Ctrl-C; the boot tasks run beside it.
    async fn run(mut self, ctx: TaskContext) -> Result<(), AgentError> {
        // SIGTERM is handled from before the endpoint answers: whoever sees credentials served
        // may stop the agent cleanly.
        let stop = shutdown_signal();
        let tasks = tokio::spawn(task_loop(
            self.cloud.clone(),
            self.target.clone(),
            ctx,
            self.payload.clone(),
            self.settings.dir.clone(),
            self.status.clone(),
        ));
        let commands = self.commands().map(|c| tokio::spawn(c.serve()));
        tokio::pin!(stop);
        let ended = loop {
            match self.step(&mut stop).await {
                Ok(Step::Continue) => {}
                Ok(Step::Stop) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        tasks.abort();
        if let Some(commands) = commands {
            commands.abort();
        }
        ended?;
        tracing::info!("stopping; the stored credentials stay for the next start");
        lock(&self.status).mode = "stopped".to_owned();
        save_status(&self.settings.dir, &self.status);
        Ok(())
    }

    /// One turn: publish the plan, wait for it, then verify and renew as it says.
    async fn step(
        &mut self,
        stop: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> Result<Step, AgentError> {
        let plan = self.plan();
        self.publish(&plan);
        tokio::select! {
            () = stop.as_mut() => return Ok(Step::Stop),
            () = tokio::time::sleep(self.wait(&plan)) => {}
        }
        if !self.verified {
            self.verify().await?;
            if plan.at.is_none_or(|at| at > Utc::now()) {
                return Ok(Step::Continue);
            }
        }
        if plan.at.is_some_and(|at| at <= Utc::now()) {
            if let Some(backoff) = self.renew().await {
                tokio::select! {
                    () = stop.as_mut() => return Ok(Step::Stop),
                    () = tokio::time::sleep(backoff) => {}
                }
            }
        }
        Ok(Step::Continue)
    }

    /// The command loop, for an agent that refreshes through the console and may run commands.
    fn commands(&self) -> Option<crate::commands::Commands> {
        if self.settings.args.no_commands {
            return None;
        }
        let console_url = crate::commands::console_url(self.payload.refresh_url.as_deref()?)?;
        tracing::info!(console = %console_url, "fetching commands from the console");
        Some(crate::commands::Commands {
            console: self.settings.console.clone(),
            console_url,
            source: self.source,
            dir: self.settings.dir.clone(),
            run_as: self.settings.run_as,
        })
    }

    fn plan(&self) -> Plan {
        let margin = self
            .settings
            .args
            .refresh_before
            .unwrap_or((self.settings.args.session_duration / 10).clamp(60, 600));
        plan_refresh(&self.payload, self.served.as_ref(), margin)
    }

    /// Writes the plan (or the failure that outlives it) to the status file.
    fn publish(&self, plan: &Plan) {
        {
            let mut s = lock(&self.status);
            match &self.failing {
                Some(problem) if plan.state != "expired" => {
                    s.refresh = "failing".to_owned();
                    s.refresh_message = Some(problem.clone());
                }
                _ => {
                    s.refresh = plan.state.to_owned();
                    s.refresh_message = Some(plan.message.clone());
                }
            }
            s.served = self.served.as_ref().map(served_info);
            s.verified = self.verified;
        }
        save_status(&self.settings.dir, &self.status);
    }

    fn wait(&self, plan: &Plan) -> Duration {
        match (&plan.at, self.verified) {
            (_, false) => Duration::from_secs(5),
            (Some(at), true) => (*at - Utc::now()).to_std().unwrap_or_default(),
            (None, true) => Duration::from_secs(3600),
        }
        .max(Duration::from_millis(200))
    }

    /// Asks the metadata service whose instance this is: the stored state's, or (an error)
    /// another one's, whose credentials are withdrawn.
    async fn verify(&mut self) -> Result<(), AgentError> {
        match self.imds.identity(Duration::from_secs(2)).await {
            Ok(id) if id.instance_id == self.state.instance_id => {
                tracing::info!(instance = %id.instance_id, "metadata service reached: the stored state is this instance's");
                self.verified = true;
            }
            Ok(id) => {
                tracing::error!(instance = %id.instance_id, "the stored state belongs to another instance; withdrawing its credentials and exiting so the next start reads this instance's user data");
                self.endpoint.set(None);
                discard(&self.settings)?;
                return Err(AgentError::Other(
                    "the stored state belonged to another instance".to_owned(),
                ));
            }
            Err(e) => tracing::debug!(error = %e, "metadata service still unreachable"),
        }
        Ok(())
    }

    /// Renews what the endpoint serves; on failure, how long to wait before the next try.
    async fn renew(&mut self) -> Option<Duration> {
        let renewed = refresh(
            self.cloud.as_ref(),
            &self.target,
            &mut self.payload,
            &self.state,
            &self.settings,
            self.served.as_ref(),
            self.source,
        )
        .await;
        match renewed {
            Ok(new) => {
                tracing::info!(key = %new.access_key_id, expires = %new.expiration, source = new.source, "credentials refreshed");
                self.endpoint.set(Some(new.clone()));
                self.served = Some(new);
                self.backoff = Duration::from_secs(15);
                self.failing = None;
                None
            }
            Err(e) => {
                let until = self.served.as_ref().map(|s| s.expiration);
                let backoff = self.backoff;
                tracing::warn!(error = %e, serving_until = ?until, retry_in = ?backoff, "credential refresh failed; serving the last good credentials until they expire");
                let problem = format!(
                    "{e}; serving the last good credentials until {}",
                    until.map(|u| u.to_rfc3339()).unwrap_or_default()
                );
                {
                    let mut s = lock(&self.status);
                    s.refresh = "failing".to_owned();
                    s.refresh_message = Some(problem.clone());
                }
                self.failing = Some(problem);
                save_status(&self.settings.dir, &self.status);
                self.backoff = (backoff * 2).min(Duration::from_secs(300));
                Some(backoff)
            }
        }
    }
}

/// Resolves at SIGTERM or Ctrl-C. SIGTERM is taken over at once, not at the first poll: until
/// then its default action would end the process without the clean stop.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        let term = async {
            match term {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = term => {}
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn save_status(dir: &StateDir, status: &Mutex<Status>) {
    let mut s = lock(status).clone();
    s.updated_at = Some(Utc::now());
    if let Err(e) = dir.write_json(STATUS_FILE, &s) {
        tracing::warn!(error = %e, "cannot write the status file");
    }
}

fn key_info(c: &Credentials) -> KeyInfo {
    KeyInfo {
        access_key_id: c.access_key_id.clone(),
        expiration: c.expiration,
        source: "payload".to_owned(),
    }
}

fn served_info(s: &Served) -> KeyInfo {
    KeyInfo {
        access_key_id: s.access_key_id.clone(),
        expiration: Some(s.expiration),
        source: s.source.to_owned(),
    }
}

fn target_of(payload: &Payload) -> Result<Target, AgentError> {
    let c = credentials_of(payload)?;
    Ok(Target {
        region: payload.region.clone(),
        endpoint_url: payload.endpoint_url.clone(),
        credentials: AccessKey {
            access_key_id: c.access_key_id.clone(),
            secret_access_key: c.secret_access_key.clone(),
            session_token: c.session_token.clone(),
        },
        role_arn: payload.role_arn.clone(),
        external_id: payload.external_id.clone(),
    })
}

/// The payload's credentials. Only a bootstrap payload lacks them, and it is exchanged for
/// credentials before it is stored.
fn credentials_of(payload: &Payload) -> Result<&Credentials, AgentError> {
    payload.credentials.as_ref().ok_or_else(|| {
        AgentError::Other("the payload holds no credentials (deployment launched in bootstrap mode, not yet exchanged)".to_owned())
    })
}

fn key_id(payload: &Payload) -> &str {
    payload
        .credentials
        .as_ref()
        .map_or("-", |c| c.access_key_id.as_str())
}

/// Stored state first; the user data only when there is none or it is another instance's.
async fn obtain(settings: &Settings, imds: &ImdsClient) -> Result<Boot, AgentError> {
    let args = &settings.args;
    let dir = &settings.dir;
    let stored = match dir.load_state() {
        Ok(stored) => stored,
        Err(e @ AgentError::Corrupt { .. }) => {
            tracing::warn!(error = %e, "ignoring the stored state; reading the user data again");
            None
        }
        Err(e) => return Err(e),
    };
    let wait = if stored.is_some() {
        seconds("--stored-state-wait", args.stored_state_wait)?
    } else {
        seconds("--imds-wait", args.imds_wait)?
    };
    match imds.identity(wait).await {
        Ok(id) => {
            if let Some((state, payload)) = stored {
                if state.instance_id == id.instance_id {
                    tracing::info!(instance = %state.instance_id, deployment = %payload.deployment_id, key = %key_id(&payload), "using the stored state");
                    return Ok(Boot {
                        state,
                        payload,
                        verified: true,
                        source: id.local_ipv4,
                    });
                }
                tracing::warn!(stored = %state.instance_id, instance = %id.instance_id, "the stored state belongs to another instance (an image made from a running instance?); discarding it");
                discard(settings)?;
            }
            from_user_data(settings, imds, &id).await
        }
        Err(e) => match stored {
            Some((state, payload)) => {
                tracing::warn!(error = %e, instance = %state.instance_id, "metadata service unreachable; serving the stored credentials, unverified until it answers");
                Ok(Boot {
                    state,
                    payload,
                    verified: false,
                    source: None,
                })
            }
            None => Err(e),
        },
    }
}

/// Reads the payload from the user data, turns a bootstrap or enrolment secret into this
/// instance's own, and stores it.
async fn from_user_data(
    settings: &Settings,
    imds: &ImdsClient,
    id: &crate::imds::Identity,
) -> Result<Boot, AgentError> {
    let dir = &settings.dir;
    let wait = seconds("--imds-wait", settings.args.imds_wait)?;
    let user_data = imds.user_data(wait).await?.ok_or(AgentError::NoUserData)?;
    let mut payload = find_payload(&user_data)?;
    if payload.credentials.is_none() {
        bootstrap(
            &settings.console,
            dir,
            &mut payload,
            &id.instance_id,
            id.local_ipv4,
        )
        .await?;
    } else if payload.refresh_secret.is_some() {
        enrol(&settings.console, dir, &mut payload, id).await;
    }
    let state = StoredState::new(
        &id.instance_id,
        &id.region,
        id.availability_zone.clone(),
        &payload,
    )?;
    dir.write_json(STATE_FILE, &state)?;
    tracing::info!(instance = %id.instance_id, deployment = %payload.deployment_id, key = %key_id(&payload), tasks = payload.tasks.len(), state_dir = %dir.path().display(), "stored the payload from the user data");
    Ok(Boot {
        state,
        payload,
        verified: true,
        source: id.local_ipv4,
    })
}

/// The launch's enrolment secret is shared by its instances through the user data: spend it at
/// once for a secret of this instance's own. One try; if the console is not reachable, the
/// refresh loop enrols later.
async fn enrol(
    console: &ConsoleLink,
    dir: &StateDir,
    payload: &mut Payload,
    id: &crate::imds::Identity,
) {
    match console_refresh(console, dir, payload, &id.instance_id, id.local_ipv4).await {
        Ok(()) => {
            tracing::info!(instance = %id.instance_id, deployment = %payload.deployment_id, "enrolled with the console; the user data's secret is spent")
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot enrol with the console yet; using the user data's credentials until the first refresh")
        }
    }
}

/// Forgets another instance's state: its files and its profile section.
fn discard(settings: &Settings) -> Result<(), AgentError> {
    for name in [
        STATE_FILE,
        SESSION_FILE,
        TASKS_FILE,
        STATUS_FILE,
        crate::commands::AGENT_TOKEN_FILE,
    ] {
        settings.dir.remove(name)?;
    }
    if let Some(path) = &settings.profile_file {
        write_profile(path, &settings.args.profile, None)?;
    }
    Ok(())
}

fn write_profile_for(settings: &Settings, c: Option<&Credentials>) -> Result<(), AgentError> {
    let (Some(path), Some(c)) = (&settings.profile_file, c) else {
        return Ok(());
    };
    write_profile(
        path,
        &settings.args.profile,
        Some(&ProfileKeys {
            access_key_id: &c.access_key_id,
            secret_access_key: &c.secret_access_key,
            session_token: c.session_token.as_ref(),
        }),
    )?;
    tracing::info!(file = %path.display(), profile = %settings.args.profile, key = %c.access_key_id, "wrote the credentials profile");
    Ok(())
}

/// The endpoint's authorization token: the one local programs already have, if any.
fn endpoint_token(dir: &StateDir) -> Result<SecretString, AgentError> {
    if let Some(bytes) = dir.read(ENV_FILE)? {
        let text = String::from_utf8_lossy(&bytes);
        if let Some(token) = text
            .lines()
            .find_map(|l| l.strip_prefix("AWS_CONTAINER_AUTHORIZATION_TOKEN="))
            .filter(|t| t.len() >= 32)
        {
            return Ok(SecretString::from(token.trim().to_owned()));
        }
    }
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
    Ok(SecretString::from(hex::encode(bytes)))
}

fn write_env_file(
    dir: &StateDir,
    url: &str,
    token: &SecretString,
    payload: &Payload,
) -> Result<(), AgentError> {
    let mut text = format!(
        "# Written by airlock agent. Source it (set -a; . {file}) or use it as a systemd\n\
         # EnvironmentFile: AWS SDKs and the AWS CLI then get credentials from the agent.\n\
         AWS_CONTAINER_CREDENTIALS_FULL_URI={url}\n\
         AWS_CONTAINER_AUTHORIZATION_TOKEN={}\n",
        token.expose_secret(),
        file = dir.file(ENV_FILE).display(),
    );
    text.push_str(&proxy_env(payload));
    dir.write(ENV_FILE, text.as_bytes())
}

/// In `proxy` mode, where the served key works: the console's EC2 endpoint (and its STS
/// endpoint, which SDKs ask who they are), in the key's region.
fn proxy_env(payload: &Payload) -> String {
    let (true, Some(ec2)) = (payload.proxy, &payload.endpoint_url) else {
        return String::new();
    };
    let sts = payload
        .console_url
        .as_deref()
        .map_or_else(String::new, |c| {
            format!("AWS_ENDPOINT_URL_STS={}/sts\n", c.trim_end_matches('/'))
        });
    format!(
        "# The key is an Airlock access key: EC2 is reached through the console.\n\
         AWS_ENDPOINT_URL_EC2={ec2}\n{sts}AWS_REGION={region}\nAWS_DEFAULT_REGION={region}\n",
        region = payload.region
    )
}

/// Session credentials kept in [`SESSION_FILE`] (secrets: the file is 0600).
#[derive(Serialize, Deserialize)]
struct StoredSession {
    base_access_key_id: String,
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    expiration: chrono::DateTime<Utc>,
}

/// What the endpoint should serve: the payload's own temporary credentials, or a session from
/// STS when the payload holds a long-term key (the container provider requires a session
/// token). A stored session is reused while it has more than five minutes left, unless
/// `renew`.
async fn current_served(
    cloud: &dyn Cloud,
    target: &Target,
    payload: &Payload,
    dir: &StateDir,
    settings: &Settings,
    renew: bool,
) -> Option<Served> {
    match session_credentials(cloud, target, payload, dir, settings, renew).await {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(error = %e, "cannot get session credentials for the endpoint; it answers 503 until it can");
            None
        }
    }
}

async fn session_credentials(
    cloud: &dyn Cloud,
    target: &Target,
    payload: &Payload,
    dir: &StateDir,
    settings: &Settings,
    renew: bool,
) -> Result<Served, AgentError> {
    let c = credentials_of(payload)?;
    if payload.proxy {
        // An Airlock key: only the console's EC2 endpoint knows it, and it has no session
        // token. The container provider still wants a `Token`; an empty one is sent as none.
        return Ok(Served {
            access_key_id: c.access_key_id.clone(),
            secret_access_key: c.secret_access_key.clone(),
            session_token: SecretString::from(String::new()),
            expiration: c
                .expiration
                .unwrap_or_else(|| Utc::now() + chrono::Duration::hours(1)),
            source: "payload",
        });
    }
    if let (Some(token), None) = (&c.session_token, &payload.role_arn) {
        return Ok(Served {
            access_key_id: c.access_key_id.clone(),
            secret_access_key: c.secret_access_key.clone(),
            session_token: token.clone(),
            // Temporary credentials without an expiry: serve them with a rolling hour.
            expiration: c
                .expiration
                .unwrap_or_else(|| Utc::now() + chrono::Duration::hours(1)),
            source: "payload",
        });
    }
    if !renew {
        match dir.read_json::<StoredSession>(SESSION_FILE) {
            Ok(Some(s))
                if s.base_access_key_id == c.access_key_id
                    && s.expiration > Utc::now() + chrono::Duration::minutes(5) =>
            {
                return Ok(Served {
                    access_key_id: s.access_key_id,
                    secret_access_key: SecretString::from(s.secret_access_key),
                    session_token: SecretString::from(s.session_token),
                    expiration: s.expiration,
                    source: "sts",
                });
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "ignoring the stored session"),
        }
    }
    let s = cloud
        .session_credentials(target, settings.args.session_duration)
        .await?;
    let token = s
        .key
        .session_token
        .clone()
        .ok_or_else(|| AgentError::Other("STS returned no session token".to_owned()))?;
    dir.write_json(
        SESSION_FILE,
        &StoredSession {
            base_access_key_id: c.access_key_id.clone(),
            access_key_id: s.key.access_key_id.clone(),
            secret_access_key: s.key.secret_access_key.expose_secret().to_owned(),
            session_token: token.expose_secret().to_owned(),
            expiration: s.expiration,
        },
    )?;
    Ok(Served {
        access_key_id: s.key.access_key_id,
        secret_access_key: s.key.secret_access_key,
        session_token: token,
        expiration: s.expiration,
        source: "sts",
    })
}

/// When and how the served credentials are renewed next.
struct Plan {
    state: &'static str,
    message: String,
    at: Option<chrono::DateTime<Utc>>,
}

fn plan_refresh(payload: &Payload, served: Option<&Served>, margin_seconds: u32) -> Plan {
    let Some(served) = served else {
        return Plan {
            state: "failing",
            message: "no credentials to serve yet; trying again".to_owned(),
            at: Some(Utc::now() + chrono::Duration::seconds(15)),
        };
    };
    let margin = chrono::Duration::seconds(i64::from(margin_seconds));
    let at = served.expiration - margin;
    if served.expiration <= Utc::now() {
        return Plan {
            state: "expired",
            message: format!(
                "the served credentials expired at {}; the endpoint answers 503",
                served.expiration.to_rfc3339()
            ),
            at: payload
                .refresh_url
                .as_ref()
                .map(|_| Utc::now() + chrono::Duration::seconds(60)),
        };
    }
    match (
        served.source,
        &payload.refresh_url,
        payload.credentials.as_ref().and_then(|c| c.expiration),
    ) {
        ("sts", _, _) => Plan {
            state: "scheduled",
            message: format!("new session from STS at {}", at.to_rfc3339()),
            at: Some(at),
        },
        (_, _, None) => Plan {
            state: "not-needed",
            message: "the payload's credentials do not expire".to_owned(),
            at: Some(served.expiration - margin),
        },
        (_, Some(url), Some(_)) => Plan {
            state: "scheduled",
            message: format!("asking the console ({url}) at {}", at.to_rfc3339()),
            at: Some(at),
        },
        (_, None, Some(exp)) => Plan {
            state: "unavailable",
            message: format!(
                "the credentials expire at {} and the payload names no refresh URL; they are \
                 served until then",
                exp.to_rfc3339()
            ),
            at: None,
        },
    }
}

/// Renews what the endpoint serves: a new STS session, or (payload credentials with an expiry)
/// new credentials from the console's refresh URL.
async fn refresh(
    cloud: &dyn Cloud,
    target: &Target,
    payload: &mut Payload,
    state: &StoredState,
    settings: &Settings,
    served: Option<&Served>,
    source: Option<IpAddr>,
) -> Result<Served, AgentError> {
    let dir = &settings.dir;
    let from_console = served.is_some_and(|s| s.source == "payload")
        && payload
            .credentials
            .as_ref()
            .is_some_and(|c| c.expiration.is_some());
    if from_console {
        console_refresh(&settings.console, dir, payload, &state.instance_id, source).await?;
        // The secret just used no longer works: the new one is on disk before anything else.
        let new_state = StoredState {
            stored_at: Utc::now(),
            ..StoredState::new(
                &state.instance_id,
                &state.region,
                state.availability_zone.clone(),
                payload,
            )?
        };
        dir.write_json(STATE_FILE, &new_state)?;
        write_profile_for(settings, payload.credentials.as_ref())?;
        return session_credentials(cloud, &target_of(payload)?, payload, dir, settings, true)
            .await;
    }
    session_credentials(cloud, target, payload, dir, settings, true).await
}

/// First boot of a bootstrap deployment: the one-time secret from the user data is exchanged
/// for credentials before anything is stored, so the state directory never holds it. The
/// console may still be starting: a few tries with backoff.
async fn bootstrap(
    console: &ConsoleLink,
    dir: &StateDir,
    payload: &mut Payload,
    instance_id: &str,
    source: Option<IpAddr>,
) -> Result<(), AgentError> {
    let mut delay = Duration::from_secs(1);
    for attempt in 1.. {
        match console_refresh(console, dir, payload, instance_id, source).await {
            Ok(()) => {
                tracing::info!(instance = %instance_id, deployment = %payload.deployment_id, key = %key_id(payload), "exchanged the bootstrap token for credentials");
                return Ok(());
            }
            Err(e @ (AgentError::Refused(_) | AgentError::ClearText { .. })) => return Err(e),
            Err(e) if attempt >= 5 => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?delay, "cannot exchange the bootstrap token yet");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
    }
    Ok(())
}

/// Exchanges the payload's refresh secret at the console for fresh credentials and the next
/// secret, and puts both in the payload. Leaves from `source` (the instance's own address),
/// which the console checks; `console` decides whether the URL may be used and how.
async fn console_refresh(
    console: &ConsoleLink,
    dir: &StateDir,
    payload: &mut Payload,
    instance_id: &str,
    source: Option<IpAddr>,
) -> Result<(), AgentError> {
    let (Some(url), Some(secret)) = (&payload.refresh_url, &payload.refresh_secret) else {
        return Err(AgentError::Other(
            "the payload names no refresh URL and secret".to_owned(),
        ));
    };
    let request = RefreshRequest {
        deployment_id: payload.deployment_id.clone(),
        instance_id: instance_id.to_owned(),
        refresh_secret: secret.clone(),
    };
    let answer = console.refresh(url, source, &request).await?;
    crate::commands::keep_token(dir, &answer)?;
    payload.credentials = Some(answer.credentials);
    payload.refresh_secret = Some(answer.refresh_secret);
    Ok(())
}

/// Runs every task once, in order, and writes the results.
async fn run_tasks(
    cloud: &dyn Cloud,
    target: &Target,
    ctx: &TaskContext,
    payload: &Payload,
    previous: &[TaskResult],
    dir: &StateDir,
    status: &Mutex<Status>,
) -> Vec<TaskResult> {
    if payload.tasks.is_empty() {
        return Vec::new();
    }
    let ec2 = match cloud.ec2(target).await {
        Ok(ec2) => Some(ec2),
        Err(e) => {
            tracing::error!(error = %e, "cannot open an EC2 client for the boot tasks");
            None
        }
    };
    let mut results = Vec::with_capacity(payload.tasks.len());
    for (index, task) in payload.tasks.iter().enumerate() {
        let before = previous.iter().find(|r| r.index == index);
        if let Some(done) = before.filter(|r| r.outcome != Outcome::Failed) {
            results.push(done.clone());
            continue;
        }
        let attempts = before.map_or(1, |r| r.attempts + 1);
        let result = match &ec2 {
            Some(ec2) => run_task(ec2.as_ref(), ctx, index, task, attempts).await,
            None => TaskResult {
                index,
                task: task.kind().to_owned(),
                outcome: Outcome::Failed,
                detail: "no EC2 client".to_owned(),
                attempts,
                at: Utc::now(),
            },
        };
        results.push(result);
        if let Err(e) = dir.write_json(TASKS_FILE, &merged(&results, previous)) {
            tracing::warn!(error = %e, "cannot write the task results");
        }
    }
    lock(status).tasks = results.clone();
    save_status(dir, status);
    results
}

fn merged(now: &[TaskResult], previous: &[TaskResult]) -> Vec<TaskResult> {
    let mut all: Vec<TaskResult> = now.to_vec();
    all.extend(
        previous
            .iter()
            .filter(|p| !now.iter().any(|n| n.index == p.index))
            .cloned(),
    );
    all.sort_by_key(|r| r.index);
    all
}

/// Long-running mode: run the tasks, then re-run the failed ones with backoff.
async fn task_loop(
    cloud: Arc<dyn Cloud>,
    target: Target,
    ctx: TaskContext,
    payload: Payload,
    dir: StateDir,
    status: Arc<Mutex<Status>>,
) {
    let mut results: Vec<TaskResult> = Vec::new();
    let mut delay = Duration::from_secs(10);
    loop {
        results = run_tasks(
            cloud.as_ref(),
            &target,
            &ctx,
            &payload,
            &results,
            &dir,
            &status,
        )
        .await;
        let failed = results
            .iter()
            .filter(|r| r.outcome == Outcome::Failed)
            .count();
        if failed == 0 {
            return;
        }
        tracing::info!(failed, retry_in = ?delay, "retrying failed boot tasks later");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(600));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_a_proxy_payload_points_programs_at_the_console() {
        let key = Credentials {
            access_key_id: "ALAKAAAAAAAAAAAAAAAA".into(),
            secret_access_key: SecretString::from("s".to_owned()),
            session_token: None,
            expiration: None,
        };
        let mut payload = Payload::new("dep-1", "eu-west-1", key);
        payload.console_url = Some("https://airlock.example.com/".into());
        payload.endpoint_url = Some("https://airlock.example.com/ec2/prod".into());
        assert_eq!(proxy_env(&payload), "");
        payload.proxy = true;
        let env = proxy_env(&payload);
        for line in [
            "AWS_ENDPOINT_URL_EC2=https://airlock.example.com/ec2/prod\n",
            "AWS_ENDPOINT_URL_STS=https://airlock.example.com/sts\n",
            "AWS_REGION=eu-west-1\n",
            "AWS_DEFAULT_REGION=eu-west-1\n",
        ] {
            assert!(env.contains(line), "{env}");
        }
    }
}
