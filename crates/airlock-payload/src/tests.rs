//! Tests for building user data and finding the payload in it.

use std::io::Write as _;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::TimeZone as _;
use flate2::write::GzEncoder;
use flate2::Compression;
use mail_parser::{MessageParser, MimeHeaders as _, PartType};

use super::*;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const TOKEN: &str = "FwoGZXIvYXdzEXAMPLESESSIONTOKENxyz";

fn payload() -> Payload {
    let mut credentials = Credentials::new("AKIAIOSFODNN7EXAMPLE", SecretString::from(SECRET));
    credentials.session_token = Some(SecretString::from(TOKEN));
    credentials.expiration = Some(chrono::Utc.with_ymd_and_hms(2030, 1, 2, 3, 4, 5).unwrap());
    let mut p = Payload::new("dep-123", "eu-west-1", credentials);
    p.console_url = Some("https://airlock.example.com".to_owned());
    p.endpoint_url = Some("http://127.0.0.1:5000".to_owned());
    p.role_arn = Some("arn:aws:iam::123456789012:role/airlock".to_owned());
    p.external_id = Some("ext-1".to_owned());
    p
}

fn assert_same(a: &Payload, b: &Payload) {
    assert_eq!(a.version, b.version);
    assert_eq!(a.deployment_id, b.deployment_id);
    assert_eq!(a.region, b.region);
    assert_eq!(a.console_url, b.console_url);
    assert_eq!(a.endpoint_url, b.endpoint_url);
    assert_eq!(a.role_arn, b.role_arn);
    assert_eq!(a.external_id, b.external_id);
    assert_eq!(a.refresh_url, b.refresh_url);
    assert_eq!(a.tasks, b.tasks);
    assert_eq!(
        a.refresh_secret
            .as_ref()
            .map(|t| t.expose_secret().to_owned()),
        b.refresh_secret
            .as_ref()
            .map(|t| t.expose_secret().to_owned())
    );
    let (x, y) = (
        a.credentials.as_ref().unwrap(),
        b.credentials.as_ref().unwrap(),
    );
    assert_eq!(x.access_key_id, y.access_key_id);
    assert_eq!(
        x.secret_access_key.expose_secret(),
        y.secret_access_key.expose_secret()
    );
    assert_eq!(
        x.session_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned()),
        y.session_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned())
    );
    assert_eq!(x.expiration, y.expiration);
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn boundary_of(doc: &[u8]) -> String {
    let text = String::from_utf8_lossy(doc);
    let start = text.find("boundary=\"").unwrap() + "boundary=\"".len();
    let end = start + text[start..].find('"').unwrap();
    text[start..end].to_owned()
}

/// The leaf parts of a MIME document: (content type, decoded contents).
fn leaf_parts(doc: &[u8]) -> Vec<(String, Vec<u8>)> {
    let message = MessageParser::default().parse(doc).unwrap();
    message
        .parts
        .iter()
        .filter(|p| !matches!(p.body, PartType::Multipart(_)))
        .map(|p| {
            let ct = p.content_type().unwrap();
            (
                format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or_default()),
                p.contents().to_vec(),
            )
        })
        .collect()
}

/// The raw body of the first part of a document built by `build_user_data`.
fn first_part_body(doc: &str) -> String {
    let boundary = boundary_of(doc.as_bytes());
    let first = doc.split(&format!("--{boundary}")).nth(1).unwrap();
    let body = &first[first.find("\n\n").unwrap() + 2..];
    body.strip_suffix('\n').unwrap().to_owned()
}

#[test]
fn bare_round_trip() {
    let p = payload();
    let data = build_user_data(&p, None).unwrap();
    assert!(data.starts_with(b"{\"airlock_payload\":1,"), "marker first");
    assert_same(&find_payload(&data).unwrap(), &p);
    // An empty script is no script.
    assert_eq!(build_user_data(&p, Some(b"")).unwrap(), data);
    assert_eq!(build_user_data(&p, Some(b" \n")).unwrap(), data);
}

#[test]
fn optional_fields_may_be_absent_or_null_and_unknown_keys_are_ignored() {
    let json = br#"{"airlock_payload":1,"deployment_id":"d","region":"r",
        "console_url":null,"future_field":{"x":1},
        "credentials":{"access_key_id":"A","secret_access_key":"S"}}"#;
    let p = find_payload(json).unwrap();
    assert_eq!(p.version, 1);
    assert!(p.console_url.is_none() && p.credentials.unwrap().session_token.is_none());
    let minimal = Payload::new("d", "r", Credentials::new("A", SecretString::from("S")));
    let text = String::from_utf8(minimal.to_json().unwrap()).unwrap();
    assert!(
        !text.contains("null") && !text.contains("session_token"),
        "{text}"
    );
}

