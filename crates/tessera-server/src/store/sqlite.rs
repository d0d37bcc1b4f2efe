//! SQLite: WAL, foreign keys on, every answer durable (see `sqlite_writer` for how commits are
//! made durable in groups). One writer connection taking `BEGIN IMMEDIATE` transactions (so a
//! seat check and its insert can never interleave with another writer, even in another
//! process) and a small read pool.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::OpenFlags;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, SqliteConnection, SqlitePool};
use tessera_core::apikey::{
    ApiKeyRecord, CreateApiKeyRequest, InstanceRecord, UpdateApiKeyRequest,
};
use tessera_core::timefmt;
use tessera_core::wire::{
    ActivateRequest, ActivationRecord, AuditRecord, CreateKeyRequest, FlagRecord, FlagRequest,
    FlagUpdateRequest, KeyResponse, UsageEventRecord, UsageRequest,
};
use time::OffsetDateTime;

use super::rows::{ActivationRow, AuditRow, FlagRow, UsageRow};
use super::sqlite_jobs::{self as jobs, NewApiKey, RefreshRequest};
use super::sqlite_writer::Writer;
use super::{ApiKeyRow, Granted, InstanceRow, KeyRow, Page, Store, new_id};
use crate::error::ApiResult;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Statements the writer keeps prepared: every distinct write-path statement, with room.
const WRITER_STATEMENT_CACHE: usize = 64;

pub struct SqliteStore {
    writer: Writer,
    reader: SqlitePool,
    /// Lazily opened connection for maintenance commands (backup, copy, migration listing).
    maintenance: SqlitePool,
}

impl SqliteStore {
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let path = options.get_filename().to_path_buf();
        if path.as_os_str().is_empty() || path.as_os_str() == ":memory:" {
            anyhow::bail!(
                "an in-memory SQLite database cannot be shared by the writer and readers: give a file path (sqlite://PATH)"
            );
        }
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)?;
        }
        let mut conn = SqliteConnection::connect_with(&options).await?;
        MIGRATOR.run(&mut conn).await?;
        // The migration connection stays open until the writer's are, so the WAL is never
        // removed and re-created in between.
        let writer = open_write_connection(&path)?;
        let checkpointer = open_write_connection(&path)?;
        let writer = Writer::start(writer, checkpointer, &path)?;
        conn.close().await?;
        let maintenance = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_lazy_with(options.clone());
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.read_only(true))
            .await?;
        Ok(Self {
            writer,
            reader,
            maintenance,
        })
    }

    /// A writable pool for maintenance commands (backup, copy); not used while serving.
    pub fn pool(&self) -> &SqlitePool {
        &self.maintenance
    }
}

