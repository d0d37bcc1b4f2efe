//! The manager: tier changes on refresh (logged, quotas active at once), recovery, the
//! background refresh and its cancellation, quota errors, and activation-key mode.

use std::time::Duration;

use tessera_client::{
    GraceState, LicenseManager, LicenseSource, QuotaExceeded, RefreshSchedule, TierSpec, TierTable,
};
use tessera_core::expiry::days;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::apikey_helpers::*;
use crate::helpers::{self, T0, eventually};

/// A backend answering `first` once, then `then` for ever.
async fn backend_then(first: ResponseTemplate, then: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(first)
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(then)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn a_tier_change_on_refresh_logs_the_upgrade_and_new_quotas_apply_at_once() {
    let server = backend_then(ok_token(&jwt("community", T0)), ok_token(&jwt("pro", T0))).await;
    let dir = cache_dir();
    let (logs, _guard) = capture_logs();
    let (manager, _) = start(api_config(&server.uri(), &dir.path), T0).await;
    assert_eq!(manager.current().tier(), "community");
    let err = manager.check_quota("max_clusters", 3).unwrap_err();
    assert_eq!(err.upgrade_to.as_deref(), Some("Pro"));
    assert!(!manager.has_feature("materialized_views"));
    assert!(!logs.text().contains("License upgraded"));

    let refreshed = manager.refresh().await;
    assert_eq!(refreshed.tier(), "pro");
    logs.assert_has("INFO", "License upgraded from Community to Pro");
    assert_eq!(logs.count("License upgraded"), 1);
    // The very next check sees the new quotas.
    assert!(manager.check_quota("max_clusters", 3).is_ok());
    assert!(manager.check_quota("max_clusters", 5).is_ok());
    assert_eq!(manager.quota("max_result_rows"), Some(1_000_000));
    assert!(manager.has_feature("materialized_views"));
    assert_eq!(manager.current().source(), LicenseSource::ApiKey);
    // The cache holds the new token.
    let cached = std::fs::read_to_string(dir.cache_file()).unwrap();
    assert_eq!(cached, jwt("pro", T0));
}

#[tokio::test]
async fn a_lower_tier_on_refresh_is_logged_as_a_downgrade() {
    let server = backend_then(ok_token(&jwt("enterprise", T0)), ok_token(&jwt("pro", T0))).await;
    let dir = cache_dir();
    let (logs, _guard) = capture_logs();
    let (manager, _) = start(api_config(&server.uri(), &dir.path), T0).await;
    assert_eq!(manager.quota("max_clusters"), None);
    manager.refresh().await;
    logs.assert_has("INFO", "License downgraded from Enterprise to Pro");
    assert_eq!(manager.quota("max_clusters"), Some(5));
    // Same tier again: nothing logged.
    manager.refresh().await;
    assert_eq!(logs.count("License downgraded"), 1);
    assert_eq!(logs.count("License upgraded"), 0);
}

#[tokio::test]
async fn recovering_after_a_fallback_logs_license_restored() {
    let server = backend_then(ResponseTemplate::new(503), ok_token(&jwt("pro", T0))).await;
    let dir = cache_dir();
    dir.seed(&jwt("pro", T0 - 3600));
    let (logs, _guard) = capture_logs();
    let (manager, _) = start(api_config(&server.uri(), &dir.path), T0).await;
    assert_eq!(manager.current().source(), LicenseSource::Cache);
    assert!(manager.current().is_degraded());

    manager.refresh().await;
    assert_eq!(manager.current().source(), LicenseSource::ApiKey);
    assert!(!manager.current().is_degraded());
    logs.assert_has("INFO", "License restored to Pro");
    assert_eq!(logs.count("License upgraded"), 0);
}

#[tokio::test]
async fn recovering_from_community_logs_both_the_upgrade_and_the_restoration() {
    let server = backend_then(ResponseTemplate::new(500), ok_token(&jwt("pro", T0))).await;
    let dir = cache_dir();
    let (logs, _guard) = capture_logs();
    let (manager, _) = start(api_config(&server.uri(), &dir.path), T0).await;
    assert_eq!(manager.current().source(), LicenseSource::Community);
    manager.refresh().await;
    logs.assert_has("INFO", "License upgraded from Community to Pro");
    logs.assert_has("INFO", "License restored to Pro");
}

#[tokio::test]
async fn the_background_refresh_applies_a_new_tier_and_stops_when_its_handle_is_dropped() {
    let server = backend_then(ok_token(&jwt("community", T0)), ok_token(&jwt("pro", T0))).await;
    let dir = cache_dir();
    let cfg = api_config(&server.uri(), &dir.path).with_refresh(RefreshSchedule {
        interval: Duration::from_millis(100),
        jitter: Duration::from_millis(20),
        retry_interval: Duration::from_millis(100),
    });
    let (logs, _guard) = capture_logs();
    let (manager, _) = start(cfg, T0).await;
    assert_eq!(manager.current().tier(), "community");

    let handle = manager.spawn_refresh();
    assert!(eventually(|| manager.current().tier() == "pro").await);
    logs.assert_has("INFO", "License upgraded from Community to Pro");
    assert!(eventually(|| logs.count("license refreshed") >= 2).await);

    drop(handle);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let fetches = server.received_requests().await.unwrap().len();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(server.received_requests().await.unwrap().len(), fetches);
}

#[tokio::test]
async fn the_background_refresh_ends_when_the_manager_is_dropped() {
    let server = backend_then(ok_token(&jwt("pro", T0)), ok_token(&jwt("pro", T0))).await;
    let dir = cache_dir();
    let cfg = api_config(&server.uri(), &dir.path).with_refresh(RefreshSchedule {
        interval: Duration::from_millis(50),
        jitter: Duration::ZERO,
        retry_interval: Duration::from_millis(50),
    });
    let (manager, _) = start(cfg, T0).await;
    let handle = manager.spawn_refresh();
    drop(manager);
    assert!(eventually(|| handle.is_finished()).await);
}

#[tokio::test]
async fn the_next_refresh_comes_sooner_after_a_fallback_and_at_expiry() {
    let server = backend_then(ResponseTemplate::new(500), ok_token(&jwt("pro", T0))).await;
    let dir = cache_dir();
    let cfg = api_config(&server.uri(), &dir.path).with_refresh(RefreshSchedule {
        interval: Duration::from_secs(24 * 3600),
        jitter: Duration::ZERO,
        retry_interval: Duration::from_secs(600),
    });
    let (manager, clock) = start(cfg, T0).await;
    assert_eq!(manager.next_delay(), Duration::from_secs(600));
    manager.refresh().await;
    // Healthy: the interval, unless the token expires first (one day after T0).
    clock.set(T0 + 3600);
    assert_eq!(manager.next_delay(), Duration::from_secs(23 * 3600));
}

#[tokio::test]
async fn quota_errors_name_the_quota_its_limit_the_tier_and_the_upgrade() {
    let dir = cache_dir();
    let cfg = api_config(&helpers::refused_url(), &dir.path).with_static_jwt(jwt("pro", T0));
    let (manager, _) = start(cfg, T0).await;
    assert!(manager.check_quota("max_result_rows", 1_000_000).is_ok());
    let err = manager
        .check_quota("max_result_rows", 1_000_001)
        .unwrap_err();
    assert_eq!(
        err,
        QuotaExceeded {
            quota: "max_result_rows".into(),
            limit: 1_000_000,
            requested: 1_000_001,
            tier: "Pro".into(),
            upgrade_to: Some("Enterprise".into()),
        }
    );
    assert!(err.to_string().contains("upgrade to Enterprise"), "{err}");
    // A quota the license does not list is unlimited.
    assert_eq!(manager.quota("max_widgets"), None);
    assert!(manager.check_quota("max_widgets", u64::MAX).is_ok());
}

#[tokio::test]
async fn unknown_tiers_count_as_community_and_unknown_features_are_ignored() {
    let mut claims = tier_claims("platinum", T0, T0 + days(1));
    claims.features = vec!["federation".into(), "time_travel".into()];
    let dir = cache_dir();
    let cfg = api_config(&helpers::refused_url(), &dir.path).with_static_jwt(sign(&claims));
    let (logs, _guard) = capture_logs();
    let (manager, _) = start(cfg, T0).await;
    let current = manager.current();
    assert_eq!(current.tier(), "community");
    assert_eq!(current.source(), LicenseSource::Static);
    assert!(manager.has_feature("federation"));
    assert!(!manager.has_feature("time_travel"));
    logs.assert_has("WARN", "`platinum` is unknown");
}

#[tokio::test]
async fn a_custom_tier_table_drives_community_and_upgrades() {
    let table = TierTable::new(vec![
        TierSpec::new("free").quota("max_projects", 1),
        TierSpec::new("team")
            .quota("max_projects", 20)
            .feature("sso"),
    ])
    .unwrap();
    let dir = cache_dir();
    let mut cfg = api_config(&helpers::refused_url(), &dir.path).with_tiers(table);
    cfg.api_key = None;
    let (logs, _guard) = capture_logs();
    let (manager, _) = start(cfg, T0).await;
    let current = manager.current();
    assert_eq!(
        (current.tier(), current.source()),
        ("free", LicenseSource::Community)
    );
    assert!(!current.is_degraded());
    logs.assert_has("INFO", "No license configured — Community mode");
    let err = manager.check_quota("max_projects", 2).unwrap_err();
    assert_eq!(
        (err.tier.as_str(), err.upgrade_to.as_deref()),
        ("Free", Some("Team"))
    );
}

#[tokio::test]
async fn activation_mode_enforces_the_license_files_tier_with_the_table() {
    let table = TierTable::new(vec![
        TierSpec::new("free").quota("max_projects", 1),
        TierSpec::new("paid")
            .quota("max_projects", 10)
            .feature("export"),
        TierSpec::new("premium").feature("export"),
    ])
    .unwrap();
    let d = helpers::dir();
    helpers::write_seed_file(&d.path, &helpers::token_at(T0), None);
    let (client, clock) = helpers::offline_client(&d.path, T0 + 60);
    let manager =
        LicenseManager::start_activation(client, table.clone(), RefreshSchedule::default()).await;
    let current = manager.current();
    assert_eq!(current.source(), LicenseSource::Activation);
    assert_eq!(current.tier(), "paid");
    assert_eq!(manager.quota("max_projects"), Some(10));
    assert!(manager.has_feature("export"));
    assert_eq!(
        manager
            .check_quota("max_projects", 11)
            .unwrap_err()
            .upgrade_to
            .as_deref(),
        Some("Premium")
    );

    // 30 days on the token expires; the server is unreachable: grace (7 days), first half.
    clock.set(T0 + days(30) + 60);
    let current = manager.refresh().await;
    assert_eq!(current.grace(), GraceState::Early);
    assert!(current.is_degraded());
    clock.set(T0 + days(37));
    assert_eq!(manager.refresh().await.source(), LicenseSource::Community);

    // No license file at all: Community, not degraded.
    let empty = helpers::dir();
    let (client, _) = helpers::offline_client(&empty.path, T0);
    let manager = LicenseManager::start_activation(client, table, RefreshSchedule::default()).await;
    assert_eq!(manager.current().tier(), "free");
    assert!(!manager.current().is_degraded());
}
