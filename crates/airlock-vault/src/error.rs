//! The error type of the vault: every message names what is wrong and never
//! contains key material or plaintext.

use std::path::PathBuf;

/// Everything that can go wrong while sealing, opening or loading keys.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// The record was sealed under a master key the keyring does not hold.
    #[error(
        "sealed under master key {key_id}, which is not in the keyring (have {})",
        known.join(", ")
    )]
    UnknownKey {
        /// Id of the master key the record was sealed under.
        key_id: String,
        /// Ids of the keys in the keyring, current first.
        known: Vec<String>,
    },

    /// Authenticated decryption failed.
    #[error("the master key does not open this record (wrong key or tampered data)")]
    Decrypt,

    /// Encryption failed (only possible for absurdly large plaintexts).
    #[error("encryption failed: the plaintext is too large for AES-256-GCM")]
    Encrypt,

    /// A sealed record's text form could not be decoded.
    #[error("malformed sealed record: {0}")]
    Malformed(String),

    /// An opened secret was expected to be UTF-8 text and is not.
    #[error("the opened record is not valid UTF-8 text")]
    NotUtf8,

    /// A master key in keyring text is invalid. The key itself is never echoed.
    #[error("master key on line {line}: {reason}")]
    BadKey {
        /// 1-based line number in the keyring text.
        line: usize,
        /// What is wrong with it (e.g. "not valid base64").
        reason: String,
    },

    /// The keyring text holds no key at all.
    #[error("no master key found (only blank lines and comments)")]
    EmptyKeyring,

    /// The master key file may be read by users other than its owner.
    #[error(
        "master key file {} is accessible by group or others (mode {mode:04o}); \
         it must be readable by its owner only: run `chmod 600 {}`",
        path.display(), path.display()
    )]
    InsecurePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },

    /// The master key file is not a regular file.
    #[error("master key file {} is not a regular file", path.display())]
    NotAFile {
        /// The offending path.
        path: PathBuf,
    },

    /// The contents of a master key file are invalid.
    #[error("master key file {}: {source}", path.display())]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong with its contents.
        source: Box<VaultError>,
    },

    /// An I/O operation on a file failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done ("read", "create", ...).
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}
