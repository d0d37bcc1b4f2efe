//! Offline verification of an API-key JWT as a plain function of the token, the issuer, the
//! grace allowed and `now`.

use tessera_core::apikey::ApiKeyClaims;
use tessera_core::expiry::{days, issued_in_future};
use tessera_core::{JwtError, Verifier};

use crate::resolved::GraceState;
use crate::verify::rfc3339;

/// Grace after `exp` for a static or cached token: 14 days, early in the first half, late in
/// the second.
pub const DEFAULT_GRACE_SECS: i64 = days(14);

/// Why a token is not usable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TokenError {
    #[error("the license token does not verify with the embedded public keys: {0}")]
    BadToken(JwtError),
    #[error("the license token was issued by `{found}`, expected `{expected}`")]
    WrongIssuer { expected: String, found: String },
    #[error(
        "the license token claims to be issued at {}, after this machine's time {}; check the system clock",
        rfc3339(*iat), rfc3339(*now)
    )]
    IssuedInFuture { iat: i64, now: i64 },
    #[error("the license token expired at {}{}", rfc3339(*exp),
        if grace_end > exp { format!(" and its grace period ended at {}", rfc3339(*grace_end)) }
        else { String::new() })]
    Expired { exp: i64, grace_end: i64 },
}

impl TokenError {
    /// A short stable name for logs and `--output json`.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::BadToken(_) => "bad_token",
            TokenError::WrongIssuer { .. } => "wrong_issuer",
            TokenError::IssuedInFuture { .. } => "issued_in_future",
            TokenError::Expired { .. } => "expired",
        }
    }
}

/// A token that verified, and where `now` falls relative to its expiry.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub claims: ApiKeyClaims,
    pub grace: GraceState,
    /// `exp` plus the grace allowed.
    pub grace_ends_at: i64,
}

/// `None` once past `exp + grace_secs`; otherwise none before `exp`, early in the first half of
/// the grace period, late in the second.
pub fn grace_state(exp: i64, grace_secs: i64, now: i64) -> Option<GraceState> {
    let grace = grace_secs.max(0);
    if now < exp {
        Some(GraceState::None)
    } else if now < exp.saturating_add(grace / 2) {
        Some(GraceState::Early)
    } else if now < exp.saturating_add(grace) {
        Some(GraceState::Late)
    } else {
        None
    }
}

/// Signature (against a trusted key chosen by `kid`, algorithm pinned per key), `iss` exactly,
/// an issue time no more than five minutes ahead, and expiry with `grace_secs` (0 = no grace:
/// what a fresh fetch gets).
pub fn verify_token(
    verifier: &Verifier,
    token: &str,
    issuer: &str,
    grace_secs: i64,
    now: i64,
) -> Result<Verified, TokenError> {
    let claims: ApiKeyClaims = verifier.decode(token).map_err(TokenError::BadToken)?;
    if claims.iss != issuer {
        return Err(TokenError::WrongIssuer {
            expected: issuer.to_string(),
            found: claims.iss,
        });
    }
    if issued_in_future(claims.iat, now) {
        return Err(TokenError::IssuedInFuture {
            iat: claims.iat,
            now,
        });
    }
    let grace_ends_at = claims.exp.saturating_add(grace_secs.max(0));
    match grace_state(claims.exp, grace_secs, now) {
        Some(grace) => Ok(Verified {
            claims,
            grace,
            grace_ends_at,
        }),
        None => Err(TokenError::Expired {
            exp: claims.exp,
            grace_end: grace_ends_at,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_is_split_in_halves_and_ends_exactly() {
        let exp = 1_000;
        let g = days(14);
        assert_eq!(grace_state(exp, g, exp - 1), Some(GraceState::None));
        assert_eq!(grace_state(exp, g, exp), Some(GraceState::Early));
        assert_eq!(
            grace_state(exp, g, exp + days(7) - 1),
            Some(GraceState::Early)
        );
        assert_eq!(grace_state(exp, g, exp + days(7)), Some(GraceState::Late));
        assert_eq!(grace_state(exp, g, exp + g - 1), Some(GraceState::Late));
        assert_eq!(grace_state(exp, g, exp + g), None);
        assert_eq!(grace_state(exp, 0, exp), None);
    }
}
