//! The client's one error type. Server errors decode into the shared [`ErrorBody`] contract.

use std::time::Duration;

use tessera_core::{ErrorBody, ErrorCode};

use crate::license_file::LicenseFileError;
use crate::verify::InvalidReason;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid client configuration: {0}")]
    Config(String),

    /// The server answered with an error status. `body` is its JSON error body when it sent one.
    #[error("license server answered HTTP {status}{}", describe(.body))]
    Http {
        status: u16,
        body: Option<ErrorBody>,
    },

    #[error("license server did not answer within {0:?}")]
    Timeout(Duration),

    #[error("could not reach the license server: {0}")]
    Network(#[source] reqwest::Error),

    /// A 2xx answer that is not what the API promises (not JSON, missing fields, too large).
    #[error("unexpected answer from the license server: {0}")]
    InvalidResponse(String),

    /// The server sent a token that does not verify (wrong key, wrong product, expired, ...).
    /// Nothing was stored.
    #[error("license server sent a token that does not verify: {0}")]
    InvalidToken(InvalidReason),

    /// There is no usable license to refresh or deactivate.
    #[error("no usable license: {0}")]
    NoLicense(InvalidReason),

    #[error("license file: {0}")]
    LicenseFile(#[from] LicenseFileError),

    #[error("could not compute a machine fingerprint: {0}")]
    Fingerprint(String),

    /// The API key is not `sk-…`; refused before any network call.
    #[error("the API key is malformed: it must be `sk-` followed by the key")]
    InvalidApiKey,
}

fn describe(body: &Option<ErrorBody>) -> String {
    match body {
        Some(b) => format!(" ({}): {}", b.error, b.message),
        None => String::new(),
    }
}

impl ClientError {
    /// The server's error code, when it sent one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Http { body: Some(b), .. } => Some(b.error),
            _ => None,
        }
    }

    /// The server could not be reached or had a temporary problem: the cached license should
    /// keep working (in grace if need be). Anything else is a definite answer.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Timeout(_) | ClientError::Network(_) => true,
            ClientError::Http { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            _ => false,
        }
    }

    pub(crate) fn from_reqwest(e: reqwest::Error, timeout: Duration) -> Self {
        if e.is_timeout() {
            ClientError::Timeout(timeout)
        } else {
            ClientError::Network(e)
        }
    }
}
