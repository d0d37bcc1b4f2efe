//! Offline verification on an injected clock: grace boundaries, edited files, clocks turned
//! back, tokens from the future, wrong product or machine.

use tessera_client::{Freshness, InvalidReason, TierSource};
use tessera_core::JwtError;
use tessera_core::expiry::days;

use crate::helpers::*;

const EXP: i64 = T0 + days(30);
const GRACE_END: i64 = EXP + days(7);

fn licensed_dir() -> Dir {
    let d = dir();
    write_seed_file(&d.path, &token_at(T0), None);
    d
}

#[test]
fn license_is_valid_and_not_in_grace_just_before_exp() {
    let d = licensed_dir();
    let (client, _) = offline_client(&d.path, EXP - 1);
    let status = client.verify_local().unwrap();
    assert_eq!(status.tier(), "paid");
    assert_eq!(status.freshness, Freshness::Valid);
    assert!(!status.in_grace);
    assert_eq!(status.expires_at, EXP);
    assert_eq!(status.grace_ends_at, GRACE_END);
    assert_eq!(status.claims.sub, KEY);
}

#[test]
fn license_is_in_grace_from_exp_until_the_last_second_of_grace() {
    let d = licensed_dir();
    let (client, clock) = offline_client(&d.path, EXP);
    assert!(client.verify_local().unwrap().in_grace);
    clock.set(GRACE_END - 1);
    let status = client.verify_local().unwrap();
    assert!(status.in_grace);
    assert_eq!(status.freshness, Freshness::InGrace);
    let tier = client.effective_tier();
    assert_eq!(tier.tier, "paid");
    assert!(tier.in_grace);
    assert_eq!(tier.source, TierSource::License);
}

#[test]
fn license_is_expired_once_grace_ends_and_tier_falls_back_with_the_reason() {
    let d = licensed_dir();
    let (client, _) = offline_client(&d.path, GRACE_END);
    let err = client.verify_local().unwrap_err();
    assert_eq!(
        err,
        InvalidReason::Expired {
            exp: EXP,
            grace_end: GRACE_END,
            clock_behind: false
        }
    );
    let tier = client.effective_tier();
    assert_eq!(tier.tier, "free");
    assert_eq!(tier.source, TierSource::Fallback);
    assert_eq!(tier.reason.unwrap().code(), "expired");
}

#[test]
fn configured_grace_days_move_the_boundary() {
    let d = licensed_dir();
    let cfg = config("http://127.0.0.1:9", &d.path).with_grace_days(0);
    let (client, _) = client_with(cfg, EXP);
    assert_eq!(client.verify_local().unwrap_err().code(), "expired");
}

#[test]
fn editing_grace_until_in_the_file_does_not_extend_a_license() {
    let d = dir();
    write_seed_file(
        &d.path,
        &token_at(T0),
        Some("2099-01-01T00:00:00.000000+00:00"),
    );
    let (client, _) = offline_client(&d.path, GRACE_END + 1);
    assert_eq!(client.verify_local().unwrap_err().code(), "expired");
    assert_eq!(client.effective_tier().tier, "free");
}

#[test]
fn editing_tier_in_the_file_does_not_change_the_tier() {
    let d = licensed_dir();
    let text = std::fs::read_to_string(&d.path)
        .unwrap()
        .replace("\"tier\": \"paid\"", "\"tier\": \"enterprise\"");
    assert!(text.contains("enterprise"));
    std::fs::write(&d.path, text).unwrap();
    let (client, _) = offline_client(&d.path, T0 + 60);
    assert_eq!(client.effective_tier().tier, "paid");
}

#[test]
fn clock_turned_back_does_not_revive_an_expired_license() {
    let d = licensed_dir();
    let (client, clock) = offline_client(&d.path, GRACE_END + days(1));
    assert_eq!(client.verify_local().unwrap_err().code(), "expired");

    // Same process: the clock goes back to a time the token was valid at.
    clock.set(EXP - days(1));
    assert_eq!(
        client.verify_local().unwrap_err(),
        InvalidReason::Expired {
            exp: EXP,
            grace_end: GRACE_END,
            clock_behind: true
        }
    );

    // A restarted app (a new client) remembers the latest time seen, too.
    let (restarted, _) = offline_client(&d.path, EXP - days(1));
    assert_eq!(restarted.verify_local().unwrap_err().code(), "expired");
    assert_eq!(restarted.effective_tier().tier, "free");
}

#[test]
fn clock_set_before_the_token_was_issued_is_refused() {
    // Even with no memory of later times, a token "issued in the future" is refused.
    let d = licensed_dir();
    let (client, _) = offline_client(&d.path, T0 - days(2));
    let err = client.verify_local().unwrap_err();
    assert_eq!(
        err,
        InvalidReason::IssuedInFuture {
            iat: T0,
            now: T0 - days(2)
        }
    );
}

#[test]
fn token_issued_more_than_five_minutes_ahead_is_rejected() {
    let d = dir();
    write_seed_file(&d.path, &token_at(T0 + 301), None);
    let (client, _) = offline_client(&d.path, T0);
    assert_eq!(
        client.verify_local().unwrap_err().code(),
        "issued_in_future"
    );

    // Exactly five minutes of skew is tolerated.
    let d = dir();
    write_seed_file(&d.path, &token_at(T0 + 300), None);
    let (client, _) = offline_client(&d.path, T0);
    assert!(client.verify_local().is_ok());
}

#[test]
fn token_for_another_product_is_rejected() {
    let d = dir();
    let mut c = claims(T0, EXP);
    c.product = "falcon".into();
    write_seed_file(&d.path, &vendor().sign(&c), None);
    let (client, _) = offline_client(&d.path, T0);
    assert_eq!(
        client.verify_local().unwrap_err(),
        InvalidReason::WrongProduct {
            expected: PRODUCT.into(),
            found: "falcon".into()
        }
    );
}

#[test]
fn token_for_another_machine_is_rejected() {
    let d = dir();
    let mut c = claims(T0, EXP);
    c.machine = "somebody-elses-machine".into();
    write_seed_file(&d.path, &vendor().sign(&c), None);
    let (client, _) = offline_client(&d.path, T0);
    assert_eq!(
        client.verify_local().unwrap_err(),
        InvalidReason::OtherMachine
    );
}

#[test]
fn token_signed_by_another_key_is_rejected_offline() {
    let d = dir();
    write_seed_file(&d.path, &stranger().sign(&claims(T0, EXP)), None);
    let (client, _) = offline_client(&d.path, T0);
    assert_eq!(
        client.verify_local().unwrap_err(),
        InvalidReason::BadToken(JwtError::BadSignature)
    );
    assert_eq!(client.effective_tier().tier, "free");
}

#[test]
fn unsigned_token_is_rejected() {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let payload = serde_json::to_string(&claims(T0, EXP)).unwrap();
    let forged = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT"}"#),
        b64(&payload)
    );
    let d = dir();
    write_seed_file(&d.path, &forged, None);
    let (client, _) = offline_client(&d.path, T0);
    assert_eq!(client.verify_local().unwrap_err().code(), "bad_token");
}

#[test]
fn fallback_tier_is_configurable() {
    let d = dir();
    let cfg = config("http://127.0.0.1:9", &d.path).with_fallback_tier("community");
    let (client, _) = client_with(cfg, T0);
    let tier = client.effective_tier();
    assert_eq!(tier.tier, "community");
    assert!(tier.reason.unwrap().is_missing());
}
