//! The test bed: a moto server for each test (the EC2/STS endpoint, pooled and reset between tests), a loopback VPC in it, and real
//! `airlock serve` processes on SQLite or PostgreSQL, driven through the real `airlock` binary.
//!
//! Everything listens on 127.0.0.1. The scripts in `scripts/` install moto and PostgreSQL and
//! say where they are through `AIRLOCK_MOTO_SERVER` and `AIRLOCK_TEST_POSTGRES`.

#![allow(clippy::unwrap_used)]

pub mod fleet;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const ACCESS_KEY_ID: &str = "AKIAAIRLOCKTESTKEY42";
/// A recognisable secret: tests scan for it everywhere it must not be.
pub const SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYzz-SECRET-9f3c";
pub const ADMIN_PASSWORD: &str = "admin-password-0d1e2f3a4b";
pub const REGION: &str = "us-east-1";
/// A second region, for a second account in the same moto server.
pub const OTHER_REGION: &str = "eu-west-1";
/// An Amazon Linux image in moto's built-in catalogue.
pub const TEST_IMAGE: &str = "ami-760aaa0f";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_http(url: &str, what: &str, child: &mut Child, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited with {status} before answering; log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        let up = match url.strip_prefix("https://") {
            // A TLS listener: accepting connections is enough (clients check the rest).
            Some(rest) => std::net::TcpStream::connect(rest.split('/').next().unwrap()).is_ok(),
            None => ureq_get(url).is_ok(),
        };
        if up {
            return;
        }
        assert!(Instant::now() < deadline, "{what} did not answer at {url}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A minimal blocking GET, enough to see that a server is up.
pub fn ureq_get(url: &str) -> std::io::Result<String> {
    plain_request("GET", url)
}

/// A minimal blocking POST with no body.
fn post_empty(url: &str) -> std::io::Result<String> {
    plain_request("POST", url)
}

fn plain_request(method: &str, url: &str) -> std::io::Result<String> {
    use std::io::Read;
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let mut s = std::net::TcpStream::connect(host)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    if out.starts_with("HTTP/1.0 200") || out.starts_with("HTTP/1.1 200") {
        Ok(out)
    } else {
        Err(std::io::Error::other(out))
    }
}

/// A moto server for one test at a time. Starting moto and loading its EC2 backend costs about
/// two seconds of CPU, so servers are kept in a pool and reset (`/moto-api/reset`) between tests
/// instead of being started for each.
pub struct Moto {
    server: Option<MotoServer>,
    pub url: String,
    /// Servers started with extra settings are not shared.
    pooled: bool,
}

struct MotoServer {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

static IDLE_MOTO: std::sync::Mutex<Vec<MotoServer>> = std::sync::Mutex::new(Vec::new());

impl Moto {
    pub fn start() -> Moto {
        let idle = IDLE_MOTO.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let server = idle.unwrap_or_else(|| MotoServer::spawn(&[]));
        Moto {
            url: server.url.clone(),
            server: Some(server),
            pooled: true,
        }
    }

    /// A server of the test's own, for a test that stops it (dropping it kills it).
    pub fn start_dedicated() -> Moto {
        Self::start_with_env(&[])
    }

    pub fn start_with_env(env: &[(&str, &str)]) -> Moto {
        let server = MotoServer::spawn(env);
        Moto {
            url: server.url.clone(),
            server: Some(server),
            pooled: false,
        }
    }

    /// Starts recording the requests moto receives (forgetting earlier ones).
    pub async fn record(&self) {
        let http = reqwest::Client::new();
        for step in ["reset-recording", "start-recording"] {
            let url = format!("{}/moto-api/recorder/{step}", self.url);
            assert!(http.post(url).send().await.unwrap().status().is_success());
        }
    }

    /// How many recorded requests called the EC2 Query API's `action`.
    pub async fn calls(&self, action: &str) -> usize {
        self.actions().await.iter().filter(|a| *a == action).count()
    }

    /// The Query API action of every recorded request, in the order moto received them.
    pub async fn actions(&self) -> Vec<String> {
        self.bodies()
            .await
            .iter()
            .filter_map(|body| {
                body.split('&')
                    .find_map(|pair| pair.strip_prefix("Action="))
                    .map(str::to_owned)
            })
            .collect()
    }

    /// The body of every recorded request (the Query API's form), in the order moto received
    /// them: what really reached EC2, including what moto itself does not model.
    pub async fn bodies(&self) -> Vec<String> {
        let url = format!("{}/moto-api/recorder/download-recording", self.url);
        let text = reqwest::get(url).await.unwrap().text().await.unwrap();
        text.lines()
            .map(|line| {
                let request: serde_json::Value = serde_json::from_str(line).unwrap();
                let body = request["body"].as_str().unwrap_or_default();
                if request["body_encoded"] == true {
                    use base64::Engine;
                    let raw = base64::engine::general_purpose::STANDARD
                        .decode(body)
                        .unwrap();
                    String::from_utf8_lossy(&raw).into_owned()
                } else {
                    body.to_owned()
                }
            })
            .collect()
    }

    /// An EC2 client straight to moto, to check what EC2 holds independently of the console.
    pub async fn ec2(&self) -> aws_sdk_ec2::Client {
        self.ec2_in(REGION).await
    }

    /// An EC2 client straight to moto in `region`.
    pub async fn ec2_in(&self, region: &str) -> aws_sdk_ec2::Client {
        let creds = aws_sdk_ec2::config::Credentials::new(
            ACCESS_KEY_ID,
            SECRET_ACCESS_KEY,
            None,
            None,
            "test",
        );
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_owned()))
            .credentials_provider(creds)
            .endpoint_url(&self.url)
            .load()
            .await;
        aws_sdk_ec2::Client::new(&config)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let Some(server) = self.server.take() else {
            return;
        };
        // A server whose state cannot be wiped is not handed to the next test.
        if self.pooled && !std::thread::panicking() && server.reset() {
            IDLE_MOTO
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(server);
        }
    }
}

impl MotoServer {
    fn spawn(env: &[(&str, &str)]) -> MotoServer {
        let server = std::env::var("AIRLOCK_MOTO_SERVER").expect(
            "AIRLOCK_MOTO_SERVER is not set: run the tests with scripts/test, which installs moto",
        );
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("moto.log");
        let port = free_port();
        // Pooled servers outlive every test and the pool itself is never dropped, so moto runs
        // under a shell that stops it when the test process closes the shell's standard input
        // (which the kernel does when the process exits, however it exits).
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            r#"exec 3<&0; "$0" "$@" & m=$!; (read -r _ <&3; kill $m) & wait $m"#,
        ]);
        cmd.arg(server);
        // EC2 refuses unknown images; moto does too only when asked.
        cmd.env("MOTO_ENABLE_AMI_VALIDATION", "true");
        // Requests are recorded only between Moto::record and Moto::calls.
        cmd.env("MOTO_ENABLE_RECORDING", "true")
            .env("MOTO_RECORDER_FILEPATH", dir.path().join("recording"));
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.path().join("moto.err")).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let url = format!("http://127.0.0.1:{port}");
        wait_http(
            &format!("{url}/moto-api/"),
            "moto",
            &mut child,
            &dir.path().join("moto.err"),
        );
        MotoServer {
            child,
            url,
            _dir: dir,
        }
    }

    /// Forgets every resource and recorded request; false if moto did not say it did.
    fn reset(&self) -> bool {
        [
            "/moto-api/reset",
            "/moto-api/recorder/stop-recording",
            "/moto-api/recorder/reset-recording",
        ]
        .iter()
        .all(|path| post_empty(&format!("{}{path}", self.url)).is_ok())
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// A loopback VPC (127.0.0.0/16) and subnet, so instances get 127.0.0.x addresses, plus an image.
pub struct TestNet {
    pub vpc_id: String,
    pub subnet_id: String,
    pub image_id: String,
}

pub async fn loopback_net(ec2: &aws_sdk_ec2::Client) -> TestNet {
    let vpc = ec2
        .create_vpc()
        .cidr_block("127.0.0.0/16")
        .send()
        .await
        .unwrap();
    let vpc_id = vpc.vpc().unwrap().vpc_id().unwrap().to_owned();
    let subnet = ec2
        .create_subnet()
        .vpc_id(&vpc_id)
        .cidr_block("127.0.0.0/24")
        .send()
        .await
        .unwrap();
    let subnet_id = subnet.subnet().unwrap().subnet_id().unwrap().to_owned();
    // One image moto always has: describing all of them costs a second per test.
    let images = ec2
        .describe_images()
        .image_ids(TEST_IMAGE)
        .send()
        .await
        .unwrap();
    let image_id = images.images()[0].image_id().unwrap().to_owned();
    TestNet {
        vpc_id,
        subnet_id,
        image_id,
    }
}

/// Where a console keeps its data: SQLite in its directory, or a fresh PostgreSQL database when
/// `AIRLOCK_TEST_DATABASE=postgres`.
pub fn database_url(dir: &Path) -> String {
    if std::env::var("AIRLOCK_TEST_DATABASE").as_deref() == Ok("postgres") {
        postgres_database()
    } else {
        format!("sqlite://{}", dir.join("airlock.db").display())
    }
}

/// A fresh, empty database on the test PostgreSQL server.
pub fn postgres_database() -> String {
    {
        let base = std::env::var("AIRLOCK_TEST_POSTGRES")
            .expect("AIRLOCK_TEST_POSTGRES is not set: run the tests with scripts/test");
        // A free port is free again once its test ends, so it cannot name a database: the
        // process id, the clock and a counter together can.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!(
            "airlock_{}_{nanos}_{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let out = Command::new("psql")
            .args([
                base.as_str(),
                "-v",
                "ON_ERROR_STOP=1",
                "-qc",
                &format!("CREATE DATABASE {name}"),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "createdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (prefix, _) = base.rsplit_once('/').unwrap();
        format!("{prefix}/{name}")
    }
}

pub fn is_sqlite(url: &str) -> bool {
    url.starts_with("sqlite://")
}

/// An `airlock serve` process and a config dir for its client.
pub struct Console {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub url: String,
    pub port: u16,
    pub database: String,
    pub extra_args: Vec<String>,
    /// The CA of a TLS console's certificate (`Console::start_tls`).
    pub ca: Option<PathBuf>,
    starts: usize,
}

/// A private CA and a certificate it issued for 127.0.0.1 and localhost, as PEM files in `dir`:
/// (ca, cert, key).
pub fn test_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Airlock test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let files = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&files.0, ca.pem()).unwrap();
    std::fs::write(&files.1, leaf.pem()).unwrap();
    std::fs::write(&files.2, leaf_key.serialize_pem()).unwrap();
    files
}

pub fn airlock_bin() -> &'static str {
    env!("CARGO_BIN_EXE_airlock")
}

