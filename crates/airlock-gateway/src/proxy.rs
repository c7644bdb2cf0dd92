//! The proxy itself: HTTP/1.1 and h2c (or TLS with ALPN) in front, keep-alive pools to the
//! endpoints behind ([`crate::pool`], one per proxy thread), one request path in phases over a
//! per-request [`Exchange`]: route → rewrite → pick → send (with passive health; once more on
//! another endpoint when the [`ProxyError`] says the request never left and the request is
//! idempotent and replayable) → observe (metrics, log, the client's answer).
//!
//! The path is lean because every request pays for it: the client's request is rewritten in
//! place and moved to the endpoint (a retry gets it back unsent, so nothing is cloned), the
//! path is re-used as received unless a route rewrites it, and what a connection's requests
//! share (the client's address as a header value) is made once per connection.
use crate::balance::{self, Outcome};
use crate::body::{Body, OutBody};
use crate::error::{ProxyError, Who};
use crate::pool::{self, SendError};
use crate::routes;
use crate::runtime::{Shared, UpstreamState};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, Version};
use http_body_util::BodyExt;
use hyper::body::{Body as _, Incoming};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::Watcher;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Request bodies up to this size are buffered for idempotent methods so a retry can resend them.
const MAX_REPLAY_BODY: u64 = 64 * 1024;

/// An active health check: GET `path` on `addr`; true on a 2xx answer in time.
pub async fn probe(
    addr: SocketAddr,
    path: &str,
    connect_timeout: Duration,
    timeout: Duration,
) -> bool {
    let Ok(req) = Request::get(path)
        .header(header::HOST, addr.to_string())
        .header(header::USER_AGENT, "airlock-gateway-health")
        .body(OutBody::Full(None))
    else {
        return false;
    };
    match tokio::time::timeout(timeout, pool::send(addr, req, connect_timeout)).await {
        Ok(Ok(resp)) => {
            let ok = resp.status().is_success();
            // Read the body so the connection goes back to the pool.
            let _ = tokio::time::timeout(timeout, resp.into_body().collect()).await;
            ok
        }
        _ => false,
    }
}

/// Serves the proxy on `listener` until `shutdown` resolves, then lets in-flight requests finish
/// (up to 30 s).
///
/// Each connection holds a permit of `connections` while it lives; without a free one, new
/// connections wait in the kernel's backlog. So that slow or silent clients cannot hold the
/// permits, a TLS client must finish its handshake within the handshake timeout, and every
/// client must send a request's headers within the header timeout.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    connections: Arc<Semaphore>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let scheme: &'static str = if tls.is_some() { "https" } else { "http" };
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let context = Arc::new(Connection {
            shared: shared.clone(),
            peer,
            peer_ip: peer_ip_value(peer),
            scheme,
            started: AtomicBool::new(false),
        });
        let tls = tls.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            serve_connection(stream, tls, context, watcher).await;
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!("stopped accepting; waiting for requests in flight");
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(30)) => tracing::warn!("requests still in flight after 30 s; closing"),
    }
}

/// What a connection's requests need (one reference count per request to share it).
struct Connection {
    shared: Arc<Shared>,
    peer: SocketAddr,
    /// The client's address as `X-Forwarded-For` gets it, made once.
    peer_ip: HeaderValue,
    scheme: &'static str,
    /// Set when the connection's first request arrives.
    started: AtomicBool,
}

