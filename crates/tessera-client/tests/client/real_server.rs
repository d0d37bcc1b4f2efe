//! Against the real server on a real socket: activate → status → refresh → deactivate frees
//! the seat; revocation; reports reach the server.

use std::sync::Arc;

use serde_json::{Value, json};
use tessera_client::{ClientConfig, ClientError, LicenseClient, RefreshOutcome};
use tessera_core::ErrorCode;
use tessera_core::clock::Clock;
use tessera_core::expiry::days;
use tessera_core::wire::{ActivationRecord, KeyResponse};
use tessera_server::test_support::TestServer;

use crate::helpers::{Dir, dir, eventually, init_logs};

struct World {
    server: TestServer,
    http: reqwest::Client,
}

impl World {
    async fn new() -> Self {
        init_logs();
        Self {
            server: TestServer::spawn().await.unwrap(),
            http: reqwest::Client::new(),
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

    async fn create_key(&self, seats: i64) -> KeyResponse {
        let body = json!({"product": "peregrine", "tier": "paid", "seats": seats});
        serde_json::from_value(
            self.admin(reqwest::Method::POST, "/admin/keys", Some(body))
                .await,
        )
        .unwrap()
    }

    async fn activations(&self) -> Vec<ActivationRecord> {
        serde_json::from_value(
            self.admin(reqwest::Method::GET, "/admin/activations", None)
                .await,
        )
        .unwrap()
    }

    /// A client for `machine`, on the server's clock, with its own license file.
    fn client(&self, machine: &str) -> (Dir, LicenseClient) {
        let d = dir();
        let cfg = ClientConfig::new(
            &self.server.base_url,
            "peregrine",
            self.server.public_pem.as_bytes().to_vec(),
            &d.path,
        )
        .with_machine_id(machine)
        .with_app_version("2.0.0");
        let clock: Arc<dyn Clock> = self.server.clock.clone();
        (d, LicenseClient::with_clock(cfg, clock).unwrap())
    }
}

#[tokio::test]
async fn activate_status_refresh_deactivate_frees_the_seat() {
    let w = World::new().await;
    let key = w.create_key(2).await;
    let (a_dir, a) = w.client("machine-a");
    let (_b_dir, b) = w.client("machine-b");
    let (_c_dir, c) = w.client("machine-c");

    // Activate: the token is verified with the server's public key and stored.
    let status = a.activate(&key.key_display).await.unwrap();
    assert_eq!(status.tier(), "paid");
    assert_eq!(status.claims.machine, "machine-a");
    assert!(a_dir.path.exists());

    // Status, offline.
    let local = a.verify_local().unwrap();
    assert_eq!(local.claims.sub, key.key_display);
    assert!(!local.in_grace);
    assert_eq!(a.effective_tier().tier, "paid");

    // Both seats taken: a third machine is refused with the server's reason.
    b.activate(&key.key_display).await.unwrap();
    let err = c.activate(&key.key_display).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::SeatLimitReached), "{err:?}");
    assert!(matches!(err, ClientError::Http { status: 409, .. }));

    // Refresh: not needed a day in; done 26 days in (within 5 days of the 30-day expiry).
    w.server.clock.advance(days(1));
    assert!(matches!(
        a.refresh_if_needed().await,
        RefreshOutcome::NotNeeded(_)
    ));
    w.server.clock.advance(days(25));
    let refreshed = match a.refresh_if_needed().await {
        RefreshOutcome::Refreshed(s) => s,
        other => panic!("expected Refreshed, got {other:?}"),
    };
    assert!(refreshed.expires_at >= status.expires_at + days(26));

    // Deactivate: the server confirms, the file is gone, the seat is free again.
    let outcome = a.deactivate().await.unwrap();
    assert!(outcome.server_confirmed, "{:?}", outcome.server_error);
    assert!(!a_dir.path.exists());
    assert_eq!(a.effective_tier().tier, "free");
    let seats = w.activations().await;
    let seat_a = seats.iter().find(|s| s.machine_id == "machine-a").unwrap();
    assert!(seat_a.deactivated_at.is_some());
    let status_c = c.activate(&key.key_display).await.unwrap();
    assert_eq!(status_c.claims.machine, "machine-c");

    w.server.stop().await.unwrap();
}

#[tokio::test]
async fn refresh_is_rejected_after_the_key_is_revoked_but_the_token_lasts_until_it_lapses() {
    let w = World::new().await;
    let key = w.create_key(1).await;
    let (_d, a) = w.client("machine-a");
    a.activate(&key.key_display).await.unwrap();
    w.admin(
        reqwest::Method::DELETE,
        &format!("/admin/keys/{}", key.id),
        None,
    )
    .await;

    w.server.clock.advance(days(27));
    match a.refresh_if_needed().await {
        RefreshOutcome::Rejected { status, error } => {
            assert_eq!(error.code(), Some(ErrorCode::LicenseRevoked), "{error:?}");
            assert!(!status.in_grace);
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert_eq!(a.effective_tier().tier, "paid");
    w.server.clock.advance(days(30 - 27 + 7));
    assert_eq!(a.effective_tier().tier, "free");
    w.server.stop().await.unwrap();
}

#[tokio::test]
async fn refresh_keeps_working_in_grace_when_the_real_server_is_stopped() {
    let w = World::new().await;
    let key = w.create_key(1).await;
    let (_d, a) = w.client("machine-a");
    a.activate(&key.key_display).await.unwrap();
    let clock = w.server.clock.clone();
    w.server.stop().await.unwrap();

    clock.advance(days(33));
    match a.refresh_if_needed().await {
        RefreshOutcome::Unreachable { status, error } => {
            assert!(status.in_grace);
            assert!(error.is_transient(), "{error:?}");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    let tier = a.effective_tier();
    assert_eq!((tier.tier.as_str(), tier.in_grace), ("paid", true));
}

#[tokio::test]
async fn usage_and_flag_reports_reach_the_server() {
    let w = World::new().await;
    let key = w.create_key(1).await;
    let (_d, a) = w.client("machine-a");
    a.activate(&key.key_display).await.unwrap();

    assert!(a.report_usage("export_pdf", Some(json!({"pages": 3}))));
    assert!(a.report_flag("clock_tamper", None));
    assert!(
        eventually(|| a.report_stats().sent == 2).await,
        "{:?}",
        a.report_stats()
    );

    let usage = w.admin(reqwest::Method::GET, "/admin/usage", None).await;
    let events = usage.as_array().unwrap();
    assert_eq!(events.len(), 1, "{usage}");
    assert_eq!(events[0]["event_type"], "export_pdf");
    assert_eq!(events[0]["machine_id"], "machine-a");
    assert_eq!(events[0]["metadata"], json!({"pages": 3}));
    let flags = w.admin(reqwest::Method::GET, "/admin/flags", None).await;
    assert_eq!(flags.as_array().unwrap()[0]["flag_type"], "clock_tamper");
    assert_eq!(a.dropped_reports(), 0);
    w.server.stop().await.unwrap();
}
