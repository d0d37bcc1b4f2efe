//! The router: public license routes under `/v1`, admin routes under `/admin`.

use axum::Router;
use axum::response::IntoResponse;
use tessera_core::ErrorCode;

use crate::error::AppError;
use crate::state::AppState;

pub mod admin;
pub mod public;

pub fn router(state: AppState) -> Router {
    Router::new()
        .nest("/v1", public::router())
        .nest("/admin", admin::router())
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn not_found() -> impl IntoResponse {
    AppError::new(ErrorCode::NotFound, "No such route")
}

async fn method_not_allowed() -> impl IntoResponse {
    AppError::new(
        ErrorCode::MethodNotAllowed,
        "Method not allowed on this route",
    )
}
