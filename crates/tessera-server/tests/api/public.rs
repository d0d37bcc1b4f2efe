//! The seed's Task 4 and 5 public-route tests, ported, plus notice and expiry behaviour.

use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera_core::ErrorCode;
use tessera_core::clock::Clock;
use tessera_server::test_support::TestOptions;

use crate::helpers::{assert_error, spawn_app, spawn_app_with};

#[tokio::test]
async fn activate_returns_jwt() {
    let app = spawn_app().await;
    let key = app.active_key().await;
    let resp = app
        .post(
            "/v1/activate",
            json!({"key": key, "machine_id": "machine-1", "product": "peregrine",
            "platform": "linux", "app_version": "1.0.0"}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let data: Value = resp.json().await.unwrap();
    assert_eq!(data["tier"], "paid");
    let claims = app.claims(data["jwt"].as_str().unwrap());
    assert_eq!(claims.sub, key);
    assert_eq!(claims.product, "peregrine");
    assert_eq!(claims.tier, "paid");
    assert_eq!(claims.seats, 2);
    assert_eq!(claims.machine, "machine-1");
    assert_eq!(claims.exp - claims.iat, 30 * 86_400);
    assert!(claims.notice.is_none());
}

#[tokio::test]
async fn activate_same_machine_twice_ok() {
    let app = spawn_app().await;
    let key = app.active_key().await;
    assert_eq!(
        app.activate(&key, "machine-1").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.activate(&key, "machine-1").await.status(),
        StatusCode::OK
    );
    let seats: Vec<Value> = app
        .admin_get("/admin/activations")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(seats.len(), 1, "re-activation reuses the seat");
}

#[tokio::test]
async fn activate_seat_limit_enforced() {
    let app = spawn_app().await;
    let key = app.active_key().await;
    for m in ["machine-1", "machine-2"] {
        assert_eq!(app.activate(&key, m).await.status(), StatusCode::OK);
    }
    assert_error(
        app.activate(&key, "machine-3").await,
        409,
        ErrorCode::SeatLimitReached,
    )
    .await;
}

#[tokio::test]
async fn activate_invalid_key_rejected() {
    let app = spawn_app().await;
    let resp = app.activate("CFG-PRNG-FAKE-FAKE-FAKE", "m1").await;
    assert_error(resp, 403, ErrorCode::InvalidLicenseKey).await;
}

#[tokio::test]
async fn activate_wrong_product_rejected() {
    let app = spawn_app().await;
    let key = app.active_key().await;
    let resp = app
        .post(
            "/v1/activate",
            json!({"key": key, "machine_id": "m1", "product": "falcon"}),
        )
        .await;
    assert_error(resp, 403, ErrorCode::ProductMismatch).await;
}

#[tokio::test]
async fn activate_rejects_key_past_valid_until() {
    let app = spawn_app().await;
    let key = app
        .create_key(json!({"product": "peregrine", "tier": "paid", "valid_until": "2020-01-01"}))
        .await;
    assert_error(
        app.activate(&key.key_display, "m1").await,
        403,
        ErrorCode::LicenseExpired,
    )
    .await;
}

#[tokio::test]
async fn token_never_outlives_the_key() {
    let app = spawn_app().await;
    let until = app.server.clock.unix() + 3 * 86_400;
    let until = time::OffsetDateTime::from_unix_timestamp(until).unwrap();
    let key = app
        .create_key(json!({"product": "peregrine", "tier": "paid",
            "valid_until": tessera_core::timefmt::format(until)}))
        .await;
    let claims = app.claims(&app.activate_jwt(&key.key_display, "m1").await);
    assert_eq!(claims.exp, until.unix_timestamp());
}

#[tokio::test]
async fn refresh_returns_new_jwt() {
    let app = spawn_app().await;
    let key = app.active_key().await;
    let old = app.activate_jwt(&key, "m1").await;
    app.server.clock.advance(60);
    let resp = app
        .post("/v1/refresh", json!({"jwt": old, "machine_id": "m1"}))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    let new = body["jwt"].as_str().unwrap();
    assert!(app.claims(new).exp > app.claims(&old).exp);
}

#[tokio::test]
async fn deactivate_frees_seat() {
    let app = spawn_app().await;
    let key = app.active_key().await;
    let token = app.activate_jwt(&key, "machine-1").await;
    app.activate_jwt(&key, "machine-2").await;
    assert_eq!(
        app.activate(&key, "machine-3").await.status(),
        StatusCode::CONFLICT
    );
    let resp = app
        .post(
            "/v1/deactivate",
            json!({"jwt": token, "machine_id": "machine-1"}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"status": "deactivated"})
    );
    assert_eq!(
        app.activate(&key, "machine-3").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn deactivate_twice_is_404() {
    let app = spawn_app().await;
    let key = app.active_key().await;
    let token = app.activate_jwt(&key, "m1").await;
    let body = json!({"jwt": token, "machine_id": "m1"});
    assert_eq!(
        app.post("/v1/deactivate", body.clone()).await.status(),
        StatusCode::OK
    );
    assert_error(
        app.post("/v1/deactivate", body).await,
        404,
        ErrorCode::NotFound,
    )
    .await;
}

#[tokio::test]
async fn usage_event_recorded() {
    let app = spawn_app().await;
    let key = app.active_key().await;
    let token = app.activate_jwt(&key, "m1").await;
    let resp = app
        .post_bearer(
            "/v1/usage",
            &token,
            json!({"event_type": "cover_letter_generated",
            "product": "peregrine", "metadata": {"job_id": 42}}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"status": "recorded"})
    );
    let events: Vec<Value> = app.admin_get("/admin/usage").await.json().await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["event_type"], "cover_letter_generated");
    assert_eq!(events[0]["machine_id"], "m1");
    assert_eq!(events[0]["metadata"], json!({"job_id": 42}));
}

#[tokio::test]
async fn flag_recorded() {
    let app = spawn_app().await;
    let key = app.active_key().await;
    let token = app.activate_jwt(&key, "m1").await;
    let resp = app
        .post_bearer(
            "/v1/flag",
            &token,
            json!({"flag_type": "content_violation",
            "product": "peregrine", "details": {"prompt_snippet": "test"}}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"status": "flagged"})
    );
}

