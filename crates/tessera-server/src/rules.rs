//! Business rules as plain functions of their inputs and `now`. The store calls them inside its
//! transactions; handlers never re-implement them.

use tessera_core::{ErrorCode, timefmt};
use time::OffsetDateTime;

use crate::error::AppError;
use crate::store::{ApiKeyRow, KeyRow};

/// Can this key be used for `product` at `now`? The seed's `_get_key_row`, with distinct codes.
pub fn check_key_usable(key: &KeyRow, product: &str, now: OffsetDateTime) -> Result<(), AppError> {
    if key.product != product {
        return Err(AppError::new(
            ErrorCode::ProductMismatch,
            "Invalid or revoked license key (the key is for another product)",
        ));
    }
    if key.revoked {
        return Err(AppError::new(
            ErrorCode::LicenseRevoked,
            "License key has been revoked",
        ));
    }
    if key_expired(key, now) {
        return Err(AppError::new(
            ErrorCode::LicenseExpired,
            "License key expired",
        ));
    }
    Ok(())
}

pub fn unknown_key() -> AppError {
    AppError::new(
        ErrorCode::InvalidLicenseKey,
        "Invalid or revoked license key",
    )
}

pub fn key_expired(key: &KeyRow, now: OffsetDateTime) -> bool {
    key.valid_until
        .as_deref()
        .and_then(timefmt::parse_until)
        .is_some_and(|until| until < now)
}

/// May this API key fetch a token at `now`?
pub fn check_api_key_usable(key: &ApiKeyRow, now: OffsetDateTime) -> Result<(), AppError> {
    if key.revoked {
        return Err(AppError::new(
            ErrorCode::ApiKeyRevoked,
            "API key has been revoked. Contact your vendor for a new key.",
        ));
    }
    let expired = key
        .expires_at
        .as_deref()
        .and_then(timefmt::parse_until)
        .is_some_and(|t| t < now);
    if expired {
        return Err(AppError::new(
            ErrorCode::ApiKeyExpired,
            "API key has expired",
        ));
    }
    Ok(())
}

pub fn unknown_api_key() -> AppError {
    AppError::new(ErrorCode::InvalidApiKey, "Invalid API key")
}

/// A new machine may take a seat while fewer than `seats` other machines hold one.
pub fn seat_available(seats: i64, active_other_machines: i64) -> bool {
    active_other_machines < seats
}

pub fn seat_limit_reached(seats: i64) -> AppError {
    AppError::new(
        ErrorCode::SeatLimitReached,
        format!("Seat limit reached ({seats} seats)"),
    )
}

/// Token expiry: `now + expiry_days`, but never past the key's own `valid_until`.
pub fn token_exp(key: &KeyRow, now: OffsetDateTime, expiry_days: i64) -> i64 {
    let by_policy = now
        .unix_timestamp()
        .saturating_add(tessera_core::expiry::days(expiry_days));
    match key.valid_until.as_deref().and_then(timefmt::parse_until) {
        Some(until) => by_policy.min(until.unix_timestamp()),
        None => by_policy,
    }
}

/// For floating seats: activations last refreshed before this instant have lost their lease.
pub fn lease_cutoff(lease_ttl_secs: Option<i64>, now: OffsetDateTime) -> Option<String> {
    lease_ttl_secs.map(|ttl| timefmt::format(now - time::Duration::seconds(ttl)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn key(valid_until: Option<&str>) -> KeyRow {
        KeyRow {
            id: "k".into(),
            key_display: "CFG-PRNG-AAAA-BBBB-CCCC".into(),
            product: "peregrine".into(),
            tier: "paid".into(),
            seats: 2,
            valid_until: valid_until.map(String::from),
            revoked: false,
            customer_email: None,
            source: "manual".into(),
            trial: false,
            notes: None,
            created_at: "2026-01-01T00:00:00.000000Z".into(),
            lease_ttl_secs: None,
            active_seats: 0,
        }
    }

    #[test]
    fn key_is_usable_through_its_last_day() {
        let k = key(Some("2026-06-30"));
        assert!(check_key_usable(&k, "peregrine", datetime!(2026-06-30 23:00 UTC)).is_ok());
        let err = check_key_usable(&k, "peregrine", datetime!(2026-07-01 00:00 UTC)).unwrap_err();
        assert_eq!(err.code, ErrorCode::LicenseExpired);
    }

    #[test]
    fn wrong_product_and_revoked_are_refused() {
        let mut k = key(None);
        let now = datetime!(2026-01-01 00:00 UTC);
        assert_eq!(
            check_key_usable(&k, "falcon", now).unwrap_err().code,
            ErrorCode::ProductMismatch
        );
        k.revoked = true;
        assert_eq!(
            check_key_usable(&k, "peregrine", now).unwrap_err().code,
            ErrorCode::LicenseRevoked
        );
    }

    #[test]
    fn token_never_outlives_its_key() {
        let now = datetime!(2026-06-01 00:00 UTC);
        assert_eq!(
            token_exp(&key(None), now, 30),
            now.unix_timestamp() + 30 * 86_400
        );
        let short = token_exp(&key(Some("2026-06-02")), now, 30);
        assert!(short < now.unix_timestamp() + 2 * 86_400);
    }

    #[test]
    fn seats_count_other_machines_only() {
        assert!(seat_available(2, 1));
        assert!(!seat_available(2, 2));
    }
}
