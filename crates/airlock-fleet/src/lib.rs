//! Fleet operations on EC2 beyond launching instances: Elastic IPs, network interfaces,
//! security groups, key pairs, volumes, snapshots and images.
//!
//! Each family is a module holding its requests, their validation, the resources they look up,
//! their EC2 calls and the family's listing; [`FleetRequest`] says which family a request
//! belongs to and dispatches to it. [`FleetRequest::validate`] refuses bad input before any
//! call, naming the field; [`prepare`] looks up the resources it touches; [`execute`] makes the
//! EC2 calls and reports each one for the audit log. What AWS authorizes for each is decided in
//! `airlock-access`, with the facts `prepare` found. The console runs all of it; an instance
//! with its own credentials runs the same code without the console.

#![warn(missing_docs)]

pub mod address;
pub mod facts;
pub mod family;
pub mod image;
pub mod interface;
pub mod key_pair;
pub mod listing;
pub mod request;
pub mod run;
pub mod security_group;
pub mod snapshot;
pub mod validate;
pub mod volume;

pub use airlock_cloud::Scope;
pub use facts::Facts;
pub use family::FleetFamily;
pub use listing::{describe, filters};
pub use request::FleetRequest;
pub use run::{execute, prepare, Call, FleetError, Outcome, PrivateKey, Run};
pub use validate::FieldError;