impl Console {
    pub fn start() -> Console {
        Self::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Console {
        let mut console = Console::unstarted(extra);
        console.launch();
        console
    }

    /// A console serving HTTPS with a certificate from a private CA (`self.ca`), which its
    /// clients are told to trust with AIRLOCK_CONSOLE_CA.
    pub fn start_tls(extra: &[&str]) -> Console {
        let mut console = Console::unstarted(extra);
        let (ca, cert, key) = test_ca(console.dir.path());
        console.url = format!("https://127.0.0.1:{}", console.port);
        console.extra_args.extend([
            "--tls-cert".to_owned(),
            cert.display().to_string(),
            "--tls-key".to_owned(),
            key.display().to_string(),
        ]);
        console.ca = Some(ca);
        console.launch();
        console
    }

    /// A console node on `database` (PostgreSQL when several share it), not started yet.
    pub fn node(database: &str, extra: &[&str]) -> Console {
        Console::unstarted_on(Some(database), extra)
    }

    /// Another node of `other`'s cluster: the same database and master key, its own port and
    /// client config. Started.
    pub fn start_sharing(other: &Console, extra: &[&str]) -> Console {
        let mut console = Console::node(&other.database, extra);
        std::fs::copy(other.key_file(), console.key_file()).unwrap();
        console.launch();
        console
    }

    fn unstarted(extra: &[&str]) -> Console {
        Console::unstarted_on(None, extra)
    }

    fn unstarted_on(database: Option<&str>, extra: &[&str]) -> Console {
        let dir = tempfile::tempdir().unwrap();
        let database = database.map_or_else(|| database_url(dir.path()), str::to_owned);
        let port = free_port();
        Console {
            child: None,
            url: format!("http://127.0.0.1:{port}"),
            port,
            database,
            dir,
            extra_args: extra.iter().map(|s| (*s).to_owned()).collect(),
            ca: None,
            starts: 0,
        }
    }

    pub fn key_file(&self) -> PathBuf {
        self.dir.path().join("master.key")
    }

    fn serve_command(&self) -> Command {
        let mut cmd = Command::new(airlock_bin());
        cmd.args(["serve", "--listen", &format!("127.0.0.1:{}", self.port), "--database", &self.database])
            .arg("--master-key-file")
            .arg(self.key_file())
            .args(&self.extra_args)
            // moto listens on 127.0.0.1; a test that means to refuse it names another host.
            .args(if self.extra_args.iter().any(|a| a == "--allow-endpoint") {
                &[][..]
            } else {
                &["--allow-endpoint", "127.0.0.1"][..]
            })
            .args(if self.extra_args.iter().any(|a| a == "--poll-interval") {
                &[][..]
            } else {
                &["--poll-interval", "0.2"][..]
            })
            .env("AIRLOCK_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("AIRLOCK_LOG", "debug,hyper=info,h2=info,rustls=info,aws_smithy_runtime=info,aws_smithy_runtime_api=info,sqlx=info")
            .env_remove("AIRLOCK_MASTER_KEY");
        cmd
    }

    /// Runs `airlock serve` as a one-shot (expected to fail); returns its output.
    pub fn serve_once(&self) -> Output {
        self.serve_command().stdin(Stdio::null()).output().unwrap()
    }

    pub fn launch(&mut self) {
        self.starts += 1;
        let out = self.dir.path().join(format!("console-{}.out", self.starts));
        let err = self.dir.path().join(format!("console-{}.log", self.starts));
        let mut child = self
            .serve_command()
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        wait_http(
            &format!("{}/healthz", self.url),
            "airlock serve",
            &mut child,
            &err,
        );
        self.child = Some(child);
    }

    /// The running console's process id (for signals).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Everything the console printed (stdout and logs) across its starts.
    pub fn output_text(&self) -> String {
        let mut all = String::new();
        for entry in std::fs::read_dir(self.dir.path()).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with("console-") {
                all.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
            }
        }
        all
    }

    /// Runs the client binary against this console with its own config dir.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_stdin(args, "")
    }

