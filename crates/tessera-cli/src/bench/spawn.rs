//! Starts the real `tessera serve` (this very binary) for a benchmark run: a free loopback port,
//! a fresh data directory, a random admin token, rate limiting off, and — unless a catalog is
//! given — a catalog whose product `bench` signs with a fresh Ed25519 key.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Where and how to start the server.
#[derive(Debug, Default)]
pub struct SpawnOptions {
    pub database_url: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub catalog: Option<PathBuf>,
    pub server_log: Option<PathBuf>,
    /// Product name for the generated catalog.
    pub product: String,
}

/// A server started by the benchmark. Dropping it kills the process.
pub struct StartedServer {
    child: Child,
    pub base_url: String,
    pub admin_token: String,
    /// The catalog the server runs with (given or generated).
    pub catalog: Option<PathBuf>,
    pub database: &'static str,
    log_path: PathBuf,
    _temp: tempfile::TempDir,
}

impl std::fmt::Debug for StartedServer {
    // The admin token stays out of Debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartedServer")
            .field("pid", &self.child.id())
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

pub const GENERATED_TIER: &str = "standard";
const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

impl StartedServer {
    pub async fn start(opts: SpawnOptions) -> anyhow::Result<Self> {
        let temp = tempfile::Builder::new()
            .prefix("tessera-bench-")
            .tempdir()
            .context("creating a temporary directory")?;
        let data_dir = match &opts.data_dir {
            Some(dir) => dir.clone(),
            None => temp.path().join("data"),
        };
        let catalog = match &opts.catalog {
            Some(path) => Some(path.clone()),
            None => Some(write_ed25519_catalog(temp.path(), &opts.product)?),
        };
        let log_path = opts
            .server_log
            .clone()
            .unwrap_or_else(|| temp.path().join("server.log"));
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let port = free_port()?;
        let admin_token = random_secret();
        let exe = std::env::current_exe().context("locating the tessera binary")?;

        let mut cmd = Command::new(exe);
        cmd.arg("serve")
            .env("TESSERA_DATA_DIR", &data_dir)
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("ADMIN_TOKEN", &admin_token)
            .env("RATE_LIMIT_BURST", "0")
            .env_remove("ADMIN_TOKEN_FILE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        match &opts.database_url {
            Some(url) => cmd.env("DATABASE_URL", url),
            None => cmd.env_remove("DATABASE_URL"),
        };
        match &catalog {
            Some(path) => cmd.env("CATALOG_PATH", path),
            None => cmd.env_remove("CATALOG_PATH"),
        };
        let database = match &opts.database_url {
            Some(url) if url.starts_with("postgres") => "postgres",
            _ => "sqlite",
        };
        let child = cmd.spawn().context("starting `tessera serve`")?;
        let mut server = Self {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
            admin_token,
            catalog,
            database,
            log_path,
            _temp: temp,
        };
        server.wait_healthy().await?;
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn wait_healthy(&mut self) -> anyhow::Result<()> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let url = format!("{}/healthz", self.base_url);
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the server exited during start-up ({status}); its log ends with:\n{}",
                    self.log_tail()
                );
            }
            if let Ok(resp) = http.get(&url).send().await
                && resp.status().is_success()
            {
                return Ok(());
            }
            if started.elapsed() > STARTUP_TIMEOUT {
                bail!(
                    "the server did not answer {url} within {}s; its log ends with:\n{}",
                    STARTUP_TIMEOUT.as_secs(),
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Stops the server gracefully (SIGTERM), killing it if it does not exit in time.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let pid = self.child.id().to_string();
        let term = Command::new("kill")
            .args(["-TERM", &pid])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if term.is_ok_and(|s| s.success()) {
            let started = Instant::now();
            while started.elapsed() < STOP_TIMEOUT {
                if self.child.try_wait()?.is_some() {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            tracing::warn!(
                "server did not stop within {}s of SIGTERM; killing it",
                STOP_TIMEOUT.as_secs()
            );
        }
        self.child.kill().context("killing the server")?;
        self.child.wait().context("waiting for the server")?;
        Ok(())
    }
}

impl Drop for StartedServer {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").context("finding a free loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// 64 hex characters from two v4 UUIDs (122 random bits each, from the OS generator).
pub fn random_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Writes `catalog.toml` and a fresh Ed25519 private key (mode 0600) into `dir`.
fn write_ed25519_catalog(dir: &Path, product: &str) -> anyhow::Result<PathBuf> {
    let pair = tessera_core::keys::generate_ed25519().context("generating an Ed25519 key")?;
    let key_path = dir.join("bench-ed25519.pem");
    write_private(&key_path, pair.private_pem.as_bytes())?;
    let catalog = format!(
        r#"# Written by `tessera bench`: API-key tokens for `{product}` are EdDSA-signed.
[[product]]
name = "{product}"
issuer = "https://bench.tessera.invalid"
token_lifetime_secs = 86400
default_tier = "{GENERATED_TIER}"

[[product.key]]
kid = "bench-ed25519"
algorithm = "EdDSA"
private_key_path = "bench-ed25519.pem"
active = true

[[product.tier]]
name = "{GENERATED_TIER}"
features = ["bench"]
quotas = {{ max_requests = 1000 }}
"#
    );
    tessera_core::catalog::Catalog::parse(&catalog)
        .with_context(|| format!("product name `{product}` does not fit a catalog"))?;
    let path = dir.join("catalog.toml");
    std::fs::write(&path, catalog).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_catalog_parses_and_names_the_product() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_ed25519_catalog(dir.path(), "bench").unwrap();
        let text = std::fs::read_to_string(path).unwrap();
        let catalog = tessera_core::catalog::Catalog::parse(&text).unwrap();
        let product = catalog.product("bench").unwrap();
        assert_eq!(product.tiers[0].name, GENERATED_TIER);
        assert!(dir.path().join("bench-ed25519.pem").exists());
    }
}
