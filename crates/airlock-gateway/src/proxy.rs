//! The proxy itself: HTTP/1.1 and h2c (or TLS with ALPN) in front, keep-alive pools to the
//! endpoints behind ([`crate::pool`], one per proxy thread). Plain HTTP/1.1 is served by the
//! lean path (`h1`); h2 and anything unusual by hyper here. Both go through one
//! request path in phases over a per-request `Exchange`: route → rewrite → pick → send (with
//! passive health; once more on another endpoint when the [`ProxyError`] says the request never
//! left and the request is idempotent and replayable) → observe (metrics, log, the client's
//! answer). How a request is sent is an `Attempt`, one per path; everything around it is
//! shared.
//!
//! On hyper's path the client's request is rewritten in place and moved to the endpoint (a
//! retry gets it back unsent, so nothing is cloned), the path is re-used as received unless a
//! route rewrites it, and what a connection's requests share (the client's address as a header
//! value) is made once per connection.
use crate::balance::{self, Outcome};
use crate::body::{Body, OutBody};
use crate::error::{ProxyError, Who};
use crate::framing;
use crate::h1;
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
    // Connections on the lean path watch this instead of `graceful` (hyper's connections only).
    let (closing, _) = tokio::sync::watch::channel(false);
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
        let watchers = (graceful.watcher(), closing.subscribe());
        tokio::spawn(async move {
            serve_connection(stream, tls, context, watchers).await;
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!("stopped accepting; waiting for requests in flight");
    let _ = closing.send(true);
    let drained = async { tokio::join!(graceful.shutdown(), closing.closed()) };
    tokio::select! {
        _ = drained => {}
        _ = tokio::time::sleep(Duration::from_secs(30)) => tracing::warn!("requests still in flight after 30 s; closing"),
    }
}

/// What tells a connection the gateway is stopping: hyper's watcher for the general path, and
/// a flag the lean path reads between requests.
pub(crate) type Watchers = (Watcher, tokio::sync::watch::Receiver<bool>);

/// What a connection's requests need (one reference count per request to share it).
pub(crate) struct Connection {
    pub(crate) shared: Arc<Shared>,
    peer: SocketAddr,
    /// The client's address as `X-Forwarded-For` gets it, made once.
    peer_ip: HeaderValue,
    scheme: &'static str,
    /// Set when the connection's first request arrives.
    pub(crate) started: AtomicBool,
}

impl Connection {
    /// What the phases of this connection's requests read.
    pub(crate) fn context(&self) -> Context<'_> {
        Context {
            shared: &self.shared,
            peer: self.peer,
            peer_ip: &self.peer_ip,
            scheme: self.scheme,
        }
    }
}

fn peer_ip_value(peer: SocketAddr) -> HeaderValue {
    HeaderValue::from_str(&peer.ip().to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The TLS handshake (within the handshake timeout), then HTTP/1.1 on the lean path, or h2
/// when ALPN chose it.
async fn serve_connection(
    stream: TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    connection: Arc<Connection>,
    watchers: Watchers,
) {
    let Some(acceptor) = tls else {
        return h1::serve(stream, connection, watchers).await;
    };
    let (peer, limit) = (
        connection.peer,
        connection.shared.settings.limits.handshake_timeout,
    );
    match tokio::time::timeout(limit, acceptor.accept(stream)).await {
        Ok(Ok(stream)) if stream.get_ref().1.alpn_protocol() == Some(b"h2") => {
            serve_http(TokioIo::new(stream), connection, watchers.0).await;
        }
        Ok(Ok(stream)) => h1::serve(stream, connection, watchers).await,
        Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
        Err(_) => tracing::debug!(%peer, "no TLS handshake within the handshake timeout; closed"),
    }
}

/// HTTP/1.1 or h2 on an accepted (and maybe decrypted) stream, watched for graceful shutdown.
pub(crate) async fn serve_http<I>(io: I, connection: Arc<Connection>, watcher: Watcher)
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
pub(crate) struct Context<'a> {
    pub(crate) shared: &'a Shared,
    pub(crate) peer: SocketAddr,
    pub(crate) peer_ip: &'a HeaderValue,
    pub(crate) scheme: &'a str,
}

/// The endpoint sets by upstream, as the runtime publishes them.
pub(crate) type Upstreams = std::collections::BTreeMap<crate::config::ObjRef, Arc<UpstreamState>>;

/// One request, from its arrival to its answer: the route's upstream is kept here (`U`: owned
/// on hyper's path, borrowed on the lean one) so the observe phase can count the request
/// however it ended.
pub(crate) struct Exchange<'a, U = Arc<UpstreamState>> {
    pub(crate) cx: Context<'a>,
    pub(crate) upstream: Option<U>,
}

