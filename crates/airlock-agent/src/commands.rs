//! Run command on the instance: the agent long-polls the console for its instance's commands,
//! runs each with its timeout (as `--command-user` when given), and reports the exit code and
//! bounded output.
//!
//! The agent reaches the console the way it refreshes (the same URL rules, proxy and
//! certificate authorities, from the instance's own address) and shows the agent token its
//! last refresh answer carried; nothing on the instance listens for commands. A command runs
//! without a shell, in its own process group, which is killed whole at the timeout so nothing
//! it started outlives it.

use std::net::IpAddr;
use std::process::Stdio;
use std::time::Duration;

use airlock_api::commands::{AgentOutcome, AgentReport, AgentWork, MAX_OUTPUT};
use airlock_api::refresh::RefreshResponse;
use secrecy::SecretString;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::console::ConsoleLink;
use crate::store::StateDir;
use crate::AgentError;

/// The agent token from the last refresh answer (a secret: 0600).
pub const AGENT_TOKEN_FILE: &str = "agent-token";
/// How long each fetch asks the console to wait for work.
const WAIT_SECONDS: u64 = 20;
/// Waits after a failed fetch, doubling up to the last.
const BACKOFF: [Duration; 4] = [
    Duration::from_secs(2),
    Duration::from_secs(5),
    Duration::from_secs(15),
    Duration::from_secs(60),
];
/// How often the agent looks for a token when it has none yet.
const NO_TOKEN_WAIT: Duration = Duration::from_secs(5);

/// Keeps the token a refresh answer carries, for the command loop.
pub fn keep_token(dir: &StateDir, answer: &RefreshResponse) -> Result<(), AgentError> {
    use secrecy::ExposeSecret as _;
    match &answer.agent_token {
        Some(token) => dir.write(AGENT_TOKEN_FILE, token.expose_secret().as_bytes()),
        None => Ok(()),
    }
}

/// Whom commands run as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// Looks up `--command-user`.
pub fn run_as(user: &str) -> Result<RunAs, AgentError> {
    match nix::unistd::User::from_name(user) {
        Ok(Some(u)) => Ok(RunAs {
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
        }),
        Ok(None) => Err(AgentError::Usage(format!(
            "--command-user {user:?}: no such user on this machine"
        ))),
        Err(e) => Err(AgentError::Usage(format!(
            "--command-user {user:?}: cannot look the user up ({e})"
        ))),
    }
}

/// What the command loop needs.
#[derive(Debug, Clone)]
pub struct Commands {
    /// How to reach the console.
    pub console: ConsoleLink,
    /// The console's URL (the refresh URL without `/v1/refresh`).
    pub console_url: String,
    /// The instance's own address, which the console checks.
    pub source: Option<IpAddr>,
    /// Where the token is kept.
    pub dir: StateDir,
    /// Whom commands run as (`None`: the agent's own user).
    pub run_as: Option<RunAs>,
}

/// The console's URL from a refresh URL.
pub fn console_url(refresh_url: &str) -> Option<String> {
    refresh_url
        .strip_suffix("/v1/refresh")
        .map(|base| base.to_owned())
}

impl Commands {
    /// Fetches, runs and reports commands until the task is dropped.
    pub async fn serve(self) {
        let mut failures = 0usize;
        loop {
            let pause = match self.turn().await {
                Ok(()) => {
                    failures = 0;
                    continue;
                }
                Err(Turn::NoToken) => NO_TOKEN_WAIT,
                Err(Turn::Failed(e)) => {
                    let pause = BACKOFF
                        .get(failures)
                        .or(BACKOFF.last())
                        .copied()
                        .unwrap_or(NO_TOKEN_WAIT);
                    tracing::warn!(error = %e, retry_in = ?pause, "cannot fetch commands from the console");
                    failures += 1;
                    pause
                }
            };
            tokio::time::sleep(pause).await;
        }
    }

    /// One fetch, and the run and report of what it brought.
    async fn turn(&self) -> Result<(), Turn> {
        let token = self.token().ok_or(Turn::NoToken)?;
        let client = self
            .console
            .agent_client(
                &self.console_url,
                self.source,
                token,
                Duration::from_secs(WAIT_SECONDS),
            )
            .map_err(Turn::Failed)?;
        let work: Option<AgentWork> = client
            .get_query(
                "/v1/agent/commands/next",
                &[("wait", WAIT_SECONDS.to_string())],
            )
            .await
            .map_err(|e| Turn::Failed(AgentError::Other(e.to_string())))?;
        let Some(work) = work else {
            return Ok(());
        };
        tracing::info!(command = %work.command_id, program = work.command.first().map(String::as_str).unwrap_or("-"), timeout = work.timeout_seconds, "running a command from the console");
        let report = run(&work, self.run_as).await;
        tracing::info!(command = %work.command_id, outcome = ?report.outcome, exit_code = ?report.exit_code, "command ended");
        let path = format!("/v1/agent/commands/{}", work.command_id);
        // A report that does not arrive is retried: the console gives the part up only after
        // its timeout and a grace period.
        for pause in BACKOFF {
            match client.post::<_, serde_json::Value>(&path, &report).await {
                Ok(_) => return Ok(()),
                Err(e) => {
                    tracing::warn!(command = %work.command_id, error = %e, retry_in = ?pause, "cannot report the command's result");
                    tokio::time::sleep(pause).await;
                }
            }
        }
        Ok(())
    }

