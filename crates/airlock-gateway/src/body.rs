//! The bodies on both sides of the proxy as plain enums rather than boxed trait objects, so a
//! request costs no allocation for its bodies' types: what goes to an endpoint ([`OutBody`]) and
//! what the client gets ([`Body`]: an endpoint's answer, which takes its connection back to the
//! pool when it ends, or the gateway's own short answer).

use crate::pool::PooledBody;
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};

/// The answer the client gets.
#[derive(Debug)]
pub enum Body {
    /// The gateway's own answer, whole (`None` once sent, or when empty).
    Full(Option<Bytes>),
    /// An endpoint's answer, streamed.
    Upstream(PooledBody),
}

impl Body {
    /// No body.
    pub fn empty() -> Self {
        Body::Full(None)
    }

    /// A whole body.
    pub fn full(bytes: Bytes) -> Self {
        Body::Full(Some(bytes).filter(|b| !b.is_empty()))
    }
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            Body::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Body::Upstream(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Full(bytes) => bytes.is_none(),
            Body::Upstream(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Body::Upstream(body) => body.size_hint(),
        }
    }
}

/// The request body an endpoint gets.
#[derive(Debug)]
pub enum OutBody {
    /// Read whole beforehand (or empty), so the request can be sent again.
    Full(Option<Bytes>),
    /// Streamed from the client as it arrives.
    Stream(Incoming),
}

impl HttpBody for OutBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            OutBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            OutBody::Stream(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            OutBody::Full(bytes) => bytes.is_none(),
            OutBody::Stream(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            OutBody::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            OutBody::Stream(body) => body.size_hint(),
        }
    }
}
