//! The lean HTTP/1.1 path: plain keep-alive traffic relayed as bytes, the way nginx and pingora
//! do it, because hyper's general machinery (a header map per message on both connections, a
//! task and channel per endpoint connection) cost more CPU per request than the proxying itself.
//!
//! One task per client connection does everything in order: read a request head (and a small
//! body) into the connection's buffer and parse it in place with `httparse`; route and pick as
//! the general path does ([`crate::proxy`]: retries, passive health, ejection, hashing and
//! metrics are the same code); write the endpoint's head and body with one system call on a
//! pooled TCP stream; read the answer's head, write the client's head and the body as it
//! arrives. Nothing is allocated per request once a connection's buffers have grown.
//!
//! Whatever is unusual — HTTP/1.0, `Transfer-Encoding` or `Expect` on a request, a body over
//! [`framing::MAX_BODY`], an absolute-form target, an h2 preface, a head that does not parse or
//! does not fit — goes to hyper with the bytes read so far, and hyper serves the rest of the
//! connection exactly as before. So the lean path only ever meets requests whose meaning is
//! plain, and every error answer for a malformed request is still hyper's.

use crate::error::ProxyError;
use crate::framing::{self, BodyEnd, ChunkedDecoder, RequestInfo, ResponseInfo};
use crate::pool::{self, SendError};
use crate::proxy::{self, Answered, Connection, Context, Exchange, Watchers};
use crate::routes;
use crate::runtime::{Live, UpstreamState};
use bytes::{Buf, Bytes, BytesMut};
use hyper_util::rt::TokioIo;
use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

/// Headers a message may have on the lean path (more go to hyper, which allows 100).
const MAX_HEADERS: usize = 64;
/// Headers an endpoint's answer may have, as hyper allows.
const MAX_ANSWER_HEADERS: usize = 100;
/// A request head longer than this goes to hyper, which applies its own limit.
const MAX_HEAD: usize = 16 * 1024;
/// A connection's buffers start this large (and go back to it when the connection waits).
const BUFFER: usize = 4096;
/// How much is read from an endpoint at a time.
const READ_SIZE: usize = 16 * 1024;
/// Bodies of known length up to this size are read whole before they are relayed.
const WHOLE_BODY: usize = 64 * 1024;

/// A client connection's buffers for its exchanges (besides its input), kept across its
/// requests so that a request allocates nothing once they have grown.
struct Buffers {
    /// The request head as the endpoint gets it (the body stays in the client input buffer).
    request: Vec<u8>,
    /// What the endpoint sent.
    answer: BytesMut,
    /// What goes to the client next.
    reply: Vec<u8>,
}

impl Buffers {
    fn new() -> Self {
        Buffers {
            request: Vec::with_capacity(BUFFER),
            answer: BytesMut::with_capacity(READ_SIZE),
            reply: Vec::with_capacity(BUFFER),
        }
    }

    /// Back to the starting sizes, between requests.
    fn shrink(&mut self) {
        if self.request.capacity() > BUFFER
            || self.reply.capacity() > BUFFER
            || self.answer.capacity() > READ_SIZE
        {
            *self = Buffers::new();
        }
    }
}

/// What to do after looking at the connection's input.
enum Step {
    /// A request was served; keep the connection if true. The input's first `usize` bytes
    /// were that request.
    Served(bool, usize),
    /// The request is not whole yet.
    More,
    /// Hand the connection to hyper.
    Unusual,
}