#[tokio::test]
async fn usage_with_invalid_jwt_rejected() {
    let app = spawn_app().await;
    let resp = app
        .post_bearer(
            "/v1/usage",
            "not-a-jwt",
            json!({"event_type": "test", "product": "peregrine"}),
        )
        .await;
    assert_error(resp, 403, ErrorCode::InvalidToken).await;
}

/// The server remembers a bearer token whose signature it checked; expiry is still decided on
/// every request, and a token that differs by one byte is checked afresh.
#[tokio::test]
async fn a_remembered_bearer_token_still_expires_and_forgeries_still_fail() {
    const DAY: i64 = 86_400;
    let app = spawn_app().await;
    let key = app.active_key().await;
    let token = app.activate_jwt(&key, "m1").await;
    let event = || json!({"event_type": "x", "product": "peregrine"});
    assert_eq!(
        app.post_bearer("/v1/usage", &token, event()).await.status(),
        StatusCode::OK
    );
    let mut forged = token.clone().into_bytes();
    let last = forged.len() - 2;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    assert_error(
        app.post_bearer("/v1/usage", &forged, event()).await,
        403,
        ErrorCode::InvalidToken,
    )
    .await;
    // Within grace the remembered token is still good; beyond it, it is not.
    app.server.clock.advance(30 * DAY + 6 * DAY);
    assert_eq!(
        app.post_bearer("/v1/usage", &token, event()).await.status(),
        StatusCode::OK
    );
    app.server.clock.advance(DAY + 1);
    assert_error(
        app.post_bearer("/v1/usage", &token, event()).await,
        403,
        ErrorCode::TokenExpired,
    )
    .await;
}

