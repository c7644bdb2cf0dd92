//! Fleet operations on EC2 beyond launching instances: Elastic IPs, network interfaces,
//! security groups, key pairs, volumes, snapshots and images.
//!
//! Each operation is a plain [`FleetRequest`]. [`FleetRequest::validate`] refuses bad input
//! before any call, naming the field; [`run::prepare`] looks up the resources it touches;
//! [`run::execute`] makes the EC2 calls and reports each one for the audit log. What AWS
//! authorizes for each is decided in `airlock-access`, with the facts `prepare` found. The
//! console runs all of it; an instance with its own credentials runs the same code without the
//! console.

#![warn(missing_docs)]

pub mod request;
pub mod run;
pub mod validate;

pub use airlock_cloud::Scope;
pub use request::{FleetRequest, FAMILIES};
pub use run::{
    describe, describe_action, execute, filters, prepare, Call, Facts, FleetError, Outcome,
    PrivateKey, Run,
};
pub use validate::FieldError;
