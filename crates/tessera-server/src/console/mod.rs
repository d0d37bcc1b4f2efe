//! The admin web console at `/console`: server-rendered pages (askama templates, escaped by
//! default) over the same store operations as `/admin`, for support staff with a browser.
//!
//! - Sign-in with the admin token opens a server-side session ([`session`]); the cookie holds
//!   only a random id. Every form carries the session's CSRF token.
//! - Every asset is embedded in the binary (no CDN; works air-gapped), and every response
//!   carries a strict Content-Security-Policy (self only, no inline script or style).
//! - Errors, bad input included, render a page with the right status, never a bare 500.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router, middleware};

use crate::state::AppState;

mod api_keys;
mod audit;
mod auth;
mod flags;
mod keys;
mod overview;
pub mod session;
pub mod stats;
pub mod view;

pub use session::Sessions;

/// `Content-Security-Policy` of every console response: this origin only, no inline script or
/// style, no framing, forms post only here.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Routes under `/console`, with a session table of their own (one per server).
pub fn router() -> Router<AppState> {
    let sessions = Arc::new(Sessions::new());
    Router::new()
        .route("/", get(overview::page))
        .route("/login", get(auth::login_form).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/keys", get(keys::list).post(keys::create))
        .route("/keys/new", get(keys::new_form))
        .route("/keys/{id}", get(keys::show))
        .route(
            "/keys/{id}/revoke",
            get(keys::revoke_confirm).post(keys::revoke),
        )
        .route("/keys/{id}/release", post(keys::release))
        .route("/api-keys", get(api_keys::list).post(api_keys::create))
        .route("/api-keys/new", get(api_keys::new_form))
        .route("/api-keys/{id}/tier", post(api_keys::change_tier))
        .route(
            "/api-keys/{id}/revoke",
            get(api_keys::revoke_confirm).post(api_keys::revoke),
        )
        .route("/instances", get(api_keys::instances))
        .route("/flags", get(flags::list))
        .route("/flags/{id}", post(flags::review))
        .route("/audit", get(audit::list))
        .route("/assets/{name}", get(asset))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::map_response(security_headers))
        .layer(Extension(sessions))
}

async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    response
}

const CSS: &str = include_str!("../../assets/console/console.css");
const JS: &str = include_str!("../../assets/console/console.js");
const LOGO: &str = include_str!("../../assets/console/logo.svg");

async fn asset(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    headers: HeaderMap,
    name: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Response {
    let (content_type, body) = match name.as_ref().map(|p| p.0.as_str()) {
        Ok("console.css") => ("text/css; charset=utf-8", CSS),
        Ok("console.js") => ("text/javascript; charset=utf-8", JS),
        Ok("logo.svg") => ("image/svg+xml", LOGO),
        _ => return not_found(State(state), Extension(sessions), headers).await,
    };
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn not_found(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    headers: HeaderMap,
) -> Response {
    let csrf = session::peek(&headers, &sessions, state.clock.now()).await;
    view::error_page(
        csrf.as_deref(),
        StatusCode::NOT_FOUND,
        "Page not found",
        "There is no console page at this address.",
    )
}

async fn method_not_allowed(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    headers: HeaderMap,
) -> Response {
    let csrf = session::peek(&headers, &sessions, state.clock.now()).await;
    view::error_page(
        csrf.as_deref(),
        StatusCode::METHOD_NOT_ALLOWED,
        "Not allowed",
        "This page cannot be used that way. Use the console's links and buttons.",
    )
}

/// A path segment that failed to decode is treated as "no such thing".
pub(crate) type PathId = Result<Path<String>, axum::extract::rejection::PathRejection>;

pub(crate) fn path_id(p: PathId) -> Option<String> {
    p.ok()
        .map(|Path(id)| id)
        .filter(|id| !id.is_empty() && id.len() <= 128)
}