#[test]
fn shell_script_round_trip_and_exact_headers() {
    let p = payload();
    let script = b"#!/bin/bash\necho hello > /tmp/hello\n";
    let doc = build_user_data(&p, Some(script)).unwrap();
    let text = std::str::from_utf8(&doc).unwrap();
    let boundary = boundary_of(&doc);

    // What cloud-init needs: a multipart/mixed top-level Content-Type with a
    // boundary, and MIME-Version within the first 4096 bytes.
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        format!("Content-Type: multipart/mixed; boundary=\"{boundary}\"")
    );
    assert_eq!(lines.next().unwrap(), "MIME-Version: 1.0");
    assert_eq!(lines.next().unwrap(), "");
    assert_eq!(lines.next().unwrap(), format!("--{boundary}"));
    assert_eq!(lines.next().unwrap(), "Content-Type: text/x-shellscript");
    assert_eq!(lines.next().unwrap(), "Content-Transfer-Encoding: 7bit");
    assert_eq!(
        lines.next().unwrap(),
        "Content-Disposition: attachment; filename=\"user-data\""
    );
    assert_eq!(lines.next().unwrap(), "");
    assert!(text.ends_with(&format!("\n--{boundary}--\n")));
    assert!(text.contains(&format!("\n--{boundary}\nContent-Type: {CONTENT_TYPE}\n")));
    assert_eq!(text.matches(&format!("--{boundary}")).count(), 3);
    // Boundary: RFC 2046 characters only, at most 70 of them.
    assert!(boundary.len() <= 70);
    assert!(boundary
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"'()+_,-./:=?".contains(&b)));

    let parts = leaf_parts(&doc);
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].0, "text/x-shellscript");
    assert_eq!(parts[0].1, script, "script kept byte for byte");
    assert_eq!(parts[1].0, CONTENT_TYPE);
    assert_same(&find_payload(&doc).unwrap(), &p);
}

#[test]
fn cloud_config_and_other_starts_get_cloud_init_types() {
    let cases: &[(&[u8], &str)] = &[
        (b"#!/bin/sh\n", "text/x-shellscript"),
        (b"#cloud-config\npackages: [jq]\n", "text/cloud-config"),
        (
            b"#cloud-config-archive\n- type: text/x-shellscript\n",
            "text/cloud-config-archive",
        ),
        (b"#cloud-config-jsonp\n[]\n", "text/cloud-config-jsonp"),
        (b"#include\nhttps://example.com/a\n", "text/x-include-url"),
        (
            b"#include-once\nhttps://example.com/a\n",
            "text/x-include-once-url",
        ),
        (b"#cloud-boothook\n#!/bin/sh\n", "text/cloud-boothook"),
        (
            b"#part-handler\ndef list_types(): pass\n",
            "text/part-handler",
        ),
        (b"#upstart-job\n", "text/upstart-job"),
        (b"## template: jinja\n#cloud-config\n", "text/jinja2"),
        (b"echo no shebang\n", "text/plain"),
        (b"<powershell>\n</powershell>\n", "text/plain"),
    ];
    for (script, ctype) in cases {
        assert_eq!(script_content_type(script), *ctype);
        let doc = build_user_data(&payload(), Some(script)).unwrap();
        let parts = leaf_parts(&doc);
        assert_eq!(parts[0].0, *ctype);
        assert_eq!(parts[0].1, *script);
        find_payload(&doc).unwrap();
    }
}

