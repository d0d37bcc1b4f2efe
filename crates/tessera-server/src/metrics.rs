//! Prometheus metrics at `/metrics`. Route labels are the matched route template
//! (`/admin/keys/{id}`), never the raw path, so cardinality stays bounded.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::state::AppState;

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process-wide recorder (the `metrics` facade is global; every server in a test process
/// shares it).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder is installed; we then render an empty registry.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Middleware: counts requests by method, route and status, and records latency.
pub async fn track(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("tessera_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("tessera_http_request_duration_seconds", "method" => method, "route" => route)
        .record(start.elapsed().as_secs_f64());
    response
}

/// Business outcomes, counted where they are decided.
pub fn outcome(name: &'static str, outcome: &'static str) {
    outcome_label(name, outcome);
}

/// Counts `result` under `name` with outcome `ok`, or the error's code (`seat_limit_reached`,
/// `invalid_api_key`, …): a closed set, so cardinality stays bounded.
pub fn result<T>(name: &'static str, result: &crate::error::ApiResult<T>) {
    let outcome = match result {
        Ok(_) => "ok",
        Err(e) => e.code.as_str(),
    };
    outcome_label(name, outcome);
}

fn outcome_label(name: &'static str, outcome: &'static str) {
    metrics::counter!(name, "outcome" => outcome).increment(1);
}

pub async fn render(State(state): State<AppState>) -> impl IntoResponse {
    for (pool, size, idle) in state.store.pool_stats() {
        metrics::gauge!("tessera_db_pool_connections", "pool" => pool, "state" => "idle")
            .set(idle as f64);
        metrics::gauge!("tessera_db_pool_connections", "pool" => pool, "state" => "in_use")
            .set(f64::from(size) - idle as f64);
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle().render(),
    )
}