/// A connection for the writer thread (or its checkpointer). `synchronous=NORMAL` because the
/// writer's syncer makes each commit durable itself; auto-checkpoint off because a thread of
/// its own checkpoints. The WAL may keep up to 64 MB on disk after a checkpoint: overwriting
/// blocks already allocated is a plain data sync, where truncating and growing it again made
/// every sync also commit the file system's journal. `temp_store = MEMORY` keeps the statement
/// journal of the per-job savepoints off disk: a batch of a few hundred jobs journals a few
/// hundred KB, which SQLite otherwise spills to a temporary file with a write per page.
pub(super) fn open_write_connection(path: &Path) -> anyhow::Result<rusqlite::Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = rusqlite::Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
         PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = 67108864; \
         PRAGMA temp_store = MEMORY;",
    )?;
    conn.set_prepared_statement_cache_capacity(WRITER_STATEMENT_CACHE);
    Ok(conn)
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> ApiResult<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn list_keys(&self, page: Page) -> ApiResult<Vec<KeyResponse>> {
        let rows: Vec<KeyRow> = sqlx::query_as(
            "SELECT * FROM license_keys ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
        )
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().map(KeyRow::into_response).collect())
    }

    async fn get_key(&self, id: &str) -> ApiResult<Option<KeyResponse>> {
        let row: Option<KeyRow> = sqlx::query_as("SELECT * FROM license_keys WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.map(KeyRow::into_response))
    }

    async fn list_activations(
        &self,
        key_id: Option<&str>,
        page: Page,
    ) -> ApiResult<Vec<ActivationRecord>> {
        // The page is cut on the index alone (rowids), then only its rows are joined: an
        // OFFSET applied after the join paid a key lookup for every skipped row (25 ms at
        // offset 10,000 of 1,000,000). CROSS JOIN fixes that join order: SQLite 3.46's planner
        // otherwise scans all of `activations` to skip the final 50-row sort (2.5 s at 1M rows).
        // One key's seats are few: its own index, then a sort.
        let sql = match key_id {
            None => {
                "SELECT a.id, a.key_id, a.machine_id, a.app_version, a.platform, a.activated_at, \
                 a.last_refresh, a.deactivated_at, k.key_display, k.product \
                 FROM (SELECT rowid AS page_row FROM activations \
                       ORDER BY activated_at DESC, id DESC LIMIT ?1 OFFSET ?2) p \
                 CROSS JOIN activations a ON a.rowid = p.page_row \
                 CROSS JOIN license_keys k ON k.id = a.key_id \
                 ORDER BY a.activated_at DESC, a.id DESC"
            }
            Some(_) => {
                "SELECT a.id, a.key_id, a.machine_id, a.app_version, a.platform, a.activated_at, \
                 a.last_refresh, a.deactivated_at, k.key_display, k.product \
                 FROM activations a JOIN license_keys k ON k.id = a.key_id \
                 WHERE a.key_id = ?3 ORDER BY a.activated_at DESC, a.id DESC LIMIT ?1 OFFSET ?2"
            }
        };
        let mut query = sqlx::query_as(sql).bind(page.limit).bind(page.offset);
        if let Some(key_id) = key_id {
            query = query.bind(key_id);
        }
        let rows: Vec<ActivationRow> = query.fetch_all(&self.reader).await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn list_usage(
        &self,
        key_id: Option<&str>,
        page: Page,
    ) -> ApiResult<Vec<UsageEventRecord>> {
        let rows: Vec<UsageRow> = sqlx::query_as(
            "SELECT * FROM usage_events WHERE (?1 IS NULL OR key_id = ?1) \
             ORDER BY created_at DESC, id DESC LIMIT ?2 OFFSET ?3",
        )
        .bind(key_id)
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn list_flags(&self, status: &str, page: Page) -> ApiResult<Vec<FlagRecord>> {
        let rows: Vec<FlagRow> = sqlx::query_as(
            "SELECT * FROM flags WHERE status = ? ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
        )
        .bind(status)
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn list_audit(&self, entity_id: Option<&str>, page: Page) -> ApiResult<Vec<AuditRecord>> {
        let rows: Vec<AuditRow> = sqlx::query_as(
            "SELECT * FROM audit_log WHERE (?1 IS NULL OR entity_id = ?1) \
             ORDER BY created_at DESC, id DESC LIMIT ?2 OFFSET ?3",
        )
        .bind(entity_id)
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn list_api_keys(&self, page: Page) -> ApiResult<Vec<ApiKeyRecord>> {
        let rows: Vec<ApiKeyRow> = sqlx::query_as(
            "SELECT * FROM api_keys ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
        )
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn get_api_key(&self, id: &str) -> ApiResult<Option<ApiKeyRecord>> {
        let row: Option<ApiKeyRow> = sqlx::query_as("SELECT * FROM api_keys WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.map(Into::into))
    }

    async fn list_instances(
        &self,
        api_key_id: Option<&str>,
        page: Page,
    ) -> ApiResult<Vec<InstanceRecord>> {
        let rows: Vec<InstanceRow> = sqlx::query_as(
            "SELECT * FROM instances WHERE (?1 IS NULL OR api_key_id = ?1) \
             ORDER BY last_seen DESC, id DESC LIMIT ?2 OFFSET ?3",
        )
        .bind(api_key_id)
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn create_key(
        &self,
        req: &CreateKeyRequest,
        key_display: &str,
        now: OffsetDateTime,
    ) -> ApiResult<KeyResponse> {
        let row = KeyRow::new(req, key_display, &timefmt::format(now));
        self.writer
            .run(move |conn| {
                jobs::create_key(conn, &row)?;
                Ok(row.into_response())
            })
            .await
    }

    async fn revoke_key(&self, id: &str, now: OffsetDateTime) -> ApiResult<()> {
        let (id, now) = (id.to_string(), timefmt::format(now));
        self.writer
            .run(move |conn| jobs::revoke_key(conn, &id, &now))
            .await
    }

    async fn activate(&self, req: &ActivateRequest, now: OffsetDateTime) -> ApiResult<Granted> {
        // Unknown keys are refused inside the job with one indexed read (microseconds on the
        // writer); they write nothing.
        let req = req.clone();
        self.writer
            .run(move |conn| jobs::activate(conn, &req, now))
            .await
    }

    async fn refresh(
        &self,
        key_display: &str,
        product: &str,
        machine_id: &str,
        app_version: Option<&str>,
        platform: Option<&str>,
        now: OffsetDateTime,
    ) -> ApiResult<Granted> {
        let req = RefreshRequest {
            key_display: key_display.to_string(),
            product: product.to_string(),
            machine_id: machine_id.to_string(),
            app_version: app_version.map(str::to_string),
            platform: platform.map(str::to_string),
        };
        self.writer
            .run(move |conn| jobs::refresh(conn, &req, now))
            .await
    }

    async fn deactivate(
        &self,
        key_display: &str,
        machine_id: &str,
        now: OffsetDateTime,
    ) -> ApiResult<()> {
        let (key_display, machine_id) = (key_display.to_string(), machine_id.to_string());
        let now = timefmt::format(now);
        self.writer
            .run(move |conn| jobs::deactivate(conn, &key_display, &machine_id, &now))
            .await
    }

    async fn record_usage(
        &self,
        key_display: &str,
        machine_id: &str,
        req: &UsageRequest,
        now: OffsetDateTime,
    ) -> ApiResult<()> {
        let (key_display, machine_id) = (key_display.to_string(), machine_id.to_string());
        let (req, now) = (req.clone(), timefmt::format(now));
        self.writer
            .run(move |conn| jobs::record_usage(conn, &key_display, &machine_id, &req, &now))
            .await
    }

    async fn record_flag(
        &self,
        key_display: &str,
        machine_id: &str,
        req: &FlagRequest,
        now: OffsetDateTime,
    ) -> ApiResult<()> {
        let (key_display, machine_id) = (key_display.to_string(), machine_id.to_string());
        let (req, now) = (req.clone(), timefmt::format(now));
        self.writer
            .run(move |conn| jobs::record_flag(conn, &key_display, &machine_id, &req, &now))
            .await
    }

    async fn update_flag(
        &self,
        id: &str,
        req: &FlagUpdateRequest,
        now: OffsetDateTime,
    ) -> ApiResult<()> {
        let (id, req, now) = (id.to_string(), req.clone(), timefmt::format(now));
        self.writer
            .run(move |conn| jobs::update_flag(conn, &id, &req, &now))
            .await
    }

    async fn create_api_key(
        &self,
        req: &CreateApiKeyRequest,
        key_hash: &str,
        key_prefix: &str,
        now: OffsetDateTime,
    ) -> ApiResult<ApiKeyRecord> {
        let new = NewApiKey {
            id: new_id(),
            key_hash: key_hash.to_string(),
            key_prefix: key_prefix.to_string(),
        };
        let (req, now) = (req.clone(), timefmt::format(now));
        self.writer
            .run(move |conn| jobs::create_api_key(conn, &new, &req, &now).map(Into::into))
            .await
    }

    async fn update_api_key(
        &self,
        id: &str,
        req: &UpdateApiKeyRequest,
        now: OffsetDateTime,
    ) -> ApiResult<ApiKeyRecord> {
        let (id, req, now) = (id.to_string(), req.clone(), timefmt::format(now));
        self.writer
            .run(move |conn| jobs::update_api_key(conn, &id, &req, &now).map(Into::into))
            .await
    }

    async fn revoke_api_key(&self, id: &str, now: OffsetDateTime) -> ApiResult<()> {
        let (id, now) = (id.to_string(), timefmt::format(now));
        self.writer
            .run(move |conn| jobs::revoke_api_key(conn, &id, &now))
            .await
    }

    async fn fetch_for_token(
        &self,
        key_hash: &str,
        instance_id: &str,
        version: Option<&str>,
        now: OffsetDateTime,
    ) -> ApiResult<ApiKeyRecord> {
        // One job: the key is read and checked on the writer (microseconds), so a revocation
        // committed before this job is always seen. Unknown or revoked keys write nothing.
        let (key_hash, instance_id) = (key_hash.to_string(), instance_id.to_string());
        let version = version.map(str::to_string);
        self.writer
            .run(move |conn| {
                let version = version.as_deref();
                jobs::fetch_for_token(conn, &key_hash, &instance_id, version, now).map(Into::into)
            })
            .await
    }

    async fn release_expired_leases(&self, now: OffsetDateTime) -> ApiResult<u64> {
        let keys: Vec<KeyRow> = sqlx::query_as(
            "SELECT DISTINCT k.* FROM license_keys k JOIN activations a ON a.key_id = k.id \
             WHERE k.lease_ttl_secs IS NOT NULL AND a.deactivated_at IS NULL",
        )
        .fetch_all(&self.reader)
        .await?;
        let mut released = 0;
        for key in keys {
            released += self
                .writer
                .run(move |conn| jobs::release_stale(conn, &key, now))
                .await?;
        }
        Ok(released)
    }

    fn pool_stats(&self) -> Vec<(&'static str, u32, usize)> {
        vec![("sqlite_reader", self.reader.size(), self.reader.num_idle())]
    }

    async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
        self.maintenance.close().await;
    }
}
