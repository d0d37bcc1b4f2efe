//! An app in API-key mode, as SoftClient4ES runs: the operator configures an `sk-…` key; the app
//! resolves its license at start (static JWT → fetch → disk cache → Community), refreshes it in
//! the background, and checks quotas on every request without locks or allocation.
//!
//! ```sh
//! TESSERA_BACKEND_URL=http://127.0.0.1:8600 TESSERA_API_KEY=sk-… \
//!   TESSERA_PUBLIC_KEY=deploy/keys/sc4es-2026-11/public.pem TESSERA_KID=sc4es-2026-11 \
//!   cargo run -p tessera-client --example api_key_app
//! ```
//!
//! A shipped app embeds its vendor keys instead of reading a path:
//! `.with_public_key(Some("sc4es-2026-11"), include_bytes!("../keys/sc4es-2026-11.pem").to_vec())`.

use std::error::Error;

use tessera_client::{ApiKeyConfig, LicenseManager};

const ISSUER: &str = "https://license.softclient4es.com";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let env = |name: &str| std::env::var(name).ok();

    let mut config = ApiKeyConfig::new(
        env("TESSERA_BACKEND_URL").unwrap_or_else(|| "http://127.0.0.1:8600".into()),
        ISSUER,
        env("TESSERA_CACHE_DIR").unwrap_or_else(|| "/tmp/sc4es-cache".into()),
    )
    .with_app_version(env!("CARGO_PKG_VERSION"));
    if let Some(key) = env("TESSERA_API_KEY") {
        config = config.with_api_key(key);
    }
    if let Some(jwt) = env("TESSERA_LICENSE_JWT") {
        config = config.with_static_jwt(jwt);
    }
    if let Some(path) = env("TESSERA_PUBLIC_KEY") {
        config = config.with_public_key(env("TESSERA_KID").as_deref(), std::fs::read(path)?);
    }

    let license = LicenseManager::start(config).await?;
    let _refresh = license.spawn_refresh(); // stops when dropped

    // Per request: an atomic load and a short scan; an error only when the quota is exceeded.
    let requested_rows = 25_000;
    match license.check_quota("max_result_rows", requested_rows) {
        Ok(()) => println!("query allowed ({requested_rows} rows)"),
        Err(e) => println!("query refused: {e}"),
    }
    let current = license.current();
    println!(
        "tier {} from {} (grace: {}), federation: {}",
        current.tier_display(),
        current.source(),
        current.grace(),
        license.has_feature("federation")
    );
    Ok(())
}
