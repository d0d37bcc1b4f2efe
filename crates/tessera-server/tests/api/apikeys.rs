//! API-key mode on the server: key management, the token endpoint, instances, JWKS, catalog.

use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera_core::apikey::ApiKeyClaims;
use tessera_core::catalog::Catalog;
use tessera_core::clock::Clock;
use tessera_core::{ErrorCode, Verifier, keys};
use tessera_server::test_support::TestOptions;

use crate::helpers::{TestApp, assert_error, spawn_app, spawn_app_with};

/// The example catalog from deploy/, with a freshly generated Ed25519 key at its path.
pub async fn spawn_with_example_catalog() -> (TestApp, tempfile::TempDir) {
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
    std::fs::write(&key_path, keys::generate_ed25519().unwrap().private_pem).unwrap();
    let options = TestOptions {
        catalog: Some((catalog, dir.path().to_path_buf())),
        ..TestOptions::default()
    };
    (spawn_app_with(options).await, dir)
}

async fn create_api_key(app: &TestApp, body: Value) -> (String, String) {
    let resp = app.admin_post("/admin/api-keys", body).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let created: Value = resp.json().await.unwrap();
    (
        created["id"].as_str().unwrap().to_string(),
        created["api_key"].as_str().unwrap().to_string(),
    )
}

async fn fetch(app: &TestApp, api_key: &str, instance: &str) -> reqwest::Response {
    app.http
        .post(app.url("/api/v1/licenses/token"))
        .bearer_auth(api_key)
        .header("accept", "application/json")
        .json(&json!({"instance_id": instance, "version": "1.2.3"}))
        .send()
        .await
        .unwrap()
}

async fn jwks_verifier(app: &TestApp) -> Verifier {
    let jwks: Value = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut v = Verifier::default();
    for k in jwks["keys"].as_array().unwrap() {
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(k.clone()).unwrap();
        v.trust_jwk(&jwk).unwrap();
    }
    v
}

#[tokio::test]
async fn token_fetch_returns_an_eddsa_jwt_with_catalog_quotas() {
    let (app, _dir) = spawn_with_example_catalog().await;
    let (id, api_key) = create_api_key(
        &app,
        json!({"product": "softclient4es", "tier": "pro", "name": "Acme", "org_name": "Acme Inc"}),
    )
    .await;
    assert!(api_key.starts_with("sk-") && api_key.len() >= 64);

    let resp = fetch(&app, &api_key, "6f1c0a8e-0000-4000-8000-000000000001").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["expires_in"], 86_400);
    assert!(body["message"].is_null());
    let jwt = body["jwt"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(jwt).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    assert_eq!(header.kid.as_deref(), Some("sc4es-2026-11"));

    let claims: ApiKeyClaims = jwks_verifier(&app).await.decode(jwt).unwrap();
    assert_eq!(claims.iss, "https://license.softclient4es.com");
    assert_eq!(claims.sub, id);
    assert_eq!(claims.tier, "pro");
    assert_eq!(claims.quotas["max_materialized_views"], 50);
    assert_eq!(claims.quotas["max_result_rows"], 1_000_000);
    assert_eq!(claims.org_name.as_deref(), Some("Acme Inc"));
    assert!(!claims.jti.is_empty());
}

#[tokio::test]
async fn unknown_and_malformed_api_keys_are_401_invalid_api_key() {
    let app = spawn_app().await;
    for key in ["sk-nope", "not-an-sk-key", "sk-"] {
        assert_error(fetch(&app, key, "i1").await, 401, ErrorCode::InvalidApiKey).await;
    }
    let no_auth = app
        .post("/api/v1/licenses/token", json!({"instance_id": "i1"}))
        .await;
    assert_error(no_auth, 401, ErrorCode::InvalidApiKey).await;
}