#[test]
fn non_utf8_and_non_ascii_scripts_are_base64() {
    let p = payload();
    let binary: &[u8] = b"#!/bin/sh\necho \xff\xfe\x00 done\n";
    let doc = build_user_data(&p, Some(binary)).unwrap();
    let text = std::str::from_utf8(&doc).expect("the document itself is UTF-8");
    assert!(text.contains("Content-Type: text/x-shellscript\nContent-Transfer-Encoding: base64\n"));
    // (mail-parser converts text parts to UTF-8, so decode the raw base64.)
    let b64 = first_part_body(text);
    assert_eq!(STANDARD.decode(b64.replace('\n', "")).unwrap(), binary);
    assert_same(&find_payload(&doc).unwrap(), &p);

    let utf8 = "#!/bin/sh\necho 'héllo ✓'\n".as_bytes();
    let doc = build_user_data(&p, Some(utf8)).unwrap();
    let text = std::str::from_utf8(&doc).unwrap();
    assert!(text.contains(
        "Content-Type: text/x-shellscript; charset=\"utf-8\"\nContent-Transfer-Encoding: base64\n"
    ));
    let body_start = text.find("base64\n").unwrap();
    assert!(text[body_start..].is_ascii() || text.is_ascii());
    assert_eq!(leaf_parts(&doc)[0].1, utf8);
}

#[test]
fn long_lines_are_base64() {
    let script = format!("#!/bin/sh\necho {}\n", "x".repeat(2000));
    let doc = build_user_data(&payload(), Some(script.as_bytes())).unwrap();
    let text = std::str::from_utf8(&doc).unwrap();
    assert!(text.lines().all(|l| l.len() <= 998));
    assert_eq!(leaf_parts(&doc)[0].1, script.as_bytes());
    find_payload(&doc).unwrap();
}

#[test]
fn gzip_user_data() {
    let p = payload();
    let bare = build_user_data(&p, None).unwrap();
    assert_same(&find_payload(&gzip(&bare)).unwrap(), &p);
    let doc = build_user_data(&p, Some(b"#!/bin/sh\ntrue\n")).unwrap();
    assert_same(&find_payload(&gzip(&doc)).unwrap(), &p);
    // A gzip-compressed script is decompressed and placed as usual.
    let doc = build_user_data(&p, Some(&gzip(b"#cloud-config\n{}\n"))).unwrap();
    assert_eq!(
        leaf_parts(&doc)[0],
        (
            "text/cloud-config".to_owned(),
            b"#cloud-config\n{}\n".to_vec()
        )
    );
    // Bad gzip is malformed, not a panic.
    assert!(matches!(
        find_payload(b"\x1f\x8b\x08garbage"),
        Err(PayloadError::Malformed { .. })
    ));
}

