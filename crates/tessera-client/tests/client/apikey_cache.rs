//! The disk cache and the static JWT: written 0600 in a 0700 directory, symlinks and oversized
//! files ignored, invalid caches deleted, grace in two halves, the static JWT first.

use tessera_client::apikey::{LicenseCache, MAX_CACHE_BYTES};
use tessera_client::{GraceState, LicenseSource};
use tessera_core::expiry::days;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer};

use crate::apikey_helpers::*;
use crate::helpers::{T0, refused_url};

/// Issued at T0, expires T0 + 1 day; grace runs to T0 + 15 days, late from T0 + 8 days.
const EXP: i64 = T0 + days(1);

/// A configuration whose backend is unreachable (so the chain goes on to the cache).
fn offline(dir: &CacheDir) -> tessera_client::ApiKeyConfig {
    api_config(&refused_url(), &dir.path)
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn a_successful_fetch_writes_the_raw_jwt_0600_in_a_0700_directory() {
    let token = jwt("pro", T0);
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ok_token(&token))
        .mount(&server)
        .await;
    let dir = cache_dir();
    assert!(!dir.path.exists());
    let (manager, _) = start(api_config(&server.uri(), &dir.path), T0).await;
    assert_eq!(manager.current().source(), LicenseSource::ApiKey);
    assert_eq!(std::fs::read_to_string(dir.cache_file()).unwrap(), token);
    #[cfg(unix)]
    {
        assert_eq!(mode(&dir.cache_file()), 0o600);
        assert_eq!(mode(&dir.path), 0o700);
        assert_eq!(mode(&dir.path.join("instance-id")), 0o600);
    }
    // No temporary files left behind.
    let names: Vec<String> = std::fs::read_dir(&dir.path)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[tokio::test]
async fn a_valid_cache_is_used_when_the_backend_is_unreachable() {
    let dir = cache_dir();
    dir.seed(&jwt("pro", T0));
    let (logs, _guard) = capture_logs();
    let (manager, _) = start(offline(&dir), T0 + 3600).await;
    let current = manager.current();
    assert_eq!(current.source(), LicenseSource::Cache);
    assert_eq!(current.grace(), GraceState::None);
    assert_eq!(current.quota("max_clusters"), Some(5));
    assert!(current.is_degraded());
    logs.assert_has("WARN", "Using cached license");
}

#[cfg(unix)]
#[tokio::test]
async fn a_symlinked_cache_is_ignored_and_left_alone() {
    let dir = cache_dir();
    std::fs::create_dir_all(&dir.path).unwrap();
    let target = dir.path.join("elsewhere.jwt");
    std::fs::write(&target, jwt("enterprise", T0)).unwrap();
    std::os::unix::fs::symlink(&target, dir.cache_file()).unwrap();
    let (logs, _guard) = capture_logs();
    let (manager, _) = start(offline(&dir), T0).await;
    assert_eq!(manager.current().source(), LicenseSource::Community);
    assert!(
        std::fs::symlink_metadata(dir.cache_file())
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(target.exists());
    logs.assert_has("WARN", "symbolic link");
}

#[tokio::test]
async fn an_oversized_cache_is_ignored_unread() {
    let dir = cache_dir();
    let mut big = jwt("enterprise", T0);
    big.push_str(&" ".repeat(MAX_CACHE_BYTES as usize));
    dir.seed(&big);
    let (manager, _) = start(offline(&dir), T0).await;
    assert_eq!(manager.current().source(), LicenseSource::Community);
    assert!(dir.cache_file().exists());
}

#[tokio::test]
async fn an_invalid_cache_is_deleted() {
    let mut wrong_issuer = tier_claims("pro", T0, EXP);
    wrong_issuer.iss = "someone-else".into();
    let forged = impostor()
        .signer
        .sign(&tier_claims("pro", T0, EXP))
        .unwrap();
    for bad in ["not a jwt".to_string(), sign(&wrong_issuer), forged] {
        let dir = cache_dir();
        dir.seed(&bad);
        let (logs, _guard) = capture_logs();
        let (manager, _) = start(offline(&dir), T0).await;
        assert_eq!(manager.current().source(), LicenseSource::Community);
        assert!(!dir.cache_file().exists(), "{bad}");
        assert!(logs.has("WARN", "deleting it") || logs.has("WARN", "not a JWT"));
    }
}

#[tokio::test]
async fn a_cache_in_the_first_half_of_grace_is_early_grace_with_a_warning() {
    let dir = cache_dir();
    dir.seed(&jwt("pro", T0));
    let (logs, _guard) = capture_logs();
    let (manager, _) = start(offline(&dir), EXP + days(7) - 1).await;
    let current = manager.current();
    assert_eq!(current.source(), LicenseSource::Cache);
    assert_eq!(current.grace(), GraceState::Early);
    assert_eq!(current.tier(), "pro");
    logs.assert_has("WARN", "in grace until");
}

#[tokio::test]
async fn a_cache_in_the_second_half_of_grace_is_late_grace_with_an_error() {
    let dir = cache_dir();
    dir.seed(&jwt("pro", T0));
    let (logs, _guard) = capture_logs();
    let (manager, _) = start(offline(&dir), EXP + days(7)).await;
    assert_eq!(manager.current().grace(), GraceState::Late);
    assert_eq!(manager.current().tier(), "pro");
    logs.assert_has("ERROR", "grace ends at");
}

#[tokio::test]
async fn a_cache_past_fourteen_days_of_grace_is_deleted_and_community_applies() {
    let dir = cache_dir();
    dir.seed(&jwt("pro", T0));
    let (logs, _guard) = capture_logs();
    let (manager, _) = start(offline(&dir), EXP + days(14)).await;
    assert_eq!(manager.current().source(), LicenseSource::Community);
    assert_eq!(manager.quota("max_clusters"), Some(2));
    assert!(!dir.cache_file().exists());
    logs.assert_has(
        "WARN",
        "Could not fetch license — falling back to Community mode",
    );
}

#[tokio::test]
async fn the_static_jwt_comes_first_and_no_fetch_is_made() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ok_token(&jwt("community", T0)))
        .expect(0)
        .mount(&server)
        .await;
    let dir = cache_dir();
    let cfg = api_config(&server.uri(), &dir.path).with_static_jwt(jwt("enterprise", T0));
    let (manager, _) = start(cfg, T0).await;
    assert_eq!(manager.current().source(), LicenseSource::Static);
    assert_eq!(manager.current().tier(), "enterprise");
    assert_eq!(manager.quota("max_clusters"), None);
    assert!(!dir.cache_file().exists());
}

