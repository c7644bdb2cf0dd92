//! The proxy itself: HTTP/1.1 and h2c (or TLS with ALPN) in front, keep-alive pools to the
//! endpoints behind, one request path in phases over a per-request [`Exchange`]: route →
//! rewrite → pick → send (with passive health; once more on another endpoint when the
//! [`ProxyError`] says the request never left and the request is idempotent and replayable) →
//! observe (metrics, log, the client's answer).
use crate::balance::{self, Outcome};
use crate::error::{ProxyError, Who};
use crate::routes;
use crate::runtime::{Shared, UpstreamState};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, Uri, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body as _, Incoming};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::graceful::Watcher;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Body type on both sides of the proxy.
pub type Body = BoxBody<Bytes, hyper::Error>;
/// The pooled HTTP/1.1 client to endpoints.
pub type Client = hyper_util::client::legacy::Client<HttpConnector, Body>;

/// Request bodies up to this size are buffered for idempotent methods so a retry can resend them.
const MAX_REPLAY_BODY: u64 = 64 * 1024;

/// A keep-alive client pool to endpoints.
pub fn new_client(connect_timeout: Duration) -> Client {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_nodelay(true);
    connector.enforce_http(true);
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(1024)
        .build(connector)
}

fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

/// An active health check: GET `path` on `addr`; true on a 2xx answer in time.
pub async fn probe(client: &Client, addr: SocketAddr, path: &str, timeout: Duration) -> bool {
    let Ok(req) = Request::get(format!("http://{addr}{path}"))
        .header(header::HOST, addr.to_string())
        .header(header::USER_AGENT, "airlock-gateway-health")
        .body(empty())
    else {
        return false;
    };
    match tokio::time::timeout(timeout, client.request(req)).await {
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
    let client = new_client(shared.settings.connect_timeout);
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
        let context = Connection {
            shared: shared.clone(),
            client: client.clone(),
            peer,
            scheme,
            started: Arc::new(AtomicBool::new(false)),
        };
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

/// What a connection's requests need.
#[derive(Clone)]
struct Connection {
    shared: Arc<Shared>,
    client: Client,
    peer: SocketAddr,
    scheme: &'static str,
    /// Set when the connection's first request arrives.
    started: Arc<AtomicBool>,
}

/// The TLS handshake (within the handshake timeout), then HTTP.
async fn serve_connection(
    stream: TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    connection: Connection,
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
async fn serve_http<I>(io: I, connection: Connection, watcher: Watcher)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let limits = connection.shared.settings.limits;
    let (peer, started) = (connection.peer, connection.started.clone());
    let service = hyper::service::service_fn(move |req| {
        let c = connection.clone();
        async move {
            c.started.store(true, Ordering::Relaxed);
            Ok::<_, Infallible>(handle(&c.shared, &c.client, c.peer, c.scheme, req).await)
        }
    });
    let conn = airlock_listen::builder(limits)
        .serve_connection(io, service)
        .into_owned();
    tokio::select! {
        ended = watcher.watch(conn) => if let Err(e) = ended {
            tracing::debug!(%peer, "connection ended: {e}");
        },
        () = airlock_listen::first_request_deadline(limits.header_timeout, &started) => {
            tracing::debug!(%peer, "no request within the header timeout; closed");
        }
    }
}

/// What every phase of a request reads.
#[derive(Clone, Copy)]
struct Context<'a> {
    shared: &'a Shared,
    client: &'a Client,
    peer: SocketAddr,
    scheme: &'a str,
}

/// One request, from its arrival to its answer: the route's upstream is kept here so the
/// observe phase can count the request however it ended.
struct Exchange<'a> {
    cx: Context<'a>,
    upstream: Option<Arc<UpstreamState>>,
}

async fn handle(
    shared: &Shared,
    client: &Client,
    peer: SocketAddr,
    scheme: &str,
    req: Request<Incoming>,
) -> Response<Body> {
    let start = Instant::now();
    let mut exchange = Exchange {
        cx: Context {
            shared,
            client,
            peer,
            scheme,
        },
        upstream: None,
    };
    let result = exchange.forward(req).await;
    exchange.observe(start, result)
}

