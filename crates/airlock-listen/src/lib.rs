//! How every Airlock listener faces a network. The console's address is on every instance's user
//! data and the gateway and agent endpoint take connections too, so each listener must hold up
//! against whoever can reach it: a connection sends a request's headers within the header timeout
//! (and a kept-alive one its next request), and only so many connections are served at once, so
//! slow or idle connections cannot pile up until the process runs out of them. TLS (reloadable)
//! and the PROXY protocol from trusted load balancers are options of the same listener.

mod proxy_protocol;
mod tls;

pub use ipnet::IpNet;
pub use proxy_protocol::{ProxyHeaderError, ProxyProtocol};
pub use tls::{Tls, TlsError};

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tower::ServiceExt;

/// The limits every listener applies to the connections it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long a connection may take to send a request's headers, and a kept-alive one to
    /// start its next request.
    pub header_timeout: Duration,
    /// How many connections are served at once; beyond it the kernel's backlog waits.
    pub max_connections: usize,
    /// How long a TLS client may take to finish its handshake.
    pub handshake_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(30),
            max_connections: 4096,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// How a listener serves: its limits, TLS and PROXY protocol.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Timeouts and the connection cap.
    pub limits: Limits,
    /// Serve HTTPS with this certificate (reloadable) instead of plain HTTP.
    pub tls: Option<Arc<Tls>>,
    /// Take client addresses from PROXY headers of these balancers.
    pub proxy_protocol: Option<ProxyProtocol>,
}

impl Options {
    /// Plain HTTP with these limits.
    pub fn new(limits: Limits) -> Options {
        Options {
            limits,
            ..Options::default()
        }
    }
}

/// Whether a listener on `addr` may serve plain HTTP: on loopback always; elsewhere passwords,
/// tokens and refresh secrets would cross a network in clear text, so only when the operator
/// says so (a TLS-terminating balancer in front, say).
pub fn plain_http_allowed(addr: SocketAddr, insecure_http: bool) -> bool {
    addr.ip().to_canonical().is_loopback() || insecure_http
}

/// Serves `app` on `listener` until the process ends. Handlers see the peer's address as
/// `ConnectInfo<SocketAddr>`.
pub async fn serve(
    app: Router,
    listener: tokio::net::TcpListener,
    options: Options,
) -> std::io::Result<()> {
    serve_until(
        app,
        listener,
        options,
        std::future::pending(),
        Duration::ZERO,
    )
    .await
}

/// Serves like [`serve`] until `shutdown` resolves; then accepts nothing more, asks every
/// connection to close once its request in flight is answered (HTTP/1.1 stops keep-alive, h2
/// sends GOAWAY), and returns when they have, or after `drain_timeout`.
pub async fn serve_until(
    app: Router,
    listener: tokio::net::TcpListener,
    options: Options,
    shutdown: impl std::future::Future<Output = ()>,
    drain_timeout: Duration,
) -> std::io::Result<()> {
    let max = options.limits.max_connections;
    let connections = Arc::new(tokio::sync::Semaphore::new(max));
    let options = Arc::new(options);
    let (closing, closed) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        // At the cap, stop accepting until a connection ends (the kernel's backlog waits).
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = accept(&listener, &connections) => accepted,
        };
        let Some((permit, stream, peer)) = accepted else {
            continue;
        };
        let app = app.clone();
        let options = options.clone();
        let closed = closed.clone();
        tokio::spawn(async move {
            serve_connection(app, stream, peer, &options, closed).await;
            drop(permit);
        });
    }
    drop(listener);
    closing.send_replace(true);
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    if tokio::time::timeout(drain_timeout, connections.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(timeout = ?drain_timeout, "connections still open after the drain timeout");
    }
    Ok(())
}

/// The next connection, once one may be served; `None` after an accept error (out of file
/// descriptors and the like), having waited a little instead of spinning.
async fn accept(
    listener: &tokio::net::TcpListener,
    connections: &Arc<tokio::sync::Semaphore>,
) -> Option<(
    tokio::sync::OwnedSemaphorePermit,
    tokio::net::TcpStream,
    SocketAddr,
)> {
    let permit = connections.clone().acquire_owned().await.ok()?;
    match listener.accept().await {
        Ok((stream, peer)) => Some((permit, stream, peer)),
        Err(e) => {
            tracing::warn!(error = %e, "cannot accept a connection");
            tokio::time::sleep(Duration::from_millis(100)).await;
            None
        }
    }
}