fn peer_ip_value(peer: SocketAddr) -> HeaderValue {
    HeaderValue::from_str(&peer.ip().to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The TLS handshake (within the handshake timeout), then HTTP.
async fn serve_connection(
    stream: TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    connection: Arc<Connection>,
    watcher: Watcher,
) {
    let Some(acceptor) = tls else {
        return serve_http(TokioIo::new(stream), connection, watcher).await;
    };
    let (peer, limit) = (
        connection.peer,
        connection.shared.settings.limits.handshake_timeout,
    );
    match tokio::time::timeout(limit, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => serve_http(TokioIo::new(stream), connection, watcher).await,
        Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
        Err(_) => tracing::debug!(%peer, "no TLS handshake within the handshake timeout; closed"),
    }
}

/// HTTP/1.1 or h2 on an accepted (and maybe decrypted) stream, watched for graceful shutdown.
async fn serve_http<I>(io: I, connection: Arc<Connection>, watcher: Watcher)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let limits = connection.shared.settings.limits;
    let (peer, started) = (connection.peer, connection.clone());
    let service = hyper::service::service_fn(move |req| {
        let c = connection.clone();
        async move {
            c.started.store(true, Ordering::Relaxed);
            Ok::<_, Infallible>(handle(&c, req).await)
        }
    });
    let conn = airlock_listen::builder(limits)
        .serve_connection(io, service)
        .into_owned();
    tokio::select! {
        ended = watcher.watch(conn) => if let Err(e) = ended {
            tracing::debug!(%peer, "connection ended: {e}");
        },
        () = airlock_listen::first_request_deadline(limits.header_timeout, &started.started) => {
            tracing::debug!(%peer, "no request within the header timeout; closed");
        }
    }
}

/// What every phase of a request reads.
#[derive(Clone, Copy)]
struct Context<'a> {
    shared: &'a Shared,
    peer: SocketAddr,
    peer_ip: &'a HeaderValue,
    scheme: &'a str,
}

/// One request, from its arrival to its answer: the route's upstream is kept here so the
/// observe phase can count the request however it ended.
struct Exchange<'a> {
    cx: Context<'a>,
    upstream: Option<Arc<UpstreamState>>,
}

async fn handle(connection: &Connection, req: Request<Incoming>) -> Response<Body> {
    let start = Instant::now();
    let mut exchange = Exchange {
        cx: Context {
            shared: &connection.shared,
            peer: connection.peer,
            peer_ip: &connection.peer_ip,
            scheme: connection.scheme,
        },
        upstream: None,
    };
    let result = exchange.forward(req).await;
    exchange.observe(start, result)
}

/// The answer the client gets for a failed request: the status and a clear sentence.
pub fn error_response(e: &ProxyError) -> Response<Body> {
    let mut resp = Response::new(Body::full(Bytes::from(format!(
        "airlock gateway: {}\n",
        e.message
    ))));
    *resp.status_mut() = e.status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    let who = match e.who {
        Who::Client => "client",
        Who::Upstream => "upstream",
        Who::Internal => "gateway",
    };
    resp.headers_mut()
        .insert("x-airlock-error", HeaderValue::from_static(who));
    resp
}

fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// The hop-by-hop headers every message loses.
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
];

/// Removes hop-by-hop headers (and those the `Connection` header names).
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // `Connection: keep-alive` or `close`, the usual values, name nothing more to remove.
    let names_more = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|n| !n.eq_ignore_ascii_case("keep-alive") && !n.eq_ignore_ascii_case("close"));
    if names_more {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
            .collect();
        for n in named {
            headers.remove(n);
        }
    }
    for n in HOP_BY_HOP {
        headers.remove(n);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

/// Decrements the endpoint's in-flight count when the attempt ends.
struct InFlight<'a>(&'a balance::Health);