/// Serves a client connection until it closes, or hands it to hyper at its first unusual
/// request.
pub(crate) async fn serve<S>(mut io: S, connection: Arc<Connection>, watchers: Watchers)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (watcher, closing) = watchers;
    // Registered once: waiting on a fresh `changed()` for every request would lock the
    // channel's waiter list twice a request.
    let mut stopping = {
        let mut closing = closing.clone();
        Box::pin(async move {
            let _ = closing.changed().await;
        })
    };
    let header_timeout = connection.shared.settings.limits.header_timeout;
    // What the client sent that is not served yet.
    let mut input = BytesMut::with_capacity(BUFFER);
    let mut bufs = Buffers::new();
    // The configuration and endpoint sets as this connection last saw them: checking that they
    // are current is one atomic load, where a guard per request would take shared counts.
    let mut live = arc_swap::Cache::new(&connection.shared.live);
    let mut upstreams = arc_swap::Cache::new(&connection.shared.upstreams);
    // The next request's head must arrive by `deadline`. The connection has one timer, for this
    // and for its endpoints' answers ([`within`]); it is set no later than the deadline that
    // matters and moved on only when it fires early, so a busy connection does not touch the
    // timer wheel for every request.
    let mut deadline = tokio::time::Instant::now() + header_timeout;
    let timer = tokio::time::sleep_until(deadline);
    tokio::pin!(timer);
    loop {
        let step = {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&input) {
                Ok(httparse::Status::Complete(head_len)) => match framing::check_request(&req) {
                    Ok(mut info) if input.len() >= head_len + info.body_len => {
                        let used = head_len + info.body_len;
                        info.close |= closing.has_changed().unwrap_or(true);
                        let close = info.close;
                        let request = Request {
                            head: &req,
                            body: input.get(head_len..used).unwrap_or_default(),
                            info,
                        };
                        let published = Published {
                            live: live.load(),
                            upstreams: upstreams.load(),
                        };
                        let cx = connection.context();
                        let kept =
                            exchange(&mut io, cx, published, request, &mut bufs, timer.as_mut())
                                .await;
                        Step::Served(kept && !close, used)
                    }
                    Ok(_) => Step::More,
                    Err(_) => Step::Unusual,
                },
                Ok(httparse::Status::Partial) if input.len() < MAX_HEAD => Step::More,
                _ => Step::Unusual,
            }
        };
        match step {
            Step::Served(keep, used) => {
                connection.started.store(true, Ordering::Relaxed);
                input.advance(used);
                if !keep {
                    let _ = io.shutdown().await;
                    return;
                }
                deadline = tokio::time::Instant::now() + header_timeout;
                // An exchange may have moved the timer past the new deadline (a slow answer
                // with an upstream timeout longer than the header timeout).
                if timer.deadline() > deadline {
                    timer.as_mut().reset(deadline);
                }
            }
            Step::More => {
                if input.capacity() - input.len() < 1024 {
                    input.reserve(BUFFER);
                }
                tokio::select! {
                    biased;
                    read = io.read_buf(&mut input) => match read {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    },
                    () = &mut timer => {
                        if tokio::time::Instant::now() >= deadline {
                            tracing::debug!(peer = %connection.context().peer, "no request within the header timeout; closed");
                            return;
                        }
                        timer.as_mut().reset(deadline);
                        // Waiting: what a large message grew is given back, at most once a
                        // header timeout, so kept-alive connections hold little memory.
                        bufs.shrink();
                        if input.is_empty() && input.capacity() > BUFFER {
                            input = BytesMut::with_capacity(BUFFER);
                        }
                    }
                    () = &mut stopping, if input.is_empty() => return,
                }
            }
            Step::Unusual => {
                // hyper's watcher takes over; the gateway waits for these no more, and the
                // snapshots go.
                drop((closing, stopping, live, upstreams));
                let io = Rewind {
                    prefix: input.split().freeze(),
                    inner: io,
                };
                return proxy::serve_http(TokioIo::new(io), connection, watcher).await;
            }
        }
    }
}

/// The configuration and endpoint sets a request is served with.
#[derive(Clone, Copy)]
struct Published<'p> {
    live: &'p Live,
    upstreams: &'p proxy::Upstreams,
}

/// A request the lean path serves: its parsed head, its body (read whole) and what
/// [`framing::check_request`] found.
struct Request<'r, 'h, 'b> {
    head: &'r httparse::Request<'h, 'b>,
    body: &'b [u8],
    info: RequestInfo<'b>,
}

impl Request<'_, '_, '_> {
    fn is_head(&self) -> bool {
        self.head.method == Some("HEAD")
    }
}

/// One request from its arrival to the end of its answer; false when the client connection
/// cannot be used again (the answer broke off, or the client went away).
async fn exchange<S>(
    io: &mut S,
    cx: Context<'_>,
    published: Published<'_>,
    req: Request<'_, '_, '_>,
    bufs: &mut Buffers,
    timer: Pin<&mut Sleep>,
) -> bool
where
    S: AsyncWrite + Unpin,
{
    let start = Instant::now();
    let mut exchange = Exchange::new(cx);
    let clock = Clock {
        timer,
        start: Some(start.into()),
    };
    let sent = forward(&mut exchange, published, &req, bufs, clock).await;
    exchange.observe(start, sent.as_ref().map(Answered::status));
    let relayed = match sent {
        Ok(answer) => relay(io, answer, bufs).await,
        Err(e) => {
            bufs.reply.clear();
            framing::write_own_response(
                &mut bufs.reply,
                e.status,
                proxy::who_failed(&e),
                &proxy::error_text(&e),
                req.is_head(),
                req.info.close,
                &http_date(),
            );
            io.write_all(&bufs.reply).await.is_ok()
        }
    };
    relayed && io.flush().await.is_ok()
}

