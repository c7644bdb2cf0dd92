//! `airlock serve --metrics-listen`: the Prometheus recorder every library's metrics go to,
//! and the listener operators scrape, apart from the API so it can stay on a private address.

use anyhow::{bail, Context, Result};
use axum::extract::State;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Latency buckets, in seconds: from a quick describe on a near endpoint to the SDK's retries.
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// How often histograms drop samples past their window.
const UPKEEP: Duration = Duration::from_secs(5);

/// The recorder, installed, and its bound listener.
pub struct Metrics {
    listener: tokio::net::TcpListener,
    handle: PrometheusHandle,
}

/// What a scrape reads: the recorder, and what samples the gauges kept as state elsewhere.
struct Scrape {
    handle: PrometheusHandle,
    sample: Box<dyn Fn() + Send + Sync>,
}

/// Refuses a non-loopback address unless allowed, binds it, and installs the recorder.
pub async fn open(listen: &str, allow_remote: bool) -> Result<Metrics> {
    let addr: SocketAddr = listen.parse().with_context(|| {
        format!("--metrics-listen {listen:?} is not an address like 127.0.0.1:9464")
    })?;
    if !airlock_listen::plain_http_allowed(addr, allow_remote) {
        bail!("--metrics-listen {addr} is not a loopback address: metrics are served without authentication, in plain HTTP; pass --metrics-allow-remote to serve them there");
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for metrics"))?;
    let handle = PrometheusBuilder::new()
        .set_buckets(BUCKETS)?
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    Ok(Metrics { listener, handle })
}

impl Metrics {
    /// Serves `GET /metrics` in Prometheus' text format until the process ends; `sample` runs
    /// before each answer.
    pub fn serve(self, sample: impl Fn() + Send + Sync + 'static) -> Result<SocketAddr> {
        let local = self.listener.local_addr()?;
        let upkeep = self.handle.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(UPKEEP).await;
                upkeep.run_upkeep();
            }
        });
        let scrape = Arc::new(Scrape {
            handle: self.handle,
            sample: Box::new(sample),
        });
        let app = axum::Router::new()
            .route("/metrics", get(render))
            .with_state(scrape);
        let listener = self.listener;
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "the metrics listener stopped");
            }
        });
        Ok(local)
    }
}

async fn render(State(scrape): State<Arc<Scrape>>) -> impl axum::response::IntoResponse {
    (scrape.sample)();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        scrape.handle.render(),
    )
}
