//! The plain-HTTP endpoints for the kubelet and Prometheus: `/healthz` (the process
//! serves), `/readyz` (the webhook's TLS listener takes connections; every watch cache has
//! its first list, and no watch has been failing for a minute), `/metrics`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use kube::runtime::reflector::Store;

use crate::api::watched::WatchedRun;
use crate::controller::{WatchHealth, count_waiting};
use crate::metrics::Metrics;

/// What the endpoints read.
#[derive(Clone)]
pub struct Probes {
    /// The controller's watches; `None` when no controller runs here.
    pub health: Option<Arc<WatchHealth>>,
    /// Whether the webhook's TLS listener takes connections; `None` when no webhook runs
    /// here.
    pub webhook_serving: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// The metrics registry.
    pub metrics: Arc<Metrics>,
    /// The controller's watch caches, for the waiting-gates gauge.
    pub stores: Arc<Mutex<Vec<Store<WatchedRun>>>>,
}

/// The router.
pub fn router(probes: Probes) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(probes)
}

async fn readyz(State(probes): State<Probes>) -> impl IntoResponse {
    let webhook = match &probes.webhook_serving {
        Some(serving) if !serving.load(std::sync::atomic::Ordering::SeqCst) => {
            Err("the admission webhook is not taking connections".to_string())
        }
        _ => Ok(()),
    };
    let readiness = webhook.and_then(|()| match &probes.health {
        None => Ok(()),
        Some(health) => health.readiness(chrono::Utc::now()),
    });
    match readiness {
        Ok(()) => (StatusCode::OK, "ok".to_string()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
    }
}

async fn metrics(State(probes): State<Probes>) -> impl IntoResponse {
    let waiting = count_waiting(&probes.stores.lock().expect("not poisoned"));
    probes.metrics.set_waiting(waiting);
    if let Some(age) = probes
        .health
        .as_ref()
        .and_then(|h| h.last_event_age(chrono::Utc::now()))
    {
        probes.metrics.set_watch_event_age(age);
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        probes.metrics.encode(),
    )
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    probes: Probes,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /healthz, /readyz, /metrics");
    axum::serve(listener, router(probes))
        .with_graceful_shutdown(shutdown)
        .await
}
