//! A real server on a real socket for integration tests: a fresh database, a fresh RSA key, a
//! known admin token and a clock the test can move.
//!
//! The database is SQLite (a temporary file) unless `TESSERA_TEST_DATABASE=postgres`: then each
//! server gets its own new PostgreSQL database, created through `TESSERA_TEST_POSTGRES_URL`
//! (default [`DEFAULT_POSTGRES_URL`]) and dropped when the server stops or is dropped.
//! A second server can join the first one's database and signing key ([`TestOptions::shared`]),
//! as replicas behind a load balancer do.

use std::sync::Arc;

use anyhow::Context;
use tessera_core::Signer;
use tessera_core::clock::OffsetClock;
use tessera_core::keys;
use tokio::sync::oneshot;

use crate::secret::Secret;
use crate::state::Policy;
use crate::{Application, Config, Limits};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// Selects the test database backend: `postgres` (or `postgresql`, `pg`) for PostgreSQL.
pub const DATABASE_ENV: &str = "TESSERA_TEST_DATABASE";
/// Where test databases are created (the database in the URL is only used to connect).
pub const POSTGRES_URL_ENV: &str = "TESSERA_TEST_POSTGRES_URL";
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// From `TESSERA_TEST_DATABASE`; SQLite when unset or anything else.
    pub fn from_env() -> Self {
        match std::env::var(DATABASE_ENV) {
            Ok(v)
                if ["postgres", "postgresql", "pg"]
                    .iter()
                    .any(|p| v.trim().eq_ignore_ascii_case(p)) =>
            {
                Self::Postgres
            }
            _ => Self::Sqlite,
        }
    }
}

/// The URL test databases are created through.
pub fn postgres_base_url() -> String {
    std::env::var(POSTGRES_URL_ENV)
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_string())
}

/// `url` with its database (the path) replaced by `database`; query parameters are kept.
pub fn with_database(url: &str, database: &str) -> String {
    let authority_start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[authority_start..];
    let path_start = rest.find(['/', '?']).unwrap_or(rest.len());
    let after = &rest[path_start..];
    let query = after.find('?').map_or("", |i| &after[i..]);
    format!(
        "{}{}/{}{}",
        &url[..authority_start],
        &rest[..path_start],
        database,
        query
    )
}

/// A new, empty PostgreSQL database, dropped (best effort, `WITH (FORCE)`) when this value is
/// dropped or [`PgTestDatabase::drop_database`] is called.
#[derive(Debug)]
pub struct PgTestDatabase {
    /// Connection URL of the new database.
    pub url: String,
    pub name: String,
    base_url: String,
    dropped: bool,
}

impl PgTestDatabase {
    pub async fn create() -> anyhow::Result<Self> {
        let base_url = postgres_base_url();
        let name = format!("tessera_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = admin_connection(&base_url).await?;
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .with_context(|| format!("creating test database {name}"))?;
        sqlx::Connection::close(admin).await?;
        Ok(Self {
            url: with_database(&base_url, &name),
            name,
            base_url,
            dropped: false,
        })
    }

    /// Drops the database now, disconnecting whoever is still connected.
    pub async fn drop_database(mut self) -> anyhow::Result<()> {
        self.dropped = true;
        drop_database(&self.base_url, &self.name).await
    }
}

impl Drop for PgTestDatabase {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        self.dropped = true;
        let (base_url, name) = (self.base_url.clone(), self.name.clone());
        // Drop may run inside a runtime (which must not be blocked on itself) or outside one:
        // a short-lived thread with its own runtime works in both cases.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(drop_database(&base_url, &name))
        });
        match cleanup.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: could not drop a test database: {e:#}"),
            Err(_) => eprintln!("warning: dropping a test database panicked"),
        }
    }
}

