//! A JSON body extractor whose errors name the field at fault (`tags[2].key: …`), and that
//! bounds how long a body may take to arrive.

use crate::error::ApiError;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;

/// How long a request body may take to arrive, once its headers have.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Like `axum::Json`, but a malformed body becomes a 400 naming the JSON path of the bad field.
pub struct Body<T>(pub T);

impl<T, S> FromRequest<S> for Body<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !json_type {
            return Err(ApiError::BadRequest {
                field: None,
                message: "the request body must be JSON (Content-Type: application/json)".into(),
            });
        }
        let bytes = read_within(req, state, BODY_TIMEOUT).await?;
        parse(&bytes).map(Body)
    }
}

/// The whole body, if it arrives within `deadline`: a body sent a byte at a time would hold
/// its connection and task for as long as the sender likes, and bodies here are small.
async fn read_within<S: Send + Sync>(
    req: Request,
    state: &S,
    deadline: std::time::Duration,
) -> Result<axum::body::Bytes, ApiError> {
    tokio::time::timeout(deadline, axum::body::Bytes::from_request(req, state))
        .await
        .map_err(|_| ApiError::BadRequest {
            field: None,
            message: format!(
                "the request body did not arrive within {} s",
                deadline.as_secs_f64()
            ),
        })?
        .map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge("the request body is larger than this endpoint accepts".into())
            } else {
                ApiError::BadRequest {
                    field: None,
                    message: format!("cannot read the request body: {e}"),
                }
            }
        })
}

/// Parses JSON, reporting the path of the first bad field.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = if inner.is_syntax() || inner.is_eof() {
            format!("malformed JSON: {inner}")
        } else {
            airlock_os::without_value(&inner.to_string())
        };
        let field = missing_field(&message)
            .map(|name| {
                if path == "." {
                    name.to_owned()
                } else {
                    format!("{path}.{name}")
                }
            })
            .or_else(|| (path != ".").then_some(path));
        ApiError::BadRequest { field, message }
    })
}

fn missing_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A body that sends its first bytes and then nothing, ever.
    struct Dripping(bool);

    impl futures_core::Stream for Dripping {
        type Item = Result<axum::body::Bytes, std::io::Error>;

        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            if self.0 {
                std::task::Poll::Pending
            } else {
                self.0 = true;
                std::task::Poll::Ready(Some(Ok(axum::body::Bytes::from_static(b"{\"na"))))
            }
        }
    }

    #[tokio::test]
    async fn attacker_dripping_a_body_is_cut_off_at_the_deadline() {
        let request = Request::builder()
            .method("POST")
            .body(axum::body::Body::from_stream(Dripping(false)))
            .unwrap();
        let deadline = std::time::Duration::from_millis(200);
        let started = std::time::Instant::now();
        match read_within(request, &(), deadline).await {
            Err(ApiError::BadRequest { message, .. }) => {
                assert!(message.contains("did not arrive"), "{message}")
            }
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("a body that never ended was accepted"),
        }
        assert!(started.elapsed() >= deadline && started.elapsed() < deadline * 5);
        // A body that does arrive is read.
        let request = Request::builder()
            .body(axum::body::Body::from("{}"))
            .unwrap();
        assert_eq!(
            &read_within(request, &(), deadline).await.unwrap()[..],
            b"{}"
        );
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct T {
        name: String,
        tags: Vec<Tag>,
    }
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Tag {
        key: String,
    }

    fn field_of(json: &str) -> Option<String> {
        match parse::<T>(json.as_bytes()).unwrap_err() {
            ApiError::BadRequest { field, .. } => field,
            other => panic!("{other}"),
        }
    }

    #[test]
    fn names_nested_field() {
        assert_eq!(
            field_of(r#"{"name":"a","tags":[{"key":"x"},{"key":3}]}"#).as_deref(),
            Some("tags[1].key")
        );
    }

    #[test]
    fn names_missing_field() {
        assert_eq!(field_of(r#"{"tags":[]}"#).as_deref(), Some("name"));
    }

    #[test]
    fn a_wrongly_typed_value_is_not_echoed() {
        let err = parse::<T>(br#"{"name": 912873465, "tags": []}"#).unwrap_err();
        assert!(!err.to_string().contains("912873465"), "{err}");
        assert!(err.to_string().contains("invalid type: integer"), "{err}");
        let err =
            parse::<T>(br#"{"name": "a", "tags": [{"key": "x"}, "s3cr3t-value"]}"#).unwrap_err();
        assert!(!err.to_string().contains("s3cr3t-value"), "{err}");
    }

    #[test]
    fn syntax_error_says_malformed() {
        let err = parse::<T>(b"{\"name\": ").unwrap_err();
        assert!(err.to_string().starts_with("malformed JSON"), "{err}");
    }
}
