//! The IAM JSON policy language, as Airlock uses it for its console users.
//!
//! Airlock is an external console for EC2; who may do what in it is written
//! in the same JSON policy language as AWS IAM identity policies, so that
//! people can reuse what they know and what AWS documents. This crate parses
//! and validates policy documents ([`Policy::parse`]), evaluates requests
//! against them ([`evaluate`]), and proves session-policy statements within
//! a user's policies ([`uncovered`]). It does no I/O: callers read files and
//! build the request context.
//!
//! ```
//! use airlock_policy::{evaluate, Decision, Policy, Request};
//!
//! let policy = Policy::parse(
//!     "own-snapshots",
//!     r#"{"Version": "2012-10-17", "Statement": [{
//!         "Effect": "Allow",
//!         "Action": "ec2:DeleteSnapshot",
//!         "Resource": "arn:aws:ec2:us-east-1::snapshot/*",
//!         "Condition": {"StringEquals": {"ec2:ResourceTag/User": "${aws:username}"}}
//!     }]}"#,
//! )?;
//! let mut request = Request::new("ec2:DeleteSnapshot", "arn:aws:ec2:us-east-1::snapshot/snap-1");
//! request.context.insert("aws:username", "alice");
//! request.context.insert("ec2:ResourceTag/User", "alice");
//! assert_eq!(evaluate(&[policy], &request).decision, Decision::Allowed);
//! # Ok::<(), airlock_policy::PolicyErrors>(())
//! ```
#![warn(missing_docs)]

mod arn;
mod condition;
mod contain;
mod context;
mod error;
mod eval;
mod pattern;
mod policy;

pub use contain::{uncovered, Uncovered, UncoveredReason};
pub use context::{Context, ContextValue, Request};
pub use error::{PolicyError, PolicyErrors};
pub use eval::{context_keys, evaluate, Decision, Response, StatementRef};
pub use policy::Policy;

#[cfg(test)]
mod proptests;
