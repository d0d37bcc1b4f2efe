//! JSON over HTTP with the server's error contract, bounded in time (the client's timeout) and
//! in size (answers over [`MAX_RESPONSE_BYTES`] are not buffered).

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ClientError;

pub(crate) const MAX_RESPONSE_BYTES: usize = 64 * 1024;

pub(crate) fn build_client(timeout: Duration) -> Result<reqwest::Client, ClientError> {
    builder(timeout)
        .timeout(timeout)
        .build()
        .map_err(|e| ClientError::Config(format!("HTTP client: {e}")))
}

/// A client for the API-key token endpoint: its own connect and read timeouts, and redirects
/// not followed (a 3xx is an answer like any other non-2xx).
pub(crate) fn build_token_client(
    connect_timeout: Duration,
    read_timeout: Duration,
) -> Result<reqwest::Client, ClientError> {
    builder(connect_timeout)
        .read_timeout(read_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| ClientError::Config(format!("HTTP client: {e}")))
}

fn builder(connect_timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .user_agent(concat!("tessera-client/", env!("CARGO_PKG_VERSION")))
}

/// POSTs `body` as JSON and decodes a 2xx answer as `R`; other statuses become
/// [`ClientError::Http`] with the server's [`tessera_core::ErrorBody`] when it sent one.
pub(crate) async fn post_json<B: Serialize, R: DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    body: &B,
    timeout: Duration,
) -> Result<R, ClientError> {
    send_json(http.post(url).json(body), timeout).await
}

/// Sends a prepared request and decodes a 2xx answer as `R`; other statuses become
/// [`ClientError::Http`] with the server's [`tessera_core::ErrorBody`] when it sent one.
/// `timeout` is only reported in [`ClientError::Timeout`].
pub(crate) async fn send_json<R: DeserializeOwned>(
    request: reqwest::RequestBuilder,
    timeout: Duration,
) -> Result<R, ClientError> {
    let net = |e| ClientError::from_reqwest(e, timeout);
    let resp = request.send().await.map_err(net)?;
    let status = resp.status();
    let bytes = read_limited(resp, timeout).await?;
    if !status.is_success() {
        return Err(ClientError::Http {
            status: status.as_u16(),
            body: bytes.and_then(|b| serde_json::from_slice(&b).ok()),
        });
    }
    let bytes = bytes.ok_or_else(|| {
        ClientError::InvalidResponse(format!("answer over {MAX_RESPONSE_BYTES} bytes"))
    })?;
    serde_json::from_slice(&bytes).map_err(|e| ClientError::InvalidResponse(e.to_string()))
}

/// The body, or `None` when it is larger than [`MAX_RESPONSE_BYTES`].
async fn read_limited(
    mut resp: reqwest::Response,
    timeout: Duration,
) -> Result<Option<Vec<u8>>, ClientError> {
    let mut buf = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| ClientError::from_reqwest(e, timeout))?
    {
        if buf.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Some(buf))
}
