//! Why a request's signature is refused, worded for the client that sent it and mapped to the
//! error code EC2 itself would answer with, so that SDKs and the `aws` CLI react as they do to AWS.
//! No variant carries a secret, a derived key, the expected signature or the string to sign.

use std::fmt;

use chrono::{DateTime, Utc};

/// A part of the signature a request carries, named as the client knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The `Authorization` header as a whole.
    Authorization,
    /// `Credential=` in the `Authorization` header.
    HeaderCredential,
    /// `SignedHeaders=` in the `Authorization` header.
    HeaderSignedHeaders,
    /// `Signature=` in the `Authorization` header.
    HeaderSignature,
    /// The `x-amz-date` header (or `date`, which stands in when it is absent).
    DateHeader,
    /// The `x-amz-content-sha256` header.
    ContentSha256Header,
    /// The `X-Amz-Algorithm` parameter.
    QueryAlgorithm,
    /// The `X-Amz-Credential` parameter.
    QueryCredential,
    /// The `X-Amz-Date` parameter.
    QueryDate,
    /// The `X-Amz-Expires` parameter.
    QueryExpires,
    /// The `X-Amz-SignedHeaders` parameter.
    QuerySignedHeaders,
    /// The `X-Amz-Signature` parameter.
    QuerySignature,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Authorization => "the Authorization header",
            Self::HeaderCredential => "Credential in the Authorization header",
            Self::HeaderSignedHeaders => "SignedHeaders in the Authorization header",
            Self::HeaderSignature => "Signature in the Authorization header",
            Self::DateHeader => "the x-amz-date header (or date)",
            Self::ContentSha256Header => "the x-amz-content-sha256 header",
            Self::QueryAlgorithm => "the X-Amz-Algorithm parameter",
            Self::QueryCredential => "the X-Amz-Credential parameter",
            Self::QueryDate => "the X-Amz-Date parameter",
            Self::QueryExpires => "the X-Amz-Expires parameter",
            Self::QuerySignedHeaders => "the X-Amz-SignedHeaders parameter",
            Self::QuerySignature => "the X-Amz-Signature parameter",
        })
    }
}

/// Why a request's signature is refused.
#[derive(Debug, thiserror::Error)]
pub enum SigV4Error {
    /// Neither an `Authorization` header nor `X-Amz-*` signing parameters.
    #[error("the request is not signed: it has no Authorization header and no X-Amz-Signature parameter")]
    Unsigned,
    /// Both forms at once: which one counts would be ambiguous.
    #[error("the request is signed twice, by an Authorization header and by X-Amz-* parameters; use one")]
    TwoForms,
    /// A required part is absent.
    #[error("{0} is missing")]
    Missing(Part),
    /// A part given more than once.
    #[error("{0} is given more than once")]
    Repeated(Part),
    /// A part that cannot be read.
    #[error("{part} is malformed: {reason}")]
    Malformed {
        /// Which part.
        part: Part,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An algorithm other than `AWS4-HMAC-SHA256` (SigV2, SigV4a, ...); shortened if long.
    #[error("{0:?} is not a supported signing algorithm: only AWS4-HMAC-SHA256 is")]
    UnsupportedAlgorithm(String),
    /// A header the signature must cover is not among the signed headers.
    #[error("the {0} header must be among the signed headers")]
    MustBeSigned(&'static str),
    /// A signed header the request does not carry.
    #[error("the signed header {0:?} is not in the request")]
    SignedHeaderAbsent(String),
    /// A signed header whose value is not text.
    #[error("the signed header {0:?} has a value that is not UTF-8")]
    SignedHeaderNotText(String),
    /// `x-amz-content-sha256` names no hash (`UNSIGNED-PAYLOAD`, a streaming mode, ...).
    #[error("the x-amz-content-sha256 header does not give the body's SHA-256: unsigned and streaming payloads are not accepted")]
    UnsignedPayload,
    /// `x-amz-content-sha256` gives a hash, but not the body's.
    #[error("the x-amz-content-sha256 header is not the SHA-256 of the body received")]
    PayloadHashMismatch,
    /// The credential scope's day is not the day the request says it was signed.
    #[error("the credential scope's date {scope} is not the date of the request, {request}")]
    ScopeDate {
        /// The scope's `yyyymmdd`.
        scope: String,
        /// The request time's `yyyymmdd`.
        request: String,
    },
    /// Signed too long ago, or in the future, for the allowed clock skew.
    #[error(
        "the request was signed at {signed}, more than 5 minutes from the server's time {now}"
    )]
    Skewed {
        /// The request's signing time.
        signed: DateTime<Utc>,
        /// The server's time.
        now: DateTime<Utc>,
    },
    /// A presigned request used after its `X-Amz-Expires`.
    #[error("the presigned request expired at {expired}; the server's time is {now}")]
    Expired {
        /// `X-Amz-Date` plus `X-Amz-Expires`.
        expired: DateTime<Utc>,
        /// The server's time.
        now: DateTime<Utc>,
    },
    /// `X-Amz-Expires` longer than seven days.
    #[error("X-Amz-Expires is {0} seconds, more than the 7-day maximum of 604800")]
    ExpiresTooLong(u64),
    /// The signature is not the one the secret gives for this request.
    #[error("the signature does not match: the request was not signed with this access key's secret, or was changed after signing")]
    SignatureMismatch,
}

impl SigV4Error {
    /// The error code EC2 answers with for this failure.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unsigned => "MissingAuthenticationToken",
            Self::TwoForms
            | Self::Missing(_)
            | Self::Repeated(_)
            | Self::Malformed { .. }
            | Self::MustBeSigned(_)
            | Self::SignedHeaderAbsent(_)
            | Self::SignedHeaderNotText(_) => "IncompleteSignature",
            Self::UnsupportedAlgorithm(_) | Self::UnsignedPayload | Self::ScopeDate { .. } => {
                "AuthFailure"
            }
            Self::Skewed { .. } | Self::Expired { .. } | Self::ExpiresTooLong(_) => {
                "RequestExpired"
            }
            Self::PayloadHashMismatch | Self::SignatureMismatch => "SignatureDoesNotMatch",
        }
    }

    /// A malformed `part`.
    pub(crate) fn malformed(part: Part, reason: &'static str) -> Self {
        Self::Malformed { part, reason }
    }
}
