use super::*;
use std::error::Error as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A console on 127.0.0.1 that answers every request with `status` and `body`.
async fn answering(status: &'static str, body: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf).await;
            let answer = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(answer.as_bytes()).await;
        }
    });
    url
}

fn client(url: &str) -> ConsoleClient {
    let settings = Settings {
        timeout: Some(Duration::from_secs(5)),
        proxy: Proxy::Never,
        ..Settings::default()
    };
    ConsoleClient::new(url, Some(SecretString::from("alk_token")), &settings).unwrap()
}

#[tokio::test]
async fn a_refusal_keeps_the_status_and_the_consoles_error_body() {
    let url = answering(
        "403 Forbidden",
        r#"{"error":{"code":"Forbidden","message":"not allowed","field":"account","aws_request_id":"req-1"}}"#,
    )
    .await;
    let err = client(&url).whoami().await.unwrap_err();
    assert_eq!(err.status(), Some(403));
    assert_eq!(err.code(), Some("Forbidden"));
    assert_eq!(
        err.to_string(),
        "Forbidden: not allowed (account) [AWS request id req-1]"
    );
    assert!(!err.is_unreachable());
    assert!(err.source().is_none());
}

#[tokio::test]
async fn an_error_without_the_consoles_body_is_its_status() {
    let url = answering("502 Bad Gateway", "<html>proxy</html>").await;
    let err = client(&url).accounts().await.unwrap_err();
    assert!(matches!(err, ClientError::Status { status: 502 }));
    assert_eq!(err.to_string(), "the console answered 502 Bad Gateway");
    assert!(
        err.is_unreachable(),
        "a proxy in front of a restarting console"
    );
    assert!(err.body().is_none());
}

#[tokio::test]
async fn an_unexpected_answer_keeps_the_parse_error_as_its_cause() {
    let url = answering("200 OK", r#"{"not":"a user"}"#).await;
    let err = client(&url).whoami().await.unwrap_err();
    assert_eq!(err.status(), Some(200));
    assert_eq!(
        err.to_string(),
        "the console answered 200 OK with an unexpected body"
    );
    let cause = err.source().unwrap().to_string();
    assert!(cause.contains("missing field `user`"), "{cause}");
}

#[tokio::test]
async fn an_absent_console_is_unreachable_named_by_its_url_without_the_token() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let err = client(&url).whoami().await.unwrap_err();
    assert!(err.is_unreachable());
    assert_eq!(err.status(), None);
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("cannot reach the console at {url}: ")),
        "{text}"
    );
    assert!(!text.contains("/v1/whoami"), "the URL once: {text}");
    assert!(!text.contains("alk_token") && !format!("{err:?}").contains("alk_token"));
}

#[tokio::test]
async fn an_empty_success_reads_as_null() {
    let url = answering("204 No Content", "").await;
    client(&url).remove_account("prod").await.unwrap();
    client(&url).logout().await.unwrap();
}

#[tokio::test]
async fn a_redirecting_console_cannot_send_the_refresh_secret_elsewhere() {
    // Where a hostile answer points: it must never be contacted.
    let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = format!("http://{}/v1/refresh", elsewhere.local_addr().unwrap());
    let console = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", console.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = console.accept().await {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf).await;
            let answer = format!(
                "HTTP/1.1 307 Temporary Redirect\r\nlocation: {target}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            let _ = conn.write_all(answer.as_bytes()).await;
        }
    });
    let request = RefreshRequest {
        deployment_id: "dep-1".to_owned(),
        instance_id: "i-0123456789abcdef0".to_owned(),
        refresh_secret: SecretString::from("rs_secret".to_owned()),
    };
    let Err(err) = client(&url)
        .refresh(&format!("{url}/v1/refresh"), &request)
        .await
    else {
        panic!("a redirect was read as credentials");
    };
    assert_eq!(err.status(), Some(307));
    let contacted = tokio::time::timeout(Duration::from_millis(300), elsewhere.accept()).await;
    assert!(contacted.is_err(), "the redirect was followed");
}
