//! EC2 throttling: a proxy in front of moto answers `RequestLimitExceeded` (HTTP 503 with EC2's
//! error XML) to the next EC2 requests it is told to, then forwards again. Refreshes, deploys and
//! listings started while EC2 throttles wait and then succeed; `/metrics` counts the throttles
//! and the calls; and a user hammering the listing shares the account's budget fairly with a
//! refresh.

use crate::common::*;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const THROTTLED: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>throttled-by-the-test</RequestID></Response>";

/// A proxy in front of moto that throttles EC2 requests on demand.
struct Throttler {
    upstream: String,
    http: reqwest::Client,
    /// EC2 requests still to be throttled.
    left: AtomicUsize,
    /// EC2 requests throttled so far.
    throttled: AtomicUsize,
}

impl Throttler {
    /// Starts the proxy on a port of its own; returns it and its URL.
    async fn start(moto: &Moto) -> (Arc<Throttler>, String) {
        let throttler = Arc::new(Throttler {
            upstream: moto.url.clone(),
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            left: AtomicUsize::new(0),
            throttled: AtomicUsize::new(0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .fallback(pass)
            .with_state(throttler.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (throttler, url)
    }

    /// Throttles the next `n` EC2 requests.
    fn throttle_next(&self, n: usize) {
        self.left.store(n, Ordering::SeqCst);
    }

    fn throttled(&self) -> usize {
        self.throttled.load(Ordering::SeqCst)
    }
}

async fn pass(State(t): State<Arc<Throttler>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    // EC2's Query API version: STS and IAM requests pass untouched.
    let ec2 = contains(&body, "Version=2016-11-15");
    if ec2
        && t.left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    {
        t.throttled.fetch_add(1, Ordering::SeqCst);
        return (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            [("content-type", "text/xml;charset=UTF-8")],
            THROTTLED,
        )
            .into_response();
    }
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut headers = parts.headers;
    headers.remove(axum::http::header::HOST);
    headers.remove(axum::http::header::CONTENT_LENGTH);
    let answer = t
        .http
        .request(parts.method, format!("{}{path}", t.upstream))
        .headers(headers)
        .body(body)
        .send()
        .await
        .unwrap();
    let mut response = Response::builder().status(answer.status());
    for name in ["content-type", "x-amzn-requestid"] {
        if let Some(value) = answer.headers().get(name) {
            response = response.header(name, value);
        }
    }
    response
        .body(Body::from(answer.bytes().await.unwrap()))
        .unwrap()
}

/// A console with metrics on a port of their own, logged in, with account `dev` reaching moto
/// through `proxy`; returns it and its metrics URL.
fn console_through(proxy: &str, extra: &[&str]) -> (Console, String) {
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut args = vec!["--metrics-listen", metrics.as_str()];
    args.extend_from_slice(extra);
    let console = Console::start_with(&args);
    console.login();
    ok(
        console.cli_stdin(
            &[
                "account",
                "add",
                "dev",
                "--region",
                REGION,
                "--endpoint-url",
                proxy,
                "--access-key-id",
                ACCESS_KEY_ID,
                "--secret-access-key-stdin",
            ],
            &format!("{SECRET_ACCESS_KEY}\n"),
        ),
        &["account add"],
    );
    (console, format!("http://{metrics}/metrics"))
}

/// The sum of a metric's series whose labels contain every one of `labels`.
async fn metric(url: &str, name: &str, labels: &[&str]) -> f64 {
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|line| {
            line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} "))
        })
        .filter(|line| labels.iter().all(|l| line.contains(l)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A deployed instance: (deployment id, instance id, its address, its enrolment secret).
async fn deployed(
    console: &Console,
    moto: &Moto,
    net: &TestNet,
) -> (String, String, String, String) {
    let ec2 = moto.ec2().await;
    let dep = console.json(&deploy_args(net, &["--wait"]));
    let id = dep["instances"][0]["instance_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ip = described(&ec2, &id)
        .await
        .private_ip_address()
        .unwrap()
        .to_owned();
    let secret = enrolment_secret(&ec2, &id).await;
    (dep["id"].as_str().unwrap().to_owned(), id, ip, secret)
}

async fn list_instances(console: &Console, token: &str) -> (u16, Value) {
    let answer = reqwest::Client::new()
        .get(format!("{}/v1/instances", console.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (
        answer.status().as_u16(),
        answer.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn refreshes_and_deploys_wait_out_a_throttle_and_metrics_count_it() {
    let moto = Moto::start();
    let net = loopback_net(&moto.ec2().await).await;
    let (proxy, proxy_url) = Throttler::start(&moto).await;
    let (console, metrics) = console_through(&proxy_url, &[]);
    let (dep, id, ip, secret) = deployed(&console, &moto, &net).await;

    // (a) A refresh while EC2 throttles: every attempt the SDK makes on its own is refused,
    // so the budget slows down, waits, and tries again.
    proxy.throttle_next(4);
    let (status, body) = refresh(&console, &ip, &dep, &id, &secret).await;
    assert_eq!(status, 200, "{body}\n{}", console.output_text());
    assert_eq!(
        proxy.throttled(),
        4,
        "the refresh went through the throttle"
    );

    // (b) A deploy started while EC2 throttles.
    proxy.throttle_next(4);
    let second = console.json(&deploy_args(&net, &["--wait"]));
    assert_eq!(proxy.throttled(), 8, "the deploy went through the throttle");
    assert_eq!(second["instances"].as_array().unwrap().len(), 1, "{second}");

    // (c) The throttles, the calls and the refresh are counted. The refresh's four throttles
    // all fell on one call, which the SDK gave up on: at least that one is counted. The
    // deploy's may be shared with the console's own background look-ups (the deployment's
    // watcher, the instance trend), each of which the SDK then retries by itself.
    let throttled = metric(
        &metrics,
        "airlock_aws_calls_total",
        &[r#"service="ec2""#, r#"outcome="throttled""#],
    )
    .await;
    assert!(throttled >= 1.0, "{throttled} throttled calls counted");
    assert!(metric(&metrics, "airlock_aws_throttles_total", &[]).await >= 1.0);
    let described = metric(
        &metrics,
        "airlock_aws_calls_total",
        &[r#"action="DescribeInstances""#, r#"outcome="ok""#],
    )
    .await;
    assert!(described >= 1.0, "{described} DescribeInstances counted");
    assert!(
        metric(
            &metrics,
            "airlock_aws_call_duration_seconds_count",
            &[r#"action="RunInstances""#]
        )
        .await
            >= 2.0
    );
    assert_eq!(
        metric(
            &metrics,
            "airlock_refreshes_total",
            &[r#"outcome="enrolled""#]
        )
        .await,
        1.0
    );
    assert!(
        metric(
            &metrics,
            "airlock_authz_decisions_total",
            &[r#"decision="allowed""#]
        )
        .await
            >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_never_sees_a_throttle_the_budget_can_wait_out() {
    let moto = Moto::start();
    let net = loopback_net(&moto.ec2().await).await;
    let (proxy, proxy_url) = Throttler::start(&moto).await;
    let (console, _) = console_through(&proxy_url, &[]);
    deployed(&console, &moto, &net).await;
    let token = console.token();

    // Two rounds of the SDK's own retries refused: the budget tries a third time.
    proxy.throttle_next(8);
    let (status, body) = list_instances(&console, &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(proxy.throttled(), 8);
    assert!(
        !body.to_string().contains("RequestLimitExceeded"),
        "a throttle reached the user: {body}"
    );
    assert_eq!(
        body["instances"].as_array().map(Vec::len),
        Some(1),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn attacker_hammering_the_listing_cannot_starve_a_refresh() {
    let moto = Moto::start();
    let net = loopback_net(&moto.ec2().await).await;
    let (_proxy, proxy_url) = Throttler::start(&moto).await;
    // A small budget, so that the hammering fills it.
    let (console, metrics) = console_through(&proxy_url, &["--ec2-rate", "4", "--ec2-burst", "1"]);
    let (dep, id, ip, secret) = deployed(&console, &moto, &net).await;
    let token = console.token();

    let stop = Arc::new(AtomicBool::new(false));
    let listed = Arc::new(AtomicUsize::new(0));
    let mut hammers = Vec::new();
    for _ in 0..12 {
        let (stop, listed, token) = (stop.clone(), listed.clone(), token.clone());
        let url = console.url.clone();
        hammers.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            while !stop.load(Ordering::SeqCst) {
                let answer = http
                    .get(format!("{url}/v1/instances"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(answer.status().as_u16(), 200);
                listed.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    // The hammering has filled the budget's queue.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(metric(&metrics, "airlock_ec2_budget_wait_seconds_count", &[]).await >= 1.0);

    let started = Instant::now();
    let (status, body) = refresh(&console, &ip, &dep, &id, &secret).await;
    let took = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    for hammer in hammers {
        hammer.await.unwrap();
    }
    assert_eq!(status, 200, "{body}");
    // Twelve listings queued ahead of each of the refresh's EC2 calls, at four a second:
    // about three seconds a call, not forever.
    assert!(
        took < Duration::from_secs(30),
        "the refresh waited {took:?}"
    );
    assert!(listed.load(Ordering::SeqCst) > 0);
}

/// Metrics are served without authentication: anyone on the network could read which accounts
/// and actions the console uses. A non-loopback address is refused unless the operator says so.
#[test]
fn metrics_on_a_network_address_are_refused_without_metrics_allow_remote() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(airlock_bin())
        .args(["serve", "--listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--database")
        .arg(format!(
            "sqlite://{}",
            dir.path().join("airlock.db").display()
        ))
        .arg("--master-key-file")
        .arg(dir.path().join("master.key"))
        .args(["--metrics-listen", &format!("0.0.0.0:{}", free_port())])
        .env("AIRLOCK_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("not a loopback address") && err.contains("--metrics-allow-remote"),
        "{err}"
    );
}
