//! Building EC2 user data that carries a payload.
//!
//! Without an operator script the user data is the bare payload JSON. With
//! one, it is a MIME `multipart/mixed` document in the form cloud-init reads
//! (see `docs/payload.md`): the operator's script first, as its own part with
//! the content type cloud-init would have inferred from its first bytes, then
//! the payload as a part of type [`CONTENT_TYPE`], which cloud-init logs as an
//! unknown type and otherwise ignores.

use std::io::Write as _;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use flate2::write::GzEncoder;
use flate2::Compression;
use rand::RngCore as _;

use crate::find::{cloud_init_sees_mime, gunzip, is_gzip};
use crate::{find_payload, Payload, PayloadError, CONTENT_TYPE, MAX_USER_DATA, PAYLOAD_VERSION};

/// The prefixes cloud-init recognises at the start of user data, longest
/// first (cloud-init matches the longest), with the content type each means.
const STARTS: &[(&str, &str)] = &[
    ("#cloud-config-archive", "text/cloud-config-archive"),
    ("#cloud-config-jsonp", "text/cloud-config-jsonp"),
    ("## template: jinja", "text/jinja2"),
    ("#cloud-boothook", "text/cloud-boothook"),
    ("#include-once", "text/x-include-once-url"),
    ("#cloud-config", "text/cloud-config"),
    ("#part-handler", "text/part-handler"),
    ("#upstart-job", "text/upstart-job"),
    ("#include", "text/x-include-url"),
    ("#!", "text/x-shellscript"),
];

/// RFC 5322 limit on a line's length, excluding the line break.
const MAX_LINE: usize = 998;

/// The MIME content type cloud-init gives user data that starts with
/// `script`'s first bytes: `text/x-shellscript` for `#!`,
/// `text/cloud-config` for `#cloud-config`, and so on for `#include`,
/// `#include-once`, `#cloud-boothook`, `#part-handler`,
/// `#cloud-config-archive`, `#cloud-config-jsonp`, `#upstart-job` and
/// `## template: jinja`. Anything else is `text/plain`, which cloud-init
/// inspects the same way and, finding no known start, ignores, just as it
/// would ignore that user data on its own.
pub fn script_content_type(script: &[u8]) -> &'static str {
    STARTS
        .iter()
        .find(|(start, _)| script.starts_with(start.as_bytes()))
        .map_or("text/plain", |(_, ctype)| ctype)
}

/// Build EC2 user data carrying `payload`, alongside the operator's own user
/// data `user_script` if there is one.
///
/// - No script (or an empty one): the bare payload JSON.
/// - A script: a MIME multi-part document with the script as one part and
///   the payload as another. A gzip-compressed script is decompressed first.
///   A script that is itself a MIME document (cloud-init's test: it says
///   `MIME-Version:` in its first 4096 bytes, and it starts with a header) is
///   nested whole as one part, so its own parts keep their types and order.
///
/// If the result exceeds [`MAX_USER_DATA`], it is gzip-compressed (cloud-init
/// and [`find_payload`] both accept that); if it still does not fit,
/// [`PayloadError::TooLarge`].
pub fn build_user_data(
    payload: &Payload,
    user_script: Option<&[u8]>,
) -> Result<Vec<u8>, PayloadError> {
    if payload.version != PAYLOAD_VERSION {
        return Err(PayloadError::UnsupportedVersion {
            found: payload.version.into(),
            supported: PAYLOAD_VERSION,
        });
    }
    let json = payload.to_json()?;
    let script = match user_script {
        Some(s) if is_gzip(s) => Some(gunzip(s).map_err(|e| PayloadError::InvalidUserScript {
            reason: format!("it looks gzip-compressed but {}", reason_of(e)),
        })?),
        Some(s) => Some(s.to_vec()),
        None => None,
    };
    let document = match script {
        Some(script) if !script.iter().all(u8::is_ascii_whitespace) => {
            match find_payload(&script) {
                Err(PayloadError::NotFound) => {}
                _ => {
                    return Err(PayloadError::InvalidUserScript {
                        reason: "it already contains an Airlock payload; pass only the \
                                 operator's own user data"
                            .to_owned(),
                    })
                }
            }
            multipart(&script, &json)?
        }
        _ => json,
    };
    if document.len() <= MAX_USER_DATA {
        return Ok(document);
    }
    let compressed = gzip(&document)?;
    if compressed.len() <= MAX_USER_DATA {
        Ok(compressed)
    } else {
        Err(PayloadError::TooLarge {
            size: compressed.len(),
            max: MAX_USER_DATA,
        })
    }
}

