//! The console's HTTP client: where the console is, the saved token, and errors in words.

use crate::cli::ConsoleArgs;
use airlock_console::ErrorBody;
use anyhow::{anyhow, bail, Context, Result};
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

fn saved_login() -> Result<Option<SavedLogin>> {
    let path = login_file()?;
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
            format!("{} is corrupt; run `airlock login` again", path.display())
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// A client for one console.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

/// An error the console answered with, kept whole so callers can show the field.
#[derive(Debug)]
pub struct ConsoleError {
    /// HTTP status.
    pub status: u16,
    /// The console's error body.
    pub body: ErrorBody,
}

impl std::fmt::Display for ConsoleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let e = &self.body.error;
        match &e.field {
            Some(field) => write!(f, "{}: {} ({field})", e.code, e.message)?,
            None => write!(f, "{}: {}", e.code, e.message)?,
        }
        if let Some(id) = &e.aws_request_id {
            write!(f, " [AWS request id {id}]")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConsoleError {}

/// The console did not answer at all (down, restarting, wrong URL).
#[derive(Debug)]
pub struct Unreachable {
    /// The console URL.
    pub console: String,
    /// What went wrong underneath.
    pub cause: String,
}

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot reach the console at {}: {}",
            self.console, self.cause
        )
    }
}

impl std::error::Error for Unreachable {}

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

impl Client {
    /// A client for `console` (or the saved one), with the saved token or `AIRLOCK_TOKEN`.
    pub fn new(console: &ConsoleArgs) -> Result<Client> {
        let saved = saved_login()?;
        let base = console
            .url()
            .map(str::to_owned)
            .or_else(|| saved.as_ref().map(|s| s.console.clone()))
            .ok_or_else(|| anyhow!("no console given: pass --console URL, set AIRLOCK_CONSOLE, or run `airlock login`"))?;
        let token = std::env::var("AIRLOCK_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
            .or_else(|| saved.filter(|s| s.console == base).map(|s| s.token));
        let mut http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .connect_timeout(Duration::from_secs(5));
        for root in console_roots(console.console_ca.as_deref())? {
            http = http.add_root_certificate(root);
        }
        Ok(Client {
            http: http.build()?,
            base: base.trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// The console URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        req
    }

    async fn send<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> Result<T> {
        let resp = req.send().await.map_err(|e| Unreachable {
            console: self.base.clone(),
            cause: without_url(&e),
        })?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        if status.is_success() {
            let body = if bytes.is_empty() {
                &b"null"[..]
            } else {
                &bytes[..]
            };
            return serde_json::from_slice(body)
                .with_context(|| format!("the console answered {status} with an unexpected body"));
        }
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => Err(ConsoleError {
                status: status.as_u16(),
                body,
            }
            .into()),
            Err(_) => Err(anyhow!("the console answered {status}")),
        }
    }

    /// GET a path.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.send(self.request(reqwest::Method::GET, path)).await
    }

    /// GET with query pairs.
    pub async fn get_query<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T> {
        self.send(self.request(reqwest::Method::GET, path).query(query))
            .await
    }

    /// POST a JSON body.
    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        self.send(self.request(reqwest::Method::POST, path).json(body))
            .await
    }

    /// PUT a JSON body.
    pub async fn put<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        self.send(self.request(reqwest::Method::PUT, path).json(body))
            .await
    }

    /// DELETE a path and read the JSON answer.
    pub async fn delete_json<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.send(self.request(reqwest::Method::DELETE, path)).await
    }

    /// DELETE a path.
    pub async fn delete(&self, path: &str) -> Result<()> {
        self.send::<serde_json::Value>(self.request(reqwest::Method::DELETE, path))
            .await
            .map(|_| ())
    }

    /// True if the error is the console being unreachable (worth retrying while it restarts).
    pub fn is_unreachable(err: &anyhow::Error) -> bool {
        err.is::<Unreachable>()
            || err
                .downcast_ref::<ConsoleError>()
                .is_some_and(|e| e.status == 502 || e.status == 503)
    }
}

/// What went wrong underneath reqwest's message (which repeats the URL the caller names).
fn without_url(e: &reqwest::Error) -> String {
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        causes.push(s.to_string());
        source = s.source();
    }
    if causes.is_empty() {
        "request failed".into()
    } else {
        causes.join(": ")
    }
}
