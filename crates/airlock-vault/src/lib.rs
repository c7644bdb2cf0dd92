//! Envelope encryption for Airlock's secrets at rest.
//!
//! Every secret (an AWS secret access key, a session token, ...) is sealed
//! with AES-256-GCM under a fresh random 256-bit *data key*; the data key is
//! itself encrypted ("wrapped") with AES-256-GCM under a *master key*. The
//! record id the secret belongs to is bound as associated data in both
//! encryptions, so a sealed blob copied to another record does not open.
//!
//! Master keys live in a [`Keyring`]: the first key is the current one, used
//! to seal and wrap; the others can only open. Rotating the master key is
//! [`Keyring::with_current`] followed by [`rewrap`] on every record, which
//! re-encrypts only the small wrapped data key and leaves the ciphertext
//! untouched.
//!
//! The [`file`] module is the crate's one I/O edge: it loads or creates the
//! master key file with owner-only permissions.
//!
//! Secrets never appear in `Debug` output, `Display` output or error
//! messages; master keys show only their [id](MasterKey::id).
#![warn(missing_docs)]

mod envelope;
mod error;
#[cfg(unix)]
pub mod file;
mod key;

pub use envelope::{open, open_str, rewrap, seal, seal_str, Sealed, SEALED_VERSION};
pub use error::VaultError;
pub use key::{Keyring, MasterKey, KEY_LEN};
pub use secrecy::{ExposeSecret, SecretString};
