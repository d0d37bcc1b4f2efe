//! API-key mode: an `sk-…` key is exchanged for a signed JWT at the license backend
//! (`POST {backend}/api/v1/licenses/token`), the JWT is verified offline against the public keys
//! the app embeds, cached on disk, and resolved with a static JWT, the cache and Community as
//! fallbacks (see [`crate::LicenseManager`]).

mod cache;
mod config;
mod fetch;
mod instance;
mod token;

pub use cache::{CACHE_FILE, CacheError, LicenseCache, MAX_CACHE_BYTES};
pub use config::{ApiKey, ApiKeyConfig, PublicKey, RefreshSchedule};
pub use fetch::{ApiKeyClient, FetchedToken, TOKEN_PATH};
pub use instance::{INSTANCE_ID_FILE, instance_id};
pub use token::{DEFAULT_GRACE_SECS, TokenError, Verified, grace_state, verify_token};
