//! Finding the payload in an instance's user data, whatever shape the user
//! data has: bare JSON, a MIME document (any depth, any part order, any
//! transfer encoding) or gzip-compressed.

use std::io::Read as _;

use flate2::read::MultiGzDecoder;
use mail_parser::{Message, MessageParser, MimeHeaders as _, PartType};
use serde_json::{Map, Value};

use crate::{Payload, PayloadError, CONTENT_TYPE, PAYLOAD_MARKER, PAYLOAD_VERSION};

/// How many gzip, MIME and nested-message layers are unwrapped at most.
const MAX_DEPTH: usize = 8;

/// Largest decompressed size accepted (a gzip bomb guard; EC2 user data is
/// at most 16 KiB compressed).
const MAX_DECOMPRESSED: usize = 1024 * 1024;

/// MIME types cloud-init decompresses as gzip.
const GZIP_TYPES: &[&str] = &[
    "application/gzip",
    "application/gzip-compressed",
    "application/gzipped",
    "application/x-compress",
    "application/x-compressed",
    "application/x-gunzip",
    "application/x-gzip",
    "application/x-gzip-compressed",
];

/// Find the Airlock payload in `user_data`.
///
/// The payload is found:
/// - as bare JSON: the user data is a JSON object with the
///   [`PAYLOAD_MARKER`](crate::PAYLOAD_MARKER) key;
/// - in a MIME document (recognised as cloud-init does, by `MIME-Version:` in
///   its first 4096 bytes, or by starting with `Content-Type:`): in a part of
///   type [`CONTENT_TYPE`], or any other leaf part whose content is a JSON
///   object with the marker key; at any depth of nested multiparts and
///   `message/rfc822` parts, in any order, with `7bit`, `8bit`, `binary`,
///   `quoted-printable` or `base64` transfer encoding, and inside
///   gzip-compressed parts;
/// - in gzip-compressed user data (magic bytes `1f 8b`), after decompressing.
///
/// When several parts hold payloads, the first one this build can read wins
/// (so a future console may ship a newer version next to a version 1
/// payload). If none can be read, the first error is returned:
/// [`PayloadError::UnsupportedVersion`] or [`PayloadError::Malformed`];
/// [`PayloadError::NotFound`] if nothing claims to be a payload. Errors
/// never quote the payload's values.
pub fn find_payload(user_data: &[u8]) -> Result<Payload, PayloadError> {
    find_in(user_data, 0)
}

fn find_in(data: &[u8], depth: usize) -> Result<Payload, PayloadError> {
    if depth > MAX_DEPTH {
        return Err(PayloadError::malformed(format!(
            "the user data nests more than {MAX_DEPTH} layers of compression or MIME"
        )));
    }
    if is_gzip(data) {
        return find_in(&gunzip(data)?, depth + 1);
    }
    let trimmed = trim_start(data);
    if trimmed.starts_with(b"{") {
        return parse_json(trimmed);
    }
    if looks_like_mime(data) {
        return find_in_mime(data, depth + 1);
    }
    Err(PayloadError::NotFound)
}

fn find_in_mime(data: &[u8], depth: usize) -> Result<Payload, PayloadError> {
    match MessageParser::default().parse(data) {
        Some(message) => search_message(&message, depth),
        None if contains_ci(data, CONTENT_TYPE.as_bytes()) => Err(PayloadError::malformed(
            "the user data names an Airlock payload part but is not a valid MIME document",
        )),
        None => Err(PayloadError::NotFound),
    }
}

