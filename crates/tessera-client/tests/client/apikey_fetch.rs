//! API-key fetch against a mock backend: what is sent, each kind of answer, and where the
//! resolution falls when the fetch fails.

use std::time::{Duration, Instant};

use serde_json::json;
use tessera_client::apikey::INSTANCE_ID_FILE;
use tessera_client::{ApiKey, ApiKeyClient, ClientError, LicenseSource};
use tessera_core::ErrorCode;
use tessera_core::expiry::days;
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::apikey_helpers::*;
use crate::helpers::{T0, refused_url};

const TOKEN: &str = "/api/v1/licenses/token";

async fn backend(response: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN))
        .respond_with(response)
        .mount(&server)
        .await;
    server
}

fn client(url: &str) -> ApiKeyClient {
    ApiKeyClient::new(url, Some(VERSION.into()), FETCH_TIMEOUT, FETCH_TIMEOUT).unwrap()
}

#[tokio::test]
async fn fetch_posts_bearer_key_json_headers_instance_id_and_version() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN))
        .and(header(
            "authorization",
            format!("Bearer {API_KEY}").as_str(),
        ))
        .and(header("content-type", "application/json"))
        .and(header("accept", "application/json"))
        .and(body_partial_json(json!({"version": VERSION})))
        .respond_with(ok_token(&jwt("pro", T0)))
        .expect(1)
        .mount(&server)
        .await;
    let dir = cache_dir();
    let (manager, _) = start(api_config(&server.uri(), &dir.path), T0).await;
    assert_eq!(manager.current().source(), LicenseSource::ApiKey);
    assert_eq!(manager.current().tier(), "pro");

    let requests = server.received_requests().await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&requests[0].body).unwrap();
    let sent = body["instance_id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(sent).is_ok(), "{sent}");
    let stored = std::fs::read_to_string(dir.path.join(INSTANCE_ID_FILE)).unwrap();
    assert_eq!(stored.trim(), sent);
    assert_eq!(manager.instance_id().as_deref(), Some(sent));
}

#[tokio::test]
async fn instance_id_is_created_on_first_use_and_reused_by_the_next_start() {
    let server = backend(ok_token(&jwt("pro", T0))).await;
    let dir = cache_dir();
    let (first, _) = start(api_config(&server.uri(), &dir.path), T0).await;
    let (second, _) = start(api_config(&server.uri(), &dir.path), T0).await;
    assert_eq!(first.instance_id(), second.instance_id());
    let ids: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| {
            serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["instance_id"].to_string()
        })
        .collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], ids[1]);
}

#[tokio::test]
async fn fetch_200_returns_the_jwt_and_logs_nothing_when_message_is_null() {
    let token = jwt("pro", T0);
    let server = backend(ok_token(&token)).await;
    let (logs, _guard) = capture_logs();
    let fetched = client(&server.uri())
        .fetch_jwt(&ApiKey::new(API_KEY), "instance-1")
        .await
        .unwrap();
    assert_eq!(fetched.jwt, token);
    assert_eq!(fetched.expires_in, Some(86_400));
    assert_eq!(fetched.message, None);
    assert!(
        !logs.text().contains("License backend message"),
        "{}",
        logs.text()
    );
}

#[tokio::test]
async fn fetch_200_with_a_message_logs_it_at_info() {
    let server = backend(ResponseTemplate::new(200).set_body_json(token_body(
        &jwt("pro", T0),
        Some("Your trial ends in 3 days"),
    )))
    .await;
    let (logs, _guard) = capture_logs();
    let fetched = client(&server.uri())
        .fetch_jwt(&ApiKey::new(API_KEY), "instance-1")
        .await
        .unwrap();
    assert_eq!(
        fetched.message.as_deref(),
        Some("Your trial ends in 3 days")
    );
    logs.assert_has("INFO", "Your trial ends in 3 days");
}

#[tokio::test]
async fn fetch_200_without_jwt_is_an_error_and_falls_back_to_community() {
    let server = backend(
        ResponseTemplate::new(200).set_body_json(json!({"expires_in": 86_400, "message": null})),
    )
    .await;
    let err = client(&server.uri())
        .fetch_jwt(&ApiKey::new(API_KEY), "instance-1")
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::InvalidResponse(_)), "{err:?}");

    let (logs, _guard) = capture_logs();
    let dir = cache_dir();
    let (manager, _) = start(api_config(&server.uri(), &dir.path), T0).await;
    assert_eq!(manager.current().source(), LicenseSource::Community);
    assert!(manager.current().is_degraded());
    logs.assert_has("ERROR", "without a `jwt`");
    logs.assert_has(
        "WARN",
        "Could not fetch license — falling back to Community mode",
    );
}

