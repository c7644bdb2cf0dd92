//! The audit log's chain as pure functions over stored rows: how a record's hash is made, and
//! how a log is checked one record at a time, so that checking holds only the previous hash
//! whatever the log's length.
//!
//! Records are chained with HMAC-SHA256 under an audit key sealed in the vault: someone who can
//! write to the database but does not hold the master key can edit a record and recompute
//! plain SHA-256 hashes, but cannot make a keyed hash that verifies. Records written before the
//! console had a key are plain SHA-256; the key remembers the last of them, and a plain record
//! after it, or after a keyed one, is a downgrade. An anchor (a record's hash written down
//! elsewhere) finds what the key cannot: the newest records removed.

pub use airlock_api::audit::{Head, Verification};
use airlock_store::AuditRow;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fmt;
use zeroize::Zeroizing;

/// The hash before the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// How a record's hash was made (`audit_log.chain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainKind {
    /// Plain SHA-256: records written before the console held an audit key.
    Sha256,
    /// HMAC-SHA256 under the audit key.
    HmacSha256,
}

impl ChainKind {
    /// The word stored in `audit_log.chain`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChainKind::Sha256 => "sha256",
            ChainKind::HmacSha256 => "hmac-sha256",
        }
    }

    /// The kind a stored word names, if any.
    pub fn parse(word: &str) -> Option<ChainKind> {
        [ChainKind::Sha256, ChainKind::HmacSha256]
            .into_iter()
            .find(|k| k.as_str() == word)
    }
}

const KEY_LEN: usize = 32;
const SEALED_LEN: usize = KEY_LEN + 8;

/// The stored audit key cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("the stored audit key is malformed ({0} bytes, expected {SEALED_LEN})")]
pub struct MalformedKey(usize);

/// The key records are chained under, and the last record chained before it existed. Both are
/// sealed together, so neither can be changed without the master key. `Debug` shows no key.
pub struct AuditKey {
    bytes: Zeroizing<[u8; KEY_LEN]>,
    unkeyed_through: i64,
}

impl AuditKey {
    /// A new random key for a log whose records up to `unkeyed_through` have none.
    pub fn generate(unkeyed_through: i64) -> AuditKey {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        rand::rngs::OsRng.fill_bytes(bytes.as_mut());
        AuditKey {
            bytes,
            unkeyed_through,
        }
    }

    /// The last record chained without a key (0: none).
    pub fn unkeyed_through(&self) -> i64 {
        self.unkeyed_through
    }

    /// The form sealed in the vault: the key, then `unkeyed_through` as 8 big-endian bytes.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(SEALED_LEN));
        out.extend_from_slice(self.bytes.as_ref());
        out.extend_from_slice(&self.unkeyed_through.to_be_bytes());
        out
    }

    /// Reads the sealed form back.
    pub fn from_bytes(sealed: &[u8]) -> Result<AuditKey, MalformedKey> {
        let (key, through) = sealed
            .split_first_chunk::<KEY_LEN>()
            .ok_or(MalformedKey(sealed.len()))?;
        let through: [u8; 8] = through.try_into().map_err(|_| MalformedKey(sealed.len()))?;
        Ok(AuditKey {
            bytes: Zeroizing::new(*key),
            unkeyed_through: i64::from_be_bytes(through),
        })
    }
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditKey")
            .field("unkeyed_through", &self.unkeyed_through)
            .finish_non_exhaustive()
    }
}

/// The fields a record's hash covers, in a fixed order (`chain` is checked by the rules instead).
#[derive(Serialize)]
struct Hashed<'a> {
    seq: i64,
    at: &'a str,
    user_name: &'a str,
    source_ip: &'a Option<String>,
    action: &'a str,
    resources: &'a str,
    decision: &'a str,
    aws_request_id: &'a Option<String>,
    outcome: &'a str,
    detail: &'a Option<String>,
    prev_hash: &'a str,
}

