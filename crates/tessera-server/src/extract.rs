//! Extractors that turn every malformed request into the app's JSON error body, never axum's
//! plain-text rejections.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;
use tessera_core::ErrorCode;

use crate::error::AppError;
use crate::state::AppState;

/// `Json<T>` whose rejections are JSON errors: 400 malformed, 413 too large, 415 wrong
/// content type, 422 wrong shape.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> AppError {
    let code = match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
        StatusCode::UNPROCESSABLE_ENTITY => ErrorCode::ValidationError,
        _ => ErrorCode::MalformedJson,
    };
    AppError::new(code, rejection.body_text())
}

/// `Query<T>` with JSON errors (e.g. `?limit=abc` → 400).
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e: QueryRejection| AppError::new(ErrorCode::BadRequest, e.body_text()))
    }
}

pub fn bearer(parts: &Parts) -> Option<&str> {
    bearer_in(&parts.headers)
}

pub fn bearer_in(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Proof that the request carried the admin token. Compared in constant time over SHA-256
/// digests, so neither the content nor the length of the token leaks through timing.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let presented = bearer(parts).ok_or_else(AppError::unauthorized)?;
        let digest = crate::secret::sha256(presented.as_bytes());
        if bool::from(digest.ct_eq(&state.admin_token_digest)) {
            Ok(Admin)
        } else {
            Err(AppError::unauthorized())
        }
    }
}