/// Route, rewrite, pick and send: the endpoint's answer head is read into `bufs.answer` and
/// the client's head made in `bufs.reply`.
async fn forward<'p>(
    exchange: &mut Exchange<'_, &'p UpstreamState>,
    published: Published<'p>,
    req: &Request<'_, '_, '_>,
    bufs: &mut Buffers,
    clock: Clock<'_>,
) -> Result<Answer, ProxyError> {
    let cx = exchange.cx;
    let target = req.head.path.unwrap_or("/");
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    let host = req.info.host.unwrap_or_default();
    let (route, state) = cx.route_in(&published.live.routes, published.upstreams, host, path)?;
    let state: &UpstreamState = exchange.upstream.insert(state);
    let rewritten = if routes::rewrites(route) {
        let to = routes::rewrite(route, path, query);
        http::uri::PathAndQuery::try_from(to.as_str()).map_err(ProxyError::bad_request)?;
        Some(to)
    } else {
        None
    };
    let target = rewritten.as_deref().unwrap_or(target);
    let hash = cx.hash(state, route, |name| {
        req.head
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    });
    let method = req.head.method.unwrap_or_default();
    let idempotent = http::Method::from_bytes(method.as_bytes())
        .map(|m| proxy::is_idempotent(&m))
        .unwrap_or(false);
    bufs.request.clear();
    framing::write_request_head(
        &mut bufs.request,
        req.head,
        target.as_bytes(),
        cx.peer_ip.as_bytes(),
        cx.scheme == "https",
    );
    let attempt = LeanAttempt {
        wanted: Wanted {
            head: req.is_head(),
            close: req.info.close,
            retry_reused: idempotent,
            connect_timeout: cx.shared.settings.connect_timeout,
        },
        answer: &mut bufs.answer,
        reply: &mut bufs.reply,
        clock,
    };
    let request = Outgoing {
        head: bufs.request.as_slice(),
        body: req.body,
    };
    cx.send_with_retry(state, hash, idempotent, request, attempt)
        .await
}

/// The lean path's attempt: the request's bytes on a pooled stream, the answer's head read
/// into the connection's buffer.
struct LeanAttempt<'a> {
    wanted: Wanted,
    answer: &'a mut BytesMut,
    reply: &'a mut Vec<u8>,
    clock: Clock<'a>,
}

/// A request as the endpoint gets it: the rewritten head, and the body where the client's
/// bytes lie (both leave in one vectored write, the body uncopied).
#[derive(Clone, Copy)]
struct Outgoing<'r> {
    head: &'r [u8],
    body: &'r [u8],
}

impl<'r> proxy::Attempt<Outgoing<'r>> for LeanAttempt<'_> {
    type Answer = Answer;

    async fn send(
        &mut self,
        endpoint: &crate::balance::Endpoint,
        request: Outgoing<'r>,
        limit: Duration,
    ) -> Result<Answer, SendError<Outgoing<'r>>> {
        let deadline = self.clock.attempt_start() + limit;
        let sending = send(endpoint.addr, request, self.wanted, self.answer, self.reply);
        within(self.clock.timer.as_mut(), deadline, sending)
            .await
            .unwrap_or(Err(SendError::TimedOut))
    }
}

/// What bounds an exchange's attempts in time: the connection's timer, and when the exchange
/// started (its first attempt's start, read once for the metrics and the deadline alike).
struct Clock<'a> {
    timer: Pin<&'a mut Sleep>,
    start: Option<tokio::time::Instant>,
}

impl Clock<'_> {
    fn attempt_start(&mut self) -> tokio::time::Instant {
        self.start.take().unwrap_or_else(tokio::time::Instant::now)
    }
}

