//! The state directory: what the agent keeps on local storage so that it works after a reboot
//! even when the metadata service is not (yet) reachable.
//!
//! The directory is mode 0700 and every file 0600. Files are replaced atomically: written to a
//! temporary file in the same directory, fsynced, renamed over the old one, and the directory
//! fsynced, so a crash or power loss leaves either the old file or the new one, never half.

use std::fs;
use std::path::{Path, PathBuf};

use airlock_payload::{find_payload, Payload};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::AgentError;

/// The stored payload and whose it is (secrets included: 0600).
pub const STATE_FILE: &str = "state.json";
/// Session credentials the agent got from STS for the endpoint (secrets included: 0600).
pub const SESSION_FILE: &str = "session.json";
/// Results of the boot tasks (no secrets).
pub const TASKS_FILE: &str = "tasks.json";
/// What `airlock agent status` prints (no secrets).
pub const STATUS_FILE: &str = "status.json";
/// `AWS_CONTAINER_CREDENTIALS_FULL_URI` and `AWS_CONTAINER_AUTHORIZATION_TOKEN`, for local
/// programs to source (the token is a secret: 0600).
pub const ENV_FILE: &str = "credentials.env";

/// A state directory.
#[derive(Clone, Debug)]
pub struct StateDir {
    path: PathBuf,
}

impl StateDir {
    /// The state directory at `path` (nothing is created until something is written).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StateDir { path: path.into() }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of one of its files.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Creates the directory (mode 0700) if needed and tightens its mode if it exists.
    pub fn ensure(&self) -> Result<(), AgentError> {
        ensure_private_dir(&self.path)
    }

    /// Replaces file `name` atomically with `bytes`, mode 0600.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<(), AgentError> {
        self.ensure()?;
        write_atomic(&self.file(name), bytes)
    }

    /// Writes `value` as pretty JSON to file `name`.
    pub fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<(), AgentError> {
        let mut bytes = serde_json::to_vec_pretty(value)
            .map_err(|e| AgentError::Other(format!("cannot serialize {name}: {e}")))?;
        bytes.push(b'\n');
        self.write(name, &bytes)
    }

    /// File `name`'s contents, `None` if it does not exist.
    pub fn read(&self, name: &str) -> Result<Option<Vec<u8>>, AgentError> {
        let path = self.file(name);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(AgentError::file(path, e)),
        }
    }

    /// File `name` parsed as JSON, `None` if it does not exist.
    pub fn read_json<T: for<'de> Deserialize<'de>>(
        &self,
        name: &str,
    ) -> Result<Option<T>, AgentError> {
        match self.read(name)? {
            None => Ok(None),
            Some(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| AgentError::Corrupt {
                        path: self.file(name),
                        // Only the position: serde_json's messages may quote a value.
                        reason: format!(
                            "not what this agent writes (invalid JSON at line {} column {})",
                            e.line(),
                            e.column()
                        ),
                    })
            }
        }
    }

    /// Removes file `name` if it exists.
    pub fn remove(&self, name: &str) -> Result<(), AgentError> {
        let path = self.file(name);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(AgentError::file(path, e)),
        }
    }

    /// The stored state, if any. A state file this agent cannot read is an error (the caller
    /// decides whether to start over from the user data).
    pub fn load_state(&self) -> Result<Option<(StoredState, Payload)>, AgentError> {
        let Some(state) = self.read_json::<StoredState>(STATE_FILE)? else {
            return Ok(None);
        };
        let json = serde_json::to_vec(&state.payload)
            .map_err(|e| AgentError::Other(format!("cannot re-serialize the payload: {e}")))?;
        let payload = find_payload(&json).map_err(|e| AgentError::Corrupt {
            path: self.file(STATE_FILE),
            reason: e.to_string(),
        })?;
        Ok(Some((state, payload)))
    }
}

/// What [`STATE_FILE`] holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoredState {
    /// The instance the payload was read on.
    pub instance_id: String,
    /// Its region, from the metadata service.
    pub region: String,
    /// Its availability zone, from the metadata service.
    pub availability_zone: Option<String>,
    /// The payload's deployment id (also inside `payload`; here for people reading the file).
    pub deployment_id: String,
    /// When it was stored.
    pub stored_at: DateTime<Utc>,
    /// The payload as JSON, secrets included.
    pub payload: serde_json::Value,
}

impl StoredState {
    /// State for `payload` read on `instance_id`.
    pub fn new(
        instance_id: &str,
        region: &str,
        availability_zone: Option<String>,
        payload: &Payload,
    ) -> Result<Self, AgentError> {
        let json = payload
            .to_json()
            .map_err(|e| AgentError::Other(e.to_string()))?;
        let payload = serde_json::from_slice(&json)
            .map_err(|e| AgentError::Other(format!("cannot re-read the payload: {e}")))?;
        Ok(StoredState {
            instance_id: instance_id.to_owned(),
            region: region.to_owned(),
            availability_zone,
            deployment_id: airlock_payload_deployment(&payload),
            stored_at: Utc::now(),
            payload,
        })
    }
}

fn airlock_payload_deployment(payload: &serde_json::Value) -> String {
    payload["deployment_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Creates `dir` (and its parents) if needed and sets its mode to 0700.
pub fn ensure_private_dir(dir: &Path) -> Result<(), AgentError> {
    airlock_os::ensure_private_dir(dir).map_err(|e| AgentError::file(dir, e))
}

/// Replaces `path` with `bytes` atomically, mode 0600: temporary file in the same directory,
/// fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), AgentError> {
    airlock_os::write_private(path, bytes).map_err(|e| AgentError::file(path, e))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

    #[test]
    fn files_are_0600_in_a_0700_dir_and_replaced_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::new(tmp.path().join("a/b"));
        dir.write("x", b"one").unwrap();
        dir.write("x", b"two").unwrap();
        assert_eq!(dir.read("x").unwrap().unwrap(), b"two");
        assert_eq!(fs::metadata(dir.path()).unwrap().mode() & 0o777, 0o700);
        assert_eq!(fs::metadata(dir.file("x")).unwrap().mode() & 0o777, 0o600);
        // No temporary file left behind.
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
        // An existing, too open directory is tightened.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        dir.write("y", b"").unwrap();
        assert_eq!(fs::metadata(dir.path()).unwrap().mode() & 0o777, 0o700);
        assert!(dir.read("missing").unwrap().is_none());
    }

    #[test]
    fn a_corrupt_state_file_is_reported_without_its_contents() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::new(tmp.path());
        dir.write(STATE_FILE, b"{\"secret\": \"hunter2\"").unwrap();
        let err = dir.load_state().unwrap_err().to_string();
        assert!(
            err.contains("state.json") && !err.contains("hunter2"),
            "{err}"
        );
    }
}
