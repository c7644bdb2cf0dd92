//! A request as it arrives, owned, with ways to build one from HTTP text, from an `http::Request`
//! signed by the SDK, or from a botocore fixture.

use chrono::{DateTime, Utc};
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, HOST};
use http::HeaderMap;

use crate::{Claim, Request, SigV4Error};

/// A request as received on the wire.
#[derive(Debug, Clone)]
pub(super) struct Wire {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Wire {
    pub fn request(&self) -> Request<'_> {
        Request {
            method: &self.method,
            path: &self.path,
            query: &self.query,
            headers: &self.headers,
            body: &self.body,
        }
    }

    pub fn parse(&self) -> Result<Claim, SigV4Error> {
        crate::parse(&self.request())
    }

    /// Parses, then verifies with `secret` at `now`.
    pub fn verify(&self, secret: &str, now: DateTime<Utc>) -> Result<Claim, SigV4Error> {
        let claim = self.parse()?;
        crate::verify(&self.request(), &claim, secret.as_bytes(), now)?;
        Ok(claim)
    }

    pub fn set_header(&mut self, name: &str, value: &str) {
        self.headers.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }

    /// A request written as HTTP/1.1 text, as the AWS test suite writes them; header values
    /// lose their surrounding blanks as an HTTP server's parser drops them.
    pub fn from_http_text(text: &str) -> Self {
        let (head, rest) = text.split_once("\n\n").unwrap_or((text, ""));
        let mut lines = head.lines();
        let (method, target) = lines.next().unwrap().split_once(' ').unwrap();
        let target = target.strip_suffix(" HTTP/1.1").unwrap_or(target);
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut headers = HeaderMap::new();
        for line in lines {
            let (name, value) = line.split_once(':').unwrap();
            headers.append(
                HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
                HeaderValue::from_str(value.trim_matches([' ', '\t'])).unwrap(),
            );
        }
        let length = headers
            .get(CONTENT_LENGTH)
            .map_or(0, |length| length.to_str().unwrap().parse().unwrap());
        Self {
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
            headers,
            body: rest.as_bytes()[..length].to_vec(),
        }
    }

    /// What a server receives for `request`: its HTTP client adds `host` from the URI.
    pub fn from_http(request: &http::Request<Vec<u8>>) -> Self {
        let uri = request.uri();
        let mut headers = request.headers().clone();
        headers.insert(HOST, uri.authority().unwrap().as_str().parse().unwrap());
        Self {
            method: request.method().as_str().to_owned(),
            path: uri.path().to_owned(),
            query: uri.query().unwrap_or_default().to_owned(),
            headers,
            body: request.body().clone(),
        }
    }
}

/// `yyyymmddThhmmssZ` as a time.
pub(super) fn at(text: &str) -> DateTime<Utc> {
    crate::time::parse_basic(text).unwrap()
}
