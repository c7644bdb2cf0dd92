//! Keep-alive connections to endpoints, one pool per thread: hyper's low-level
//! `client::conn::http1` senders for the general path, and plain TCP streams for the lean path
//! (`h1`). Each proxy thread runs its own single-threaded event loop, and a request and
//! its answer are served on the thread that accepted the client, so a thread-local pool needs no
//! lock and no cross-thread wake-ups: a connection is checked out when a request is sent and
//! checked back in when its answer's body ends (most recently used first, so few stay warm).
//! A request that a reused connection did not send (it was closing) goes once more on a fresh
//! connection, as hyper's pooled client does.

use crate::body::OutBody;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::thread::LocalKey;
use std::time::{Duration, Instant};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// How much of an endpoint's answer head is read without finding its end before the answer
/// is refused (502), on either path (hyper's client alone would read about 400 KiB).
pub const MAX_ANSWER_HEAD: usize = 64 * 1024;
/// Idle connections are closed after this long unused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle connections kept per endpoint and thread.
const MAX_IDLE_PER_ENDPOINT: usize = 1024;

type Sender = SendRequest<OutBody>;

/// A connection an idle pool can hold.
pub trait Reusable {
    /// True when the endpoint has closed it (so it must not be used again).
    fn is_closed(&self) -> bool;
}

impl Reusable for Sender {
    fn is_closed(&self) -> bool {
        SendRequest::is_closed(self)
    }
}

impl Reusable for TcpStream {
    /// Whether the event loop has seen the endpoint close the stream, asked without a system
    /// call: an idle stream nobody reads learns of the endpoint's FIN only from epoll.
    fn is_closed(&self) -> bool {
        let ready = std::pin::pin!(self.ready(Interest::READABLE));
        match ready.poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Ok(r)) => r.is_read_closed() || r.is_error(),
            Poll::Ready(Err(_)) => true,
            Poll::Pending => false,
        }
    }
}

struct Idle<C> {
    conn: C,
    since: Instant,
}

struct Pool<C> {
    /// Keyed with FxHash: every request looks its endpoint up here, and the keys are
    /// addresses from discovery, not from clients.
    idle: HashMap<SocketAddr, Vec<Idle<C>>, rustc_hash::FxBuildHasher>,
    swept: Option<Instant>,
}

impl<C> Default for Pool<C> {
    fn default() -> Self {
        Pool {
            idle: HashMap::default(),
            swept: None,
        }
    }
}

thread_local! {
    static SENDERS: RefCell<Pool<Sender>> = RefCell::default();
    static STREAMS: RefCell<Pool<TcpStream>> = RefCell::default();
}

impl<C: Reusable> Pool<C> {
    fn take(&mut self, addr: SocketAddr) -> Option<C> {
        let idle = self.idle.get_mut(&addr)?;
        while let Some(idle) = idle.pop() {
            if !idle.conn.is_closed() {
                return Some(idle.conn);
            }
        }
        None
    }

    fn put(&mut self, addr: SocketAddr, conn: C, now: Instant) {
        if self
            .swept
            .is_none_or(|t| now.duration_since(t) > IDLE_TIMEOUT / 2)
        {
            self.sweep(now);
        }
        let idle = self.idle.entry(addr).or_default();
        if idle.len() < MAX_IDLE_PER_ENDPOINT {
            idle.push(Idle { conn, since: now });
        }
    }

    /// Closes connections idle too long, including those to endpoints no longer in use.
    fn sweep(&mut self, now: Instant) {
        self.swept = Some(now);
        for idle in self.idle.values_mut() {
            idle.retain(|c| now.duration_since(c.since) < IDLE_TIMEOUT && !c.conn.is_closed());
        }
        self.idle.retain(|_, idle| !idle.is_empty());
    }
}

fn take<C: Reusable + 'static>(
    pool: &'static LocalKey<RefCell<Pool<C>>>,
    addr: SocketAddr,
) -> Option<C> {
    pool.try_with(|p| p.try_borrow_mut().ok()?.take(addr))
        .ok()
        .flatten()
}

fn put<C: Reusable + 'static>(
    pool: &'static LocalKey<RefCell<Pool<C>>>,
    addr: SocketAddr,
    conn: C,
) {
    let _ = pool.try_with(|p| {
        if let Ok(mut pool) = p.try_borrow_mut() {
            pool.put(addr, conn, Instant::now());
        }
    });
}

/// An idle stream to `addr` from this thread's pool of the lean path.
pub fn take_stream(addr: SocketAddr) -> Option<TcpStream> {
    take(&STREAMS, addr)
}

/// Checks a stream whose last answer was read whole back into this thread's pool.
pub fn put_stream(addr: SocketAddr, stream: TcpStream) {
    put(&STREAMS, addr, stream);
}

