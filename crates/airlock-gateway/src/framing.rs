//! HTTP/1.1 messages as the lean path ([`crate::h1`]) relays them, as pure functions over
//! `httparse`'s parsed heads: which requests it serves itself (everything unusual goes to
//! hyper), the head an endpoint gets and the head the client gets (hop-by-hop headers removed,
//! the client's address added), how an answer's body ends (RFC 9112 §6.3), and the chunked
//! coding both ways. Nothing here reads or writes a socket, so every rule has a unit test.
//!
//! Framing is never copied from one side to the other: the endpoint gets a `Content-Length`
//! the gateway has checked (or no body), and the client gets the endpoint's checked
//! `Content-Length` or the gateway's own chunked coding. A request with `Transfer-Encoding`,
//! two `Content-Length`s or anything else ambiguous is not served here at all.

use std::fmt::Write as _;

/// Request bodies up to this size are read whole before the request is sent, so a retry can
/// send them again; larger ones go to the general path, which streams them.
pub const MAX_BODY: u64 = 64 * 1024;

/// The headers every message loses on the way through (RFC 9110 §7.6.1), lower-case: one
/// list for both paths.
pub(crate) const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
    "keep-alive",
    "proxy-connection",
];

/// What the lean path needs of a request it serves.
#[derive(Debug, PartialEq, Eq)]
pub struct RequestInfo<'a> {
    /// The first `Host` header, if any and readable.
    pub host: Option<&'a str>,
    /// The body's length (0 without one).
    pub body_len: usize,
    /// The client asked to close the connection after this answer.
    pub close: bool,
}

/// Why a request goes to the general path instead: nothing is wrong with it necessarily, it
/// is only something the lean path leaves to hyper (which answers errors the same way it
/// always has).
#[derive(Debug, PartialEq, Eq)]
pub struct Unusual(pub &'static str);

/// Whether the lean path serves `req` (a complete head), and what it needs of it.
pub fn check_request<'a>(req: &httparse::Request<'_, 'a>) -> Result<RequestInfo<'a>, Unusual> {
    if req.version != Some(1) {
        return Err(Unusual("not HTTP/1.1"));
    }
    if req.method.is_none_or(|m| m.eq_ignore_ascii_case("CONNECT")) {
        return Err(Unusual("CONNECT"));
    }
    if !req.path.is_some_and(|p| p.starts_with('/')) {
        return Err(Unusual("not an origin-form target"));
    }
    if !req.path.is_some_and(plain_target) {
        return Err(Unusual("a target the general path must read"));
    }
    let mut info = RequestInfo {
        host: None,
        body_len: 0,
        close: false,
    };
    let mut length = None;
    let mut seen_host = false;
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(Unusual("Transfer-Encoding"));
        } else if name.eq_ignore_ascii_case("expect") {
            return Err(Unusual("Expect"));
        } else if name.eq_ignore_ascii_case("content-length") {
            if length.is_some() {
                return Err(Unusual("more than one Content-Length"));
            }
            length = Some(parse_length(h.value).ok_or(Unusual("bad Content-Length"))?);
        } else if name.eq_ignore_ascii_case("host") && !seen_host {
            // The first Host only, read as the general path reads it.
            seen_host = true;
            info.host = Some(h.value)
                .filter(|v| is_visible_ascii(v))
                .and_then(|v| std::str::from_utf8(v).ok());
        } else if name.eq_ignore_ascii_case("connection") {
            info.close |= tokens(h.value).any(|t| t.eq_ignore_ascii_case(b"close"));
        }
    }
    let length = length.unwrap_or(0);
    if length > MAX_BODY {
        return Err(Unusual("a body too large to hold"));
    }
    info.body_len = usize::try_from(length).map_err(|_| Unusual("bad Content-Length"))?;
    Ok(info)
}

/// A target the `http` crate would take as it is (no fragment to cut, no byte it refuses or
/// must check as UTF-8), so relaying its bytes as received means what the general path means.
fn plain_target(target: &str) -> bool {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let in_path = |b: &u8| matches!(b, 0x21..=0x7e) && !matches!(b, b'#' | b'<' | b'>' | b'`');
    let in_query = |b: &u8| matches!(b, 0x21..=0x7e) && !matches!(b, b'#' | b'<' | b'>' | b'"');
    path.as_bytes().iter().all(in_path) && query.as_bytes().iter().all(in_query)
}