#[tokio::test]
async fn fetch_401_revoked_logs_the_backend_message_at_error_and_falls_to_the_cache() {
    let server = backend(revoked()).await;
    let err = client(&server.uri())
        .fetch_jwt(&ApiKey::new(API_KEY), "instance-1")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::ApiKeyRevoked), "{err:?}");

    let dir = cache_dir();
    dir.seed(&jwt("pro", T0));
    let (logs, _guard) = capture_logs();
    let (manager, _) = start(api_config(&server.uri(), &dir.path), T0 + 60).await;
    let current = manager.current();
    assert_eq!(current.source(), LicenseSource::Cache);
    assert_eq!(current.tier(), "pro");
    logs.assert_has(
        "ERROR",
        "API key has been revoked. Contact sales@example.com.",
    );
    logs.assert_has("WARN", "Using cached license");
}

#[tokio::test]
async fn fetch_401_without_a_cache_falls_back_to_community() {
    let server = backend(revoked()).await;
    let dir = cache_dir();
    let (logs, _guard) = capture_logs();
    let (manager, _) = start(api_config(&server.uri(), &dir.path), T0).await;
    assert_eq!(manager.current().source(), LicenseSource::Community);
    assert_eq!(manager.current().tier(), "community");
    assert_eq!(manager.quota("max_clusters"), Some(2));
    logs.assert_has("ERROR", "API key has been revoked");
    logs.assert_has(
        "WARN",
        "Could not fetch license — falling back to Community mode",
    );
}

#[tokio::test]
async fn fetch_500_is_an_error_and_falls_to_the_cache() {
    let server = backend(ResponseTemplate::new(500).set_body_string("boom")).await;
    let err = client(&server.uri())
        .fetch_jwt(&ApiKey::new(API_KEY), "instance-1")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Http {
                status: 500,
                body: None
            }
        ),
        "{err:?}"
    );
    let dir = cache_dir();
    dir.seed(&jwt("enterprise", T0));
    let (logs, _guard) = capture_logs();
    let (manager, _) = start(api_config(&server.uri(), &dir.path), T0).await;
    assert_eq!(manager.current().source(), LicenseSource::Cache);
    assert_eq!(manager.current().tier(), "enterprise");
    logs.assert_has("ERROR", "HTTP 500");
}

