//! End-to-end tests of what the web console adds to the API: browser sessions in a cookie with
//! CSRF protection (the bearer flow unchanged), the pages' security headers, and the
//! `authorize/check` and `policies/validate` endpoints. The pages themselves are tested in a
//! real browser by `scripts/test-web`.

use crate::common::*;
use reqwest::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, COOKIE, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::{json, Value};

struct Session {
    cookie: String,
    csrf: String,
    token: String,
}

async fn sign_in(console: &Console, user: &str, password: &str) -> Session {
    let resp = reqwest::Client::new()
        .post(format!("{}/web/session", console.url))
        .json(&json!({"user": user, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let set_cookie = resp
        .headers()
        .get(SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let pair = set_cookie.split(';').next().unwrap().to_owned();
    let token = pair.strip_prefix("airlock_session=").unwrap().to_owned();
    assert!(token.starts_with("alk_"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["user"], user);
    assert!(
        !body.to_string().contains(&token),
        "the token is only in the cookie"
    );
    Session {
        cookie: pair,
        csrf: body["csrf_token"].as_str().unwrap().to_owned(),
        token,
    }
}

async fn send(
    method: reqwest::Method,
    url: String,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new().request(method, url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A change without the header, or with another session's token, is refused and not made.
async fn assert_changes_refused_without_the_sessions_csrf_token(
    console: &Console,
    s: &Session,
    bearer: &str,
    doc: &Value,
) {
    let url = |p: &str| format!("{}{p}", console.url);
    let (status, err) = send(
        reqwest::Method::PUT,
        url("/v1/policies/from-a-cookie"),
        &[(COOKIE.as_str(), &s.cookie)],
        Some(doc.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("X-CSRF-Token"),
        "{err}"
    );
    let other = sign_in(console, "admin", ADMIN_PASSWORD).await;
    let (status, _) = send(
        reqwest::Method::PUT,
        url("/v1/policies/from-a-cookie"),
        &[(COOKIE.as_str(), &s.cookie), ("x-csrf-token", &other.csrf)],
        Some(doc.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = send(
        reqwest::Method::GET,
        url("/v1/policies/from-a-cookie"),
        &[("authorization", bearer)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was stored");
}

/// Signing out revokes the token and clears the cookie; neither the token nor the CSRF token
/// is in the console's output.
async fn assert_signing_out_revokes_the_session(console: &Console, s: &Session) {
    let url = |p: &str| format!("{}{p}", console.url);
    let resp = reqwest::Client::new()
        .delete(url("/web/session"))
        .header(COOKIE, &s.cookie)
        .header("x-csrf-token", &s.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let cleared = resp.headers().get(SET_COOKIE).unwrap().to_str().unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let (status, _) = send(
        reqwest::Method::GET,
        url("/v1/whoami"),
        &[(COOKIE.as_str(), &s.cookie)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let leaks = console.output_text();
    assert!(!leaks.contains(&s.token) && !leaks.contains(&s.csrf));
}

#[tokio::test(flavor = "multi_thread")]
async fn cookie_sessions_need_the_csrf_token_to_change_anything_and_bearer_tokens_do_not() {
    let console = Console::start();
    console.login();
    let bearer = format!("Bearer {}", console.token());
    let s = sign_in(&console, "admin", ADMIN_PASSWORD).await;
    let url = |p: &str| format!("{}{p}", console.url);
    let doc = json!({"document": r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:*","Resource":"*"}]}"#});

    // Reads with the cookie alone.
    let (status, who) = send(
        reqwest::Method::GET,
        url("/v1/whoami"),
        &[(COOKIE.as_str(), &s.cookie)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(who["user"], "admin");
    let (_, info) = send(
        reqwest::Method::GET,
        url("/web/session"),
        &[(COOKIE.as_str(), &s.cookie)],
        None,
    )
    .await;
    assert_eq!(info["csrf_token"], s.csrf.as_str());

    assert_changes_refused_without_the_sessions_csrf_token(&console, &s, &bearer, &doc).await;

    // With the session's own token it goes through.
    let (status, _) = send(
        reqwest::Method::PUT,
        url("/v1/policies/from-a-cookie"),
        &[(COOKIE.as_str(), &s.cookie), ("x-csrf-token", &s.csrf)],
        Some(doc.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // Bearer tokens need no CSRF token, and win over a cookie.
    let (status, v) = send(
        reqwest::Method::POST,
        url("/v1/policies/validate"),
        &[("authorization", &bearer)],
        Some(doc.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["valid"], true);
    let (status, _) = send(
        reqwest::Method::POST,
        url("/v1/policies/validate"),
        &[
            ("authorization", &bearer),
            (COOKIE.as_str(), "airlock_session=alk_bogus"),
        ],
        Some(doc.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // The store keeps the session token's hash only.
    if is_sqlite(&console.database) {
        let db = std::fs::read(console.dir.path().join("airlock.db")).unwrap();
        let text = String::from_utf8_lossy(&db);
        assert!(
            !text.contains(&s.token),
            "the session token is stored in plaintext"
        );
    }

    assert_signing_out_revokes_the_session(&console, &s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_are_embedded_with_security_headers_and_api_answers_are_not_cached() {
    let console = Console::start();
    let resp = reqwest::get(format!("{}/", console.url)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let csp = resp.headers()[CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(resp.headers()["x-frame-options"], "DENY");
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    let html = resp.text().await.unwrap();
    assert!(html.contains(r#"<script src="/assets/app.js""#));
    for (asset, kind) in [
        ("app.js", "text/javascript"),
        ("pages.js", "text/javascript"),
        ("app.css", "text/css"),
    ] {
        let resp = reqwest::get(format!("{}/assets/{asset}", console.url))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{asset}");
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with(kind));
    }
    let missing = reqwest::get(format!("{}/assets/nothing.js", console.url))
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let api = reqwest::get(format!("{}/v1/whoami", console.url))
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(api.headers()[CACHE_CONTROL], "no-store");
    // A wrong password is refused without a cookie.
    let resp = reqwest::Client::new()
        .post(format!("{}/web/session", console.url))
        .json(&json!({"user": "admin", "password": "not-the-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers().get(SET_COOKIE).is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn authorize_check_decides_with_the_real_tags_and_names_the_statements() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);
    // Instances made straight in EC2: the check must find their tags there.
    let (bobs, _) = launch_tagged(&ec2, &net, &[("owner", "bob")]).await;
    let (alices, _) = launch_tagged(&ec2, &net, &[("owner", "alice")]).await;
    let bob = console.add_user(
        "bob",
        &[json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "airlock:UseAccount", "Resource": "*"},
            {"Sid": "StopAny", "Effect": "Allow", "Action": "ec2:StopInstances", "Resource": "*"},
            {"Sid": "TerminateOwn", "Effect": "Allow", "Action": "ec2:TerminateInstances", "Resource": "*",
             "Condition": {"StringEquals": {"ec2:ResourceTag/owner": "${aws:username}"}}},
            {"Sid": "NeverReboot", "Effect": "Deny", "Action": "ec2:RebootInstances", "Resource": "*"}
        ]})],
    );
    let bearer = format!("Bearer {}", bob.token());
    let check = |action: &str, id: &str, context: Value| json!({"action": action, "account": "dev", "resource": format!("instance/{id}"), "context": context});
    let (status, answer) = send(
        reqwest::Method::POST,
        format!("{}/v1/authorize/check", console.url),
        &[("authorization", &bearer)],
        Some(json!({"checks": [
            check("ec2:TerminateInstances", &bobs, json!({})),
            // A claimed tag does not change what the real one decides.
            check("ec2:TerminateInstances", &alices, json!({"ec2:ResourceTag/owner": "bob"})),
            check("ec2:RebootInstances", &bobs, json!({})),
            check("ec2:StopInstances", &alices, json!({})),
        ]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let r = answer["results"].as_array().unwrap();
    assert_eq!(r[0]["allowed"], true, "{answer}");
    assert!(
        r[0]["statements"][0]
            .as_str()
            .unwrap()
            .ends_with("-policy0#2 (TerminateOwn)"),
        "{answer}"
    );
    assert!(r[0]["resource"]
        .as_str()
        .unwrap()
        .ends_with(&format!(":instance/{bobs}")));
    assert_eq!(r[1]["decision"], "implicitDeny", "{answer}");
    assert_eq!(r[1]["reason"], "no statement in your policies allows it");
    assert_eq!(r[2]["decision"], "explicitDeny");
    let reason = r[2]["reason"].as_str().unwrap();
    assert!(reason.starts_with("explicitly denied by "), "{reason}");
    assert!(reason.ends_with("-policy0#3 (NeverReboot)"), "{reason}");
    assert_eq!(r[3]["allowed"], true);
    // The real action decides the same way.
    let refused = bob.cli(&["instance", "terminate", &alices, "--account", "dev"]);
    assert_eq!(refused.status.code(), Some(1));
    let (status, err) = send(
        reqwest::Method::POST,
        format!("{}/v1/authorize/check", console.url),
        &[("authorization", &bearer)],
        Some(json!({"checks": [{"action": "ec2:StopInstances", "resource": "instance/i-1"}]})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"]["field"], "checks[0].resource");
}

#[tokio::test(flavor = "multi_thread")]
async fn policies_validate_as_the_store_would() {
    let console = Console::start();
    console.login();
    let bearer = format!("Bearer {}", console.token());
    let url = format!("{}/v1/policies/validate", console.url);
    let headers = [("authorization", bearer.as_str())];
    let validate = |document: &str| {
        send(
            reqwest::Method::POST,
            url.clone(),
            &headers,
            Some(json!({ "document": document })),
        )
    };
    let (status, v) = validate(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:*","Resource":"*"}]}"#).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (v["valid"].clone(), v["statements"].clone()),
        (json!(true), json!(1))
    );
    let (_, v) = validate(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Maybe","Action":"ec2:*","Resource":"*"}]}"#).await;
    assert_eq!(v["valid"], false);
    assert_eq!(v["errors"][0]["element"], "Effect", "{v}");
    let (_, v) = validate("{\"Version\": ").await;
    assert_eq!(v["valid"], false);
    assert_eq!(v["errors"][0]["line"], 1, "{v}");
    // Like every API path, it needs a signed-in caller.
    let (status, _) = send(
        reqwest::Method::POST,
        format!("{}/v1/policies/validate", console.url),
        &[],
        Some(json!({"document": "{}"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
