//! The seed's Task 5 admin tests, ported, plus pagination and the audit log.

use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera_core::ErrorCode;

use crate::helpers::{assert_error, spawn_app};

#[tokio::test]
async fn create_key_returns_display() {
    let app = spawn_app().await;
    let key = app
        .create_key(json!({"product": "peregrine", "tier": "paid"}))
        .await;
    assert!(
        key.key_display.starts_with("CFG-PRNG-"),
        "{}",
        key.key_display
    );
    assert_eq!(key.seats, 1);
    assert_eq!(key.source, "manual");
    assert!(!key.revoked && !key.trial);
    let other = app
        .create_key(json!({"product": "zeppelin", "tier": "paid"}))
        .await;
    assert!(other.key_display.starts_with("CFG-ZEPP-"));
}

#[tokio::test]
async fn list_keys() {
    let app = spawn_app().await;
    app.create_key(json!({"product": "peregrine", "tier": "paid"}))
        .await;
    let resp = app.admin_get("/admin/keys").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let keys: Vec<Value> = resp.json().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["active_seat_count"], 0);
}

#[tokio::test]
async fn list_keys_paginates_newest_first() {
    let app = spawn_app().await;
    let mut created = Vec::new();
    for _ in 0..5 {
        created.push(
            app.create_key(json!({"product": "peregrine", "tier": "paid"}))
                .await
                .id,
        );
        app.server.clock.advance(1);
    }
    let page1: Vec<Value> = app
        .admin_get("/admin/keys?limit=2")
        .await
        .json()
        .await
        .unwrap();
    let page3: Vec<Value> = app
        .admin_get("/admin/keys?limit=2&offset=4")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page1.len(), 2);
    assert_eq!(page1[0]["id"], created[4].as_str());
    assert_eq!(page3.len(), 1);
    assert_eq!(page3[0]["id"], created[0].as_str());
    // Absurd limits are capped, not refused.
    let all: Vec<Value> = app
        .admin_get("/admin/keys?limit=99999999")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all.len(), 5);
}

