//! Console overhead over a bare `RunInstances`: the same launch (one instance, tags on creation,
//! IMDSv2 options, user data of the same size) made N times straight through the AWS SDK and N
//! times through `POST /v1/deployments` of a running console, against the same moto server,
//! interleaved so both see the same conditions. Run by `bench/deploy-overhead`.
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

    /// One `POST /v1/deployments` of the same launch; how long it took.
    async fn through_console(&self) -> Duration {
        let started = Instant::now();
        let resp = self
            .http
            .post(format!("{}/v1/deployments", self.console))
            .bearer_auth(&self.token)
            .json(&serde_json::json!({
                "account": "bench", "image_id": self.image, "instance_type": "t3.micro",
                "subnet_id": self.subnet, "tags": [{"key": "team", "value": "bench"}],
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
        started.elapsed()
    }
}

fn report(runs: usize, mut bare: Vec<Duration>, mut via_console: Vec<Duration>) {
    bare.sort();
    via_console.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (b50, c50) = (percentile(&bare, 0.5), percentile(&via_console, 0.5));
    let (b90, c90) = (percentile(&bare, 0.9), percentile(&via_console, 0.9));
    println!("runs: {runs} of each, interleaved, against the same moto server");
    println!(
        "bare RunInstances (SDK)      p50 {:7.1} ms   p90 {:7.1} ms",
        ms(b50),
        ms(b90)
    );
    println!(
        "POST /v1/deployments         p50 {:7.1} ms   p90 {:7.1} ms",
        ms(c50),
        ms(c90)
    );
    println!(
        "console overhead             p50 {:+7.1} ms   ratio console/bare p50 {:.2}",
        ms(c50) - ms(b50),
        ms(c50) / ms(b50)
    );
}

#[tokio::main]
async fn main() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let bench = Bench::from_env().await;
    let mut bare = Vec::with_capacity(runs);
    let mut via_console = Vec::with_capacity(runs);
    for i in 0..runs + 3 {
        let bare_time = bench.bare(i).await;
        let console_time = bench.through_console().await;
        // The first few warm connections and caches up; they are not counted.
        if i >= 3 {
            bare.push(bare_time);
            via_console.push(console_time);
        }
    }
    report(runs, bare, via_console);
}
