//! `AppError`: every failure a handler can return. Turned into the shared JSON error body here,
//! the one place the server maps an error to an HTTP status.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tessera_core::validate::FieldError;
use tessera_core::{ErrorBody, ErrorCode};

/// `Clone`: one failed batch commit answers every caller in it with the same error.
#[derive(Debug, Clone)]
pub struct AppError {
    pub code: ErrorCode,
    pub message: String,
    /// Seconds for a `Retry-After` header (rate limiting).
    pub retry_after: Option<u64>,
}

impl AppError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    pub fn unauthorized() -> Self {
        Self::new(
            ErrorCode::Unauthorized,
            "Unauthorized: a valid admin bearer token is required",
        )
    }

    /// A usage event or flag names a key that is not in the database.
    pub fn key_not_found() -> Self {
        Self::new(ErrorCode::InvalidLicenseKey, "Key not found")
    }

    /// A store's writer is gone (the server is stopping) or could not start a transaction.
    pub fn store_closed() -> Self {
        Self::new(
            ErrorCode::ServiceUnavailable,
            "Database is shutting down or unavailable; try again",
        )
    }

    /// Logs the cause server-side; the client gets a generic message.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(ErrorCode::InternalError, "Internal server error")
    }
}

impl From<FieldError> for AppError {
    fn from(e: FieldError) -> Self {
        Self::new(ErrorCode::ValidationError, e.to_string())
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::PoolTimedOut => {
                tracing::warn!("database pool timed out");
                Self::new(ErrorCode::ServiceUnavailable, "Database busy, try again")
            }
            _ => Self::internal(e),
        }
    }
}

impl From<rusqlite::Error> for AppError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                tracing::warn!("database locked by another writer");
                Self::new(ErrorCode::ServiceUnavailable, "Database busy, try again")
            }
            _ => Self::internal(e),
        }
    }
}

impl From<tessera_core::JwtError> for AppError {
    fn from(e: tessera_core::JwtError) -> Self {
        Self::new(ErrorCode::InvalidToken, format!("Invalid token: {e}"))
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for AppError {}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(ErrorBody::new(self.code, self.message))).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}

pub type ApiResult<T> = Result<T, AppError>;