/// Runs `work` until `deadline` on the connection's one timer: `None` when it ran out. The timer
/// is brought forward to the deadline if it was set later, and moved on when it fires before
/// it, so work that ends in time leaves the timer wheel alone.
async fn within<F: Future>(
    mut timer: Pin<&mut Sleep>,
    deadline: tokio::time::Instant,
    work: F,
) -> Option<F::Output> {
    if timer.deadline() > deadline {
        timer.as_mut().reset(deadline);
    }
    let mut work = std::pin::pin!(work);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = work.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        while timer.as_mut().poll(cx).is_ready() {
            if tokio::time::Instant::now() >= deadline {
                return Poll::Ready(None);
            }
            timer.as_mut().reset(deadline);
        }
        Poll::Pending
    })
    .await
}

/// What an attempt needs to know of the request beyond its bytes.
#[derive(Clone, Copy)]
struct Wanted {
    /// It is a HEAD request (its answer has no body).
    head: bool,
    /// The client connection closes after the answer.
    close: bool,
    /// A kept-alive connection that closed without answering may be replaced by a fresh one
    /// (the request is idempotent).
    retry_reused: bool,
    connect_timeout: Duration,
}

/// An endpoint's answer whose head has been read (and the client's head made).
struct Answer {
    stream: TcpStream,
    addr: SocketAddr,
    status: http::StatusCode,
    /// Where the body starts in the answer buffer.
    head_len: usize,
    info: ResponseInfo,
}

impl Answered for Answer {
    fn status(&self) -> http::StatusCode {
        self.status
    }
}

/// How a round trip on a connection failed.
enum Trip {
    /// Nothing came back: on a kept-alive connection, the endpoint had closed it.
    Unanswered(io::Error),
    /// It broke off, or sent something that is not an answer.
    Failed(io::Error),
}

/// Sends `request` to `addr` on a pooled stream or a fresh one, and reads the answer's head.
async fn send<'r>(
    addr: SocketAddr,
    request: Outgoing<'r>,
    wanted: Wanted,
    answer: &mut BytesMut,
    reply: &mut Vec<u8>,
) -> Result<Answer, SendError<Outgoing<'r>>> {
    while let Some(mut stream) = pool::take_stream(addr) {
        match round_trip(&mut stream, request, wanted, answer, reply).await {
            Ok((status, head_len, info)) => {
                return Ok(answered(stream, addr, status, head_len, info))
            }
            Err(Trip::Unanswered(_)) if wanted.retry_reused => continue,
            Err(Trip::Unanswered(e) | Trip::Failed(e)) => return Err(SendError::Failed(e.into())),
        }
    }
    let mut stream = match pool::connect_stream(addr, wanted.connect_timeout).await {
        Ok(s) => s,
        Err(e) => return Err(SendError::Connect(e, request)),
    };
    match round_trip(&mut stream, request, wanted, answer, reply).await {
        Ok((status, head_len, info)) => Ok(answered(stream, addr, status, head_len, info)),
        Err(Trip::Unanswered(e) | Trip::Failed(e)) => Err(SendError::Failed(e.into())),
    }
}

fn answered(
    stream: TcpStream,
    addr: SocketAddr,
    status: http::StatusCode,
    head_len: usize,
    info: ResponseInfo,
) -> Answer {
    Answer {
        stream,
        addr,
        status,
        head_len,
        info,
    }
}

/// Writes the request and reads the final answer's head (informational answers are read and
/// dropped, as the general path does), making the client's head in `reply`.
async fn round_trip(
    stream: &mut TcpStream,
    request: Outgoing<'_>,
    wanted: Wanted,
    answer: &mut BytesMut,
    reply: &mut Vec<u8>,
) -> Result<(http::StatusCode, usize, ResponseInfo), Trip> {
    answer.clear();
    stream
        .write_all_buf(&mut Buf::chain(request.head, request.body))
        .await
        .map_err(Trip::Unanswered)?;
    let mut received = false;
    loop {
        if head_end(answer).is_some() {
            let mut headers = [httparse::EMPTY_HEADER; MAX_ANSWER_HEADERS];
            let mut resp = httparse::Response::new(&mut headers);
            let head_len = match resp.parse(answer) {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) => return Err(failed("a malformed answer head")),
                Err(e) => return Err(failed(&format!("a malformed answer head ({e})"))),
            };
            let code = resp.code.unwrap_or(0);
            match code {
                101 => return Err(failed("a protocol switch nobody asked for")),
                100..=199 => {
                    answer.advance(head_len);
                    continue;
                }
                _ => {}
            }
            let status = http::StatusCode::from_u16(code)
                .map_err(|_| failed("an answer without a valid status"))?;
            let info = framing::check_response(&resp, wanted.head)
                .map_err(|e| failed(&format!("an answer that cannot be relayed: {e}")))?;
            reply.clear();
            framing::write_response_head(reply, &resp, info.end, wanted.close, http_date);
            return Ok((status, head_len, info));
        }
        if answer.len() >= pool::MAX_ANSWER_HEAD {
            return Err(failed("an answer head over 64 KiB"));
        }
        answer.reserve(READ_SIZE);
        match stream.read_buf(answer).await {
            Ok(0) if !received => {
                return Err(Trip::Unanswered(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the connection closed without an answer",
                )))
            }
            Ok(0) => return Err(failed("the connection closed in the middle of the answer")),
            Ok(_) => received = true,
            Err(e) if !received => return Err(Trip::Unanswered(e)),
            Err(e) => return Err(Trip::Failed(e)),
        }
    }
}

