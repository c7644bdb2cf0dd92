//! The bodies on both sides of the proxy as plain enums rather than boxed trait objects, so a
//! request costs no allocation for its bodies' types: what goes to an endpoint ([`OutBody`]) and
//! what the client gets ([`Body`]: an endpoint's answer, which takes its connection back to the
//! pool when it ends, or the gateway's own short answer).

use crate::pool::PooledBody;
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};

/// A body held whole (`None` once sent, or when empty), or streamed from `S` as it arrives.
#[derive(Debug)]
pub enum FullOr<S> {
    /// Whole: the gateway's own answer, or a request body read beforehand so that it can be
    /// sent again.
    Full(Option<Bytes>),
    /// Streamed.
    Stream(S),
}

/// The answer the client gets: the gateway's own, or an endpoint's (which takes its connection
/// back to the pool when it ends).
pub type Body = FullOr<PooledBody>;

/// The request body an endpoint gets.
pub type OutBody = FullOr<Incoming>;

impl<S> FullOr<S> {
    /// No body.
    pub fn empty() -> Self {
        FullOr::Full(None)
    }

    /// A whole body.
    pub fn full(bytes: Bytes) -> Self {
        FullOr::Full(Some(bytes).filter(|b| !b.is_empty()))
    }
}

impl<S> HttpBody for FullOr<S>
where
    S: HttpBody<Data = Bytes, Error = hyper::Error> + Unpin,
{
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            FullOr::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            FullOr::Stream(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            FullOr::Full(bytes) => bytes.is_none(),
            FullOr::Stream(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            FullOr::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            FullOr::Stream(body) => body.size_hint(),
        }
    }
}