/// A `Content-Length` value: digits only (no sign, no spaces inside), at most 18 of them.
fn parse_length(value: &[u8]) -> Option<u64> {
    let v = value.trim_ascii();
    if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// The comma-separated tokens of a header value, trimmed.
pub(crate) fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|b| *b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// Which headers must not cross the proxy: the hop-by-hop ones and those the message's
/// `Connection` headers name (looked for only when one names more than `close` or
/// `keep-alive`, which is rare).
///
/// hyper's path applies the same rule to a header map ([`crate::proxy`]'s `strip_hop_by_hop`).
struct HopByHop<'a, 'b> {
    headers: &'a [httparse::Header<'b>],
    names_more: bool,
}

impl<'a, 'b> HopByHop<'a, 'b> {
    fn of(headers: &'a [httparse::Header<'b>]) -> Self {
        let names_more = connection_tokens(headers)
            .any(|t| !t.eq_ignore_ascii_case(b"close") && !t.eq_ignore_ascii_case(b"keep-alive"));
        HopByHop {
            headers,
            names_more,
        }
    }

    fn contains(&self, name: &str) -> bool {
        HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
            || (self.names_more
                && connection_tokens(self.headers).any(|t| t.eq_ignore_ascii_case(name.as_bytes())))
    }
}

/// A `Connection` token other than `close` and `keep-alive`, which name no header.
pub(crate) fn names_a_header(token: &[u8]) -> bool {
    !token.eq_ignore_ascii_case(b"close") && !token.eq_ignore_ascii_case(b"keep-alive")
}

/// The tokens of every `Connection` header of a message.
fn connection_tokens<'a>(headers: &'a [httparse::Header<'_>]) -> impl Iterator<Item = &'a [u8]> {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .flat_map(|h| tokens(h.value))
}

/// A header value `HeaderValue::to_str` would accept (visible ASCII and tabs), as the general
/// path reads a client's `X-Forwarded-For`.
fn is_visible_ascii(value: &[u8]) -> bool {
    value
        .iter()
        .all(|b| *b == b'\t' || (0x20..0x7f).contains(b))
}

fn header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Appends the head an endpoint gets for `req` with `target` (the path and query, rewritten or
/// not): hop-by-hop headers removed, `X-Forwarded-For` ending with the client's address and
/// `X-Forwarded-Proto` set, every other header as the client sent it.
pub fn write_request_head(
    out: &mut Vec<u8>,
    req: &httparse::Request<'_, '_>,
    target: &[u8],
    peer_ip: &[u8],
    https: bool,
) {
    out.extend_from_slice(req.method.unwrap_or("GET").as_bytes());
    out.push(b' ');
    out.extend_from_slice(target);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let hop_by_hop = HopByHop::of(req.headers);
    let is_forwarded_for =
        |h: &&httparse::Header<'_>| h.name.eq_ignore_ascii_case("x-forwarded-for");
    for h in req.headers.iter() {
        if !is_forwarded_for(&h)
            && !h.name.eq_ignore_ascii_case("x-forwarded-proto")
            && !hop_by_hop.contains(h.name)
        {
            header(out, h.name.as_bytes(), h.value);
        }
    }
    out.extend_from_slice(b"x-forwarded-for: ");
    let sent = req.headers.iter().filter(is_forwarded_for).map(|h| h.value);
    write_forwarded_for(out, sent, peer_ip);
    out.extend_from_slice(b"\r\n");
    header(
        out,
        b"x-forwarded-proto",
        if https { b"https" } else { b"http" },
    );
    out.extend_from_slice(b"\r\n");
}

/// The `X-Forwarded-For` list an endpoint gets, on either path: every line the client sent, in
/// order, as one comma-separated list (RFC 9110 §5.3: several lines of a list field are one
/// list), then the client's address. Values `HeaderValue::to_str` would refuse, and empty ones,
/// are left out.
pub(crate) fn write_forwarded_for<'v>(
    out: &mut Vec<u8>,
    sent: impl Iterator<Item = &'v [u8]>,
    peer_ip: &[u8],
) {
    for value in sent.map(<[u8]>::trim_ascii) {
        if !value.is_empty() && is_visible_ascii(value) {
            out.extend_from_slice(value);
            out.extend_from_slice(b", ");
        }
    }
    out.extend_from_slice(peer_ip);
}

/// How an answer's body ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyEnd {
    /// No body (HEAD, 204, 304).
    Empty,
    /// After this many bytes.
    Length(u64),
    /// With the chunked coding's last chunk.
    Chunked,
    /// When the endpoint closes the connection.
    Close,
}

