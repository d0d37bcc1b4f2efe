//! One test (at least) for each bug of the seed that Tessera fixes.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera_core::clock::Clock;
use tessera_core::{ErrorCode, LicenseClaims, Signer, keys};

use crate::helpers::{TestApp, assert_error, spawn_app};

const DAY: i64 = 86_400;

fn claims_for(app: &TestApp, key: &str, machine: &str, exp_offset: i64) -> LicenseClaims {
    let now = app.server.clock.unix();
    LicenseClaims {
        sub: key.into(),
        product: "peregrine".into(),
        tier: "paid".into(),
        seats: 2,
        machine: machine.into(),
        iat: now + exp_offset - 30 * DAY,
        exp: now + exp_offset,
        notice: None,
    }
}

async fn refresh(app: &TestApp, jwt: &str, machine: &str) -> reqwest::Response {
    app.post("/v1/refresh", json!({"jwt": jwt, "machine_id": machine}))
        .await
}

// Bug 1: refresh accepted expired tokens of any age (and decoded them unverified).

#[tokio::test]
async fn refresh_accepts_an_expired_token_within_grace() {
    let app = spawn_app().await;
    let key = app.active_key().await;
    let jwt = app.activate_jwt(&key, "m1").await;
    app.server.clock.advance(30 * DAY + 6 * DAY);
    assert_eq!(refresh(&app, &jwt, "m1").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn refresh_rejects_a_token_expired_beyond_grace() {
    let app = spawn_app().await;
    let key = app.active_key().await;
    let jwt = app.activate_jwt(&key, "m1").await;
    app.server.clock.advance(30 * DAY + 7 * DAY + 1);
    assert_error(
        refresh(&app, &jwt, "m1").await,
        403,
        ErrorCode::TokenExpired,
    )
    .await;
}

#[tokio::test]
async fn refresh_rejects_a_forged_expired_token() {
    let app = spawn_app().await;
    let key = app.active_key().await;
    app.activate_jwt(&key, "m1").await;
    let forger =
        Signer::from_pem(keys::generate_rsa().unwrap().private_pem.as_bytes(), None).unwrap();
    // Expired yesterday, so inside grace: only the signature can refuse it.
    let forged = forger.sign(&claims_for(&app, &key, "m1", -DAY)).unwrap();
    assert_error(
        refresh(&app, &forged, "m1").await,
        403,
        ErrorCode::InvalidToken,
    )
    .await;
    // The same claims with the server's key would have been accepted.
    let genuine = app
        .server_signer()
        .sign(&claims_for(&app, &key, "m1", -DAY))
        .unwrap();
    assert_eq!(refresh(&app, &genuine, "m1").await.status(), StatusCode::OK);
}

// Bug 2: check-then-insert let concurrent activations overshoot the seat limit.

#[tokio::test]
async fn concurrent_activations_never_overshoot_the_seat_limit() {
    let app = spawn_app().await;
    let key = app.active_key().await;
    let machines: Vec<String> = (0..40).map(|i| format!("machine-{i}")).collect();
    let attempts = machines.iter().map(|m| app.activate(&key, m));
    let statuses: Vec<StatusCode> = join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.status())
        .collect();
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let conflict = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((ok, conflict), (2, 38), "{statuses:?}");

    let seats: Vec<Value> = app
        .admin_get("/admin/activations?limit=1000")
        .await
        .json()
        .await
        .unwrap();
    let active = seats
        .iter()
        .filter(|s| s["deactivated_at"].is_null())
        .count();
    assert_eq!(active, 2);
    let keys: Vec<Value> = app.admin_get("/admin/keys").await.json().await.unwrap();
    assert_eq!(keys[0]["active_seat_count"], 2);
}

#[tokio::test]
async fn a_deactivated_machine_cannot_come_back_past_the_seat_limit() {
    let app = spawn_app().await;
    let key = app.active_key().await;
    let jwt = app.activate_jwt(&key, "m1").await;
    app.post("/v1/deactivate", json!({"jwt": jwt, "machine_id": "m1"}))
        .await;
    app.activate_jwt(&key, "m2").await;
    app.activate_jwt(&key, "m3").await;
    assert_error(
        app.activate(&key, "m1").await,
        409,
        ErrorCode::SeatLimitReached,
    )
    .await;
}

// Bug 3: an empty ADMIN_TOKEN made the admin secret the empty string.

#[tokio::test]
async fn an_empty_admin_token_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let args = serve_args(dir.path(), Some(""));
    let err = tessera_server::bootstrap::prepare(&args)
        .err()
        .expect("must refuse");
    assert!(
        err.to_string().contains("ADMIN_TOKEN is set but empty"),
        "{err}"
    );
}

#[tokio::test]
async fn an_empty_bearer_never_matches() {
    let app = spawn_app().await;
    let resp = app
        .http
        .get(app.url("/admin/keys"))
        .header("Authorization", "Bearer ")
        .send()
        .await
        .unwrap();
    assert_error(resp, 401, ErrorCode::Unauthorized).await;
}