fn reason_of(err: PayloadError) -> String {
    match err {
        PayloadError::Malformed { reason } => reason,
        other => other.to_string(),
    }
}

/// The two-part MIME document: the script (or the operator's nested MIME
/// document), then the payload.
fn multipart(script: &[u8], json: &[u8]) -> Result<Vec<u8>, PayloadError> {
    let script_part = if cloud_init_sees_mime(script) && starts_with_header(script) {
        if std::str::from_utf8(script).is_err() {
            return Err(PayloadError::InvalidUserScript {
                reason: "it is a MIME document but not valid UTF-8, which cloud-init requires"
                    .to_owned(),
            });
        }
        // A MIME entity is headers + body, exactly what a part is.
        script.to_vec()
    } else {
        let ctype = script_content_type(script);
        let charset = if !script.is_ascii() && std::str::from_utf8(script).is_ok() {
            "; charset=\"utf-8\""
        } else {
            ""
        };
        leaf_part(&format!("{ctype}{charset}"), "user-data", script)
    };
    let payload_part = leaf_part(CONTENT_TYPE, "airlock-payload.json", json);

    let boundary = (0..32)
        .map(|_| new_boundary())
        .find(|b| !contains(&script_part, b.as_bytes()) && !contains(&payload_part, b.as_bytes()))
        .ok_or_else(|| PayloadError::InvalidUserScript {
            reason: "no MIME boundary could be found that does not occur in it".to_owned(),
        })?;

    let mut doc = Vec::with_capacity(script_part.len() + payload_part.len() + 256);
    doc.extend_from_slice(
        format!("Content-Type: multipart/mixed; boundary=\"{boundary}\"\nMIME-Version: 1.0\n\n")
            .as_bytes(),
    );
    for part in [&script_part, &payload_part] {
        doc.extend_from_slice(format!("--{boundary}\n").as_bytes());
        doc.extend_from_slice(part);
        // The line break before a delimiter belongs to the delimiter, so the
        // part's own content (and its final newline, if any) is kept intact.
        doc.push(b'\n');
    }
    doc.extend_from_slice(format!("--{boundary}--\n").as_bytes());
    Ok(doc)
}

/// One non-multipart part: headers, blank line, body. ASCII text with
/// short lines goes as `7bit`; anything else as `base64`, which is how
/// cloud-init (Python's email package) gets non-ASCII bytes back exactly.
fn leaf_part(content_type: &str, filename: &str, body: &[u8]) -> Vec<u8> {
    let seven_bit = body.is_ascii()
        && !body.contains(&0)
        && !body.contains(&b'\r')
        && body
            .split(|&b| b == b'\n')
            .all(|line| line.len() <= MAX_LINE);
    let cte = if seven_bit { "7bit" } else { "base64" };
    let mut part = format!(
        "Content-Type: {content_type}\nContent-Transfer-Encoding: {cte}\n\
         Content-Disposition: attachment; filename=\"{filename}\"\n\n"
    )
    .into_bytes();
    if seven_bit {
        part.extend_from_slice(body);
    } else {
        let encoded = STANDARD.encode(body);
        for (i, line) in encoded.as_bytes().chunks(76).enumerate() {
            if i > 0 {
                part.push(b'\n');
            }
            part.extend_from_slice(line);
        }
    }
    part
}

/// A boundary in the style of Python's email package: only characters RFC
/// 2046 allows, quoted in the header.
fn new_boundary() -> String {
    let mut bytes = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("===============airlock{hex}==")
}

fn starts_with_header(data: &[u8]) -> bool {
    let first = data.split(|&b| b == b'\n').next().unwrap_or_default();
    match first.iter().position(|&b| b == b':') {
        Some(colon) if colon > 0 => first
            .iter()
            .take(colon)
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-'),
        _ => false,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn gzip(data: &[u8]) -> Result<Vec<u8>, PayloadError> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder
        .write_all(data)
        .and_then(|()| encoder.finish())
        .map_err(|e| PayloadError::malformed(format!("cannot gzip the user data: {e}")))
}
