//! The master key file: the vault's one I/O edge.
//!
//! The file holds the [keyring text form](Keyring::parse) and must be
//! readable by its owner only (mode `0600`), like an SSH private key: a file
//! that group or others can access is refused. Creation and replacement are
//! atomic: the content is written to a temporary file with mode `0600` in the
//! same directory, flushed to disk, then moved into place, and the directory
//! is flushed too. A crash leaves either the old file or the new one, never a
//! partial key.

use std::fs::{self, File};
use std::io::{self, Read as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use secrecy::ExposeSecret as _;
use zeroize::Zeroizing;

use crate::{Keyring, VaultError};

/// Load the keyring from `path`, creating the file with a freshly generated
/// key if it does not exist. Returns the keyring and whether the file was
/// created.
///
/// Creation never replaces a file: if another process creates the key file
/// at the same moment, this one loads that file instead of overwriting it.
/// An existing file that group or others can access is refused with
/// [`VaultError::InsecurePermissions`].
pub fn load_or_create_key_file(path: &Path) -> Result<(Keyring, bool), VaultError> {
    match load_key_file(path) {
        Ok(ring) => return Ok((ring, false)),
        Err(VaultError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    let ring = Keyring::generate();
    let tmp = write_temp(path, &ring)?;
    // A hard link fails if `path` exists, unlike rename: that makes creation
    // atomic *and* exclusive.
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_dir(path)?;
            Ok((ring, true))
        }
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Ok((load_key_file(path)?, false)),
        Err(source) => Err(io_err("create", path, source)),
    }
}

/// Load the keyring from an existing key file, refusing a file that group or
/// others can access.
pub fn load_key_file(path: &Path) -> Result<Keyring, VaultError> {
    let mut file = File::open(path).map_err(|e| io_err("open", path, e))?;
    // Check the opened file, not the path, so the check and the read are
    // about the same file.
    let meta = file.metadata().map_err(|e| io_err("inspect", path, e))?;
    if !meta.is_file() {
        return Err(VaultError::NotAFile {
            path: path.to_owned(),
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(VaultError::InsecurePermissions {
            path: path.to_owned(),
            mode,
        });
    }
    let mut text = Zeroizing::new(String::new());
    file.read_to_string(&mut text)
        .map_err(|e| io_err("read", path, e))?;
    Keyring::parse(&text).map_err(|source| VaultError::KeyFile {
        path: path.to_owned(),
        source: Box::new(source),
    })
}

/// Write `keyring` to `path` with mode `0600`, atomically replacing any
/// existing file.
pub fn write_key_file(path: &Path, keyring: &Keyring) -> Result<(), VaultError> {
    airlock_os::write_private(path, keyring.to_text().expose_secret().as_bytes())
        .map_err(|e| io_err("write", path, e))
}

/// Write the keyring to a new `0600` temporary file next to `path`, flushed to
/// disk. Returns the temporary file's path.
fn write_temp(path: &Path, keyring: &Keyring) -> Result<PathBuf, VaultError> {
    airlock_os::write_temp_private(path, keyring.to_text().expose_secret().as_bytes())
        .map_err(|e| io_err("write", path, e))
}

/// Flush the directory holding `path`, so a rename or link in it is durable.
fn sync_dir(path: &Path) -> Result<(), VaultError> {
    airlock_os::sync_parent(path).map_err(|e| io_err("sync directory", path, e))
}

fn io_err(action: &'static str, path: &Path, source: io::Error) -> VaultError {
    VaultError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{open, seal, MasterKey};

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn creates_a_0600_file_once_then_loads_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let (ring, created) = load_or_create_key_file(&path).unwrap();
        assert!(created);
        assert_eq!(mode_of(&path), 0o600);
        let (again, created) = load_or_create_key_file(&path).unwrap();
        assert!(!created);
        assert_eq!(again.ids(), ring.ids());
        let sealed = seal(&ring, "r", b"x").unwrap();
        assert_eq!(open(&again, "r", &sealed).unwrap().as_slice(), b"x");
        // No temporary files are left behind.
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn group_readable_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        load_or_create_key_file(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let err = load_or_create_key_file(&path).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, VaultError::InsecurePermissions { mode: 0o640, .. }),
            "{msg}"
        );
        assert!(msg.contains("0640") && msg.contains("chmod 600"), "{msg}");
        assert!(msg.contains(&*path.to_string_lossy()), "{msg}");

        fs::set_permissions(&path, fs::Permissions::from_mode(0o604)).unwrap();
        assert!(matches!(
            load_key_file(&path),
            Err(VaultError::InsecurePermissions { .. })
        ));
    }

    #[test]
    fn write_replaces_atomically_with_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let (ring, _) = load_or_create_key_file(&path).unwrap();
        let rotated = ring.with_current(MasterKey::generate());
        write_key_file(&path, &rotated).unwrap();
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(load_key_file(&path).unwrap().ids(), rotated.ids());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn bad_contents_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        fs::write(&path, "# keys\nnot-a-key\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let msg = load_or_create_key_file(&path).unwrap_err().to_string();
        assert!(
            msg.contains("master.key") && msg.contains("line 2"),
            "{msg}"
        );
        assert!(!msg.contains("not-a-key"), "{msg}");
    }

    #[test]
    fn missing_directory_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("master.key");
        let err = load_or_create_key_file(&path).unwrap_err();
        assert!(matches!(err, VaultError::Io { .. }), "{err}");
    }

    #[test]
    fn directory_is_not_a_key_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
        let err = load_key_file(dir.path()).unwrap_err();
        assert!(matches!(err, VaultError::NotAFile { .. }), "{err}");
    }
}
