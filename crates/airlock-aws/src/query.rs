//! Forwarding a decided EC2 Query API request: resolve the account's credentials (assuming its
//! role when it names one, kept until shortly before they expire), sign the form with SigV4
//! (`aws-sigv4`, the SDK's own signer), send it, and hand back EC2's answer as a stream.

use crate::sdk_config;
use airlock_cloud::calls::{is_throttling_code, Outcome};
use airlock_cloud::governed::{self, Call, PATIENCE};
use airlock_cloud::{AnswerBody, Budget, CloudError, QueryAnswer, Target};
use async_trait::async_trait;
use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Credentials resolved per target (by [`crate::cache_key`]), reused while they have more than
/// this left.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);
/// Targets whose credentials are kept at most; beyond it the cache starts again.
const MAX_CACHED: usize = 1000;

/// Resolved credentials per target.
#[derive(Default)]
pub struct CredentialCache {
    entries: Mutex<HashMap<String, Credentials>>,
}

impl CredentialCache {
    async fn get(&self, target: &Target) -> Result<Credentials, CloudError> {
        let key = crate::cache_key(target);
        let fresh = |c: &Credentials| {
            c.expiry()
                .is_none_or(|at| at > SystemTime::now() + REFRESH_BEFORE_EXPIRY)
        };
        if let Some(c) = self.lock().get(&key).filter(|c| fresh(c)) {
            return Ok(c.clone());
        }
        let config = sdk_config(target).await;
        let provider = config
            .credentials_provider()
            .ok_or_else(|| CloudError::local("the account has no credentials provider"))?;
        let credentials = provider.provide_credentials().await.map_err(|e| {
            CloudError::local(format!("cannot resolve the account's credentials: {e}"))
        })?;
        let mut entries = self.lock();
        if entries.len() >= MAX_CACHED {
            entries.clear();
        }
        entries.insert(key, credentials.clone());
        Ok(credentials)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Credentials>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// EC2's endpoint for the target: its own endpoint URL, or AWS's regional one.
fn endpoint(target: &Target) -> String {
    match &target.endpoint_url {
        Some(url) => format!("{}/", url.trim_end_matches('/')),
        None if target.region.starts_with("cn-") => {
            format!("https://ec2.{}.amazonaws.com.cn/", target.region)
        }
        None => format!("https://ec2.{}.amazonaws.com/", target.region),
    }
}

/// The HTTP client forwarding goes through: no proxy from the environment (as the SDK's own
/// clients), bounded connect and read times.
pub fn http_client() -> Result<reqwest::Client, CloudError> {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .read_timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| CloudError::local(format!("cannot build the HTTP client: {e}")))
}

/// The longest error answer read to find its code; longer ones are passed on unread.
const MAX_ERROR_READ: usize = 64 * 1024;

/// [`forward`] in the account's budget: a throttled answer slows the budget down and is tried
/// again while the budget's patience lasts, as every other EC2 call of the account is.
pub async fn governed_forward(
    budget: &Budget,
    http: &reqwest::Client,
    credentials: &CredentialCache,
    target: &Target,
    form: String,
) -> Result<QueryAnswer, CloudError> {
    let action = action_of(&form);
    let call = Call {
        service: "ec2",
        action: &action,
        patience: PATIENCE,
        classify,
    };
    governed::call(budget, call, || async {
        let answer = forward(http, credentials, target, form.clone()).await?;
        unless_throttled(answer).await
    })
    .await
}

/// The `Action` parameter of a form, for metrics: letters and digits only.
fn action_of(form: &str) -> String {
    form.split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
        .filter(|a| !a.is_empty() && a.len() <= 64 && a.bytes().all(|b| b.is_ascii_alphanumeric()))
        .unwrap_or("Unknown")
        .to_owned()
}

/// EC2's error answers come back as answers: their outcome is their status.
fn classify(result: &Result<QueryAnswer, CloudError>) -> Outcome {
    match result {
        Ok(answer) if answer.status >= 500 => Outcome::ServerError,
        Ok(answer) if answer.status >= 400 => Outcome::ClientError,
        other => Outcome::of(other),
    }
}

/// A throttle as an error (so the budget sees it); any other answer as it was, its error body
/// read and handed back whole.
async fn unless_throttled(mut answer: QueryAnswer) -> Result<QueryAnswer, CloudError> {
    if answer.status < 400 {
        return Ok(answer);
    }
    let mut body = Vec::new();
    while let Some(chunk) = answer.body.next_chunk().await? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_ERROR_READ {
            break;
        }
    }
    let text = String::from_utf8_lossy(&body);
    let between = |open: &str, close: &str| {
        let start = text.find(open)? + open.len();
        let len = text.get(start..)?.find(close)?;
        text.get(start..start + len).map(str::to_owned)
    };
    if let Some(code) = between("<Code>", "</Code>").filter(|c| is_throttling_code(c)) {
        return Err(CloudError {
            code: Some(code),
            message: between("<Message>", "</Message>").unwrap_or_default(),
            request_id: answer.request_id,
            retryable: true,
        });
    }
    answer.body = Box::new(Read {
        read: Some(body),
        rest: answer.body,
    });
    Ok(answer)
}

/// An answer's body of which the start was already read.
struct Read {
    read: Option<Vec<u8>>,
    rest: Box<dyn AnswerBody>,
}

#[async_trait]
impl AnswerBody for Read {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, CloudError> {
        match self.read.take() {
            Some(read) => Ok(Some(read)),
            None => self.rest.next_chunk().await,
        }
    }
}

/// Signs `form` for EC2 in the target's region and sends it.
async fn forward(
    http: &reqwest::Client,
    credentials: &CredentialCache,
    target: &Target,
    form: String,
) -> Result<QueryAnswer, CloudError> {
    let creds = credentials.get(target).await?;
    let url = endpoint(target);
    let content_type = "application/x-www-form-urlencoded; charset=utf-8";
    let identity = creds.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&target.region)
        .name("ec2")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| CloudError::local(format!("cannot sign the request: {e}")))?
        .into();
    let headers = [("content-type", content_type)];
    let signable = SignableRequest::new(
        "POST",
        url.as_str(),
        headers.into_iter(),
        SignableBody::Bytes(form.as_bytes()),
    )
    .map_err(|e| CloudError::local(format!("cannot sign the request: {e}")))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| CloudError::local(format!("cannot sign the request: {e}")))?
        .into_parts();
    let mut request = http
        .post(&url)
        .header("content-type", content_type)
        .body(form);
    for (name, value) in instructions.headers() {
        request = request.header(name, value);
    }
    let response = request.send().await.map_err(|e| CloudError {
        code: None,
        message: format!("cannot reach EC2 at {url}: {e}"),
        request_id: None,
        retryable: true,
    })?;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    Ok(QueryAnswer {
        status: response.status().as_u16(),
        content_type: header("content-type"),
        request_id: header("x-amzn-requestid"),
        body: Box::new(Streamed(response)),
    })
}

struct Streamed(reqwest::Response);

#[async_trait]
impl AnswerBody for Streamed {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, CloudError> {
        self.0
            .chunk()
            .await
            .map(|c| c.map(|b| b.to_vec()))
            .map_err(|e| CloudError::local(format!("EC2's answer broke off: {e}")))
    }
}
