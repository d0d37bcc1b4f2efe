//! What the application tells the client: where the server is, which product it is, the vendor's
//! public key, where the license file lives, and the seed's thresholds.

use std::path::PathBuf;
use std::time::Duration;

/// Client settings. Build with [`ClientConfig::new`] (the seed's defaults) and adjust the public
/// fields as needed.
#[derive(Clone)]
pub struct ClientConfig {
    /// Base URL of the license server, e.g. `https://license.example.com`.
    pub server_url: String,
    /// The product this app is; a token for another product is refused.
    pub product: String,
    /// The vendor's public key as PEM bytes (apps usually `include_bytes!` it).
    pub public_key_pem: Vec<u8>,
    /// Where the license file is kept.
    pub license_path: PathBuf,
    /// Refresh when the token expires within this many days (seed: 5).
    pub refresh_before_days: i64,
    /// Keep working this many days past the token's signed `exp` (seed: 7).
    pub grace_days: i64,
    /// The tier to use when there is no valid license (seed: `"free"`).
    pub fallback_tier: String,
    /// Upper bound on every network call (seed: 10 s).
    pub timeout: Duration,
    /// Sent with activation and refresh.
    pub app_version: Option<String>,
    /// Overrides the computed machine fingerprint (containers without a stable `/etc/machine-id`,
    /// or an app migrating from another fingerprint scheme).
    pub machine_id: Option<String>,
    /// Capacity of the usage/flag report queue; a full queue drops (and counts) new reports.
    pub report_queue_capacity: usize,
}

impl ClientConfig {
    pub const DEFAULT_REFRESH_BEFORE_DAYS: i64 = 5;
    pub const DEFAULT_GRACE_DAYS: i64 = 7;
    pub const DEFAULT_FALLBACK_TIER: &'static str = "free";
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_REPORT_QUEUE_CAPACITY: usize = 256;

    pub fn new(
        server_url: impl Into<String>,
        product: impl Into<String>,
        public_key_pem: impl Into<Vec<u8>>,
        license_path: impl Into<PathBuf>,
    ) -> Self {
        Self {
            server_url: server_url.into(),
            product: product.into(),
            public_key_pem: public_key_pem.into(),
            license_path: license_path.into(),
            refresh_before_days: Self::DEFAULT_REFRESH_BEFORE_DAYS,
            grace_days: Self::DEFAULT_GRACE_DAYS,
            fallback_tier: Self::DEFAULT_FALLBACK_TIER.to_string(),
            timeout: Self::DEFAULT_TIMEOUT,
            app_version: None,
            machine_id: None,
            report_queue_capacity: Self::DEFAULT_REPORT_QUEUE_CAPACITY,
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn with_app_version(mut self, version: impl Into<String>) -> Self {
        self.app_version = Some(version.into());
        self
    }

    pub fn with_machine_id(mut self, machine_id: impl Into<String>) -> Self {
        self.machine_id = Some(machine_id.into());
        self
    }

    pub fn with_fallback_tier(mut self, tier: impl Into<String>) -> Self {
        self.fallback_tier = tier.into();
        self
    }

    pub fn with_grace_days(mut self, days: i64) -> Self {
        self.grace_days = days;
        self
    }

    pub fn with_refresh_before_days(mut self, days: i64) -> Self {
        self.refresh_before_days = days;
        self
    }

    pub fn with_report_queue_capacity(mut self, capacity: usize) -> Self {
        self.report_queue_capacity = capacity;
        self
    }

    /// `server_url` + `path`, without doubling the slash.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{}", self.server_url.trim_end_matches('/'), path)
    }
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("server_url", &self.server_url)
            .field("product", &self.product)
            .field(
                "public_key_pem",
                &format_args!("{} bytes", self.public_key_pem.len()),
            )
            .field("license_path", &self.license_path)
            .field("refresh_before_days", &self.refresh_before_days)
            .field("grace_days", &self.grace_days)
            .field("fallback_tier", &self.fallback_tier)
            .field("timeout", &self.timeout)
            .field("app_version", &self.app_version)
            .field("machine_id", &self.machine_id)
            .field("report_queue_capacity", &self.report_queue_capacity)
            .finish()
    }
}
