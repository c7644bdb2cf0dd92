//! What the agent knows, without secrets: written to `status.json` as the agent works and
//! printed by `airlock agent status`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::{StateDir, STATUS_FILE, TASKS_FILE};
use crate::tasks::TaskResult;
use crate::AgentError;

/// The agent's status (no secret ever goes in here).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Status {
    /// `serve` (long-running) or `once`.
    pub mode: String,
    /// The agent's process id.
    pub pid: u32,
    /// When it started.
    pub started_at: Option<DateTime<Utc>>,
    /// When this status was written.
    pub updated_at: Option<DateTime<Utc>>,
    /// The instance the stored credentials belong to.
    pub instance_id: Option<String>,
    /// Its region.
    pub region: Option<String>,
    /// Its availability zone.
    pub availability_zone: Option<String>,
    /// The deployment the payload names.
    pub deployment_id: Option<String>,
    /// Whether the metadata service confirmed this is that instance since the agent started
    /// (false while it serves stored state with the service unreachable).
    pub verified: bool,
    /// When the payload was stored.
    pub stored_at: Option<DateTime<Utc>>,
    /// The payload's credentials (key id and expiry only).
    pub credentials: Option<KeyInfo>,
    /// What the credentials endpoint serves (key id and expiry only).
    pub served: Option<KeyInfo>,
    /// The credentials endpoint's URL.
    pub endpoint_url: Option<String>,
    /// The profile file and name written.
    pub profile: Option<String>,
    /// Credential refresh: `not-needed`, `scheduled`, `failing`, `unavailable` or `expired`.
    pub refresh: String,
    /// The last refresh problem, or what will happen next.
    pub refresh_message: Option<String>,
    /// The boot tasks' last results.
    pub tasks: Vec<TaskResult>,
}

/// A key id and its expiry.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyInfo {
    /// The access key id (not a secret).
    pub access_key_id: String,
    /// When it expires, if it does.
    pub expiration: Option<DateTime<Utc>>,
    /// `payload` or `sts`.
    pub source: String,
}

/// Reads the status the agent last wrote; without one (an agent older than this, or a state
/// dir copied by hand), what `state.json` says.
pub fn load(dir: &StateDir) -> Result<Status, AgentError> {
    let mut status = match dir.read_json::<Status>(STATUS_FILE)? {
        Some(s) => s,
        None => match dir.load_state()? {
            Some((state, payload)) => Status {
                instance_id: Some(state.instance_id),
                region: Some(state.region),
                availability_zone: state.availability_zone,
                deployment_id: Some(state.deployment_id),
                stored_at: Some(state.stored_at),
                credentials: payload.credentials.as_ref().map(|c| KeyInfo {
                    access_key_id: c.access_key_id.clone(),
                    expiration: c.expiration,
                    source: "payload".to_owned(),
                }),
                refresh: "unknown".to_owned(),
                ..Status::default()
            },
            None => return Err(AgentError::NoState(dir.path().to_owned())),
        },
    };
    if let Some(tasks) = dir.read_json::<Vec<TaskResult>>(TASKS_FILE)? {
        status.tasks = tasks;
    }
    Ok(status)
}

/// Prints the status as JSON or as `key: value` lines.
pub fn print(dir: &StateDir, json: bool) -> Result<(), AgentError> {
    let status = load(dir)?;
    if json {
        let text =
            serde_json::to_string_pretty(&status).map_err(|e| AgentError::Other(e.to_string()))?;
        println!("{text}");
        return Ok(());
    }
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    let key = |k: &Option<KeyInfo>| match k {
        None => "-".to_owned(),
        Some(k) => format!(
            "{} ({}, {})",
            k.access_key_id,
            k.source,
            k.expiration
                .map(|e| format!("expires {}", e.to_rfc3339()))
                .unwrap_or_else(|| "no expiry".to_owned())
        ),
    };
    let mut lines = vec![
        ("instance", opt(&status.instance_id)),
        ("region", opt(&status.region)),
        ("zone", opt(&status.availability_zone)),
        ("deployment", opt(&status.deployment_id)),
        (
            "verified",
            if status.verified {
                "yes".to_owned()
            } else {
                "no (metadata service not reached since start)".to_owned()
            },
        ),
        ("mode", format!("{} (pid {})", status.mode, status.pid)),
        ("credentials", key(&status.credentials)),
        ("served", key(&status.served)),
        ("endpoint", opt(&status.endpoint_url)),
        ("profile", opt(&status.profile)),
        (
            "refresh",
            match &status.refresh_message {
                Some(m) => format!("{}: {m}", status.refresh),
                None => status.refresh.clone(),
            },
        ),
    ];
    for t in &status.tasks {
        lines.push((
            "task",
            format!(
                "#{} {} {}: {} (attempt {}, {})",
                t.index,
                t.task,
                t.outcome.as_str(),
                t.detail,
                t.attempts,
                t.at.to_rfc3339()
            ),
        ));
    }
    for (k, v) in lines {
        println!("{k:<12} {v}");
    }
    Ok(())
}
