//! PostgreSQL, for several server replicas on one database. Behaviour is the SQLite store's,
//! statement for statement; what differs is how writers are kept apart.
//!
//! SQLite has one writer at a time (`BEGIN IMMEDIATE`). Here transactions run concurrently at
//! READ COMMITTED, so every transaction that counts or changes a key's seats first locks that
//! key's row (`SELECT … FOR NO KEY UPDATE`): activations, refreshes, deactivations and lease
//! releases of one key queue behind each other, across every replica, and each sees the rows the
//! previous one committed. (`NO KEY UPDATE` excludes the same writers as `FOR UPDATE` but does
//! not block the foreign-key checks of usage and flag inserts.) Instance recording is a single
//! atomic upsert; flag review a single UPDATE plus its audit row in one transaction.
//!
//! Durability: a commit returns once PostgreSQL has flushed it (`synchronous_commit`, on by
//! default); we warn at start-up if the server has it off.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};
use tessera_core::apikey::{
    ApiKeyRecord, CreateApiKeyRequest, InstanceRecord, UpdateApiKeyRequest,
};
use tessera_core::timefmt;
use tessera_core::wire::{
    ActivateRequest, ActivationRecord, AuditRecord, CreateKeyRequest, FlagRecord, FlagRequest,
    FlagUpdateRequest, KeyResponse, UsageEventRecord, UsageRequest,
};
use time::OffsetDateTime;

use super::postgres_usage::{NewUsageEvent, UsageBatcher};
use super::rows::{ActivationRow, AuditRow, FlagRow, UsageRow};
use super::{Actor, ApiKeyRow, Granted, InstanceRow, KeyRow, Page, Store, json_text, new_id};
use crate::error::{ApiResult, AppError};
use crate::rules;

pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections per replica. PostgreSQL's default `max_connections` is 100: several replicas
/// with this pool each stay well inside it.
pub const MAX_CONNECTIONS: u32 = 16;

pub struct PostgresStore {
    pool: PgPool,
    usage: UsageBatcher,
}

impl PostgresStore {
    /// Connects and runs the embedded migrations (sqlx takes an advisory lock, so replicas
    /// starting together migrate once).
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let options = PgConnectOptions::from_str(url)?.application_name("tessera");
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        let sync: String = sqlx::query_scalar("SHOW synchronous_commit")
            .fetch_one(&pool)
            .await?;
        if sync.eq_ignore_ascii_case("off") {
            tracing::warn!(
                "PostgreSQL has synchronous_commit=off: a crash may lose writes the server already answered"
            );
        }
        let usage = UsageBatcher::start(pool.clone());
        Ok(Self { pool, usage })
    }

    /// The pool, for maintenance commands (migrate, copy).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn begin(&self) -> ApiResult<Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
    }
}