fn hashed_bytes(row: &AuditRow) -> Vec<u8> {
    let fields = Hashed {
        seq: row.seq,
        at: &row.at,
        user_name: &row.user_name,
        source_ip: &row.source_ip,
        action: &row.action,
        resources: &row.resources,
        decision: &row.decision,
        aws_request_id: &row.aws_request_id,
        outcome: &row.outcome,
        detail: &row.detail,
        prev_hash: &row.prev_hash,
    };
    serde_json::to_vec(&fields).unwrap_or_default()
}

/// The plain SHA-256 of a record over every field but `hash` and `chain`: what anyone can compute.
pub fn plain_hash(row: &AuditRow) -> String {
    hex::encode(Sha256::digest(hashed_bytes(row)))
}

/// The HMAC-SHA256 of the same fields under the audit key.
pub fn keyed_hash(key: &AuditKey, row: &AuditRow) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.bytes.as_ref())
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(&hashed_bytes(row));
    hex::encode(mac.finalize().into_bytes())
}

/// Chains a new record under the key: sets its kind and its hash.
pub fn seal(key: &AuditKey, row: &mut AuditRow) {
    row.chain = ChainKind::HmacSha256.as_str().to_owned();
    row.hash = keyed_hash(key, row);
}

/// A record's hash written down elsewhere, `SEQ:HASH`: verification checks the record is still
/// there with that hash, so removing the newest records or rewriting the whole log (even by
/// someone holding the key) is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    /// The record.
    pub seq: i64,
    /// Its hash, 64 lowercase hex digits.
    pub hash: String,
}

impl std::str::FromStr for Anchor {
    type Err = String;

    fn from_str(text: &str) -> Result<Anchor, String> {
        let wrong = || format!("{text:?} is not SEQ:HASH (as `airlock audit head` prints)");
        let (seq, hash) = text.split_once(':').ok_or_else(wrong)?;
        let seq: i64 = seq.parse().map_err(|_| wrong())?;
        let hash = hash.to_ascii_lowercase();
        if seq < 1 || hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(wrong());
        }
        Ok(Anchor { seq, hash })
    }
}

impl fmt::Display for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash)
    }
}

/// What breaks the log at a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Break {
    /// A record is missing before the one found.
    Missing {
        /// The record expected.
        expected: i64,
        /// The record found instead.
        found: i64,
    },
    /// Its `prev_hash` is not the previous record's hash.
    Link,
    /// Its hash is not that of its content.
    Edited,
    /// Its chain kind is not one the console writes.
    UnknownKind(String),
    /// Chained without the key after a keyed record.
    DowngradedAfterKeyed,
    /// Chained without the key although written after the key existed.
    DowngradedAfterKey,
    /// The anchored record has another hash now.
    AnchorRewritten,
    /// The anchored record is gone.
    AnchorTruncated,
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Break::Missing { expected, found } => {
                write!(f, "record {expected} is missing (found {found} next)")
            }
            Break::Link => f.write_str("its link to the previous record does not match"),
            Break::Edited => f.write_str(
                "its content does not match its hash (edited, or chained under another audit key)",
            ),
            Break::UnknownKind(kind) => write!(f, "its chain kind {kind:?} is unknown"),
            Break::DowngradedAfterKeyed => {
                f.write_str("it is chained without the audit key after keyed records (downgraded)")
            }
            Break::DowngradedAfterKey => f.write_str(
                "it is chained without the audit key but was written after the key existed (downgraded)",
            ),
            Break::AnchorRewritten => {
                f.write_str("its hash is not the anchored one (the log was rewritten)")
            }
            Break::AnchorTruncated => {
                f.write_str("the anchored record is gone (the log was truncated)")
            }
        }
    }
}

/// Checks a log fed to it in order, holding only the previous hash. After the first break it
/// goes on counting records and following the head, but checks nothing more.
#[derive(Debug)]
pub struct Verifier<'k> {
    key: &'k AuditKey,
    anchor: Option<Anchor>,
    anchor_seen: bool,
    next_seq: i64,
    prev_hash: String,
    keyed_seen: bool,
    records: usize,
    checked: usize,
    unkeyed: usize,
    broken: Option<(i64, Break)>,
    head: Option<Head>,
}

