//! Operations: OpenAPI coverage, docs page, health, metrics, rate limits.

use std::num::NonZeroU32;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera_core::ErrorCode;
use tessera_server::Limits;
use tessera_server::ratelimit::RateLimitConfig;
use tessera_server::test_support::TestOptions;

use crate::helpers::{assert_error, spawn_app, spawn_app_with};

/// The HTTP contract: every route the server must serve and document.
const CONTRACT: &[(&str, &str)] = &[
    ("post", "/v1/activate"),
    ("post", "/v1/refresh"),
    ("post", "/v1/deactivate"),
    ("post", "/v1/usage"),
    ("post", "/v1/flag"),
    ("post", "/admin/keys"),
    ("get", "/admin/keys"),
    ("get", "/admin/keys/{id}"),
    ("delete", "/admin/keys/{id}"),
    ("get", "/admin/activations"),
    ("get", "/admin/usage"),
    ("get", "/admin/flags"),
    ("patch", "/admin/flags/{id}"),
    ("get", "/admin/audit"),
    ("post", "/admin/api-keys"),
    ("get", "/admin/api-keys"),
    ("patch", "/admin/api-keys/{id}"),
    ("delete", "/admin/api-keys/{id}"),
    ("get", "/admin/instances"),
    ("post", "/api/v1/licenses/token"),
    ("get", "/.well-known/jwks.json"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
];

async fn spec(app: &crate::helpers::TestApp) -> Value {
    let resp = app.http.get(app.url("/openapi.json")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn openapi_documents_every_route_of_the_contract() {
    let app = spawn_app().await;
    let spec = spec(&app).await;
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    let missing: Vec<_> = CONTRACT
        .iter()
        .filter(|(method, path)| spec["paths"][*path][*method].is_null())
        .collect();
    assert!(
        missing.is_empty(),
        "routes missing from /openapi.json: {missing:?}"
    );
    let documented: usize = spec["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    assert_eq!(
        documented,
        CONTRACT.len(),
        "a documented route is not in the contract list"
    );
}

#[tokio::test]
async fn every_documented_route_is_served() {
    let app = spawn_app().await;
    let spec = spec(&app).await;
    for (path, methods) in spec["paths"].as_object().unwrap() {
        for method in methods.as_object().unwrap().keys() {
            let url = app.url(&path.replace("{id}", "no-such-id"));
            let req = app
                .http
                .request(method.to_uppercase().parse().unwrap(), url);
            let resp = req.send().await.unwrap();
            let status = resp.status();
            let body = resp.text().await.unwrap();
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert!(
                !body.contains("No such route"),
                "{method} {path} is documented but not routed"
            );
            assert!(!status.is_server_error(), "{method} {path}: {status}");
        }
    }
}

#[tokio::test]
async fn docs_page_is_self_contained() {
    let app = spawn_app().await;
    let html = app
        .http
        .get(app.url("/docs"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("swagger-ui"));
    assert!(
        !html.contains("https://") && !html.contains("http://"),
        "docs must not load from a CDN"
    );
    for asset in [
        "/docs/swagger-ui-bundle.js",
        "/docs/swagger-ui.css",
        "/docs/init.js",
    ] {
        let resp = app.http.get(app.url(asset)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{asset}");
        assert!(resp.bytes().await.unwrap().len() > 20);
    }
}

#[tokio::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    let health: Value = app
        .http
        .get(app.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
}

#[tokio::test]
async fn metrics_count_requests_by_matched_route_and_outcomes() {
    let app = spawn_app().await;
    let key = app
        .create_key(json!({"product": "peregrine", "tier": "paid", "seats": 1}))
        .await;
    app.activate_jwt(&key.key_display, "m1").await;
    app.activate(&key.key_display, "m2").await; // seat limit
    app.admin_get(&format!("/admin/keys/{}", key.id)).await;
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains(r#"route="/v1/activate""#), "{text}");
    assert!(text.contains(r#"route="/admin/keys/{id}""#));
    assert!(!text.contains(&key.id), "raw ids must never become labels");
    assert!(text.contains("tessera_http_request_duration_seconds_bucket"));
    assert!(text.contains(r#"tessera_activations_total{outcome="seat_limit_reached"}"#));
    assert!(text.contains(r#"tessera_activations_total{outcome="ok"}"#));
    assert!(text.contains("tessera_db_pool_connections"));
}

fn limited(burst: u32, trusted: &[&str]) -> TestOptions {
    TestOptions {
        limits: Limits {
            lease_sweep: None,
            rate_limit: Some(RateLimitConfig {
                burst: NonZeroU32::new(burst).unwrap(),
                per_minute: NonZeroU32::new(1).unwrap(),
                trusted_proxies: trusted.iter().map(|t| t.parse().unwrap()).collect(),
            }),
            ..Limits::default()
        },
        ..TestOptions::default()
    }
}

#[tokio::test]
async fn guessing_keys_is_rate_limited_with_retry_after() {
    let app = spawn_app_with(limited(3, &[])).await;
    for _ in 0..3 {
        assert_eq!(
            app.activate("CFG-PRNG-GUES-SING-KEYS", "m").await.status(),
            StatusCode::FORBIDDEN
        );
    }
    let resp = app.activate("CFG-PRNG-GUES-SING-KEYS", "m").await;
    assert!(
        resp.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_error(resp, 429, ErrorCode::RateLimited).await;
    // A forged X-Forwarded-For from an untrusted peer does not buy a new bucket.
    let forged = app
        .http
        .post(app.url("/api/v1/licenses/token"))
        .header("x-forwarded-for", "198.51.100.1")
        .json(&json!({"instance_id": "i"}))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::TOO_MANY_REQUESTS);
    // Admin routes are not limited.
    assert_eq!(app.admin_get("/admin/keys").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn forwarded_for_from_a_trusted_proxy_separates_clients() {
    let app = spawn_app_with(limited(1, &["127.0.0.1/32"])).await;
    let from = |ip: &'static str| {
        app.http
            .post(app.url("/v1/activate"))
            .header("x-forwarded-for", ip)
            .json(&json!({"key": "CFG-PRNG-AAAA-AAAA-AAAA", "machine_id": "m", "product": "peregrine"}))
            .send()
    };
    assert_eq!(
        from("198.51.100.1").await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        from("198.51.100.1").await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        from("198.51.100.2").await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn rate_limits_are_on_by_default_with_a_generous_burst() {
    let limits = Limits::default().rate_limit.expect("on by default");
    assert!(limits.burst.get() >= 50);
}

#[tokio::test]
async fn connections_past_the_limit_wait_until_one_closes() {
    let app = spawn_app_with(TestOptions {
        limits: Limits {
            lease_sweep: None,
            max_connections: 2,
            ..Limits::default()
        },
        ..TestOptions::default()
    })
    .await;
    let addr = app
        .server
        .base_url
        .trim_start_matches("http://")
        .to_string();
    // Two idle connections take both slots.
    let first = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let second = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let fresh = || {
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap()
    };
    let url = app.url("/healthz");
    let waiting = tokio::time::timeout(
        std::time::Duration::from_millis(500),
        fresh().get(&url).send(),
    )
    .await;
    assert!(
        waiting.is_err(),
        "a third connection was served while two were open"
    );
    drop(first);
    let served =
        tokio::time::timeout(std::time::Duration::from_secs(5), fresh().get(&url).send()).await;
    assert_eq!(
        served.expect("served once a slot frees").unwrap().status(),
        StatusCode::OK
    );
    drop(second);
}