#[test]
fn large_user_data_is_gzipped_or_refused() {
    let p = payload();
    let big = format!("#!/bin/sh\n{}", "echo compressible line\n".repeat(2000));
    assert!(big.len() > MAX_USER_DATA);
    let data = build_user_data(&p, Some(big.as_bytes())).unwrap();
    assert!(data.len() <= MAX_USER_DATA);
    assert!(data.starts_with(&[0x1f, 0x8b]));
    assert_same(&find_payload(&data).unwrap(), &p);

    // Incompressible: pseudo-random bytes, base64-encoded as a script body.
    let mut state = 0x1234_5678_u32;
    let noise: Vec<u8> = (0..20_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect();
    let script = format!("#!/bin/sh\n: {}\n", STANDARD.encode(noise));
    let err = build_user_data(&p, Some(script.as_bytes())).unwrap_err();
    assert!(
        matches!(
            err,
            PayloadError::TooLarge {
                max: MAX_USER_DATA,
                ..
            }
        ),
        "{err}"
    );
}

fn handmade(parts: &[(&str, &str, &str)]) -> Vec<u8> {
    let mut doc = String::from(
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XyZ\r\n\r\npreamble\r\n",
    );
    for (ctype, cte, body) in parts {
        doc.push_str(&format!(
            "--XyZ\r\nContent-Type: {ctype}\r\nContent-Transfer-Encoding: {cte}\r\n\r\n{body}\r\n"
        ));
    }
    doc.push_str("--XyZ--\r\n");
    doc.into_bytes()
}

#[test]
fn payload_part_first_or_last_in_any_encoding() {
    let p = payload();
    let json = String::from_utf8(p.to_json().unwrap()).unwrap();
    let b64 = STANDARD.encode(json.as_bytes());
    let qp = json
        .replace('=', "=3D")
        .replace("\"region\"", "=22region=22");
    let script = ("text/x-shellscript", "7bit", "#!/bin/sh\necho hi");
    for (cte, body) in [
        ("7bit", json.as_str()),
        ("8bit", json.as_str()),
        ("base64", b64.as_str()),
        ("quoted-printable", qp.as_str()),
    ] {
        let payload_part = (CONTENT_TYPE, cte, body);
        for doc in [
            handmade(&[payload_part, script]),
            handmade(&[script, payload_part]),
        ] {
            assert_same(&find_payload(&doc).unwrap(), &p);
        }
    }
}

#[test]
fn nested_multipart_and_user_mime_documents() {
    let p = payload();
    // The operator's own multi-part user data is nested whole.
    let user_mime = b"Content-Type: multipart/mixed; boundary=\"inner\"\nMIME-Version: 1.0\n\n--inner\nContent-Type: text/cloud-config\n\n#cloud-config\nruncmd: [ls]\n--inner\nContent-Type: text/x-shellscript\n\n#!/bin/sh\necho two\n--inner--\n";
    let doc = build_user_data(&p, Some(user_mime)).unwrap();
    let parts = leaf_parts(&doc);
    let types: Vec<&str> = parts.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        ["text/cloud-config", "text/x-shellscript", CONTENT_TYPE]
    );
    assert_eq!(parts[0].1, b"#cloud-config\nruncmd: [ls]");
    assert_same(&find_payload(&doc).unwrap(), &p);

    // Three levels deep, base64 payload, in a message/rfc822 part too.
    let json = STANDARD.encode(p.to_json().unwrap());
    let deep = format!(
        "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=a\n\n--a\nContent-Type: text/plain\n\nhello\n--a\nContent-Type: multipart/alternative; boundary=b\n\n--b\nContent-Type: message/rfc822\n\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=c\n\n--c\nContent-Type: {CONTENT_TYPE}\nContent-Transfer-Encoding: base64\n\n{json}\n--c--\n\n--b--\n\n--a--\n"
    );
    assert_same(&find_payload(deep.as_bytes()).unwrap(), &p);
    let flat_nested = deep.replace("Content-Type: message/rfc822\n\nMIME-Version: 1.0\n", "");
    assert_same(&find_payload(flat_nested.as_bytes()).unwrap(), &p);

    // A gzip part inside the document.
    let gz = STANDARD.encode(gzip(&p.to_json().unwrap()));
    let doc = handmade(&[
        ("text/x-shellscript", "7bit", "#!/bin/sh"),
        ("application/x-gzip", "base64", &gz),
    ]);
    assert_same(&find_payload(&doc).unwrap(), &p);
}

#[test]
fn a_script_that_already_has_a_payload_is_refused() {
    let p = payload();
    let doc = build_user_data(&p, Some(b"#!/bin/sh\n")).unwrap();
    for script in [doc, build_user_data(&p, None).unwrap()] {
        let err = build_user_data(&p, Some(&script)).unwrap_err();
        assert!(
            matches!(err, PayloadError::InvalidUserScript { .. }),
            "{err}"
        );
        assert!(!err.to_string().contains(SECRET));
    }
}