impl<'k> Verifier<'k> {
    /// A check of a whole log under `key`, and of `anchor` if one is given.
    pub fn new(key: &'k AuditKey, anchor: Option<Anchor>) -> Verifier<'k> {
        Verifier {
            key,
            anchor,
            anchor_seen: false,
            next_seq: 1,
            prev_hash: GENESIS.to_owned(),
            keyed_seen: false,
            records: 0,
            checked: 0,
            unkeyed: 0,
            broken: None,
            head: None,
        }
    }

    /// Checks the next record.
    pub fn feed(&mut self, row: &AuditRow) {
        self.records += 1;
        self.head = Some(Head::of(row));
        if self.broken.is_some() {
            return;
        }
        if let Err(problem) = self.check(row).and_then(|()| self.check_anchor(row)) {
            self.broken = Some((row.seq.min(self.next_seq), problem));
            return;
        }
        self.checked += 1;
        self.next_seq += 1;
        self.prev_hash.clone_from(&row.hash);
    }

    fn check(&mut self, row: &AuditRow) -> Result<(), Break> {
        if row.seq != self.next_seq {
            return Err(Break::Missing {
                expected: self.next_seq,
                found: row.seq,
            });
        }
        if row.prev_hash != self.prev_hash {
            return Err(Break::Link);
        }
        let kind =
            ChainKind::parse(&row.chain).ok_or_else(|| Break::UnknownKind(row.chain.clone()))?;
        let expected = match kind {
            ChainKind::Sha256 if self.keyed_seen => return Err(Break::DowngradedAfterKeyed),
            ChainKind::Sha256 if row.seq > self.key.unkeyed_through => {
                return Err(Break::DowngradedAfterKey)
            }
            ChainKind::Sha256 => plain_hash(row),
            ChainKind::HmacSha256 => keyed_hash(self.key, row),
        };
        if expected != row.hash {
            return Err(Break::Edited);
        }
        match kind {
            ChainKind::Sha256 => self.unkeyed += 1,
            ChainKind::HmacSha256 => self.keyed_seen = true,
        }
        Ok(())
    }

    fn check_anchor(&mut self, row: &AuditRow) -> Result<(), Break> {
        match &self.anchor {
            Some(anchor) if anchor.seq == row.seq => {
                self.anchor_seen = true;
                if anchor.hash == row.hash {
                    Ok(())
                } else {
                    Err(Break::AnchorRewritten)
                }
            }
            _ => Ok(()),
        }
    }

    /// The result, once every record was fed.
    pub fn finish(self) -> Verification {
        let broken = match (self.broken, &self.anchor) {
            (Some(b), _) => Some(b),
            (None, Some(anchor)) if !self.anchor_seen => Some((anchor.seq, Break::AnchorTruncated)),
            (None, _) => None,
        };
        Verification {
            records: self.records,
            intact: broken.is_none(),
            first_broken: broken.as_ref().map(|(seq, _)| *seq),
            problem: broken.map(|(_, b)| b.to_string()),
            checked: self.checked,
            unkeyed: self.unkeyed,
            head: self.head,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
pub(crate) mod tests {
    use super::*;

    /// A record linked to `prev`, its hash and kind not yet set.
    pub(crate) fn record(seq: i64, prev: &str) -> AuditRow {
        AuditRow {
            seq,
            at: "2026-01-01T00:00:00.000Z".into(),
            user_name: "ana".into(),
            source_ip: None,
            action: "ec2:RunInstances".into(),
            resources: "[]".into(),
            decision: "allowed".into(),
            aws_request_id: None,
            outcome: "ok".into(),
            detail: None,
            prev_hash: prev.to_owned(),
            hash: String::new(),
            chain: String::new(),
        }
    }

    /// A log of `n` records whose first `plain` were written before the key existed.
    fn log(key: &AuditKey, plain: i64, n: i64) -> Vec<AuditRow> {
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|seq| {
                let mut row = record(seq, &prev);
                if seq <= plain {
                    row.chain = ChainKind::Sha256.as_str().into();
                    row.hash = plain_hash(&row);
                } else {
                    seal(key, &mut row);
                }
                prev.clone_from(&row.hash);
                row
            })
            .collect()
    }

    fn verify(key: &AuditKey, rows: &[AuditRow], anchor: Option<Anchor>) -> Verification {
        let mut verifier = Verifier::new(key, anchor);
        for row in rows {
            verifier.feed(row);
        }
        verifier.finish()
    }

    /// What a database writer without the key can do: rewrite records from `from` on as plain
    /// SHA-256 with every hash and link recomputed.
    fn rechain_plain(rows: &mut [AuditRow], from: i64, edit: impl Fn(&mut AuditRow)) {
        let mut prev = GENESIS.to_owned();
        for row in rows.iter_mut() {
            if row.seq == from {
                edit(row);
            }
            if row.seq >= from {
                row.prev_hash.clone_from(&prev);
                row.chain = ChainKind::Sha256.as_str().into();
                row.hash = plain_hash(row);
            }
            prev.clone_from(&row.hash);
        }
    }

    #[test]
    fn a_keyed_log_verifies_with_its_head() {
        let key = AuditKey::generate(0);
        let rows = log(&key, 0, 5);
        let v = verify(&key, &rows, None);
        assert!(v.intact, "{v:?}");
        assert_eq!((v.records, v.checked, v.unkeyed), (5, 5, 0));
        assert_eq!(v.head, Some(Head::of(&rows[4])));
        assert!(rows.iter().all(|r| r.chain == "hmac-sha256"));
    }

    #[test]
    fn a_log_begun_before_the_key_verifies_each_record_by_its_kind() {
        let key = AuditKey::generate(3);
        let v = verify(&key, &log(&key, 3, 6), None);
        assert!(v.intact, "{v:?}");
        assert_eq!((v.checked, v.unkeyed), (6, 3));
    }

    #[test]
    fn an_empty_log_is_intact() {
        let key = AuditKey::generate(0);
        let v = verify(&key, &[], None);
        assert!(v.intact);
        assert_eq!((v.records, v.head), (0, None));
    }

    #[test]
    fn a_database_writer_who_edits_a_record_and_recomputes_sha256_is_found() {
        let key = AuditKey::generate(0);
        let mut rows = log(&key, 0, 5);
        // The edit alone, the hash recomputed as plain SHA-256 but the kind left keyed.
        rows[2].decision = "explicitDeny".into();
        rows[2].hash = plain_hash(&rows[2]);
        let v = verify(&key, &rows, None);
        assert!(!v.intact);
        assert_eq!(v.first_broken, Some(3));
        assert_eq!(
            v.problem.as_deref(),
            Some(Break::Edited.to_string().as_str())
        );
        assert_eq!(v.checked, 2);
        assert_eq!(v.records, 5);
        assert_eq!(v.head, Some(Head::of(&rows[4])));
    }

    #[test]
    fn a_database_writer_who_downgrades_the_newest_records_is_refused() {
        let key = AuditKey::generate(0);
        let mut rows = log(&key, 0, 6);
        rechain_plain(&mut rows, 4, |r| r.user_name = "mallory".into());
        let v = verify(&key, &rows, None);
        assert_eq!(v.first_broken, Some(4));
        assert_eq!(
            v.problem,
            Some(Break::DowngradedAfterKeyed.to_string()),
            "{v:?}"
        );
    }

    #[test]
    fn a_database_writer_who_downgrades_the_whole_log_is_refused() {
        // No keyed record is left to follow, but the key knows no record after 2 is plain.
        let key = AuditKey::generate(2);
        let mut rows = log(&key, 2, 6);
        rechain_plain(&mut rows, 1, |r| r.detail = Some("nothing happened".into()));
        let v = verify(&key, &rows, None);
        assert_eq!(v.first_broken, Some(3));
        assert_eq!(v.problem, Some(Break::DowngradedAfterKey.to_string()));
    }

    #[test]
    fn a_database_writer_with_a_key_of_their_own_is_found() {
        let key = AuditKey::generate(0);
        let theirs = AuditKey::generate(0);
        let v = verify(&key, &log(&theirs, 0, 3), None);
        assert_eq!(v.first_broken, Some(1));
        assert_eq!(v.problem, Some(Break::Edited.to_string()));
    }

    #[test]
    fn a_removed_record_is_found() {
        let key = AuditKey::generate(0);
        let mut rows = log(&key, 0, 5);
        rows.remove(1);
        let v = verify(&key, &rows, None);
        assert_eq!(v.first_broken, Some(2));
        assert_eq!(
            v.problem,
            Some(
                Break::Missing {
                    expected: 2,
                    found: 3
                }
                .to_string()
            )
        );
    }

    #[test]
    fn a_rehashed_edit_breaks_the_next_link() {
        let key = AuditKey::generate(0);
        let mut rows = log(&key, 0, 4);
        rows[1].decision = "explicitDeny".into();
        seal(&key, &mut rows[1]);
        assert_eq!(verify(&key, &rows, None).first_broken, Some(3));
    }

    #[test]
    fn an_unknown_chain_kind_is_refused() {
        let key = AuditKey::generate(0);
        let mut rows = log(&key, 0, 2);
        rows[1].chain = "none".into();
        assert_eq!(verify(&key, &rows, None).first_broken, Some(2));
    }

    #[test]
    fn truncation_after_the_head_was_anchored_is_found() {
        let key = AuditKey::generate(0);
        let mut rows = log(&key, 0, 6);
        let anchor: Anchor = format!("5:{}", rows[4].hash).parse().unwrap();
        assert!(verify(&key, &rows, Some(anchor.clone())).intact);
        rows.truncate(3);
        // Without the anchor, what is left is a sound log.
        assert!(verify(&key, &rows, None).intact);
        let v = verify(&key, &rows, Some(anchor));
        assert!(!v.intact);
        assert_eq!(v.first_broken, Some(5));
        assert_eq!(v.problem, Some(Break::AnchorTruncated.to_string()));
    }

    #[test]
    fn a_rewritten_anchored_record_is_found_even_with_the_key() {
        let key = AuditKey::generate(0);
        let mut rows = log(&key, 0, 4);
        let anchor = Anchor {
            seq: 2,
            hash: rows[1].hash.clone(),
        };
        // Someone holding the key rewrites record 2 and rechains everything after it.
        rows[1].outcome = "error".into();
        let mut prev = rows[0].hash.clone();
        for row in rows.iter_mut().skip(1) {
            row.prev_hash.clone_from(&prev);
            seal(&key, row);
            prev.clone_from(&row.hash);
        }
        assert!(verify(&key, &rows, None).intact);
        let v = verify(&key, &rows, Some(anchor));
        assert_eq!(v.first_broken, Some(2));
        assert_eq!(v.problem, Some(Break::AnchorRewritten.to_string()));
    }

    #[test]
    fn anchors_parse_only_as_seq_and_a_sha256() {
        let hash = "AB".repeat(32);
        let anchor: Anchor = format!("7:{hash}").parse().unwrap();
        assert_eq!(anchor.seq, 7);
        assert_eq!(anchor.hash, hash.to_lowercase());
        assert_eq!(anchor.to_string(), format!("7:{}", hash.to_lowercase()));
        for bad in [
            "",
            "7",
            "7:",
            "x:ab",
            "0:ab",
            "-1:ab",
            &format!("7:{}", "g".repeat(64)),
        ] {
            assert!(bad.parse::<Anchor>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_key_survives_its_sealed_form_and_never_prints() {
        let key = AuditKey::generate(41);
        let back = AuditKey::from_bytes(&key.to_bytes()).unwrap();
        assert_eq!(back.unkeyed_through(), 41);
        let row = record(1, GENESIS);
        assert_eq!(keyed_hash(&key, &row), keyed_hash(&back, &row));
        assert_ne!(keyed_hash(&key, &row), plain_hash(&row));
        assert!(AuditKey::from_bytes(&[0; 39]).is_err());
        assert!(AuditKey::from_bytes(&[0; 41]).is_err());
        let shown = format!("{key:?}");
        assert!(!shown.contains(&hex::encode(key.bytes.as_ref())), "{shown}");
    }
}
