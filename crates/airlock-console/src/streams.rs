//! Long-lived streams (`GET /v1/events`, `GET /v1/instances/watch`) hold a connection and a
//! task each, so a user may keep only so many open, and each ends when the login it was opened
//! with no longer holds (the token expired, was revoked, or its user was removed).

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Streams one user may hold open at once.
pub const MAX_STREAMS_PER_USER: usize = 16;
/// How often an open stream checks that its login still holds.
pub const RECHECK: Duration = Duration::from_secs(5);

/// Open streams per user.
#[derive(Default)]
pub struct Streams {
    open: Arc<Mutex<HashMap<String, usize>>>,
}

/// One open stream; dropping it frees the slot.
pub struct Slot {
    open: Arc<Mutex<HashMap<String, usize>>>,
    user: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.user);
            }
        }
    }
}

impl Streams {
    /// A slot for one more stream of `user`, or 429 when they hold the most already.
    pub fn open(&self, user: &str) -> ApiResult<Slot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(user.to_owned()).or_insert(0);
        if *n >= MAX_STREAMS_PER_USER {
            return Err(ApiError::TooManyRequests {
                message: format!(
                    "{user} already has {MAX_STREAMS_PER_USER} streams open: close one first"
                ),
                retry_after: RECHECK,
            });
        }
        *n += 1;
        Ok(Slot {
            open: self.open.clone(),
            user: user.to_owned(),
        })
    }
}

/// Whether the login a stream was opened with still holds.
pub async fn login_holds(state: &AppState, caller: &Caller) -> bool {
    match state.store.token_user(&caller.token_hash).await {
        Ok(Some(found)) => {
            found.user_name == caller.user
                && chrono::DateTime::parse_from_rfc3339(&found.expires_at)
                    .is_ok_and(|t| t > chrono::Utc::now())
        }
        _ => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_user_holds_at_most_sixteen_streams() {
        let streams = Streams::default();
        let mut held: Vec<Slot> = (0..MAX_STREAMS_PER_USER)
            .map(|_| streams.open("bob").unwrap())
            .collect();
        assert!(streams.open("bob").is_err());
        assert!(streams.open("ana").is_ok());
        held.pop();
        assert!(streams.open("bob").is_ok());
    }
}
