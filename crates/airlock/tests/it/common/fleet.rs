//! Helpers for the agent tests: running `airlock agent` and the local fleet as real processes,
//! reading what they wrote, and building user data with `airlock-payload`.

#![allow(dead_code, clippy::unwrap_used)]

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::airlock_bin;

/// Waits (async, so in-process servers keep running) until `check` gives a value.
pub async fn eventually<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A long-running process (agent or fleet), stopped with SIGTERM on drop; output in `log`.
pub struct Proc {
    pub child: Option<Child>,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(args: &[&str], log: &Path, env: &[(&str, &str)]) -> Proc {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let mut cmd = Command::new(airlock_bin());
        cmd.args(args)
            .env_remove("AWS_EC2_METADATA_SERVICE_ENDPOINT")
            .env("AIRLOCK_LOG", "debug,hyper=info,h2=info,rustls=info,aws_smithy_runtime=info,aws_smithy_runtime_api=info,aws_config=info,reqwest=info,hyper_util=info")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Proc {
            child: Some(cmd.spawn().unwrap()),
            log: log.to_owned(),
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM and wait; returns the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return child.wait().ok().and_then(|s| s.code());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether it has exited (and with what).
    pub fn exited(&mut self) -> Option<i32> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
            .map(|s| s.code().unwrap_or(-1))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `airlock agent ARGS` run to completion.
pub fn agent_once(args: &[&str]) -> Output {
    agent_once_with(args, &[])
}

/// `airlock agent ARGS` run to completion with `env` set (and no `NO_PROXY` from the tests'
/// own environment, which would hide whether a proxy is used).
pub fn agent_once_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(airlock_bin());
    cmd.arg("agent")
        .args(args)
        .env_remove("AWS_EC2_METADATA_SERVICE_ENDPOINT")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .env_remove("AIRLOCK_CONSOLE_CA")
        .env("AIRLOCK_LOG", "debug,hyper=info,h2=info,rustls=info,aws_smithy_runtime=info,aws_smithy_runtime_api=info,aws_config=info,reqwest=info,hyper_util=info")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// `AWS_CONTAINER_CREDENTIALS_FULL_URI` and the token from a state dir's credentials.env.
pub fn endpoint_of(state_dir: &Path) -> Option<(String, String)> {
    let text = std::fs::read_to_string(state_dir.join("credentials.env")).ok()?;
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(str::to_owned)
    };
    Some((
        get("AWS_CONTAINER_CREDENTIALS_FULL_URI")?,
        get("AWS_CONTAINER_AUTHORIZATION_TOKEN")?,
    ))
}

/// GET the credentials endpoint; (status, body).
pub async fn get_credentials(url: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let mut r = reqwest::Client::new().get(url);
    if let Some(t) = token {
        r = r.header("Authorization", t);
    }
    match r.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            (status, resp.json().await.unwrap_or(serde_json::Value::Null))
        }
        Err(_) => (0, serde_json::Value::Null),
    }
}

/// Waits until the agent with this state dir serves credentials; returns (url, token, body).
pub async fn served(state_dir: &Path, timeout: Duration) -> (String, String, serde_json::Value) {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some((url, token)) = endpoint_of(state_dir) {
            let (status, body) = get_credentials(&url, Some(&token)).await;
            if status == 200 {
                return (url, token, body);
            }
        }
        assert!(
            Instant::now() < deadline,
            "no credentials served from {}",
            state_dir.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every file under `dir` is 0600 and every directory 0700.
pub fn assert_private(dir: &Path) {
    let mode = std::fs::metadata(dir).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o700, "{} is {mode:o}", dir.display());
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            assert_private(&path);
        } else {
            let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
            assert_eq!(mode, 0o600, "{} is {mode:o}", path.display());
        }
    }
}

/// The local fleet as a process, with its directory.
pub struct Fleet {
    pub proc: Proc,
    pub dir: PathBuf,
}

impl Fleet {
    pub fn start(moto_url: &str, dir: &Path) -> Fleet {
        Fleet::start_with(moto_url, dir, &[])
    }

    /// A fleet whose agents get `agent_args` too.
    pub fn start_with(moto_url: &str, dir: &Path, agent_args: &[&str]) -> Fleet {
        let fleet_dir = dir.join("fleet");
        let mut args = vec![
            "agent",
            "fleet",
            "--endpoint-url",
            moto_url,
            "--dir",
            fleet_dir.to_str().unwrap(),
            "--poll-interval",
            "0.2",
        ];
        for a in agent_args {
            args.push("--agent-arg");
            args.push(a);
        }
        let proc = Proc::spawn(
            &args,
            &dir.join("fleet.log"),
            &[
                ("AWS_ACCESS_KEY_ID", super::ACCESS_KEY_ID),
                ("AWS_SECRET_ACCESS_KEY", super::SECRET_ACCESS_KEY),
            ],
        );
        Fleet {
            proc,
            dir: fleet_dir,
        }
    }

    /// The instance's entry in fleet.json.
    pub fn entry(&self, instance_id: &str) -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(self.dir.join("fleet.json")).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        let e = v["instances"].get(instance_id)?.clone();
        Some(e)
    }

    pub fn state_dir(&self, instance_id: &str) -> PathBuf {
        self.dir.join(instance_id).join("state")
    }

    pub fn agent_log(&self, instance_id: &str) -> String {
        std::fs::read_to_string(self.dir.join(instance_id).join("agent.log")).unwrap_or_default()
    }
}