#[tokio::test]
async fn the_static_jwt_is_accepted_in_grace() {
    let dir = cache_dir();
    let cfg = offline(&dir).with_static_jwt(jwt("pro", T0));
    let (manager, _) = start(cfg, EXP + days(10)).await;
    assert_eq!(manager.current().source(), LicenseSource::Static);
    assert_eq!(manager.current().grace(), GraceState::Late);
}

#[tokio::test]
async fn an_unusable_static_jwt_falls_through_to_the_api_key() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ok_token(&jwt("pro", EXP + days(20))))
        .expect(1)
        .mount(&server)
        .await;
    let dir = cache_dir();
    let cfg = api_config(&server.uri(), &dir.path).with_static_jwt(jwt("enterprise", T0));
    let (logs, _guard) = capture_logs();
    let (manager, _) = start(cfg, EXP + days(20)).await;
    assert_eq!(manager.current().source(), LicenseSource::ApiKey);
    assert_eq!(manager.current().tier(), "pro");
    logs.assert_has("ERROR", "Static license JWT is not usable");
}

#[test]
fn cache_reads_trim_whitespace_and_refuse_non_jwts() {
    let dir = cache_dir();
    let cache = LicenseCache::new(&dir.path);
    assert!(cache.read().is_err());
    cache.write(&jwt("pro", T0)).unwrap();
    assert_eq!(cache.read().unwrap(), jwt("pro", T0));
    std::fs::write(cache.path(), format!("{}\n", jwt("pro", T0))).unwrap();
    assert_eq!(cache.read().unwrap(), jwt("pro", T0));
    std::fs::write(cache.path(), "{}").unwrap();
    assert!(cache.read().is_err());
    cache.remove().unwrap();
    cache.remove().unwrap();
}