async fn handle(connection: &Connection, req: Request<Incoming>) -> Response<Body> {
    let start = Instant::now();
    let mut exchange = Exchange::new(connection.context());
    let result = exchange.forward(req).await;
    exchange.observe(start, result.as_ref().map(|r| r.status()));
    result.unwrap_or_else(|e| error_response(&e))
}

/// The answer the client gets for a failed request: the status and a clear sentence.
pub fn error_response(e: &ProxyError) -> Response<Body> {
    let mut resp = Response::new(Body::full(Bytes::from(error_text(e))));
    *resp.status_mut() = e.status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp.headers_mut()
        .insert("x-airlock-error", HeaderValue::from_static(who_failed(e)));
    resp
}

/// The body of the gateway's answer to a failed request.
pub(crate) fn error_text(e: &ProxyError) -> String {
    format!("airlock gateway: {}\n", e.message)
}

/// The `x-airlock-error` value: which side failed.
pub(crate) fn who_failed(e: &ProxyError) -> &'static str {
    match e.who {
        Who::Client => "client",
        Who::Upstream => "upstream",
        Who::Internal => "gateway",
    }
}

pub(crate) fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// Removes hop-by-hop headers (and those the `Connection` header names), by the lean path's
/// rule ([`framing::HOP_BY_HOP`], [`framing::names_a_header`]).
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Usually empty (`keep-alive` and `close` name nothing), and then allocates nothing.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| framing::tokens(v.as_bytes()))
        .filter(|t| framing::names_a_header(t))
        .filter_map(|t| HeaderName::from_bytes(t).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for n in framing::HOP_BY_HOP {
        headers.remove(n);
    }
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

/// A failed attempt, with the request when it never left.
pub(crate) struct Failed<R> {
    error: ProxyError,
    unsent: Option<R>,
}

/// One way of sending a request to an endpoint (the general path's or the lean path's); the
/// future is `Send` by declaration, so the connection tasks that await it are.
pub(crate) trait Attempt<R> {
    /// What a sent request gives back.
    type Answer: Answered;
    /// Sends `request` to `endpoint` and reads its answer's head, giving up with
    /// [`SendError::TimedOut`] after `limit`.
    fn send(
        &mut self,
        endpoint: &balance::Endpoint,
        request: R,
        limit: Duration,
    ) -> impl std::future::Future<Output = Result<Self::Answer, SendError<R>>> + Send;
}

/// The general path's attempt: hyper's client on this thread's pool.
struct HyperAttempt {
    connect_timeout: Duration,
}

impl Attempt<Box<Request<OutBody>>> for HyperAttempt {
    type Answer = Response<Body>;

    async fn send(
        &mut self,
        endpoint: &balance::Endpoint,
        request: Box<Request<OutBody>>,
        limit: Duration,
    ) -> Result<Response<Body>, SendError<Box<Request<OutBody>>>> {
        tokio::time::timeout(
            limit,
            pool::send(endpoint.addr, *request, self.connect_timeout),
        )
        .await
        .unwrap_or(Err(SendError::TimedOut))
    }
}

/// An endpoint's answer as far as passive health is concerned.
pub(crate) trait Answered {
    /// Its status code.
    fn status(&self) -> http::StatusCode;
}

impl<B> Answered for Response<B> {
    fn status(&self) -> http::StatusCode {
        Response::status(self)
    }
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
        let hash = cx.hash(state, route, |name| {
            parts.headers.get(name).map(HeaderValue::as_bytes)
        });
        let request = Box::new(Request::from_parts(parts, body));
        let attempt = HyperAttempt {
            connect_timeout: cx.shared.settings.connect_timeout,
        };
        let mut resp = cx
            .send_with_retry(state, hash, may_retry, request, attempt)
            .await?;
        strip_hop_by_hop(resp.headers_mut());
        Ok(resp)
    }
}

