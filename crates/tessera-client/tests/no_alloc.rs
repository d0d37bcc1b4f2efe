//! The per-request path allocates nothing: `current()`, `load()`, `check_quota`, `quota` and
//! `has_feature` are counted by a global allocator in this dedicated test binary (its own
//! process, so nothing else allocates meanwhile). Only a failed check allocates, for its error.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::alloc::System;
use std::hint::black_box;
use std::sync::Arc;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tessera_client::{ApiKeyConfig, LicenseManager, LicenseSource};
use tessera_core::apikey::ApiKeyClaims;
use tessera_core::clock::{Clock, FixedClock};
use tessera_core::{Signer, keys};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const ISSUER: &str = "https://license.softclient4es.com";
const NOW: i64 = 1_800_000_000;

async fn pro_manager(dir: &std::path::Path) -> LicenseManager {
    let pair = keys::generate_ed25519().unwrap();
    let signer = Signer::from_pem(pair.private_pem.as_bytes(), Some("k1".into())).unwrap();
    let table = tessera_client::TierTable::default();
    let pro = table.spec(1).clone();
    let claims = ApiKeyClaims {
        iss: ISSUER.into(),
        sub: "key-1".into(),
        tier: "pro".into(),
        features: pro.features,
        quotas: pro.quotas,
        iat: NOW,
        exp: NOW + 86_400,
        jti: "j".into(),
        org_name: None,
        trial: false,
    };
    let cfg = ApiKeyConfig::new("http://127.0.0.1:9", ISSUER, dir)
        .with_public_key(Some("k1"), pair.public_pem.into_bytes())
        .with_static_jwt(signer.sign(&claims).unwrap());
    let clock: Arc<dyn Clock> = Arc::new(FixedClock::at(NOW));
    LicenseManager::start_with_clock(cfg, clock).await.unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn per_request_checks_do_not_allocate() {
    let dir = tempfile::tempdir().unwrap();
    let manager = pro_manager(dir.path()).await;
    assert_eq!(manager.current().source(), LicenseSource::Static);

    // Warm up: the first lock-free read on a thread registers it with arc-swap once.
    for _ in 0..16 {
        black_box(manager.check_quota("max_clusters", 1)).unwrap();
        black_box(manager.current());
    }

    let region = Region::new(GLOBAL);
    let mut allowed = 0u64;
    for i in 0..100_000u64 {
        let license = manager.current();
        if manager.check_quota("max_result_rows", black_box(i)).is_ok() {
            allowed += 1;
        }
        black_box(license.check_quota("max_materialized_views", 50)).unwrap();
        black_box(manager.quota("max_clusters"));
        black_box(manager.quota("not_a_quota"));
        black_box(manager.has_feature("materialized_views"));
        black_box(manager.has_feature("not_a_feature"));
        black_box(manager.load().tier_rank());
    }
    let stats = region.change();
    assert_eq!(allowed, 100_000);
    assert_eq!(
        (
            stats.allocations,
            stats.reallocations,
            stats.bytes_allocated
        ),
        (0, 0, 0),
        "{stats:?}"
    );

    // The counter works: a failed check allocates its error message.
    let region = Region::new(GLOBAL);
    let err = manager.check_quota("max_clusters", 6).unwrap_err();
    assert!(region.change().allocations > 0);
    assert_eq!(err.upgrade_to.as_deref(), Some("Enterprise"));
}
