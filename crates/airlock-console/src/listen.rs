//! The console's listener: its address is on every instance's user data, so it faces whoever
//! can reach it. A connection must send a request's headers within the header timeout (and a
//! kept-alive one its next request), and only so many connections are served at once: slow or
//! idle connections cannot pile up until the console runs out of them.

use crate::state::ConsoleConfig;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::sync::Arc;
use tower::ServiceExt;

/// Serves `app` on `listener` until the process ends.
pub async fn serve(
    app: Router,
    listener: tokio::net::TcpListener,
    config: &ConsoleConfig,
) -> std::io::Result<()> {
    let connections = Arc::new(tokio::sync::Semaphore::new(config.max_connections));
    let header_timeout = config.header_timeout;
    loop {
        // At the cap, stop accepting until a connection ends (the kernel's backlog waits).
        let Ok(permit) = connections.clone().acquire_owned().await else {
            return Ok(());
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let app = app.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(
                move |mut request: hyper::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    app.clone().oneshot(request.map(axum::body::Body::new))
                },
            );
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            builder
                .http2()
                .timer(TokioTimer::new())
                .keep_alive_interval(Some(header_timeout))
                .keep_alive_timeout(header_timeout);
            if let Err(e) = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(peer = %peer, error = %e, "connection ended");
            }
            drop(permit);
        });
    }
}