impl<'a, U: std::ops::Deref<Target = UpstreamState>> Exchange<'a, U> {
    /// A request on a connection, before its route is known.
    pub(crate) fn new(cx: Context<'a>) -> Self {
        Exchange { cx, upstream: None }
    }

    /// Observe: the upstream's metrics, and the log for a failure.
    pub(crate) fn observe(&self, start: Instant, result: Result<http::StatusCode, &ProxyError>) {
        if let Some(up) = &self.upstream {
            up.metrics.observe(
                result.ok().map(|s| s.as_u16()),
                start.elapsed().as_secs_f64(),
            );
        }
        if let Err(e) = result {
            // No route and no endpoint are counted in metrics; logging each would flood.
            match e.who {
                Who::Client | Who::Internal => tracing::debug!(peer = %self.cx.peer, "{e}"),
                Who::Upstream => tracing::warn!(peer = %self.cx.peer, "{e}"),
            }
        }
    }
}

impl Context<'_> {
    /// Route: the virtual host and route for the request, and the upstream it names.
    pub(crate) fn route<'r>(
        &self,
        routes: &'r routes::RouteTable,
        host: &str,
        path: &str,
    ) -> Result<(&'r crate::config::Route, Arc<UpstreamState>), ProxyError> {
        let upstreams = self.shared.upstreams.load();
        let (route, state) = self.route_in(routes, &upstreams, host, path)?;
        Ok((route, state.clone()))
    }

    /// [`Context::route`] in a given set of upstreams (the lean path keeps one per connection,
    /// so that a request takes no reference count shared by every thread).
    pub(crate) fn route_in<'r, 'u>(
        &self,
        routes: &'r routes::RouteTable,
        upstreams: &'u Upstreams,
        host: &str,
        path: &str,
    ) -> Result<(&'r crate::config::Route, &'u Arc<UpstreamState>), ProxyError> {
        let Some(route) = routes.select(host, path) else {
            self.shared.metrics.no_route.fetch_add(1, Ordering::Relaxed);
            return Err(ProxyError::no_route(host, path));
        };
        upstreams
            .get(&route.upstream)
            .map(|state| (route, state))
            .ok_or_else(|| ProxyError::no_healthy_endpoint(&route.upstream.to_string()))
    }

    /// Pick and send, at most twice: a second endpoint is tried only when the first failure
    /// is one the error says is safe to retry and the request can be sent again (`may_retry`).
    /// `attempt` sends the request to one endpoint; both paths, general and lean, go through
    /// here, so retries, passive health and ejection are one piece of code.
    pub(crate) async fn send_with_retry<R, A: Attempt<R>>(
        &self,
        state: &UpstreamState,
        hash: Option<u64>,
        may_retry: bool,
        request: R,
        mut attempt: A,
    ) -> Result<A::Answer, ProxyError> {
        let mut request = Some(request);
        let mut excluded = None;
        let mut last_error = None;
        for attempt_no in 0..2 {
            let Some(endpoint) = self.pick(state, hash, excluded) else {
                break;
            };
            let Some(req) = request.take() else {
                break;
            };
            let limit = self.shared.settings.upstream_timeout;
            match self
                .send(state, endpoint, attempt.send(endpoint, req, limit))
                .await
            {
                Ok(resp) => return Ok(resp),
                Err(Failed { error, unsent }) if error.retry_safe && may_retry => {
                    request = unsent;
                    excluded = Some(endpoint.addr);
                    if attempt_no == 0 {
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

    /// Consistent hashing: only for upstreams configured with it and routes that say what to
    /// hash; a request without any of the values is balanced as usual.
    pub(crate) fn hash<'h>(
        &self,
        state: &UpstreamState,
        route: &crate::config::Route,
        header: impl Fn(&str) -> Option<&'h [u8]>,
    ) -> Option<u64> {
        if state.set.hashed() && !route.hash_policies.is_empty() {
            balance::request_hash(&route.hash_policies, header, self.peer.ip())
        } else {
            None
        }
    }

    /// Pick: an endpoint that may take traffic, other than `excluded`.
    pub(crate) fn pick<'s>(
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

    /// Send: one attempt on `endpoint` (bounded by the upstream timeout), its answer or failure
    /// recorded in the endpoint's passive health.
    async fn send<R, A: Answered>(
        &self,
        state: &UpstreamState,
        endpoint: &balance::Endpoint,
        sending: impl std::future::Future<Output = Result<A, SendError<R>>>,
    ) -> Result<A, Failed<R>> {
        let name = || format!("{} ({})", endpoint.addr, endpoint.instance_id);
        let in_flight = InFlight::start(&endpoint.health);
        let sent = sending.await;
        drop(in_flight);
        let failed = |error, unsent| Failed { error, unsent };
        match sent {
            Ok(resp) => {
                let outcome = if resp.status().is_server_error() {
                    Outcome::ServerError
                } else {
                    Outcome::Ok
                };
                if self.record(state, endpoint, outcome) {
                    tracing::warn!(endpoint = %name(), upstream = %state.upstream.id, "ejected after consecutive 5xx answers");
                }
                Ok(resp)
            }
            Err(SendError::Connect(e, unsent)) => {
                self.record(state, endpoint, Outcome::ConnectFailure);
                tracing::warn!(endpoint = %name(), upstream = %state.upstream.id, "cannot connect: {e}; ejected");
                Err(failed(ProxyError::connect(&name(), e), Some(unsent)))
            }
            Err(SendError::Failed(e)) => Err(failed(ProxyError::upstream(&name(), e), None)),
            Err(SendError::Request(e)) => Err(failed(ProxyError::bad_request(e), None)),
            Err(SendError::TimedOut) => Err(failed(ProxyError::timeout(&name()), None)),
        }
    }

    /// Passive health: records the attempt's outcome; true (and counted) when it ejected the
    /// endpoint.
    pub(crate) fn record(
        &self,
        state: &UpstreamState,
        endpoint: &balance::Endpoint,
        outcome: Outcome,
    ) -> bool {
        let settings = &self.shared.settings;
        let eject_ms = u64::try_from(settings.eject.as_millis()).unwrap_or(u64::MAX);
        // A good answer ejects nothing, so it does not read the clock.
        let now_ms = match outcome {
            Outcome::Ok => 0,
            _ => self.shared.now_ms(),
        };
        let ejected = endpoint
            .health
            .record_response(outcome, now_ms, eject_ms, settings.max_5xx);
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
    let xff = if headers.contains_key("x-forwarded-for") {
        let mut list = Vec::new();
        let sent = headers.get_all("x-forwarded-for").iter();
        framing::write_forwarded_for(
            &mut list,
            sent.map(HeaderValue::as_bytes),
            peer_ip.as_bytes(),
        );
        HeaderValue::from_maybe_shared(Bytes::from(list)).ok()
    } else {
        Some(peer_ip.clone())
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
