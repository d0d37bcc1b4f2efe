//! `/healthz` (the process answers) and `/readyz` (database reachable, signing keys loaded).

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiResult, AppError};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
}

#[utoipa::path(get, path = "/healthz", tag = "operations", summary = "Liveness: the process is up",
    responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[utoipa::path(get, path = "/readyz", tag = "operations",
    summary = "Readiness: database reachable and signing keys loaded",
    responses((status = 200, body = Health), (status = 503, body = tessera_core::ErrorBody)))]
async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Health>> {
    state.store.ping().await.map_err(|e| {
        AppError::new(
            tessera_core::ErrorCode::ServiceUnavailable,
            format!("database unreachable: {}", e.message),
        )
    })?;
    // Signing keys are parsed at start; a probe signature proves they are usable.
    state
        .signer
        .sign(&serde_json::json!({"probe": true}))
        .map_err(|_| {
            AppError::new(
                tessera_core::ErrorCode::ServiceUnavailable,
                "signing key unusable",
            )
        })?;
    Ok(Json(Health { status: "ready" }))
}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    summary = "Prometheus metrics (text exposition format)",
    responses((status = 200, content_type = "text/plain", body = String)))]
async fn metrics(state: State<AppState>) -> impl axum::response::IntoResponse {
    crate::metrics::render(state).await
}