fn search_message(message: &Message<'_>, depth: usize) -> Result<Payload, PayloadError> {
    let mut first_error = None;
    for part in &message.parts {
        let (ctype, subtype) = part
            .content_type()
            .map(|ct| {
                (
                    ct.ctype().to_ascii_lowercase(),
                    ct.subtype().map(str::to_ascii_lowercase),
                )
            })
            .unwrap_or_default();
        let full_type = match &subtype {
            Some(sub) => format!("{ctype}/{sub}"),
            None => ctype.clone(),
        };
        let result = match &part.body {
            PartType::Multipart(_) => continue,
            PartType::Message(inner) => {
                if depth >= MAX_DEPTH {
                    Err(PayloadError::malformed(format!(
                        "the user data nests more than {MAX_DEPTH} layers of compression or MIME"
                    )))
                } else {
                    search_message(inner, depth + 1)
                }
            }
            _ => {
                let contents = part.contents();
                if full_type == CONTENT_TYPE {
                    parse_json(trim_start(contents)).map_err(|err| match err {
                        PayloadError::NotFound => PayloadError::malformed(format!(
                            "the {CONTENT_TYPE} part is not a JSON object with the \
                             \"{PAYLOAD_MARKER}\" key"
                        )),
                        other => other,
                    })
                } else if GZIP_TYPES.contains(&full_type.as_str()) || is_gzip(contents) {
                    find_in(contents, depth + 1)
                } else if trim_start(contents).starts_with(b"{") {
                    parse_json(trim_start(contents))
                } else {
                    continue;
                }
            }
        };
        match result {
            Ok(payload) => return Ok(payload),
            Err(PayloadError::NotFound) => {}
            Err(err) => {
                first_error.get_or_insert(err);
            }
        }
    }
    Err(first_error.unwrap_or(PayloadError::NotFound))
}

/// Parse a JSON payload. JSON that is not an object with the marker key is
/// [`PayloadError::NotFound`]: it is somebody else's JSON.
fn parse_json(bytes: &[u8]) -> Result<Payload, PayloadError> {
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(value) => value,
        Err(err) if contains_ci(bytes, PAYLOAD_MARKER.as_bytes()) => {
            // Syntax errors name a position, never the input.
            return Err(PayloadError::malformed(format!("not valid JSON: {err}")));
        }
        Err(_) => return Err(PayloadError::NotFound),
    };
    let Some(object) = value.as_object() else {
        return Err(PayloadError::NotFound);
    };
    let Some(marker) = object.get(PAYLOAD_MARKER) else {
        return Err(PayloadError::NotFound);
    };
    let Some(version) = marker.as_u64() else {
        return Err(PayloadError::malformed(format!(
            "\"{PAYLOAD_MARKER}\" must be the format version, a non-negative integer"
        )));
    };
    if version != u64::from(PAYLOAD_VERSION) {
        return Err(PayloadError::UnsupportedVersion {
            found: version,
            supported: PAYLOAD_VERSION,
        });
    }
    check_fields(object)?;
    serde_json::from_value(value).map_err(|err| {
        // Field types were checked above, so this is rare; serde's messages
        // can quote values, so keep only the ones that cannot.
        let msg = err.to_string();
        if msg.starts_with("missing field") || msg.starts_with("duplicate field") {
            PayloadError::malformed(msg)
        } else {
            PayloadError::malformed("a field has an invalid value")
        }
    })
}

/// Check the type of every known field, so errors can name the field
/// without quoting its value.
fn check_fields(object: &Map<String, Value>) -> Result<(), PayloadError> {
    for name in ["deployment_id", "region"] {
        required_string(object, name, name)?;
    }
    for name in [
        "console_url",
        "endpoint_url",
        "role_arn",
        "external_id",
        "refresh_url",
        "refresh_secret",
    ] {
        optional_string(object, name, name)?;
    }
    check_tasks(object)?;
    let credentials = match object.get("credentials") {
        Some(Value::Object(c)) => c,
        Some(_) => {
            return Err(PayloadError::malformed(
                "field `credentials` must be an object",
            ))
        }
        // Bootstrap mode: the agent exchanges the refresh secret for credentials.
        None if object.contains_key("refresh_secret") && object.contains_key("refresh_url") => {
            return Ok(())
        }
        None => {
            return Err(PayloadError::malformed(
                "field `credentials` is missing (and there is no `refresh_url` with a `refresh_secret` to obtain them)",
            ))
        }
    };
    required_string(credentials, "access_key_id", "credentials.access_key_id")?;
    required_string(
        credentials,
        "secret_access_key",
        "credentials.secret_access_key",
    )?;
    optional_string(credentials, "session_token", "credentials.session_token")?;
    if let Some(expiration) = optional_string(credentials, "expiration", "credentials.expiration")?
    {
        if chrono::DateTime::parse_from_rfc3339(expiration).is_err() {
            return Err(PayloadError::malformed(
                "field `credentials.expiration` is not an RFC 3339 timestamp",
            ));
        }
    }
    Ok(())
}

