//! The instance id: a UUID kept in `{cache_dir}/instance-id`, created on first use and reused
//! afterwards, so the backend counts one instance per installation.

use std::path::Path;

use crate::fsio::{self, ReadError};

pub const INSTANCE_ID_FILE: &str = "instance-id";

/// The instance id stored in `cache_dir`, creating (atomically, 0600, directory 0700) a new
/// one when there is none or the file is damaged. When it cannot be stored the id is still
/// returned, with a warning: it will differ on the next start.
pub fn instance_id(cache_dir: &Path) -> String {
    let path = cache_dir.join(INSTANCE_ID_FILE);
    match fsio::read_small(&path, 1024) {
        Ok(bytes) => {
            let parsed = std::str::from_utf8(&bytes)
                .ok()
                .and_then(|s| uuid::Uuid::parse_str(s.trim()).ok());
            if let Some(id) = parsed {
                return id.hyphenated().to_string();
            }
            tracing::warn!(path = %path.display(), "instance id file is damaged; creating a new instance id");
        }
        Err(ReadError::Missing) => {}
        Err(e) => {
            tracing::warn!(path = %path.display(), error = ?e, "instance id file is unusable; creating a new instance id");
        }
    }
    let id = uuid::Uuid::new_v4().hyphenated().to_string();
    let stored = fsio::create_private_dir(cache_dir)
        .and_then(|()| fsio::write_atomic(&path, format!("{id}\n").as_bytes()));
    if let Err(e) = stored {
        tracing::warn!(path = %path.display(), error = %e, "could not store the instance id; it will change on restart");
    }
    id
}