    fn token(&self) -> Option<SecretString> {
        let bytes = self.dir.read(AGENT_TOKEN_FILE).ok()??;
        let text = String::from_utf8(bytes).ok()?;
        Some(SecretString::from(text.trim().to_owned()))
    }
}

enum Turn {
    NoToken,
    Failed(AgentError),
}

/// Runs the command line with its timeout; its output is kept up to [`MAX_OUTPUT`] bytes each.
pub async fn run(work: &AgentWork, run_as: Option<RunAs>) -> AgentReport {
    let Some((program, args)) = work.command.split_first() else {
        return not_started("the command line is empty".to_owned());
    };
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(who) = run_as {
        command.uid(who.uid).gid(who.gid);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return not_started(format!("cannot start {program:?}: {e}")),
    };
    let group = child.id();
    let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
        return not_started("no pipes to the command".to_owned());
    };
    let reading = async { tokio::join!(capture(out), capture(err)) };
    let limit = Duration::from_secs(u64::from(work.timeout_seconds));
    let finished = tokio::time::timeout(limit, async {
        let ((output, cut_out), (error_output, cut_err)) = reading.await;
        let status = child.wait().await;
        (status, output, error_output, cut_out || cut_err)
    })
    .await;
    match finished {
        Ok((Ok(status), output, error_output, truncated)) => AgentReport {
            outcome: AgentOutcome::Exited,
            exit_code: Some(status.code().unwrap_or(-1)),
            output,
            error_output,
            truncated,
        },
        Ok((Err(e), ..)) => not_started(format!("cannot wait for {program:?}: {e}")),
        Err(_) => {
            kill_group(group);
            AgentReport {
                outcome: AgentOutcome::TimedOut,
                exit_code: None,
                output: String::new(),
                error_output: format!("killed after {} s", work.timeout_seconds),
                truncated: false,
            }
        }
    }
}

fn not_started(why: String) -> AgentReport {
    AgentReport {
        outcome: AgentOutcome::NotStarted,
        exit_code: None,
        output: String::new(),
        error_output: why,
        truncated: false,
    }
}

/// Kills the command's whole process group: what it started dies with it.
fn kill_group(group: Option<u32>) {
    let Some(pid) = group.and_then(|g| i32::try_from(g).ok()) else {
        return;
    };
    let pid = nix::unistd::Pid::from_raw(pid);
    if let Err(e) = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL) {
        tracing::warn!(error = %e, "cannot kill the command's process group");
    }
}

/// Reads a stream to its end, keeping at most [`MAX_OUTPUT`] bytes (the rest is read and
/// dropped, so the command never blocks on a full pipe).
async fn capture(mut stream: impl AsyncRead + Unpin) -> (String, bool) {
    let mut kept = Vec::new();
    let mut cut = false;
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = (MAX_OUTPUT + 1).saturating_sub(kept.len());
                kept.extend_from_slice(buf.get(..n.min(room)).unwrap_or_default());
                cut |= n > room;
            }
        }
    }
    let (text, bounded_cut) = airlock_command::bounded(&kept, MAX_OUTPUT);
    (text, cut || bounded_cut)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn work(command: &[&str], timeout_seconds: u32) -> AgentWork {
        AgentWork {
            command_id: "cmd-test".into(),
            command: command.iter().map(|s| (*s).to_owned()).collect(),
            timeout_seconds,
        }
    }

    #[tokio::test]
    async fn a_command_reports_its_exit_code_and_both_outputs() {
        let report = run(
            &work(&["sh", "-c", "echo out; echo err >&2; exit 3"], 10),
            None,
        )
        .await;
        assert_eq!(report.outcome, AgentOutcome::Exited);
        assert_eq!(report.exit_code, Some(3));
        assert_eq!(report.output, "out\n");
        assert_eq!(report.error_output, "err\n");
        assert!(!report.truncated);
    }

    #[tokio::test]
    async fn a_flood_of_output_is_cut_at_the_limit_and_marked() {
        let report = run(
            &work(&["sh", "-c", "head -c 1000000 /dev/zero | tr '\\0' x"], 30),
            None,
        )
        .await;
        assert_eq!(report.exit_code, Some(0));
        assert_eq!(report.output.len(), MAX_OUTPUT);
        assert!(report.truncated);
    }

    #[tokio::test]
    async fn a_command_past_its_timeout_is_killed_with_what_it_started() {
        let marker = tempfile::tempdir().unwrap();
        let file = marker.path().join("survived");
        let script = format!("(sleep 3; touch {}) & sleep 30", file.display());
        let started = std::time::Instant::now();
        let report = run(&work(&["sh", "-c", &script], 1), None).await;
        assert_eq!(report.outcome, AgentOutcome::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(
            !file.exists(),
            "a child of the timed-out command outlived it"
        );
    }

    #[tokio::test]
    async fn a_missing_program_is_not_started_and_says_why() {
        let report = run(&work(&["/nonexistent/program"], 5), None).await;
        assert_eq!(report.outcome, AgentOutcome::NotStarted);
        assert!(report.error_output.contains("/nonexistent/program"));
    }

    #[test]
    fn the_console_url_is_the_refresh_url_without_its_path() {
        assert_eq!(
            console_url("https://console.example/v1/refresh").as_deref(),
            Some("https://console.example")
        );
        assert_eq!(console_url("https://console.example/other"), None);
    }
}
