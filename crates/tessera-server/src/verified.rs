//! License tokens whose signature has been checked, remembered by their exact text.
//!
//! An application sends every usage event and flag with the token it cached at activation,
//! the same bytes for hours; checking an RS256 signature costs ~25 µs of CPU, most of what
//! such a request costs the server. A token is immutable and the server's trusted keys are
//! fixed for its lifetime, so a signature that verified once verifies again: only the
//! decoded claims are remembered, and expiry is still decided on every request, against the
//! clock, by the caller. Only verified tokens enter, so invalid ones cannot crowd out valid
//! ones, and the capacity bounds the memory (~1 KB an entry).

use std::sync::Arc;

use quick_cache::sync::Cache;
use tessera_core::Verifier;
use tessera_core::claims::LicenseClaims;
use tessera_core::jwt::JwtError;

/// Distinct tokens remembered: about one per active machine sending events.
pub const DEFAULT_CAPACITY: usize = 4_096;

pub struct VerifiedTokens {
    verifier: Arc<Verifier>,
    cache: Cache<Box<str>, Arc<LicenseClaims>>,
}

impl VerifiedTokens {
    pub fn new(verifier: Arc<Verifier>, capacity: usize) -> Self {
        Self {
            verifier,
            cache: Cache::new(capacity.max(1)),
        }
    }

    /// The claims of `token` if its signature is one of the trusted keys'. Expiry is not
    /// checked here.
    pub fn decode(&self, token: &str) -> Result<Arc<LicenseClaims>, JwtError> {
        if let Some(claims) = self.cache.get(token) {
            return Ok(claims);
        }
        let claims = Arc::new(self.verifier.decode::<LicenseClaims>(token)?);
        self.cache.insert(token.into(), Arc::clone(&claims));
        Ok(claims)
    }
}