#[tokio::test]
async fn first_start_generates_keys_and_token_once_with_private_modes() {
    let dir = tempfile::tempdir().unwrap();
    let args = serve_args(dir.path(), None);
    let first = tessera_server::bootstrap::prepare(&args).unwrap();
    let second = tessera_server::bootstrap::prepare(&args).unwrap();
    assert_eq!(first.admin_token.expose(), second.admin_token.expose());
    assert!(first.admin_token.expose().len() >= 32);
    assert_eq!(
        first.signer.public_pem().unwrap(),
        second.signer.public_pem().unwrap()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in ["admin-token", "keys/private.pem"] {
            let mode = std::fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
    }
    assert!(!format!("{:?}", first.admin_token).contains(first.admin_token.expose()));
}

fn serve_args(data_dir: &std::path::Path, admin_token: Option<&str>) -> tessera_server::ServeArgs {
    use clap::Parser;
    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: tessera_server::ServeArgs,
    }
    let mut argv = vec![
        "x".to_string(),
        "--data-dir".into(),
        data_dir.display().to_string(),
    ];
    if let Some(t) = admin_token {
        argv.push(format!("--admin-token={t}"));
    }
    Wrapper::parse_from(argv).args
}

// Bug 4: refresh must match the machine and re-check key and seat.

#[tokio::test]
async fn refresh_for_another_machine_is_refused() {
    let app = spawn_app().await;
    let key = app.active_key().await;
    let jwt = app.activate_jwt(&key, "m1").await;
    app.activate_jwt(&key, "m2").await;
    assert_error(
        refresh(&app, &jwt, "m2").await,
        403,
        ErrorCode::MachineMismatch,
    )
    .await;
}

#[tokio::test]
async fn a_revoked_key_cannot_refresh() {
    let app = spawn_app().await;
    let key = app
        .create_key(json!({"product": "peregrine", "tier": "paid"}))
        .await;
    let jwt = app.activate_jwt(&key.key_display, "m1").await;
    app.http
        .delete(app.url(&format!("/admin/keys/{}", key.id)))
        .bearer_auth(&app.server.admin_token)
        .send()
        .await
        .unwrap();
    assert_error(
        refresh(&app, &jwt, "m1").await,
        403,
        ErrorCode::LicenseRevoked,
    )
    .await;
}

#[tokio::test]
async fn an_expired_key_cannot_refresh() {
    let app = spawn_app().await;
    let until = time::OffsetDateTime::from_unix_timestamp(app.server.clock.unix() + DAY).unwrap();
    let key = app
        .create_key(json!({"product": "peregrine", "tier": "paid",
            "valid_until": tessera_core::timefmt::format(until)}))
        .await;
    let jwt = app.activate_jwt(&key.key_display, "m1").await;
    app.server.clock.advance(2 * DAY);
    assert_error(
        refresh(&app, &jwt, "m1").await,
        403,
        ErrorCode::LicenseExpired,
    )
    .await;
}

#[tokio::test]
async fn a_deactivated_machine_cannot_refresh() {
    let app = spawn_app().await;
    let key = app.active_key().await;
    let jwt = app.activate_jwt(&key, "m1").await;
    app.post("/v1/deactivate", json!({"jwt": jwt, "machine_id": "m1"}))
        .await;
    assert_error(
        refresh(&app, &jwt, "m1").await,
        403,
        ErrorCode::MachineNotActivated,
    )
    .await;
}

// Bug 5: only RS256 with the server's key.

#[tokio::test]
async fn alg_none_hs256_and_foreign_keys_are_403_everywhere() {
    let app = spawn_app().await;
    let key = app.active_key().await;
    app.activate_jwt(&key, "m1").await;
    let claims = claims_for(&app, &key, "m1", DAY);
    let payload = B64.encode(serde_json::to_vec(&claims).unwrap());

    let none = format!("{}.{payload}.", B64.encode(r#"{"alg":"none","typ":"JWT"}"#));
    let hs256 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(app.server.public_pem.as_bytes()),
    )
    .unwrap();
    let foreign = Signer::from_pem(keys::generate_rsa().unwrap().private_pem.as_bytes(), None)
        .unwrap()
        .sign(&claims)
        .unwrap();
    let eddsa = Signer::from_pem(
        keys::generate_ed25519().unwrap().private_pem.as_bytes(),
        None,
    )
    .unwrap()
    .sign(&claims)
    .unwrap();

    for token in [none, hs256, foreign, eddsa] {
        assert_error(
            refresh(&app, &token, "m1").await,
            403,
            ErrorCode::InvalidToken,
        )
        .await;
        let deact = app
            .post("/v1/deactivate", json!({"jwt": token, "machine_id": "m1"}))
            .await;
        assert_error(deact, 403, ErrorCode::InvalidToken).await;
        let usage = app
            .post_bearer(
                "/v1/usage",
                &token,
                json!({"event_type": "e", "product": "peregrine"}),
            )
            .await;
        assert_error(usage, 403, ErrorCode::InvalidToken).await;
    }
}