fn failed(what: &str) -> Trip {
    Trip::Failed(io::Error::new(io::ErrorKind::InvalidData, what.to_owned()))
}

/// Where the head in `buf` ends (after its empty line), once it has.
fn head_end(buf: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(at) = buf.get(from..)?.iter().position(|b| *b == b'\n') {
        let lf = from + at;
        match buf.get(lf + 1..) {
            Some([b'\n', ..]) => return Some(lf + 2),
            Some([b'\r', b'\n', ..]) => return Some(lf + 3),
            _ => from = lf + 1,
        }
    }
    None
}

/// The answer's body to the client as it arrives, after the head made in `bufs.reply`; the
/// endpoint's stream goes back to the pool when the body ended cleanly. False when the answer
/// broke off (the client then sees its connection close, as with hyper).
async fn relay<S>(io: &mut S, mut answer: Answer, bufs: &mut Buffers) -> bool
where
    S: AsyncWrite + Unpin,
{
    let relayed = match answer.info.end {
        BodyEnd::Empty => relay_empty(io, &answer, bufs).await,
        BodyEnd::Length(n) => relay_length(io, &mut answer, n, bufs).await,
        BodyEnd::Chunked => relay_chunked(io, &mut answer, bufs).await,
        BodyEnd::Close => relay_until_close(io, &mut answer, bufs).await,
    };
    match relayed {
        Ok(clean) => {
            if clean && answer.info.reusable {
                pool::put_stream(answer.addr, answer.stream);
            }
            true
        }
        Err(e) => {
            tracing::warn!(endpoint = %answer.addr, "answer broke off: {e}");
            false
        }
    }
}

/// Ok(true) when nothing followed the answer, so its stream can carry another request.
type Relayed = io::Result<bool>;

async fn relay_empty<S: AsyncWrite + Unpin>(
    io: &mut S,
    answer: &Answer,
    bufs: &Buffers,
) -> Relayed {
    io.write_all(&bufs.reply).await?;
    Ok(bufs.answer.len() == answer.head_len)
}

async fn relay_length<S: AsyncWrite + Unpin>(
    io: &mut S,
    answer: &mut Answer,
    length: u64,
    bufs: &mut Buffers,
) -> Relayed {
    // A body up to WHOLE_BODY is read whole first, so that head and body leave in one write
    // (and the client reads them in one).
    if let Some(end) = usize::try_from(length)
        .ok()
        .filter(|n| *n <= WHOLE_BODY)
        .map(|n| answer.head_len + n)
    {
        while bufs.answer.len() < end {
            let left = end - bufs.answer.len();
            bufs.answer.reserve(left);
            read_some(&mut answer.stream, &mut bufs.answer, left as u64).await?;
        }
    }
    let first = bufs.answer.get(answer.head_len..).unwrap_or_default();
    let take = usize::try_from(length).map_or(first.len(), |n| n.min(first.len()));
    // One vectored write of the head and the body where it lies, not a copy of the body.
    let body = first.get(..take).unwrap_or_default();
    io.write_all_buf(&mut Buf::chain(bufs.reply.as_slice(), body))
        .await?;
    let clean = take == first.len();
    let mut left = length - take as u64;
    while left > 0 {
        bufs.answer.clear();
        bufs.answer.reserve(READ_SIZE);
        let n = read_some(&mut answer.stream, &mut bufs.answer, left).await?;
        io.write_all(&bufs.answer).await?;
        left -= n as u64;
    }
    Ok(clean)
}

/// Reads at most `limit` more bytes of a body that has not ended; an early close is an error.
async fn read_some(stream: &mut TcpStream, buf: &mut BytesMut, limit: u64) -> io::Result<usize> {
    match stream.take(limit).read_buf(buf).await? {
        0 => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the endpoint closed before the end of the body",
        )),
        n => Ok(n),
    }
}