/// The answer the client gets for a failed request: the status and a clear sentence.
pub fn error_response(e: &ProxyError) -> Response<Body> {
    let mut resp = Response::new(full(Bytes::from(format!(
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

/// Removes hop-by-hop headers (and those the `Connection` header names).
fn strip_hop_by_hop(headers: &mut HeaderMap) {
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
    for n in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::TE,
        header::TRAILER,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
    ] {
        headers.remove(n);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

enum ReqBody {
    Replayable(Option<Bytes>),
    Stream(Option<Incoming>),
}

impl ReqBody {
    fn take(&mut self) -> Option<Body> {
        match self {
            ReqBody::Replayable(None) => Some(empty()),
            ReqBody::Replayable(Some(b)) => Some(full(b.clone())),
            ReqBody::Stream(s) => s.take().map(|b| b.boxed()),
        }
    }
}

/// Decrements the endpoint's in-flight count when the attempt ends.
struct InFlight(Arc<crate::balance::Health>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The request as it goes to an endpoint: rewritten once, sent up to twice.
struct Outbound {
    parts: http::request::Parts,
    path_and_query: String,
    body: ReqBody,
    /// The consistent-hashing key, when the upstream and the route use one.
    hash: Option<u64>,
    /// The method is idempotent and the body can be sent again.
    may_retry: bool,
}

impl Exchange<'_> {
    /// The phases: route, rewrite, then pick and send (again on another endpoint when the error
    /// says it is safe), observed by [`Exchange::observe`].
    async fn forward(&mut self, req: Request<Incoming>) -> Result<Response<Body>, ProxyError> {
        let cx = self.cx;
        let (mut parts, body) = req.into_parts();
        let host = request_host(&parts);
        let path = parts.uri.path().to_owned();
        let live = cx.shared.live.load();
        let (route, state) = cx.route(&live.routes, &host, &path)?;
        let state: &UpstreamState = self.upstream.insert(state);
        let path_and_query = routes::rewrite(route, &path, parts.uri.query());
        rewrite_headers(&mut parts.headers, &host, cx.peer, cx.scheme);
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
        let mut outbound = Outbound {
            parts,
            path_and_query,
            body,
            hash,
            may_retry,
        };
        cx.send_with_retry(state, &mut outbound).await
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
        outbound: &mut Outbound,
    ) -> Result<Response<Body>, ProxyError> {
        let mut excluded = None;
        let mut last_error = None;
        for attempt in 0..2 {
            let Some(endpoint) = self.pick(state, outbound.hash, excluded) else {
                break;
            };
            let Some(body) = outbound.body.take() else {
                break;
            };
            match self.send(state, endpoint, outbound, body).await {
                Ok(resp) => return Ok(resp),
                Err(e) if e.retry_safe && outbound.may_retry => {
                    excluded = Some(endpoint.addr);
                    if attempt == 0 {
                        state.metrics.retries.fetch_add(1, Ordering::Relaxed);
                    }
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
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
        outbound: &Outbound,
        body: Body,
    ) -> Result<Response<Body>, ProxyError> {
        let name = || format!("{} ({})", endpoint.addr, endpoint.instance_id);
        let uri: Uri = format!("http://{}{}", endpoint.addr, outbound.path_and_query)
            .parse()
            .map_err(ProxyError::bad_request)?;
        let mut builder = Request::builder()
            .method(outbound.parts.method.clone())
            .uri(uri)
            .version(Version::HTTP_11);
        if let Some(h) = builder.headers_mut() {
            *h = outbound.parts.headers.clone();
        }
        let upstream_req = builder
            .body(body)
            .map_err(|_| ProxyError::internal("cannot build the upstream request"))?;
        endpoint.health.in_flight.fetch_add(1, Ordering::Relaxed);
        let guard = InFlight(endpoint.health.clone());
        let sent = tokio::time::timeout(
            self.shared.settings.upstream_timeout,
            self.client.request(upstream_req),
        )
        .await;
        match sent {
            Ok(Ok(resp)) => {
                let outcome = if resp.status().is_server_error() {
                    Outcome::ServerError
                } else {
                    Outcome::Ok
                };
                if self.record(state, endpoint, outcome) {
                    tracing::warn!(endpoint = %name(), upstream = %state.upstream.id, "ejected after consecutive 5xx answers");
                }
                drop(guard);
                let (mut rparts, rbody) = resp.into_parts();
                strip_hop_by_hop(&mut rparts.headers);
                Ok(Response::from_parts(rparts, rbody.boxed()))
            }
            Ok(Err(e)) if e.is_connect() => {
                self.record(state, endpoint, Outcome::ConnectFailure);
                tracing::warn!(endpoint = %name(), upstream = %state.upstream.id, "cannot connect: {e}; ejected");
                Err(ProxyError::connect(&name(), e))
            }
            Ok(Err(e)) => Err(ProxyError::upstream(&name(), e)),
            Err(_) => Err(ProxyError::timeout(&name())),
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
fn request_host(parts: &http::request::Parts) -> String {
    parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()))
        .unwrap_or_default()
}

/// Rewrite: the headers the endpoint gets (hop-by-hop ones removed, `Host` kept, the client's
/// address and scheme added).
fn rewrite_headers(headers: &mut HeaderMap, host: &str, peer: SocketAddr, scheme: &str) {
    strip_hop_by_hop(headers);
    if !headers.contains_key(header::HOST) {
        if let Ok(v) = HeaderValue::from_str(host) {
            headers.insert(header::HOST, v);
        }
    }
    let xff = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prev) => format!("{prev}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert("x-forwarded-for", v);
    }
    headers.insert(
        "x-forwarded-proto",
        HeaderValue::from_static(if scheme == "https" { "https" } else { "http" }),
    );
}

/// The body, replayable when the method is idempotent and the body small (or absent); true
/// when the request may be sent again.
async fn read_body(method: &Method, body: Incoming) -> Result<(ReqBody, bool), ProxyError> {
    let idempotent = is_idempotent(method);
    let length = body.size_hint().exact();
    let body = if body.is_end_stream() {
        ReqBody::Replayable(None)
    } else if idempotent && length.is_some_and(|n| n <= MAX_REPLAY_BODY) {
        let collected = body.collect().await.map_err(ProxyError::bad_request)?;
        ReqBody::Replayable(Some(collected.to_bytes()))
    } else {
        ReqBody::Stream(Some(body))
    };
    let may_retry = idempotent && matches!(body, ReqBody::Replayable(_));
    Ok((body, may_retry))
}
