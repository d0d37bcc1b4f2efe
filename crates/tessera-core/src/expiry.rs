//! Expiry and grace, decided from signed data and an explicit `now`.

use serde::{Deserialize, Serialize};

/// Tokens stamped this far in the future are refused: a clock far behind the issuer's
/// is either broken or turned back on purpose.
pub const MAX_FUTURE_SKEW_SECS: i64 = 5 * 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Freshness {
    /// `now < exp`.
    Valid,
    /// Expired, but `now < exp + grace`.
    InGrace,
    /// Past `exp + grace`.
    Expired,
}

/// Where `now` falls relative to `exp` and `exp + grace_secs`.
pub fn freshness(exp: i64, grace_secs: i64, now: i64) -> Freshness {
    if now < exp {
        Freshness::Valid
    } else if now < exp.saturating_add(grace_secs.max(0)) {
        Freshness::InGrace
    } else {
        Freshness::Expired
    }
}

/// True when a token claims to be issued implausibly far in the future.
pub fn issued_in_future(iat: i64, now: i64) -> bool {
    iat > now.saturating_add(MAX_FUTURE_SKEW_SECS)
}

pub const fn days(n: i64) -> i64 {
    n * 86_400
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_boundaries_are_exact() {
        let exp = 1_000;
        let grace = 100;
        assert_eq!(freshness(exp, grace, 999), Freshness::Valid);
        assert_eq!(freshness(exp, grace, 1_000), Freshness::InGrace);
        assert_eq!(freshness(exp, grace, 1_099), Freshness::InGrace);
        assert_eq!(freshness(exp, grace, 1_100), Freshness::Expired);
        assert_eq!(freshness(exp, 0, 1_000), Freshness::Expired);
    }

    #[test]
    fn future_issue_time_is_flagged_past_the_skew() {
        assert!(!issued_in_future(1_300, 1_000));
        assert!(issued_in_future(1_301, 1_000));
    }
}
