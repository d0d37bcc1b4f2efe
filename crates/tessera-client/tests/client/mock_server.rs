//! Failures of the server, one by one, against a mock: timeout, connection refused, 5xx, 403,
//! a token signed by another key. Plus what the client sends and when it refreshes.

use std::time::{Duration, Instant};

use serde_json::json;
use tessera_client::{ClientError, InvalidReason, LicenseFile, RefreshOutcome};
use tessera_core::expiry::days;
use tessera_core::{ErrorCode, JwtError};
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

fn issued(jwt: &str) -> serde_json::Value {
    json!({"jwt": jwt, "tier": "paid", "valid_until": null, "notice": null})
}

async fn answering(route: &str, response: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(route))
        .respond_with(response)
        .mount(&server)
        .await;
    server
}

fn error_body(code: &str, message: &str) -> serde_json::Value {
    json!({"error": code, "message": message, "detail": message})
}

/// A license issued at `T0` (expires `T0 + 30d`), and a client at `now`, against `url`.
fn licensed_client(url: &str, now: i64) -> (Dir, tessera_client::LicenseClient) {
    let d = dir();
    write_seed_file(&d.path, &token_at(T0), None);
    let (client, _) = client_with(config(url, &d.path), now);
    (d, client)
}

const IN_GRACE: i64 = T0 + days(31);

#[tokio::test]
async fn activate_sends_key_machine_product_version_and_stores_the_verified_token() {
    let server = MockServer::start().await;
    let jwt = token_at(T0);
    Mock::given(method("POST"))
        .and(path("/v1/activate"))
        .and(body_partial_json(json!({
            "key": KEY, "machine_id": MACHINE, "product": PRODUCT,
            "app_version": "1.2.3", "platform": std::env::consts::OS,
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(issued(&jwt)))
        .expect(1)
        .mount(&server)
        .await;
    let d = dir();
    let (client, _) = client_with(config(&server.uri(), &d.path), T0);

    let status = client.activate(&format!("  {KEY}\n")).await.unwrap();
    assert_eq!(status.tier(), "paid");
    assert_eq!(status.expires_at, T0 + days(30));

    let stored = LicenseFile::read(&d.path).unwrap();
    assert_eq!(stored.jwt, jwt);
    assert_eq!(stored.machine_id.as_deref(), Some(MACHINE));
    assert_eq!(stored.key_display.as_deref(), Some(KEY));
    // Derived from the signed exp + 7 days, for the seed's client; never read back.
    assert_eq!(
        stored.grace_until.as_deref(),
        Some("2027-02-21T08:00:00.000000+00:00")
    );
    let json: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&d.path).unwrap()).unwrap();
    for field in SEED_FIELDS {
        assert!(json.contains_key(field), "missing {field}");
    }
    assert_eq!(client.effective_tier().tier, "paid");
}

#[tokio::test]
async fn activate_times_out_when_the_server_is_too_slow() {
    let server = answering(
        "/v1/activate",
        ResponseTemplate::new(200)
            .set_body_json(issued(&token_at(T0)))
            .set_delay(Duration::from_secs(3)),
    )
    .await;
    let d = dir();
    let (client, _) = client_with(config(&server.uri(), &d.path), T0);
    let started = Instant::now();
    let err = client.activate(KEY).await.unwrap_err();
    assert!(
        matches!(err, ClientError::Timeout(t) if t == TIMEOUT),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(!d.path.exists());
}

#[tokio::test]
async fn activate_reports_connection_refused_as_a_network_error() {
    let d = dir();
    let (client, _) = client_with(config(&refused_url(), &d.path), T0);
    let err = client.activate(KEY).await.unwrap_err();
    assert!(matches!(err, ClientError::Network(_)), "{err:?}");
    assert!(!d.path.exists());
}

#[tokio::test]
async fn activate_decodes_the_servers_403_error_body() {
    let server = answering(
        "/v1/activate",
        ResponseTemplate::new(403).set_body_json(error_body("license_revoked", "Key revoked")),
    )
    .await;
    let d = dir();
    let (client, _) = client_with(config(&server.uri(), &d.path), T0);
    let err = client.activate(KEY).await.unwrap_err();
    match &err {
        ClientError::Http { status, body } => {
            assert_eq!(*status, 403);
            let body = body.as_ref().unwrap();
            assert_eq!(body.error, ErrorCode::LicenseRevoked);
            assert_eq!(body.message, "Key revoked");
        }
        other => panic!("expected Http, got {other:?}"),
    }
    assert_eq!(err.code(), Some(ErrorCode::LicenseRevoked));
    assert!(!err.is_transient());
    assert!(!d.path.exists());
}

#[tokio::test]
async fn activate_keeps_the_status_when_a_5xx_has_no_json_body() {
    let server = answering(
        "/v1/activate",
        ResponseTemplate::new(502).set_body_string("<html>bad gateway</html>"),
    )
    .await;
    let d = dir();
    let (client, _) = client_with(config(&server.uri(), &d.path), T0);
    let err = client.activate(KEY).await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Http {
                status: 502,
                body: None
            }
        ),
        "{err:?}"
    );
    assert!(err.is_transient());
}

