//! `/healthz`, `/readyz` and `/metrics` on the `-port`, served from the start, leader or
//! not: `/healthz` says the process is alive, `/readyz` answers 200 only on the replica that
//! reconciles (the leader, or the only one without leader election) and 503 on a standby.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;

use crate::Stats;

/// Whether this replica reconciles.
#[derive(Debug, Default)]
pub struct Role {
    leading: AtomicBool,
}

impl Role {
    /// This replica reconciles from now on.
    pub fn lead(&self) {
        self.leading.store(true, Ordering::Release);
    }

    /// True when this replica reconciles.
    pub fn leading(&self) -> bool {
        self.leading.load(Ordering::Acquire)
    }
}

/// Serves until the task is aborted; a port that cannot be bound is logged.
pub async fn serve(port: u16, stats: Arc<Stats>, role: Arc<Role>) {
    let app = Router::new()
        .route("/healthz", get(|| async { "OK" }))
        .route(
            "/readyz",
            get(move || {
                let leading = role.leading();
                async move {
                    if leading {
                        (StatusCode::OK, "OK: leader")
                    } else {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            "standby: waiting for the lease",
                        )
                    }
                }
            }),
        )
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
