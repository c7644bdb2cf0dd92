//! The shared-credentials profile: `aws --profile airlock …` and every SDK read it.
//!
//! Only the agent's own section of the file is replaced; other profiles, comments and their
//! order stay as they were. The file is written atomically with mode 0600.

use std::path::Path;

use secrecy::{ExposeSecret as _, SecretString};

use crate::store::{ensure_private_dir, write_atomic};
use crate::AgentError;

/// The keys written to the profile.
pub struct ProfileKeys<'a> {
    /// `aws_access_key_id`.
    pub access_key_id: &'a str,
    /// `aws_secret_access_key`.
    pub secret_access_key: &'a SecretString,
    /// `aws_session_token`, for temporary credentials.
    pub session_token: Option<&'a SecretString>,
}

/// `existing` with section `[profile]` replaced by `keys` (or removed when `keys` is `None`).
pub fn update_profile(existing: &str, profile: &str, keys: Option<&ProfileKeys<'_>>) -> String {
    let mut out = String::new();
    let mut in_ours = false;
    for line in existing.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') && trimmed.ends_with(']') {
            in_ours = trimmed[1..trimmed.len() - 1].trim() == profile;
        }
        if !in_ours {
            out.push_str(line);
            out.push('\n');
        }
    }
    let Some(keys) = keys else {
        return out;
    };
    if !out.is_empty() && !out.ends_with("\n\n") {
        out.push('\n');
    }
    out.push_str(&format!(
        "[{profile}]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
        keys.access_key_id,
        keys.secret_access_key.expose_secret()
    ));
    if let Some(token) = keys.session_token {
        out.push_str(&format!("aws_session_token = {}\n", token.expose_secret()));
    }
    out
}

/// Writes (or, with `None`, removes) the agent's section in the credentials file at `path`,
/// creating the file (0600) and its directory (0700) if needed.
pub fn write_profile(
    path: &Path,
    profile: &str,
    keys: Option<&ProfileKeys<'_>>,
) -> Result<(), AgentError> {
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if keys.is_none() {
                return Ok(());
            }
            String::new()
        }
        Err(e) => return Err(AgentError::file(path, e)),
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            ensure_private_dir(dir)?;
        }
    }
    write_atomic(path, update_profile(&existing, profile, keys).as_bytes())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn replaces_only_its_own_section() {
        let secret = SecretString::from("S1");
        let token = SecretString::from("T1");
        let keys = ProfileKeys {
            access_key_id: "A1",
            secret_access_key: &secret,
            session_token: Some(&token),
        };
        let existing = "# mine\n[default]\naws_access_key_id = D\n\n[airlock]\naws_access_key_id = OLD\naws_secret_access_key = OLD\n[other]\nregion = x\n";
        let out = update_profile(existing, "airlock", Some(&keys));
        assert_eq!(
            out,
            "# mine\n[default]\naws_access_key_id = D\n\n[other]\nregion = x\n\n[airlock]\naws_access_key_id = A1\naws_secret_access_key = S1\naws_session_token = T1\n"
        );
        assert_eq!(
            update_profile(&out, "airlock", Some(&keys)),
            out,
            "idempotent"
        );
        let removed = update_profile(&out, "airlock", None);
        assert!(!removed.contains("A1") && removed.contains("[other]"));
        assert_eq!(
            update_profile("", "p", Some(&keys)),
            "[p]\naws_access_key_id = A1\naws_secret_access_key = S1\naws_session_token = T1\n"
        );
    }
}
