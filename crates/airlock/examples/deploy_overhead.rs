//! Console overhead over the AWS calls a deploy needs: the same launch (one instance, tags on
//! creation, IMDSv2 options, user data of the same size) made N times straight through the AWS
//! SDK and N times through `POST /v1/deployments` of a running console, against the same moto
//! server, interleaved so all see the same conditions. Run by `bench/deploy-overhead`.
//!
//! Two deploys are timed: `credentials: bootstrap` (the console's own work and one
//! `RunInstances`) and `credentials: scoped`, the default, whose instances carry credentials
//! limited to the deployment, issued by STS before the launch. The first is compared with a bare
//! `RunInstances`, the second also with a bare `GetFederationToken` and `RunInstances`, the AWS
//! calls its outcome needs.
//!
//! Environment: AIRLOCK_MOTO_URL (a running moto), AIRLOCK_CONSOLE_URL and AIRLOCK_TOKEN (a
//! console logged into, with an account named `bench` on that moto), BENCH_SUBNET, BENCH_IMAGE,
//! BENCH_RUNS (default 40).

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a benchmark run by a script: stopping with a message is its error handling"
)]

use aws_sdk_ec2::types::{
    HttpTokensState, InstanceMetadataOptionsRequest, ResourceType, Tag, TagSpecification,
};
use base64::Engine;
use std::time::{Duration, Instant};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set; run bench/deploy-overhead"))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// What both launches need.
struct Bench {
    ec2: aws_sdk_ec2::Client,
    sts: aws_sdk_sts::Client,
    http: reqwest::Client,
    console: String,
    token: String,
    subnet: String,
    image: String,
    /// The console's payload is about this size; the bare call carries as much user data.
    user_data: String,
}

impl Bench {
    async fn from_env() -> Bench {
        let creds = aws_sdk_ec2::config::Credentials::new(
            "AKIAIOSFODNN7EXAMPLE",
            "bench-secret-not-real",
            None,
            None,
            "bench",
        );
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(creds)
            .endpoint_url(env("AIRLOCK_MOTO_URL"))
            .load()
            .await;
        Bench {
            ec2: aws_sdk_ec2::Client::new(&config),
            sts: aws_sdk_sts::Client::new(&config),
            http: reqwest::Client::new(),
            console: env("AIRLOCK_CONSOLE_URL"),
            token: env("AIRLOCK_TOKEN"),
            subnet: env("BENCH_SUBNET"),
            image: env("BENCH_IMAGE"),
            user_data: base64::engine::general_purpose::STANDARD.encode(vec![b'x'; 420]),
        }
    }

    /// One bare `RunInstances` as the console makes it; how long it took.
    async fn bare(&self, i: usize) -> Duration {
        let started = Instant::now();
        let tagged = |kind: ResourceType| {
            TagSpecification::builder()
                .resource_type(kind)
                .tags(Tag::builder().key("team").value("bench").build())
                .build()
        };
        self.ec2
            .run_instances()
            .image_id(&self.image)
            .instance_type("t3.micro".into())
            .min_count(1)
            .max_count(1)
            .subnet_id(&self.subnet)
            .client_token(format!("bare-{i}"))
            .user_data(&self.user_data)
            .tag_specifications(tagged(ResourceType::Instance))
            .tag_specifications(tagged(ResourceType::Volume))
            .metadata_options(
                InstanceMetadataOptionsRequest::builder()
                    .http_tokens(HttpTokensState::Required)
                    .http_put_response_hop_limit(1)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        started.elapsed()
    }

    /// A bare `GetFederationToken` with a session policy of a deployment's size, then the
    /// same `RunInstances`: the AWS calls a scoped deploy needs; how long they took.
    async fn bare_scoped(&self, i: usize) -> Duration {
        let started = Instant::now();
        let policy = serde_json::json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": ["ec2:DescribeInstances", "ec2:DescribeTags"],
            "Resource": "*", "Condition": {"StringEquals": {"aws:ResourceTag/airlock:deployment": format!("bench-{i}")}},
        }]});
        self.sts
            .get_federation_token()
            .name(format!("bench-{i}"))
            .policy(policy.to_string())
            .duration_seconds(3600)
            .send()
            .await
            .unwrap();
        self.bare(i + 1_000_000).await;
        started.elapsed()
    }

    /// One `POST /v1/deployments` of the same launch with these credentials; how long it took.
    async fn through_console(&self, credentials: &str) -> Duration {
        let started = Instant::now();
        let resp = self
            .http
            .post(format!("{}/v1/deployments", self.console))
            .bearer_auth(&self.token)
            .json(&serde_json::json!({
                "account": "bench", "image_id": self.image, "instance_type": "t3.micro",
                "subnet_id": self.subnet, "tags": [{"key": "team", "value": "bench"}],
                "credentials": credentials,
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
        started.elapsed()
    }
}

/// The timings of one kind of launch, and what it is called in the report.
struct Series {
    label: &'static str,
    times: Vec<Duration>,
}

impl Series {
    fn new(label: &'static str, runs: usize) -> Series {
        Series {
            label,
            times: Vec::with_capacity(runs),
        }
    }

    fn p(&self, p: f64) -> f64 {
        let mut sorted = self.times.clone();
        sorted.sort();
        percentile(&sorted, p).as_secs_f64() * 1000.0
    }

    fn line(&self) {
        println!(
            "{:44} p50 {:7.1} ms   p90 {:7.1} ms",
            self.label,
            self.p(0.5),
            self.p(0.9)
        );
    }
}

/// `console` against `bare`: the overhead and the ratio of the medians.
fn compare(console: &Series, bare: &Series) {
    println!(
        "{:>44}: {:+.1} ms, ratio p50 {:.2}",
        format!("{} over {}", short(console.label), short(bare.label)),
        console.p(0.5) - bare.p(0.5),
        console.p(0.5) / bare.p(0.5)
    );
}

fn short(label: &str) -> &str {
    label.split(" (").next().unwrap_or(label)
}

fn report(runs: usize, all: &[Series; 4]) {
    let [bare, bare_scoped, bootstrap, scoped] = all;
    println!("runs: {runs} of each, interleaved, against the same moto server");
    for s in all {
        s.line();
    }
    compare(bootstrap, bare);
    compare(scoped, bare);
    compare(scoped, bare_scoped);
}

#[tokio::main]
async fn main() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let bench = Bench::from_env().await;
    let mut all = [
        Series::new("bare RunInstances (SDK)", runs),
        Series::new("bare STS+RunInstances (SDK)", runs),
        Series::new("deploy bootstrap (POST /v1/deployments)", runs),
        Series::new("deploy scoped (POST /v1/deployments)", runs),
    ];
    for i in 0..runs + 3 {
        let times = [
            bench.bare(i).await,
            bench.bare_scoped(i).await,
            bench.through_console("bootstrap").await,
            bench.through_console("scoped").await,
        ];
        // The first few warm connections and caches up; they are not counted.
        if i >= 3 {
            for (series, time) in all.iter_mut().zip(times) {
                series.times.push(time);
            }
        }
    }
    report(runs, &all);
}
