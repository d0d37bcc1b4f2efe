//! The one error contract shared by the server (which produces it) and the client (which decodes it).

use serde::{Deserialize, Serialize};

/// Stable, machine-readable error codes. Serialized in snake_case; never renamed once released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    MalformedJson,
    ValidationError,
    UnsupportedMediaType,
    PayloadTooLarge,
    Unauthorized,
    InvalidApiKey,
    ApiKeyRevoked,
    ApiKeyExpired,
    InvalidLicenseKey,
    LicenseRevoked,
    LicenseExpired,
    ProductMismatch,
    InvalidToken,
    TokenExpired,
    MachineMismatch,
    MachineNotActivated,
    NotFound,
    MethodNotAllowed,
    SeatLimitReached,
    Conflict,
    RateLimited,
    RequestTimeout,
    ServiceUnavailable,
    InternalError,
    /// A code this version does not know (a newer server); keeps old clients decoding.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The HTTP status for each code. The server maps errors to statuses here and nowhere else.
    pub fn http_status(self) -> u16 {
        use ErrorCode::*;
        match self {
            BadRequest | MalformedJson => 400,
            Unauthorized | InvalidApiKey | ApiKeyRevoked | ApiKeyExpired => 401,
            InvalidLicenseKey | LicenseRevoked | LicenseExpired | ProductMismatch
            | InvalidToken | TokenExpired | MachineMismatch | MachineNotActivated => 403,
            NotFound => 404,
            MethodNotAllowed => 405,
            RequestTimeout => 408,
            SeatLimitReached | Conflict => 409,
            PayloadTooLarge => 413,
            UnsupportedMediaType => 415,
            ValidationError => 422,
            RateLimited => 429,
            ServiceUnavailable => 503,
            InternalError | Unknown => 500,
        }
    }

    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            BadRequest => "bad_request",
            MalformedJson => "malformed_json",
            ValidationError => "validation_error",
            UnsupportedMediaType => "unsupported_media_type",
            PayloadTooLarge => "payload_too_large",
            Unauthorized => "unauthorized",
            InvalidApiKey => "invalid_api_key",
            ApiKeyRevoked => "api_key_revoked",
            ApiKeyExpired => "api_key_expired",
            InvalidLicenseKey => "invalid_license_key",
            LicenseRevoked => "license_revoked",
            LicenseExpired => "license_expired",
            ProductMismatch => "product_mismatch",
            InvalidToken => "invalid_token",
            TokenExpired => "token_expired",
            MachineMismatch => "machine_mismatch",
            MachineNotActivated => "machine_not_activated",
            NotFound => "not_found",
            MethodNotAllowed => "method_not_allowed",
            SeatLimitReached => "seat_limit_reached",
            Conflict => "conflict",
            RateLimited => "rate_limited",
            RequestTimeout => "request_timeout",
            ServiceUnavailable => "service_unavailable",
            InternalError => "internal_error",
            Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The JSON body of every error response: `{"error": "...", "message": "...", "detail": "..."}`.
/// `detail` repeats `message` so clients written for the FastAPI seed keep showing it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl ErrorBody {
    pub fn new(error: ErrorCode, message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            error,
            detail: Some(message.clone()),
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_their_stable_names() {
        for code in [
            ErrorCode::SeatLimitReached,
            ErrorCode::ApiKeyRevoked,
            ErrorCode::MalformedJson,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }

    #[test]
    fn unknown_codes_from_a_newer_server_still_decode() {
        let body: ErrorBody =
            serde_json::from_str(r#"{"error":"brand_new","message":"m"}"#).unwrap();
        assert_eq!(body.error, ErrorCode::Unknown);
    }
}
