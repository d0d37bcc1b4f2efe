//! Malformed input gets a 4xx with the JSON error body, never a 5xx, and the server keeps serving.

use reqwest::StatusCode;
use serde_json::json;
use tessera_core::ErrorCode;

use crate::helpers::{TestApp, assert_error, spawn_app};

async fn raw(
    app: &TestApp,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut req = app.http.post(app.url(path)).body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    req.send().await.unwrap()
}

async fn still_serving(app: &TestApp) {
    let resp = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn malformed_json_is_400() {
    let app = spawn_app().await;
    for body in [&b"{"[..], b"not json", b"{\"key\": }", b"\xff\xfe"] {
        let resp = raw(
            &app,
            "/v1/activate",
            Some("application/json"),
            body.to_vec(),
        )
        .await;
        assert_error(resp, 400, ErrorCode::MalformedJson).await;
    }
    still_serving(&app).await;
}

#[tokio::test]
async fn missing_fields_and_wrong_types_are_422() {
    let app = spawn_app().await;
    for body in [
        json!({}),
        json!({"key": "CFG-PRNG-AAAA-BBBB-CCCC"}),
        json!({"key": 5, "machine_id": "m", "product": "peregrine"}),
        json!({"key": "k", "machine_id": ["m"], "product": "peregrine"}),
        json!([1, 2, 3]),
        json!(null),
    ] {
        assert_error(
            app.post("/v1/activate", body).await,
            422,
            ErrorCode::ValidationError,
        )
        .await;
    }
    let resp = app
        .admin_post(
            "/admin/keys",
            json!({"product": "peregrine", "tier": "paid", "seats": "two"}),
        )
        .await;
    assert_error(resp, 422, ErrorCode::ValidationError).await;
    let resp = app
        .admin_post(
            "/admin/keys",
            json!({"product": "peregrine", "tier": "paid", "seats": -1}),
        )
        .await;
    assert_error(resp, 422, ErrorCode::ValidationError).await;
    let resp = app
        .admin_post(
            "/admin/keys",
            json!({"product": "Pere grine", "tier": "paid"}),
        )
        .await;
    assert_error(resp, 422, ErrorCode::ValidationError).await;
    still_serving(&app).await;
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let app = spawn_app().await;
    let body = br#"{"key":"k","machine_id":"m","product":"peregrine"}"#.to_vec();
    assert_error(
        raw(&app, "/v1/activate", Some("text/plain"), body.clone()).await,
        415,
        ErrorCode::UnsupportedMediaType,
    )
    .await;
    assert_error(
        raw(&app, "/v1/activate", None, body).await,
        415,
        ErrorCode::UnsupportedMediaType,
    )
    .await;
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let app = spawn_app().await;
    let huge = json!({"key": "x".repeat(200_000), "machine_id": "m", "product": "peregrine"});
    assert_error(
        app.post("/v1/activate", huge).await,
        413,
        ErrorCode::PayloadTooLarge,
    )
    .await;
    still_serving(&app).await;
}

#[tokio::test]
async fn odd_strings_in_keys_are_4xx() {
    let app = spawn_app().await;
    let key = app.active_key().await;
    let long = "A".repeat(65);
    let cases = [
        ("' OR 1=1 --", 403),
        ("CFG-PRNG-\u{0}", 422),
        ("ключ-🔑", 403),
        (long.as_str(), 422),
        ("", 422),
        ("   ", 422),
    ];
    for (odd, status) in cases {
        let resp = app
            .post(
                "/v1/activate",
                json!({"key": odd, "machine_id": "m", "product": "peregrine"}),
            )
            .await;
        assert_eq!(resp.status().as_u16(), status, "{odd:?}");
        let resp = app
            .post(
                "/v1/activate",
                json!({"key": key, "machine_id": odd, "product": "peregrine"}),
            )
            .await;
        assert!(
            resp.status().is_client_error() || resp.status().is_success(),
            "{odd:?}: {}",
            resp.status()
        );
    }
    for odd in [
        "%00",
        "..%2F..%2Fetc%2Fpasswd",
        "'; DROP TABLE license_keys; --",
    ] {
        let resp = app
            .http
            .delete(app.url(&format!("/admin/keys/{odd}")))
            .bearer_auth(&app.server.admin_token)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_client_error(), "{odd}: {}", resp.status());
    }
    still_serving(&app).await;
    let fresh = app.active_key().await;
    assert_eq!(
        app.activate(&fresh, "still-works").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn bad_query_strings_are_400() {
    let app = spawn_app().await;
    for q in ["limit=abc", "offset=1.5", "limit=99999999999999999999999"] {
        assert_error(
            app.admin_get(&format!("/admin/keys?{q}")).await,
            400,
            ErrorCode::BadRequest,
        )
        .await;
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let app = spawn_app().await;
    assert_error(
        app.http.get(app.url("/nope")).send().await.unwrap(),
        404,
        ErrorCode::NotFound,
    )
    .await;
    assert_error(
        app.http.get(app.url("/v1/activate")).send().await.unwrap(),
        405,
        ErrorCode::MethodNotAllowed,
    )
    .await;
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    let resp = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert!(resp.headers().get("x-request-id").is_some());
    let resp = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "abc-123");
}