    pub fn cli_stdin(&self, args: &[&str], stdin: &str) -> Output {
        self.cli_in("config", args, stdin)
    }

    /// Runs the client with the config dir `name` (one per logged-in user).
    pub fn cli_in(&self, config: &str, args: &[&str], stdin: &str) -> Output {
        let mut command = Command::new(airlock_bin());
        match &self.ca {
            Some(ca) => command.env("AIRLOCK_CONSOLE_CA", ca),
            None => command.env_remove("AIRLOCK_CONSOLE_CA"),
        };
        let mut child = command
            .args(args)
            .env("AIRLOCK_CONSOLE", &self.url)
            .env("AIRLOCK_CONFIG_DIR", self.dir.path().join(config))
            .env_remove("AIRLOCK_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs the client and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        ok(self.cli(args), args)
    }

    /// Runs the client with `--output json` and parses the answer.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--output", "json"]);
        let out = self.ok(&all);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("{args:?} printed non-JSON ({e}): {out}"))
    }

    pub fn login(&self) {
        ok(
            self.cli_stdin(
                &["login", "--user", "admin", "--password-stdin"],
                &format!("{ADMIN_PASSWORD}\n"),
            ),
            &["login"],
        );
    }

    /// Runs `account add dev` pointing at moto, with the test key on standard input.
    pub fn add_account(&self, moto: &Moto) -> Output {
        self.add_account_in(moto, "dev", REGION)
    }

    /// Runs `account add NAME --region REGION` pointing at moto, with the test key.
    pub fn add_account_in(&self, moto: &Moto, name: &str, region: &str) -> Output {
        self.cli_stdin(
            &[
                "account",
                "add",
                name,
                "--region",
                region,
                "--endpoint-url",
                &moto.url,
                "--access-key-id",
                ACCESS_KEY_ID,
                "--secret-access-key-stdin",
            ],
            &format!("{SECRET_ACCESS_KEY}\n"),
        )
    }

    /// Logs in and adds the account `dev` pointing at moto.
    pub fn login_with_account(&self, moto: &Moto) {
        self.login();
        ok(self.add_account(moto), &["account add"]);
    }

    /// Every audit record, following the cursor to the end (`audit --all`, a record a line).
    pub fn audit_records(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let mut all = vec!["audit", "--all", "--output", "json"];
        if !args.contains(&"--limit") {
            all.extend(["--limit", "1000"]);
        }
        all.extend(args);
        self.ok(&all)
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("audit printed a non-JSON line ({e}): {line}"))
            })
            .collect()
    }

    /// Runs SQL statements on the console's database, as anyone who can write to it could.
    pub fn sql(&self, statements: &str) {
        let done = if is_sqlite(&self.database) {
            let path = self.database.trim_start_matches("sqlite://");
            Command::new("python3")
                .args([
                    "-c",
                    "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.commit()",
                    path,
                    statements,
                ])
                .output()
                .unwrap()
        } else {
            Command::new("psql")
                .args([
                    self.database.as_str(),
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-qc",
                    statements,
                ])
                .output()
                .unwrap()
        };
        assert!(
            done.status.success(),
            "SQL failed: {}",
            String::from_utf8_lossy(&done.stderr)
        );
    }

    /// The saved API token (for raw HTTP calls and leak scans).
    pub fn token(&self) -> String {
        let text =
            std::fs::read_to_string(self.dir.path().join("config").join("login.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["token"].as_str().unwrap().to_owned()
    }
}

/// The client as another console user, with a config dir of its own.
pub struct UserCli<'a> {
    pub console: &'a Console,
    pub name: String,
}