/// What the lean path needs of an endpoint's final answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseInfo {
    /// How its body ends.
    pub end: BodyEnd,
    /// The connection may carry another request afterwards.
    pub reusable: bool,
}

/// An answer the gateway cannot relay safely.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadResponse(pub &'static str);

/// How the answer `resp` (a complete, final head) to a request (`head`: it was HEAD) ends, and
/// whether its connection can be used again (RFC 9112 §6.3 and §9.3).
pub fn check_response(
    resp: &httparse::Response<'_, '_>,
    head: bool,
) -> Result<ResponseInfo, BadResponse> {
    let code = resp.code.unwrap_or(0);
    let mut chunked = None;
    let mut length: Option<u64> = None;
    let mut close = resp.version != Some(1);
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // The last coding of the last header decides; anything but chunked runs to close.
            let last = tokens(h.value).last().unwrap_or_default();
            chunked = Some(last.eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let n = parse_length(h.value).ok_or(BadResponse("a bad Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(BadResponse("two different Content-Lengths"));
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("connection") {
            close |= tokens(h.value).any(|t| t.eq_ignore_ascii_case(b"close"));
        }
    }
    let end = if head || code == 204 || code == 304 {
        BodyEnd::Empty
    } else {
        match (chunked, length) {
            (Some(true), _) => BodyEnd::Chunked,
            (Some(false), _) | (None, None) => BodyEnd::Close,
            (None, Some(n)) => BodyEnd::Length(n),
        }
    };
    // Both framings at once may be an attempt to smuggle: the connection is not used again.
    let ambiguous = chunked.is_some() && length.is_some();
    Ok(ResponseInfo {
        end,
        reusable: !close && !ambiguous && end != BodyEnd::Close,
    })
}

/// Appends the head the client gets for the endpoint's answer: hop-by-hop headers removed, the
/// body framed as `end` says (the endpoint's `Content-Length`, or chunked by the gateway),
/// `Date` (made by `date`, only then) added when missing, `Connection: close` when the gateway closes after it.
pub fn write_response_head(
    out: &mut Vec<u8>,
    resp: &httparse::Response<'_, '_>,
    end: BodyEnd,
    close: bool,
    date: impl FnOnce() -> [u8; 29],
) {
    // httparse reads exactly three digits; written by hand, as `write!` costs more than the
    // rest of the line.
    let code = resp.code.unwrap_or(502);
    let digit = |n: u16| b'0' + (n % 10) as u8;
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(&[digit(code / 100), digit(code / 10), digit(code), b' ']);
    out.extend_from_slice(resp.reason.unwrap_or_default().as_bytes());
    out.extend_from_slice(b"\r\n");
    let rechunked = matches!(end, BodyEnd::Chunked | BodyEnd::Close);
    let mut has_date = false;
    let mut has_length = false;
    let hop_by_hop = HopByHop::of(resp.headers);
    for h in resp.headers.iter() {
        let name = h.name;
        if hop_by_hop.contains(name) {
            continue;
        }
        if name.eq_ignore_ascii_case("content-length") {
            if rechunked || has_length {
                continue;
            }
            has_length = true;
        }
        has_date |= name.eq_ignore_ascii_case("date");
        header(out, name.as_bytes(), h.value);
    }
    if rechunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if !has_date {
        header(out, b"date", &date());
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends a whole answer of the gateway's own: a plain-text body (left out for HEAD).
pub fn write_own_response(
    out: &mut Vec<u8>,
    status: http::StatusCode,
    who: &str,
    body: &str,
    head: bool,
    close: bool,
    date: &[u8],
) {
    let _ = write!(
        Buf(out),
        "HTTP/1.1 {} {}\r\ncontent-type: text/plain; charset=utf-8\r\nx-airlock-error: {who}\r\ncontent-length: {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    );
    header(out, b"date", date);
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !head {
        out.extend_from_slice(body.as_bytes());
    }
}

/// `fmt::Write` into a byte buffer, for numbers in heads.
struct Buf<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Buf<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Appends one chunk of the chunked coding (nothing for empty data: that would end the body).
pub fn write_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let _ = write!(Buf(out), "{:x}\r\n", data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The chunked coding's end (no trailers).
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// A malformed chunked body.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed chunked body: {0}")]
pub struct ChunkError(&'static str);

/// Longest chunk-size line (with extensions) and trailer section accepted.
const MAX_CHUNK_LINE: usize = 4096;
const MAX_TRAILERS: usize = 16 * 1024;

/// Where a [`ChunkedDecoder`] is in the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkState {
    /// In a chunk-size line: the size so far, its digits, whether an extension started, and
    /// the line's length.
    Size {
        size: u64,
        digits: u8,
        ext: bool,
        line: usize,
    },
    /// The `\n` ending a size line.
    SizeLf(u64),
    /// Inside a chunk's data, this much left.
    Data(u64),
    /// The `\r\n` after a chunk's data.
    DataCr,
    DataLf,
    /// In the trailer section: the current line's length and the section's.
    Trailer {
        line: usize,
        total: usize,
    },
    /// The body has ended.
    Done,
}

/// An incremental decoder of the chunked coding: it yields the data and finds the end, with
/// every line bounded, whatever the endpoint sends.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: ChunkState,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder {
            state: ChunkState::Size {
                size: 0,
                digits: 0,
                ext: false,
                line: 0,
            },
        }
    }
}

impl ChunkedDecoder {
    /// True once the last chunk and the trailers have been read.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Decodes from the start of `input`: how many bytes were consumed and the data among
    /// them (a sub-slice of `input`), if any. Call again with the rest until `input` is used
    /// up or [`ChunkedDecoder::is_done`].
    pub fn decode<'a>(&mut self, input: &'a [u8]) -> Result<(usize, &'a [u8]), ChunkError> {
        if self.is_done() {
            return Ok((0, &[]));
        }
        let mut i = 0;
        while let Some(&b) = input.get(i) {
            if let ChunkState::Data(left) = self.state {
                let n = usize::try_from(left)
                    .unwrap_or(usize::MAX)
                    .min(input.len() - i);
                let left = left - n as u64;
                self.state = if left == 0 {
                    ChunkState::DataCr
                } else {
                    ChunkState::Data(left)
                };
                return Ok((i + n, input.get(i..i + n).unwrap_or_default()));
            }
            self.state = self.step(b)?;
            i += 1;
            if self.state == ChunkState::Done {
                break;
            }
        }
        Ok((i, &[]))
    }

    /// The state after one byte outside chunk data.
    fn step(&self, b: u8) -> Result<ChunkState, ChunkError> {
        use ChunkState::*;
        Ok(match self.state {
            Size {
                size,
                digits,
                ext,
                line,
            } => {
                if line >= MAX_CHUNK_LINE {
                    return Err(ChunkError("chunk-size line too long"));
                }
                let line = line + 1;
                match b {
                    b'\r' if digits > 0 => SizeLf(size),
                    b'\n' if digits > 0 => end_of_size(size),
                    _ if ext => Size {
                        size,
                        digits,
                        ext,
                        line,
                    },
                    b';' | b' ' | b'\t' if digits > 0 => Size {
                        size,
                        digits,
                        ext: true,
                        line,
                    },
                    _ => {
                        let d = (b as char)
                            .to_digit(16)
                            .ok_or(ChunkError("bad chunk size"))?;
                        if digits >= 15 {
                            return Err(ChunkError("chunk size too large"));
                        }
                        Size {
                            size: size * 16 + u64::from(d),
                            digits: digits + 1,
                            ext,
                            line,
                        }
                    }
                }
            }
            SizeLf(size) if b == b'\n' => end_of_size(size),
            SizeLf(_) => return Err(ChunkError("bad chunk-size line ending")),
            DataCr if b == b'\r' => DataLf,
            DataCr | DataLf if b == b'\n' => Size {
                size: 0,
                digits: 0,
                ext: false,
                line: 0,
            },
            DataCr | DataLf => return Err(ChunkError("chunk data not followed by CRLF")),
            Trailer { total, .. } if total >= MAX_TRAILERS => {
                return Err(ChunkError("trailers too long"))
            }
            Trailer { line, total } => match b {
                b'\n' if line == 0 => Done,
                b'\n' => Trailer {
                    line: 0,
                    total: total + 1,
                },
                b'\r' => Trailer {
                    line,
                    total: total + 1,
                },
                _ => Trailer {
                    line: line + 1,
                    total: total + 1,
                },
            },
            Data(_) | Done => self.state,
        })
    }
}

fn end_of_size(size: u64) -> ChunkState {
    if size == 0 {
        ChunkState::Trailer { line: 0, total: 0 }
    } else {
        ChunkState::Data(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_req<'h, 'b>(
        raw: &'b [u8],
        headers: &'h mut [httparse::Header<'b>],
    ) -> httparse::Request<'h, 'b> {
        let mut req = httparse::Request::new(headers);
        assert!(req.parse(raw).unwrap().is_complete());
        req
    }

    fn check(raw: &[u8]) -> Result<(Option<String>, usize, bool), Unusual> {
        let mut h = [httparse::EMPTY_HEADER; 16];
        let req = parse_req(raw, &mut h);
        check_request(&req).map(|i| (i.host.map(str::to_owned), i.body_len, i.close))
    }

    #[test]
    fn plain_requests_are_served_and_anything_ambiguous_goes_to_the_general_path() {
        assert_eq!(
            check(b"GET /a?b HTTP/1.1\r\nHost: x.example\r\n\r\n"),
            Ok((Some("x.example".into()), 0, false))
        );
        assert_eq!(
            check(b"POST / HTTP/1.1\r\nContent-Length: 5\r\nConnection: keep-alive, Close\r\n\r\n"),
            Ok((None, 5, true))
        );
        for (raw, why) in [
            (&b"GET / HTTP/1.0\r\n\r\n"[..], "not HTTP/1.1"),
            (b"CONNECT a:443 HTTP/1.1\r\n\r\n", "CONNECT"),
            (
                b"GET http://a/ HTTP/1.1\r\n\r\n",
                "not an origin-form target",
            ),
            (b"OPTIONS * HTTP/1.1\r\n\r\n", "not an origin-form target"),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                "Transfer-Encoding",
            ),
            (
                b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
                "Expect",
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
                "more than one Content-Length",
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n",
                "bad Content-Length",
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 1 1\r\n\r\n",
                "bad Content-Length",
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 65537\r\n\r\n",
                "a body too large to hold",
            ),
        ] {
            assert_eq!(
                check(raw),
                Err(Unusual(why)),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn a_target_is_relayed_as_received_only_when_the_http_crate_would_take_it_unchanged() {
        for b in 0..=255u8 {
            for target in [
                [b"/a".as_slice(), &[b], b"b"].concat(),
                [b"/a?x".as_slice(), &[b], b"y"].concat(),
            ] {
                let Ok(target) = String::from_utf8(target) else {
                    continue;
                };
                if plain_target(&target) {
                    let parsed = http::uri::PathAndQuery::try_from(target.as_str());
                    assert_eq!(
                        parsed.map(|p| p.as_str().to_owned()).ok(),
                        Some(target.clone()),
                        "byte {b:#x}"
                    );
                }
            }
        }
        assert!(plain_target(
            "/a/b-c_d.e~f!$&'()*+,;=:@%20{x}|?q=1&r=[2]{}|`^\\"
        ));
        for target in ["/a#frag", "/a<b", "/a?x\"y", "/\u{e9}"] {
            assert!(!plain_target(target), "{target}");
        }
    }

    fn upstream_head(raw: &[u8], peer: &[u8], https: bool) -> String {
        let mut h = [httparse::EMPTY_HEADER; 16];
        let req = parse_req(raw, &mut h);
        let mut out = Vec::new();
        write_request_head(&mut out, &req, req.path.unwrap().as_bytes(), peer, https);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_client_cannot_pass_hop_by_hop_headers_or_forge_its_forwarded_headers() {
        let head = upstream_head(
            b"GET /p?q HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\n\
              Keep-Alive: 5\r\nProxy-Authorization: Basic x\r\nTE: trailers\r\nUpgrade: websocket\r\n\
              Proxy-Connection: keep-alive\r\nX-Forwarded-Proto: https\r\nX-Forwarded-For: 10.1.2.3\r\n\
              X-Forwarded-For: 10.9.9.9\r\nAccept: */*\r\n\r\n",
            b"127.0.0.1",
            false,
        );
        assert_eq!(
            head,
            "GET /p?q HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\
             x-forwarded-for: 10.1.2.3, 10.9.9.9, 127.0.0.1\r\nx-forwarded-proto: http\r\n\r\n"
        );
        let head = upstream_head(
            b"GET / HTTP/1.1\r\nX-Forwarded-For: \xff\r\nX-Forwarded-For:  \r\n\r\n",
            b"::1",
            true,
        );
        assert_eq!(
            head,
            "GET / HTTP/1.1\r\nx-forwarded-for: ::1\r\nx-forwarded-proto: https\r\n\r\n"
        );
    }

    fn answer(raw: &[u8], head: bool) -> Result<(ResponseInfo, String), BadResponse> {
        let mut h = [httparse::EMPTY_HEADER; 16];
        let mut resp = httparse::Response::new(&mut h);
        assert!(resp.parse(raw).unwrap().is_complete());
        let info = check_response(&resp, head)?;
        let mut out = Vec::new();
        write_response_head(&mut out, &resp, info.end, false, || {
            *b"Thu, 01 Jan 1970 00:00:00 GMT"
        });
        Ok((info, String::from_utf8(out).unwrap()))
    }

    fn end_of(raw: &[u8], head: bool) -> (BodyEnd, bool) {
        let (i, _) = answer(raw, head).unwrap();
        (i.end, i.reusable)
    }

    #[test]
    fn an_answer_ends_as_rfc_9112_says_and_ambiguous_ones_are_not_reused() {
        use BodyEnd::*;
        assert_eq!(
            end_of(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", false),
            (Length(3), true)
        );
        assert_eq!(
            end_of(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", true),
            (Empty, true)
        );
        assert_eq!(
            end_of(b"HTTP/1.1 204 No Content\r\n\r\n", false),
            (Empty, true)
        );
        assert_eq!(
            end_of(
                b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
                false
            ),
            (Empty, true)
        );
        assert_eq!(
            end_of(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                false
            ),
            (Chunked, true)
        );
        assert_eq!(
            end_of(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                false
            ),
            (Close, false)
        );
        assert_eq!(end_of(b"HTTP/1.1 200 OK\r\n\r\n", false), (Close, false));
        assert_eq!(
            end_of(
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: Close\r\n\r\n",
                false
            ),
            (Length(3), false)
        );
        assert_eq!(
            end_of(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n", false),
            (Length(3), false)
        );
        assert_eq!(
            end_of(
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
                false
            ),
            (Chunked, false)
        );
        assert_eq!(
            end_of(
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
                false
            ),
            (Length(3), true)
        );
        assert_eq!(
            answer(
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
                false
            )
            .unwrap_err(),
            BadResponse("two different Content-Lengths")
        );
        assert_eq!(
            answer(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", false).unwrap_err(),
            BadResponse("a bad Content-Length")
        );
    }

    #[test]
    fn an_endpoint_cannot_pass_hop_by_hop_headers_and_its_framing_is_rewritten() {
        let (_, head) = answer(
            b"HTTP/1.1 200 Fine\r\nConnection: x-internal\r\nX-Internal: 1\r\nKeep-Alive: timeout=1\r\n\
              Transfer-Encoding: chunked\r\nContent-Length: 3\r\nDate: Mon\r\nX-Ok: y\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!(
            head,
            "HTTP/1.1 200 Fine\r\nDate: Mon\r\nX-Ok: y\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        let (_, head) = answer(b"HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n", false).unwrap();
        assert_eq!(
            head,
            "HTTP/1.1 404 \r\nContent-Length: 0\r\ndate: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\n"
        );
    }

    fn decode_all(mut input: &[u8]) -> Result<(Vec<u8>, usize), ChunkError> {
        let mut d = ChunkedDecoder::default();
        let (mut data, mut used) = (Vec::new(), 0);
        // One byte at a time as well as whole: the result must not depend on the split.
        while !input.is_empty() && !d.is_done() {
            let (n, chunk) = d.decode(&input[..1.max(input.len() / 2)])?;
            data.extend_from_slice(chunk);
            input = &input[n..];
            used += n;
        }
        assert!(d.is_done(), "not done");
        Ok((data, used))
    }

    #[test]
    fn chunked_bodies_decode_whatever_their_split_and_malformed_ones_are_refused() {
        let body = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\nGET /next";
        let (data, used) = decode_all(body).unwrap();
        assert_eq!(data, b"hello world");
        assert_eq!(&body[used..], b"GET /next");
        assert_eq!(
            decode_all(b"A\nabcdefghij\n0\n\n").unwrap().0,
            b"abcdefghij"
        );
        for bad in [
            &b"x\r\n"[..],
            b"\r\n",
            b"5\r\nhello0\r\n\r\n",
            b"ffffffffffffffff\r\n",
            b"5\rx",
        ] {
            assert!(decode_all(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let long = [b"1;".to_vec(), vec![b'a'; MAX_CHUNK_LINE]].concat();
        assert_eq!(
            decode_all(&long).unwrap_err(),
            ChunkError("chunk-size line too long")
        );
        let mut out = Vec::new();
        write_chunk(&mut out, b"hello world");
        write_chunk(&mut out, b"");
        out.extend_from_slice(LAST_CHUNK);
        assert_eq!(out, b"b\r\nhello world\r\n0\r\n\r\n");
    }
}
