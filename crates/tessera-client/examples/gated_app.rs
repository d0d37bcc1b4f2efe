//! An app that holds a Tessera license, as the seed's Peregrine app does:
//!
//! 1. at start-up it refreshes its license silently (a server outage never stops the app);
//! 2. it gates a feature by tier, in the seed's order of precedence: a developer override
//!    (`APP_DEV_TIER`), then the license, then the free tier.
//!
//! ```sh
//! TESSERA_SERVER_URL=http://127.0.0.1:8600 TESSERA_PUBLIC_KEY=keys/public.pem \
//!   TESSERA_LICENSE_FILE=/tmp/peregrine-license.json \
//!   cargo run -p tessera-client --example gated_app
//! APP_DEV_TIER=premium cargo run -p tessera-client --example gated_app   # developer override
//! ```
//!
//! A shipped app embeds its vendor key instead of reading a path:
//! `const PUBLIC_KEY: &[u8] = include_bytes!("../license_public_key.pem");`

use std::error::Error;

use tessera_client::{ClientConfig, LicenseClient, RefreshOutcome, TierSource};

const PRODUCT: &str = "peregrine";

/// Tiers in increasing order; an unknown tier ranks as free.
fn rank(tier: &str) -> usize {
    ["free", "paid", "premium"]
        .iter()
        .position(|t| *t == tier)
        .unwrap_or(0)
}

/// The seed's `effective_tier(profile)`: developer override, then the license, then free.
fn effective_tier(client: Option<&LicenseClient>) -> (String, &'static str) {
    if let Some(dev) = std::env::var("APP_DEV_TIER").ok().filter(|t| !t.is_empty()) {
        return (dev, "developer override (APP_DEV_TIER)");
    }
    let Some(client) = client else {
        return ("free".into(), "no license client configured");
    };
    let tier = client.effective_tier();
    match (tier.source, tier.in_grace) {
        (TierSource::License, false) => (tier.tier, "license"),
        (TierSource::License, true) => (tier.tier, "license (grace period: renew soon)"),
        (TierSource::Fallback, _) => (tier.tier, "no valid license"),
    }
}

fn build_client() -> Result<LicenseClient, Box<dyn Error>> {
    let server = std::env::var("TESSERA_SERVER_URL")?;
    let key_path = std::env::var("TESSERA_PUBLIC_KEY")?;
    let license = std::env::var("TESSERA_LICENSE_FILE").unwrap_or_else(|_| "license.json".into());
    let config = ClientConfig::new(server, PRODUCT, std::fs::read(key_path)?, license)
        .with_app_version(env!("CARGO_PKG_VERSION"));
    Ok(LicenseClient::new(config)?)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let client = match build_client() {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!("licensing disabled: {e}");
            None
        }
    };

    // Silent refresh at start-up: whatever happens, the app starts.
    if let Some(client) = &client {
        match client.refresh_if_needed().await {
            RefreshOutcome::Refreshed(s) => eprintln!("license renewed until {}", s.expires_at),
            RefreshOutcome::Unreachable { .. } | RefreshOutcome::Rejected { .. } => {
                eprintln!("license server not reachable; using the cached license")
            }
            RefreshOutcome::NotNeeded(_) | RefreshOutcome::NoValidLicense(_) => {}
        }
    }

    let (tier, why) = effective_tier(client.as_ref());
    println!("tier: {tier} ({why})");

    if rank(&tier) >= rank("paid") {
        println!("PDF export: enabled");
        if let Some(client) = &client {
            client.report_usage("export_pdf", None);
        }
    } else {
        println!("PDF export: upgrade to the paid tier to unlock it");
    }

    // Give the fire-and-forget report a moment before the process exits.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    Ok(())
}
