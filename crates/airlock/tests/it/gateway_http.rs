//! HTTP/1.1 conformance of `airlock gateway`'s proxy path, end to end: exact bytes written on a
//! client socket, the real `airlock` binary in between, and an endpoint that is a raw socket the
//! test scripts byte for byte and that records every request reaching it.
//!
//! Why this file exists: the gateway relays plain HTTP/1.1 on a lean path of its own and hands
//! anything unusual to hyper, mid-connection if need be. These tests pin what goes on the wire
//! either way (framing, pipelining, hop-by-hop headers, smuggling attempts, interim answers,
//! oversized heads, stale kept-alive connections, shutdown), as it was when hyper served every
//! request: where that behaviour is surprising, a one-line comment says so, and those
//! assertions define "unchanged" too.
//!
//! The test bed is the one of `gateway.rs` (moto as EC2 with a loopback VPC, so the instance
//! has a 127.0.0.x address, and the endpoint listens there on a port its `airlock:port` tag
//! names). Every wait is bounded.

use crate::common::{launch_tagged, loopback_net, test_ca, Moto};
use crate::gateway::{gloo_config, set_tag, Gateway, UPSTREAM};
use std::io::{Error, ErrorKind};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The longest any single read waits.
const WAIT: Duration = Duration::from_secs(10);

/// The tutorial's configuration, plus every path under `/t/` routed as received to its
/// upstream, and a virtual service of its own for host `anything.example` routing every path.
fn config() -> String {
    gloo_config(
        r"    - matchers:
      - prefix: /t/
      routeAction:
        single:
          upstream:
            name: ec2-demo-upstream
            namespace: gloo-system
---
apiVersion: gateway.solo.io/v1
kind: VirtualService
metadata:
  name: by-host
  namespace: gloo-system
spec:
  virtualHost:
    domains:
    - anything.example
    routes:
    - matchers:
      - prefix: /
      routeAction:
        single:
          upstream:
            name: ec2-demo-upstream
            namespace: gloo-system
",
    )
}

// ---------------------------------------------------------------------------------------------
// Messages on the wire

/// A message head as it was received: start line, headers in order, and the raw text.
#[derive(Clone, Debug)]
struct Head {
    line: String,
    headers: Vec<(String, String)>,
    raw: String,
}

impl Head {
    fn parse(raw: &[u8]) -> Head {
        let raw = String::from_utf8_lossy(raw).into_owned();
        let mut lines = raw.trim_end_matches("\r\n").split("\r\n");
        let line = lines.next().unwrap_or_default().to_owned();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
            .collect();
        Head { line, headers, raw }
    }

    /// Every value of the header `name` (case-insensitive), in order.
    fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.all(name).first().copied()
    }

    /// The start line's word `n` (from 0).
    fn word(&self, n: usize) -> &str {
        self.line.split(' ').nth(n).unwrap_or_default()
    }

    /// A request's target.
    fn target(&self) -> &str {
        self.word(1)
    }

    /// A response's status.
    fn status(&self) -> u16 {
        self.word(1).parse().unwrap_or(0)
    }

    fn chunked(&self) -> bool {
        self.all("transfer-encoding")
            .iter()
            .any(|v| v.to_ascii_lowercase().contains("chunked"))
    }

    fn length(&self) -> Option<usize> {
        self.get("content-length").and_then(|v| v.parse().ok())
    }
}

/// How a message's body ends.
#[derive(Clone, Copy, Debug)]
enum Framing {
    Empty,
    Length(usize),
    Chunked,
    UntilClose,
}

/// A request's body framing, `Transfer-Encoding` first (as RFC 9112 says).
fn request_framing(head: &Head) -> Framing {
    match (head.chunked(), head.length()) {
        (true, _) => Framing::Chunked,
        (false, Some(n)) => Framing::Length(n),
        (false, None) => Framing::Empty,
    }
}

