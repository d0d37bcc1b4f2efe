//! What a request pays for the license: reading the license in force and checking a quota
//! (target: well under 50 ns), and what a start-up or refresh pays to verify a cached token
//! offline, EdDSA and RS256.
//!
//! `cargo bench -p tessera-client --bench per_request` (add `-- --quick` for a short run).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use tessera_client::apikey::{LicenseCache, verify_token};
use tessera_client::{ApiKeyConfig, LicenseManager, TierTable};
use tessera_core::apikey::ApiKeyClaims;
use tessera_core::clock::{Clock, FixedClock};
use tessera_core::expiry::days;
use tessera_core::{Signer, Verifier, keys};

const ISSUER: &str = "https://license.softclient4es.com";
const NOW: i64 = 1_800_000_000;

fn claims() -> ApiKeyClaims {
    let pro = TierTable::default().spec(1).clone();
    ApiKeyClaims {
        iss: ISSUER.into(),
        sub: "6f1c0a8e-0000-4000-8000-000000000001".into(),
        tier: "pro".into(),
        features: pro.features,
        quotas: pro.quotas,
        iat: NOW,
        exp: NOW + 86_400,
        jti: "0f8e7d6c-5b4a-4938-8271-605f4e3d2c1b".into(),
        org_name: Some("Acme Inc".into()),
        trial: false,
    }
}

struct Key {
    token: String,
    public_pem: String,
    verifier: Verifier,
}

fn key(private_pem: &str, public_pem: String, kid: &str) -> Key {
    let signer = Signer::from_pem(private_pem.as_bytes(), Some(kid.into())).unwrap();
    let mut verifier = Verifier::default();
    verifier
        .trust_pem(public_pem.as_bytes(), Some(kid.into()))
        .unwrap();
    Key {
        token: signer.sign(&claims()).unwrap(),
        public_pem,
        verifier,
    }
}

fn per_request(c: &mut Criterion) {
    let ed = keys::generate_ed25519().unwrap();
    let ed = key(&ed.private_pem, ed.public_pem, "k1");
    let dir = tempfile::tempdir().unwrap();
    let cfg = ApiKeyConfig::new("http://127.0.0.1:9", ISSUER, dir.path())
        .with_public_key(Some("k1"), ed.public_pem.as_bytes().to_vec())
        .with_static_jwt(ed.token.clone());
    let clock: Arc<dyn Clock> = Arc::new(FixedClock::at(NOW));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let manager = rt
        .block_on(LicenseManager::start_with_clock(cfg, clock))
        .unwrap();

    c.bench_function("current() + check_quota", |b| {
        b.iter(|| {
            let license = manager.current();
            license.check_quota(black_box("max_result_rows"), black_box(10_000))
        })
    });
    c.bench_function("manager.check_quota", |b| {
        b.iter(|| manager.check_quota(black_box("max_result_rows"), black_box(10_000)))
    });
    c.bench_function("manager.has_feature", |b| {
        b.iter(|| manager.has_feature(black_box("federation")))
    });
}

fn offline_verification(c: &mut Criterion) {
    let ed = keys::generate_ed25519().unwrap();
    let ed = key(&ed.private_pem, ed.public_pem, "ed");
    let rsa = keys::generate_rsa().unwrap();
    let rsa = key(&rsa.private_pem, rsa.public_pem, "rsa");
    let grace = days(14);

    c.bench_function("verify cached token EdDSA", |b| {
        b.iter(|| verify_token(&ed.verifier, black_box(&ed.token), ISSUER, grace, NOW).unwrap())
    });
    c.bench_function("verify cached token RS256", |b| {
        b.iter(|| verify_token(&rsa.verifier, black_box(&rsa.token), ISSUER, grace, NOW).unwrap())
    });

    let dir = tempfile::tempdir().unwrap();
    let cache = LicenseCache::new(dir.path());
    cache.write(&ed.token).unwrap();
    c.bench_function("read cache file + verify EdDSA", |b| {
        b.iter(|| {
            let jwt = cache.read().unwrap();
            verify_token(&ed.verifier, &jwt, ISSUER, grace, NOW).unwrap()
        })
    });
}

criterion_group!(benches, per_request, offline_verification);
criterion_main!(benches);