/// The PROXY header (within the header timeout), the TLS handshake (within the handshake
/// timeout), then HTTP.
async fn serve_connection(
    app: Router,
    mut stream: tokio::net::TcpStream,
    peer: SocketAddr,
    options: &Options,
    closed: tokio::sync::watch::Receiver<bool>,
) {
    let limits = options.limits;
    let client = match &options.proxy_protocol {
        None => peer,
        Some(proxy) => {
            let header = proxy.client_address(&mut stream, peer);
            match tokio::time::timeout(limits.header_timeout, header).await {
                Ok(Ok(client)) => client,
                Ok(Err(e)) => {
                    tracing::warn!(peer = %peer, error = %e, "dropped a connection from a trusted balancer");
                    return;
                }
                Err(_) => {
                    tracing::debug!(peer = %peer, "no PROXY header within the header timeout");
                    return;
                }
            }
        }
    };
    let Some(tls) = &options.tls else {
        return serve_http(app, stream, client, limits, closed).await;
    };
    match tokio::time::timeout(limits.handshake_timeout, tls.acceptor().accept(stream)).await {
        Ok(Ok(stream)) => serve_http(app, stream, client, limits, closed).await,
        Ok(Err(e)) => tracing::debug!(peer = %client, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(peer = %client, "no TLS handshake within the handshake timeout"),
    }
}

/// HTTP/1.1 or h2 on an accepted (and maybe decrypted) stream; handlers see `client`.
async fn serve_http<S>(
    app: Router,
    stream: S,
    client: SocketAddr,
    limits: Limits,
    mut closed: tokio::sync::watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let started = Arc::new(AtomicBool::new(false));
    let seen = started.clone();
    let service =
        hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            seen.store(true, Ordering::Relaxed);
            request.extensions_mut().insert(ConnectInfo(client));
            app.clone().oneshot(request.map(axum::body::Body::new))
        });
    let builder = builder(limits);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let ended = tokio::select! {
        ended = conn.as_mut() => ended,
        () = first_request_deadline(limits.header_timeout, &started) => {
            tracing::debug!(peer = %client, "no request within the header timeout; closed");
            return;
        }
        () = closing(&mut closed) => {
            // Draining: finish the request in flight, then close.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(peer = %client, error = %e, "connection ended");
    }
}

/// Resolves once the listener drains (never if it is gone without draining).
async fn closing(closed: &mut tokio::sync::watch::Receiver<bool>) {
    if closed.wait_for(|c| *c).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Resolves once `timeout` has passed without a first request (`started` unset). hyper's own
/// header timeout starts only once it knows the protocol, so a client that sends nothing (or
/// part of the h2 preface, or the preface and no request) would otherwise hold its connection
/// for good; after the first request hyper's timers take over.
pub async fn first_request_deadline(timeout: Duration, started: &AtomicBool) {
    tokio::time::sleep(timeout).await;
    if started.load(Ordering::Relaxed) {
        std::future::pending::<()>().await;
    }
}

/// How much of an HTTP/1.1 request head a listener reads without finding its end before it
/// answers 431 (hyper's own default is about 400 KiB; h2 header lists stop at hyper's 16 KiB).
/// hyper reads at most this much at a time, so a connection buffers under twice this of a head,
/// and with the connection cap clients can make a listener keep at most 4,096 × 128 KiB
/// (512 MiB) of heads, not the 3 GiB hyper's default would allow.
pub const MAX_REQUEST_HEAD: usize = 64 * 1024;

/// hyper's HTTP/1.1 and h2 server: the header timeout on its own timer for HTTP/1.1 (each
/// request, and a kept-alive connection's wait for the next), heads up to [`MAX_REQUEST_HEAD`],
/// keep-alive pings that close a silent h2 connection.
pub fn builder(limits: Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_REQUEST_HEAD);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(limits.header_timeout))
        .keep_alive_timeout(limits.header_timeout);
    builder
}
