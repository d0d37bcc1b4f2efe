//! `tessera-client`: what an application embeds to hold a Tessera license.
//!
//! - [`LicenseClient::activate`] exchanges a license key for a signed token (verified before it
//!   is trusted) and stores it in an atomically written license file.
//! - [`LicenseClient::verify_local`] checks that file offline: signature with the embedded public
//!   key (algorithm pinned), product, machine, and expiry with a grace window computed from the
//!   *signed* `exp` — never from anything editable in the file.
//! - [`LicenseClient::effective_tier`] is the tier to gate features on, or the fallback tier with
//!   the reason.
//! - [`LicenseClient::refresh_if_needed`] renews a token that is close to expiry and keeps the
//!   app working in grace when the server is unreachable.
//! - [`LicenseClient::report_usage`] / [`LicenseClient::report_flag`] are fire-and-forget.
//!
//! The license file keeps the field names of the seed's Python client (`jwt`, `key_display`,
//! `tier`, `valid_until`, `machine_id`, `last_refresh`, `grace_until`), so either client reads a
//! file the other wrote.
//!
//! API-key mode (an `sk-…` key exchanged for a JWT at the license backend) lives in [`apikey`];
//! [`LicenseManager`] serves both modes to the application: it resolves the license through a
//! chain (static JWT, API-key fetch, disk cache, Community), keeps it in memory behind a
//! lock-free read for per-request checks ([`LicenseManager::check_quota`],
//! [`LicenseManager::has_feature`]) and refreshes it in the background.
//!
//! Time is a parameter: [`LicenseClient::with_clock`] and [`LicenseManager::start_with_clock`]
//! take any [`tessera_core::clock::Clock`].

pub mod apikey;
pub mod client;
pub mod config;
pub mod error;
pub mod fingerprint;
mod fsio;
mod http;
pub mod license_file;
pub mod manager;
mod outcome;
mod reports;
pub mod resolved;
pub mod tiers;
pub mod verify;

pub use apikey::{ApiKey, ApiKeyClient, ApiKeyConfig, RefreshSchedule};
pub use client::LicenseClient;
pub use config::ClientConfig;
pub use error::ClientError;
pub use license_file::{LicenseFile, LicenseFileError};
pub use manager::{LicenseManager, RefreshHandle};
pub use outcome::{DeactivateOutcome, EffectiveTier, RefreshOutcome, TierSource};
pub use reports::ReportStats;
pub use resolved::{GraceState, LicenseSource, QuotaExceeded, Quotas, ResolvedLicense};
/// The shared domain crate (clocks, claims, the error contract), for apps that need it.
pub use tessera_core;
pub use tessera_core::LicenseClaims;
pub use tessera_core::expiry::Freshness;
pub use tiers::{TierSpec, TierTable};
pub use verify::{InvalidReason, LicenseStatus};
