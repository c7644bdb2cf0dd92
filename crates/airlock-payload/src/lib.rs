//! The Airlock user-data payload format.
//!
//! The console places a versioned JSON [`Payload`] (deployment id, region,
//! console and endpoint URLs, AWS credentials) in an EC2 instance's user
//! data; the agent on the instance reads the user data and finds the payload
//! in it. This crate is pure logic, no I/O:
//!
//! - [`build_user_data`] produces the user data: the bare payload JSON, or a
//!   MIME multi-part document that cloud-init understands when the operator
//!   also supplied their own user data script;
//! - [`find_payload`] finds the payload again: bare, in a MIME document (any
//!   depth, any part order, any transfer encoding), or gzip-compressed.
//!
//! The format is described for humans in `docs/payload.md`.
//!
//! Secrets (the secret access key and session token) are
//! [`SecretString`]s: redacted in `Debug`, zeroized on drop, and written out
//! only when the payload is serialized.
#![warn(missing_docs)]

mod build;
mod error;
mod find;
mod model;

pub use build::{build_user_data, script_content_type};
pub use error::PayloadError;
pub use find::find_payload;
pub use model::{serialize_secret, BootTask, Credentials, Payload, TaskFilters};
pub use secrecy::{ExposeSecret, SecretString};

/// The payload format version this crate writes and reads.
pub const PAYLOAD_VERSION: u32 = 1;

/// The JSON key that marks a payload and holds its version:
/// `{"airlock_payload": 1, ...}`.
pub const PAYLOAD_MARKER: &str = "airlock_payload";

/// MIME content type of the payload part in a multi-part user data document.
pub const CONTENT_TYPE: &str = "application/vnd.airlock.payload+json";

/// EC2's limit on raw user data, before base64 encoding: 16 KiB.
pub const MAX_USER_DATA: usize = 16 * 1024;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
