//! A refresh is an exchange: the secret presented is retired and a new one handed out. When the
//! answer is lost on the way (a cut connection, a client timeout) the agent presents the old
//! secret again; that must not look like a stolen copy. So each exchange's answer is kept for a
//! short while and given again to the same instance from the same address, as long as the
//! instance has not used the secret it was given. Anyone else presenting the old secret is
//! still a replay.
//!
//! The answer is kept in the store, so a retry that a load balancer sends to another console
//! gets it too. It holds a refresh secret and AWS credentials, so it is sealed by the vault
//! under a record id naming the exchange (a sealed answer moved to another row does not open).

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use airlock_api::refresh::RefreshResponse;
use airlock_store::{epoch_ms, KeepAnswer, KeptAnswerRow, VaultRow};
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

/// How long an answer can be asked for again.
pub const RETRY_WINDOW: Duration = Duration::from_secs(120);
/// Answers kept at most; beyond, the oldest go first (a lost answer is then a false alert).
const MAX_ANSWERS: i64 = 10_000;

/// Who asked, with which secret: an enrolment secret is shared by a launch's instances.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExchangeKey {
    /// SHA-256 of the presented secret.
    pub presented_hash: String,
    /// The instance that presented it.
    pub instance_id: String,
}

impl ExchangeKey {
    /// The vault record id the answer is sealed under.
    fn record(&self) -> String {
        format!(
            "refresh-answer/{}/{}",
            self.presented_hash, self.instance_id
        )
    }
}

fn window_ms() -> i64 {
    i64::try_from(RETRY_WINDOW.as_millis()).unwrap_or(i64::MAX)
}

/// Whether a kept answer may be given to a request from `source` at `now_ms`: from the address
/// the exchange came from, within the window. The answer may have been kept by another console
/// whose clock is a little ahead, so a slightly negative age is still within it.
fn applies(kept: &KeptAnswerRow, source: IpAddr, now_ms: i64) -> bool {
    let same_source = kept
        .source_ip
        .parse::<IpAddr>()
        .is_ok_and(|ip| ip.to_canonical() == source.to_canonical());
    let age = now_ms.saturating_sub(kept.at_ms);
    same_source && age.saturating_abs() < window_ms()
}

/// The answer of an exchange, sealed, to be kept with the exchange itself (in its transaction)
/// before it is sent.
pub fn sealed(
    state: &AppState,
    key: &ExchangeKey,
    source: IpAddr,
    answer: &RefreshResponse,
) -> ApiResult<KeptAnswerRow> {
    let plain = zeroize::Zeroizing::new(
        serde_json::to_vec(answer)
            .map_err(|e| ApiError::Internal(format!("refresh answer: {e}")))?,
    );
    let sealed = state.vault.seal(&key.record(), &plain)?;
    Ok(KeptAnswerRow {
        presented_hash: key.presented_hash.clone(),
        instance_id: key.instance_id.clone(),
        source_ip: source.to_string(),
        at_ms: epoch_ms(SystemTime::now()),
        key_id: sealed.key_id,
        sealed: sealed.sealed,
    })
}

/// How a kept answer is stored: older answers than the window go, and at most
/// [`MAX_ANSWERS`] stay.
pub fn keeping(row: &KeptAnswerRow) -> KeepAnswer<'_> {
    KeepAnswer {
        row,
        expired_before_ms: row.at_ms.saturating_sub(window_ms()),
        keep: MAX_ANSWERS,
    }
}

/// The answer given to this instance for this secret, if it is asked again from the same
/// address within the window.
pub async fn answer(
    state: &AppState,
    key: &ExchangeKey,
    source: IpAddr,
) -> ApiResult<Option<RefreshResponse>> {
    let kept = state
        .store
        .kept_refresh_answer(&key.presented_hash, &key.instance_id)
        .await?;
    let Some(kept) = kept.filter(|k| applies(k, source, epoch_ms(SystemTime::now()))) else {
        return Ok(None);
    };
    let plain = state.vault.open_row(&VaultRow {
        id: key.record(),
        key_id: kept.key_id,
        sealed: kept.sealed,
    })?;
    let answer = serde_json::from_slice(&plain)
        .map_err(|e| ApiError::Internal(format!("kept refresh answer: {e}")))?;
    Ok(Some(answer))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn kept(source: &str, at_ms: i64) -> KeptAnswerRow {
        KeptAnswerRow {
            presented_hash: "h1".into(),
            instance_id: "i-1".into(),
            source_ip: source.into(),
            at_ms,
            key_id: "k1".into(),
            sealed: "sealed".into(),
        }
    }

    #[test]
    fn a_retry_from_the_same_address_within_the_window_gets_the_kept_answer() {
        let t0 = 1_000_000;
        let ip: IpAddr = "127.0.0.5".parse().unwrap();
        assert!(applies(&kept("127.0.0.5", t0), ip, t0 + 30_000));
        // The same address written as IPv4-mapped IPv6 is the same address.
        assert!(applies(&kept("::ffff:127.0.0.5", t0), ip, t0));
    }

    #[test]
    fn attacker_with_a_copied_secret_elsewhere_gets_no_kept_answer() {
        let t0 = 1_000_000;
        let elsewhere: IpAddr = "127.0.0.6".parse().unwrap();
        assert!(!applies(&kept("127.0.0.5", t0), elsewhere, t0));
        assert!(!applies(&kept("not an address", t0), elsewhere, t0));
    }

    #[test]
    fn an_answer_is_not_given_after_the_window() {
        let t0 = 1_000_000;
        let ip: IpAddr = "127.0.0.5".parse().unwrap();
        assert!(!applies(&kept("127.0.0.5", t0), ip, t0 + window_ms()));
        // Kept by a console whose clock is a second ahead: still given; far ahead: not.
        assert!(applies(&kept("127.0.0.5", t0 + 1_000), ip, t0));
        assert!(!applies(&kept("127.0.0.5", t0 + window_ms()), ip, t0));
    }

    #[test]
    fn the_record_id_names_the_exchange() {
        let key = ExchangeKey {
            presented_hash: "h1".into(),
            instance_id: "i-1".into(),
        };
        assert_eq!(key.record(), "refresh-answer/h1/i-1");
    }
}
