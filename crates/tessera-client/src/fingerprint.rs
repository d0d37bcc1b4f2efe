//! The machine fingerprint: stable across restarts of one machine, different on another, and a
//! hash — no hostname, MAC address or machine id leaves the machine in clear.
//!
//! Sources, best first: `/etc/machine-id` (or D-Bus's copy), which systemd keeps stable for the
//! life of an installation; otherwise the hostname plus the lowest MAC address of a physical
//! network interface (the seed's `hostname-MAC` idea, without virtual interfaces such as
//! `docker0` whose addresses change). Containers without a stable machine id should set
//! [`crate::ClientConfig::machine_id`].

use aws_lc_rs::digest;

use crate::error::ClientError;

const DOMAIN: &str = "tessera-machine-v1";

/// The raw inputs, before hashing. Split out so the hashing is testable without a machine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FingerprintSources {
    pub machine_id: Option<String>,
    pub hostname: Option<String>,
    pub mac: Option<String>,
}

impl FingerprintSources {
    /// Reads the sources of this machine.
    pub fn collect() -> Self {
        Self {
            machine_id: first_line_of(&["/etc/machine-id", "/var/lib/dbus/machine-id"]),
            hostname: hostname(),
            mac: lowest_physical_mac(),
        }
    }
}

/// Hex SHA-256 over domain-separated inputs; `None` when there is nothing stable to hash.
pub fn fingerprint_from(sources: &FingerprintSources) -> Option<String> {
    let input = match (&sources.machine_id, &sources.hostname, &sources.mac) {
        (Some(id), _, _) => format!("{DOMAIN}\nmachine-id\n{id}"),
        (None, None, None) => return None,
        (None, host, mac) => format!(
            "{DOMAIN}\nhost\n{}\n{}",
            host.as_deref().unwrap_or(""),
            mac.as_deref().unwrap_or("")
        ),
    };
    Some(hex::encode(digest::digest(
        &digest::SHA256,
        input.as_bytes(),
    )))
}

/// This machine's fingerprint (64 hex characters).
pub fn machine_fingerprint() -> Result<String, ClientError> {
    fingerprint_from(&FingerprintSources::collect()).ok_or_else(|| {
        ClientError::Fingerprint(
            "no machine id, hostname or network address found; set ClientConfig::machine_id".into(),
        )
    })
}

fn clean(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty() && s.len() <= 256).then(|| s.to_string())
}

fn first_line_of(paths: &[&str]) -> Option<String> {
    paths.iter().find_map(|p| {
        let text = std::fs::read_to_string(p).ok()?;
        clean(text.lines().next().unwrap_or(""))
    })
}

fn hostname() -> Option<String> {
    first_line_of(&["/proc/sys/kernel/hostname", "/etc/hostname"])
        .or_else(|| std::env::var("HOSTNAME").ok().and_then(|h| clean(&h)))
        .or_else(|| std::env::var("COMPUTERNAME").ok().and_then(|h| clean(&h)))
}

/// The lowest MAC among interfaces backed by a device (physical NICs), ignoring all-zero ones.
fn lowest_physical_mac() -> Option<String> {
    let entries = std::fs::read_dir("/sys/class/net").ok()?;
    entries
        .filter_map(Result::ok)
        .filter(|e| e.path().join("device").exists())
        .filter_map(|e| std::fs::read_to_string(e.path().join("address")).ok())
        .filter_map(|a| clean(&a))
        .filter(|a| a.chars().any(|c| c != '0' && c != ':'))
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_id_wins_and_is_hashed() {
        let s = FingerprintSources {
            machine_id: Some("0123456789abcdef".into()),
            hostname: Some("alice-laptop".into()),
            mac: None,
        };
        let fp = fingerprint_from(&s).unwrap();
        assert_eq!(fp.len(), 64);
        assert!(fp.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(!fp.contains("0123456789abcdef"));
        let other_host = FingerprintSources {
            hostname: Some("renamed".into()),
            ..s.clone()
        };
        assert_eq!(fingerprint_from(&other_host).unwrap(), fp);
    }

    #[test]
    fn different_inputs_give_different_fingerprints() {
        let a = FingerprintSources {
            hostname: Some("a".into()),
            ..Default::default()
        };
        let b = FingerprintSources {
            hostname: Some("b".into()),
            ..Default::default()
        };
        assert_ne!(fingerprint_from(&a), fingerprint_from(&b));
        assert_eq!(fingerprint_from(&FingerprintSources::default()), None);
    }
}
