//! The error every cloud call returns: AWS's own code and message, and whether a retry may help.

/// A failed EC2 or STS call, carrying AWS's code, message and request id when AWS sent them.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", self.describe())]
pub struct CloudError {
    /// AWS's error code, e.g. `InvalidAMIID.NotFound` or `AuthFailure`.
    pub code: Option<String>,
    /// AWS's message, or what went wrong before AWS answered.
    pub message: String,
    /// The request id AWS assigned, for support cases and the audit log.
    pub request_id: Option<String>,
    /// True when the call never reached AWS or AWS asked to slow down: safe to try again later.
    pub retryable: bool,
}

impl CloudError {
    /// An error raised before any request left (bad configuration, unreachable endpoint).
    pub fn local(message: impl Into<String>) -> Self {
        CloudError {
            code: None,
            message: message.into(),
            request_id: None,
            retryable: false,
        }
    }

    fn describe(&self) -> String {
        match &self.code {
            Some(code) => format!("{code}: {}", self.message),
            None => self.message.clone(),
        }
    }
}
