//! `/healthz`, `/readyz` and `/metrics` on the `-port`.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;

use crate::Stats;

/// Serves until the task is aborted; a port that cannot be bound is logged.
pub async fn serve(port: u16, stats: Arc<Stats>) {
    let app = Router::new()
        .route("/healthz", get(|| async { "OK" }))
        .route("/readyz", get(|| async { "OK" }))
        .route(
            "/metrics",
            get(move || {
                let stats = stats.clone();
                async move {
                    (
                        [(
                            "content-type",
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        stats.render(),
                    )
                }
            }),
        );
    match tokio::net::TcpListener::bind(("0.0.0.0", port)).await {
        Ok(listener) => {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("metrics server stopped: {e}");
            }
        }
        Err(e) => tracing::error!("cannot listen on port {port} for /metrics and /healthz: {e}"),
    }
}
