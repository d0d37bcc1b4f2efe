//! SQLite: WAL, `synchronous=FULL` (a commit is on disk before we answer), foreign keys on.
//! One writer connection taking `BEGIN IMMEDIATE` transactions (so a seat check and its insert
//! can never interleave with another writer, even in another process) and a small read pool.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
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

use super::rows::{ActivationRow, AuditRow, FlagRow, KEY_WITH_SEATS, KeyWithSeats, UsageRow};
use super::sqlite_writer::Writer;
use super::{Actor, ApiKeyRow, Granted, InstanceRow, KeyRow, Page, Store, json_text, new_id};
use crate::error::{ApiResult, AppError};
use crate::rules;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

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
        if let Some(parent) = options.get_filename().parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)?;
        }
        let mut conn = SqliteConnection::connect_with(&options).await?;
        MIGRATOR.run(&mut conn).await?;
        let writer = Writer::start(conn);
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

async fn audit(
    tx: &mut SqliteConnection,
    entity_type: &str,
    entity_id: &str,
    action: &str,
    actor: Actor<'_>,
    details: Option<serde_json::Value>,
    now: &str,
) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO audit_log (id, entity_type, entity_id, action, actor, details, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(new_id())
    .bind(entity_type)
    .bind(entity_id)
    .bind(action)
    .bind(actor.as_string())
    .bind(json_text(details.as_ref()))
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn key_by_display(tx: &mut SqliteConnection, key_display: &str) -> ApiResult<Option<KeyRow>> {
    Ok(
        sqlx::query_as::<_, KeyRow>("SELECT * FROM license_keys WHERE key_display = ?")
            .bind(key_display)
            .fetch_optional(&mut *tx)
            .await?,
    )
}

/// A key and, for one machine, everything the seat decision needs — in one statement, since
/// every statement is a round trip to SQLite's thread on the write path.
#[derive(sqlx::FromRow)]
struct SeatView {
    #[sqlx(flatten)]
    key: KeyRow,
    existing_id: Option<String>,
    /// 1 when this machine holds an active seat, 0 when its seat was released.
    existing_active: Option<i64>,
    /// Active seats, counted up to `seats` (enough to decide). Not excluding this machine
    /// keeps the count an index-only scan; a machine holding a seat skips the check anyway.
    active: i64,
}

async fn seat_view(
    tx: &mut SqliteConnection,
    key_display: &str,
    machine_id: &str,
) -> ApiResult<Option<SeatView>> {
    Ok(sqlx::query_as(
        "SELECT k.*, \
         (SELECT a.id FROM activations a WHERE a.key_id = k.id AND a.machine_id = ?1) AS existing_id, \
         (SELECT a.deactivated_at IS NULL FROM activations a \
          WHERE a.key_id = k.id AND a.machine_id = ?1) AS existing_active, \
         (SELECT COUNT(*) FROM (SELECT 1 FROM activations a \
          WHERE a.key_id = k.id AND a.deactivated_at IS NULL \
          LIMIT (SELECT seats FROM license_keys WHERE key_display = ?2))) AS active \
         FROM license_keys k WHERE k.key_display = ?2",
    )
    .bind(machine_id)
    .bind(key_display)
    .fetch_optional(&mut *tx)
    .await?)
}

/// Floating seats: frees this key's seats whose lease ran out, each release audited.
async fn release_stale(
    tx: &mut SqliteConnection,
    key: &KeyRow,
    now: OffsetDateTime,
) -> ApiResult<u64> {
    let Some(cutoff) = rules::lease_cutoff(key.lease_ttl_secs, now) else {
        return Ok(0);
    };
    let now_s = timefmt::format(now);
    let released: Vec<(String, String)> = sqlx::query_as(
        "UPDATE activations SET deactivated_at = ? \
         WHERE key_id = ? AND deactivated_at IS NULL AND last_refresh < ? \
         RETURNING id, machine_id",
    )
    .bind(&now_s)
    .bind(&key.id)
    .bind(&cutoff)
    .fetch_all(&mut *tx)
    .await?;
    for (id, machine_id) in &released {
        let details = serde_json::json!({"machine_id": machine_id, "reason": "lease_expired"});
        audit(
            tx,
            "activation",
            id,
            "lease_released",
            Actor::System,
            Some(details),
            &now_s,
        )
        .await?;
    }
    Ok(released.len() as u64)
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> ApiResult<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn create_key(
        &self,
        req: &CreateKeyRequest,
        key_display: &str,
        now: OffsetDateTime,
    ) -> ApiResult<KeyResponse> {
        let now_s = timefmt::format(now);
        let row = KeyRow::new(req, key_display, &now_s);
        self.writer
            .run(move |tx| {
                Box::pin(async move {
                sqlx::query(
                    "INSERT INTO license_keys (id, key_display, product, tier, seats, valid_until, \
                     revoked, customer_email, source, trial, notes, created_at, lease_ttl_secs) \
                     VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?)",
                )
                .bind(&row.id)
                .bind(&row.key_display)
                .bind(&row.product)
                .bind(&row.tier)
                .bind(row.seats)
                .bind(&row.valid_until)
                .bind(&row.customer_email)
                .bind(&row.source)
                .bind(row.trial)
                .bind(&row.notes)
                .bind(&row.created_at)
                .bind(row.lease_ttl_secs)
                .execute(&mut *tx)
                .await?;
                let details =
                    serde_json::json!({"product": row.product, "tier": row.tier, "seats": row.seats});
                audit(
                    tx,
                    "key",
                    &row.id,
                    "created",
                    Actor::Admin,
                    Some(details),
                    &now_s,
                )
                .await?;
                Ok(row.into_response(0))
                })
            })
            .await
    }

    async fn list_keys(&self, page: Page) -> ApiResult<Vec<KeyResponse>> {
        let rows: Vec<KeyWithSeats> = sqlx::query_as(&format!(
            "{KEY_WITH_SEATS} ORDER BY k.created_at DESC, k.id DESC LIMIT ? OFFSET ?"
        ))
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn get_key(&self, id: &str) -> ApiResult<Option<KeyResponse>> {
        let row: Option<KeyWithSeats> = sqlx::query_as(&format!("{KEY_WITH_SEATS} WHERE k.id = ?"))
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.map(Into::into))
    }

    async fn revoke_key(&self, id: &str, now: OffsetDateTime) -> ApiResult<()> {
        let now_s = timefmt::format(now);
        let id = id.to_string();
        self.writer
            .run(move |tx| {
                Box::pin(async move {
                    let id = id.as_str();
                    let done = sqlx::query("UPDATE license_keys SET revoked = 1 WHERE id = ?")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    if done.rows_affected() == 0 {
                        return Err(AppError::not_found("Key"));
                    }
                    audit(tx, "key", id, "revoked", Actor::Admin, None, &now_s).await?;
                    Ok(())
                })
            })
            .await
    }

    async fn activate(&self, req: &ActivateRequest, now: OffsetDateTime) -> ApiResult<Granted> {
        // Unknown keys (typos, guessing) are refused from the read pool, never queued for
        // the writer; the transaction below re-reads the key, so revocation cannot race.
        let known: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM license_keys WHERE key_display = ?")
                .bind(&req.key)
                .fetch_optional(&self.reader)
                .await?;
        if known.is_none() {
            return Err(rules::unknown_key());
        }
        let now_s = timefmt::format(now);
        let req = req.clone();
        self.writer
            .run(move |tx| {
                Box::pin(async move {
                let view = seat_view(tx, &req.key, &req.machine_id)
                    .await?
                    .ok_or_else(rules::unknown_key)?;
                rules::check_key_usable(&view.key, &req.product, now)?;
                let view = if release_stale(tx, &view.key, now).await? > 0 {
                    seat_view(tx, &req.key, &req.machine_id).await?.ok_or_else(rules::unknown_key)?
                } else {
                    view
                };
                let key = view.key;
                // The seed skipped the seat check when a deactivated machine came back: fixed.
                let holds_seat = view.existing_active == Some(1);
                if !holds_seat && !rules::seat_available(key.seats, view.active) {
                    return Err(rules::seat_limit_reached(key.seats));
                }
                let existing = view.existing_id;
                let activation_id = match existing {
                    Some(id) => {
                        sqlx::query(
                            "UPDATE activations SET last_refresh = ?, app_version = ?, platform = ?, \
                             deactivated_at = NULL WHERE id = ?",
                        )
                        .bind(&now_s)
                        .bind(&req.app_version)
                        .bind(&req.platform)
                        .bind(&id)
                        .execute(&mut *tx)
                        .await?;
                        id
                    }
                    None => {
                        let id = new_id();
                        sqlx::query(
                            "INSERT INTO activations (id, key_id, machine_id, app_version, platform, \
                             activated_at, last_refresh) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        )
                        .bind(&id)
                        .bind(&key.id)
                        .bind(&req.machine_id)
                        .bind(&req.app_version)
                        .bind(&req.platform)
                        .bind(&now_s)
                        .bind(&now_s)
                        .execute(&mut *tx)
                        .await?;
                        id
                    }
                };
                let details = serde_json::json!({"machine_id": req.machine_id});
                let actor = Actor::Machine(&req.machine_id);
                audit(
                    tx,
                    "activation",
                    &activation_id,
                    "activated",
                    actor,
                    Some(details),
                    &now_s,
                )
                .await?;
                Ok(Granted { key })
                })
            })
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
        let now_s = timefmt::format(now);
        let key_display = key_display.to_string();
        let product = product.to_string();
        let machine_id = machine_id.to_string();
        let app_version = app_version.map(str::to_string);
        let platform = platform.map(str::to_string);
        self.writer
            .run(move |tx| {
                Box::pin(async move {
                    let key_display = key_display.as_str();
                    let product = product.as_str();
                    let machine_id = machine_id.as_str();
                    let app_version = app_version.as_deref();
                    let platform = platform.as_deref();
                let key = key_by_display(tx, key_display)
                    .await?
                    .ok_or_else(rules::unknown_key)?;
                rules::check_key_usable(&key, product, now)?;
                release_stale(tx, &key, now).await?;
                let activation: Option<String> = sqlx::query_scalar(
                    "SELECT id FROM activations \
                     WHERE key_id = ? AND machine_id = ? AND deactivated_at IS NULL",
                )
                .bind(&key.id)
                .bind(machine_id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(activation_id) = activation else {
                    return Err(AppError::new(
                        tessera_core::ErrorCode::MachineNotActivated,
                        "Machine not registered for this key",
                    ));
                };
                sqlx::query(
                    "UPDATE activations SET last_refresh = ?, app_version = COALESCE(?, app_version), \
                     platform = COALESCE(?, platform) WHERE id = ?",
                )
                .bind(&now_s)
                .bind(app_version)
                .bind(platform)
                .bind(&activation_id)
                .execute(&mut *tx)
                .await?;
                let details = serde_json::json!({"machine_id": machine_id});
                let actor = Actor::Machine(machine_id);
                audit(
                    tx,
                    "activation",
                    &activation_id,
                    "refreshed",
                    actor,
                    Some(details),
                    &now_s,
                )
                .await?;
                Ok(Granted { key })
                })
            })
            .await
    }

    async fn deactivate(
        &self,
        key_display: &str,
        machine_id: &str,
        now: OffsetDateTime,
    ) -> ApiResult<()> {
        let now_s = timefmt::format(now);
        let key_display = key_display.to_string();
        let machine_id = machine_id.to_string();
        self.writer
            .run(move |tx| {
                Box::pin(async move {
                    let key_display = key_display.as_str();
                    let machine_id = machine_id.as_str();
                    let id: Option<String> = sqlx::query_scalar(
                        "SELECT a.id FROM activations a JOIN license_keys k ON k.id = a.key_id \
                     WHERE k.key_display = ? AND a.machine_id = ? AND a.deactivated_at IS NULL",
                    )
                    .bind(key_display)
                    .bind(machine_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(id) = id else {
                        return Err(AppError::new(
                            tessera_core::ErrorCode::NotFound,
                            "No active seat found",
                        ));
                    };
                    sqlx::query("UPDATE activations SET deactivated_at = ? WHERE id = ?")
                        .bind(&now_s)
                        .bind(&id)
                        .execute(&mut *tx)
                        .await?;
                    let details = serde_json::json!({"machine_id": machine_id});
                    audit(
                        tx,
                        "activation",
                        &id,
                        "deactivated",
                        Actor::Machine(machine_id),
                        Some(details),
                        &now_s,
                    )
                    .await?;
                    Ok(())
                })
            })
            .await
    }

    async fn record_usage(
        &self,
        key_display: &str,
        machine_id: &str,
        req: &UsageRequest,
        now: OffsetDateTime,
    ) -> ApiResult<()> {
        let (key_display, machine_id, req) =
            (key_display.to_string(), machine_id.to_string(), req.clone());
        let now_s = timefmt::format(now);
        self.writer
            .run_single_statement(move |tx| {
                Box::pin(async move {
                    let done = sqlx::query(
                        "INSERT INTO usage_events (id, key_id, machine_id, product, event_type, metadata, created_at) \
                         SELECT ?, id, ?, ?, ?, ?, ? FROM license_keys WHERE key_display = ?",
                    )
                    .bind(new_id())
                    .bind(&machine_id)
                    .bind(&req.product)
                    .bind(&req.event_type)
                    .bind(json_text(req.metadata.as_ref()))
                    .bind(&now_s)
                    .bind(&key_display)
                    .execute(&mut *tx)
                    .await?;
                    if done.rows_affected() == 0 {
                        return Err(AppError::new(tessera_core::ErrorCode::InvalidLicenseKey, "Key not found"));
                    }
                    Ok(())
                })
            })
            .await
    }

    async fn record_flag(
        &self,
        key_display: &str,
        machine_id: &str,
        req: &FlagRequest,
        now: OffsetDateTime,
    ) -> ApiResult<()> {
        let now_s = timefmt::format(now);
        let key_display = key_display.to_string();
        let machine_id = machine_id.to_string();
        let req = req.clone();
        self.writer
            .run(move |tx| {
                Box::pin(async move {
                    let key_display = key_display.as_str();
                    let machine_id = machine_id.as_str();
                let key = key_by_display(tx, key_display).await?;
                let Some(key) = key else {
                    return Err(AppError::new(
                        tessera_core::ErrorCode::InvalidLicenseKey,
                        "Key not found",
                    ));
                };
                let id = new_id();
                sqlx::query(
                    "INSERT INTO flags (id, key_id, machine_id, product, flag_type, details, created_at) \
                     VALUES (?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(&id)
                .bind(&key.id)
                .bind(machine_id)
                .bind(&req.product)
                .bind(&req.flag_type)
                .bind(json_text(req.details.as_ref()))
                .bind(&now_s)
                .execute(&mut *tx)
                .await?;
                let details = serde_json::json!({"flag_type": req.flag_type, "key_id": key.id});
                audit(
                    tx,
                    "flag",
                    &id,
                    "flag_opened",
                    Actor::Machine(machine_id),
                    Some(details),
                    &now_s,
                )
                .await?;
                Ok(())
                })
            })
            .await
    }

    async fn list_activations(
        &self,
        key_id: Option<&str>,
        page: Page,
    ) -> ApiResult<Vec<ActivationRecord>> {
        let rows: Vec<ActivationRow> = sqlx::query_as(
            "SELECT a.id, a.key_id, a.machine_id, a.app_version, a.platform, a.activated_at, \
                 a.last_refresh, a.deactivated_at, k.key_display, k.product \
                 FROM activations a JOIN license_keys k ON k.id = a.key_id \
                 WHERE (?1 IS NULL OR a.key_id = ?1) \
                 ORDER BY a.activated_at DESC, a.id DESC LIMIT ?2 OFFSET ?3",
        )
        .bind(key_id)
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(&self.reader)
        .await?;
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

    async fn update_flag(
        &self,
        id: &str,
        req: &FlagUpdateRequest,
        now: OffsetDateTime,
    ) -> ApiResult<()> {
        let now_s = timefmt::format(now);
        let id = id.to_string();
        let req = req.clone();
        self.writer
            .run(move |tx| {
                Box::pin(async move {
                    let id = id.as_str();
                    let done = sqlx::query(
                    "UPDATE flags SET status = ?, action_taken = ?, reviewed_at = ? WHERE id = ?",
                )
                .bind(&req.status)
                .bind(&req.action_taken)
                .bind(&now_s)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                    if done.rows_affected() == 0 {
                        return Err(AppError::not_found("Flag"));
                    }
                    let details =
                        serde_json::json!({"status": req.status, "action_taken": req.action_taken});
                    let action = format!("flag_{}", req.status);
                    audit(tx, "flag", id, &action, Actor::Admin, Some(details), &now_s).await?;
                    Ok(())
                })
            })
            .await
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

    async fn create_api_key(
        &self,
        req: &CreateApiKeyRequest,
        key_hash: &str,
        key_prefix: &str,
        now: OffsetDateTime,
    ) -> ApiResult<ApiKeyRecord> {
        let now_s = timefmt::format(now);
        let id = new_id();
        let req = req.clone();
        let key_hash = key_hash.to_string();
        let key_prefix = key_prefix.to_string();
        self.writer
            .run(move |tx| {
                Box::pin(async move {
                    let key_hash = key_hash.as_str();
                    let key_prefix = key_prefix.as_str();
                sqlx::query(
                    "INSERT INTO api_keys (id, key_hash, key_prefix, product, tier, name, org_name, trial, \
                     expires_at, revoked, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
                )
                .bind(&id)
                .bind(key_hash)
                .bind(key_prefix)
                .bind(&req.product)
                .bind(&req.tier)
                .bind(&req.name)
                .bind(&req.org_name)
                .bind(req.trial)
                .bind(&req.expires_at)
                .bind(&now_s)
                .bind(&now_s)
                .execute(&mut *tx)
                .await?;
                let details =
                    serde_json::json!({"product": req.product, "tier": req.tier, "name": req.name});
                audit(
                    tx,
                    "api_key",
                    &id,
                    "created",
                    Actor::Admin,
                    Some(details),
                    &now_s,
                )
                .await?;
                let row: ApiKeyRow = sqlx::query_as("SELECT * FROM api_keys WHERE id = ?")
                    .bind(&id)
                    .fetch_one(&mut *tx)
                    .await?;
                Ok(row.into())
                })
            })
            .await
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

    async fn update_api_key(
        &self,
        id: &str,
        req: &UpdateApiKeyRequest,
        now: OffsetDateTime,
    ) -> ApiResult<ApiKeyRecord> {
        let now_s = timefmt::format(now);
        let id = id.to_string();
        let req = req.clone();
        self.writer
            .run(move |tx| {
                Box::pin(async move {
                    let id = id.as_str();
                    let before: Option<ApiKeyRow> =
                        sqlx::query_as("SELECT * FROM api_keys WHERE id = ?")
                            .bind(id)
                            .fetch_optional(&mut *tx)
                            .await?;
                    let Some(before) = before else {
                        return Err(AppError::not_found("API key"));
                    };
                    sqlx::query(
                        "UPDATE api_keys SET tier = COALESCE(?, tier), name = COALESCE(?, name), \
                     org_name = COALESCE(?, org_name), trial = COALESCE(?, trial), \
                     expires_at = COALESCE(?, expires_at), updated_at = ? WHERE id = ?",
                    )
                    .bind(&req.tier)
                    .bind(&req.name)
                    .bind(&req.org_name)
                    .bind(req.trial)
                    .bind(&req.expires_at)
                    .bind(&now_s)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                    let details = serde_json::json!({"from_tier": before.tier, "changes": req});
                    audit(
                        tx,
                        "api_key",
                        id,
                        "updated",
                        Actor::Admin,
                        Some(details),
                        &now_s,
                    )
                    .await?;
                    let row: ApiKeyRow = sqlx::query_as("SELECT * FROM api_keys WHERE id = ?")
                        .bind(id)
                        .fetch_one(&mut *tx)
                        .await?;
                    Ok(row.into())
                })
            })
            .await
    }

    async fn revoke_api_key(&self, id: &str, now: OffsetDateTime) -> ApiResult<()> {
        let now_s = timefmt::format(now);
        let id = id.to_string();
        self.writer
            .run(move |tx| {
                Box::pin(async move {
                    let id = id.as_str();
                    let done =
                        sqlx::query("UPDATE api_keys SET revoked = 1, updated_at = ? WHERE id = ?")
                            .bind(&now_s)
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                    if done.rows_affected() == 0 {
                        return Err(AppError::not_found("API key"));
                    }
                    audit(tx, "api_key", id, "revoked", Actor::Admin, None, &now_s).await?;
                    Ok(())
                })
            })
            .await
    }

    async fn fetch_for_token(
        &self,
        key_hash: &str,
        instance_id: &str,
        version: Option<&str>,
        now: OffsetDateTime,
    ) -> ApiResult<ApiKeyRecord> {
        // Read first, outside the write lock: unknown and revoked keys (guessing) cost no write.
        let row: Option<ApiKeyRow> = sqlx::query_as("SELECT * FROM api_keys WHERE key_hash = ?")
            .bind(key_hash)
            .fetch_optional(&self.reader)
            .await?;
        let row = row.ok_or_else(rules::unknown_api_key)?;
        rules::check_api_key_usable(&row, now)?;
        let now_s = timefmt::format(now);
        let (api_key_id, instance_id, version) = (
            row.id.clone(),
            instance_id.to_string(),
            version.map(str::to_string),
        );
        self.writer
            .run_single_statement(move |tx| {
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO instances (id, api_key_id, instance_id, version, first_seen, last_seen, fetch_count) \
                         VALUES (?, ?, ?, ?, ?, ?, 1) \
                         ON CONFLICT (api_key_id, instance_id) DO UPDATE SET \
                         version = COALESCE(excluded.version, instances.version), last_seen = MAX(instances.last_seen, excluded.last_seen), \
                         first_seen = MIN(instances.first_seen, excluded.first_seen), \
                         fetch_count = instances.fetch_count + 1",
                    )
                    .bind(new_id())
                    .bind(&api_key_id)
                    .bind(&instance_id)
                    .bind(&version)
                    .bind(&now_s)
                    .bind(&now_s)
                    .execute(&mut *tx)
                    .await?;
                    Ok(())
                })
            })
            .await?;
        Ok(row.into())
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
                .run(move |tx| Box::pin(async move { release_stale(tx, &key, now).await }))
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
