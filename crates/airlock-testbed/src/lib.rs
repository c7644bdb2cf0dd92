//! Test and demo tooling, kept out of the shipped libraries: off EC2 there is no metadata
//! service, and a local EC2-compatible server's instances run nothing.
//!
//! [`imds_server`] is an IMDSv2-faithful metadata server for one instance; [`fleet`] watches a
//! local EC2-compatible server (moto) and boots a real `airlock agent` for each of its loopback
//! instances against one of those servers. The end-to-end tests use both, and `scripts/dev`
//! runs the fleet (as the hidden `airlock agent fleet`) for the demo.
#![warn(missing_docs)]

pub mod fleet;
pub mod imds_server;
