//! The machine fingerprint: stable, hashed, used when no machine id is configured.

use tessera_client::fingerprint::{FingerprintSources, fingerprint_from, machine_fingerprint};
use tessera_client::{ClientConfig, LicenseClient};

use crate::helpers::{PRODUCT, dir, vendor};

#[test]
fn fingerprint_is_stable_across_calls_and_reveals_nothing_in_clear() {
    let first = machine_fingerprint().unwrap();
    let second = machine_fingerprint().unwrap();
    assert_eq!(first, second);
    assert_eq!(first.len(), 64);
    assert!(first.chars().all(|c| c.is_ascii_hexdigit()));
    let sources = FingerprintSources::collect();
    for raw in [&sources.machine_id, &sources.hostname, &sources.mac]
        .into_iter()
        .flatten()
    {
        assert!(!first.contains(raw.as_str()), "fingerprint contains {raw}");
    }
    assert_eq!(fingerprint_from(&sources).as_deref(), Some(first.as_str()));
}

#[test]
fn another_machine_gets_another_fingerprint() {
    let here = FingerprintSources::collect();
    let there = FingerprintSources {
        machine_id: Some(format!(
            "{}-other",
            here.machine_id.clone().unwrap_or_default()
        )),
        ..here.clone()
    };
    assert_ne!(fingerprint_from(&here), fingerprint_from(&there));
}

#[test]
fn client_uses_the_fingerprint_unless_a_machine_id_is_configured() {
    let d = dir();
    let cfg = ClientConfig::new(
        "http://127.0.0.1:9",
        PRODUCT,
        vendor().public_pem.as_bytes().to_vec(),
        &d.path,
    );
    let client = LicenseClient::new(cfg.clone()).unwrap();
    assert_eq!(client.machine_id(), machine_fingerprint().unwrap());
    let pinned = LicenseClient::new(cfg.with_machine_id("container-42")).unwrap();
    assert_eq!(pinned.machine_id(), "container-42");
}

#[test]
fn bad_configuration_is_refused_up_front() {
    let d = dir();
    let good = || {
        ClientConfig::new(
            "http://127.0.0.1:9",
            PRODUCT,
            vendor().public_pem.as_bytes().to_vec(),
            &d.path,
        )
        .with_machine_id("m")
    };
    assert!(LicenseClient::new(good()).is_ok());
    let mut no_key = good();
    no_key.public_key_pem = b"not a key".to_vec();
    let mut bad_url = good();
    bad_url.server_url = "ftp://example".into();
    let mut no_product = good();
    no_product.product = " ".into();
    for cfg in [
        no_key,
        bad_url,
        no_product,
        good().with_grace_days(-1),
        good().with_grace_days(i64::MAX),
    ] {
        assert!(
            matches!(
                LicenseClient::new(cfg),
                Err(tessera_client::ClientError::Config(_))
            ),
            "accepted a bad configuration"
        );
    }
}