async fn relay_chunked<S: AsyncWrite + Unpin>(
    io: &mut S,
    answer: &mut Answer,
    bufs: &mut Buffers,
) -> Relayed {
    let mut decoder = ChunkedDecoder::default();
    let mut from = answer.head_len;
    loop {
        let mut rest = bufs.answer.get(from..).unwrap_or_default();
        while !rest.is_empty() && !decoder.is_done() {
            let (used, data) = decoder.decode(rest).map_err(io::Error::other)?;
            framing::write_chunk(&mut bufs.reply, data);
            rest = rest.get(used..).unwrap_or_default();
        }
        if decoder.is_done() {
            bufs.reply.extend_from_slice(framing::LAST_CHUNK);
            io.write_all(&bufs.reply).await?;
            return Ok(rest.is_empty());
        }
        io.write_all(&bufs.reply).await?;
        bufs.reply.clear();
        read_more(&mut answer.stream, &mut bufs.answer).await?;
        from = 0;
    }
}

async fn relay_until_close<S: AsyncWrite + Unpin>(
    io: &mut S,
    answer: &mut Answer,
    bufs: &mut Buffers,
) -> Relayed {
    let first = bufs.answer.get(answer.head_len..).unwrap_or_default();
    framing::write_chunk(&mut bufs.reply, first);
    loop {
        io.write_all(&bufs.reply).await?;
        bufs.reply.clear();
        bufs.answer.clear();
        bufs.answer.reserve(READ_SIZE);
        if answer.stream.read_buf(&mut bufs.answer).await? == 0 {
            io.write_all(framing::LAST_CHUNK).await?;
            return Ok(false);
        }
        framing::write_chunk(&mut bufs.reply, &bufs.answer);
    }
}

/// Reads the next piece of a body that has not ended.
async fn read_more(stream: &mut TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    buf.clear();
    buf.reserve(READ_SIZE);
    read_some(stream, buf, READ_SIZE as u64).await
}

thread_local! {
    /// The `Date` value of the current second, made once per second and thread.
    static DATE: RefCell<(u64, [u8; 29])> = const { RefCell::new((u64::MAX, [0; 29])) };
}

/// Now as an HTTP date (IMF-fixdate, always 29 bytes), for answers without one, as hyper adds.
fn http_date() -> [u8; 29] {
    let now = SystemTime::now();
    let second = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != second {
            let text = httpdate::fmt_http_date(now);
            if let Ok(bytes) = <[u8; 29]>::try_from(text.as_bytes()) {
                *d = (second, bytes);
            }
        }
        d.1
    })
}

/// A stream whose first bytes were already read: they are read again first. It hands hyper a
/// connection the lean path started on.
struct Rewind<S> {
    prefix: Bytes,
    inner: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.is_empty() {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        let n = self.prefix.len().min(buf.remaining());
        buf.put_slice(self.prefix.get(..n).unwrap_or_default());
        self.prefix.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_ends_at_its_empty_line_whatever_the_line_endings() {
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody"), Some(25));
        assert_eq!(head_end(b"HTTP/1.1 200 OK\nA: b\n\nbody"), Some(22));
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\nA: b\r\n"), None);
        assert_eq!(head_end(b""), None);
    }

    #[tokio::test]
    async fn a_rewound_stream_reads_its_prefix_first() {
        let mut io = Rewind {
            prefix: Bytes::from_static(b"GET / "),
            inner: &b"HTTP/1.1\r\n\r\n"[..],
        };
        let mut all = Vec::new();
        io.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"GET / HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn buffers_grown_by_a_large_message_go_back_to_their_starting_size() {
        let mut bufs = Buffers::new();
        bufs.reply.extend_from_slice(&[0; 70_000]);
        bufs.answer.reserve(70_000);
        bufs.shrink();
        assert!(bufs.reply.is_empty() && bufs.reply.capacity() <= BUFFER);
        assert!(bufs.answer.capacity() <= READ_SIZE);
    }

    #[test]
    fn the_date_is_an_imf_fixdate() {
        let d = http_date();
        let text = std::str::from_utf8(&d).unwrap();
        assert!(text.ends_with(" GMT"), "{text}");
        assert!(httpdate::parse_http_date(text).is_ok(), "{text}");
    }
}