/// A response's body framing; `to_head` when it answers a HEAD request.
fn response_framing(head: &Head, to_head: bool) -> Framing {
    let status = head.status();
    if to_head || status < 200 || status == 204 || status == 304 {
        return Framing::Empty;
    }
    match (head.chunked(), head.length()) {
        (true, _) => Framing::Chunked,
        (false, Some(n)) => Framing::Length(n),
        (false, None) => Framing::UntilClose,
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn invalid(what: &str) -> Error {
    Error::new(ErrorKind::InvalidData, what.to_owned())
}

/// One end of a TCP connection and what was read from it but not used yet.
struct Wire {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Wire {
    fn new(stream: TcpStream) -> Wire {
        Wire {
            stream,
            buf: Vec::new(),
        }
    }

    /// Reads what comes next (within `within`); false at the end of the stream.
    async fn fill_within(&mut self, within: Duration) -> std::io::Result<bool> {
        self.buf.reserve(64 * 1024);
        let n = tokio::time::timeout(within, self.stream.read_buf(&mut self.buf))
            .await
            .map_err(|_| Error::new(ErrorKind::TimedOut, "nothing came"))??;
        Ok(n > 0)
    }

    async fn fill(&mut self) -> std::io::Result<bool> {
        self.fill_within(WAIT).await
    }

    async fn more(&mut self) -> std::io::Result<()> {
        if self.fill().await? {
            Ok(())
        } else {
            Err(Error::new(ErrorKind::UnexpectedEof, "closed mid-message"))
        }
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        self.buf.drain(..n).collect()
    }

    /// The next head; `None` when the stream ends cleanly before it.
    async fn head(&mut self) -> std::io::Result<Option<Head>> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                return Ok(Some(Head::parse(&self.take(end + 4))));
            }
            if !self.fill().await? {
                return match self.buf.is_empty() {
                    true => Ok(None),
                    false => Err(Error::new(ErrorKind::UnexpectedEof, "closed mid-head")),
                };
            }
        }
    }

    /// The next line, without its CRLF.
    async fn line(&mut self) -> std::io::Result<Vec<u8>> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n") {
                let mut line = self.take(i + 2);
                line.truncate(i);
                return Ok(line);
            }
            self.more().await?;
        }
    }

    async fn exactly(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        while self.buf.len() < n {
            self.more().await?;
        }
        Ok(self.take(n))
    }

    /// A chunked body, decoded (chunk extensions and trailers dropped).
    async fn chunked(&mut self) -> std::io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line = self.line().await?;
            let size = String::from_utf8_lossy(&line);
            let size = size.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size, 16).map_err(|_| invalid("chunk size"))?;
            if size == 0 {
                while !self.line().await?.is_empty() {}
                return Ok(body);
            }
            body.extend(self.exactly(size).await?);
            if !self.line().await?.is_empty() {
                return Err(invalid("no CRLF after a chunk"));
            }
        }
    }

    async fn body(&mut self, framing: Framing) -> std::io::Result<Vec<u8>> {
        match framing {
            Framing::Empty => Ok(Vec::new()),
            Framing::Length(n) => self.exactly(n).await,
            Framing::Chunked => self.chunked().await,
            Framing::UntilClose => {
                while self.fill().await? {}
                Ok(std::mem::take(&mut self.buf))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The endpoint: a raw socket on the instance's address, answering by script

/// What the endpoint does, in order, to answer one request.
enum Step {
    Send(Vec<u8>),
    /// Waits this many milliseconds.
    Pause(u64),
    /// Closes the connection (the steps after it are not taken).
    Close,
}

/// A request as it reached the endpoint.
#[derive(Clone, Debug)]
struct Seen {
    head: Head,
    body: Vec<u8>,
    /// The body arrived whole, as its framing said.
    complete: bool,
}

type Script = dyn Fn(&Seen) -> Vec<Step> + Send + Sync;

/// The raw endpoint, serving until dropped.
struct Endpoint {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Endpoint {
    /// Listens on `ip` (a port free there: tests side by side share instance addresses).
    async fn start(ip: &str, script: Arc<Script>) -> Endpoint {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(accept(listener, script, seen.clone()));
        Endpoint { port, seen, task }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept(listener: TcpListener, script: Arc<Script>, seen: Arc<Mutex<Vec<Seen>>>) {
    // Dropped (and so aborted) with the accept loop.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        if let Ok((stream, _)) = listener.accept().await {
            connections.spawn(answer_requests(
                Wire::new(stream),
                script.clone(),
                seen.clone(),
            ));
        }
        while connections.try_join_next().is_some() {}
    }
}

/// Reads requests on one connection (sending `100 Continue` to a request that expects it, as
/// real servers do), records each, and takes the script's steps for it.
async fn answer_requests(mut wire: Wire, script: Arc<Script>, seen: Arc<Mutex<Vec<Seen>>>) {
    while let Ok(Some(head)) = wire.head().await {
        if head.get("expect") == Some("100-continue")
            && wire
                .stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .is_err()
        {
            return;
        }
        let body = wire.body(request_framing(&head)).await;
        let complete = body.is_ok();
        let request = Seen {
            head,
            body: body.unwrap_or_default(),
            complete,
        };
        let steps = script(&request);
        seen.lock().unwrap().push(request);
        if !complete {
            return;
        }
        for step in steps {
            match step {
                Step::Send(bytes) => {
                    if wire.stream.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                Step::Pause(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                Step::Close => return,
            }
        }
    }
}

/// A response with `status_and_headers` (status line and header lines, without the final
/// empty line) and `body` after it, as bytes.
fn response(status_and_headers: &str, body: &[u8]) -> Vec<u8> {
    [
        format!("HTTP/1.1 {status_and_headers}\r\n\r\n").as_bytes(),
        body,
    ]
    .concat()
}

/// `200 OK` with `body`, framed by `Content-Length`.
fn ok(body: &[u8]) -> Vec<Step> {
    let head = format!("200 OK\r\nContent-Length: {}", body.len());
    vec![Step::Send(response(&head, body))]
}

/// The script most tests use: `200 OK` whose body is the request's target.
fn echo(req: &Seen) -> Vec<Step> {
    ok(req.head.target().as_bytes())
}

/// `200 OK` saying how long the request's body was and its FNV-1a hash.
fn measure(req: &Seen) -> Vec<Step> {
    ok(digest(&req.body).as_bytes())
}

fn digest(bytes: &[u8]) -> String {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{} {hash:016x}", bytes.len())
}

/// `n` bytes of a pattern that does not repeat at any power of two.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

// ---------------------------------------------------------------------------------------------
// The client: raw bytes to the gateway

/// An answer the client read: its head and its body, decoded from whatever framing it had.
#[derive(Debug)]
struct Answer {
    head: Head,
    body: Vec<u8>,
}

impl Answer {
    fn status(&self) -> u16 {
        self.head.status()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A raw client connection to the gateway.
struct Client(Wire);

impl Client {
    async fn connect(gw: &Gateway) -> Client {
        let addr = gw.url.strip_prefix("http://").unwrap();
        let stream = tokio::time::timeout(WAIT, TcpStream::connect(addr))
            .await
            .unwrap()
            .unwrap();
        Client(Wire::new(stream))
    }

    async fn send(&mut self, bytes: &[u8]) {
        tokio::time::timeout(WAIT, self.0.stream.write_all(bytes))
            .await
            .expect("the gateway stopped reading")
            .unwrap();
    }

    /// The next answer, interim (1xx) ones included; `to_head` when it answers a HEAD.
    async fn next(&mut self, to_head: bool) -> Answer {
        let head = match self.0.head().await {
            Ok(Some(head)) => head,
            other => panic!("no answer: {other:?}; got {:?}", self.rest()),
        };
        let framing = response_framing(&head, to_head);
        let body =
            self.0.body(framing).await.unwrap_or_else(|e| {
                panic!("{e}: {framing:?} body of {head:?}; got {:?}", self.rest())
            });
        Answer { head, body }
    }

    /// The next final answer, and the interim ones before it.
    async fn final_answer(&mut self, to_head: bool) -> (Vec<Head>, Answer) {
        let mut interim = Vec::new();
        loop {
            let answer = self.next(to_head).await;
            if answer.status() >= 200 {
                return (interim, answer);
            }
            interim.push(answer.head);
        }
    }

    /// Sends `request` and reads its final answer; panics on an interim one.
    async fn ask(&mut self, request: &[u8]) -> Answer {
        self.send(request).await;
        let (interim, answer) = self.final_answer(request.starts_with(b"HEAD ")).await;
        assert!(interim.is_empty(), "{interim:?}");
        answer
    }

    /// True when something arrives within `within` (kept for the next read).
    async fn arrives_within(&mut self, within: Duration) -> bool {
        self.0.fill_within(within).await.unwrap_or(false)
    }

    /// What arrives within `within`, and whether the gateway closed the connection by then.
    async fn rest_within(&mut self, within: Duration) -> (String, bool) {
        let deadline = tokio::time::Instant::now() + within;
        let closed = loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.0.fill_within(left).await {
                Ok(true) => {}
                Ok(false) => break true,
                // A reset closes it too.
                Err(e) if e.kind() != ErrorKind::TimedOut => break true,
                Err(_) => break false,
            }
        };
        (self.rest(), closed)
    }

    fn rest(&mut self) -> String {
        String::from_utf8_lossy(&std::mem::take(&mut self.0.buf)).into_owned()
    }

    /// Asserts the gateway closes the connection (within 5 s) with nothing more said.
    async fn assert_closed(&mut self) {
        let (rest, closed) = self.rest_within(Duration::from_secs(5)).await;
        assert!(closed, "the gateway kept the connection open");
        assert_eq!(rest, "", "after the answer");
    }
}

/// `GET path` with only a `Host` header.
fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: gw.test\r\n\r\n").into_bytes()
}

/// `method path` with a `Content-Length` body.
fn with_body(method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: gw.test\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    [head.as_bytes(), body].concat()
}

// ---------------------------------------------------------------------------------------------
// The test bed

/// moto, one instance in the tutorial's upstream, the raw endpoint on its address, and the
/// gateway routing to it (fields drop in order: the gateway first).
struct Bed {
    gw: Gateway,
    endpoint: Endpoint,
    _moto: Moto,
    _dir: tempfile::TempDir,
}

impl Bed {
    async fn start(script: impl Fn(&Seen) -> Vec<Step> + Send + Sync + 'static) -> Bed {
        Self::start_with(tempfile::tempdir().unwrap(), &[], script).await
    }

    /// The bed with the gateway serving TLS, and the CA its certificate is signed by.
    async fn start_tls(
        script: impl Fn(&Seen) -> Vec<Step> + Send + Sync + 'static,
    ) -> (Bed, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let (ca, cert, key) = test_ca(dir.path());
        let tls = [
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ];
        (Self::start_with(dir, &tls, script).await, ca)
    }

    async fn start_with(
        dir: tempfile::TempDir,
        extra: &[&str],
        script: impl Fn(&Seen) -> Vec<Step> + Send + Sync + 'static,
    ) -> Bed {
        let moto = Moto::start();
        let ec2 = moto.ec2().await;
        let net = loopback_net(&ec2).await;
        let (id, ip) = launch_tagged(&ec2, &net, &[("gloo-id", "1"), ("gloo-tag", "group1")]).await;
        let endpoint = Endpoint::start(&ip, Arc::new(script)).await;
        set_tag(&ec2, &id, "airlock:port", &endpoint.port.to_string()).await;
        let gw = Gateway::start(&moto, dir.path(), &config(), extra);
        gw.wait_members(UPSTREAM, &[&id], Duration::from_secs(10))
            .await;
        Bed {
            gw,
            endpoint,
            _moto: moto,
            _dir: dir,
        }
    }

    async fn client(&self) -> Client {
        Client::connect(&self.gw).await
    }

    /// Every request that reached the endpoint so far.
    fn seen(&self) -> Vec<Seen> {
        self.endpoint.seen.lock().unwrap().clone()
    }

    /// The request lines that reached the endpoint so far.
    fn lines(&self) -> Vec<String> {
        self.seen().into_iter().map(|s| s.head.line).collect()
    }

    /// The one request that reached the endpoint.
    fn only_seen(&self) -> Seen {
        let seen = self.seen();
        assert_eq!(seen.len(), 1, "{seen:#?}\n{}", self.gw.log_text());
        seen.into_iter().next().unwrap()
    }
}

// ---------------------------------------------------------------------------------------------
// Framing

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let bed = Bed::start(echo).await;
    let mut c = bed.client().await;
    let paths = ["/t/1", "/t/2", "/t/3"];
    c.send(&paths.map(get).concat()).await;
    for path in paths {
        let a = c.next(false).await;
        assert_eq!((a.status(), a.text().as_str()), (200, path), "{a:?}");
    }
    let lines: Vec<String> = paths.iter().map(|p| format!("GET {p} HTTP/1.1")).collect();
    assert_eq!(bed.lines(), lines);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_answer_reaches_the_client_whole() {
    let bed = Bed::start(|req| match req.head.target() {
        "/t/chunked" => vec![
            Step::Send(response(
                "200 OK\r\nTransfer-Encoding: chunked",
                b"5;name=value\r\nhello\r\n2\r\n, \r\n",
            )),
            Step::Pause(30),
            Step::Send(b"5\r\nworld\r\n0\r\n\r\n".to_vec()),
        ],
        _ => echo(req),
    })
    .await;
    let mut c = bed.client().await;
    let a = c.ask(&get("/t/chunked")).await;
    assert_eq!(
        (a.status(), a.text().as_str()),
        (200, "hello, world"),
        "{a:?}"
    );
    let a = c.ask(&get("/t/next")).await;
    assert_eq!((a.status(), a.text().as_str()), (200, "/t/next"), "{a:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_delimited_answer_reaches_the_client_whole() {
    let body = pattern(100_000);
    let (first, second) = body.split_at(40_000);
    let (first, second) = (first.to_vec(), second.to_vec());
    let bed = Bed::start(move |req| match req.head.target() {
        "/t/until-close" => vec![
            Step::Send(response("200 OK\r\nContent-Type: text/plain", &first)),
            Step::Pause(30),
            Step::Send(second.clone()),
            Step::Close,
        ],
        _ => echo(req),
    })
    .await;
    let mut c = bed.client().await;
    let a = c.ask(&get("/t/until-close")).await;
    assert_eq!(a.status(), 200, "{:?}", a.head);
    assert_eq!(digest(&a.body), digest(&body), "{:?}", a.head);
    // Today the client's connection outlives the endpoint's (the answer is re-chunked for it).
    let a = c.ask(&get("/t/next")).await;
    assert_eq!((a.status(), a.text().as_str()), (200, "/t/next"), "{a:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_204_and_304_answers_have_no_body_and_keep_the_connection() {
    let bed = Bed::start(|req| match req.head.target() {
        "/t/head" => vec![Step::Send(response("200 OK\r\nContent-Length: 100", b""))],
        "/t/204" => vec![Step::Send(response("204 No Content", b""))],
        "/t/304" => vec![Step::Send(response(
            "304 Not Modified\r\nETag: \"v1\"",
            b"",
        ))],
        _ => echo(req),
    })
    .await;
    let mut c = bed.client().await;
    let a = c
        .ask(b"HEAD /t/head HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        .await;
    assert_eq!(a.status(), 200, "{a:?}");
    assert_eq!(a.head.get("content-length"), Some("100"), "{a:?}");
    let a = c.ask(&get("/t/204")).await;
    assert_eq!(a.status(), 204, "{a:?}");
    let a = c.ask(&get("/t/304")).await;
    assert_eq!(
        (a.status(), a.head.get("etag")),
        (304, Some("\"v1\"")),
        "{a:?}"
    );
    // Any body byte sent after those would be read here as the start of the answer.
    let a = c.ask(&get("/t/after")).await;
    assert_eq!((a.status(), a.text().as_str()), (200, "/t/after"), "{a:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_both_ways() {
    let big = pattern(1 << 20);
    let answer = response(&format!("200 OK\r\nContent-Length: {}", big.len()), &big);
    let bed = Bed::start(move |req| match req.head.target() {
        "/t/big" => vec![Step::Send(answer.clone())],
        _ => measure(req),
    })
    .await;
    let mut c = bed.client().await;
    let a = c.ask(&get("/t/big")).await;
    assert_eq!(a.status(), 200, "{:?}", a.head);
    assert_eq!(digest(&a.body), digest(&big));

    for (method, size) in [("POST", 200 * 1024), ("PUT", 10 * 1024)] {
        let body = pattern(size);
        let a = c.ask(&with_body(method, "/t/upload", &body)).await;
        assert_eq!((a.status(), a.text()), (200, digest(&body)), "{method}");
    }
    let seen = bed.seen();
    assert_eq!(seen.len(), 3, "{:?}", bed.lines());
    for (req, size) in seen[1..].iter().zip([200 * 1024, 10 * 1024]) {
        // A request with a Content-Length reaches the endpoint with it (not re-chunked).
        assert_eq!(req.head.length(), Some(size), "{}", req.head.raw);
        assert!(!req.head.chunked(), "{}", req.head.raw);
        assert_eq!(digest(&req.body), digest(&pattern(size)));
    }
}

// ---------------------------------------------------------------------------------------------
// Smuggling

/// A request the endpoint must never see as a request of its own.
const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: gw.test\r\n\r\n";

/// Sends `request` on a fresh connection: the one answer, and whether the gateway then closed
/// the connection (no second answer, whatever it did).
async fn smuggle(bed: &Bed, request: &str) -> (Answer, bool) {
    let mut c = bed.client().await;
    c.send(request.as_bytes()).await;
    let (interim, a) = c.final_answer(false).await;
    assert!(interim.is_empty(), "{interim:?}");
    let (rest, closed) = c.rest_within(Duration::from_secs(2)).await;
    assert_eq!(rest, "", "a second answer after {:?}", a.head);
    (a, closed)
}

/// `smuggle`'s status and whether the connection was closed.
async fn smuggle_status(bed: &Bed, request: &str) -> (u16, bool) {
    let (a, closed) = smuggle(bed, request).await;
    (a.status(), closed)
}

/// Nothing the endpoint saw was the smuggled request, or framed ambiguously.
fn assert_nothing_smuggled(bed: &Bed) {
    for req in bed.seen() {
        assert!(!req.head.line.contains("/smuggled"), "{req:#?}");
        let framings =
            req.head.all("content-length").len() + req.head.all("transfer-encoding").len();
        assert!(framings <= 1, "ambiguous framing: {}", req.head.raw);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_smuggling_attempts_never_reach_the_endpoint_as_two_requests() {
    let bed = Bed::start(measure).await;
    let post = "POST /t/upload HTTP/1.1\r\nHost: gw.test\r\n";

    // CL.TE: by Content-Length the smuggled request is body; by chunking it comes next.
    let body = format!("0\r\n\r\n{SMUGGLED}");
    let cl_te = format!(
        "{post}Content-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n{body}",
        body.len()
    );
    // Today: chunking wins, the request is forwarded (empty body) and the connection closed
    // after its answer, so what follows is never read.
    assert_eq!(smuggle_status(&bed, &cl_te).await, (200, true));
    assert_eq!(bed.only_seen().body, b"");

    // TE.CL: by chunking the smuggled request is body; by Content-Length it comes next.
    let te_cl = format!(
        "{post}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{SMUGGLED}\r\n0\r\n\r\n",
        SMUGGLED.len()
    );
    // Today: forwarded as chunked (Content-Length dropped), the smuggled request as its body.
    assert_eq!(smuggle_status(&bed, &te_cl).await, (200, true));
    let seen = bed.seen();
    assert_eq!(seen.len(), 2, "{:?}", bed.lines());
    assert_eq!(seen[1].body, SMUGGLED.as_bytes(), "{}", seen[1].head.raw);

    // Two different Content-Lengths: refused before anything is forwarded.
    let two_lengths = format!(
        "{post}Content-Length: 5\r\nContent-Length: {}\r\n\r\nhello{SMUGGLED}",
        5 + SMUGGLED.len()
    );
    assert_eq!(smuggle_status(&bed, &two_lengths).await, (400, true));
    assert_eq!(bed.seen().len(), 2, "{:?}", bed.lines());

    // An invalid chunk size.
    let bad_chunk = format!("{post}Transfer-Encoding: chunked\r\n\r\nzz\r\n{SMUGGLED}0\r\n\r\n");
    let (a, closed) = smuggle(&bed, &bad_chunk).await;
    // The client's fault, not the endpoint's: 400, and the connection closed.
    assert_eq!((a.status(), closed), (400, true), "{a:?}");
    assert_eq!(a.head.get("x-airlock-error"), Some("client"), "{a:?}");
    assert!(a.text().contains("cannot read the request"), "{a:?}");
    assert!(a.text().to_lowercase().contains("chunk size"), "{a:?}");
    // Nothing of it reached the endpoint whole (today: nothing at all).
    let seen = bed.seen();
    assert!(seen[2..].iter().all(|s| !s.complete), "{seen:#?}");
    assert_nothing_smuggled(&bed);
}

/// A client that stops in the middle of its chunked body (and half-closes its connection) is
/// the one at fault: it gets 400, and the endpoint is not blamed in the gateway's log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_breaks_off_its_body_gets_400_and_the_endpoint_is_not_blamed() {
    let bed = Bed::start(measure).await;
    let mut c = bed.client().await;
    let post = "POST /t/upload HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n";
    c.send(format!("{post}10\r\nonly part").as_bytes()).await;
    c.0.stream.shutdown().await.unwrap();
    let (_, a) = c.final_answer(false).await;
    assert_eq!(a.status(), 400, "{a:?}");
    assert_eq!(a.head.get("x-airlock-error"), Some("client"), "{a:?}");
    assert!(bed.seen().iter().all(|s| !s.complete), "{:#?}", bed.seen());
    let log = bed.gw.log_text();
    assert!(!log.contains("failed: "), "the endpoint was blamed:\n{log}");
}

// ---------------------------------------------------------------------------------------------
// Headers

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_never_cross_the_gateway() {
    let bed = Bed::start(|_| {
        vec![Step::Send(response(
            "200 OK\r\nConnection: x-internal\r\nX-Internal: 1\r\nKeep-Alive: timeout=1\r\nContent-Length: 2",
            b"ok",
        ))]
    })
    .await;
    let mut c = bed.client().await;
    let a = c
        .ask(
            b"GET /t/hop HTTP/1.1\r\nHost: gw.test\r\nConnection: keep-alive, x-secret\r\n\
              X-Secret: 1\r\nKeep-Alive: timeout=5\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\n\
              TE: trailers\r\nProxy-Connection: keep-alive\r\n\r\n",
        )
        .await;
    assert_eq!((a.status(), a.text().as_str()), (200, "ok"), "{a:?}");
    for name in ["connection", "x-internal", "keep-alive"] {
        assert_eq!(
            a.head.get(name),
            None,
            "{name} reached the client: {}",
            a.head.raw
        );
    }

    let req = bed.only_seen().head;
    for name in [
        "connection",
        "x-secret",
        "keep-alive",
        "proxy-authorization",
        "te",
        "proxy-connection",
    ] {
        assert_eq!(
            req.get(name),
            None,
            "{name} reached the endpoint: {}",
            req.raw
        );
    }
    assert_eq!(req.get("x-forwarded-for"), Some("127.0.0.1"), "{}", req.raw);
    assert_eq!(req.get("x-forwarded-proto"), Some("http"), "{}", req.raw);
    assert_eq!(req.all("host"), ["gw.test"], "{}", req.raw);
    // The connection is still usable.
    assert_eq!(c.ask(&get("/t/again")).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_forwarded_for_is_appended_to_what_the_client_sent() {
    let bed = Bed::start(echo).await;
    let mut c = bed.client().await;
    let a = c
        .ask(b"GET /t/xff HTTP/1.1\r\nHost: gw.test\r\nX-Forwarded-For: 10.1.2.3\r\n\r\n")
        .await;
    assert_eq!(a.status(), 200, "{a:?}");
    // Two lines, on the lean path and through hyper's (HTTP/1.0).
    for version in ["1.1", "1.0"] {
        let mut c = bed.client().await;
        let two_lines = format!(
            "GET /t/xff HTTP/{version}\r\nHost: gw.test\r\nX-Forwarded-For: 10.1.2.3\r\n\
             X-Forwarded-For: 10.9.9.9\r\n\r\n"
        );
        let a = c.ask(two_lines.as_bytes()).await;
        assert_eq!(a.status(), 200, "{a:?}");
    }
    let seen = bed.seen();
    let xff: Vec<Vec<&str>> = seen.iter().map(|s| s.head.all("x-forwarded-for")).collect();
    assert_eq!(xff[0], ["10.1.2.3, 127.0.0.1"]);
    // Two lines are one list (RFC 9110): no hop the client named is lost, on either path.
    assert_eq!(xff[1], ["10.1.2.3, 10.9.9.9, 127.0.0.1"]);
    assert_eq!(xff[2], ["10.1.2.3, 10.9.9.9, 127.0.0.1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_request_reaches_the_endpoint_as_a_plain_request() {
    let bed = Bed::start(echo).await;
    let mut c = bed.client().await;
    let a = c
        .ask(
            b"GET /t/ws HTTP/1.1\r\nHost: gw.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await;
    assert_eq!((a.status(), a.text().as_str()), (200, "/t/ws"), "{a:?}");
    let req = bed.only_seen().head;
    assert_eq!(req.get("upgrade"), None, "{}", req.raw);
    assert_eq!(req.get("connection"), None, "{}", req.raw);
    let a = c.ask(&get("/t/after")).await;
    assert_eq!((a.status(), a.text().as_str()), (200, "/t/after"), "{a:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absolute_form_request_uri_is_routed_by_its_host() {
    let bed = Bed::start(echo).await;
    let mut c = bed.client().await;
    let a = c
        .ask(b"GET http://anything.example/path?q=1 HTTP/1.1\r\nHost: anything.example\r\n\r\n")
        .await;
    assert_eq!((a.status(), a.text().as_str()), (200, "/path?q=1"), "{a:?}");
    let req = bed.only_seen().head;
    assert_eq!(req.line, "GET /path?q=1 HTTP/1.1");
    assert_eq!(req.all("host"), ["anything.example"], "{}", req.raw);
    // Only anything.example's virtual service routes /path.
    let a = c.ask(&get("/path")).await;
    assert_eq!(a.status(), 404, "{a:?}");
}

// ---------------------------------------------------------------------------------------------
// Connections

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_1_0_client_gets_its_answer_and_a_closed_connection() {
    let bed = Bed::start(echo).await;
    let mut c = bed.client().await;
    let a = c.ask(b"GET /t/old HTTP/1.0\r\nHost: gw.test\r\n\r\n").await;
    assert_eq!((a.status(), a.text().as_str()), (200, "/t/old"), "{a:?}");
    assert!(a.head.line.starts_with("HTTP/1.0 200"), "{a:?}");
    c.assert_closed().await;
    // The endpoint gets HTTP/1.1.
    assert_eq!(bed.lines(), ["GET /t/old HTTP/1.1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_close_from_the_client_is_honoured() {
    let bed = Bed::start(echo).await;
    let mut c = bed.client().await;
    let a = c
        .ask(b"GET /t/bye HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!((a.status(), a.text().as_str()), (200, "/t/bye"), "{a:?}");
    assert_eq!(a.head.get("connection"), Some("close"), "{a:?}");
    c.assert_closed().await;
}

/// Sends a request head with `headers`: its answer (once the gateway has closed the
/// connection).
async fn refused(bed: &Bed, headers: &str) -> Answer {
    let mut c = bed.client().await;
    c.send(format!("GET /t/refused HTTP/1.1\r\nHost: gw.test\r\n{headers}\r\n").as_bytes())
        .await;
    let (_, a) = c.final_answer(false).await;
    c.assert_closed().await;
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_request_head_is_refused() {
    let bed = Bed::start(echo).await;
    let many: String = (0..200).map(|i| format!("X-H-{i}: {i}\r\n")).collect();
    assert_eq!(refused(&bed, &many).await.status(), 431);
    let huge = format!("X-Huge: {}\r\n", "a".repeat(512 * 1024));
    assert_eq!(refused(&bed, &huge).await.status(), 431);
    assert_eq!(bed.lines(), Vec::<String>::new());

    // A client cannot make the gateway hold more than 64 KiB of head per connection.
    let over = format!("X-Big: {}\r\n", "b".repeat(200 * 1024));
    assert_eq!(refused(&bed, &over).await.status(), 431);
    assert_eq!(bed.lines(), Vec::<String>::new());
    // Within it, a head too long for the lean path is hyper's, and forwarded whole.
    let big = "b".repeat(48 * 1024);
    let mut c = bed.client().await;
    let a = c
        .ask(format!("GET /t/big HTTP/1.1\r\nHost: gw.test\r\nX-Big: {big}\r\n\r\n").as_bytes())
        .await;
    assert_eq!(a.status(), 200, "{a:?}");
    assert_eq!(bed.only_seen().head.get("x-big"), Some(big.as_str()));
}

/// A bed whose endpoint answers as `script` says and then closes the connection, without
/// saying so in its answer.
async fn closing_after_each_answer(script: fn(&Seen) -> Vec<Step>) -> Bed {
    Bed::start(move |req| {
        let mut steps = script(req);
        steps.push(Step::Close);
        steps
    })
    .await
}

/// Sends `n` requests 20 ms apart on one client connection: each gets `200` and the body
/// `request` says, and reaches the endpoint exactly once (none is sent again).
async fn ask_one_by_one(bed: &Bed, n: u8, request: impl Fn(u8) -> (Vec<u8>, String)) {
    let mut c = bed.client().await;
    for i in 0..n {
        let (bytes, want) = request(i);
        let a = c.ask(&bytes).await;
        assert_eq!(
            (a.status(), a.text()),
            (200, want),
            "request {i}: {a:?}\n{}",
            bed.gw.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(bed.seen().len(), usize::from(n), "{:?}", bed.lines());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_silently_closes_kept_alive_connections_costs_no_errors() {
    let bed = closing_after_each_answer(echo).await;
    ask_one_by_one(&bed, 30, |i| {
        let path = format!("/t/{i}");
        (get(&path), path)
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Interim answers

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue_gets_the_body_through() {
    let bed = Bed::start(measure).await;
    let body = pattern(1024);
    let mut c = bed.client().await;
    c.send(b"POST /t/expect HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 1024\r\nExpect: 100-continue\r\n\r\n")
        .await;
    // A client waits a while for `100 Continue`, then sends the body anyway.
    let mut interim = Vec::new();
    if c.arrives_within(Duration::from_secs(1)).await {
        let early = c.next(false).await;
        assert!(early.status() < 200, "answered before the body: {early:?}");
        interim.push(early.head);
    }
    c.send(&body).await;
    let (more, a) = c.final_answer(false).await;
    interim.extend(more);
    assert_eq!((a.status(), a.text()), (200, digest(&body)), "{a:?}");
    let lines: Vec<&str> = interim.iter().map(|h| h.line.as_str()).collect();
    // Today: the gateway itself says `100 Continue` once (the endpoint's own is not passed on).
    assert_eq!(lines, ["HTTP/1.1 100 Continue"]);
    let req = bed.only_seen();
    assert_eq!(digest(&req.body), digest(&body));
    assert_eq!(
        req.head.get("expect"),
        Some("100-continue"),
        "{}",
        req.head.raw
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_informational_answer_before_the_final_one_is_handled() {
    let bed = Bed::start(|_| {
        vec![
            Step::Send(response("103 Early Hints\r\nLink: </x>; rel=preload", b"")),
            Step::Pause(30),
            Step::Send(response("200 OK\r\nContent-Length: 5", b"final")),
        ]
    })
    .await;
    let mut c = bed.client().await;
    c.send(&get("/t/hints")).await;
    let (interim, a) = c.final_answer(false).await;
    assert_eq!((a.status(), a.text().as_str()), (200, "final"), "{a:?}");
    // Today: the 103 is not passed on to the client.
    assert!(interim.is_empty(), "{interim:?}");
    // And again on the same connection (`ask` fails on an interim answer).
    let a = c.ask(&get("/t/next")).await;
    assert_eq!((a.status(), a.text().as_str()), (200, "final"), "{a:?}");
}

// ---------------------------------------------------------------------------------------------
// Heads split across reads and writes

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_sent_byte_by_byte_is_served() {
    let bed = Bed::start(echo).await;
    let mut c = bed.client().await;
    for byte in b"GET /t/slow HTTP/1.1\r\nHost: gw.test\r\nX-Slow: yes\r\n\r\n" {
        c.send(&[*byte]).await;
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let (_, a) = c.final_answer(false).await;
    assert_eq!((a.status(), a.text().as_str()), (200, "/t/slow"), "{a:?}");
    assert_eq!(bed.only_seen().head.get("x-slow"), Some("yes"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_head_split_across_writes_reaches_the_client() {
    let bed = Bed::start(|_| {
        vec![
            Step::Send(b"HTTP/1.1 200 OK\r\nContent-".to_vec()),
            Step::Pause(20),
            Step::Send(b"Length: 5\r\nX-Split: ".to_vec()),
            Step::Pause(20),
            Step::Send(b"yes\r\n\r\n".to_vec()),
            Step::Pause(20),
            Step::Send(b"split".to_vec()),
        ]
    })
    .await;
    let mut c = bed.client().await;
    let a = c.ask(&get("/t/split")).await;
    assert_eq!((a.status(), a.text().as_str()), (200, "split"), "{a:?}");
    assert_eq!(a.head.get("x-split"), Some("yes"), "{a:?}");
}

// ---------------------------------------------------------------------------------------------
// Where the lean path meets the general one, and endpoints that misbehave

/// A client whose plain requests are served on the lean path cannot confuse the hand-over to
/// the general path: an unusual request in the middle of a pipeline is answered in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusual_request_in_the_middle_of_a_pipeline_is_answered_in_order() {
    let bed = Bed::start(|req| match req.head.target() {
        "/t/chunked" => measure(req),
        _ => echo(req),
    })
    .await;
    let mut c = bed.client().await;
    let chunked = b"POST /t/chunked HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    c.send(&[get("/t/1"), chunked.to_vec(), get("/t/3")].concat())
        .await;
    for want in ["/t/1", &digest(b"hello"), "/t/3"] {
        let a = c.next(false).await;
        assert_eq!((a.status(), a.text().as_str()), (200, want), "{a:?}");
    }
    assert_eq!(
        bed.lines(),
        [
            "GET /t/1 HTTP/1.1",
            "POST /t/chunked HTTP/1.1",
            "GET /t/3 HTTP/1.1"
        ]
    );
}

/// A POST is never sent twice, so it must not meet a kept-alive connection the endpoint has
/// already closed: the gateway sees the close coming before it reuses one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_after_the_endpoint_silently_closed_its_connection_goes_through_once() {
    let bed = closing_after_each_answer(measure).await;
    ask_one_by_one(&bed, 20, |i| {
        let body = [i; 10];
        (with_body("POST", "/t/post", &body), digest(&body))
    })
    .await;
}

/// An endpoint that frames its answer twice (`Content-Length` and chunked) and sends a
/// second answer after it cannot plant that answer on the next client's request: the answer
/// is read as chunked, and its connection is never used again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_smuggled_behind_a_doubly_framed_one_never_reaches_a_client() {
    let bed = Bed::start(|req| match req.head.target() {
        "/t/double" => vec![Step::Send(response(
            "200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked",
            b"5\r\nhello\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled",
        ))],
        _ => echo(req),
    })
    .await;
    let mut c = bed.client().await;
    let a = c.ask(&get("/t/double")).await;
    assert_eq!((a.status(), a.text().as_str()), (200, "hello"), "{a:?}");
    for path in ["/t/next", "/t/after"] {
        let a = c.ask(&get(path)).await;
        assert_eq!((a.status(), a.text().as_str()), (200, path), "{a:?}");
    }
}

/// An endpoint cannot make the gateway buffer without end: an answer head over 64 KiB is
/// refused with 502, and the client's connection stays usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_answer_head_over_64_kib_gets_502() {
    let bed = Bed::start(|req| match req.head.target() {
        "/t/big-head" => {
            let head = format!(
                "200 OK\r\nX-Big: {}\r\nContent-Length: 0",
                "a".repeat(200_000)
            );
            vec![Step::Send(response(&head, b""))]
        }
        _ => echo(req),
    })
    .await;
    let mut c = bed.client().await;
    let a = c.ask(&get("/t/big-head")).await;
    assert_eq!(a.status(), 502, "{a:?}");
    assert_eq!(a.head.get("x-airlock-error"), Some("upstream"), "{a:?}");
    let a = c.ask(&get("/t/next")).await;
    assert_eq!((a.status(), a.text().as_str()), (200, "/t/next"), "{a:?}");
    // hyper's path (HTTP/1.0) has the same limit.
    let mut c = bed.client().await;
    let a = c
        .ask(b"GET /t/big-head HTTP/1.0\r\nHost: gw.test\r\n\r\n")
        .await;
    assert_eq!(a.status(), 502, "{a:?}");
    assert_eq!(a.head.get("x-airlock-error"), Some("upstream"), "{a:?}");
}

/// Clients holding idle kept-alive connections cannot hold a stopping gateway for its whole
/// drain time, and a request in flight when it is told to stop still gets its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_cannot_delay_a_stopping_gateway_and_a_request_in_flight_is_answered() {
    let mut bed = Bed::start(|req| match req.head.target() {
        "/t/slow" => std::iter::once(Step::Pause(1500))
            .chain(echo(req))
            .collect(),
        _ => echo(req),
    })
    .await;
    let mut idle = Vec::new();
    for i in 0..4 {
        let mut c = bed.client().await;
        let path = format!("/t/idle{i}");
        assert_eq!(c.ask(&get(&path)).await.text(), path);
        idle.push(c);
    }
    let mut busy = bed.client().await;
    busy.send(&get("/t/slow")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    bed.gw.signal("-TERM");
    let a = busy.next(false).await;
    assert_eq!((a.status(), a.text().as_str()), (200, "/t/slow"), "{a:?}");
    for c in &mut idle {
        c.assert_closed().await;
    }
    let exited = bed.gw.exited_within(Duration::from_secs(10)).await;
    assert!(
        exited.is_some_and(|t| t < Duration::from_secs(5)),
        "took {exited:?} to stop\n{}",
        bed.gw.log_text()
    );
}

/// Over TLS, HTTP/1.1 (the lean path) and h2 (ALPN, the general path) give the endpoint the
/// same request, `X-Forwarded-Proto: https` included, and the client the same answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_http_1_1_and_h2_reach_the_endpoint_alike() {
    let (bed, ca) = Bed::start_tls(echo).await;
    let url = bed.gw.url.replace("http://", "https://");
    for (flag, path, version) in [("--http1.1", "/t/h1", "1.1"), ("--http2", "/t/h2", "2")] {
        let out = std::process::Command::new("curl")
            .args(["-s", "--max-time", "10", flag, "--cacert"])
            .arg(&ca)
            .args(["-w", " %{http_code} %{http_version}"])
            .arg(format!("{url}{path}"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text, format!("{path} 200 {version}"), "curl {flag}");
    }
    let seen = bed.seen();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    for s in seen {
        assert_eq!(s.head.get("x-forwarded-proto"), Some("https"), "{s:?}");
        assert_eq!(s.head.all("x-forwarded-for"), ["127.0.0.1"], "{s:?}");
    }
}

/// `/t/pause/MS` answers after MS milliseconds; anything else at once.
fn pausing(req: &Seen) -> Vec<Step> {
    match req.head.target().strip_prefix("/t/pause/") {
        Some(ms) => std::iter::once(Step::Pause(ms.parse().unwrap()))
            .chain(echo(req))
            .collect(),
        None => echo(req),
    }
}

/// The bed with the gateway's `--header-timeout` and `--upstream-timeout` set (in seconds).
async fn with_timeouts(header: &str, upstream: &str) -> Bed {
    let extra = ["--header-timeout", header, "--upstream-timeout", upstream];
    Bed::start_with(tempfile::tempdir().unwrap(), &extra, pausing).await
}

/// How long `ask` took, and its answer.
async fn timed_ask(c: &mut Client, request: &[u8]) -> (Duration, Answer) {
    let start = std::time::Instant::now();
    let a = c.ask(request).await;
    (start.elapsed(), a)
}

fn assert_timed_out(a: &Answer) {
    assert_eq!(a.status(), 504, "{a:?}");
    assert_eq!(a.head.get("x-airlock-error"), Some("upstream"), "{a:?}");
    assert!(a.text().contains("did not answer in time"), "{a:?}");
}

/// An endpoint that holds a request cannot hold the client past the upstream timeout, on
/// either path; a kept-alive connection whose header timeout is shorter than the upstream
/// timeout is not cut while an answer is on its way, and is still closed a header timeout
/// after that answer when it sends nothing more. (The lean path bounds both waits with one
/// timer per connection.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_endpoint_gets_504_at_the_upstream_timeout_and_no_sooner() {
    let bed = with_timeouts("1", "4").await;
    // Longer than the header timeout, shorter than the upstream timeout: answered.
    let mut c = bed.client().await;
    let (took, a) = timed_ask(&mut c, &get("/t/pause/1500")).await;
    assert_eq!(
        (a.status(), a.text().as_str()),
        (200, "/t/pause/1500"),
        "{a:?}"
    );
    assert!(took >= Duration::from_millis(1400), "{took:?}");
    // Then idle: closed about a header timeout after the answer, not at the upstream deadline.
    let start = std::time::Instant::now();
    let (rest, closed) = c.rest_within(Duration::from_secs(5)).await;
    let idle = start.elapsed();
    assert!(closed && rest.is_empty(), "{rest:?}");
    assert!(
        idle > Duration::from_millis(600) && idle < Duration::from_millis(1800),
        "closed {idle:?} after the answer"
    );

    // Past the upstream timeout: 504 at about 4 s, on the lean path and on hyper's (HTTP/1.0).
    let lean = async {
        let mut c = bed.client().await;
        timed_ask(&mut c, &get("/t/pause/9000")).await
    };
    let general = async {
        let mut c = bed.client().await;
        timed_ask(
            &mut c,
            b"GET /t/pause/9000 HTTP/1.0\r\nHost: gw.test\r\n\r\n",
        )
        .await
    };
    let (lean, general) = tokio::join!(lean, general);
    for (took, a) in [lean, general] {
        assert_timed_out(&a);
        assert!(
            took > Duration::from_millis(3800) && took < Duration::from_millis(6000),
            "504 after {took:?}"
        );
    }
}

/// With an upstream timeout shorter than the header timeout, a slow answer is cut at the
/// upstream timeout, and the client's connection stays usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_timeout_shorter_than_the_header_timeout_still_applies() {
    let bed = with_timeouts("5", "1").await;
    let mut c = bed.client().await;
    let (took, a) = timed_ask(&mut c, &get("/t/pause/4000")).await;
    assert_timed_out(&a);
    assert!(
        took > Duration::from_millis(900) && took < Duration::from_millis(3000),
        "504 after {took:?}"
    );
    let a = c.ask(&get("/t/next")).await;
    assert_eq!((a.status(), a.text().as_str()), (200, "/t/next"), "{a:?}");
}
