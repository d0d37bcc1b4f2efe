//! `tessera serve` settings: each has a `--flag` and the seed's environment variable.
//! Defaults make a first start with nothing configured just work.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Settings of the license server. Flags override environment variables.
#[derive(Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:8600")]
    pub listen_addr: SocketAddr,

    /// Database: `sqlite://PATH` (default: a file in the data directory) or `postgres://…`.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Where first-start files live: the SQLite database, generated keys, the generated admin token.
    #[arg(long, env = "TESSERA_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Bearer token for `/admin`. Unset: one is generated and kept in DATA_DIR/admin-token.
    /// Set but empty: refused. Prefer the environment variable over the flag (ps shows flags).
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// PEM private key (RSA or Ed25519) that signs license tokens. Unset: DATA_DIR/keys/private.pem,
    /// generated (RSA-2048, mode 0600) on first start.
    #[arg(long, env = "JWT_PRIVATE_KEY_PATH")]
    pub jwt_private_key_path: Option<PathBuf>,

    /// PEM public key. Optional: when given it must match the private key (checked at start).
    #[arg(long, env = "JWT_PUBLIC_KEY_PATH")]
    pub jwt_public_key_path: Option<PathBuf>,

    /// Product catalog (TOML) for API-key mode: per product signing keys, issuer, token lifetime,
    /// tiers with their features and quotas. See deploy/catalog.example.toml.
    #[arg(long, env = "CATALOG_PATH")]
    pub catalog: Option<PathBuf>,

    /// Lifetime of issued license tokens, in days.
    #[arg(long, env = "JWT_EXPIRY_DAYS", default_value_t = 30, value_parser = clap::value_parser!(i64).range(1..=3650))]
    pub jwt_expiry_days: i64,

    /// Days after a token's expiry during which it may still be refreshed.
    #[arg(long, env = "GRACE_PERIOD_DAYS", default_value_t = 7, value_parser = clap::value_parser!(i64).range(0..=365))]
    pub grace_period_days: i64,

    /// Message put in every issued token (`notice` claim) and activation response.
    #[arg(long, env = "SERVER_NOTICE")]
    pub server_notice: Option<String>,

    /// Maximum request body, in bytes (larger bodies get 413).
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,

    /// Seconds before an in-flight request is abandoned with 408.
    #[arg(long, env = "REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,

    /// Maximum requests handled at once; more wait their turn.
    #[arg(long, env = "MAX_CONCURRENT_REQUESTS", default_value_t = 1024)]
    pub max_concurrent_requests: usize,

    /// Per client IP on /v1/activate, /v1/refresh, /v1/deactivate and /api/v1/licenses/token:
    /// requests allowed in a burst. 0 switches rate limiting off (load tests).
    #[arg(long, env = "RATE_LIMIT_BURST", default_value_t = 60)]
    pub rate_limit_burst: u32,

    /// Sustained requests per minute per client IP on those routes (0 = off).
    #[arg(long, env = "RATE_LIMIT_PER_MINUTE", default_value_t = 60)]
    pub rate_limit_per_minute: u32,

    /// Reverse proxies whose X-Forwarded-For is trusted (comma-separated IPs or CIDRs).
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,

    /// Open client connections at most (idle keep-alive ones included); more wait to be accepted.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,

    /// Interval of the floating-seat sweeper, in seconds (0 disables the sweeper).
    #[arg(long, env = "LEASE_SWEEP_SECS", default_value_t = 60)]
    pub lease_sweep_secs: u64,
}

impl ServeArgs {
    /// `None` when rate limiting is switched off (`--rate-limit-burst 0`).
    pub fn rate_limit(&self) -> anyhow::Result<Option<crate::ratelimit::RateLimitConfig>> {
        let (Some(burst), Some(per_minute)) = (
            std::num::NonZeroU32::new(self.rate_limit_burst),
            std::num::NonZeroU32::new(self.rate_limit_per_minute),
        ) else {
            return Ok(None);
        };
        let trusted_proxies = self
            .trusted_proxies
            .iter()
            .map(|p| {
                p.parse::<ipnet::IpNet>()
                    .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        anyhow::anyhow!("TRUSTED_PROXIES: `{p}` is not an IP address or CIDR")
                    })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Some(crate::ratelimit::RateLimitConfig {
            burst,
            per_minute,
            trusted_proxies,
        }))
    }

    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("tessera.db").display()))
    }
}

/// Secrets stay out of `Debug`: the admin token is masked, the database password redacted.
impl std::fmt::Debug for ServeArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeArgs")
            .field("listen_addr", &self.listen_addr)
            .field(
                "database_url",
                &self.database_url.as_deref().map(crate::store::redact_url),
            )
            .field("data_dir", &self.data_dir)
            .field("admin_token", &self.admin_token.as_ref().map(|_| "****"))
            .field("jwt_private_key_path", &self.jwt_private_key_path)
            .field("jwt_public_key_path", &self.jwt_public_key_path)
            .field("catalog", &self.catalog)
            .field("jwt_expiry_days", &self.jwt_expiry_days)
            .field("grace_period_days", &self.grace_period_days)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: super::ServeArgs,
    }

    #[test]
    fn debug_output_hides_the_admin_token_and_database_password() {
        let w = Wrapper::parse_from([
            "x",
            "--admin-token=very-secret-admin-token",
            "--database-url=postgres://u:db-password@h/db",
        ]);
        let shown = format!("{:?}", w.args);
        assert!(!shown.contains("very-secret-admin-token"), "{shown}");
        assert!(!shown.contains("db-password"), "{shown}");
        assert!(shown.contains("postgres://u:****@h/db"));
    }
}
