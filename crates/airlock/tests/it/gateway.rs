//! End-to-end tests of `airlock gateway`: moto as EC2 with a loopback VPC, so launched
//! "instances" have 127.0.0.x addresses, real HTTP servers on those addresses, and the real
//! `airlock` binary in between. Every wait is bounded.

use crate::common::{
    airlock_bin, free_port, launch_tagged, loopback_net, test_ca, Console, Moto, ACCESS_KEY_ID,
    REGION, SECRET_ACCESS_KEY,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A tiny HTTP/1.1 server that answers `<name> <path> xff=<X-Forwarded-For> proto=<...>`.
const BACKEND_PY: &str = r#"
import sys, http.server, socketserver
name, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = ("%s %s xff=%s proto=%s\n" % (name, self.path, self.headers.get("X-Forwarded-For"), self.headers.get("X-Forwarded-Proto"))).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
S((host, port), H).serve_forever()
"#;

fn python() -> PathBuf {
    std::env::var("AIRLOCK_MOTO_SERVER")
        .ok()
        .map(|m| Path::new(&m).with_file_name("python3"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// A real HTTP server on an instance's address; killed on drop.
struct Backend {
    child: Option<Child>,
    port: u16,
}

impl Backend {
    fn start(dir: &Path, name: &str, ip: &str) -> Backend {
        let script = dir.join("backend.py");
        if !script.exists() {
            std::fs::write(&script, BACKEND_PY).unwrap();
        }
        // Free on the backend's own address: tests running side by side give their instances
        // the same loopback addresses.
        let port = std::net::TcpListener::bind((ip, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(python())
            .arg(&script)
            .args([name, ip, &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect((ip, port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "backend {name} on {ip}:{port} did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Backend {
            child: Some(child),
            port,
        }
    }

    /// A backend on the instance `id` at `ip`, its port in the instance's `airlock:port` tag.
    async fn serving(
        ec2: &aws_sdk_ec2::Client,
        dir: &Path,
        name: &str,
        (id, ip): (&str, &str),
    ) -> Backend {
        let backend = Backend::start(dir, name, ip);
        set_tag(ec2, id, "airlock:port", &backend.port.to_string()).await;
        backend
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.kill();
    }
}

pub(crate) async fn set_tag(ec2: &aws_sdk_ec2::Client, id: &str, key: &str, value: &str) {
    ec2.create_tags()
        .resources(id)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key(key)
                .value(value)
                .build(),
        )
        .send()
        .await
        .unwrap();
}

/// An `airlock gateway` process; killed on drop.
pub(crate) struct Gateway {
    child: Child,
    pub(crate) url: String,
    admin: String,
    config: PathBuf,
    log: PathBuf,
    http: reqwest::Client,
}

impl Gateway {
    pub(crate) fn start(moto: &Moto, dir: &Path, config: &str, extra: &[&str]) -> Gateway {
        let path = dir.join("gateway.yaml");
        std::fs::write(&path, config).unwrap();
        let mut cmd = Command::new(airlock_bin());
        cmd.args(["gateway", "--config"])
            .arg(&path)
            .args([
                "--endpoint-url",
                &moto.url,
                "--refresh-interval",
                "0.2",
                "--watch-interval",
                "0.2",
            ])
            .args(extra)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
            .env("AWS_REGION", REGION);
        Self::spawn(cmd, dir, path)
    }

    /// A gateway that follows `console` for its configuration and its account's instances, with
    /// no AWS key of its own and a refresh interval far longer than any wait below, so only the
    /// console's push can explain a quick change.
    fn following(console: &Console, dir: &Path, refresh_interval: &str) -> Gateway {
        let mut cmd = Command::new(airlock_bin());
        if let Some(ca) = &console.ca {
            cmd.env("AIRLOCK_CONSOLE_CA", ca);
        }
        cmd.args(["gateway", "--console", &console.url])
            .args(["--refresh-interval", refresh_interval])
            .env("AIRLOCK_TOKEN", console.token())
            .env("AIRLOCK_CONFIG_DIR", dir.join("gateway-config-dir"))
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_ENDPOINT_URL");
        Self::spawn(cmd, dir, dir.join("unused.yaml"))
    }

    fn spawn(mut cmd: Command, dir: &Path, config: PathBuf) -> Gateway {
        let path = config;
        let (port, admin_port) = (free_port(), free_port());
        let log = dir.join("gateway.log");
        let mut child = cmd
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
            .env_remove("AIRLOCK_CONSOLE")
            // The default credential chain must never reach for a real metadata service.
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AIRLOCK_LOG", "info,airlock_gateway=debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let admin = format!("http://127.0.0.1:{admin_port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while crate::common::ureq_get(&format!("{admin}/healthz")).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "gateway exited with {status}: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "gateway did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Gateway {
            child,
            url: format!("http://127.0.0.1:{port}"),
            admin,
            config: path,
            log,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        }
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let resp = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    async fn endpoints(&self) -> serde_json::Value {
        self.http
            .get(format!("{}/endpoints", self.admin))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.admin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Instance ids of an upstream's endpoints, as the admin listener reports them.
    async fn members(&self, upstream: &str) -> Vec<String> {
        let v = self.endpoints().await;
        v["upstreams"][upstream]["endpoints"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| e["instanceId"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits (bounded) until the upstream's members are exactly `want`; returns how long it took.
    pub(crate) async fn wait_members(
        &self,
        upstream: &str,
        want: &[&str],
        within: Duration,
    ) -> Duration {
        let start = Instant::now();
        let mut want: Vec<String> = want.iter().map(|s| (*s).to_owned()).collect();
        want.sort();
        loop {
            let got = self.members(upstream).await;
            if got == want {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < within,
                "{upstream}: wanted {want:?}, have {got:?} after {within:?}\nlog:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (bounded) until the gateway follows its console's event stream.
    async fn wait_console_connected(&self) {
        self.wait_metric(
            "airlock_gateway_console_connected 1",
            Duration::from_secs(10),
        )
        .await;
    }

    /// Waits (bounded) until the metrics contain `line`.
    async fn wait_metric(&self, line: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.metrics().await.contains(line) {
            assert!(
                Instant::now() < deadline,
                "no {line} after {within:?}:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (bounded) until `path` is answered with 200; returns the body and how long it took.
    async fn wait_route(&self, path: &str, within: Duration) -> (String, Duration) {
        let start = Instant::now();
        loop {
            let (s, body) = self.get(path).await;
            if s == 200 {
                return (body, start.elapsed());
            }
            assert!(
                start.elapsed() < within,
                "the route to {path} never appeared: {s} {body}\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Who answered `n` requests to `path`: name → count. Panics on any failed request.
    async fn spread(&self, path: &str, n: usize) -> BTreeMap<String, usize> {
        let mut seen = BTreeMap::new();
        for _ in 0..n {
            let (status, body) = self.get(path).await;
            assert_eq!(status, 200, "GET {path}: {body}\nlog:\n{}", self.log_text());
            *seen
                .entry(body.split(' ').next().unwrap().to_owned())
                .or_insert(0) += 1;
        }
        seen
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn sighup(&self) {
        self.signal("-HUP");
    }

    /// Sends the gateway a signal (`-HUP`, `-TERM`).
    pub(crate) fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// How long the gateway took to exit, if it did within `within`.
    pub(crate) async fn exited_within(&mut self, within: Duration) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < within {
            if self.child.try_wait().unwrap().is_some() {
                return Some(start.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) const UPSTREAM: &str = "gloo-system/ec2-demo-upstream";

/// The tutorial's upstream (old shape) and the route `glooctl add route --path-exact /echoapp
/// --dest-name ec2-demo-upstream --prefix-rewrite /` makes, plus a prefix and a regex route.
pub(crate) fn gloo_config(extra_routes: &str) -> String {
    format!(
        r#"apiVersion: gloo.solo.io/v1
kind: Upstream
metadata:
  name: ec2-demo-upstream
  namespace: gloo-system
spec:
  upstreamSpec:
    awsEc2:
      filters:
      - key: gloo-id
      - kvPair:
          key: gloo-tag
          value: group1
      region: us-east-1
      secretRef:
        name: gloo-tag-group1
        namespace: default
---
apiVersion: gloo.solo.io/v1
kind: Secret
metadata:
  name: gloo-tag-group1
  namespace: default
aws:
  accessKey: {ACCESS_KEY_ID}
  secretKey: {SECRET_ACCESS_KEY}
---
apiVersion: gateway.solo.io/v1
kind: VirtualService
metadata:
  name: default
  namespace: gloo-system
spec:
  virtualHost:
    domains:
    - '*'
    routes:
    - matchers:
      - exact: /echoapp
      routeAction:
        single:
          upstream:
            name: ec2-demo-upstream
            namespace: gloo-system
      options:
        prefixRewrite: /
    - matchers:
      - prefix: /api
      routeAction:
        single:
          upstream:
            name: ec2-demo-upstream
            namespace: gloo-system
      options:
        prefixRewrite: /v1
    - matchers:
      - regex: /items/[0-9]+
      routeAction:
        single:
          upstream:
            name: ec2-demo-upstream
            namespace: gloo-system
{extra_routes}"#
    )
}

/// Routes as Gloo makes them: exact path with prefix rewrite, prefix rewrite, regex; the
/// discovered upstream; HTTP/2 cleartext in front.
async fn assert_routes_as_gloo_makes_them(gw: &Gateway) {
    let (s, body) = gw.get("/echoapp").await;
    assert_eq!(s, 200);
    let mut words = body.split_whitespace().skip(1);
    assert_eq!(
        words.next(),
        Some("/"),
        "exact /echoapp rewritten to /: {body}"
    );
    assert_eq!(words.next(), Some("xff=127.0.0.1"), "{body}");
    assert_eq!(words.next(), Some("proto=http"), "{body}");
    assert!(
        gw.get("/echoapp?q=1").await.1.contains(" /?q=1 "),
        "the query string is kept"
    );
    let (s, body) = gw.get("/echoapp/more").await;
    assert_eq!(s, 404, "exact means exact: {body}");
    assert!(body.contains("no route"), "{body}");
    assert!(gw.get("/api/users").await.1.contains(" /v1/users "));
    assert!(gw.get("/items/42").await.1.contains(" /items/42 "));
    assert_eq!(gw.get("/items/x").await.0, 404);
    assert_eq!(
        gw.spread("/auto/x", 3).await.keys().collect::<Vec<_>>(),
        ["f"],
        "discovered upstream"
    );
    // HTTP/2 cleartext (prior knowledge) in front, when curl is there to speak it.
    if let Ok(out) = Command::new("curl")
        .args(["-s", "--http2-prior-knowledge", "-w", " %{http_version}"])
        .arg(format!("{}/echoapp", gw.url))
        .output()
    {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.ends_with(" 2") && text.contains(" / "), "h2c: {text}");
    }
}

/// /endpoints says who is in, with addresses, ports, health and matched filters; the instance
/// `skipped` is in the warnings.
async fn assert_endpoints_listed(
    gw: &Gateway,
    (a, a_ip, a_port): (&str, &str, u16),
    skipped: &str,
) {
    let v = gw.endpoints().await;
    let eps = v["upstreams"][UPSTREAM]["endpoints"].as_array().unwrap();
    let mut ids: Vec<&str> = eps
        .iter()
        .map(|e| e["instanceId"].as_str().unwrap())
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ordered by instance id: {ids:?}"
    );
    ids.sort();
    let ep_a = eps.iter().find(|e| e["instanceId"] == a).unwrap();
    assert_eq!(ep_a["address"], a_ip);
    assert_eq!(ep_a["port"], a_port);
    assert_eq!(ep_a["health"], "healthy");
    assert_eq!(
        ep_a["matchedFilters"],
        serde_json::json!(["tag-key=gloo-id", "tag:gloo-tag=group1"])
    );
    let warnings = v["warnings"].to_string();
    assert!(
        warnings.contains(skipped) && warnings.contains("not a port"),
        "{warnings}"
    );
    assert_eq!(v["upstreams"]["gloo-system/auto"]["discovered"], true);
}

/// The metrics count the requests, the endpoints and the discovery's age.
async fn assert_metrics_cover_the_traffic(gw: &Gateway) {
    let m = gw.metrics().await;
    assert!(
        m.contains(&format!(
            "airlock_gateway_requests_total{{upstream=\"{UPSTREAM}\",code=\"2xx\"}}"
        )),
        "{m}"
    );
    assert!(
        m.contains(&format!(
            "airlock_gateway_endpoints{{upstream=\"{UPSTREAM}\"}} 2"
        )),
        "{m}"
    );
    assert!(
        m.contains("airlock_gateway_discovery_age_seconds{group=\"us-east-1/"),
        "{m}"
    );
    assert!(
        m.contains("airlock_gateway_request_duration_seconds_bucket"),
        "{m}"
    );
}

/// Members leave when re-tagged out (b) or stopped (a, c) and join when re-tagged in (c); with
/// nobody left, a clear 503.
async fn assert_membership_follows_tags_and_state(
    ec2: &aws_sdk_ec2::Client,
    gw: &Gateway,
    (a, b, c): (&str, &str, &str),
) {
    // Re-tagged out: b leaves within about one refresh (0.2 s; generous bound for slow machines).
    ec2.delete_tags()
        .resources(b)
        .tags(aws_sdk_ec2::types::Tag::builder().key("gloo-id").build())
        .send()
        .await
        .unwrap();
    let took = gw
        .wait_members(UPSTREAM, &[a], Duration::from_secs(3))
        .await;
    eprintln!("re-tagged instance left after {took:?}");
    assert_eq!(
        gw.spread("/echoapp", 6).await.keys().collect::<Vec<_>>(),
        ["a"]
    );

    // Re-tagged in: c's value fixed, it joins.
    set_tag(ec2, c, "gloo-tag", "group1").await;
    gw.wait_members(UPSTREAM, &[a, c], Duration::from_secs(3))
        .await;

    // Stopped: leaves; with nobody left, a clear 503.
    ec2.stop_instances()
        .instance_ids(a)
        .instance_ids(c)
        .send()
        .await
        .unwrap();
    let took = gw.wait_members(UPSTREAM, &[], Duration::from_secs(3)).await;
    eprintln!("stopped instances left after {took:?}");
    let (s, body) = gw.get("/echoapp").await;
    assert_eq!(s, 503, "{body}");
    assert!(
        body.contains("upstream gloo-system/ec2-demo-upstream has no healthy endpoint"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_matching_instances_get_traffic_and_membership_follows_tags_and_state() {
    let dir = tempfile::tempdir().unwrap();
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let both = [("gloo-id", "1"), ("gloo-tag", "group1")];
    let (a, a_ip) = launch_tagged(&ec2, &net, &both).await;
    let (b, b_ip) = launch_tagged(&ec2, &net, &both).await;
    // Case differs: EC2's tag filters are case-sensitive, and so is the gateway (Gloo is not).
    let (c, c_ip) = launch_tagged(&ec2, &net, &[("gloo-id", "1"), ("gloo-tag", "Group1")]).await;
    let (d, d_ip) = launch_tagged(&ec2, &net, &[("gloo-tag", "group1")]).await;
    // Matches, but its port tag is not a port: skipped with a warning.
    let (e, _) = launch_tagged(
        &ec2,
        &net,
        &[
            ("gloo-id", "1"),
            ("gloo-tag", "group1"),
            ("airlock:port", "http"),
        ],
    )
    .await;
    // Found by --discover-upstreams through its airlock:upstream tag.
    let (f, f_ip) = launch_tagged(&ec2, &net, &[("airlock:upstream", "auto")]).await;
    let mut backends = BTreeMap::new();
    for (name, id, ip) in [
        ("a", &a, &a_ip),
        ("b", &b, &b_ip),
        ("c", &c, &c_ip),
        ("d", &d, &d_ip),
        ("f", &f, &f_ip),
    ] {
        let backend = Backend::serving(&ec2, dir.path(), name, (id, ip)).await;
        backends.insert(name, backend);
    }
    let auto_route = "    - matchers:\n      - prefix: /auto\n      routeAction:\n        single:\n          upstream:\n            name: auto\n";
    let gw = Gateway::start(
        &moto,
        dir.path(),
        &gloo_config(auto_route),
        &["--discover-upstreams"],
    );
    gw.wait_members(UPSTREAM, &[&a, &b], Duration::from_secs(10))
        .await;

    // Only a and b get traffic, and both get some.
    let seen = gw.spread("/echoapp", 40).await;
    assert_eq!(seen.keys().collect::<Vec<_>>(), ["a", "b"], "{seen:?}");
    assert!(
        seen["a"] >= 15 && seen["b"] >= 15,
        "round-robin spreads evenly: {seen:?}"
    );

    assert_routes_as_gloo_makes_them(&gw).await;

    assert_endpoints_listed(&gw, (&a, &a_ip, backends["a"].port), &e).await;
    assert_metrics_cover_the_traffic(&gw).await;

    assert_membership_follows_tags_and_state(&ec2, &gw, (&a, &b, &c)).await;
}

/// Waits (bounded) until the gateway records a failed listing and says its group is stale;
/// meanwhile every request is served, never by b.
async fn wait_listing_failure_while_serving(gw: &Gateway) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = gw.spread("/echoapp", 4).await;
        assert!(!seen.contains_key("b"), "{seen:?}");
        let m = gw.metrics().await;
        let failed = m
            .lines()
            .any(|l| l.starts_with("airlock_gateway_discovery_errors_total") && !l.ends_with(" 0"));
        if failed {
            assert!(
                m.lines().any(|l| l
                    .starts_with("airlock_gateway_discovery_stale{group=\"us-east-1/")
                    && l.ends_with(" 1")),
                "{m}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no listing failure recorded:\n{m}\n{}",
            gw.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Both endpoints left after b's server was killed keep serving (bounded wait: under load an
/// active check may briefly mark one unhealthy).
async fn assert_the_two_left_serve(gw: &Gateway) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = BTreeMap::new();
    while seen.len() < 2 {
        for (k, n) in gw.spread("/echoapp", 10).await {
            *seen.entry(k).or_insert(0) += n;
        }
        assert!(!seen.contains_key("b"), "{seen:?}");
        assert!(
            seen.len() == 2 || Instant::now() < deadline,
            "the last known endpoints should still serve: {seen:?}\n{}\n{}",
            gw.endpoints().await,
            gw.log_text()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_is_ejected_and_listing_failures_keep_the_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    // Its own server: the test stops it to make EC2 unreachable.
    let mut moto = Some(Moto::start_dedicated());
    let ec2 = moto.as_ref().unwrap().ec2().await;
    let net = loopback_net(&ec2).await;
    let tags = [("gloo-id", "1"), ("gloo-tag", "group1")];
    let mut ids = Vec::new();
    let mut backends = Vec::new();
    for name in ["a", "b", "c"] {
        let (id, ip) = launch_tagged(&ec2, &net, &tags).await;
        let backend = Backend::serving(&ec2, dir.path(), name, (&id, &ip)).await;
        backends.push(backend);
        ids.push(id);
    }
    let gw = Gateway::start(
        moto.as_ref().unwrap(),
        dir.path(),
        &gloo_config(""),
        &[
            "--balance",
            "least-request",
            "--eject-seconds",
            "30",
            "--list-timeout",
            "2",
            "--health-check-path",
            "/health",
            "--health-check-interval",
            "0.2",
            "--unhealthy-threshold",
            "2",
        ],
    );
    let all: Vec<&str> = ids.iter().map(String::as_str).collect();
    gw.wait_members(UPSTREAM, &all, Duration::from_secs(10))
        .await;
    assert_eq!(
        gw.spread("/echoapp", 30).await.len(),
        3,
        "least-request uses every endpoint"
    );

    // Kill b's server: no idempotent request fails, b gets nothing more.
    backends[1].kill();
    let seen = gw.spread("/echoapp", 30).await;
    assert!(!seen.contains_key("b"), "{seen:?}");
    let v = gw.endpoints().await;
    let b = v["upstreams"][UPSTREAM]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["instanceId"] == ids[1].as_str())
        .unwrap()
        .clone();
    assert_ne!(b["health"], "healthy", "{b}");
    let m = gw.metrics().await;
    assert!(
        m.contains(&format!(
            "airlock_gateway_endpoints_healthy{{upstream=\"{UPSTREAM}\"}} 2"
        )),
        "{m}"
    );

    // EC2 becomes unreachable: the last known endpoints keep serving, and metrics say it.
    drop(moto.take());
    wait_listing_failure_while_serving(&gw).await;
    assert_the_two_left_serve(&gw).await;
    let members = gw.members(UPSTREAM).await;
    assert_eq!(members.len(), 3, "{members:?}");
}

/// `gateway --check-config` on `text`: (exit code, stderr, stdout).
fn check_config(dir: &Path, text: &str) -> (Option<i32>, String, String) {
    let path = dir.join("check.yaml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(airlock_bin())
        .args(["gateway", "--check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_errors_are_clear_and_a_bad_reload_keeps_the_running_config() {
    let dir = tempfile::tempdir().unwrap();
    let check = |text: &str| check_config(dir.path(), text);
    let (code, _, stdout) = check(&gloo_config(""));
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.contains("1 upstream(s), 1 virtual service(s)"),
        "{stdout}"
    );

    let unknown = gloo_config("").replace(
        "name: ec2-demo-upstream\n            namespace",
        "name: nope\n            namespace",
    );
    let (code, err, _) = check(&unknown);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("document 3 (VirtualService gloo-system/default)"),
        "{err}"
    );
    assert!(err.contains("spec.virtualHost.routes[0].routeAction.single.upstream: unknown upstream gloo-system/nope"), "{err}");

    let no_filter = gloo_config("").replace("      - key: gloo-id\n", "      - {}\n");
    let (code, err, _) = check(&no_filter);
    assert_eq!(code, Some(1));
    assert!(err.contains("document 1 (Upstream gloo-system/ec2-demo-upstream): spec.upstreamSpec.awsEc2.filters[0]: a filter needs `key`"), "{err}");

    let (code, err, _) = check("kind: Upstream\nmetadata: {name: [\n");
    assert_eq!(code, Some(1));
    assert!(
        err.contains("document 1") && err.contains("not valid YAML"),
        "{err}"
    );
    assert!(!err.contains(SECRET_ACCESS_KEY));

    // A running gateway keeps its configuration when the new one is bad.
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let (a, ip) = launch_tagged(&ec2, &net, &[("gloo-id", "1"), ("gloo-tag", "group1")]).await;
    let _backend = Backend::serving(&ec2, dir.path(), "a", (&a, &ip)).await;
    let gw = Gateway::start(&moto, dir.path(), &gloo_config(""), &[]);
    gw.wait_members(UPSTREAM, &[&a], Duration::from_secs(10))
        .await;
    std::fs::write(&gw.config, "kind: Upstream\nmetadata: {name: [\n").unwrap();
    gw.sighup();
    // Generous: other tests load the machine; the reload itself takes milliseconds.
    gw.wait_metric(
        "airlock_gateway_config_reload_failures_total 1",
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(
        gw.get("/echoapp").await.0,
        200,
        "the previous configuration still serves"
    );
    assert!(gw.log_text().contains("keeping the previous configuration"));

    // A good change is picked up from the file alone (no signal) and applies at once.
    let more = "    - matchers:\n      - prefix: /new\n      routeAction:\n        single:\n          upstream:\n            name: ec2-demo-upstream\n";
    std::fs::write(&gw.config, gloo_config(more)).unwrap();
    let (body, _) = gw.wait_route("/new/x", Duration::from_secs(5)).await;
    assert!(body.contains(" /new/x "), "{body}");
}

/// A configuration stored in the console: the upstream names the console account `dev` (its key
/// stays in the console) and routes `/web`; `extra` adds routes.
fn console_config(extra_routes: &str) -> String {
    format!(
        r#"apiVersion: gloo.solo.io/v1
kind: Upstream
metadata:
  name: web
  namespace: gloo-system
spec:
  awsEc2:
    region: us-east-1
    filters:
    - key: web
    secretRef:
      name: dev
      namespace: airlock-console
---
apiVersion: gateway.solo.io/v1
kind: VirtualService
metadata:
  name: default
  namespace: gloo-system
spec:
  virtualHost:
    routes:
    - matchers:
      - prefix: /web
      routeAction:
        single:
          upstream:
            name: web
            namespace: gloo-system
{extra_routes}"#
    )
}

/// The console validates with the gateway's parser, and keeps keys out of configurations:
/// neither bad configuration is stored.
fn assert_console_refuses_bad_configs(console: &Console, dir: &Path) {
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        console_config("").replace("    - key: web\n", "    - {}\n"),
    )
    .unwrap();
    let out = console.cli(&["gateway-config", "put", "web", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = crate::common::stderr(&out);
    assert!(
        err.contains("web: document 1 (Upstream gloo-system/web): spec.awsEc2.filters[0]: a filter needs `key`"),
        "{err}"
    );
    let secret = format!(
        "kind: Secret\nmetadata: {{name: k}}\naws: {{accessKey: {ACCESS_KEY_ID}, secretKey: {SECRET_ACCESS_KEY}}}\n"
    );
    std::fs::write(&bad, secret).unwrap();
    let out = console.cli(&["gateway-config", "put", "keys", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = crate::common::stderr(&out);
    assert!(
        err.contains("Secret documents are not stored in the console"),
        "{err}"
    );
    assert!(!err.contains(SECRET_ACCESS_KEY));
    assert_eq!(
        console
            .json(&["gateway-config", "list"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_following_a_console_converges_at_once_and_reloads_its_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);
    let mut ids = Vec::new();
    let mut backends = Vec::new();
    for name in ["a", "b", "c"] {
        let (id, ip) = launch_tagged(&ec2, &net, &[("web", name)]).await;
        let backend = Backend::serving(&ec2, dir.path(), name, (&id, &ip)).await;
        backends.push(backend);
        ids.push(id);
    }
    let (a, b, c) = (ids[0].as_str(), ids[1].as_str(), ids[2].as_str());
    let file = dir.path().join("web.yaml");
    std::fs::write(&file, console_config("")).unwrap();
    let file = file.to_str().unwrap();
    console.ok(&["gateway-config", "put", "web", file]);

    assert_console_refuses_bad_configs(&console, dir.path());

    // The event stream needs a token, like every API route.
    let resp = reqwest::get(format!("{}/v1/events", console.url))
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    // A refresh interval of 30 s: every wait below ends well before a refresh could explain it.
    let gw = Gateway::following(&console, dir.path(), "30");
    gw.wait_members("gloo-system/web", &[a, b, c], Duration::from_secs(10))
        .await;
    let seen = gw.spread("/web", 30).await;
    assert_eq!(seen.len(), 3, "{seen:?}");
    gw.wait_console_connected().await;

    // Stopped through the console: out at once.
    console.ok(&["instance", "stop", a]);
    let took = gw
        .wait_members("gloo-system/web", &[b, c], Duration::from_secs(10))
        .await;
    eprintln!("instance stopped through the console left the gateway after {took:?}");
    // Re-tagged through the console: out at once.
    console.ok(&["tag", "remove", b, "web"]);
    let took = gw
        .wait_members("gloo-system/web", &[c], Duration::from_secs(10))
        .await;
    eprintln!("instance re-tagged through the console left the gateway after {took:?}");
    assert_eq!(gw.spread("/web", 5).await.keys().collect::<Vec<_>>(), ["c"]);

    // A stored configuration changed: the gateway reloads it at once.
    let more = "    - matchers:\n      - prefix: /other\n      routeAction:\n        single:\n          upstream:\n            name: web\n";
    std::fs::write(dir.path().join("web.yaml"), console_config(more)).unwrap();
    console.ok(&["gateway-config", "put", "web", file]);
    let (body, took) = gw.wait_route("/other/x", Duration::from_secs(10)).await;
    assert!(body.starts_with("c /other/x "), "{body}");
    eprintln!("stored configuration applied after {took:?}");
    assert!(gw
        .metrics()
        .await
        .contains("airlock_gateway_config_reloads_total"));
    // Neither the gateway nor the console ever wrote the account's key.
    assert!(!gw.log_text().contains(SECRET_ACCESS_KEY));
    assert!(!console.output_text().contains(SECRET_ACCESS_KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hashing_on_a_header_keeps_a_user_on_one_instance() {
    let dir = tempfile::tempdir().unwrap();
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let tags = [("gloo-id", "1"), ("gloo-tag", "group1")];
    let mut backends = Vec::new();
    for name in ["a", "b", "c"] {
        let (id, ip) = launch_tagged(&ec2, &net, &tags).await;
        let backend = Backend::serving(&ec2, dir.path(), name, (&id, &ip)).await;
        backends.push(backend);
    }
    let hashed_route = "    - matchers:\n      - prefix: /cart\n      routeAction:\n        single:\n          upstream:\n            name: ec2-demo-upstream\n      options:\n        lbHash:\n          hashPolicies:\n          - header: X-User\n";
    // The older shape keeps loadBalancerConfig beside awsEc2, under upstreamSpec.
    let config = gloo_config(hashed_route).replacen(
        "        namespace: default\n---",
        "        namespace: default\n    loadBalancerConfig:\n      ringHash:\n        ringHashConfig: {minimumRingSize: \"1024\"}\n---",
        1,
    );
    assert!(config.contains("ringHash"));
    let gw = Gateway::start(&moto, dir.path(), &config, &[]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut v = gw.endpoints().await;
    while v["upstreams"][UPSTREAM]["endpoints"]
        .as_array()
        .map_or(0, Vec::len)
        < 3
    {
        assert!(Instant::now() < deadline, "{v}\n{}", gw.log_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
        v = gw.endpoints().await;
    }
    let who = |user: String| {
        let gw = &gw;
        async move {
            let resp = gw
                .http
                .get(format!("{}/cart/x", gw.url))
                .header("x-user", user)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            resp.text()
                .await
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .to_owned()
        }
    };
    let mut owners = BTreeMap::new();
    for u in 0..30 {
        let first = who(format!("user-{u}")).await;
        for _ in 0..3 {
            assert_eq!(who(format!("user-{u}")).await, first, "user-{u} moved");
        }
        *owners.entry(first).or_insert(0) += 1;
    }
    assert!(owners.len() >= 2, "users spread over instances: {owners:?}");
    // Without the header, requests are balanced as usual (round-robin over all three).
    assert_eq!(gw.spread("/cart/x", 9).await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_follows_a_tls_console_whose_ca_it_is_told() {
    let dir = tempfile::tempdir().unwrap();
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let console = Console::start_tls(&[]);
    console.login_with_account(&moto);
    let (id, ip) = launch_tagged(&ec2, &net, &[("web", "a")]).await;
    let _backend = Backend::serving(&ec2, dir.path(), "a", (&id, &ip)).await;
    let file = dir.path().join("web.yaml");
    std::fs::write(&file, console_config("")).unwrap();
    console.ok(&["gateway-config", "put", "web", file.to_str().unwrap()]);

    let gw = Gateway::following(&console, dir.path(), "30");
    gw.wait_members("gloo-system/web", &[&id], Duration::from_secs(20))
        .await;
    let (status, body) = gw.get("/web/x").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("a /web/x "), "{body}");
}

/// Opens a connection that sends `first`; then (in a task) one more byte every 500 ms
/// (nothing at all when `first` is empty: a silent client). The task ends when the gateway
/// closes the connection, with the time since `since`.
async fn hold(
    addr: &str,
    first: &'static [u8],
    since: Instant,
) -> tokio::task::JoinHandle<Duration> {
    use tokio::io::AsyncWriteExt as _;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(first).await.unwrap();
    tokio::spawn(held_until_closed(stream, first, since))
}

async fn held_until_closed(
    mut stream: tokio::net::TcpStream,
    first: &'static [u8],
    since: Instant,
) -> Duration {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut buf = [0u8; 512];
    loop {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => return since.elapsed(),
                // A 408 before the close.
                Ok(_) => {}
            },
            () = tokio::time::sleep(Duration::from_millis(500)) => {
                if !first.is_empty() && stream.write_all(b"a").await.is_err() {
                    return since.elapsed();
                }
            }
        }
        assert!(
            since.elapsed() < Duration::from_secs(40),
            "the gateway never closed a connection that sent {first:?}"
        );
    }
}

const SLOW_HEADERS: &[u8] = b"GET /echoapp HTTP/1.1\r\nHost: x\r\nX-Slow: ";

/// `n` attackers, connected: slow-header ones, and every third a silent one.
async fn attack(addr: &str, n: usize, since: Instant) -> Vec<tokio::task::JoinHandle<Duration>> {
    let mut attackers = Vec::new();
    for i in 0..n {
        let first = if i % 3 == 2 { &b""[..] } else { SLOW_HEADERS };
        attackers.push(hold(addr, first, since).await);
    }
    attackers
}

/// A client that opens a new connection for every request, so none waits in a pool.
fn fresh_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_and_silent_clients_cannot_exhaust_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let (a, ip) = launch_tagged(&ec2, &net, &[("gloo-id", "1"), ("gloo-tag", "group1")]).await;
    let _backend = Backend::serving(&ec2, dir.path(), "a", (&a, &ip)).await;
    let gw = Gateway::start(
        &moto,
        dir.path(),
        &gloo_config(""),
        // One proxy thread: one accept queue, so the request below queues behind the attackers.
        &[
            "--header-timeout",
            "2",
            "--max-connections",
            "12",
            "--workers",
            "1",
        ],
    );
    gw.wait_members(UPSTREAM, &[&a], Duration::from_secs(10))
        .await;
    let addr = gw.url.trim_start_matches("http://").to_owned();

    // Below the cap, a normal request is served while the attackers hold their connections,
    // and each attacker is closed within the header timeout.
    let since = Instant::now();
    let attackers = attack(&addr, 9, since).await;
    let resp = fresh_client()
        .get(format!("{}/echoapp", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let served_at = since.elapsed();
    for attacker in attackers {
        let held = attacker.await.unwrap();
        assert!(
            held > served_at,
            "the request ({served_at:?}) waited for an attacker ({held:?})"
        );
        assert!(
            held >= Duration::from_millis(1500) && held < Duration::from_secs(6),
            "an attacker was held {held:?} with --header-timeout 2\n{}",
            gw.log_text()
        );
    }

    // At the cap, a normal request waits in the backlog only until the header timeout frees
    // a connection.
    let since = Instant::now();
    let attackers = attack(&addr, 12, since).await;
    let asked = Instant::now();
    let resp = fresh_client()
        .get(format!("{}/echoapp", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let waited = asked.elapsed();
    assert!(
        waited >= Duration::from_millis(700) && waited < Duration::from_secs(8),
        "with every connection taken, the request waited {waited:?}"
    );
    for attacker in attackers {
        let held = attacker.await.unwrap();
        assert!(
            held < Duration::from_secs(6),
            "an attacker was held {held:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_client_that_never_says_hello_is_dropped_after_the_handshake_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let moto = Moto::start();
    let (ca, cert, key) = test_ca(dir.path());
    let gw = Gateway::start(
        &moto,
        dir.path(),
        &gloo_config(""),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--tls-handshake-timeout",
            "1",
        ],
    );
    let addr = gw.url.trim_start_matches("http://").to_owned();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap())
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    // The route has no endpoint: 503 from the gateway itself, over TLS.
    let ask = || async {
        let resp = client
            .get(format!("https://{addr}/echoapp"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 503);
        assert!(resp.headers().contains_key("x-airlock-error"));
    };
    // Serving (the proxy starts once discovery has answered, or after 5 s).
    ask().await;
    let since = Instant::now();
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(hold(&addr, b"", since).await);
    }
    // A real TLS client is answered meanwhile.
    ask().await;
    for s in silent {
        // The header timeout is the default 30 s: only the handshake timeout closes them.
        let held = s.await.unwrap();
        assert!(
            held >= Duration::from_millis(700) && held < Duration::from_secs(5),
            "a client without a ClientHello was held {held:?}\n{}",
            gw.log_text()
        );
    }
}

/// A Secret document with a key of its own, for the secrets-file tests.
const SECRETS_FILE_KEY: &str = "secrets-file-key-7d2e9b41c0a5";

fn secrets_yaml() -> String {
    format!(
        "kind: Secret\nmetadata: {{name: extra, namespace: default}}\naws:\n  accessKey: AKIAEXTRA\n  secretKey: {SECRETS_FILE_KEY}\n"
    )
}

fn write_mode(path: &Path, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `airlock gateway` with a configuration and a secrets file, run until it exits (a bad
/// configuration ends it before it listens): (exit code, stderr).
fn gateway_once(config: &Path, secrets: &Path, check: bool) -> (Option<i32>, String) {
    let mut cmd = Command::new(airlock_bin());
    cmd.arg("gateway")
        .arg("--config")
        .arg(config)
        .arg("--secrets")
        .arg(secrets)
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .args(["--endpoint-url", "http://127.0.0.1:9"])
        .env_remove("AIRLOCK_CONSOLE");
    if check {
        cmd.arg("--check-config");
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Waits until the gateway counts at least `n` failed reloads.
async fn reload_failures(gw: &Gateway, n: u32) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let failures = |metrics: String| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("airlock_gateway_config_reload_failures_total "))
            .and_then(|v| v.trim().parse::<u32>().ok())
            .unwrap_or(0)
    };
    while failures(gw.metrics().await) < n {
        assert!(
            Instant::now() < deadline,
            "no failed reload:\n{}",
            gw.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secrets_file_other_local_users_can_read_is_refused_at_start_and_on_reload() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, gloo_config("")).unwrap();
    let secrets = dir.path().join("secrets.yaml");
    write_mode(&secrets, &secrets_yaml(), 0o644);
    let fix = format!("chmod 600 {}", secrets.display());
    for check in [true, false] {
        let (code, err) = gateway_once(&config, &secrets, check);
        assert_eq!(code, Some(1), "{err}");
        assert!(err.contains(&fix) && err.contains("mode 0644"), "{err}");
    }
    for shared in [0o640, 0o604] {
        chmod(&secrets, shared);
        assert_eq!(gateway_once(&config, &secrets, true).0, Some(1));
    }
    chmod(&secrets, 0o600);
    let (code, err) = gateway_once(&config, &secrets, true);
    assert_eq!(code, Some(0), "{err}");

    // A running gateway refuses it on reload too, and keeps its configuration.
    let moto = Moto::start();
    let gw = Gateway::start(
        &moto,
        dir.path(),
        &gloo_config(""),
        &["--secrets", secrets.to_str().unwrap()],
    );
    chmod(&secrets, 0o644);
    gw.sighup();
    reload_failures(&gw, 1).await;
    let log = gw.log_text();
    assert!(log.contains(&fix), "{log}");
    assert!(log.contains("keeping the previous configuration"), "{log}");
    assert!(!log.contains(SECRETS_FILE_KEY) && !log.contains(SECRET_ACCESS_KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_yaml_error_in_the_secrets_file_never_echoes_the_secret_next_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, gloo_config("")).unwrap();
    let secrets = dir.path().join("secrets.yaml");
    // An unterminated quote around the key, and a key where a mapping was expected.
    let broken = [
        secrets_yaml().replace(
            &format!("secretKey: {SECRETS_FILE_KEY}"),
            &format!("secretKey: \"{SECRETS_FILE_KEY}"),
        ),
        secrets_yaml().replace(
            "  secretKey:",
            &format!("  {SECRETS_FILE_KEY}\n  secretKey:"),
        ),
    ];
    for text in &broken {
        write_mode(&secrets, text, 0o600);
        for check in [true, false] {
            let (code, err) = gateway_once(&config, &secrets, check);
            assert_eq!(code, Some(1), "{err}");
            assert!(err.contains("not valid YAML at line"), "{err}");
            assert!(!err.contains(SECRETS_FILE_KEY), "the key is in:\n{err}");
            assert!(!err.contains("7d2e9b41"), "part of the key is in:\n{err}");
        }
    }

    // On reload, the error goes to the gateway's log: without the key.
    let moto = Moto::start();
    write_mode(&secrets, &secrets_yaml(), 0o600);
    let gw = Gateway::start(
        &moto,
        dir.path(),
        &gloo_config(""),
        &["--secrets", secrets.to_str().unwrap()],
    );
    // Changed in place (the watch reloads it), so its mode stays 0600.
    std::fs::write(&secrets, &broken[0]).unwrap();
    reload_failures(&gw, 1).await;
    let log = gw.log_text();
    assert!(log.contains("not valid YAML at line 5"), "{log}");
    assert!(
        !log.contains(SECRETS_FILE_KEY) && !log.contains("7d2e9b41"),
        "{log}"
    );
}

/// Flag values and combinations the gateway cannot use are usage errors (exit 2, as the README
/// promises), found before any file is read or socket bound; a bad configuration file is not
/// one (exit 1, as docs/gateway.md says).
#[test]
fn unusable_gateway_flags_exit_2_before_anything_is_read_or_bound() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.yaml");
    let missing = missing.to_str().unwrap();
    for bad in [
        &[][..],
        &["--config", missing, "--refresh-interval", "0.01"],
        &["--config", missing, "--header-timeout", "0"],
        &["--config", missing, "--max-connections", "0"],
        &["--config", missing, "--eject-seconds", "-1"],
        &["--config", missing, "--health-check-path", "healthz"],
        &["--discover-upstreams", "--discover-secret", "no-slash"],
        &["--config", missing, "--balance", "fastest"],
        &["--config", missing, "--name", "not a name"],
    ] {
        let out = Command::new(airlock_bin())
            .arg("gateway")
            .args(bad)
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .env_remove("AIRLOCK_CONSOLE")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {err}");
        // The flags were refused before the configuration file was looked for.
        assert!(!err.contains("missing.yaml"), "{bad:?}: {err}");
    }
    let out = Command::new(airlock_bin())
        .args(["gateway", "--check-config", "--config", missing])
        .env_remove("AIRLOCK_CONSOLE")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_following_one_console_drops_an_instance_stopped_through_another_within_two_seconds(
) {
    let dir = tempfile::tempdir().unwrap();
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    // Two nodes on one PostgreSQL database, as behind a load balancer.
    let mut first = Console::node(&crate::common::postgres_database(), &[]);
    first.launch();
    first.login_with_account(&moto);
    let second = Console::start_sharing(&first, &[]);
    second.login();
    let mut ids = Vec::new();
    let mut backends = Vec::new();
    for name in ["a", "b"] {
        let (id, ip) = launch_tagged(&ec2, &net, &[("web", name)]).await;
        let backend = Backend::serving(&ec2, dir.path(), name, (&id, &ip)).await;
        backends.push(backend);
        ids.push(id);
    }
    let (a, b) = (ids[0].as_str(), ids[1].as_str());
    let file = dir.path().join("web.yaml");
    std::fs::write(&file, console_config("")).unwrap();
    first.ok(&["gateway-config", "put", "web", file.to_str().unwrap()]);

    // Following the second node, refreshing only every 30 s: only the event can explain a
    // change seen sooner.
    let gw = Gateway::following(&second, dir.path(), "30");
    gw.wait_members("gloo-system/web", &[a, b], Duration::from_secs(10))
        .await;
    gw.wait_console_connected().await;
    first.ok(&["instance", "stop", a]);
    let took = gw
        .wait_members("gloo-system/web", &[b], Duration::from_secs(2))
        .await;
    eprintln!("instance stopped through the other node left the gateway after {took:?}");
}

/// `GET /v1/gateway/upstreams` as `token` sees it: the one stored upstream.
async fn upstream_seen(console: &Console, token: &str) -> serde_json::Value {
    let (_, list) = crate::common::api_get(console, token, "/v1/gateway/upstreams").await;
    assert_eq!(list["upstreams"].as_array().unwrap().len(), 1, "{list}");
    list["upstreams"][0].clone()
}

fn ids_of(v: &serde_json::Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|m| m["instance_id"].as_str().unwrap())
        .collect()
}

/// The gateway page's data: which instances back a stored upstream now, why the others that
/// carry its tag key do not (the rule the gateway itself routes by), and nothing about an
/// instance the reader may not describe: a user allowed to describe only one instance learns
/// nothing of the others through the gateway's view, and one who may not use the account sees
/// no instance at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_with_narrow_describe_sees_only_their_instances_behind_a_stored_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);
    let (a, a_ip) = launch_tagged(&ec2, &net, &[("web", "a"), ("team", "mine")]).await;
    let (stopped, _) = launch_tagged(&ec2, &net, &[("web", "b")]).await;
    ec2.stop_instances()
        .instance_ids(&stopped)
        .send()
        .await
        .unwrap();
    let (bad_port, _) = launch_tagged(&ec2, &net, &[("web", "c"), ("airlock:port", "http")]).await;
    let (elsewhere, _) = launch_tagged(&ec2, &net, &[("api", "d")]).await;
    let file = dir.path().join("web.yaml");
    std::fs::write(&file, console_config("")).unwrap();
    console.ok(&["gateway-config", "put", "web", file.to_str().unwrap()]);

    let up = upstream_seen(&console, &console.token()).await;
    assert_eq!(up["name"], "web");
    assert_eq!(up["account"], "dev");
    assert_eq!(up["filters"], serde_json::json!(["tag-key=web"]));
    assert_eq!(ids_of(&up["members"]), [a.as_str()]);
    assert_eq!(up["members"][0]["address"], format!("{a_ip}:80"));
    let reasons: BTreeMap<&str, &str> = up["excluded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["instance_id"].as_str().unwrap(),
                e["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        reasons[stopped.as_str()].contains("only running instances"),
        "{reasons:?}"
    );
    assert!(
        reasons[bad_port.as_str()].contains("airlock:port=\"http\" is not a port"),
        "{reasons:?}"
    );
    assert!(
        !reasons.contains_key(elsewhere.as_str()),
        "not near: {reasons:?}"
    );
    assert_eq!(up["excluded_total"], 2);
    // The same from the command line.
    let cli = console.json(&["gateway-config", "upstreams"]);
    assert_eq!(cli["upstreams"][0]["members"][0]["instance_id"], a.as_str());
    let table = console.ok(&["gateway-config", "upstreams", "--output", "table"]);
    assert!(
        table.contains("gloo-system/web") && table.contains(&format!("{a} {a_ip}:80")),
        "{table}"
    );

    let look = |describe: serde_json::Value| {
        serde_json::json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "airlock:ListGatewayConfigs", "Resource": "*"},
            describe,
        ]})
    };
    let erin = console.add_user(
        "erin",
        &[
            look(
                serde_json::json!({"Effect": "Allow", "Action": "ec2:DescribeInstances",
                "Resource": "*", "Condition": {"StringEquals": {"ec2:ResourceTag/team": "mine"}}}),
            ),
            serde_json::json!({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "airlock:UseAccount", "Resource": "*"}]}),
        ],
    );
    let up = upstream_seen(&console, &erin.token()).await;
    assert_eq!(ids_of(&up["members"]), [a.as_str()]);
    assert_eq!(up["excluded_total"], 0, "{up}");

    let frank = console.add_user(
        "frank",
        &[look(serde_json::json!({"Effect": "Allow", "Action": "ec2:DescribeInstances", "Resource": "*"}))],
    );
    let up = upstream_seen(&console, &frank.token()).await;
    assert!(ids_of(&up["members"]).is_empty(), "{up}");
    assert!(
        up["note"].as_str().unwrap().contains("airlock:UseAccount"),
        "{up}"
    );

    // Without airlock:ListGatewayConfigs nothing at all, not even the upstreams' names.
    let ivan = console.add_user(
        "ivan",
        &[serde_json::json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["airlock:UseAccount", "ec2:DescribeInstances"], "Resource": "*"}]})],
    );
    let (status, body) =
        crate::common::api_get(&console, &ivan.token(), "/v1/gateway/upstreams").await;
    assert_eq!(status, 403);
    assert!(!body.to_string().contains("gloo-system/web"));
}

/// What the console's gateway view says `gateway` reported of the member `instance`.
async fn reported_health(console: &Console, instance: &str) -> Option<String> {
    let up = upstream_seen(console, &console.token()).await;
    let member = up["members"]
        .as_array()?
        .iter()
        .find(|m| m["instance_id"] == instance)?
        .clone();
    member["gateways"][0]["health"].as_str().map(str::to_owned)
}

/// Each gateway following the console reports what it sees of its endpoints every few seconds,
/// and the console's view of the stored upstreams shows an endpoint the gateway ejected. A user
/// without airlock:ReportGatewayHealth cannot plant a report, and a malformed one is refused
/// naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_without_report_permission_cannot_plant_gateway_health() {
    let dir = tempfile::tempdir().unwrap();
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let console = Console::start();
    console.login_with_account(&moto);
    let mut ids = Vec::new();
    let mut backends = Vec::new();
    for name in ["a", "b"] {
        let (id, ip) = launch_tagged(&ec2, &net, &[("web", name)]).await;
        backends.push(Backend::serving(&ec2, dir.path(), name, (&id, &ip)).await);
        ids.push(id);
    }
    let file = dir.path().join("web.yaml");
    std::fs::write(&file, console_config("")).unwrap();
    console.ok(&["gateway-config", "put", "web", file.to_str().unwrap()]);
    let gw = Gateway::following(&console, dir.path(), "30");
    gw.wait_members(
        "gloo-system/web",
        &[&ids[0], &ids[1]],
        Duration::from_secs(10),
    )
    .await;

    backends[1].kill();
    gw.spread("/web", 20).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while reported_health(&console, &ids[1]).await.as_deref() != Some("ejected") {
        assert!(
            Instant::now() < deadline,
            "the ejection never reached the console"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(
        reported_health(&console, &ids[0]).await.as_deref(),
        Some("healthy")
    );

    let http = reqwest::Client::new();
    let report = |health: &str| {
        serde_json::json!({"gateway": "planted", "endpoints": [{"upstream": "gloo-system/web",
            "instance_id": ids[0], "address": "127.0.0.1:80", "health": health}]})
    };
    let ivan = console.add_user(
        "ivan",
        &[serde_json::json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "airlock:ListGatewayConfigs", "Resource": "*"}]})],
    );
    let resp = http
        .post(format!("{}/v1/gateway/health", console.url))
        .bearer_auth(ivan.token())
        .json(&report("ejected"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let resp = http
        .post(format!("{}/v1/gateway/health", console.url))
        .bearer_auth(console.token())
        .json(&report("dead"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["field"], "endpoints[0].health", "{body}");
    let up = upstream_seen(&console, &console.token()).await;
    assert!(!up.to_string().contains("planted"), "{up}");
}