#[tokio::test]
async fn activate_rejects_a_token_signed_by_another_key_and_writes_nothing() {
    let forged = stranger().sign(&claims(T0, T0 + days(30)));
    let server = answering(
        "/v1/activate",
        ResponseTemplate::new(200).set_body_json(issued(&forged)),
    )
    .await;
    let d = dir();
    let (client, _) = client_with(config(&server.uri(), &d.path), T0);
    let err = client.activate(KEY).await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::InvalidToken(InvalidReason::BadToken(JwtError::BadSignature))
        ),
        "{err:?}"
    );
    assert!(!d.path.exists());
}

#[tokio::test]
async fn activate_rejects_a_token_issued_to_another_machine() {
    let mut c = claims(T0, T0 + days(30));
    c.machine = "other".into();
    let server = answering(
        "/v1/activate",
        ResponseTemplate::new(200).set_body_json(issued(&vendor().sign(&c))),
    )
    .await;
    let d = dir();
    let (client, _) = client_with(config(&server.uri(), &d.path), T0);
    let err = client.activate(KEY).await.unwrap_err();
    assert!(
        matches!(err, ClientError::InvalidToken(InvalidReason::OtherMachine)),
        "{err:?}"
    );
    assert!(!d.path.exists());
}

#[tokio::test]
async fn activate_rejects_a_malformed_success_answer() {
    let server = answering(
        "/v1/activate",
        ResponseTemplate::new(200).set_body_json(json!({"hello": "world"})),
    )
    .await;
    let d = dir();
    let (client, _) = client_with(config(&server.uri(), &d.path), T0);
    let err = client.activate(KEY).await.unwrap_err();
    assert!(matches!(err, ClientError::InvalidResponse(_)), "{err:?}");
    assert!(!d.path.exists());
}