impl<'a> InFlight<'a> {
    fn start(health: &'a balance::Health) -> Self {
        health.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(health)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The request as it goes to an endpoint: rewritten once, sent up to twice.
struct Outbound {
    /// The request, until an attempt takes it (a failed attempt that never sent it gives it
    /// back).
    request: Option<Request<OutBody>>,
    /// The consistent-hashing key, when the upstream and the route use one.
    hash: Option<u64>,
    /// The method is idempotent and the body can be sent again.
    may_retry: bool,
}

/// A failed attempt, with the request when it never left.
struct Failed {
    error: ProxyError,
    unsent: Option<Box<Request<OutBody>>>,
}

impl Exchange<'_> {
    /// The phases: route, rewrite, then pick and send (again on another endpoint when the error
    /// says it is safe), observed by [`Exchange::observe`].
    async fn forward(&mut self, req: Request<Incoming>) -> Result<Response<Body>, ProxyError> {
        let cx = self.cx;
        let (mut parts, body) = req.into_parts();
        let live = cx.shared.live.load();
        let (route, state) = cx.route(&live.routes, request_host(&parts), parts.uri.path())?;
        let state: &UpstreamState = self.upstream.insert(state);
        rewrite_headers(&mut parts.headers, &parts.uri, cx.peer_ip, cx.scheme);
        parts.uri = routes::upstream_uri(route, &parts.uri).map_err(ProxyError::bad_request)?;
        parts.version = Version::HTTP_11;
        parts.extensions = http::Extensions::new();
        let (body, may_retry) = read_body(&parts.method, body).await?;
        // Consistent hashing: only for upstreams configured with it and routes that say what
        // to hash; a request without any of the values is balanced as usual.
        let hash = if state.set.hashed() && !route.hash_policies.is_empty() {
            balance::request_hash(
                &route.hash_policies,
                |name| parts.headers.get(name).map(HeaderValue::as_bytes),
                cx.peer.ip(),
            )
        } else {
            None
        };
        let outbound = Outbound {
            request: Some(Request::from_parts(parts, body)),
            hash,
            may_retry,
        };
        cx.send_with_retry(state, outbound).await
    }

    /// Observe: the upstream's metrics, the log, and the client's answer for a failure.
    fn observe(
        &self,
        start: Instant,
        result: Result<Response<Body>, ProxyError>,
    ) -> Response<Body> {
        let status = result.as_ref().ok().map(|r| r.status().as_u16());
        if let Some(up) = &self.upstream {
            up.metrics.observe(status, start.elapsed().as_secs_f64());
        }
        match result {
            Ok(resp) => resp,
            Err(e) => {
                // No route and no endpoint are counted in metrics; logging each would flood.
                match e.who {
                    Who::Client | Who::Internal => tracing::debug!(peer = %self.cx.peer, "{e}"),
                    Who::Upstream => tracing::warn!(peer = %self.cx.peer, "{e}"),
                }
                error_response(&e)
            }
        }
    }
}

impl Context<'_> {
    /// Route: the virtual host and route for the request, and the upstream it names.
    fn route<'r>(
        &self,
        routes: &'r routes::RouteTable,
        host: &str,
        path: &str,
    ) -> Result<(&'r crate::config::Route, Arc<UpstreamState>), ProxyError> {
        let Some(route) = routes.select(host, path) else {
            self.shared.metrics.no_route.fetch_add(1, Ordering::Relaxed);
            return Err(ProxyError::no_route(host, path));
        };
        match self.shared.upstreams.load().get(&route.upstream) {
            Some(state) => Ok((route, state.clone())),
            None => Err(ProxyError::no_healthy_endpoint(&route.upstream.to_string())),
        }
    }

    /// Pick and send, at most twice: a second endpoint is tried only when the first failure
    /// is one the error says is safe to retry and the request can be sent again.
    async fn send_with_retry(
        &self,
        state: &UpstreamState,
        mut outbound: Outbound,
    ) -> Result<Response<Body>, ProxyError> {
        let mut excluded = None;
        let mut last_error = None;
        for attempt in 0..2 {
            let Some(endpoint) = self.pick(state, outbound.hash, excluded) else {
                break;
            };
            let Some(request) = outbound.request.take() else {
                break;
            };
            match self.send(state, endpoint, request).await {
                Ok(resp) => return Ok(resp),
                Err(Failed { error, unsent }) if error.retry_safe && outbound.may_retry => {
                    outbound.request = unsent.map(|r| *r);
                    excluded = Some(endpoint.addr);
                    if attempt == 0 {
                        state.metrics.retries.fetch_add(1, Ordering::Relaxed);
                    }
                    last_error = Some(error);
                }
                Err(failed) => return Err(failed.error),
            }
        }
        Err(last_error
            .unwrap_or_else(|| ProxyError::no_healthy_endpoint(&state.upstream.id.to_string())))
    }

    /// Pick: an endpoint that may take traffic, other than `excluded`.
    fn pick<'s>(
        &self,
        state: &'s UpstreamState,
        hash: Option<u64>,
        excluded: Option<SocketAddr>,
    ) -> Option<&'s balance::Endpoint> {
        let now = self.shared.now_ms();
        match hash {
            Some(h) => state.set.pick_hashed(h, now, excluded),
            None => state
                .set
                .pick(self.shared.settings.policy, now, excluded, |n| {
                    rand::random::<u32>() as usize % n.max(1)
                }),
        }
    }

    /// Send: one attempt on `endpoint`, its answer or failure recorded in the endpoint's
    /// passive health.
    async fn send(
        &self,
        state: &UpstreamState,
        endpoint: &balance::Endpoint,
        request: Request<OutBody>,
    ) -> Result<Response<Body>, Failed> {
        let name = || format!("{} ({})", endpoint.addr, endpoint.instance_id);
        let settings = &self.shared.settings;
        let in_flight = InFlight::start(&endpoint.health);
        let sent = tokio::time::timeout(
            settings.upstream_timeout,
            pool::send(endpoint.addr, request, settings.connect_timeout),
        )
        .await;
        drop(in_flight);
        let failed = |error, unsent| Failed { error, unsent };
        match sent {
            Ok(Ok(mut resp)) => {
                let outcome = if resp.status().is_server_error() {
                    Outcome::ServerError
                } else {
                    Outcome::Ok
                };
                if self.record(state, endpoint, outcome) {
                    tracing::warn!(endpoint = %name(), upstream = %state.upstream.id, "ejected after consecutive 5xx answers");
                }
                strip_hop_by_hop(resp.headers_mut());
                Ok(resp)
            }
            Ok(Err(SendError::Connect(e, unsent))) => {
                self.record(state, endpoint, Outcome::ConnectFailure);
                tracing::warn!(endpoint = %name(), upstream = %state.upstream.id, "cannot connect: {e}; ejected");
                Err(failed(ProxyError::connect(&name(), e), Some(unsent)))
            }
            Ok(Err(SendError::Failed(e))) => Err(failed(ProxyError::upstream(&name(), e), None)),
            Err(_) => Err(failed(ProxyError::timeout(&name()), None)),
        }
    }

    /// Passive health: records the attempt's outcome; true (and counted) when it ejected the
    /// endpoint.
    fn record(
        &self,
        state: &UpstreamState,
        endpoint: &balance::Endpoint,
        outcome: Outcome,
    ) -> bool {
        let settings = &self.shared.settings;
        let eject_ms = u64::try_from(settings.eject.as_millis()).unwrap_or(u64::MAX);
        let ejected = endpoint.health.record_response(
            outcome,
            self.shared.now_ms(),
            eject_ms,
            settings.max_5xx,
        );
        if ejected {
            state.metrics.ejections.fetch_add(1, Ordering::Relaxed);
        }
        ejected
    }
}