async fn admin_connection(base_url: &str) -> anyhow::Result<sqlx::PgConnection> {
    use sqlx::ConnectOptions;
    use std::str::FromStr;
    sqlx::postgres::PgConnectOptions::from_str(base_url)?
        .connect()
        .await
        .with_context(|| {
            format!(
                "connecting to PostgreSQL at {} (set {POSTGRES_URL_ENV}, or unset {DATABASE_ENV} to test on SQLite)",
                crate::store::redact_url(base_url)
            )
        })
}

async fn drop_database(base_url: &str, name: &str) -> anyhow::Result<()> {
    let mut admin = admin_connection(base_url).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut admin)
        .await?;
    sqlx::Connection::close(admin).await?;
    Ok(())
}

/// A database and signing key a second server shares with the first (replicas).
#[derive(Clone)]
pub struct SharedDatabase {
    pub database_url: String,
    pub private_pem: String,
}

impl std::fmt::Debug for SharedDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedDatabase")
            .field(
                "database_url",
                &crate::store::redact_url(&self.database_url),
            )
            .field("private_pem", &"<redacted>")
            .finish()
    }
}

pub struct TestServer {
    pub base_url: String,
    pub admin_token: String,
    pub public_pem: String,
    pub private_pem: String,
    pub database_url: String,
    pub backend: Backend,
    pub clock: Arc<OffsetClock>,
    pub dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    /// The PostgreSQL database this server created (not one it joined); dropped with it.
    postgres: Option<PgTestDatabase>,
}

#[derive(Debug, Clone)]
pub struct TestOptions {
    pub jwt_expiry_days: i64,
    pub grace_period_days: i64,
    pub server_notice: Option<String>,
    pub limits: Limits,
    /// A product catalog and the directory its key paths are relative to.
    pub catalog: Option<(tessera_core::catalog::Catalog, std::path::PathBuf)>,
    /// The database backend for a new database (default: [`Backend::from_env`]).
    pub backend: Backend,
    /// Join this database with this signing key instead of creating both (a replica).
    pub shared: Option<SharedDatabase>,
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
            backend: Backend::from_env(),
            shared: None,
        }
    }
}

impl TestServer {
    pub async fn spawn() -> anyhow::Result<Self> {
        Self::spawn_with(TestOptions::default()).await
    }

    pub async fn spawn_with(options: TestOptions) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let (database_url, private_pem, postgres) = match &options.shared {
            Some(shared) => (
                shared.database_url.clone(),
                shared.private_pem.clone(),
                None,
            ),
            None => {
                let private_pem = keys::generate_rsa()?.private_pem;
                match options.backend {
                    Backend::Sqlite => (
                        format!("sqlite://{}", dir.path().join("tessera.db").display()),
                        private_pem,
                        None,
                    ),
                    Backend::Postgres => {
                        let db = PgTestDatabase::create().await?;
                        (db.url.clone(), private_pem, Some(db))
                    }
                }
            }
        };
        let backend = if crate::store::is_postgres_url(&database_url) {
            Backend::Postgres
        } else {
            Backend::Sqlite
        };
        let signer = Signer::from_pem(private_pem.as_bytes(), None)?;
        let public_pem = signer.public_pem()?;
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
            public_pem,
            private_pem,
            database_url,
            backend,
            clock,
            dir,
            shutdown: Some(tx),
            handle: Some(handle),
            postgres,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// What a second server needs to run as this one's replica.
    pub fn shared(&self) -> SharedDatabase {
        SharedDatabase {
            database_url: self.database_url.clone(),
            private_pem: self.private_pem.clone(),
        }
    }

    /// Stops accepting, waits for in-flight requests, closes the database (and drops it, if
    /// this server created it on PostgreSQL).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await??;
        }
        if let Some(db) = self.postgres.take() {
            db.drop_database().await?;
        }
        Ok(())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // `postgres` (if any) is dropped after this, which drops the database.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_is_replaced_and_query_kept() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgresql://u:p@h/db?sslmode=disable", "x"),
            "postgresql://u:p@h/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "x"),
            "postgres://h:5432/x"
        );
        assert_eq!(
            with_database("postgres://h?sslmode=disable", "x"),
            "postgres://h/x?sslmode=disable"
        );
    }
}