#[tokio::test]
async fn fetch_timeout_logs_a_warning_and_falls_to_the_cache() {
    let server = backend(ok_token(&jwt("enterprise", T0)).set_delay(Duration::from_secs(3))).await;
    let started = Instant::now();
    let err = client(&server.uri())
        .fetch_jwt(&ApiKey::new(API_KEY), "instance-1")
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Timeout(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    let dir = cache_dir();
    dir.seed(&jwt("pro", T0));
    let (logs, _guard) = capture_logs();
    let (manager, _) = start(api_config(&server.uri(), &dir.path), T0).await;
    assert_eq!(manager.current().source(), LicenseSource::Cache);
    assert_eq!(manager.current().tier(), "pro");
    logs.assert_has("WARN", "Could not reach the license backend");
    logs.assert_has("WARN", "Using cached license");
}

#[tokio::test]
async fn connection_refused_logs_a_warning_and_falls_to_the_cache() {
    let url = refused_url();
    let err = client(&url)
        .fetch_jwt(&ApiKey::new(API_KEY), "instance-1")
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Network(_)), "{err:?}");
    assert!(err.is_transient());

    let dir = cache_dir();
    dir.seed(&jwt("pro", T0));
    let (logs, _guard) = capture_logs();
    let (manager, _) = start(api_config(&url, &dir.path), T0).await;
    assert_eq!(manager.current().source(), LicenseSource::Cache);
    logs.assert_has("WARN", "Could not reach the license backend");
    assert!(!logs.has("ERROR", "Could not reach"), "{}", logs.text());
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN))
        .respond_with(ResponseTemplate::new(307).insert_header("location", "/elsewhere"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/elsewhere"))
        .respond_with(ok_token(&jwt("enterprise", T0)))
        .expect(0)
        .mount(&server)
        .await;
    let err = client(&server.uri())
        .fetch_jwt(&ApiKey::new(API_KEY), "instance-1")
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Http { status: 307, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn malformed_api_keys_are_rejected_before_any_request() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ok_token(&jwt("pro", T0)))
        .expect(0)
        .mount(&server)
        .await;
    for key in ["sk-", "pk-0123456789", "", "  sk-  ", "sk-has space"] {
        let err = client(&server.uri())
            .fetch_jwt(&ApiKey::new(key), "instance-1")
            .await
            .unwrap_err();
        assert!(
            matches!(err, ClientError::InvalidApiKey),
            "{key:?}: {err:?}"
        );
    }
    let dir = cache_dir();
    let (manager, _) = start(
        api_config(&server.uri(), &dir.path).with_api_key("not-a-key"),
        T0,
    )
    .await;
    assert_eq!(manager.current().source(), LicenseSource::Community);
}

#[tokio::test]
async fn a_fetched_token_is_verified_without_grace_and_an_expired_one_is_not_cached() {
    // Expired a minute ago: a cache would accept it in grace, a fetch must not.
    let stale = sign(&tier_claims("pro", T0 - days(1), T0 - 60));
    let server = backend(ok_token(&stale)).await;
    let dir = cache_dir();
    let (logs, _guard) = capture_logs();
    let (manager, _) = start(api_config(&server.uri(), &dir.path), T0).await;
    assert_eq!(manager.current().source(), LicenseSource::Community);
    assert!(!dir.cache_file().exists());
    logs.assert_has("ERROR", "does not verify");
}

#[tokio::test]
async fn tokens_from_another_key_or_issuer_are_refused_and_not_cached() {
    let mut wrong_iss = tier_claims("pro", T0, T0 + days(1));
    wrong_iss.iss = "https://evil.example".into();
    let forged = impostor()
        .signer
        .sign(&tier_claims("enterprise", T0, T0 + days(1)))
        .unwrap();
    for token in [forged, sign(&wrong_iss)] {
        let server = backend(ok_token(&token)).await;
        let dir = cache_dir();
        let (manager, _) = start(api_config(&server.uri(), &dir.path), T0).await;
        assert_eq!(manager.current().source(), LicenseSource::Community);
        assert!(!dir.cache_file().exists());
    }
}

#[tokio::test]
async fn rs256_tokens_verify_when_the_embedded_key_is_rsa() {
    let token = rsa_vendor()
        .signer
        .sign(&tier_claims("pro", T0, T0 + days(1)))
        .unwrap();
    let server = backend(ok_token(&token)).await;
    let dir = cache_dir();
    let mut cfg = api_config(&server.uri(), &dir.path);
    cfg.public_keys.clear();
    let cfg = cfg.with_public_key(Some(RSA_KID), rsa_vendor().public_pem.as_bytes().to_vec());
    let (manager, _) = start(cfg, T0).await;
    assert_eq!(manager.current().source(), LicenseSource::ApiKey);
    assert_eq!(manager.current().tier(), "pro");
    // An Ed25519 token is refused by an RSA-only client (algorithm pinned per key).
    let server = backend(ok_token(&jwt("pro", T0))).await;
    let dir = cache_dir();
    let mut cfg = api_config(&server.uri(), &dir.path);
    cfg.public_keys.clear();
    let cfg = cfg.with_public_key(Some(RSA_KID), rsa_vendor().public_pem.as_bytes().to_vec());
    let (manager, _) = start(cfg, T0).await;
    assert_eq!(manager.current().source(), LicenseSource::Community);
}

#[tokio::test]
async fn the_api_key_never_appears_in_logs_or_debug_output() {
    let server = backend(revoked()).await;
    let dir = cache_dir();
    let (logs, _guard) = capture_logs();
    let (manager, _) = start(api_config(&server.uri(), &dir.path), T0).await;
    assert!(!logs.text().contains(API_KEY), "{}", logs.text());
    assert!(!format!("{manager:?}").contains(API_KEY));
    assert!(!format!("{:?}", api_config("http://x", &dir.path)).contains(API_KEY));
}
