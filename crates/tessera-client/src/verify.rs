//! Offline verification as a plain function of the token, what the app expects, and `now`.
//!
//! Grace comes from the token's *signed* `exp` plus the configured grace period. Nothing in the
//! license file besides the token itself takes part in the decision.

use serde::Serialize;
use tessera_core::expiry::{Freshness, freshness, issued_in_future};
use tessera_core::{JwtError, LicenseClaims, Verifier};
use time::OffsetDateTime;

use crate::license_file::LicenseFileError;

/// What the app requires of a token.
#[derive(Debug, Clone, Copy)]
pub struct Expectations<'a> {
    pub product: &'a str,
    pub machine_id: &'a str,
    pub grace_secs: i64,
}

/// Why there is no valid license. Shown to users by `tessera license status`, logged by apps.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvalidReason {
    #[error("{0}")]
    File(#[from] LicenseFileError),
    #[error("the license token does not verify with this app's public key: {0}")]
    BadToken(JwtError),
    #[error("the license is for product `{found}`, this app is `{expected}`")]
    WrongProduct { expected: String, found: String },
    #[error("the license was activated on another machine; activate it on this one")]
    OtherMachine,
    #[error(
        "the license token claims to be issued at {}, after this machine's time {}; \
         check the system clock", rfc3339(*iat), rfc3339(*now)
    )]
    IssuedInFuture { iat: i64, now: i64 },
    #[error(
        "the license expired at {} and its grace period ended at {}{}", rfc3339(*exp), rfc3339(*grace_end),
        if *clock_behind { " (the system clock is behind the latest time this client saw)" }
        else { "" }
    )]
    Expired {
        exp: i64,
        grace_end: i64,
        /// The system clock reads earlier than a time this client has already seen.
        clock_behind: bool,
    },
}

impl InvalidReason {
    /// A short stable name for logs and `--output json`.
    pub fn code(&self) -> &'static str {
        match self {
            InvalidReason::File(e) => e.code(),
            InvalidReason::BadToken(_) => "bad_token",
            InvalidReason::WrongProduct { .. } => "wrong_product",
            InvalidReason::OtherMachine => "other_machine",
            InvalidReason::IssuedInFuture { .. } => "issued_in_future",
            InvalidReason::Expired { .. } => "expired",
        }
    }

    /// There is simply no license (a free user), as opposed to a broken or refused one.
    pub fn is_missing(&self) -> bool {
        matches!(self, InvalidReason::File(LicenseFileError::Missing(_)))
    }
}

/// Unix seconds as RFC 3339 UTC text (`2027-01-15T08:00:00.000000Z`), for display.
pub fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .map(tessera_core::timefmt::format)
        .unwrap_or_else(|_| unix.to_string())
}

/// A license that is valid now, possibly only because of the grace period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LicenseStatus {
    pub claims: LicenseClaims,
    /// [`Freshness::Valid`] or [`Freshness::InGrace`].
    pub freshness: Freshness,
    pub in_grace: bool,
    /// The signed `exp` (unix seconds).
    pub expires_at: i64,
    /// `exp` plus the configured grace (unix seconds).
    pub grace_ends_at: i64,
    /// The time the decision was made at (unix seconds; the clock or its high-water mark).
    pub checked_at: i64,
    pub key_display: Option<String>,
    pub valid_until: Option<String>,
}

impl LicenseStatus {
    pub fn tier(&self) -> &str {
        &self.claims.tier
    }

    /// Within `window_secs` of `exp`, or already in grace.
    pub fn needs_refresh(&self, window_secs: i64) -> bool {
        self.in_grace || self.expires_at.saturating_sub(self.checked_at) <= window_secs
    }
}

/// Verifies `token` against `expect` at `now`: signature (algorithm pinned by the verifier),
/// product, machine, issue time no more than five minutes ahead, expiry with grace.
pub fn evaluate(
    verifier: &Verifier,
    token: &str,
    expect: &Expectations<'_>,
    now: i64,
) -> Result<(LicenseClaims, Freshness), InvalidReason> {
    let claims: LicenseClaims = verifier.decode(token).map_err(InvalidReason::BadToken)?;
    if claims.product != expect.product {
        return Err(InvalidReason::WrongProduct {
            expected: expect.product.to_string(),
            found: claims.product,
        });
    }
    if claims.machine != expect.machine_id {
        return Err(InvalidReason::OtherMachine);
    }
    if issued_in_future(claims.iat, now) {
        return Err(InvalidReason::IssuedInFuture {
            iat: claims.iat,
            now,
        });
    }
    match freshness(claims.exp, expect.grace_secs, now) {
        Freshness::Expired => Err(InvalidReason::Expired {
            exp: claims.exp,
            grace_end: claims.exp.saturating_add(expect.grace_secs.max(0)),
            clock_behind: false,
        }),
        f => Ok((claims, f)),
    }
}