#[tokio::test]
async fn revoke_key() {
    let app = spawn_app().await;
    let key = app
        .create_key(json!({"product": "peregrine", "tier": "paid"}))
        .await;
    let resp = app
        .http
        .delete(app.url(&format!("/admin/keys/{}", key.id)))
        .bearer_auth(&app.server.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_error(
        app.activate(&key.key_display, "m1").await,
        403,
        ErrorCode::LicenseRevoked,
    )
    .await;
}

#[tokio::test]
async fn revoke_unknown_key_is_404() {
    let app = spawn_app().await;
    let resp = app
        .http
        .delete(app.url("/admin/keys/nope"))
        .bearer_auth(&app.server.admin_token)
        .send()
        .await
        .unwrap();
    assert_error(resp, 404, ErrorCode::NotFound).await;
}

#[tokio::test]
async fn admin_requires_token() {
    let app = spawn_app().await;
    let wrong = app
        .http
        .get(app.url("/admin/keys"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_error(wrong, 401, ErrorCode::Unauthorized).await;
    let missing = app.http.get(app.url("/admin/keys")).send().await.unwrap();
    assert_error(missing, 401, ErrorCode::Unauthorized).await;
    // Same length, one character off.
    let mut near = app.server.admin_token.clone();
    near.pop();
    near.push('X');
    let near = app
        .http
        .get(app.url("/admin/keys"))
        .bearer_auth(near)
        .send()
        .await
        .unwrap();
    assert_error(near, 401, ErrorCode::Unauthorized).await;
}

#[tokio::test]
async fn admin_usage_returns_events() {
    let app = spawn_app().await;
    let key = app
        .create_key(json!({"product": "peregrine", "tier": "paid"}))
        .await;
    let token = app.activate_jwt(&key.key_display, "m1").await;
    app.post_bearer(
        "/v1/usage",
        &token,
        json!({"event_type": "cover_letter_generated", "product": "peregrine"}),
    )
    .await;
    let events: Vec<Value> = app.admin_get("/admin/usage").await.json().await.unwrap();
    assert!(!events.is_empty());
    let by_key: Vec<Value> = app
        .admin_get(&format!("/admin/usage?key_id={}", key.id))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_key.len(), 1);
    let other: Vec<Value> = app
        .admin_get("/admin/usage?key_id=other")
        .await
        .json()
        .await
        .unwrap();
    assert!(other.is_empty());
}

#[tokio::test]
async fn admin_flags_returns_list_and_review_moves_it() {
    let app = spawn_app().await;
    let key = app
        .create_key(json!({"product": "peregrine", "tier": "paid"}))
        .await;
    let token = app.activate_jwt(&key.key_display, "m1").await;
    app.post_bearer(
        "/v1/flag",
        &token,
        json!({"flag_type": "content_violation", "product": "peregrine"}),
    )
    .await;
    let flags: Vec<Value> = app.admin_get("/admin/flags").await.json().await.unwrap();
    assert_eq!(flags.len(), 1);
    assert_eq!(flags[0]["status"], "open");

    let id = flags[0]["id"].as_str().unwrap();
    let resp = app
        .http
        .patch(app.url(&format!("/admin/flags/{id}")))
        .bearer_auth(&app.server.admin_token)
        .json(&json!({"status": "actioned", "action_taken": "warned"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let open: Vec<Value> = app
        .admin_get("/admin/flags?status=open")
        .await
        .json()
        .await
        .unwrap();
    assert!(open.is_empty());
    let actioned: Vec<Value> = app
        .admin_get("/admin/flags?status=actioned")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(actioned[0]["action_taken"], "warned");
    assert!(actioned[0]["reviewed_at"].is_string());

    let bad = app.admin_get("/admin/flags?status=bogus").await;
    assert_error(bad, 422, ErrorCode::ValidationError).await;
}

#[tokio::test]
async fn patch_unknown_flag_is_404_and_bad_status_is_422() {
    let app = spawn_app().await;
    let patch = |body: Value| {
        app.http
            .patch(app.url("/admin/flags/nope"))
            .bearer_auth(&app.server.admin_token)
            .json(&body)
            .send()
    };
    assert_error(
        patch(json!({"status": "reviewed"})).await.unwrap(),
        404,
        ErrorCode::NotFound,
    )
    .await;
    assert_error(
        patch(json!({"status": "open"})).await.unwrap(),
        422,
        ErrorCode::ValidationError,
    )
    .await;
}

#[tokio::test]
async fn admin_activations_list_seats_with_their_key() {
    let app = spawn_app().await;
    let key = app.active_key().await;
    app.activate_jwt(&key, "m1").await;
    let seats: Vec<Value> = app
        .admin_get("/admin/activations")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(seats[0]["key_display"], key.as_str());
    assert_eq!(seats[0]["product"], "peregrine");
    assert_eq!(seats[0]["machine_id"], "m1");
    assert!(seats[0]["deactivated_at"].is_null());
}

#[tokio::test]
async fn admin_activations_page_newest_first_with_and_without_a_key() {
    let app = spawn_app().await;
    let first = app
        .create_key(json!({"product": "peregrine", "tier": "paid", "seats": 5}))
        .await;
    let second = app
        .create_key(json!({"product": "peregrine", "tier": "paid", "seats": 5}))
        .await;
    // m0..m4 alternate between the two keys, one second apart.
    for i in 0..5 {
        let key = if i % 2 == 0 { &first } else { &second };
        app.activate_jwt(&key.key_display, &format!("m{i}")).await;
        app.server.clock.advance(1);
    }
    let page = |query: String| {
        let app = &app;
        async move {
            let rows: Vec<Value> = app.admin_get(&query).await.json().await.unwrap();
            rows.iter()
                .map(|r| {
                    let machine = r["machine_id"].as_str().unwrap().to_string();
                    (machine, r["key_display"].as_str().unwrap().to_string())
                })
                .collect::<Vec<_>>()
        }
    };
    let all = page("/admin/activations?limit=2&offset=1".into()).await;
    assert_eq!(
        all,
        [
            ("m3".to_string(), second.key_display.clone()),
            ("m2".to_string(), first.key_display.clone()),
        ]
    );
    let last = page("/admin/activations?limit=2&offset=4".into()).await;
    assert_eq!(last, [("m0".to_string(), first.key_display.clone())]);
    let of_first = page(format!(
        "/admin/activations?key_id={}&limit=2&offset=1",
        first.id
    ))
    .await;
    let machines: Vec<&str> = of_first.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(machines, ["m2", "m0"]);
}

#[tokio::test]
async fn audit_log_is_newest_first() {
    let app = spawn_app().await;
    let key = app.active_key().await;
    app.server.clock.advance(1);
    let jwt = app.activate_jwt(&key, "m1").await;
    app.server.clock.advance(1);
    let refreshed = app
        .post("/v1/refresh", json!({"jwt": jwt, "machine_id": "m1"}))
        .await;
    assert_eq!(refreshed.status(), 200);
    app.server.clock.advance(1);
    // Activating a machine that already holds its seat updates it, audited again.
    app.activate_jwt(&key, "m1").await;
    let audit: Vec<Value> = app.admin_get("/admin/audit").await.json().await.unwrap();
    let actions: Vec<&str> = audit
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["activated", "refreshed", "activated", "created"]);
    for entry in &audit[..3] {
        assert_eq!(entry["actor"], "machine:m1");
        assert_eq!(entry["entity_type"], "activation");
        assert_eq!(entry["details"]["machine_id"], "m1");
    }
    // All three are about the one seat.
    assert_eq!(audit[0]["entity_id"], audit[2]["entity_id"]);
    assert_eq!(audit[1]["entity_id"], audit[2]["entity_id"]);
}
