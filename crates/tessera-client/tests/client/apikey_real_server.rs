//! API-key mode end to end against the real server with the example catalog (softclient4es,
//! EdDSA): create a key → fetch → upgrade the tier → refresh → revoke → cache → Community.

use std::sync::Arc;

use serde_json::{Value, json};
use tessera_client::{ApiKeyConfig, LicenseManager, LicenseSource, RefreshSchedule};
use tessera_core::catalog::Catalog;
use tessera_core::clock::{Clock, OffsetClock};
use tessera_core::expiry::days;
use tessera_core::keys;
use tessera_server::test_support::{TestOptions, TestServer};

use crate::apikey_helpers::{CacheDir, cache_dir, capture_logs};

const ISSUER: &str = "https://license.softclient4es.com";

struct World {
    server: TestServer,
    http: reqwest::Client,
    public_pem: String,
    _catalog_dir: tempfile::TempDir,
}

impl World {
    /// The example catalog from deploy/, with a freshly generated Ed25519 key at its path.
    async fn new() -> Self {
        crate::helpers::init_logs();
        let dir = tempfile::tempdir().unwrap();
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/catalog.example.toml"
        ))
        .unwrap();
        let catalog = Catalog::parse(&text).unwrap();
        let key_path = dir
            .path()
            .join(&catalog.products[0].keys[0].private_key_path);
        std::fs::create_dir_all(key_path.parent().unwrap()).unwrap();
        let pair = keys::generate_ed25519().unwrap();
        std::fs::write(&key_path, &pair.private_pem).unwrap();
        let options = TestOptions {
            catalog: Some((catalog, dir.path().to_path_buf())),
            ..TestOptions::default()
        };
        Self {
            server: TestServer::spawn_with(options).await.unwrap(),
            http: reqwest::Client::new(),
            public_pem: pair.public_pem,
            _catalog_dir: dir,
        }
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method, self.server.url(path))
            .bearer_auth(&self.server.admin_token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.json().await.unwrap()
    }

    /// Creates an API key; returns its id and secret.
    async fn create_key(&self, tier: &str) -> (String, String) {
        let created = self
            .admin(
                reqwest::Method::POST,
                "/admin/api-keys",
                Some(json!({"product": "softclient4es", "tier": tier, "name": "n"})),
            )
            .await;
        (
            created["id"].as_str().unwrap().to_string(),
            created["api_key"].as_str().unwrap().to_string(),
        )
    }

    async fn jwks(&self) -> String {
        self.http
            .get(self.server.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The `kid` the server publishes for softclient4es.
    async fn kid(&self) -> String {
        let jwks: Value = serde_json::from_str(&self.jwks().await).unwrap();
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kty"] == "OKP")
            .and_then(|k| k["kid"].as_str())
            .unwrap()
            .to_string()
    }

    fn config(&self, api_key: &str, dir: &CacheDir) -> ApiKeyConfig {
        ApiKeyConfig::new(&self.server.base_url, ISSUER, &dir.path)
            .with_api_key(api_key)
            .with_app_version("4.2.0")
            .with_refresh(RefreshSchedule::default())
    }
}

#[tokio::test]
async fn api_key_lifecycle_fetch_upgrade_revoke_cache_then_community() {
    let w = World::new().await;
    let (id, api_key) = w.create_key("community").await;
    let kid = w.kid().await;
    assert_eq!(kid, "sc4es-2026-11");
    let dir = cache_dir();
    let cfg = w
        .config(&api_key, &dir)
        .with_public_key(Some(&kid), w.public_pem.as_bytes().to_vec());
    let clock = Arc::new(OffsetClock::new());
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let (logs, _guard) = capture_logs();

    // Fetch: Community from the API key, its quotas enforced.
    let manager = LicenseManager::start_with_clock(cfg, dyn_clock)
        .await
        .unwrap();
    let current = manager.current();
    assert_eq!(current.source(), LicenseSource::ApiKey);
    assert_eq!(current.tier(), "community");
    assert_eq!(current.subject(), Some(id.as_str()));
    assert_eq!(manager.quota("max_materialized_views"), Some(3));
    let err = manager.check_quota("max_clusters", 3).unwrap_err();
    assert_eq!(err.upgrade_to.as_deref(), Some("Pro"));
    assert!(dir.cache_file().exists());

    // The server recorded this instance and its version.
    let instances = w
        .admin(reqwest::Method::GET, "/admin/instances", None)
        .await;
    let instance = &instances.as_array().unwrap()[0];
    assert_eq!(
        instance["instance_id"].as_str(),
        manager.instance_id().as_deref()
    );
    assert_eq!(instance["version"], "4.2.0");

    // Upgrade on the server; the refresh logs it and the new quotas apply at once.
    w.admin(
        reqwest::Method::PATCH,
        &format!("/admin/api-keys/{id}"),
        Some(json!({"tier": "pro"})),
    )
    .await;
    let refreshed = manager.refresh().await;
    assert_eq!(refreshed.tier(), "pro");
    logs.assert_has("INFO", "License upgraded from Community to Pro");
    assert!(manager.check_quota("max_clusters", 3).is_ok());
    assert!(manager.check_quota("max_materialized_views", 50).is_ok());
    assert_eq!(
        manager
            .check_quota("max_clusters", 6)
            .unwrap_err()
            .upgrade_to
            .as_deref(),
        Some("Enterprise")
    );
    assert!(manager.has_feature("materialized_views"));

    // Revoke: the backend says so (ERROR), the cached Pro license carries on.
    w.admin(
        reqwest::Method::DELETE,
        &format!("/admin/api-keys/{id}"),
        None,
    )
    .await;
    let after_revoke = manager.refresh().await;
    assert_eq!(after_revoke.source(), LicenseSource::Cache);
    assert_eq!(after_revoke.tier(), "pro");
    logs.assert_has("ERROR", "revoked");
    logs.assert_has("WARN", "Using cached license");

    // Past exp + 14 days of grace on the client's clock: the cache is deleted, Community.
    clock.advance(days(1) + days(14) + 60);
    let lapsed = manager.refresh().await;
    assert_eq!(lapsed.source(), LicenseSource::Community);
    assert_eq!(lapsed.tier(), "community");
    assert!(!dir.cache_file().exists());
    assert!(manager.check_quota("max_clusters", 3).is_err());
    logs.assert_has(
        "WARN",
        "Could not fetch license — falling back to Community mode",
    );
    w.server.stop().await.unwrap();
}

#[tokio::test]
async fn a_client_embedding_the_servers_jwks_verifies_its_tokens() {
    let w = World::new().await;
    let (_, api_key) = w.create_key("enterprise").await;
    let dir = cache_dir();
    let cfg = w.config(&api_key, &dir).with_jwks(w.jwks().await);
    let manager = LicenseManager::start(cfg).await.unwrap();
    let current = manager.current();
    assert_eq!(current.source(), LicenseSource::ApiKey);
    assert_eq!(current.tier(), "enterprise");
    assert_eq!(manager.quota("max_clusters"), None);
    assert!(manager.has_feature("audit_log"));
    w.server.stop().await.unwrap();
}

#[tokio::test]
async fn an_unknown_api_key_is_refused_by_the_real_server_and_community_applies() {
    let w = World::new().await;
    let dir = cache_dir();
    let cfg = w
        .config("sk-0000000000000000000000000000000000000000", &dir)
        .with_jwks(w.jwks().await);
    let (logs, _guard) = capture_logs();
    let manager = LicenseManager::start(cfg).await.unwrap();
    assert_eq!(manager.current().source(), LicenseSource::Community);
    logs.assert_has("ERROR", "License backend refused the API key");
    w.server.stop().await.unwrap();
}