impl UserCli<'_> {
    pub fn cli(&self, args: &[&str]) -> Output {
        self.console
            .cli_in(&format!("config-{}", self.name), args, "")
    }

    pub fn ok(&self, args: &[&str]) -> String {
        ok(self.cli(args), args)
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--output", "json"]);
        let out = self.ok(&all);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("{args:?} printed non-JSON ({e}): {out}"))
    }

    /// The user's saved API token.
    pub fn token(&self) -> String {
        let path = self
            .console
            .dir
            .path()
            .join(format!("config-{}", self.name))
            .join("login.json");
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        v["token"].as_str().unwrap().to_owned()
    }
}

impl Console {
    /// Adds a user with policies from JSON values (as admin) and logs them in.
    pub fn add_user(&self, name: &str, policies: &[serde_json::Value]) -> UserCli<'_> {
        let password = format!("{name}-password-123");
        let mut args: Vec<String> = vec![
            "user".into(),
            "add".into(),
            name.into(),
            "--password-stdin".into(),
        ];
        for (i, p) in policies.iter().enumerate() {
            let path = self.dir.path().join(format!("{name}-policy{i}.json"));
            std::fs::write(&path, p.to_string()).unwrap();
            args.push("--policy".into());
            args.push(path.to_string_lossy().to_string());
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(self.cli_stdin(&argv, &format!("{password}\n")), &argv);
        let user = UserCli {
            console: self,
            name: name.to_owned(),
        };
        ok(
            self.cli_in(
                &format!("config-{name}"),
                &["login", "--user", name, "--password-stdin"],
                &format!("{password}\n"),
            ),
            &["login", name],
        );
        user
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn ok(out: Output, what: &[&str]) -> String {
    assert!(
        out.status.success(),
        "airlock {what:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Live (not terminated) instances tagged with a deployment id, straight from EC2.
pub async fn live_instances(
    ec2: &aws_sdk_ec2::Client,
    deployment: &str,
) -> Vec<aws_sdk_ec2::types::Instance> {
    let out = ec2
        .describe_instances()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:airlock:deployment")
                .values(deployment)
                .build(),
        )
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("instance-state-name")
                .values("pending")
                .values("running")
                .values("stopping")
                .values("stopped")
                .build(),
        )
        .send()
        .await
        .unwrap();
    out.reservations()
        .iter()
        .flat_map(|r| r.instances().to_vec())
        .collect()
}

/// Every file under `dir`, as bytes, for leak scans.
pub fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((path.clone(), std::fs::read(&path).unwrap_or_default()));
            }
        }
    }
    out
}

pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// `airlock deploy` of one t3.micro in the loopback subnet of account `dev`, plus `extra`.
pub fn deploy_args<'a>(net: &'a TestNet, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "deploy",
        "--account",
        "dev",
        "--image",
        &net.image_id,
        "--instance-type",
        "t3.micro",
        "--subnet",
        &net.subnet_id,
    ];
    args.extend_from_slice(extra);
    args
}

/// Launches one instance in the loopback subnet with these tags; returns (id, private ip).
pub async fn launch_tagged(
    ec2: &aws_sdk_ec2::Client,
    net: &TestNet,
    tags: &[(&str, &str)],
) -> (String, String) {
    use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
    let mut spec = TagSpecification::builder().resource_type(ResourceType::Instance);
    for (k, v) in tags {
        spec = spec.tags(Tag::builder().key(*k).value(*v).build());
    }
    let out = ec2
        .run_instances()
        .image_id(&net.image_id)
        .instance_type("t3.micro".into())
        .min_count(1)
        .max_count(1)
        .subnet_id(&net.subnet_id)
        .tag_specifications(spec.build())
        .send()
        .await
        .unwrap();
    let i = &out.instances()[0];
    let ip = i.private_ip_address().unwrap().to_owned();
    assert!(ip.starts_with("127.0."), "loopback VPC gave {ip}");
    (i.instance_id().unwrap().to_owned(), ip)
}

