//! `{cache_dir}/license-cache.jwt`: the raw JWT of the last successful fetch. Written atomically
//! (0600, in a directory created 0700); a symlink or a file over 64 KiB is ignored, never
//! followed or read.

use std::path::{Path, PathBuf};

use crate::fsio::{self, ReadError};

pub const CACHE_FILE: &str = "license-cache.jwt";
/// Larger cache files are ignored unread.
pub const MAX_CACHE_BYTES: u64 = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    #[error("no cached license at {0}")]
    Missing(PathBuf),
    #[error("cached license {0} is a symbolic link; ignoring it")]
    Symlink(PathBuf),
    #[error("cached license {0} is not a regular file; ignoring it")]
    NotAFile(PathBuf),
    #[error(
        "cached license {path} is {size} bytes, over the {MAX_CACHE_BYTES}-byte limit; ignoring it"
    )]
    TooLarge { path: PathBuf, size: u64 },
    #[error("cached license {0} is not a JWT")]
    Garbage(PathBuf),
    #[error("cached license {path}: {message}")]
    Io { path: PathBuf, message: String },
}

impl CacheError {
    /// Refused before reading (left in place): a symlink, not a file, too large.
    pub fn is_ignored(&self) -> bool {
        matches!(
            self,
            CacheError::Symlink(_) | CacheError::NotAFile(_) | CacheError::TooLarge { .. }
        )
    }
}

/// The cache file in one directory.
#[derive(Debug, Clone)]
pub struct LicenseCache {
    dir: PathBuf,
    path: PathBuf,
}

impl LicenseCache {
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        let dir = cache_dir.into();
        let path = dir.join(CACHE_FILE);
        Self { dir, path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cached JWT (whitespace trimmed).
    pub fn read(&self) -> Result<String, CacheError> {
        let p = || self.path.clone();
        let bytes = fsio::read_small(&self.path, MAX_CACHE_BYTES).map_err(|e| match e {
            ReadError::Missing => CacheError::Missing(p()),
            ReadError::Symlink => CacheError::Symlink(p()),
            ReadError::NotAFile => CacheError::NotAFile(p()),
            ReadError::TooLarge(size) => CacheError::TooLarge { path: p(), size },
            ReadError::Io(e) => CacheError::Io {
                path: p(),
                message: e.to_string(),
            },
        })?;
        let text = String::from_utf8(bytes).map_err(|_| CacheError::Garbage(p()))?;
        let jwt = text.trim();
        if jwt.is_empty() || jwt.split('.').count() != 3 {
            return Err(CacheError::Garbage(p()));
        }
        Ok(jwt.to_string())
    }

    /// Writes the raw JWT atomically, mode 0600; creates the directory (0700) when missing.
    pub fn write(&self, jwt: &str) -> Result<(), CacheError> {
        let io = |e: std::io::Error| CacheError::Io {
            path: self.path.clone(),
            message: e.to_string(),
        };
        fsio::create_private_dir(&self.dir).map_err(io)?;
        fsio::write_atomic(&self.path, jwt.as_bytes()).map_err(io)
    }

    /// Deletes the cache file; a missing one is fine.
    pub fn remove(&self) -> Result<(), CacheError> {
        fsio::remove_if_present(&self.path).map_err(|e| CacheError::Io {
            path: self.path.clone(),
            message: e.to_string(),
        })
    }
}