#[tokio::test]
async fn revoked_key_is_401_api_key_revoked_and_bad_body_is_4xx() {
    let app = spawn_app().await;
    let (id, api_key) =
        create_api_key(&app, json!({"product": "p", "tier": "pro", "name": "n"})).await;
    let bad = app
        .http
        .post(app.url("/api/v1/licenses/token"))
        .bearer_auth(&api_key)
        .json(&json!({"version": 1}))
        .send()
        .await
        .unwrap();
    assert_error(bad, 422, ErrorCode::ValidationError).await;
    let resp = app
        .http
        .delete(app.url(&format!("/admin/api-keys/{id}")))
        .bearer_auth(&app.server.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = assert_error(
        fetch(&app, &api_key, "i1").await,
        401,
        ErrorCode::ApiKeyRevoked,
    )
    .await;
    assert!(body.message.contains("revoked"));
}

#[tokio::test]
async fn expired_api_key_is_refused() {
    let app = spawn_app().await;
    let (_, api_key) = create_api_key(
        &app,
        json!({"product": "p", "tier": "pro", "name": "n", "expires_at": "2020-01-01"}),
    )
    .await;
    assert_error(
        fetch(&app, &api_key, "i1").await,
        401,
        ErrorCode::ApiKeyExpired,
    )
    .await;
}

#[tokio::test]
async fn listing_never_shows_the_secret_and_patch_changes_the_tier() {
    let (app, _dir) = spawn_with_example_catalog().await;
    let (id, api_key) = create_api_key(
        &app,
        json!({"product": "softclient4es", "tier": "community", "name": "n"}),
    )
    .await;
    let listed = app.admin_get("/admin/api-keys").await.text().await.unwrap();
    assert!(!listed.contains(&api_key));
    assert!(!listed.contains(&api_key[3..]));

    let patch = |body: Value| {
        app.http
            .patch(app.url(&format!("/admin/api-keys/{id}")))
            .bearer_auth(&app.server.admin_token)
            .json(&body)
            .send()
    };
    let resp = patch(json!({"tier": "pro"})).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.json::<Value>().await.unwrap()["tier"], "pro");
    assert_error(
        patch(json!({"tier": "platinum"})).await.unwrap(),
        422,
        ErrorCode::ValidationError,
    )
    .await;

    let jwt = fetch(&app, &api_key, "i1")
        .await
        .json::<Value>()
        .await
        .unwrap()["jwt"]
        .as_str()
        .unwrap()
        .to_string();
    let claims: ApiKeyClaims = jwks_verifier(&app).await.decode(&jwt).unwrap();
    assert_eq!(claims.tier, "pro");
    let audit: Vec<Value> = app
        .admin_get(&format!("/admin/audit?entity_id={id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(audit[0]["action"], "updated");
}

#[tokio::test]
async fn unknown_tier_for_a_catalog_product_is_422() {
    let (app, _dir) = spawn_with_example_catalog().await;
    let resp = app
        .admin_post(
            "/admin/api-keys",
            json!({"product": "softclient4es", "tier": "gold", "name": "n"}),
        )
        .await;
    assert_error(resp, 422, ErrorCode::ValidationError).await;
}

#[tokio::test]
async fn each_fetch_records_the_instance_without_lost_updates() {
    let app = spawn_app().await;
    let (id, api_key) =
        create_api_key(&app, json!({"product": "p", "tier": "pro", "name": "n"})).await;
    let fetches = (0..20).map(|_| fetch(&app, &api_key, "instance-a"));
    for resp in futures::future::join_all(fetches).await {
        assert_eq!(resp.status(), StatusCode::OK);
    }
    app.server.clock.advance(10);
    fetch(&app, &api_key, "instance-b").await;
    let instances: Vec<Value> = app
        .admin_get(&format!("/admin/instances?api_key_id={id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(instances.len(), 2);
    assert_eq!(instances[0]["instance_id"], "instance-b");
    assert_eq!(instances[1]["fetch_count"], 20);
    assert_eq!(instances[1]["version"], "1.2.3");
    assert!(instances[1]["first_seen"].as_str() <= instances[1]["last_seen"].as_str());
}

#[tokio::test]
async fn without_a_catalog_tokens_use_the_default_key() {
    let app = spawn_app().await;
    let (_, api_key) = create_api_key(
        &app,
        json!({"product": "anything", "tier": "pro", "name": "n"}),
    )
    .await;
    let body: Value = fetch(&app, &api_key, "i").await.json().await.unwrap();
    let claims: ApiKeyClaims = app
        .verifier()
        .decode(body["jwt"].as_str().unwrap())
        .unwrap();
    assert_eq!(claims.iss, "tessera");
    assert!(claims.quotas.is_empty());
    assert_eq!(claims.exp - claims.iat, 86_400);
    assert!(claims.iat <= app.server.clock.unix());
}

#[tokio::test]
async fn jwks_publishes_the_default_and_catalog_keys_with_kids() {
    let (app, _dir) = spawn_with_example_catalog().await;
    let jwks: Value = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert!(
        keys.iter()
            .any(|k| k["kty"] == "RSA" && k["kid"].is_string())
    );
    assert!(
        keys.iter()
            .any(|k| k["kty"] == "OKP" && k["kid"] == "sc4es-2026-11")
    );
}
