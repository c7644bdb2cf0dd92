//! EC2's Query API passed through: a form-encoded request the console has already decided,
//! signed with an account's credentials and sent to EC2, whose answer comes back as it was.

use crate::CloudError;
use async_trait::async_trait;

/// The body of EC2's answer, read chunk by chunk so a large listing is never held whole.
#[async_trait]
pub trait AnswerBody: Send {
    /// The next chunk; `None` at the end.
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, CloudError>;
}

/// EC2's answer to a forwarded Query API request.
pub struct QueryAnswer {
    /// The HTTP status.
    pub status: u16,
    /// The `Content-Type` EC2 sent.
    pub content_type: Option<String>,
    /// The request id from EC2's `x-amzn-requestid` header, when sent.
    pub request_id: Option<String>,
    /// The body, as EC2 sends it.
    pub body: Box<dyn AnswerBody>,
}

impl std::fmt::Debug for QueryAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryAnswer")
            .field("status", &self.status)
            .field("content_type", &self.content_type)
            .field("request_id", &self.request_id)
            .finish_non_exhaustive()
    }
}
