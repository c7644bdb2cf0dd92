//! The error type for building and finding payloads. Messages name what is
//! wrong and never contain a secret.

/// Everything that can go wrong building user data or finding a payload in it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// The user data holds no Airlock payload.
    #[error("no Airlock payload in the user data")]
    NotFound,

    /// The user data holds a payload of a version this build does not read.
    #[error("the Airlock payload is version {found}, this build reads only version {supported}")]
    UnsupportedVersion {
        /// Version found in the payload's marker key.
        found: u64,
        /// The version this build reads ([`crate::PAYLOAD_VERSION`]).
        supported: u32,
    },

    /// Something claims to be a payload but is not a valid one.
    #[error("malformed Airlock payload: {reason}")]
    Malformed {
        /// What is wrong (never quotes a secret).
        reason: String,
    },

    /// The operator's user data script cannot be combined with a payload.
    #[error("cannot use the user data script: {reason}")]
    InvalidUserScript {
        /// What is wrong with it.
        reason: String,
    },

    /// The user data does not fit EC2's limit even gzip-compressed.
    #[error("the user data is {size} bytes even gzip-compressed; EC2 accepts at most {max} bytes")]
    TooLarge {
        /// Size of the compressed user data.
        size: usize,
        /// The limit ([`crate::MAX_USER_DATA`]).
        max: usize,
    },
}

impl PayloadError {
    pub(crate) fn malformed(reason: impl Into<String>) -> Self {
        PayloadError::Malformed {
            reason: reason.into(),
        }
    }
}
