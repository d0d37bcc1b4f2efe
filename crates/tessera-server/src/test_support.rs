//! A real server on a real socket for integration tests: a temporary SQLite file, a fresh RSA
//! key, a known admin token and a clock the test can move.

use std::sync::Arc;

use tessera_core::Signer;
use tessera_core::clock::OffsetClock;
use tessera_core::keys;
use tokio::sync::oneshot;

use crate::secret::Secret;
use crate::state::Policy;
use crate::{Application, Config, Limits};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

pub struct TestServer {
    pub base_url: String,
    pub admin_token: String,
    pub public_pem: String,
    pub private_pem: String,
    pub database_url: String,
    pub clock: Arc<OffsetClock>,
    pub dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

#[derive(Debug, Clone)]
pub struct TestOptions {
    pub jwt_expiry_days: i64,
    pub grace_period_days: i64,
    pub server_notice: Option<String>,
    pub limits: Limits,
    /// A product catalog and the directory its key paths are relative to.
    pub catalog: Option<(tessera_core::catalog::Catalog, std::path::PathBuf)>,
}

impl Default for TestOptions {
    fn default() -> Self {
        Self {
            jwt_expiry_days: 30,
            grace_period_days: 7,
            server_notice: None,
            limits: Limits {
                lease_sweep: None,
                ..Limits::default()
            },
            catalog: None,
        }
    }
}

impl TestServer {
    pub async fn spawn() -> anyhow::Result<Self> {
        Self::spawn_with(TestOptions::default()).await
    }

    pub async fn spawn_with(options: TestOptions) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let database_url = format!("sqlite://{}", dir.path().join("tessera.db").display());
        let pair = keys::generate_rsa()?;
        let signer = Signer::from_pem(pair.private_pem.as_bytes(), None)?;
        let catalog = options.catalog.as_ref().map(|(c, d)| (c, d.as_path()));
        let keyring = crate::keyring::KeyRing::load(signer, catalog)?;
        let store = crate::store::connect(&database_url).await?;
        let clock = Arc::new(OffsetClock::new());
        let config = Config {
            listen_addr: "127.0.0.1:0".parse()?,
            store,
            keyring,
            admin_token: Secret::new(ADMIN_TOKEN.to_string()),
            policy: Policy {
                jwt_expiry_days: options.jwt_expiry_days,
                grace_period_days: options.grace_period_days,
                server_notice: options.server_notice,
            },
            clock: clock.clone(),
            limits: options.limits,
        };
        let app = Application::build(config).await?;
        let base_url = format!("http://{}", app.local_addr()?);
        let (tx, rx) = oneshot::channel();
        let handle = tokio::spawn(app.run_until(async {
            let _ = rx.await;
        }));
        Ok(Self {
            base_url,
            admin_token: ADMIN_TOKEN.to_string(),
            public_pem: pair.public_pem,
            private_pem: pair.private_pem,
            database_url,
            clock,
            dir,
            shutdown: Some(tx),
            handle: Some(handle),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// Stops accepting, waits for in-flight requests, closes the database.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await??;
        }
        Ok(())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
