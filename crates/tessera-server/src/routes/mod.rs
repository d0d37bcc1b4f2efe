//! The router: public license routes under `/v1`, admin routes under `/admin`.

use axum::Router;
use axum::response::IntoResponse;
use tessera_core::ErrorCode;

use serde::Deserialize;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::openapi::ApiDoc;

use crate::error::AppError;
use crate::state::AppState;
use crate::store::Page;

pub mod admin;
pub mod apikeys;
pub mod health;
pub mod public;

/// Every API route, registered together with its OpenAPI description.
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/v1", public::router())
        .nest("/admin", admin::router().merge(apikeys::admin_router()))
        .merge(apikeys::public_router())
        .merge(health::router())
        .split_for_parts()
}

pub fn router(state: AppState) -> Router {
    let (api, spec) = api();
    api.merge(crate::openapi::router(spec))
        .nest("/console", crate::console::router())
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
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page size (default 100, at most 1000).
    pub limit: Option<i64>,
    /// Rows to skip.
    pub offset: Option<i64>,
    /// Filter by license key id (activations, usage).
    pub key_id: Option<String>,
    /// Filter by API key id (instances).
    pub api_key_id: Option<String>,
    /// Flag status: open (default), reviewed, dismissed, actioned.
    pub status: Option<String>,
    /// Filter the audit log by entity id.
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
