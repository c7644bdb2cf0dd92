//! The body of every error answer, so a client can show the code, the field at fault and AWS's
//! request id rather than a status line.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The JSON body of every error response: `{"error": {...}}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// An error as the API reports it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable code: `BadRequest`, `Unauthorized`, `NotFound`, `Conflict`, or AWS's own code.
    pub code: String,
    /// A sentence for people.
    pub message: String,
    /// The request field at fault, as a JSON path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// AWS's request id when EC2 or STS refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_request_id: Option<String>,
}

impl std::fmt::Display for ErrorBody {
    /// `Code: message (field) [AWS request id …]`, as the CLI prints it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let e = &self.error;
        match &e.field {
            Some(field) => write!(f, "{}: {} ({field})", e.code, e.message)?,
            None => write!(f, "{}: {}", e.code, e.message)?,
        }
        if let Some(id) = &e.aws_request_id {
            write!(f, " [AWS request id {id}]")?;
        }
        Ok(())
    }
}
