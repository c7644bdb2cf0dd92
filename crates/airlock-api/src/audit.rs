//! The audit log as the API shows it: pages of records, the newest record's hash (an anchor to
//! write down elsewhere) and the result of checking the chain.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One audit record; `hash` covers every other field but `chain`, and `prev_hash`.
///
/// The store keeps exactly this shape, so the record an operator reads is the one that was
/// hashed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct AuditRecord {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// RFC 3339.
    pub at: String,
    /// The console user.
    pub user_name: String,
    /// Where the request came from.
    pub source_ip: Option<String>,
    /// e.g. `ec2:RunInstances` or `airlock:AddAccount`.
    pub action: String,
    /// JSON list of resource ARNs.
    pub resources: String,
    /// The word of a [`crate::state::AuditDecision`], kept as the text stored rather than parsed:
    /// the chain's hash covers these exact bytes, and an edited record must still be read to be
    /// reported.
    pub decision: String,
    /// AWS's request id for the EC2 call, if one was made.
    pub aws_request_id: Option<String>,
    /// The word of a [`crate::state::AuditOutcome`], kept as stored for the same reason.
    pub outcome: String,
    /// Why (the deciding statements, or the error).
    pub detail: Option<String>,
    /// Hash of the previous record (64 zeros for the first).
    pub prev_hash: String,
    /// This record's hash.
    pub hash: String,
    /// How `hash` was made: `sha256` (plain) or `hmac-sha256` (under the console's audit key).
    pub chain: String,
}

/// A page of the audit log (`GET /v1/audit`), in order of `seq`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    /// The records.
    pub records: Vec<AuditRecord>,
    /// Give it back as `cursor` for the next page; `None` when there were no more records.
    pub next_cursor: Option<String>,
}

/// A record as an operator writes it down elsewhere to anchor the log (`GET /v1/audit/head`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[schema(as = AuditHead)]
pub struct Head {
    /// Its position.
    pub seq: i64,
    /// When it was written (RFC 3339).
    pub at: String,
    /// Its hash.
    pub hash: String,
}

impl Head {
    /// The head a record is.
    pub fn of(row: &AuditRecord) -> Head {
        Head {
            seq: row.seq,
            at: row.at.clone(),
            hash: row.hash.clone(),
        }
    }
}

/// The result of checking the log (`GET /v1/audit/verify`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
#[schema(as = AuditVerification)]
pub struct Verification {
    /// Records read.
    pub records: usize,
    /// True when every link holds (and the anchor, if one was given).
    pub intact: bool,
    /// The first record that does not match its hash, its predecessor or the anchor.
    pub first_broken: Option<i64>,
    /// What is wrong there.
    pub problem: Option<String>,
    /// Records checked and found sound, from the first (all of them when intact).
    pub checked: usize,
    /// Of those, how many are chained without the key (written before the console had one).
    pub unkeyed: usize,
    /// The newest record read.
    pub head: Option<Head>,
}