/// An instance as EC2 describes it.
pub async fn described(ec2: &aws_sdk_ec2::Client, id: &str) -> aws_sdk_ec2::types::Instance {
    let out = ec2
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .unwrap();
    out.reservations()[0].instances()[0].clone()
}

/// An instance's state name, straight from EC2.
pub async fn instance_state(ec2: &aws_sdk_ec2::Client, id: &str) -> String {
    described(ec2, id)
        .await
        .state()
        .unwrap()
        .name()
        .unwrap()
        .as_str()
        .to_owned()
}

/// An instance's user data as EC2 holds it (DescribeInstanceAttribute), decoded.
pub async fn user_data_of(ec2: &aws_sdk_ec2::Client, id: &str) -> Vec<u8> {
    use base64::Engine as _;
    let attr = ec2
        .describe_instance_attribute()
        .instance_id(id)
        .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
        .send()
        .await
        .unwrap();
    base64::engine::general_purpose::STANDARD
        .decode(attr.user_data().unwrap().value().unwrap())
        .unwrap()
}

/// `POST /v1/refresh` from `source` (an instance's address): (status, body).
pub async fn refresh(
    console: &Console,
    source: &str,
    dep: &str,
    id: &str,
    secret: &str,
) -> (u16, serde_json::Value) {
    let http = reqwest::Client::builder()
        .local_address(Some(source.parse().unwrap()))
        .build()
        .unwrap();
    let resp = http
        .post(format!("{}/v1/refresh", console.url))
        .json(
            &serde_json::json!({"deployment_id": dep, "instance_id": id, "refresh_secret": secret}),
        )
        .send()
        .await
        .unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(serde_json::Value::Null),
    )
}

/// The refresh secret an instance's user data carries (the launch's enrolment secret).
pub async fn enrolment_secret(ec2: &aws_sdk_ec2::Client, id: &str) -> String {
    use airlock_payload::ExposeSecret;
    let payload = airlock_payload::find_payload(&user_data_of(ec2, id).await).unwrap();
    payload
        .refresh_secret
        .as_ref()
        .unwrap()
        .expose_secret()
        .to_owned()
}

/// Each audit record's action and outcome, in order.
pub fn action_outcomes(records: &[serde_json::Value]) -> Vec<(String, String)> {
    records
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap_or_default().to_owned(),
                r["outcome"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// `GET path` on the console with `token`: the status and the body (JSON, or the text as a
/// JSON string when it is not JSON).
pub async fn api_get(console: &Console, token: &str, path: &str) -> (u16, serde_json::Value) {
    let resp = reqwest::Client::new()
        .get(format!("{}{path}", console.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    (status, body)
}