#[tokio::test]
async fn refresh_keeps_working_in_grace_when_server_is_down() {
    let (d, client) = licensed_client(&refused_url(), IN_GRACE);
    let before = std::fs::read(&d.path).unwrap();
    match client.refresh_if_needed().await {
        RefreshOutcome::Unreachable { status, error } => {
            assert!(status.in_grace);
            assert!(matches!(error, ClientError::Network(_)), "{error:?}");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    let tier = client.effective_tier();
    assert_eq!(tier.tier, "paid");
    assert!(tier.in_grace);
    assert_eq!(std::fs::read(&d.path).unwrap(), before);
}

#[tokio::test]
async fn refresh_gives_up_within_the_timeout_and_keeps_the_license() {
    let server = answering(
        "/v1/refresh",
        ResponseTemplate::new(200)
            .set_body_json(issued(&token_at(IN_GRACE)))
            .set_delay(Duration::from_secs(3)),
    )
    .await;
    let (_d, client) = licensed_client(&server.uri(), IN_GRACE);
    let started = Instant::now();
    let outcome = client.refresh_if_needed().await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(
            &outcome,
            RefreshOutcome::Unreachable {
                error: ClientError::Timeout(_),
                ..
            }
        ),
        "{outcome:?}"
    );
    assert_eq!(client.effective_tier().tier, "paid");
}

#[tokio::test]
async fn refresh_treats_5xx_as_unreachable_and_keeps_the_license() {
    let server = answering(
        "/v1/refresh",
        ResponseTemplate::new(503).set_body_json(error_body("service_unavailable", "down")),
    )
    .await;
    let (d, client) = licensed_client(&server.uri(), IN_GRACE);
    let before = std::fs::read(&d.path).unwrap();
    let outcome = client.refresh_if_needed().await;
    match &outcome {
        RefreshOutcome::Unreachable { status, error } => {
            assert!(status.in_grace);
            assert_eq!(error.code(), Some(ErrorCode::ServiceUnavailable));
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    assert_eq!(std::fs::read(&d.path).unwrap(), before);
}

#[tokio::test]
async fn refresh_403_is_a_rejection_with_the_servers_reason() {
    let server = answering(
        "/v1/refresh",
        ResponseTemplate::new(403).set_body_json(error_body(
            "machine_not_activated",
            "Machine was deactivated",
        )),
    )
    .await;
    let (d, client) = licensed_client(&server.uri(), IN_GRACE);
    let before = std::fs::read(&d.path).unwrap();
    match client.refresh_if_needed().await {
        RefreshOutcome::Rejected { status, error } => {
            assert!(status.in_grace);
            assert_eq!(error.code(), Some(ErrorCode::MachineNotActivated));
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert_eq!(std::fs::read(&d.path).unwrap(), before);
}

#[tokio::test]
async fn refresh_rejects_a_token_signed_by_another_key_and_keeps_the_old_one() {
    let forged = stranger().sign(&claims(IN_GRACE, IN_GRACE + days(365)));
    let server = answering(
        "/v1/refresh",
        ResponseTemplate::new(200).set_body_json(issued(&forged)),
    )
    .await;
    let (d, client) = licensed_client(&server.uri(), IN_GRACE);
    let before = std::fs::read(&d.path).unwrap();
    match client.refresh_if_needed().await {
        RefreshOutcome::Rejected { error, .. } => {
            assert!(matches!(error, ClientError::InvalidToken(_)), "{error:?}");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert_eq!(std::fs::read(&d.path).unwrap(), before);
}

#[tokio::test]
async fn refresh_only_calls_the_server_inside_the_refresh_window() {
    let server = MockServer::start().await;
    let now = T0 + days(26); // 4 days before exp: inside the 5-day window
    let fresh = token_at(now);
    Mock::given(method("POST"))
        .and(path("/v1/refresh"))
        .and(body_partial_json(
            json!({"jwt": token_at(T0), "machine_id": MACHINE}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(issued(&fresh)))
        .expect(1)
        .mount(&server)
        .await;

    // 6 days before exp: no call.
    let (d, early) = licensed_client(&server.uri(), T0 + days(24));
    assert!(matches!(
        early.refresh_if_needed().await,
        RefreshOutcome::NotNeeded(_)
    ));

    let (late, _) = client_with(config(&server.uri(), &d.path), now);
    match late.refresh_if_needed().await {
        RefreshOutcome::Refreshed(status) => {
            assert_eq!(status.expires_at, now + days(30));
            assert!(!status.in_grace);
        }
        other => panic!("expected Refreshed, got {other:?}"),
    }
    assert_eq!(LicenseFile::read(&d.path).unwrap().jwt, fresh);
    server.verify().await;
}

#[tokio::test]
async fn refresh_does_not_call_the_server_for_an_unusable_license() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let (_d, client) = licensed_client(&server.uri(), T0 + days(38));
    match client.refresh_if_needed().await {
        RefreshOutcome::NoValidLicense(reason) => assert_eq!(reason.code(), "expired"),
        other => panic!("expected NoValidLicense, got {other:?}"),
    }
    let d = dir();
    let (client, _) = client_with(config(&server.uri(), &d.path), T0);
    assert!(matches!(
        client.refresh_if_needed().await,
        RefreshOutcome::NoValidLicense(r) if r.is_missing()
    ));
    server.verify().await;
}

#[tokio::test]
async fn deactivate_removes_the_file_even_when_the_server_is_down() {
    let (d, client) = licensed_client(&refused_url(), T0 + 60);
    let outcome = client.deactivate().await.unwrap();
    assert!(outcome.had_license);
    assert!(!outcome.server_confirmed);
    assert!(matches!(
        outcome.server_error,
        Some(ClientError::Network(_))
    ));
    assert!(!d.path.exists());
    assert_eq!(client.effective_tier().tier, "free");
}

#[tokio::test]
async fn deactivate_sends_the_token_and_machine() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/deactivate"))
        .and(body_partial_json(
            json!({"jwt": token_at(T0), "machine_id": MACHINE}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"status": "deactivated"})))
        .expect(1)
        .mount(&server)
        .await;
    let (d, client) = licensed_client(&server.uri(), T0 + 60);
    let outcome = client.deactivate().await.unwrap();
    assert!(outcome.server_confirmed);
    assert!(outcome.server_error.is_none());
    assert!(!d.path.exists());
    server.verify().await;
}

#[tokio::test]
async fn clock_that_once_ran_ahead_is_healed_by_a_server_refresh() {
    let now = T0 + days(2);
    let fresh = token_at(now);
    let server = answering(
        "/v1/refresh",
        ResponseTemplate::new(200).set_body_json(issued(&fresh)),
    )
    .await;
    let (d, client) = licensed_client(&server.uri(), T0 + days(365));
    // The clock ran a year ahead once: the high-water mark now says the license lapsed.
    assert_eq!(client.verify_local().unwrap_err().code(), "expired");

    // Back on the right time, only the server (the time authority) can lift that.
    let (fixed, _) = client_with(config(&server.uri(), &d.path), now);
    assert!(matches!(
        fixed.verify_local(),
        Err(InvalidReason::Expired {
            clock_behind: true,
            ..
        })
    ));
    match fixed.refresh_if_needed().await {
        RefreshOutcome::Refreshed(status) => assert_eq!(status.expires_at, now + days(30)),
        other => panic!("expected Refreshed, got {other:?}"),
    }
    assert_eq!(fixed.effective_tier().tier, "paid");
    let (restarted, _) = client_with(config(&server.uri(), &d.path), now + 60);
    assert!(restarted.verify_local().is_ok());
}

#[tokio::test]
async fn clock_turned_back_cannot_refresh_a_lapsed_license() {
    let server = answering(
        "/v1/refresh",
        ResponseTemplate::new(403).set_body_json(error_body("token_expired", "Token expired")),
    )
    .await;
    let (d, client) = licensed_client(&server.uri(), T0 + days(40));
    assert_eq!(client.verify_local().unwrap_err().code(), "expired");
    let (turned_back, _) = client_with(config(&server.uri(), &d.path), T0 + days(10));
    match turned_back.refresh_if_needed().await {
        RefreshOutcome::NoValidLicense(reason) => assert_eq!(reason.code(), "expired"),
        other => panic!("expected NoValidLicense, got {other:?}"),
    }
    assert_eq!(turned_back.effective_tier().tier, "free");
}
