//! The console's HTTP API as types.
//!
//! The console serves these bodies and every client (the CLI, the agent's refresh, the gateway's
//! console follower) reads them, so a field exists in one place and a rename cannot drift
//! between the two sides. The OpenAPI document is generated from them too ([`utoipa::ToSchema`]),
//! so it cannot drift either. Nothing here does I/O, except the [`client`] (feature `client`).
//!
//! Types of the pure crates appear in bodies as they are: tags, instances and EC2 resources with
//! their own schemas (`airlock-cloud` derives them), boot tasks and policy requests documented
//! as objects.

pub mod access_keys;
pub mod accounts;
pub mod audit;
#[cfg(feature = "client")]
pub mod client;
pub mod cluster;
pub mod commands;
pub mod deployments;
pub mod error;
pub mod events;
pub mod gateway;
pub mod instances;
pub mod maintenance_windows;
pub mod refresh;
pub mod rolls;
pub mod session;
pub mod snapshot_policies;
pub mod state;
pub mod users;

pub use error::{ErrorBody, ErrorDetail};

/// Writes a secret into a request or response body: the one place a body shows one.
fn expose<S: serde::Serializer>(
    secret: &secrecy::SecretString,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    airlock_payload::serialize_secret(secret, serializer)
}

/// [`expose`] for a secret that may be absent.
fn expose_some<S: serde::Serializer>(
    secret: &Option<secrecy::SecretString>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match secret {
        Some(secret) => serializer.serialize_some(&Exposed(secret)),
        None => serializer.serialize_none(),
    }
}

/// A secret written by [`expose`] where serde wants a value.
struct Exposed<'a>(&'a secrecy::SecretString);

impl serde::Serialize for Exposed<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        expose(self.0, serializer)
    }
}
