//! Shared, read-only state handed to every handler.

use std::sync::Arc;

use tessera_core::clock::Clock;
use tessera_core::{Signer, Verifier};

use crate::keyring::KeyRing;
use crate::store::Store;
use crate::verified::VerifiedTokens;

/// Token policy: the seed's `JWT_EXPIRY_DAYS`, `GRACE_PERIOD_DAYS` and `SERVER_NOTICE`.
#[derive(Debug, Clone)]
pub struct Policy {
    pub jwt_expiry_days: i64,
    pub grace_period_days: i64,
    pub server_notice: Option<String>,
}

impl Policy {
    pub fn grace_secs(&self) -> i64 {
        tessera_core::expiry::days(self.grace_period_days)
    }
}

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub signer: Arc<Signer>,
    pub keyring: Arc<KeyRing>,
    pub verifier: Arc<Verifier>,
    /// Bearer tokens of `/v1/usage` and `/v1/flag`, verified once.
    pub bearer_tokens: Arc<VerifiedTokens>,
    pub admin_token_digest: [u8; 32],
    pub policy: Arc<Policy>,
    pub clock: Arc<dyn Clock>,
}
