//! Keys, tokens, license files and clients for the tests.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tessera_client::{ClientConfig, LicenseClient};
use tessera_core::clock::{Clock, FixedClock};
use tessera_core::expiry::days;
use tessera_core::{LicenseClaims, Signer, keys};

pub const PRODUCT: &str = "peregrine";
pub const MACHINE: &str = "machine-under-test";
pub const KEY: &str = "CFG-PRNG-AAAA-BBBB-CCCC";
/// A fixed "now" for tests on an injected clock (2027-01-15T08:00:00Z).
pub const T0: i64 = 1_800_000_000;
pub const TIMEOUT: Duration = Duration::from_millis(300);

pub struct Keys {
    pub public_pem: String,
    signer: Signer,
}

impl Keys {
    fn generate() -> Self {
        let pair = keys::generate_rsa().unwrap();
        Self {
            signer: Signer::from_pem(pair.private_pem.as_bytes(), None).unwrap(),
            public_pem: pair.public_pem,
        }
    }

    pub fn sign(&self, claims: &LicenseClaims) -> String {
        self.signer.sign(claims).unwrap()
    }
}

/// The vendor key the client trusts.
pub fn vendor() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(Keys::generate)
}

/// Somebody else's key.
pub fn stranger() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(Keys::generate)
}

pub fn claims(iat: i64, exp: i64) -> LicenseClaims {
    LicenseClaims {
        sub: KEY.into(),
        product: PRODUCT.into(),
        tier: "paid".into(),
        seats: 2,
        machine: MACHINE.into(),
        iat,
        exp,
        notice: None,
    }
}

/// A vendor-signed token issued at `iat`, valid for 30 days.
pub fn token_at(iat: i64) -> String {
    vendor().sign(&claims(iat, iat + days(30)))
}

/// Client logs go to the test output only when `TEST_LOG` is set.
pub fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("tessera_client=debug")
            .with_test_writer()
            .try_init();
    }
}

/// A temporary directory with a license path inside it.
pub struct Dir {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

pub fn dir() -> Dir {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("license.json");
    Dir { dir, path }
}

pub fn config(server_url: &str, path: &Path) -> ClientConfig {
    ClientConfig::new(
        server_url,
        PRODUCT,
        vendor().public_pem.as_bytes().to_vec(),
        path,
    )
    .with_machine_id(MACHINE)
    .with_timeout(TIMEOUT)
    .with_app_version("1.2.3")
}

/// A client on a fixed clock at `unix`; the server URL points nowhere useful.
pub fn offline_client(path: &Path, unix: i64) -> (LicenseClient, Arc<FixedClock>) {
    client_with(config("http://127.0.0.1:9", path), unix)
}

pub fn client_with(cfg: ClientConfig, unix: i64) -> (LicenseClient, Arc<FixedClock>) {
    init_logs();
    let clock = Arc::new(FixedClock::at(unix));
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    (LicenseClient::with_clock(cfg, dyn_clock).unwrap(), clock)
}

/// A license file exactly as the seed's Python client writes it (`json.dumps(data, indent=2)`).
pub fn write_seed_file(path: &Path, jwt: &str, grace_until: Option<&str>) {
    let grace = grace_until.map_or("null".to_string(), |g| format!("\"{g}\""));
    let text = format!(
        r#"{{
  "jwt": "{jwt}",
  "key_display": "{KEY}",
  "tier": "paid",
  "valid_until": null,
  "machine_id": "{MACHINE}",
  "last_refresh": "2027-01-15T07:59:59.123456+00:00",
  "grace_until": {grace}
}}"#
    );
    std::fs::write(path, text).unwrap();
}

/// The seed's field names, which every file we write must carry.
pub const SEED_FIELDS: [&str; 7] = [
    "jwt",
    "key_display",
    "tier",
    "valid_until",
    "machine_id",
    "last_refresh",
    "grace_until",
];

/// A port with nothing listening on it.
pub fn refused_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// Waits (up to 5 s) until `cond` holds.
pub async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..100 {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cond()
}