#[tokio::test]
async fn usage_for_another_product_rejected() {
    let app = spawn_app().await;
    let key = app.active_key().await;
    let token = app.activate_jwt(&key, "m1").await;
    let resp = app
        .post_bearer(
            "/v1/usage",
            &token,
            json!({"event_type": "x", "product": "falcon"}),
        )
        .await;
    assert_error(resp, 403, ErrorCode::ProductMismatch).await;
}

#[tokio::test]
async fn server_notice_is_in_token_and_response() {
    let app = spawn_app_with(TestOptions {
        server_notice: Some("Maintenance Sunday".into()),
        ..TestOptions::default()
    })
    .await;
    let key = app.active_key().await;
    let resp = app.activate(&key, "m1").await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["notice"], "Maintenance Sunday");
    assert_eq!(
        app.claims(body["jwt"].as_str().unwrap()).notice.as_deref(),
        Some("Maintenance Sunday")
    );
}

#[tokio::test]
async fn floating_seat_is_released_after_its_lease_and_audited() {
    let app = spawn_app().await;
    let key = app
        .create_key(
            json!({"product": "peregrine", "tier": "paid", "seats": 1, "lease_ttl_secs": 600}),
        )
        .await;
    app.activate_jwt(&key.key_display, "laptop").await;
    assert_eq!(
        app.activate(&key.key_display, "desktop").await.status(),
        StatusCode::CONFLICT
    );
    app.server.clock.advance(601);
    assert_eq!(
        app.activate(&key.key_display, "desktop").await.status(),
        StatusCode::OK
    );
    let audit: Vec<Value> = app.admin_get("/admin/audit").await.json().await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e["action"] == "lease_released" && e["details"]["machine_id"] == "laptop")
    );
}

#[tokio::test]
async fn seats_are_held_until_deactivated_without_a_lease() {
    let app = spawn_app().await;
    let key = app
        .create_key(json!({"product": "peregrine", "tier": "paid", "seats": 1}))
        .await;
    app.activate_jwt(&key.key_display, "laptop").await;
    app.server.clock.advance(365 * 86_400);
    assert_eq!(
        app.activate(&key.key_display, "desktop").await.status(),
        StatusCode::CONFLICT
    );
}

/// The stored seat count (kept by triggers) follows every way a seat is taken or freed.
#[tokio::test]
async fn the_active_seat_count_follows_every_seat_change() {
    let app = spawn_app().await;
    let key = app
        .create_key(
            json!({"product": "peregrine", "tier": "paid", "seats": 3, "lease_ttl_secs": 600}),
        )
        .await;
    let count = || async {
        let body: Value = app
            .admin_get(&format!("/admin/keys/{}", key.id))
            .await
            .json()
            .await
            .unwrap();
        body["active_seat_count"].as_i64().unwrap()
    };
    assert_eq!(count().await, 0);
    let laptop = app.activate_jwt(&key.key_display, "laptop").await;
    app.activate_jwt(&key.key_display, "desktop").await;
    assert_eq!(count().await, 2);
    // Activating again on a machine that holds a seat takes no second one.
    app.activate_jwt(&key.key_display, "laptop").await;
    assert_eq!(count().await, 2);
    let refreshed = app
        .post(
            "/v1/refresh",
            json!({"jwt": laptop, "machine_id": "laptop"}),
        )
        .await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    assert_eq!(count().await, 2);
    let deactivated = app
        .post(
            "/v1/deactivate",
            json!({"jwt": laptop, "machine_id": "laptop"}),
        )
        .await;
    assert_eq!(deactivated.status(), StatusCode::OK);
    assert_eq!(count().await, 1);
    app.activate_jwt(&key.key_display, "laptop").await;
    assert_eq!(count().await, 2);
    // Both leases run out: the next activation releases them and takes one seat.
    app.server.clock.advance(601);
    app.activate_jwt(&key.key_display, "tablet").await;
    assert_eq!(count().await, 1);
}
