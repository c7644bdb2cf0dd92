//! An IMDSv2-faithful instance metadata server for one instance, for tests and the local fleet.
//!
//! EC2's own metadata service cannot be reached off EC2 (and moto's is a fixed stub), so the
//! fleet and the tests run one of these per instance. Like EC2 with `HttpTokens=required`, it
//! hands out session tokens on `PUT /latest/api/token` (TTL header required, 1 to 21600
//! seconds; refused when `X-Forwarded-For` is present), answers `401` to reads without a valid
//! token, and serves the instance id, placement and the user data EC2 holds for the instance.
//! It counts token-less reads so tests can prove the agent never falls back to IMDSv1.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use rand::RngCore as _;

use airlock_agent::imds::{region_of_zone, TOKEN_HEADER, TTL_HEADER};

/// What the metadata service says about its instance.
#[derive(Clone, Debug)]
pub struct InstanceData {
    /// The instance id.
    pub instance_id: String,
    /// Its availability zone (the region is this minus the letter).
    pub availability_zone: String,
    /// Its raw user data, if it has any.
    pub user_data: Option<Vec<u8>>,
    /// Its private IPv4 address, if the service should say.
    pub local_ipv4: Option<String>,
}

/// Request counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Session tokens handed out.
    pub tokens_issued: u64,
    /// Reads that came without a token (refused unless IMDSv1 is allowed).
    pub tokenless_reads: u64,
    /// Reads answered with data.
    pub reads: u64,
}

struct Shared {
    data: Mutex<InstanceData>,
    tokens: Mutex<HashMap<String, Instant>>,
    /// `None`: tokens required (IMDSv2 only); `Some(true)`: IMDSv1 also allowed; `Some(false)`:
    /// the token service is disabled and only IMDSv1 works.
    mode: Mode,
    tokens_issued: AtomicU64,
    tokenless_reads: AtomicU64,
    reads: AtomicU64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Required,
    Optional,
    NoTokens,
}

/// A running metadata server; stops when dropped.
pub struct ImdsServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl ImdsServer {
    /// Serves `data` on `bind` (e.g. `127.0.0.5:0`). Tokens are required unless `allow_v1`.
    pub async fn start(bind: &str, data: InstanceData, allow_v1: bool) -> std::io::Result<Self> {
        let mode = if allow_v1 {
            Mode::Optional
        } else {
            Mode::Required
        };
        Self::start_mode(bind, data, mode).await
    }

    /// A service whose token endpoint is disabled (403), answering reads without a token: what
    /// an agent must refuse to use unless IMDSv1 is allowed.
    pub async fn start_without_tokens(bind: &str, data: InstanceData) -> std::io::Result<Self> {
        Self::start_mode(bind, data, Mode::NoTokens).await
    }

    async fn start_mode(bind: &str, data: InstanceData, mode: Mode) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            data: Mutex::new(data),
            tokens: Mutex::new(HashMap::new()),
            mode,
            tokens_issued: AtomicU64::new(0),
            tokenless_reads: AtomicU64::new(0),
            reads: AtomicU64::new(0),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "metadata server stopped");
            }
        });
        Ok(ImdsServer { addr, shared, task })
    }

    /// Its base URL, e.g. `http://127.0.0.5:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The request counters so far.
    pub fn stats(&self) -> Stats {
        Stats {
            tokens_issued: self.shared.tokens_issued.load(Ordering::Relaxed),
            tokenless_reads: self.shared.tokenless_reads.load(Ordering::Relaxed),
            reads: self.shared.reads.load(Ordering::Relaxed),
        }
    }

    /// Forgets every token handed out (as a restarted service would).
    pub fn revoke_tokens(&self) {
        lock(&self.shared.tokens).clear();
    }

    /// Replaces the user data (EC2 allows changing it while an instance is stopped).
    pub fn set_user_data(&self, user_data: Option<Vec<u8>>) {
        lock(&self.shared.data).user_data = user_data;
    }
}

impl Drop for ImdsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let path = uri.path();
    if path == "/latest/api/token" {
        if method != Method::PUT {
            return (StatusCode::METHOD_NOT_ALLOWED, "").into_response();
        }
        if shared.mode == Mode::NoTokens || headers.contains_key("x-forwarded-for") {
            return (StatusCode::FORBIDDEN, "Forbidden").into_response();
        }
        let ttl = headers
            .get(TTL_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let Some(ttl) = ttl.filter(|t| (1..=21600).contains(t)) else {
            return (StatusCode::BAD_REQUEST, "Bad Request").into_response();
        };
        let mut bytes = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut bytes);
        let token = hex::encode(bytes);
        lock(&shared.tokens).insert(token.clone(), Instant::now() + Duration::from_secs(ttl));
        shared.tokens_issued.fetch_add(1, Ordering::Relaxed);
        return ([(TTL_HEADER, ttl.to_string())], token).into_response();
    }
    if method != Method::GET && method != Method::HEAD {
        return (StatusCode::METHOD_NOT_ALLOWED, "").into_response();
    }
    match headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok()) {
        Some(token) => {
            let valid = lock(&shared.tokens)
                .get(token)
                .is_some_and(|expiry| Instant::now() < *expiry);
            if !valid {
                return (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
            }
        }
        None => {
            shared.tokenless_reads.fetch_add(1, Ordering::Relaxed);
            if shared.mode == Mode::Required {
                return (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
            }
        }
    }
    let data = lock(&shared.data).clone();
    let region = region_of_zone(&data.availability_zone).unwrap_or_default();
    let body: Vec<u8> = match path.trim_end_matches('/') {
        "/latest/meta-data" => b"instance-id\nlocal-ipv4\nplacement/\n".to_vec(),
        "/latest/meta-data/instance-id" => data.instance_id.into_bytes(),
        "/latest/meta-data/local-ipv4" => match data.local_ipv4 {
            Some(ip) => ip.into_bytes(),
            None => return (StatusCode::NOT_FOUND, "Not Found").into_response(),
        },
        "/latest/meta-data/placement" => b"availability-zone\nregion\n".to_vec(),
        "/latest/meta-data/placement/availability-zone" => data.availability_zone.into_bytes(),
        "/latest/meta-data/placement/region" => region.into_bytes(),
        "/latest/dynamic/instance-identity/document" => serde_json::json!({
            "instanceId": data.instance_id,
            "availabilityZone": data.availability_zone,
            "region": region,
        })
        .to_string()
        .into_bytes(),
        "/latest/user-data" => match data.user_data {
            Some(user_data) => user_data,
            None => return (StatusCode::NOT_FOUND, "Not Found").into_response(),
        },
        _ => return (StatusCode::NOT_FOUND, "Not Found").into_response(),
    };
    shared.reads.fetch_add(1, Ordering::Relaxed);
    (StatusCode::OK, body).into_response()
}
