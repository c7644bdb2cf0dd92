//! The API's one error type: what went wrong, which field, and the HTTP status it maps to.

pub use airlock_api::{ErrorBody, ErrorDetail};
use airlock_cloud::CloudError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or a value is out of range.
    #[error("{message}")]
    BadRequest {
        /// The field at fault.
        field: Option<String>,
        /// What is wrong with it.
        message: String,
    },
    /// No valid credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// The named thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The thing exists already, or the request conflicts with its state.
    #[error("{0}")]
    Conflict(String),
    /// EC2 or STS refused; AWS's own code and message.
    #[error("{0}")]
    Aws(#[from] CloudError),
    /// A fault inside the console (database, vault).
    #[error("{0}")]
    Internal(String),
    /// The console cannot do it safely now (the audit log cannot be written); try again.
    #[error("{0}")]
    Unavailable(String),
    /// The request body is larger than the endpoint accepts.
    #[error("{0}")]
    TooLarge(String),
    /// Too many attempts: try again after the wait (`Retry-After`).
    #[error("{message}")]
    TooManyRequests {
        /// What to do.
        message: String,
        /// How long to wait.
        retry_after: std::time::Duration,
    },
}

impl ApiError {
    /// A bad value in a named field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// The HTTP status it maps to.
    pub fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Aws(e) if e.retryable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Aws(e) if is_client_fault(e) => StatusCode::BAD_REQUEST,
            ApiError::Aws(_) => StatusCode::BAD_GATEWAY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    /// The body sent to the client.
    pub fn detail(&self) -> ErrorDetail {
        let (code, field, aws_request_id) = match self {
            ApiError::BadRequest { field, .. } => ("BadRequest".to_owned(), field.clone(), None),
            ApiError::Unauthorized(_) => ("Unauthorized".to_owned(), None, None),
            ApiError::Forbidden(_) => ("Forbidden".to_owned(), None, None),
            ApiError::NotFound(_) => ("NotFound".to_owned(), None, None),
            ApiError::Conflict(_) => ("Conflict".to_owned(), None, None),
            ApiError::Aws(e) => (
                e.code.clone().unwrap_or_else(|| "AwsError".to_owned()),
                None,
                e.request_id.clone(),
            ),
            ApiError::Internal(_) => ("Internal".to_owned(), None, None),
            ApiError::Unavailable(_) => ("Unavailable".to_owned(), None, None),
            ApiError::TooManyRequests { .. } => ("TooManyRequests".to_owned(), None, None),
            ApiError::TooLarge(_) => ("PayloadTooLarge".to_owned(), None, None),
        };
        let message = match self {
            ApiError::Aws(e) => e.message.clone(),
            other => other.to_string(),
        };
        ErrorDetail {
            code,
            message,
            field,
            aws_request_id,
        }
    }
}

/// AWS codes that mean the request itself was wrong (unknown AMI, bad parameter, bad key).
fn is_client_fault(e: &CloudError) -> bool {
    e.code.as_deref().is_some_and(|c| {
        c.starts_with("Invalid")
            || c.ends_with(".NotFound")
            || c.ends_with(".Malformed")
            || matches!(
                c,
                "MissingParameter" | "UnknownParameter" | "AuthFailure" | "UnauthorizedOperation"
            )
    })
}

impl From<airlock_store::StoreError> for ApiError {
    fn from(e: airlock_store::StoreError) -> Self {
        match e {
            airlock_store::StoreError::Conflict(what) => {
                ApiError::Conflict(format!("{what} already exists"))
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<airlock_vault::VaultError> for ApiError {
    fn from(e: airlock_vault::VaultError) -> Self {
        ApiError::Internal(format!("vault: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let mut response = (
            status,
            axum::Json(ErrorBody {
                error: self.detail(),
            }),
        )
            .into_response();
        if let ApiError::TooManyRequests { retry_after, .. } = &self {
            let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(seconds),
            );
        }
        response
    }
}

/// The result of every handler.
pub type ApiResult<T> = Result<T, ApiError>;
