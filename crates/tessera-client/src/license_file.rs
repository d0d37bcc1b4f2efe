//! The license file: the seed's JSON, read defensively and written atomically.
//!
//! Reading refuses symlinks, non-files and anything over [`MAX_FILE_BYTES`], and turns every kind
//! of damage into a typed [`LicenseFileError`]. Writing goes to a temporary file in the same
//! directory (mode 0600), is fsynced, then renamed over the old file, so a crash leaves either
//! the old file or the new one, never half of one. Both are shared with the API-key cache
//! (`crate::fsio`).
//!
//! The clock high-water mark lives in a sidecar file next to the license (`<name>.clock`), so
//! recording it never rewrites the license itself.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::fsio::{self, ReadError};

/// Larger files are refused unread.
pub const MAX_FILE_BYTES: u64 = 64 * 1024;

/// The seed's license file, field for field. Unknown fields are kept, so a newer writer's
/// additions survive a rewrite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LicenseFile {
    pub jwt: String,
    #[serde(default)]
    pub key_display: Option<String>,
    #[serde(default)]
    pub tier: Option<String>,
    #[serde(default)]
    pub valid_until: Option<String>,
    #[serde(default)]
    pub machine_id: Option<String>,
    #[serde(default)]
    pub last_refresh: Option<String>,
    /// Written for the seed's Python client (the token's signed `exp` plus the grace period).
    /// Never read for a decision: anyone can edit it.
    #[serde(default)]
    pub grace_until: Option<String>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LicenseFileError {
    #[error("no license file at {0}")]
    Missing(PathBuf),
    #[error("license file {0} is a symbolic link; refusing to follow it")]
    Symlink(PathBuf),
    #[error("license file {0} is not a regular file")]
    NotAFile(PathBuf),
    #[error("license file {path} is {size} bytes, over the {MAX_FILE_BYTES}-byte limit")]
    TooLarge { path: PathBuf, size: u64 },
    #[error("license file {0} is truncated")]
    Truncated(PathBuf),
    #[error("license file {path} is not a license file: {message}")]
    Garbage { path: PathBuf, message: String },
    #[error("cannot read license file {path}: {message}")]
    Unreadable { path: PathBuf, message: String },
    #[error("cannot write license file {path}: {message}")]
    Write { path: PathBuf, message: String },
}

impl LicenseFileError {
    /// A short stable name for logs and `--output json`.
    pub fn code(&self) -> &'static str {
        match self {
            LicenseFileError::Missing(_) => "missing",
            LicenseFileError::Symlink(_) => "symlink",
            LicenseFileError::NotAFile(_) => "not_a_file",
            LicenseFileError::TooLarge { .. } => "too_large",
            LicenseFileError::Truncated(_) => "truncated",
            LicenseFileError::Garbage { .. } => "garbage",
            LicenseFileError::Unreadable { .. } => "unreadable",
            LicenseFileError::Write { .. } => "write_failed",
        }
    }
}

/// Reads at most [`MAX_FILE_BYTES`] from a regular file that is not a symlink.
fn read_small(path: &Path) -> Result<Vec<u8>, LicenseFileError> {
    let p = || path.to_path_buf();
    fsio::read_small(path, MAX_FILE_BYTES).map_err(|e| match e {
        ReadError::Missing => LicenseFileError::Missing(p()),
        ReadError::Symlink => LicenseFileError::Symlink(p()),
        ReadError::NotAFile => LicenseFileError::NotAFile(p()),
        ReadError::TooLarge(size) => LicenseFileError::TooLarge { path: p(), size },
        ReadError::Io(e) => LicenseFileError::Unreadable {
            path: p(),
            message: e.to_string(),
        },
    })
}

impl LicenseFile {
    /// Reads and parses the license file. Never panics; every failure is a typed error.
    pub fn read(path: &Path) -> Result<Self, LicenseFileError> {
        let bytes = read_small(path)?;
        Self::parse(path, &bytes)
    }

    fn parse(path: &Path, bytes: &[u8]) -> Result<Self, LicenseFileError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(LicenseFileError::Truncated(path.to_path_buf()));
        }
        let file: LicenseFile = serde_json::from_slice(bytes).map_err(|e| {
            if e.is_eof() {
                LicenseFileError::Truncated(path.to_path_buf())
            } else {
                LicenseFileError::Garbage {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                }
            }
        })?;
        if file.jwt.trim().is_empty() {
            return Err(LicenseFileError::Garbage {
                path: path.to_path_buf(),
                message: "`jwt` is empty".into(),
            });
        }
        Ok(file)
    }

    /// Writes the file atomically with mode 0600.
    pub fn write(&self, path: &Path) -> Result<(), LicenseFileError> {
        let mut json = serde_json::to_vec_pretty(self).map_err(|e| LicenseFileError::Write {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        json.push(b'\n');
        write_atomic(path, &json)
    }

    /// Removes the license file and its clock sidecar. Missing files are not an error.
    pub fn remove(path: &Path) -> Result<(), LicenseFileError> {
        for p in [path.to_path_buf(), clock_path(path)] {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(LicenseFileError::Write {
                        path: p,
                        message: e.to_string(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// Writes `bytes` atomically with mode 0600 (see [`fsio::write_atomic`]).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), LicenseFileError> {
    fsio::write_atomic(path, bytes).map_err(|e| LicenseFileError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// The sidecar holding the clock high-water mark: `license.json` → `license.json.clock`.
pub fn clock_path(license_path: &Path) -> PathBuf {
    let mut name = license_path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".clock");
    license_path.with_file_name(name)
}

/// The latest time (unix seconds) this client has seen, or `None` when unknown or unreadable.
pub fn read_high_water(license_path: &Path) -> Option<i64> {
    let bytes = read_small(&clock_path(license_path)).ok()?;
    std::str::from_utf8(&bytes).ok()?.trim().parse().ok()
}

pub fn write_high_water(license_path: &Path, unix: i64) -> Result<(), LicenseFileError> {
    write_atomic(&clock_path(license_path), format!("{unix}\n").as_bytes())
}

/// `2026-01-02T03:04:05.000000+00:00`: what Python's `datetime.isoformat()` writes for UTC,
/// so the seed's client can parse what we write on any Python version.
pub fn python_isoformat(unix: i64) -> String {
    let fmt = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]+00:00"
    );
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(fmt).ok())
        .unwrap_or_else(|| unix.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_isoformat_matches_the_seed() {
        assert_eq!(python_isoformat(0), "1970-01-01T00:00:00.000000+00:00");
    }

    #[test]
    fn clock_sidecar_sits_next_to_the_license() {
        assert_eq!(
            clock_path(Path::new("/x/license.json")),
            PathBuf::from("/x/license.json.clock")
        );
    }

    #[test]
    fn seed_minimal_file_parses_and_empty_jwt_is_garbage() {
        let p = Path::new("l.json");
        let f = LicenseFile::parse(p, br#"{"jwt":"a.b.c","grace_until":null}"#).unwrap();
        assert_eq!(f.jwt, "a.b.c");
        assert!(matches!(
            LicenseFile::parse(p, br#"{"jwt":""}"#),
            Err(LicenseFileError::Garbage { .. })
        ));
        assert!(matches!(
            LicenseFile::parse(p, br#"{"jwt":"a.b"#),
            Err(LicenseFileError::Truncated(_))
        ));
    }
}
