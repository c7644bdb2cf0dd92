//! Process and file-system details shared by the console, the client, the agent and the gateway:
//! files that hold secrets (written atomically with mode 0600), the private directories they live
//! in, the one way logs are set up, parse errors made safe to print, and the one usage error
//! the binary turns into exit status 2.
//!
//! Kept in one small crate so every role writes secrets to disk the same careful way.

#![warn(missing_docs)]

use rand::RngCore;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of every file that may hold a secret.
pub const PRIVATE_FILE: u32 = 0o600;
/// Mode of the directories such files live in.
pub const PRIVATE_DIR: u32 = 0o700;

/// Writes `bytes` to a new 0600 temporary file next to `path` and flushes it to disk; returns
/// the temporary file's path (the caller renames or links it into place).
pub fn write_temp_private(path: &Path, bytes: &[u8]) -> io::Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other("the path has no file name"))?;
    let mut suffix = [0u8; 6];
    rand::rngs::OsRng.fill_bytes(&mut suffix);
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", hex::encode(suffix)));
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(PRIVATE_FILE)
            .open(&tmp)?;
        // The umask can only clear bits, but make the mode exact anyway.
        file.set_permissions(fs::Permissions::from_mode(PRIVATE_FILE))?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    match result {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Flushes the directory holding `path`, so a rename or link in it is durable.
pub fn sync_parent(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

/// Replaces `path` with `bytes` atomically, mode 0600: temporary file in the same directory,
/// fsync, rename, fsync of the directory. A reader sees the old content or the new, never part.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = write_temp_private(path, bytes)?;
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_parent(path)
}

/// Creates `dir` (and its parents) if needed and makes its mode exactly 0700.
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    if !dir.is_dir() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(PRIVATE_DIR)
            .create(dir)?;
    }
    if fs::metadata(dir)?.permissions().mode() & 0o777 != PRIVATE_DIR {
        fs::set_permissions(dir, fs::Permissions::from_mode(PRIVATE_DIR))?;
    }
    Ok(())
}

/// Whether a file of this mode is open to its group or to other users (any of read, write or
/// execute): a file that holds secrets must not be.
pub fn shared_with_others(mode: u32) -> bool {
    mode & 0o077 != 0
}

/// Why [`read_private`] did not read a file.
#[derive(Debug)]
pub enum PrivateReadError {
    /// It could not be opened or read.
    Io(io::Error),
    /// Its group or other users may open it; `mode` is its permission bits.
    Shared {
        /// The file's permission bits, e.g. `0o644`.
        mode: u32,
    },
}

impl std::fmt::Display for PrivateReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrivateReadError::Io(e) => write!(f, "cannot read: {e}"),
            PrivateReadError::Shared { mode } => write!(
                f,
                "other users can open it (mode {mode:04o}) and it holds secrets"
            ),
        }
    }
}

impl std::error::Error for PrivateReadError {}

/// Reads a file that holds secrets, refusing it when its group or other users may open it. The
/// mode is checked on the opened file, so the check and the read are about the same file.
pub fn read_private(path: &Path) -> Result<String, PrivateReadError> {
    let mut file = File::open(path).map_err(PrivateReadError::Io)?;
    let mode = file
        .metadata()
        .map_err(PrivateReadError::Io)?
        .permissions()
        .mode()
        & 0o7777;
    if shared_with_others(mode) {
        return Err(PrivateReadError::Shared { mode });
    }
    let mut text = String::new();
    io::Read::read_to_string(&mut file, &mut text).map_err(PrivateReadError::Io)?;
    Ok(text)
}

/// The machine's name (`/proc/sys/kernel/hostname`), or `localhost` when it cannot be read:
/// how a console node and a gateway name themselves to others.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Installs the log subscriber on standard error (standard output stays for what the operator
/// must read). `AIRLOCK_LOG` overrides `default_filter`. A second call does nothing.
pub fn init_logging(json: bool, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AIRLOCK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// serde quotes the offending value in "invalid type: string \"…\", expected …" and
/// "invalid value: integer `…`, expected …"; a value sent in the wrong field may be a secret,
/// so only its kind is kept.
pub fn without_value(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            if let Some((found, expected)) = rest.split_once(", expected ") {
                let kind = found.split_whitespace().next().unwrap_or("value");
                return format!("{prefix}{kind}, expected {expected}");
            }
        }
    }
    message.to_owned()
}

/// A command line that cannot be used: a flag's value, or flags that do not go together. It is
/// found before anything is read, written or bound, and the binary exits with status 2 for it, as
/// it does for the usage errors its argument parser finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl UsageError {
    /// A usage error saying `message`.
    pub fn new(message: impl Into<String>) -> Self {
        UsageError(message.into())
    }
}

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// The default log filter: our own crates at `info`, the SDK and HTTP stacks only when they warn.
pub const DEFAULT_LOG_FILTER: &str =
    "info,sqlx=warn,aws_config=warn,aws_smithy_runtime=warn,aws_smithy_runtime_api=warn,hyper=warn";

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn private_files_replace_atomically_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        write_private(&path, b"one").unwrap();
        write_private(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(mode(&path), 0o600);
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_secret_file_other_users_can_open_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets");
        fs::write(&path, "key").unwrap();
        for open in [0o644, 0o640, 0o604, 0o620, 0o602, 0o610] {
            fs::set_permissions(&path, fs::Permissions::from_mode(open)).unwrap();
            match read_private(&path) {
                Err(PrivateReadError::Shared { mode }) => assert_eq!(mode, open),
                other => panic!("mode {open:o} was read: {other:?}"),
            }
        }
        for private in [0o600, 0o400] {
            fs::set_permissions(&path, fs::Permissions::from_mode(private)).unwrap();
            assert_eq!(read_private(&path).unwrap(), "key");
        }
        assert!(matches!(
            read_private(&dir.path().join("missing")),
            Err(PrivateReadError::Io(_))
        ));
        assert_eq!(
            PrivateReadError::Shared { mode: 0o644 }.to_string(),
            "other users can open it (mode 0644) and it holds secrets"
        );
    }

    #[test]
    fn parse_errors_keep_the_kind_not_the_value() {
        assert_eq!(
            without_value("invalid type: string \"hunter2\", expected u32"),
            "invalid type: string, expected u32"
        );
        assert_eq!(
            without_value("invalid value: integer `77`, expected a port"),
            "invalid value: integer, expected a port"
        );
        assert_eq!(
            without_value("missing field `name`"),
            "missing field `name`"
        );
    }

    #[test]
    fn private_dirs_are_made_and_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        ensure_private_dir(&sub).unwrap();
        assert_eq!(mode(&sub), 0o700);
        fs::set_permissions(&sub, fs::Permissions::from_mode(0o755)).unwrap();
        ensure_private_dir(&sub).unwrap();
        assert_eq!(mode(&sub), 0o700);
    }
}
