//! [`ApiKeyClient`]: `POST {backend}/api/v1/licenses/token` with `Authorization: Bearer sk-…`,
//! body `{"instance_id", "version"}`, redirects not followed, connect and read timeouts.
//!
//! It logs what the operator needs, as the seed's client does: the backend's `message` at INFO,
//! a refused key (401) with the backend's message at ERROR, an unreachable backend at WARN, any
//! other answer at ERROR. The API key itself is never logged.

use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue};
use serde::Deserialize;
use tessera_core::apikey::TokenRequest;

use crate::error::ClientError;
use crate::http::{build_token_client, send_json};

use super::config::{ApiKey, ApiKeyConfig};

pub const TOKEN_PATH: &str = "/api/v1/licenses/token";

/// A 200 answer: the JWT (not yet verified), its lifetime and the backend's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedToken {
    pub jwt: String,
    pub expires_in: Option<i64>,
    pub message: Option<String>,
}

/// What the backend sends; every field optional so a missing `jwt` is our own error.
#[derive(Deserialize)]
struct RawTokenResponse {
    #[serde(default)]
    jwt: Option<String>,
    #[serde(default)]
    expires_in: Option<i64>,
    #[serde(default)]
    message: Option<String>,
}

/// Fetches API-key tokens from one backend.
#[derive(Debug, Clone)]
pub struct ApiKeyClient {
    http: reqwest::Client,
    url: String,
    version: Option<String>,
    read_timeout: Duration,
}

impl ApiKeyClient {
    pub fn new(
        backend_url: &str,
        app_version: Option<String>,
        connect_timeout: Duration,
        read_timeout: Duration,
    ) -> Result<Self, ClientError> {
        match reqwest::Url::parse(backend_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => {
                return Err(ClientError::Config(
                    "backend_url must be an http:// or https:// URL".into(),
                ));
            }
        }
        Ok(Self {
            http: build_token_client(connect_timeout, read_timeout)?,
            url: format!("{}{TOKEN_PATH}", backend_url.trim_end_matches('/')),
            version: app_version,
            read_timeout,
        })
    }

    pub fn from_config(config: &ApiKeyConfig) -> Result<Self, ClientError> {
        Self::new(
            &config.backend_url,
            config.app_version.clone(),
            config.connect_timeout,
            config.read_timeout,
        )
    }

    /// The token endpoint's full URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Exchanges `api_key` for a JWT. A key that is not `sk-…` fails before any network call.
    /// The JWT is returned unverified: verification is the caller's (see
    /// [`super::verify_token`]).
    pub async fn fetch_jwt(
        &self,
        api_key: &ApiKey,
        instance_id: &str,
    ) -> Result<FetchedToken, ClientError> {
        if !api_key.is_well_formed() {
            tracing::error!(
                "The configured API key is malformed: it must be `sk-` followed by the key"
            );
            return Err(ClientError::InvalidApiKey);
        }
        let mut bearer = HeaderValue::from_str(&format!("Bearer {}", api_key.expose()))
            .map_err(|_| ClientError::InvalidApiKey)?;
        // Kept out of any debug output of the HTTP stack.
        bearer.set_sensitive(true);
        let body = TokenRequest {
            instance_id: instance_id.to_string(),
            version: self.version.clone(),
        };
        let request = self
            .http
            .post(&self.url)
            .header(AUTHORIZATION, bearer)
            .header(ACCEPT, "application/json")
            .json(&body);
        match send_json::<RawTokenResponse>(request, self.read_timeout).await {
            Ok(raw) => {
                if let Some(message) = raw.message.as_deref().filter(|m| !m.is_empty()) {
                    tracing::info!("License backend message: {message}");
                }
                match raw.jwt.filter(|j| !j.trim().is_empty()) {
                    Some(jwt) => Ok(FetchedToken {
                        jwt: jwt.trim().to_string(),
                        expires_in: raw.expires_in,
                        message: raw.message,
                    }),
                    None => {
                        tracing::error!("License backend answered without a `jwt`");
                        Err(ClientError::InvalidResponse(
                            "the answer has no `jwt`".into(),
                        ))
                    }
                }
            }
            Err(e) => {
                log_failure(&e);
                Err(e)
            }
        }
    }
}

fn log_failure(e: &ClientError) {
    match e {
        ClientError::Http {
            status: 401,
            body: Some(body),
        } => {
            tracing::error!(code = %body.error, "License backend refused the API key: {}", body.message);
        }
        ClientError::Timeout(_) | ClientError::Network(_) => {
            tracing::warn!("Could not reach the license backend: {e}");
        }
        other => tracing::error!("License fetch failed: {other}"),
    }
}
