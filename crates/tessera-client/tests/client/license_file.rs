//! The license file: every kind of damage falls back with a reason and never panics; the seed's
//! files load; what we write is what the seed writes.

use tessera_client::{InvalidReason, LicenseFile, LicenseFileError, TierSource};

use crate::helpers::*;

/// The reason a damaged file gives, after checking the app falls back to `free`.
fn fallback_reason(d: &Dir) -> InvalidReason {
    let (client, _) = offline_client(&d.path, T0 + 60);
    let tier = client.effective_tier();
    assert_eq!(tier.tier, "free");
    assert_eq!(tier.source, TierSource::Fallback);
    let reason = tier.reason.unwrap();
    assert_eq!(client.verify_local().unwrap_err(), reason);
    reason
}

#[test]
fn missing_file_falls_back_to_free_with_a_reason() {
    let d = dir();
    let reason = fallback_reason(&d);
    assert!(reason.is_missing());
    assert_eq!(reason.code(), "missing");
}

#[test]
fn truncated_file_falls_back_to_free() {
    let d = dir();
    write_seed_file(&d.path, &token_at(T0), None);
    let full = std::fs::read(&d.path).unwrap();
    std::fs::write(&d.path, &full[..full.len() / 2]).unwrap();
    assert_eq!(fallback_reason(&d).code(), "truncated");

    std::fs::write(&d.path, b"").unwrap();
    assert_eq!(fallback_reason(&d).code(), "truncated");
}

#[test]
fn garbage_file_falls_back_to_free() {
    let d = dir();
    for junk in [
        &b"\x00\xff\xfe not json at all"[..],
        b"[1, 2, 3]",
        b"{\"jwt\": 42}",
        b"{\"no_jwt\": true}",
        b"{\"jwt\": \"\"}",
    ] {
        std::fs::write(&d.path, junk).unwrap();
        assert_eq!(fallback_reason(&d).code(), "garbage", "{junk:?}");
    }
}

#[test]
fn file_with_a_garbage_token_falls_back_to_free() {
    let d = dir();
    write_seed_file(&d.path, "not.a.token", None);
    assert_eq!(fallback_reason(&d).code(), "bad_token");
}

#[test]
fn oversized_file_is_refused_unread() {
    let d = dir();
    // A valid license padded past 64 KiB: refused for its size, not its content.
    let padding = "x".repeat(64 * 1024);
    let text = format!(r#"{{"jwt": "{}", "padding": "{padding}"}}"#, token_at(T0));
    std::fs::write(&d.path, text).unwrap();
    let reason = fallback_reason(&d);
    assert!(
        matches!(reason, InvalidReason::File(LicenseFileError::TooLarge { size, .. }) if size > 64 * 1024),
        "{reason:?}"
    );
}

#[cfg(unix)]
#[test]
fn symlinked_file_is_refused() {
    let d = dir();
    let real = d.dir.path().join("elsewhere.json");
    write_seed_file(&real, &token_at(T0), None);
    std::os::unix::fs::symlink(&real, &d.path).unwrap();
    assert_eq!(fallback_reason(&d).code(), "symlink");
    // The same content through a plain file is fine: the refusal is about the link.
    std::fs::remove_file(&d.path).unwrap();
    std::fs::copy(&real, &d.path).unwrap();
    let (client, _) = offline_client(&d.path, T0 + 60);
    assert_eq!(client.effective_tier().tier, "paid");
}

#[test]
fn directory_in_place_of_the_file_is_refused() {
    let d = dir();
    std::fs::create_dir(&d.path).unwrap();
    assert_eq!(fallback_reason(&d).code(), "not_a_file");
}

#[test]
fn file_written_by_the_seed_python_client_loads() {
    let d = dir();
    write_seed_file(&d.path, &token_at(T0), None);
    let (client, _) = offline_client(&d.path, T0 + 60);
    let status = client.verify_local().unwrap();
    assert_eq!(status.tier(), "paid");
    assert_eq!(status.key_display.as_deref(), Some(KEY));
    assert!(!status.in_grace);
}

#[test]
fn seed_minimal_file_with_only_jwt_and_grace_until_loads() {
    // The seed's tier-integration test writes only these two fields.
    let d = dir();
    let text = format!(r#"{{"jwt": "{}", "grace_until": null}}"#, token_at(T0));
    std::fs::write(&d.path, text).unwrap();
    let (client, _) = offline_client(&d.path, T0 + 60);
    assert_eq!(client.effective_tier().tier, "paid");
}

#[test]
fn written_file_has_the_seed_fields_and_round_trips() {
    let d = dir();
    let file = LicenseFile {
        jwt: token_at(T0),
        key_display: Some(KEY.into()),
        tier: Some("paid".into()),
        valid_until: None,
        machine_id: Some(MACHINE.into()),
        last_refresh: Some("2027-01-15T08:00:00.000000+00:00".into()),
        grace_until: None,
        extra: Default::default(),
    };
    file.write(&d.path).unwrap();
    let json: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&d.path).unwrap()).unwrap();
    let mut keys: Vec<&str> = json.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut want = SEED_FIELDS.to_vec();
    want.sort_unstable();
    assert_eq!(keys, want);
    assert!(json["valid_until"].is_null());
    assert_eq!(LicenseFile::read(&d.path).unwrap(), file);
}

#[test]
fn unknown_fields_survive_a_rewrite() {
    let d = dir();
    let text = format!(r#"{{"jwt": "{}", "future_field": [1, 2]}}"#, token_at(T0));
    std::fs::write(&d.path, text).unwrap();
    let file = LicenseFile::read(&d.path).unwrap();
    file.write(&d.path).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&d.path).unwrap()).unwrap();
    assert_eq!(json["future_field"], serde_json::json!([1, 2]));
}

#[cfg(unix)]
#[test]
fn write_is_atomic_with_mode_0600_and_leaves_no_temporary_files() {
    use std::os::unix::fs::PermissionsExt;
    let d = dir();
    // An old, world-readable file is replaced, not rewritten in place.
    std::fs::write(&d.path, "old").unwrap();
    std::fs::set_permissions(&d.path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let file = LicenseFile {
        jwt: token_at(T0),
        key_display: None,
        tier: None,
        valid_until: None,
        machine_id: None,
        last_refresh: None,
        grace_until: None,
        extra: Default::default(),
    };
    file.write(&d.path).unwrap();
    let mode = std::fs::metadata(&d.path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let names: Vec<String> = std::fs::read_dir(d.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["license.json".to_string()]);
}

#[test]
fn write_creates_missing_parent_directories() {
    let d = dir();
    let nested = d.dir.path().join("config").join("license.json");
    write_seed_file(&d.path, &token_at(T0), None);
    let file = LicenseFile::read(&d.path).unwrap();
    file.write(&nested).unwrap();
    assert_eq!(LicenseFile::read(&nested).unwrap(), file);
}
