//! API-key mode: vendor keys with a `kid`, signed tokens, managers on a fixed clock, and a log
//! capture to assert on what the operator sees.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::json;
use tessera_client::{ApiKeyConfig, LicenseManager, RefreshSchedule, TierTable};
use tessera_core::apikey::ApiKeyClaims;
use tessera_core::clock::{Clock, FixedClock};
use tessera_core::expiry::days;
use tessera_core::{Signer, keys};
use wiremock::ResponseTemplate;

pub const ISSUER: &str = "https://license.softclient4es.com";
pub const API_KEY: &str = "sk-0123456789abcdef0123456789abcdef";
pub const KID: &str = "sc4es-test";
pub const RSA_KID: &str = "sc4es-rsa";
pub const VERSION: &str = "9.9.9";
pub const FETCH_TIMEOUT: Duration = Duration::from_millis(300);

pub struct VendorKey {
    pub signer: Signer,
    pub public_pem: String,
}

fn ed25519(kid: &str) -> VendorKey {
    let pair = keys::generate_ed25519().unwrap();
    VendorKey {
        signer: Signer::from_pem(pair.private_pem.as_bytes(), Some(kid.into())).unwrap(),
        public_pem: pair.public_pem,
    }
}

/// The vendor's Ed25519 key the client embeds (kid [`KID`]).
pub fn ed_vendor() -> &'static VendorKey {
    static K: OnceLock<VendorKey> = OnceLock::new();
    K.get_or_init(|| ed25519(KID))
}

/// The vendor's RSA key (kid [`RSA_KID`]), for products configured with RS256.
pub fn rsa_vendor() -> &'static VendorKey {
    static K: OnceLock<VendorKey> = OnceLock::new();
    K.get_or_init(|| {
        let pair = keys::generate_rsa().unwrap();
        VendorKey {
            signer: Signer::from_pem(pair.private_pem.as_bytes(), Some(RSA_KID.into())).unwrap(),
            public_pem: pair.public_pem,
        }
    })
}

/// Someone else's Ed25519 key that claims the vendor's kid.
pub fn impostor() -> &'static VendorKey {
    static K: OnceLock<VendorKey> = OnceLock::new();
    K.get_or_init(|| ed25519(KID))
}

/// Claims as the server issues them for `tier` of the softclient4es catalog.
pub fn tier_claims(tier: &str, iat: i64, exp: i64) -> ApiKeyClaims {
    let table = TierTable::default();
    let spec = table.spec(table.rank(tier).unwrap_or(0)).clone();
    ApiKeyClaims {
        iss: ISSUER.into(),
        sub: "key-1".into(),
        tier: tier.into(),
        features: spec.features,
        quotas: spec.quotas,
        iat,
        exp,
        jti: format!("jti-{tier}-{iat}"),
        org_name: Some("Acme".into()),
        trial: false,
    }
}

/// An Ed25519 token for `tier`, issued at `iat`, valid one day.
pub fn jwt(tier: &str, iat: i64) -> String {
    ed_vendor()
        .signer
        .sign(&tier_claims(tier, iat, iat + days(1)))
        .unwrap()
}

pub fn sign(claims: &ApiKeyClaims) -> String {
    ed_vendor().signer.sign(claims).unwrap()
}

pub fn token_body(jwt: &str, message: Option<&str>) -> serde_json::Value {
    json!({"jwt": jwt, "expires_in": 86_400, "message": message})
}

pub fn ok_token(jwt: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(token_body(jwt, None))
}

pub fn revoked() -> ResponseTemplate {
    ResponseTemplate::new(401).set_body_json(json!({
        "error": "api_key_revoked",
        "message": "API key has been revoked. Contact sales@example.com.",
    }))
}

/// A configuration against `backend`, caching under `cache_dir`, trusting the Ed25519 key.
pub fn api_config(backend: &str, cache_dir: &Path) -> ApiKeyConfig {
    ApiKeyConfig::new(backend, ISSUER, cache_dir)
        .with_api_key(API_KEY)
        .with_public_key(Some(KID), ed_vendor().public_pem.as_bytes().to_vec())
        .with_app_version(VERSION)
        .with_timeout(FETCH_TIMEOUT)
        .with_refresh(RefreshSchedule {
            interval: Duration::from_secs(3600),
            jitter: Duration::ZERO,
            retry_interval: Duration::from_secs(3600),
        })
}

pub async fn start(cfg: ApiKeyConfig, unix: i64) -> (LicenseManager, Arc<FixedClock>) {
    crate::helpers::init_logs();
    let clock = Arc::new(FixedClock::at(unix));
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    (
        LicenseManager::start_with_clock(cfg, dyn_clock)
            .await
            .unwrap(),
        clock,
    )
}

/// A temporary cache directory (a subdirectory that does not exist yet).
pub struct CacheDir {
    _root: tempfile::TempDir,
    pub path: PathBuf,
}

pub fn cache_dir() -> CacheDir {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("tessera-cache");
    CacheDir { _root: root, path }
}

impl CacheDir {
    pub fn cache_file(&self) -> PathBuf {
        self.path.join("license-cache.jwt")
    }

    /// Puts `jwt` in the cache as an earlier fetch would have.
    pub fn seed(&self, jwt: &str) {
        std::fs::create_dir_all(&self.path).unwrap();
        std::fs::write(self.cache_file(), jwt).unwrap();
    }
}

/// What the subscriber installed by [`capture_logs`] wrote, one event per line, no colours.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// A line at `level` (`INFO`, `WARN`, `ERROR`) containing `needle`.
    pub fn has(&self, level: &str, needle: &str) -> bool {
        self.text()
            .lines()
            .any(|l| l.trim_start().starts_with(level) && l.contains(needle))
    }

    /// Asserts [`Logs::has`], showing the captured logs when it fails.
    pub fn assert_has(&self, level: &str, needle: &str) {
        assert!(
            self.has(level, needle),
            "no {level} line containing {needle:?} in:\n{}",
            self.text()
        );
    }

    pub fn count(&self, needle: &str) -> usize {
        self.text().lines().filter(|l| l.contains(needle)).count()
    }
}

pub struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = LogWriter;
    fn make_writer(&'a self) -> Self::Writer {
        LogWriter(self.0.clone())
    }
}

/// Captures the logs of this thread (a `#[tokio::test]` runs its tasks on it) until the guard
/// is dropped.
pub fn capture_logs() -> (Logs, tracing::subscriber::DefaultGuard) {
    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .without_time()
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    (logs, guard)
}
