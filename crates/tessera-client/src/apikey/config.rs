//! What an app in API-key mode configures: backend, key, issuer, embedded public keys, cache
//! directory, the tier table, timeouts and the refresh schedule.

use std::path::PathBuf;
use std::time::Duration;

use tessera_core::Verifier;
use tessera_core::apikey::looks_like_api_key;

use crate::error::ClientError;
use crate::tiers::TierTable;

use super::token::DEFAULT_GRACE_SECS;

/// An `sk-…` API key. A secret: its `Debug` shows only that it is there.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Surrounding whitespace (a newline from a file or an environment variable) is dropped.
    /// The shape is checked before each fetch, not here.
    pub fn new(key: impl Into<String>) -> Self {
        let key = key.into();
        Self(key.trim().to_string())
    }

    /// Starts with `sk-` and has something after it (printable ASCII, at most 256 bytes).
    pub fn is_well_formed(&self) -> bool {
        looks_like_api_key(&self.0)
    }

    /// The secret itself, for the `Authorization` header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// A public key the app embeds: PEM (RSA or Ed25519; the algorithm follows from the key) and
/// the `kid` tokens signed with it carry.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub kid: Option<String>,
    pub pem: Vec<u8>,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey")
            .field("kid", &self.kid)
            .field("pem", &format_args!("{} bytes", self.pem.len()))
            .finish()
    }
}

/// When the background refresh runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshSchedule {
    /// Between two refreshes (default 24 h).
    pub interval: Duration,
    /// Each wait is moved by a random amount within ± this (default 10 % of 24 h), so a fleet
    /// restarted together does not refresh together.
    pub jitter: Duration,
    /// The wait after a refresh that fell back (backend unreachable or refusing): default 1 h.
    pub retry_interval: Duration,
}

impl Default for RefreshSchedule {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(24 * 3600),
            jitter: Duration::from_secs(24 * 360),
            retry_interval: Duration::from_secs(3600),
        }
    }
}

/// API-key mode settings. Build with [`ApiKeyConfig::new`] and the `with_*` methods.
#[derive(Clone)]
pub struct ApiKeyConfig {
    /// Base URL of the license backend, e.g. `https://license.example.com`.
    pub backend_url: String,
    pub api_key: Option<ApiKey>,
    /// A JWT given directly (air-gapped installs); tried first, accepted in grace.
    pub static_jwt: Option<String>,
    /// The `iss` every token must carry, compared exactly.
    pub issuer: String,
    pub public_keys: Vec<PublicKey>,
    /// JWKS documents (`{"keys": [...]}`) the app embeds, e.g. a copy of the server's
    /// `/.well-known/jwks.json`.
    pub jwks: Vec<String>,
    /// Holds `instance-id` and `license-cache.jwt`; created 0700 when missing.
    pub cache_dir: PathBuf,
    /// Sent as `version` with each fetch.
    pub app_version: Option<String>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// Grace after `exp` for the static JWT and the cache (default 14 days). Never for a fetch.
    pub grace_secs: i64,
    pub refresh: RefreshSchedule,
    pub tiers: TierTable,
}

impl ApiKeyConfig {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