/// A new TCP connection to `addr` within `timeout`, without Nagle's delay.
pub async fn connect_stream(addr: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(stream) => stream?,
        Err(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connect timed out",
            ))
        }
    };
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Why a request got no answer; `R` is the request as the path holds it.
#[derive(Debug)]
pub enum SendError<R> {
    /// No connection could be opened: the request never left, and is given back.
    Connect(std::io::Error, R),
    /// The connection failed while the request was sent or answered.
    Failed(Box<dyn std::error::Error + Send + Sync>),
    /// The client's own body broke off or was malformed while it was relayed: the endpoint is
    /// not to blame.
    Request(Box<dyn std::error::Error + Send + Sync>),
    /// No answer's head within the upstream timeout.
    TimedOut,
}

/// Whose fault a failed exchange on hyper's client connection was. The only body the gateway
/// gives hyper to send is the client's, whose errors are hyper's own: hyper reports one as a
/// user body error caused by it.
fn failure<R>(e: hyper::Error) -> SendError<R> {
    use std::error::Error as _;
    match e.source().and_then(|c| c.downcast_ref::<hyper::Error>()) {
        Some(body) if e.is_user() => {
            // hyper's text names only the kind of failure; its cause says what was wrong.
            let text = match body.source() {
                Some(cause) => format!("{body}: {}", what_was_wrong(&cause.to_string())),
                None => body.to_string(),
            };
            SendError::Request(text.into())
        }
        _ => SendError::Failed(e.into()),
    }
}

/// A cause's first clause: some of hyper's (a malformed trailer's) quote the client's bytes
/// after a colon, and this text is logged, where what a client sent has no place.
fn what_was_wrong(cause: &str) -> &str {
    cause.split_once(':').map_or(cause, |(clause, _)| clause)
}

/// Sends `req` (origin-form URI, `Host` set) to `addr` on an idle connection of this thread's
/// pool or a new one; the answer's body checks the connection back in when it ends.
pub async fn send(
    addr: SocketAddr,
    req: Request<OutBody>,
    connect_timeout: Duration,
) -> Result<Response<crate::body::Body>, SendError<Box<Request<OutBody>>>> {
    let mut req = req;
    while let Some(mut sender) = take(&SENDERS, addr) {
        if sender.ready().await.is_err() {
            continue;
        }
        match sender.try_send_request(req).await {
            Ok(resp) => return Ok(answer(addr, sender, resp)),
            // The connection was closing and never took the request: a fresh one gets it.
            Err(mut e) => match e.take_message() {
                Some(unsent) => req = unsent,
                None => return Err(failure(e.into_error())),
            },
        }
    }
    let mut sender = match connect(addr, connect_timeout).await {
        Ok(s) => s,
        Err(e) => return Err(SendError::Connect(e, Box::new(req))),
    };
    match sender.send_request(req).await {
        Ok(resp) => Ok(answer(addr, sender, resp)),
        Err(e) => Err(failure(e)),
    }
}

/// A new connection, its protocol driven by a task of its own on this thread's event loop.
async fn connect(addr: SocketAddr, timeout: Duration) -> std::io::Result<Sender> {
    let stream = connect_stream(addr, timeout).await?;
    let (sender, conn) = http1::Builder::new()
        .max_buf_size(MAX_ANSWER_HEAD)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(%addr, "endpoint connection ended: {e}");
        }
    });
    Ok(sender)
}

fn answer(
    addr: SocketAddr,
    sender: Sender,
    resp: Response<Incoming>,
) -> Response<crate::body::Body> {
    resp.map(|body| {
        let mut pooled = PooledBody {
            body,
            home: Some((addr, sender)),
        };
        // No body to read (HEAD, 204, 304): the connection is free now.
        pooled.check_in_at_end();
        crate::body::Body::Stream(pooled)
    })
}

/// An endpoint's answer body; its connection goes back to the pool once the body has ended
/// (and is closed if the body is dropped before).
#[derive(Debug)]
pub struct PooledBody {
    body: Incoming,
    home: Option<(SocketAddr, Sender)>,
}

impl PooledBody {
    fn check_in_at_end(&mut self) {
        if self.body.is_end_stream() {
            if let Some((addr, sender)) = self.home.take() {
                put(&SENDERS, addr, sender);
            }
        }
    }
}

impl HttpBody for PooledBody {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<bytes::Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => {
                if let Some((addr, sender)) = this.home.take() {
                    put(&SENDERS, addr, sender);
                }
            }
            Poll::Ready(Some(Ok(_))) => this.check_in_at_end(),
            Poll::Ready(Some(Err(_))) => this.home = None,
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::what_was_wrong;

    #[test]
    fn a_broken_body_is_named_without_quoting_what_the_client_sent() {
        assert_eq!(
            what_was_wrong("Invalid header value: \"Bearer s3cret\""),
            "Invalid header value"
        );
        assert_eq!(
            what_was_wrong("Invalid chunk size line: Invalid Size"),
            "Invalid chunk size line"
        );
        assert_eq!(what_was_wrong("unexpected EOF"), "unexpected EOF");
    }
}