/// The host the client asked for: its `Host` header, or the authority of its URI.
fn request_host(parts: &http::request::Parts) -> &str {
    parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(http::uri::Authority::as_str))
        .unwrap_or_default()
}

/// Rewrite: the headers the endpoint gets (hop-by-hop ones removed, `Host` kept or taken from
/// the URI, the client's address and scheme added).
fn rewrite_headers(headers: &mut HeaderMap, uri: &http::Uri, peer_ip: &HeaderValue, scheme: &str) {
    strip_hop_by_hop(headers);
    if !headers.contains_key(header::HOST) {
        let host = uri.authority().map_or("", http::uri::Authority::as_str);
        if let Ok(v) = HeaderValue::from_str(host) {
            headers.insert(header::HOST, v);
        }
    }
    let xff = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prev) => HeaderValue::from_maybe_shared(Bytes::from(
            [prev.as_bytes(), b", ", peer_ip.as_bytes()].concat(),
        ))
        .ok(),
        None => Some(peer_ip.clone()),
    };
    if let Some(v) = xff {
        headers.insert("x-forwarded-for", v);
    }
    headers.insert(
        "x-forwarded-proto",
        HeaderValue::from_static(if scheme == "https" { "https" } else { "http" }),
    );
}

/// The body, replayable when the method is idempotent and the body small (or absent); true
/// when the request may be sent again.
async fn read_body(method: &Method, body: Incoming) -> Result<(OutBody, bool), ProxyError> {
    let idempotent = is_idempotent(method);
    let length = body.size_hint().exact();
    let body = if body.is_end_stream() {
        OutBody::Full(None)
    } else if idempotent && length.is_some_and(|n| n <= MAX_REPLAY_BODY) {
        let collected = body.collect().await.map_err(ProxyError::bad_request)?;
        OutBody::Full(Some(collected.to_bytes()))
    } else {
        OutBody::Stream(body)
    };
    let may_retry = idempotent && matches!(body, OutBody::Full(_));
    Ok((body, may_retry))
}
