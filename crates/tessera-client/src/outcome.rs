//! What the client's operations report back: the effective tier, refresh and deactivation
//! outcomes.

use serde::Serialize;

use crate::error::ClientError;
use crate::verify::{InvalidReason, LicenseStatus};

/// Where the effective tier came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TierSource {
    License,
    Fallback,
}

/// The tier to gate features on, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct EffectiveTier {
    pub tier: String,
    pub source: TierSource,
    pub in_grace: bool,
    /// Why the fallback tier is in use (`None` when the license is valid).
    pub reason: Option<InvalidReason>,
}

/// What [`LicenseClient::refresh_if_needed`] did. It never fails: the app keeps the license it
/// has until that license lapses.
#[derive(Debug)]
pub enum RefreshOutcome {
    /// The token is not close to expiry.
    NotNeeded(LicenseStatus),
    /// A new token was verified and stored.
    Refreshed(LicenseStatus),
    /// The server could not be reached (or had a temporary problem): the cached license is still
    /// in use, in grace if it has expired.
    Unreachable {
        status: LicenseStatus,
        error: ClientError,
    },
    /// The server refused, or sent a token that does not verify. The cached license is still in
    /// use until it lapses.
    Rejected {
        status: LicenseStatus,
        error: ClientError,
    },
    /// There is no valid license to refresh.
    NoValidLicense(InvalidReason),
}

impl RefreshOutcome {
    /// The license in use after the attempt, if any.
    pub fn status(&self) -> Option<&LicenseStatus> {
        match self {
            RefreshOutcome::NotNeeded(s) | RefreshOutcome::Refreshed(s) => Some(s),
            RefreshOutcome::Unreachable { status, .. }
            | RefreshOutcome::Rejected { status, .. } => Some(status),
            RefreshOutcome::NoValidLicense(_) => None,
        }
    }
}

/// What [`LicenseClient::deactivate`] did.
#[derive(Debug)]
pub struct DeactivateOutcome {
    /// A license file was there to deactivate.
    pub had_license: bool,
    /// The server confirmed that the seat is free.
    pub server_confirmed: bool,
    /// Why the server did not confirm (the file is removed regardless).
    pub server_error: Option<ClientError>,
}