#[test]
fn unknown_version_is_unsupported() {
    let v2 = br#"{"airlock_payload":2,"whatever":true}"#;
    let err = find_payload(v2).unwrap_err();
    assert!(
        matches!(
            err,
            PayloadError::UnsupportedVersion {
                found: 2,
                supported: 1
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("version 2"));
    let doc = handmade(&[(CONTENT_TYPE, "7bit", std::str::from_utf8(v2).unwrap())]);
    assert!(matches!(
        find_payload(&doc),
        Err(PayloadError::UnsupportedVersion { found: 2, .. })
    ));
    // A version 1 payload next to a version 2 one is still found.
    let v1 = String::from_utf8(payload().to_json().unwrap()).unwrap();
    let doc = handmade(&[
        (CONTENT_TYPE, "7bit", std::str::from_utf8(v2).unwrap()),
        (CONTENT_TYPE, "7bit", &v1),
    ]);
    assert_same(&find_payload(&doc).unwrap(), &payload());
    // Building with another version is refused.
    let mut p = payload();
    p.version = 7;
    assert!(matches!(
        build_user_data(&p, None),
        Err(PayloadError::UnsupportedVersion { found: 7, .. })
    ));
}

#[test]
fn garbage_is_not_found_or_malformed() {
    for data in [
        &b""[..],
        b"   \n",
        b"#!/bin/bash\necho hi\n",
        b"#cloud-config\npackages: [jq]\n",
        b"\x00\x01\x02\xff\xfe",
        b"{\"some\":\"other json\"}",
        b"[1,2,3]",
        b"{not json at all",
        b"MIME-Version: 1.0\nContent-Type: text/plain\n\nhello\n",
        b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=q\n\n--q\n\n--q--",
    ] {
        let err = find_payload(data).unwrap_err();
        assert!(matches!(err, PayloadError::NotFound), "{data:?}: {err}");
        assert_eq!(err.to_string(), "no Airlock payload in the user data");
    }
    for (data, needle) in [
        (&br#"{"airlock_payload":1,"deployment_id":"d"#[..], "not valid JSON"),
        (br#"{"airlock_payload":"1"}"#, "non-negative integer"),
        (br#"{"airlock_payload":1,"region":"r","credentials":{}}"#, "`deployment_id` is missing"),
        (br#"{"airlock_payload":1,"deployment_id":"d","region":"r","credentials":{"access_key_id":"A","secret_access_key":12345}}"#, "`credentials.secret_access_key` must be a string"),
        (br#"{"airlock_payload":1,"deployment_id":"d","region":"r","credentials":{"access_key_id":"A","secret_access_key":"S","expiration":"tomorrow"}}"#, "RFC 3339"),
    ] {
        let err = find_payload(data).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, PayloadError::Malformed { .. }), "{msg}");
        assert!(msg.contains(needle), "{msg}");
    }
    let doc = handmade(&[(CONTENT_TYPE, "7bit", "hello")]);
    assert!(matches!(
        find_payload(&doc),
        Err(PayloadError::Malformed { .. })
    ));
}

#[test]
fn errors_never_quote_secrets() {
    let bad = format!(
        r#"{{"airlock_payload":1,"deployment_id":"d","region":"r","credentials":{{"access_key_id":"A","secret_access_key":"{SECRET}","session_token":["{TOKEN}"]}}}}"#
    );
    let msg = find_payload(bad.as_bytes()).unwrap_err().to_string();
    assert!(msg.contains("session_token"), "{msg}");
    assert!(!msg.contains(SECRET) && !msg.contains(TOKEN), "{msg}");
    let truncated = &bad[..bad.len() - 3];
    let msg = find_payload(truncated.as_bytes()).unwrap_err().to_string();
    assert!(!msg.contains(SECRET) && !msg.contains(TOKEN), "{msg}");
}

#[test]
fn debug_never_shows_secrets() {
    let p = payload();
    for dbg in [
        format!("{p:?}"),
        format!("{p:#?}"),
        format!("{:?}", p.credentials),
    ] {
        assert!(!dbg.contains(SECRET) && !dbg.contains(TOKEN), "{dbg}");
        assert!(
            dbg.contains("REDACTED") && dbg.contains("AKIAIOSFODNN7EXAMPLE"),
            "{dbg}"
        );
    }
    // ...while the serialized payload does carry them.
    let json = String::from_utf8(p.to_json().unwrap()).unwrap();
    assert!(json.contains(SECRET) && json.contains(TOKEN));
    assert!(
        json.contains("\"expiration\":\"2030-01-02T03:04:05Z\""),
        "{json}"
    );
}

#[test]
fn long_session_token_payload_part_is_base64_with_short_lines() {
    let mut p = payload();
    let token = "T".repeat(1500);
    p.credentials.as_mut().unwrap().session_token = Some(SecretString::from(token.as_str()));
    let doc = build_user_data(&p, Some(b"#!/bin/sh\n")).unwrap();
    let text = std::str::from_utf8(&doc).unwrap();
    assert!(text.lines().all(|l| l.len() <= 998));
    assert!(text.contains(&format!(
        "Content-Type: {CONTENT_TYPE}\nContent-Transfer-Encoding: base64\n"
    )));
    let found = find_payload(&doc).unwrap();
    assert_eq!(
        found
            .credentials
            .unwrap()
            .session_token
            .unwrap()
            .expose_secret(),
        token
    );
}

fn with_tasks() -> Payload {
    let mut p = payload();
    p.refresh_url = Some("https://airlock.example.com/v1/refresh".to_owned());
    p.tasks = vec![
        BootTask::TagInstance {
            tags: [("port".to_owned(), "8080".to_owned())].into(),
        },
        BootTask::AttachVolume {
            filters: [("tag:Role".to_owned(), vec!["data".to_owned()])].into(),
            device: "/dev/sdf".to_owned(),
        },
        BootTask::AssociateAddress {
            allocation_id: Some("eipalloc-1".to_owned()),
            filters: TaskFilters::new(),
        },
    ];
    p
}

#[test]
fn boot_tasks_round_trip_and_are_omitted_when_empty() {
    let p = with_tasks();
    let json = String::from_utf8(p.to_json().unwrap()).unwrap();
    assert!(
        json.contains(r#""tasks":[{"task":"tag_instance","tags":{"port":"8080"}},{"task":"attach_volume","filters":{"tag:Role":["data"]},"device":"/dev/sdf"},{"task":"associate_address","allocation_id":"eipalloc-1"}]"#),
        "{json}"
    );
    for doc in [
        build_user_data(&p, None).unwrap(),
        build_user_data(&p, Some(b"#!/bin/sh\n")).unwrap(),
    ] {
        assert_same(&find_payload(&doc).unwrap(), &p);
    }
    let plain = String::from_utf8(payload().to_json().unwrap()).unwrap();
    assert!(!plain.contains("tasks") && !plain.contains("refresh_url"));
    assert_eq!(find_payload(plain.as_bytes()).unwrap().tasks, vec![]);
}

#[test]
fn unknown_task_kinds_are_read_as_unsupported() {
    let json = r#"{"airlock_payload":1,"deployment_id":"d","region":"r","credentials":{"access_key_id":"A","secret_access_key":"S"},"tasks":[{"task":"mount_efs","fs":"fs-1"},{"task":"tag_instance","tags":{"a":"b"}}]}"#;
    let p = find_payload(json.as_bytes()).unwrap();
    assert_eq!(p.tasks[0], BootTask::Unsupported);
    assert_eq!(p.tasks[1].kind(), "tag_instance");
}

#[test]
fn malformed_tasks_name_the_task_and_field() {
    let base = r#"{"airlock_payload":1,"deployment_id":"d","region":"r","credentials":{"access_key_id":"A","secret_access_key":"S"},"tasks":TASKS}"#;
    for (tasks, needle) in [
        (r#"{}"#, "field `tasks` must be an array"),
        (r#"[1]"#, "field `tasks[0]` must be an object"),
        (r#"[{"tags":{}}]"#, "field `tasks[0].task` is missing"),
        (
            r#"[{"task":"tag_instance"}]"#,
            "field `tasks[0].tags` is missing",
        ),
        (
            r#"[{"task":"tag_instance","tags":{"a":1}}]"#,
            "`tasks[0].tags` must be an object of strings",
        ),
        (
            r#"[{"task":"tag_instance","tags":{}},{"task":"attach_volume","filters":{"tag:R":["x"]}}]"#,
            "field `tasks[1].device` is missing",
        ),
        (
            r#"[{"task":"attach_volume","device":"/dev/sdf"}]"#,
            "field `tasks[0].filters` is missing",
        ),
        (
            r#"[{"task":"attach_volume","device":"/dev/sdf","filters":{}}]"#,
            "at least one filter",
        ),
        (
            r#"[{"task":"attach_volume","device":"/dev/sdf","filters":{"tag:R":"x"}}]"#,
            "object of arrays of strings",
        ),
        (
            r#"[{"task":"associate_address"}]"#,
            "`tasks[0]` needs `allocation_id` or `filters`",
        ),
    ] {
        let json = base.replace("TASKS", tasks);
        let err = find_payload(json.as_bytes()).unwrap_err();
        assert!(matches!(err, PayloadError::Malformed { .. }), "{err}");
        assert!(err.to_string().contains(needle), "{tasks}: {err}");
    }
}

#[test]
fn bootstrap_payloads_carry_a_refresh_secret_instead_of_credentials() {
    let mut p = payload();
    p.credentials = None;
    p.refresh_url = Some("https://airlock.example.com/v1/refresh".to_owned());
    p.refresh_secret = Some(SecretString::from("alr_onetime"));
    let data = build_user_data(&p, None).unwrap();
    let found = find_payload(&data).unwrap();
    assert!(found.credentials.is_none());
    assert_eq!(
        found
            .refresh_secret
            .as_ref()
            .map(|s| s.expose_secret().to_owned()),
        Some("alr_onetime".to_owned())
    );
    assert!(!format!("{found:?}").contains("alr_onetime"));
    // Without a refresh URL there is no way to get credentials: refused, naming the field.
    let err = find_payload(
        br#"{"airlock_payload":1,"deployment_id":"d","region":"r","refresh_secret":"x"}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("`credentials` is missing"), "{err}");
}