/// Check the boot tasks' shapes, naming the task (`tasks[2].device`) in errors. Unknown kinds
/// pass: they are read as `BootTask::Unsupported`.
fn check_tasks(object: &Map<String, Value>) -> Result<(), PayloadError> {
    let tasks = match object.get("tasks") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Array(tasks)) => tasks,
        Some(_) => return Err(PayloadError::malformed("field `tasks` must be an array")),
    };
    for (i, task) in tasks.iter().enumerate() {
        let at = format!("tasks[{i}]");
        let Value::Object(task) = task else {
            return Err(PayloadError::malformed(format!(
                "field `{at}` must be an object"
            )));
        };
        let kind = required_string(task, "task", &format!("{at}.task"))?;
        match kind {
            "tag_instance" => {
                let path = format!("{at}.tags");
                match task.get("tags") {
                    Some(Value::Object(tags)) if tags.values().all(Value::is_string) => {}
                    Some(_) => {
                        return Err(PayloadError::malformed(format!(
                            "field `{path}` must be an object of strings"
                        )))
                    }
                    None => {
                        return Err(PayloadError::malformed(format!(
                            "field `{path}` is missing"
                        )))
                    }
                }
            }
            "attach_volume" => {
                check_filters(task, &at, true)?;
                required_string(task, "device", &format!("{at}.device"))?;
            }
            "associate_address" => {
                let id = optional_string(task, "allocation_id", &format!("{at}.allocation_id"))?;
                let has_filters = check_filters(task, &at, false)?;
                if id.is_none() && !has_filters {
                    return Err(PayloadError::malformed(format!(
                        "`{at}` needs `allocation_id` or `filters`"
                    )));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// `filters`: an object of arrays of strings. Returns whether it is present and not empty.
fn check_filters(
    task: &Map<String, Value>,
    at: &str,
    required: bool,
) -> Result<bool, PayloadError> {
    let path = format!("{at}.filters");
    match task.get("filters") {
        None | Some(Value::Null) if required => Err(PayloadError::malformed(format!(
            "field `{path}` is missing"
        ))),
        None | Some(Value::Null) => Ok(false),
        Some(Value::Object(filters))
            if filters.values().all(|v| {
                v.as_array()
                    .is_some_and(|values| values.iter().all(Value::is_string))
            }) =>
        {
            if required && filters.is_empty() {
                return Err(PayloadError::malformed(format!(
                    "field `{path}` must name at least one filter"
                )));
            }
            Ok(!filters.is_empty())
        }
        Some(_) => Err(PayloadError::malformed(format!(
            "field `{path}` must be an object of arrays of strings"
        ))),
    }
}

fn required_string<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<&'a str, PayloadError> {
    optional_string(object, key, path)?
        .ok_or_else(|| PayloadError::malformed(format!("field `{path}` is missing")))
}

fn optional_string<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a str>, PayloadError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(PayloadError::malformed(format!(
            "field `{path}` must be a string"
        ))),
    }
}

/// Whether `data` starts with the gzip magic bytes.
pub(crate) fn is_gzip(data: &[u8]) -> bool {
    data.starts_with(&[0x1f, 0x8b])
}

/// Decompress gzip data (all members), refusing more than 1 MiB of output.
pub(crate) fn gunzip(data: &[u8]) -> Result<Vec<u8>, PayloadError> {
    let mut out = Vec::new();
    MultiGzDecoder::new(data)
        .take(MAX_DECOMPRESSED as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            PayloadError::malformed(format!(
                "the data starts like gzip but does not decompress: {e}"
            ))
        })?;
    if out.len() > MAX_DECOMPRESSED {
        return Err(PayloadError::malformed(format!(
            "the gzip-compressed data expands to more than {MAX_DECOMPRESSED} bytes"
        )));
    }
    Ok(out)
}

/// cloud-init's test for a MIME document: `MIME-Version:` (any case) in the
/// first 4096 bytes.
pub(crate) fn cloud_init_sees_mime(data: &[u8]) -> bool {
    contains_ci(data.get(..4096).unwrap_or(data), b"mime-version:")
}

/// cloud-init's test, or data that starts with `Content-Type:`.
fn looks_like_mime(data: &[u8]) -> bool {
    cloud_init_sees_mime(data)
        || trim_start(data)
            .get(..13)
            .is_some_and(|s| s.eq_ignore_ascii_case(b"content-type:"))
}

fn trim_start(data: &[u8]) -> &[u8] {
    let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
    let start = data
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(data.len());
    data.get(start..).unwrap_or_default()
}

fn contains_ci(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || haystack
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}