async fn audit(
    tx: &mut Transaction<'_, Postgres>,
    entity_type: &str,
    entity_id: &str,
    action: &str,
    actor: Actor<'_>,
    details: Option<serde_json::Value>,
    now: &str,
) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO audit_log (id, entity_type, entity_id, action, actor, details, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(new_id())
    .bind(entity_type)
    .bind(entity_id)
    .bind(action)
    .bind(actor.as_string())
    .bind(json_text(details.as_ref()))
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// PostgreSQL TEXT cannot hold NUL, and binding one is an error, where SQLite simply finds
/// nothing. Stored text never contains NUL (request bodies are validated), so a lookup by such
/// a string (an id from a URL path or query) answers "not found", as on SQLite.
fn unmatchable(s: &str) -> bool {
    s.contains('\0')
}

/// Reads the key and locks its row until the transaction ends: the seat lock.
async fn lock_key_by_display(
    tx: &mut Transaction<'_, Postgres>,
    key_display: &str,
) -> ApiResult<Option<KeyRow>> {
    if unmatchable(key_display) {
        return Ok(None);
    }
    Ok(sqlx::query_as::<_, KeyRow>(
        "SELECT * FROM license_keys WHERE key_display = $1 FOR NO KEY UPDATE",
    )
    .bind(key_display)
    .fetch_optional(&mut **tx)
    .await?)
}

/// Floating seats: frees this key's seats whose lease ran out, each release audited.
/// The caller holds the key's row lock.
async fn release_stale(
    tx: &mut Transaction<'_, Postgres>,
    key: &KeyRow,
    now: OffsetDateTime,
) -> ApiResult<u64> {
    let Some(cutoff) = rules::lease_cutoff(key.lease_ttl_secs, now) else {
        return Ok(0);
    };
    let now_s = timefmt::format(now);
    let released: Vec<(String, String)> = sqlx::query_as(
        "UPDATE activations SET deactivated_at = $1 \
         WHERE key_id = $2 AND deactivated_at IS NULL AND last_refresh < $3 \
         RETURNING id, machine_id",
    )
    .bind(&now_s)
    .bind(&key.id)
    .bind(&cutoff)
    .fetch_all(&mut **tx)
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
impl Store for PostgresStore {
    async fn ping(&self) -> ApiResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
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
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO license_keys (id, key_display, product, tier, seats, valid_until, \
             revoked, customer_email, source, trial, notes, created_at, lease_ttl_secs) \
             VALUES ($1, $2, $3, $4, $5, $6, FALSE, $7, $8, $9, $10, $11, $12)",
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
            &mut tx,
            "key",
            &row.id,
            "created",
            Actor::Admin,
            Some(details),
            &now_s,
        )
        .await?;
        tx.commit().await?;
        Ok(row.into_response())
    }

    async fn list_keys(&self, page: Page) -> ApiResult<Vec<KeyResponse>> {
        let rows: Vec<KeyRow> = sqlx::query_as(
            "SELECT * FROM license_keys ORDER BY created_at DESC, id DESC LIMIT $1 OFFSET $2",
        )
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(KeyRow::into_response).collect())
    }

    async fn get_key(&self, id: &str) -> ApiResult<Option<KeyResponse>> {
        if unmatchable(id) {
            return Ok(None);
        }
        let row: Option<KeyRow> = sqlx::query_as("SELECT * FROM license_keys WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(KeyRow::into_response))
    }

    async fn revoke_key(&self, id: &str, now: OffsetDateTime) -> ApiResult<()> {
        if unmatchable(id) {
            return Err(AppError::not_found("Key"));
        }
        let now_s = timefmt::format(now);
        let mut tx = self.begin().await?;
        let done = sqlx::query("UPDATE license_keys SET revoked = TRUE WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(AppError::not_found("Key"));
        }
        audit(&mut tx, "key", id, "revoked", Actor::Admin, None, &now_s).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn activate(&self, req: &ActivateRequest, now: OffsetDateTime) -> ApiResult<Granted> {
        let now_s = timefmt::format(now);
        let mut tx = self.begin().await?;
        // The seat lock: from here to commit no other replica counts or takes this key's seats.
        let key = lock_key_by_display(&mut tx, &req.key)
            .await?
            .ok_or_else(rules::unknown_key)?;
        rules::check_key_usable(&key, &req.product, now)?;
        let released = i64::try_from(release_stale(&mut tx, &key, now).await?).unwrap_or(i64::MAX);
        // The row was read under the lock, before the release: only the release changed it.
        let active_seats = key.active_seats.saturating_sub(released);

        let existing: Option<(String, Option<String>)> = sqlx::query_as(
            "SELECT id, deactivated_at FROM activations WHERE key_id = $1 AND machine_id = $2",
        )
        .bind(&key.id)
        .bind(&req.machine_id)
        .fetch_optional(&mut *tx)
        .await?;
        let holds_seat = matches!(existing, Some((_, None)));
        // A machine without a seat is not among `active_seats`, so the count is of other machines.
        if !holds_seat && !rules::seat_available(key.seats, active_seats) {
            return Err(rules::seat_limit_reached(key.seats));
        }
        // Each change and its audit row go in one statement: the key's row lock is held from
        // the lock to the commit, so every round trip in between delays the key's next
        // activation (measured: one hot key's activations run one at a time).
        let details = json_text(Some(&serde_json::json!({"machine_id": req.machine_id})));
        let actor = Actor::Machine(&req.machine_id).as_string();
        match existing {
            Some((id, _)) => {
                sqlx::query(
                    "WITH seat AS (UPDATE activations SET last_refresh = $1, app_version = $2, \
                     platform = $3, deactivated_at = NULL WHERE id = $4) \
                     INSERT INTO audit_log (id, entity_type, entity_id, action, actor, details, created_at) \
                     VALUES ($5, 'activation', $4, 'activated', $6, $7, $1)",
                )
                .bind(&now_s)
                .bind(&req.app_version)
                .bind(&req.platform)
                .bind(&id)
                .bind(new_id())
                .bind(&actor)
                .bind(&details)
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query(
                    "WITH seat AS (INSERT INTO activations (id, key_id, machine_id, app_version, \
                     platform, activated_at, last_refresh) VALUES ($1, $2, $3, $4, $5, $6, $6)) \
                     INSERT INTO audit_log (id, entity_type, entity_id, action, actor, details, created_at) \
                     VALUES ($7, 'activation', $1, 'activated', $8, $9, $6)",
                )
                .bind(new_id())
                .bind(&key.id)
                .bind(&req.machine_id)
                .bind(&req.app_version)
                .bind(&req.platform)
                .bind(&now_s)
                .bind(new_id())
                .bind(&actor)
                .bind(&details)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(Granted { key })
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
        let mut tx = self.begin().await?;
        let key = lock_key_by_display(&mut tx, key_display)
            .await?
            .ok_or_else(rules::unknown_key)?;
        rules::check_key_usable(&key, product, now)?;
        release_stale(&mut tx, &key, now).await?;
        // The refresh and its audit row in one statement, as in `activate`. The UPDATE reads
        // the latest committed seats (the key's lock is held), so no seat means none.
        let refreshed: Option<String> = sqlx::query_scalar(
            "WITH seat AS (UPDATE activations SET last_refresh = GREATEST(last_refresh, $1), \
             app_version = COALESCE($2, app_version), platform = COALESCE($3, platform) \
             WHERE key_id = $4 AND machine_id = $5 AND deactivated_at IS NULL RETURNING id) \
             INSERT INTO audit_log (id, entity_type, entity_id, action, actor, details, created_at) \
             SELECT $6, 'activation', seat.id, 'refreshed', $7, $8, $1 FROM seat \
             RETURNING entity_id",
        )
        .bind(&now_s)
        .bind(app_version)
        .bind(platform)
        .bind(&key.id)
        .bind(machine_id)
        .bind(new_id())
        .bind(Actor::Machine(machine_id).as_string())
        .bind(json_text(Some(&serde_json::json!({"machine_id": machine_id}))))
        .fetch_optional(&mut *tx)
        .await?;
        if refreshed.is_none() {
            // Commit the lease releases even though this refresh is refused.
            tx.commit().await?;
            return Err(AppError::new(
                tessera_core::ErrorCode::MachineNotActivated,
                "Machine not registered for this key",
            ));
        }
        tx.commit().await?;
        Ok(Granted { key })
    }

    async fn deactivate(
        &self,
        key_display: &str,
        machine_id: &str,
        now: OffsetDateTime,
    ) -> ApiResult<()> {
        let now_s = timefmt::format(now);
        let mut tx = self.begin().await?;
        // Same lock as activation: two concurrent deactivations of one seat give one 200 and
        // one 404, as on SQLite.
        let key = lock_key_by_display(&mut tx, key_display).await?;
        let id: Option<String> = match &key {
            Some(key) => {
                sqlx::query_scalar(
                    "SELECT id FROM activations \
                     WHERE key_id = $1 AND machine_id = $2 AND deactivated_at IS NULL",
                )
                .bind(&key.id)
                .bind(machine_id)
                .fetch_optional(&mut *tx)
                .await?
            }
            None => None,
        };
        let Some(id) = id else {
            return Err(AppError::new(
                tessera_core::ErrorCode::NotFound,
                "No active seat found",
            ));
        };
        sqlx::query("UPDATE activations SET deactivated_at = $1 WHERE id = $2")
            .bind(&now_s)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        let details = serde_json::json!({"machine_id": machine_id});
        audit(
            &mut tx,
            "activation",
            &id,
            "deactivated",
            Actor::Machine(machine_id),
            Some(details),
            &now_s,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn record_usage(
        &self,
        key_display: &str,
        machine_id: &str,
        req: &UsageRequest,
        now: OffsetDateTime,
    ) -> ApiResult<()> {
        if unmatchable(key_display) {
            return Err(AppError::key_not_found());
        }
        self.usage
            .record(NewUsageEvent {
                id: new_id(),
                key_display: key_display.to_string(),
                machine_id: machine_id.to_string(),
                product: req.product.clone(),
                event_type: req.event_type.clone(),
                metadata: json_text(req.metadata.as_ref()),
                created_at: timefmt::format(now),
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
        let mut tx = self.begin().await?;
        let key: Option<KeyRow> = if unmatchable(key_display) {
            None
        } else {
            sqlx::query_as("SELECT * FROM license_keys WHERE key_display = $1")
                .bind(key_display)
                .fetch_optional(&mut *tx)
                .await?
        };
        let Some(key) = key else {
            return Err(AppError::key_not_found());
        };
        let id = new_id();
        sqlx::query(
            "INSERT INTO flags (id, key_id, machine_id, product, flag_type, details, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
            &mut tx,
            "flag",
            &id,
            "flag_opened",
            Actor::Machine(machine_id),
            Some(details),
            &now_s,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_activations(
        &self,
        key_id: Option<&str>,
        page: Page,
    ) -> ApiResult<Vec<ActivationRecord>> {
        if key_id.is_some_and(unmatchable) {
            return Ok(Vec::new());
        }
        // As on SQLite: the page is cut on the index alone, then only its rows are joined. An
        // OFFSET after the join paid a key lookup per skipped row, and one statement for both
        // cases left the planner a generic plan that suits neither.
        let sql = match key_id {
            None => {
                "SELECT a.id, a.key_id, a.machine_id, a.app_version, a.platform, a.activated_at, \
                 a.last_refresh, a.deactivated_at, k.key_display, k.product \
                 FROM (SELECT id FROM activations \
                       ORDER BY activated_at DESC, id DESC LIMIT $1 OFFSET $2) p \
                 JOIN activations a ON a.id = p.id JOIN license_keys k ON k.id = a.key_id \
                 ORDER BY a.activated_at DESC, a.id DESC"
            }
            Some(_) => {
                "SELECT a.id, a.key_id, a.machine_id, a.app_version, a.platform, a.activated_at, \
                 a.last_refresh, a.deactivated_at, k.key_display, k.product \
                 FROM activations a JOIN license_keys k ON k.id = a.key_id \
                 WHERE a.key_id = $3 ORDER BY a.activated_at DESC, a.id DESC LIMIT $1 OFFSET $2"
            }
        };
        let mut query = sqlx::query_as(sql).bind(page.limit).bind(page.offset);
        if let Some(key_id) = key_id {
            query = query.bind(key_id);
        }
        let rows: Vec<ActivationRow> = query.fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn list_usage(
        &self,
        key_id: Option<&str>,
        page: Page,
    ) -> ApiResult<Vec<UsageEventRecord>> {
        if key_id.is_some_and(unmatchable) {
            return Ok(Vec::new());
        }
        let rows: Vec<UsageRow> = sqlx::query_as(
            "SELECT * FROM usage_events WHERE ($1::text IS NULL OR key_id = $1) \
             ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3",
        )
        .bind(key_id)
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn list_flags(&self, status: &str, page: Page) -> ApiResult<Vec<FlagRecord>> {
        if unmatchable(status) {
            return Ok(Vec::new());
        }
        let rows: Vec<FlagRow> = sqlx::query_as(
            "SELECT * FROM flags WHERE status = $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3",
        )
        .bind(status)
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn update_flag(
        &self,
        id: &str,
        req: &FlagUpdateRequest,
        now: OffsetDateTime,
    ) -> ApiResult<()> {
        if unmatchable(id) {
            return Err(AppError::not_found("Flag"));
        }
        let now_s = timefmt::format(now);
        let mut tx = self.begin().await?;
        // One statement: the row lock it takes queues concurrent reviews of the same flag, and
        // each review's audit row commits with it.
        let done = sqlx::query(
            "UPDATE flags SET status = $1, action_taken = $2, reviewed_at = $3 WHERE id = $4",
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
        let details = serde_json::json!({"status": req.status, "action_taken": req.action_taken});
        let action = format!("flag_{}", req.status);
        audit(
            &mut tx,
            "flag",
            id,
            &action,
            Actor::Admin,
            Some(details),
            &now_s,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_audit(&self, entity_id: Option<&str>, page: Page) -> ApiResult<Vec<AuditRecord>> {
        if entity_id.is_some_and(unmatchable) {
            return Ok(Vec::new());
        }
        let rows: Vec<AuditRow> = sqlx::query_as(
            "SELECT * FROM audit_log WHERE ($1::text IS NULL OR entity_id = $1) \
             ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3",
        )
        .bind(entity_id)
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(&self.pool)
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
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO api_keys (id, key_hash, key_prefix, product, tier, name, org_name, trial, \
             expires_at, revoked, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, FALSE, $10, $11)",
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
            &mut tx,
            "api_key",
            &id,
            "created",
            Actor::Admin,
            Some(details),
            &now_s,
        )
        .await?;
        let row: ApiKeyRow = sqlx::query_as("SELECT * FROM api_keys WHERE id = $1")
            .bind(&id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(row.into())
    }

    async fn list_api_keys(&self, page: Page) -> ApiResult<Vec<ApiKeyRecord>> {
        let rows: Vec<ApiKeyRow> = sqlx::query_as(
            "SELECT * FROM api_keys ORDER BY created_at DESC, id DESC LIMIT $1 OFFSET $2",
        )
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn get_api_key(&self, id: &str) -> ApiResult<Option<ApiKeyRecord>> {
        if unmatchable(id) {
            return Ok(None);
        }
        let row: Option<ApiKeyRow> = sqlx::query_as("SELECT * FROM api_keys WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(Into::into))
    }

    async fn update_api_key(
        &self,
        id: &str,
        req: &UpdateApiKeyRequest,
        now: OffsetDateTime,
    ) -> ApiResult<ApiKeyRecord> {
        if unmatchable(id) {
            return Err(AppError::not_found("API key"));
        }
        let now_s = timefmt::format(now);
        let mut tx = self.begin().await?;
        // Locked so that the audited `from_tier` is the tier this update replaced.
        let before: Option<ApiKeyRow> =
            sqlx::query_as("SELECT * FROM api_keys WHERE id = $1 FOR NO KEY UPDATE")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(before) = before else {
            return Err(AppError::not_found("API key"));
        };
        sqlx::query(
            "UPDATE api_keys SET tier = COALESCE($1, tier), name = COALESCE($2, name), \
             org_name = COALESCE($3, org_name), trial = COALESCE($4, trial), \
             expires_at = COALESCE($5, expires_at), updated_at = $6 WHERE id = $7",
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
            &mut tx,
            "api_key",
            id,
            "updated",
            Actor::Admin,
            Some(details),
            &now_s,
        )
        .await?;
        let row: ApiKeyRow = sqlx::query_as("SELECT * FROM api_keys WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(row.into())
    }

    async fn revoke_api_key(&self, id: &str, now: OffsetDateTime) -> ApiResult<()> {
        if unmatchable(id) {
            return Err(AppError::not_found("API key"));
        }
        let now_s = timefmt::format(now);
        let mut tx = self.begin().await?;
        let done = sqlx::query("UPDATE api_keys SET revoked = TRUE, updated_at = $1 WHERE id = $2")
            .bind(&now_s)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(AppError::not_found("API key"));
        }
        audit(
            &mut tx,
            "api_key",
            id,
            "revoked",
            Actor::Admin,
            None,
            &now_s,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn fetch_for_token(
        &self,
        key_hash: &str,
        instance_id: &str,
        version: Option<&str>,
        now: OffsetDateTime,
    ) -> ApiResult<ApiKeyRecord> {
        if unmatchable(key_hash) {
            return Err(rules::unknown_api_key());
        }
        // Read first: unknown and revoked keys (guessing) cost no write.
        let row: Option<ApiKeyRow> = sqlx::query_as("SELECT * FROM api_keys WHERE key_hash = $1")
            .bind(key_hash)
            .fetch_optional(&self.pool)
            .await?;
        let row = row.ok_or_else(rules::unknown_api_key)?;
        rules::check_api_key_usable(&row, now)?;
        let now_s = timefmt::format(now);
        // One atomic statement: concurrent first fetches of an instance from several replicas
        // insert once and count every fetch. `now` was taken before the statement queued, so
        // the times only ever widen (a fetch that commits later may carry an earlier `now`,
        // and replicas' clocks differ a little).
        sqlx::query(
            "INSERT INTO instances (id, api_key_id, instance_id, version, first_seen, last_seen, fetch_count) \
             VALUES ($1, $2, $3, $4, $5, $6, 1) \
             ON CONFLICT (api_key_id, instance_id) DO UPDATE SET \
             version = COALESCE(EXCLUDED.version, instances.version), \
             first_seen = LEAST(instances.first_seen, EXCLUDED.first_seen), \
             last_seen = GREATEST(instances.last_seen, EXCLUDED.last_seen), \
             fetch_count = instances.fetch_count + 1",
        )
        .bind(new_id())
        .bind(&row.id)
        .bind(instance_id)
        .bind(version)
        .bind(&now_s)
        .bind(&now_s)
        .execute(&self.pool)
        .await?;
        Ok(row.into())
    }

    async fn list_instances(
        &self,
        api_key_id: Option<&str>,
        page: Page,
    ) -> ApiResult<Vec<InstanceRecord>> {
        if api_key_id.is_some_and(unmatchable) {
            return Ok(Vec::new());
        }
        let rows: Vec<InstanceRow> = sqlx::query_as(
            "SELECT * FROM instances WHERE ($1::text IS NULL OR api_key_id = $1) \
             ORDER BY last_seen DESC, id DESC LIMIT $2 OFFSET $3",
        )
        .bind(api_key_id)
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn release_expired_leases(&self, now: OffsetDateTime) -> ApiResult<u64> {
        let keys: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT k.key_display FROM license_keys k JOIN activations a ON a.key_id = k.id \
             WHERE k.lease_ttl_secs IS NOT NULL AND a.deactivated_at IS NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut released = 0;
        for key_display in keys {
            let mut tx = self.begin().await?;
            // Every replica sweeps; the key lock makes each release happen (and be audited) once.
            if let Some(key) = lock_key_by_display(&mut tx, &key_display).await? {
                released += release_stale(&mut tx, &key, now).await?;
            }
            tx.commit().await?;
        }
        Ok(released)
    }

    fn pool_stats(&self) -> Vec<(&'static str, u32, usize)> {
        vec![("postgres", self.pool.size(), self.pool.num_idle())]
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
