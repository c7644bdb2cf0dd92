//! The one error type of the request path: who failed (the client, an upstream, or the gateway
//! itself) and whether trying another endpoint is safe. It decides the status code and the
//! `x-airlock-error` header the client gets, and the proxy retries on another endpoint only
//! when it says the request never left (and the request can be sent again).

use http::StatusCode;

/// Which side of the proxy a failure belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    /// The downstream client sent something we cannot serve (no route, bad request).
    Client,
    /// An upstream endpoint failed (refused, timed out, broke the connection).
    Upstream,
    /// The gateway itself (no healthy endpoint, internal bug).
    Internal,
}

/// A failed proxied request.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ProxyError {
    /// Who failed.
    pub who: Who,
    /// True when the request never reached an upstream, so sending it to another is safe.
    pub retry_safe: bool,
    /// The status code the client receives.
    pub status: StatusCode,
    /// A sentence for the client and the log; never contains secrets.
    pub message: String,
}

impl ProxyError {
    /// No route matched the request's host and path.
    pub fn no_route(host: &str, path: &str) -> Self {
        ProxyError {
            who: Who::Client,
            retry_safe: false,
            status: StatusCode::NOT_FOUND,
            message: format!("no route for host {host:?} and path {path:?}"),
        }
    }

    /// The route's upstream has no endpoint that may take traffic.
    pub fn no_healthy_endpoint(upstream: &str) -> Self {
        ProxyError {
            who: Who::Internal,
            retry_safe: false,
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: format!("upstream {upstream} has no healthy endpoint"),
        }
    }

    /// The connection to an endpoint could not be opened: the request never left.
    pub fn connect(endpoint: &str, cause: impl std::fmt::Display) -> Self {
        ProxyError {
            who: Who::Upstream,
            retry_safe: true,
            status: StatusCode::BAD_GATEWAY,
            message: format!("cannot connect to {endpoint}: {cause}"),
        }
    }

    /// The endpoint failed after the request was (maybe) sent.
    pub fn upstream(endpoint: &str, cause: impl std::fmt::Display) -> Self {
        ProxyError {
            who: Who::Upstream,
            retry_safe: false,
            status: StatusCode::BAD_GATEWAY,
            message: format!("upstream {endpoint} failed: {cause}"),
        }
    }

    /// The endpoint did not answer in time.
    pub fn timeout(endpoint: &str) -> Self {
        ProxyError {
            who: Who::Upstream,
            retry_safe: false,
            status: StatusCode::GATEWAY_TIMEOUT,
            message: format!("upstream {endpoint} did not answer in time"),
        }
    }

    /// The client's request could not be read.
    pub fn bad_request(cause: impl std::fmt::Display) -> Self {
        ProxyError {
            who: Who::Client,
            retry_safe: false,
            status: StatusCode::BAD_REQUEST,
            message: format!("cannot read the request: {cause}"),
        }
    }

    /// A bug or resource problem inside the gateway.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        ProxyError {
            who: Who::Internal,
            retry_safe: false,
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("gateway error: {cause}"),
        }
    }
}
