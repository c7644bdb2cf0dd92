//! Where the console is and with which token: the saved login, `AIRLOCK_TOKEN`, `--console-ca`;
//! the calls themselves are `airlock_api`'s client.

use crate::cli::ConsoleArgs;
use airlock_api::client::{ClientError, ConsoleClient, Settings};
use anyhow::{anyhow, bail, Context, Result};
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// What `airlock login` saves.
#[derive(Debug, Serialize, Deserialize)]
pub struct SavedLogin {
    /// Console URL.
    pub console: String,
    /// API token.
    pub token: String,
    /// The user.
    pub user: String,
}

/// The config directory: `$AIRLOCK_CONFIG_DIR`, else `$XDG_CONFIG_HOME/airlock`, else
/// `~/.config/airlock`.
pub fn config_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("AIRLOCK_CONFIG_DIR") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME") {
        return Ok(PathBuf::from(dir).join("airlock"));
    }
    let home = std::env::var_os("HOME")
        .ok_or_else(|| anyhow!("HOME is not set; set AIRLOCK_CONFIG_DIR"))?;
    Ok(PathBuf::from(home).join(".config").join("airlock"))
}

fn login_file() -> Result<PathBuf> {
    Ok(config_dir()?.join("login.json"))
}

/// Saves a login with mode 0600 in a 0700 directory, atomically.
pub fn save_login(login: &SavedLogin) -> Result<PathBuf> {
    let path = login_file()?;
    let dir = path.parent().ok_or_else(|| anyhow!("bad config path"))?;
    airlock_os::ensure_private_dir(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    airlock_os::write_private(&path, &serde_json::to_vec_pretty(login)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Forgets the saved login.
pub fn forget_login() -> Result<()> {
    match std::fs::remove_file(login_file()?) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The saved login, when there is one: the one place the CLI reads `login.json`.
pub fn saved_login() -> Result<Option<SavedLogin>> {
    let path = login_file()?;
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
            format!("{} is corrupt; run `airlock login` again", path.display())
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The API token for `console`: `AIRLOCK_TOKEN`, else the one saved for that console.
pub fn token_for(console: &str, saved: Option<SavedLogin>) -> Option<SecretString> {
    std::env::var("AIRLOCK_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .or_else(|| {
            saved
                .filter(|s| s.console.trim_end_matches('/') == console.trim_end_matches('/'))
                .map(|s| s.token)
        })
        .map(SecretString::from)
}

/// The certificate authorities of `--console-ca`, read at start so a bad file is named at once.
pub fn console_roots(bundle: Option<&std::path::Path>) -> Result<Vec<reqwest::Certificate>> {
    let Some(path) = bundle else {
        return Ok(Vec::new());
    };
    let pem = std::fs::read(path)
        .with_context(|| format!("cannot read --console-ca {}", path.display()))?;
    let roots = reqwest::Certificate::from_pem_bundle(&pem)
        .with_context(|| format!("--console-ca {} is not a PEM bundle", path.display()))?;
    if roots.is_empty() {
        bail!("--console-ca {} holds no CERTIFICATE block", path.display());
    }
    Ok(roots)
}

/// The console's client as the CLI uses it: its typed calls, and (for the fleet commands, whose
/// bodies are their own) JSON calls by path.
pub struct Client {
    api: ConsoleClient,
}

impl std::ops::Deref for Client {
    type Target = ConsoleClient;

    fn deref(&self) -> &ConsoleClient {
        &self.api
    }
}

impl Client {
    /// A client for `console` (or the saved one), with the saved token or `AIRLOCK_TOKEN`.
    pub fn new(console: &ConsoleArgs) -> Result<Client> {
        let saved = saved_login()?;
        let base = console
            .url()
            .map(str::to_owned)
            .or_else(|| saved.as_ref().map(|s| s.console.clone()))
            .ok_or_else(|| anyhow!("no console given: pass --console URL, set AIRLOCK_CONSOLE, or run `airlock login`"))?;
        let token = token_for(&base, saved);
        let settings = Settings {
            timeout: Some(Duration::from_secs(120)),
            connect_timeout: Some(Duration::from_secs(5)),
            roots: console_roots(console.console_ca.as_deref())?,
            ..Settings::default()
        };
        Ok(Client {
            api: ConsoleClient::new(&base, token, &settings)?,
        })
    }

    /// GET with query pairs.
    pub async fn get_query<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T> {
        Ok(self.api.get_query(path, query).await?)
    }

    /// POST a JSON body.
    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        Ok(self.api.post(path, body).await?)
    }

    /// True if the error is the console being unreachable (worth retrying while it restarts).
    pub fn is_unreachable(err: &anyhow::Error) -> bool {
        err.downcast_ref::<ClientError>()
            .is_some_and(ClientError::is_unreachable)
    }
}
