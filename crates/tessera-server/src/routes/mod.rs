//! The router: public license routes under `/v1`, admin routes under `/admin`.

use axum::Router;
use axum::response::IntoResponse;
use tessera_core::ErrorCode;

use serde::Deserialize;

use crate::error::AppError;
use crate::state::AppState;
use crate::store::Page;

pub mod admin;
pub mod apikeys;
pub mod public;

pub fn router(state: AppState) -> Router {
    Router::new()
        .nest("/v1", public::router())
        .nest("/admin", admin::router().merge(apikeys::admin_router()))
        .merge(apikeys::public_router())
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

/// Query string of every list endpoint. Flat (no `serde(flatten)`, which breaks numbers in
/// query strings); each endpoint reads the filters it knows.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    pub limit: Option<i64>,
    pub offset: Option<i64>,
    pub key_id: Option<String>,
    pub api_key_id: Option<String>,
    pub status: Option<String>,
    pub entity_id: Option<String>,
}

impl ListQuery {
    pub fn page(&self) -> Page {
        Page {
            limit: self.limit.unwrap_or(Page::DEFAULT_LIMIT),
            offset: self.offset.unwrap_or(0),
        }
        .clamped()
    }
}
