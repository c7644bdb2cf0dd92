//! Errors as EC2's clients read them: the Query API's XML error document, with EC2's codes, so
//! the `aws` CLI, boto3 and Terraform report a refusal exactly as they would one of EC2's.

use crate::error::ApiError;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// An error the endpoint answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ec2Error {
    /// HTTP status.
    pub status: StatusCode,
    /// EC2's code, e.g. `UnauthorizedOperation`.
    pub code: String,
    /// What is wrong, naming the action, resource, parameter or header.
    pub message: String,
}

impl Ec2Error {
    /// An error with EC2's `code`.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Ec2Error {
        Ec2Error {
            status,
            code: code.to_owned(),
            message: message.into(),
        }
    }

    /// The refusal of a request whose signature cannot be accepted; the same words whether the
    /// key is unknown, disabled or expired, so probing ids learns nothing.
    pub fn auth_failure() -> Ec2Error {
        Ec2Error::new(
            StatusCode::UNAUTHORIZED,
            "AuthFailure",
            "AWS was not able to validate the provided access credentials",
        )
    }
}

impl From<ApiError> for Ec2Error {
    fn from(e: ApiError) -> Ec2Error {
        let message = match &e {
            ApiError::BadRequest {
                field: Some(field),
                message,
            } => format!("invalid value for parameter {field}: {message}"),
            other => other.to_string(),
        };
        let (status, code) = match &e {
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "UnauthorizedOperation".to_owned()),
            ApiError::Aws(cloud) => (
                e.status_code(),
                cloud.code.clone().unwrap_or_else(|| "InternalError".into()),
            ),
            ApiError::BadRequest { .. } => {
                (StatusCode::BAD_REQUEST, "InvalidParameterValue".into())
            }
            ApiError::NotFound(_) => (StatusCode::BAD_REQUEST, "InvalidParameterValue".into()),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "AuthFailure".into()),
            ApiError::Conflict(_) => (StatusCode::BAD_REQUEST, "IncorrectState".into()),
            ApiError::TooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge".into(),
            ),
            ApiError::TooManyRequests { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "RequestLimitExceeded".into(),
            ),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "Unavailable".into()),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError".into()),
        };
        Ec2Error {
            status,
            code,
            message,
        }
    }
}

impl From<super::params::QueryError> for Ec2Error {
    fn from(e: super::params::QueryError) -> Ec2Error {
        Ec2Error::new(StatusCode::BAD_REQUEST, e.code(), e.to_string())
    }
}

/// Escapes text for an XML element.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// A request id for answers the console makes itself.
pub fn request_id() -> String {
    let mut bytes = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    let h = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        h.get(0..8).unwrap_or_default(),
        h.get(8..12).unwrap_or_default(),
        h.get(12..16).unwrap_or_default(),
        h.get(16..20).unwrap_or_default(),
        h.get(20..32).unwrap_or_default()
    )
}

impl IntoResponse for Ec2Error {
    fn into_response(self) -> Response {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{}</Code><Message>{}</Message></Error></Errors><RequestID>{}</RequestID></Response>",
            xml_escape(&self.code),
            xml_escape(&self.message),
            request_id()
        );
        (
            self.status,
            [(header::CONTENT_TYPE, "text/xml;charset=UTF-8")],
            body,
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_cannot_break_out_of_its_element() {
        let e = Ec2Error::new(
            StatusCode::FORBIDDEN,
            "UnauthorizedOperation",
            "</Message><Code>x&",
        );
        let body = xml_escape(&e.message).to_string();
        assert_eq!(body, "&lt;/Message&gt;&lt;Code&gt;x&amp;");
    }

    #[test]
    fn a_denial_is_unauthorized_operation_with_403() {
        let e = Ec2Error::from(ApiError::Forbidden(
            "user bob may not ec2:TerminateInstances".into(),
        ));
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        assert_eq!(e.code, "UnauthorizedOperation");
        assert!(e.message.contains("ec2:TerminateInstances"));
    }

    #[test]
    fn request_ids_look_like_ec2s() {
        let id = request_id();
        assert_eq!(id.len(), 36);
        assert_eq!(id.matches('-').count(), 4);
    }
}
