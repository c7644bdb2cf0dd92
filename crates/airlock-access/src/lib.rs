//! Airlock's authorization core: the one place that decides what a console user, a gateway or
//! an instance may do.
//!
//! Every console operation is turned here into the full list of checks AWS would make for it
//! ([`ops`], [`fleet`]), with the request context AWS would build ([`Check`]: `aws:` and `ec2:`
//! keys, the resource's current tags, the requested tags, `aws:TagKeys`), and decided with the
//! caller's policies ([`decide()`]). The session policies handed to instances are generated and
//! proved within the deployer's policies here too ([`session`]). Nothing in this crate does
//! I/O: the console looks the facts up (tags, instances, policies), asks, and audits the answer,
//! so a check can be tested without a server and no handler builds its own.

#![warn(missing_docs)]

pub mod check;
pub mod decide;
pub mod fleet;
pub mod ops;
pub mod principal;
pub mod session;
pub mod tags;

pub use airlock_cloud::{arn, Scope};
pub use check::{console_arn, Check, ScopeChecks};
pub use decide::{decide, decide_within, Denial, Verdict};
pub use principal::Principal;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod proptests;
