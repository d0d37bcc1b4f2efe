//! `tessera bench` flags.

use std::path::PathBuf;
use std::time::Duration;

use crate::output::Output;

/// Drive one scenario against a Tessera server (started here, or `--url`) and report
/// throughput, latency percentiles, errors and the server's peak memory.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// What each request does.
    #[arg(long, value_enum, default_value_t = Scenario::Activate)]
    pub scenario: Scenario,

    /// How long to drive load: `10s`, `1m30s`, or plain seconds.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,

    /// Concurrent workers, each with its own keep-alive HTTP/1.1 connection, in closed loop.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub connections: u32,

    /// Target an already running server instead of starting one (needs the admin token).
    #[arg(long)]
    pub url: Option<String>,

    /// Admin bearer token of the `--url` server (prefer the environment variable; never logged).
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// PID of the `--url` server, to report its peak RSS (read from /proc).
    #[arg(long, requires = "url")]
    pub server_pid: Option<u32>,

    /// Database of the server started here (`sqlite://…` or `postgres://…`; default: SQLite in
    /// the data directory).
    #[arg(long, conflicts_with = "url")]
    pub database_url: Option<String>,

    /// Data directory of the server started here (default: a fresh temporary directory).
    /// Point it at a preloaded directory to measure at scale.
    #[arg(long, conflicts_with = "url")]
    pub data_dir: Option<PathBuf>,

    /// Product catalog (TOML) for the server started here. Without one, a catalog with a product
    /// `bench` signed by a fresh Ed25519 key is written, so `token` fetches are EdDSA-signed.
    /// With `--url`, it is only read to pick the tier.
    #[arg(long)]
    pub catalog: Option<PathBuf>,

    /// Product of the keys the benchmark creates.
    #[arg(long, default_value = "bench")]
    pub product: String,

    /// Tier of the keys the benchmark creates (default: the product's first tier in the catalog,
    /// else `standard`).
    #[arg(long)]
    pub tier: Option<String>,

    /// Seats per license key (`activate`, `refresh`). When a key is full, another is created.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub seats: u64,

    /// Machines activated before a `refresh` run and refreshed round-robin (default:
    /// connections × 4).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub machines: Option<u64>,

    /// `admin-list`: page offsets cycle from 0 to this value in steps of the page size.
    #[arg(long, default_value_t = 10_000)]
    pub max_offset: u64,

    /// `admin-list`: rows per page.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub page_size: u64,

    /// Give up on one request after this long (counted as a `timeout` error).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// Keep the started server's log here (default: in the temporary directory, removed at the end).
    #[arg(long, conflicts_with = "url")]
    pub server_log: Option<PathBuf>,

    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// `POST /v1/activate`, a distinct machine per request.
    Activate,
    /// `POST /v1/refresh`, machines activated beforehand and refreshed round-robin.
    Refresh,
    /// `POST /api/v1/licenses/token` with an API key, a distinct instance per request.
    Token,
    /// `POST /v1/usage` with one machine's license token.
    Usage,
    /// `GET /admin/keys|activations|audit` pages, round-robin.
    AdminList,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Activate => "activate",
            Scenario::Refresh => "refresh",
            Scenario::Token => "token",
            Scenario::Usage => "usage",
            Scenario::AdminList => "admin-list",
        }
    }
}

/// `10s`, `250ms`, `1m30s` (humantime) or a plain number of seconds (`10`, `2.5`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return if secs.is_finite() && secs > 0.0 {
            Ok(Duration::from_secs_f64(secs))
        } else {
            Err("must be a positive number of seconds".into())
        };
    }
    match humantime::parse_duration(s) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("must be longer than zero".into()),
        Err(e) => Err(format!("{e} (e.g. `10s`, `1m30s` or `10`)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_humantime_and_plain_seconds() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2.5").unwrap(), Duration::from_millis(2500));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").is_err());
    }
}
