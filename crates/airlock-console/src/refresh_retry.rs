//! A refresh is an exchange: the secret presented is retired and a new one handed out. When the
//! answer is lost on the way (a cut connection, a client timeout) the agent presents the old
//! secret again; that must not look like a stolen copy. So each exchange's answer is kept for a
//! short while, in memory only, and given again to the same instance from the same address, as
//! long as the instance has not used the secret it was given. Anyone else presenting the old
//! secret is still a replay.

use airlock_api::refresh::RefreshResponse;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an answer can be asked for again.
pub const RETRY_WINDOW: Duration = Duration::from_secs(120);
/// Answers kept at most; beyond, the oldest go first (a lost answer is then a false alert).
const MAX_ANSWERS: usize = 10_000;

/// Who asked, with which secret: an enrolment secret is shared by a launch's instances.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExchangeKey {
    /// SHA-256 of the presented secret.
    pub presented_hash: String,
    /// The instance that presented it.
    pub instance_id: String,
}

struct Kept {
    source: IpAddr,
    at: Instant,
    answer: RefreshResponse,
}

/// The answers of recent exchanges.
#[derive(Default)]
pub struct RecentExchanges {
    answers: Mutex<HashMap<ExchangeKey, Kept>>,
}

impl RecentExchanges {
    /// Keeps the answer of an exchange that just succeeded.
    pub fn remember(
        &self,
        key: ExchangeKey,
        source: IpAddr,
        now: Instant,
        answer: &RefreshResponse,
    ) {
        let mut answers = self.answers.lock().unwrap_or_else(|p| p.into_inner());
        answers.retain(|_, kept| now.saturating_duration_since(kept.at) < RETRY_WINDOW);
        if answers.len() >= MAX_ANSWERS {
            if let Some(oldest) = answers
                .iter()
                .min_by_key(|(_, kept)| kept.at)
                .map(|(key, _)| key.clone())
            {
                answers.remove(&oldest);
            }
        }
        answers.insert(
            key,
            Kept {
                source,
                at: now,
                answer: answer.clone(),
            },
        );
    }

    /// The answer given to this instance for this secret, if it is asked again from the same
    /// address within the window.
    pub fn answer(
        &self,
        key: &ExchangeKey,
        source: IpAddr,
        now: Instant,
    ) -> Option<RefreshResponse> {
        let answers = self.answers.lock().unwrap_or_else(|p| p.into_inner());
        answers
            .get(key)
            .filter(|kept| kept.source == source)
            .filter(|kept| now.saturating_duration_since(kept.at) < RETRY_WINDOW)
            .map(|kept| kept.answer.clone())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use secrecy::{ExposeSecret, SecretString};

    fn answer(next: &str) -> RefreshResponse {
        RefreshResponse {
            credentials: airlock_payload::Credentials {
                access_key_id: "ASIAEXAMPLE".into(),
                secret_access_key: SecretString::from("s"),
                session_token: Some(SecretString::from("t")),
                expiration: None,
            },
            refresh_secret: SecretString::from(next),
        }
    }

    fn key(instance: &str) -> ExchangeKey {
        ExchangeKey {
            presented_hash: "h1".into(),
            instance_id: instance.into(),
        }
    }

    #[test]
    fn a_retry_from_the_same_instance_and_address_gets_the_same_answer() {
        let recent = RecentExchanges::default();
        let t0 = Instant::now();
        let ip: IpAddr = "127.0.0.5".parse().unwrap();
        recent.remember(key("i-1"), ip, t0, &answer("alr_next"));
        let again = recent
            .answer(&key("i-1"), ip, t0 + Duration::from_secs(30))
            .unwrap();
        assert_eq!(again.refresh_secret.expose_secret(), "alr_next");
    }

    #[test]
    fn attacker_with_a_copied_secret_elsewhere_gets_no_kept_answer() {
        let recent = RecentExchanges::default();
        let t0 = Instant::now();
        recent.remember(
            key("i-1"),
            "127.0.0.5".parse().unwrap(),
            t0,
            &answer("alr_next"),
        );
        assert!(recent
            .answer(&key("i-1"), "127.0.0.6".parse().unwrap(), t0)
            .is_none());
        assert!(recent
            .answer(&key("i-2"), "127.0.0.5".parse().unwrap(), t0)
            .is_none());
    }

    #[test]
    fn an_answer_is_not_given_after_the_window() {
        let recent = RecentExchanges::default();
        let t0 = Instant::now();
        let ip: IpAddr = "127.0.0.5".parse().unwrap();
        recent.remember(key("i-1"), ip, t0, &answer("alr_next"));
        assert!(recent.answer(&key("i-1"), ip, t0 + RETRY_WINDOW).is_none());
    }

    #[test]
    fn the_table_stays_bounded() {
        let recent = RecentExchanges::default();
        let t0 = Instant::now();
        let ip: IpAddr = "127.0.0.5".parse().unwrap();
        for n in 0..MAX_ANSWERS + 10 {
            recent.remember(key(&format!("i-{n}")), ip, t0, &answer("alr_next"));
        }
        assert!(recent.answers.lock().unwrap().len() <= MAX_ANSWERS);
    }
}