    pub fn new(
        backend_url: impl Into<String>,
        issuer: impl Into<String>,
        cache_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            backend_url: backend_url.into(),
            api_key: None,
            static_jwt: None,
            issuer: issuer.into(),
            public_keys: Vec::new(),
            jwks: Vec::new(),
            cache_dir: cache_dir.into(),
            app_version: None,
            connect_timeout: Self::DEFAULT_TIMEOUT,
            read_timeout: Self::DEFAULT_TIMEOUT,
            grace_secs: DEFAULT_GRACE_SECS,
            refresh: RefreshSchedule::default(),
            tiers: TierTable::default(),
        }
    }

    pub fn with_api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(ApiKey::new(key));
        self
    }

    pub fn with_static_jwt(mut self, jwt: impl Into<String>) -> Self {
        self.static_jwt = Some(jwt.into().trim().to_string());
        self
    }

    /// Trusts a public key (PEM) for tokens whose header carries `kid` (or none).
    pub fn with_public_key(mut self, kid: Option<&str>, pem: impl Into<Vec<u8>>) -> Self {
        self.public_keys.push(PublicKey {
            kid: kid.map(str::to_string),
            pem: pem.into(),
        });
        self
    }

    pub fn with_jwks(mut self, jwks_json: impl Into<String>) -> Self {
        self.jwks.push(jwks_json.into());
        self
    }

    pub fn with_app_version(mut self, version: impl Into<String>) -> Self {
        self.app_version = Some(version.into());
        self
    }

    /// Both the connect and the read timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self.read_timeout = timeout;
        self
    }

    pub fn with_tiers(mut self, tiers: TierTable) -> Self {
        self.tiers = tiers;
        self
    }

    pub fn with_refresh(mut self, refresh: RefreshSchedule) -> Self {
        self.refresh = refresh;
        self
    }

    pub fn with_grace_secs(mut self, secs: i64) -> Self {
        self.grace_secs = secs;
        self
    }

    /// A verifier trusting every configured key, each pinned to its own algorithm.
    pub fn verifier(&self) -> Result<Verifier, ClientError> {
        let mut v = Verifier::default();
        for k in &self.public_keys {
            v.trust_pem(&k.pem, k.kid.clone()).map_err(|e| {
                ClientError::Config(format!(
                    "public key {}: {e}",
                    k.kid.as_deref().unwrap_or("(no kid)")
                ))
            })?;
        }
        for doc in &self.jwks {
            let set: jsonwebtoken::jwk::JwkSet =
                serde_json::from_str(doc).map_err(|e| ClientError::Config(format!("JWKS: {e}")))?;
            for jwk in &set.keys {
                // Keys of other types (e.g. a future EC key) are skipped, not fatal.
                if let Err(e) = v.trust_jwk(jwk) {
                    tracing::debug!(error = %e, kid = ?jwk.common.key_id, "JWKS key skipped");
                }
            }
        }
        if v.is_empty() {
            return Err(ClientError::Config(
                "no public key to verify license tokens with".into(),
            ));
        }
        Ok(v)
    }

    pub(crate) fn validate(&self) -> Result<(), ClientError> {
        let bad = |m: &str| Err(ClientError::Config(m.to_string()));
        if self.issuer.trim().is_empty() {
            return bad("issuer is empty");
        }
        if self.api_key.is_some() {
            match reqwest::Url::parse(&self.backend_url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                _ => return bad("backend_url must be an http:// or https:// URL"),
            }
        }
        if self.connect_timeout.is_zero() || self.read_timeout.is_zero() {
            return bad("timeouts must be more than zero");
        }
        if !(0..=3650 * 86_400).contains(&self.grace_secs) {
            return bad("grace must be between 0 and 3650 days");
        }
        if self.refresh.interval.is_zero() || self.refresh.retry_interval.is_zero() {
            return bad("refresh intervals must be more than zero");
        }
        Ok(())
    }
}

impl std::fmt::Debug for ApiKeyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyConfig")
            .field("backend_url", &self.backend_url)
            .field("api_key", &self.api_key)
            .field(
                "static_jwt",
                &self.static_jwt.as_ref().map(|_| "<redacted>"),
            )
            .field("issuer", &self.issuer)
            .field("public_keys", &self.public_keys)
            .field("jwks", &self.jwks.len())
            .field("cache_dir", &self.cache_dir)
            .field("app_version", &self.app_version)
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("grace_secs", &self.grace_secs)
            .field("refresh", &self.refresh)
            .field("tiers", &self.tiers)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_api_key_or_the_static_jwt() {
        let cfg = ApiKeyConfig::new("http://x", "iss", "/tmp/c")
            .with_api_key("sk-supersecret\n")
            .with_static_jwt("eyJhbGciOi.secret.part");
        let text = format!("{cfg:?}");
        assert!(!text.contains("supersecret"), "{text}");
        assert!(!text.contains("eyJhbGciOi"), "{text}");
        assert_eq!(cfg.api_key.unwrap().expose(), "sk-supersecret");
    }
}
