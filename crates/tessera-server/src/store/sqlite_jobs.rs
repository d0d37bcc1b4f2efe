//! The SQLite write path: every state change, as a synchronous job the writer thread runs
//! inside its batch transaction (see `sqlite_writer`). Statements are prepared once per
//! connection (`prepare_cached`), so a job costs microseconds, not round trips.

use rusqlite::{Connection, OptionalExtension, Row, named_params, params};
use tessera_core::apikey::{CreateApiKeyRequest, UpdateApiKeyRequest};
use tessera_core::timefmt;
use tessera_core::wire::{ActivateRequest, FlagRequest, FlagUpdateRequest, UsageRequest};
use time::OffsetDateTime;

use super::{Actor, ApiKeyRow, Granted, KeyRow, json_text, new_id};
use crate::error::{ApiResult, AppError};
use crate::rules;

fn key_row(row: &Row<'_>) -> rusqlite::Result<KeyRow> {
    Ok(KeyRow {
        id: row.get("id")?,
        key_display: row.get("key_display")?,
        product: row.get("product")?,
        tier: row.get("tier")?,
        seats: row.get("seats")?,
        valid_until: row.get("valid_until")?,
        revoked: row.get("revoked")?,
        customer_email: row.get("customer_email")?,
        source: row.get("source")?,
        trial: row.get("trial")?,
        notes: row.get("notes")?,
        created_at: row.get("created_at")?,
        lease_ttl_secs: row.get("lease_ttl_secs")?,
        active_seats: row.get("active_seats")?,
    })
}

fn api_key_row(row: &Row<'_>) -> rusqlite::Result<ApiKeyRow> {
    Ok(ApiKeyRow {
        id: row.get("id")?,
        key_hash: row.get("key_hash")?,
        key_prefix: row.get("key_prefix")?,
        product: row.get("product")?,
        tier: row.get("tier")?,
        name: row.get("name")?,
        org_name: row.get("org_name")?,
        trial: row.get("trial")?,
        expires_at: row.get("expires_at")?,
        revoked: row.get("revoked")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

fn audit(
    conn: &Connection,
    entity: (&str, &str),
    action: &str,
    actor: Actor<'_>,
    details: Option<serde_json::Value>,
    now: &str,
) -> ApiResult<()> {
    conn.prepare_cached(
        "INSERT INTO audit_log (id, entity_type, entity_id, action, actor, details, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )?
    .execute(params![
        new_id(),
        entity.0,
        entity.1,
        action,
        actor.as_string(),
        json_text(details.as_ref()),
        now
    ])?;
    Ok(())
}

fn key_by_display(conn: &Connection, key_display: &str) -> ApiResult<Option<KeyRow>> {
    Ok(conn
        .prepare_cached("SELECT * FROM license_keys WHERE key_display = ?")?
        .query_row([key_display], key_row)
        .optional()?)
}

fn api_key_by_id(conn: &Connection, id: &str) -> ApiResult<Option<ApiKeyRow>> {
    Ok(conn
        .prepare_cached("SELECT * FROM api_keys WHERE id = ?")?
        .query_row([id], api_key_row)
        .optional()?)
}

/// A key and, for one machine, everything the seat decision needs, in one statement.
struct SeatView {
    key: KeyRow,
    existing_id: Option<String>,
    /// This machine holds an active seat (false when its seat was released).
    existing_active: bool,
}

fn seat_view(
    conn: &Connection,
    key_display: &str,
    machine_id: &str,
) -> ApiResult<Option<SeatView>> {
    let mut statement = conn.prepare_cached(
        "SELECT k.*, a.id AS existing_id, \
         (a.id IS NOT NULL AND a.deactivated_at IS NULL) AS existing_active \
         FROM license_keys k \
         LEFT JOIN activations a ON a.key_id = k.id AND a.machine_id = :machine \
         WHERE k.key_display = :key",
    )?;
    let view = statement
        .query_row(
            named_params! {":machine": machine_id, ":key": key_display},
            |row| {
                Ok(SeatView {
                    key: key_row(row)?,
                    existing_id: row.get("existing_id")?,
                    existing_active: row.get("existing_active")?,
                })
            },
        )
        .optional()?;
    Ok(view)
}

/// Floating seats: frees this key's seats whose lease ran out, each release audited.
pub fn release_stale(conn: &Connection, key: &KeyRow, now: OffsetDateTime) -> ApiResult<u64> {
    let Some(cutoff) = rules::lease_cutoff(key.lease_ttl_secs, now) else {
        return Ok(0);
    };
    let now_s = timefmt::format(now);
    let released: Vec<(String, String)> = conn
        .prepare_cached(
            "UPDATE activations SET deactivated_at = ? \
             WHERE key_id = ? AND deactivated_at IS NULL AND last_refresh < ? \
             RETURNING id, machine_id",
        )?
        .query_map(params![now_s, key.id, cutoff], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    for (id, machine_id) in &released {
        let details = serde_json::json!({"machine_id": machine_id, "reason": "lease_expired"});
        let entity = ("activation", id.as_str());
        audit(
            conn,
            entity,
            "lease_released",
            Actor::System,
            Some(details),
            &now_s,
        )?;
    }
    Ok(released.len() as u64)
}

pub fn create_key(conn: &Connection, row: &KeyRow) -> ApiResult<()> {
    conn.prepare_cached(
        "INSERT INTO license_keys (id, key_display, product, tier, seats, valid_until, \
         revoked, customer_email, source, trial, notes, created_at, lease_ttl_secs) \
         VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?)",
    )?
    .execute(params![
        row.id,
        row.key_display,
        row.product,
        row.tier,
        row.seats,
        row.valid_until,
        row.customer_email,
        row.source,
        row.trial,
        row.notes,
        row.created_at,
        row.lease_ttl_secs
    ])?;
    let details = serde_json::json!({"product": row.product, "tier": row.tier, "seats": row.seats});
    let entity = ("key", row.id.as_str());
    audit(
        conn,
        entity,
        "created",
        Actor::Admin,
        Some(details),
        &row.created_at,
    )
}

pub fn revoke_key(conn: &Connection, id: &str, now: &str) -> ApiResult<()> {
    let changed = conn
        .prepare_cached("UPDATE license_keys SET revoked = 1 WHERE id = ?")?
        .execute([id])?;
    if changed == 0 {
        return Err(AppError::not_found("Key"));
    }
    audit(conn, ("key", id), "revoked", Actor::Admin, None, now)
}

pub fn activate(
    conn: &Connection,
    req: &ActivateRequest,
    now: OffsetDateTime,
) -> ApiResult<Granted> {
    let now_s = timefmt::format(now);
    let view = seat_view(conn, &req.key, &req.machine_id)?.ok_or_else(rules::unknown_key)?;
    rules::check_key_usable(&view.key, &req.product, now)?;
    let view = if release_stale(conn, &view.key, now)? > 0 {
        seat_view(conn, &req.key, &req.machine_id)?.ok_or_else(rules::unknown_key)?
    } else {
        view
    };
    let key = view.key;
    // The seed skipped the seat check when a deactivated machine came back: fixed.
    // A machine without a seat is not among `active_seats`, so the count is of other machines.
    if !view.existing_active && !rules::seat_available(key.seats, key.active_seats) {
        return Err(rules::seat_limit_reached(key.seats));
    }
    let activation_id = match view.existing_id {
        Some(id) => {
            conn.prepare_cached(
                "UPDATE activations SET last_refresh = ?, app_version = ?, platform = ?, \
                 deactivated_at = NULL WHERE id = ?",
            )?
            .execute(params![now_s, req.app_version, req.platform, id])?;
            id
        }
        None => {
            let id = new_id();
            conn.prepare_cached(
                "INSERT INTO activations (id, key_id, machine_id, app_version, platform, \
                 activated_at, last_refresh) VALUES (?, ?, ?, ?, ?, ?, ?)",
            )?
            .execute(params![
                id,
                key.id,
                req.machine_id,
                req.app_version,
                req.platform,
                now_s,
                now_s
            ])?;
            id
        }
    };
    let details = serde_json::json!({"machine_id": req.machine_id});
    let actor = Actor::Machine(&req.machine_id);
    audit(
        conn,
        ("activation", &activation_id),
        "activated",
        actor,
        Some(details),
        &now_s,
    )?;
    Ok(Granted { key })
}

/// What a refresh names: the key, the product, the machine, and what the machine reports.
pub struct RefreshRequest {
    pub key_display: String,
    pub product: String,
    pub machine_id: String,
    pub app_version: Option<String>,
    pub platform: Option<String>,
}

pub fn refresh(conn: &Connection, req: &RefreshRequest, now: OffsetDateTime) -> ApiResult<Granted> {
    let now_s = timefmt::format(now);
    let key = key_by_display(conn, &req.key_display)?.ok_or_else(rules::unknown_key)?;
    rules::check_key_usable(&key, &req.product, now)?;
    release_stale(conn, &key, now)?;
    let activation: Option<String> = conn
        .prepare_cached(
            "SELECT id FROM activations \
             WHERE key_id = ? AND machine_id = ? AND deactivated_at IS NULL",
        )?
        .query_row([&key.id, &req.machine_id], |r| r.get(0))
        .optional()?;
    let Some(activation_id) = activation else {
        return Err(AppError::new(
            tessera_core::ErrorCode::MachineNotActivated,
            "Machine not registered for this key",
        ));
    };
    conn.prepare_cached(
        "UPDATE activations SET last_refresh = ?, app_version = COALESCE(?, app_version), \
         platform = COALESCE(?, platform) WHERE id = ?",
    )?
    .execute(params![now_s, req.app_version, req.platform, activation_id])?;
    let details = serde_json::json!({"machine_id": req.machine_id});
    let actor = Actor::Machine(&req.machine_id);
    audit(
        conn,
        ("activation", &activation_id),
        "refreshed",
        actor,
        Some(details),
        &now_s,
    )?;
    Ok(Granted { key })
}

pub fn deactivate(
    conn: &Connection,
    key_display: &str,
    machine_id: &str,
    now: &str,
) -> ApiResult<()> {
    let id: Option<String> = conn
        .prepare_cached(
            "SELECT a.id FROM activations a JOIN license_keys k ON k.id = a.key_id \
             WHERE k.key_display = ? AND a.machine_id = ? AND a.deactivated_at IS NULL",
        )?
        .query_row([key_display, machine_id], |r| r.get(0))
        .optional()?;
    let Some(id) = id else {
        return Err(AppError::new(
            tessera_core::ErrorCode::NotFound,
            "No active seat found",
        ));
    };
    conn.prepare_cached("UPDATE activations SET deactivated_at = ? WHERE id = ?")?
        .execute([now, &id])?;
    let details = serde_json::json!({"machine_id": machine_id});
    let actor = Actor::Machine(machine_id);
    audit(
        conn,
        ("activation", &id),
        "deactivated",
        actor,
        Some(details),
        now,
    )
}

pub fn record_usage(
    conn: &Connection,
    key_display: &str,
    machine_id: &str,
    req: &UsageRequest,
    now: &str,
) -> ApiResult<()> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO usage_events (id, key_id, machine_id, product, event_type, metadata, created_at) \
             SELECT ?, id, ?, ?, ?, ?, ? FROM license_keys WHERE key_display = ?",
        )?
        .execute(params![
            new_id(),
            machine_id,
            req.product,
            req.event_type,
            json_text(req.metadata.as_ref()),
            now,
            key_display
        ])?;
    if inserted == 0 {
        return Err(AppError::key_not_found());
    }
    Ok(())
}

pub fn record_flag(
    conn: &Connection,
    key_display: &str,
    machine_id: &str,
    req: &FlagRequest,
    now: &str,
) -> ApiResult<()> {
    let key = key_by_display(conn, key_display)?.ok_or_else(AppError::key_not_found)?;
    let id = new_id();
    conn.prepare_cached(
        "INSERT INTO flags (id, key_id, machine_id, product, flag_type, details, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )?
    .execute(params![
        id,
        key.id,
        machine_id,
        req.product,
        req.flag_type,
        json_text(req.details.as_ref()),
        now
    ])?;
    let details = serde_json::json!({"flag_type": req.flag_type, "key_id": key.id});
    let actor = Actor::Machine(machine_id);
    audit(
        conn,
        ("flag", &id),
        "flag_opened",
        actor,
        Some(details),
        now,
    )
}

pub fn update_flag(
    conn: &Connection,
    id: &str,
    req: &FlagUpdateRequest,
    now: &str,
) -> ApiResult<()> {
    let changed = conn
        .prepare_cached(
            "UPDATE flags SET status = ?, action_taken = ?, reviewed_at = ? WHERE id = ?",
        )?
        .execute(params![req.status, req.action_taken, now, id])?;
    if changed == 0 {
        return Err(AppError::not_found("Flag"));
    }
    let details = serde_json::json!({"status": req.status, "action_taken": req.action_taken});
    let action = format!("flag_{}", req.status);
    audit(
        conn,
        ("flag", id),
        &action,
        Actor::Admin,
        Some(details),
        now,
    )
}

/// A new API key: its id, the hash of its secret and the prefix shown in lists.
pub struct NewApiKey {
    pub id: String,
    pub key_hash: String,
    pub key_prefix: String,
}

pub fn create_api_key(
    conn: &Connection,
    new: &NewApiKey,
    req: &CreateApiKeyRequest,
    now: &str,
) -> ApiResult<ApiKeyRow> {
    conn.prepare_cached(
        "INSERT INTO api_keys (id, key_hash, key_prefix, product, tier, name, org_name, trial, \
         expires_at, revoked, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
    )?
    .execute(params![
        new.id,
        new.key_hash,
        new.key_prefix,
        req.product,
        req.tier,
        req.name,
        req.org_name,
        req.trial,
        req.expires_at,
        now,
        now
    ])?;
    let details = serde_json::json!({"product": req.product, "tier": req.tier, "name": req.name});
    audit(
        conn,
        ("api_key", &new.id),
        "created",
        Actor::Admin,
        Some(details),
        now,
    )?;
    api_key_by_id(conn, &new.id)?.ok_or_else(|| AppError::internal("created API key not found"))
}

pub fn update_api_key(
    conn: &Connection,
    id: &str,
    req: &UpdateApiKeyRequest,
    now: &str,
) -> ApiResult<ApiKeyRow> {
    let before = api_key_by_id(conn, id)?.ok_or_else(|| AppError::not_found("API key"))?;
    conn.prepare_cached(
        "UPDATE api_keys SET tier = COALESCE(?, tier), name = COALESCE(?, name), \
         org_name = COALESCE(?, org_name), trial = COALESCE(?, trial), \
         expires_at = COALESCE(?, expires_at), updated_at = ? WHERE id = ?",
    )?
    .execute(params![
        req.tier,
        req.name,
        req.org_name,
        req.trial,
        req.expires_at,
        now,
        id
    ])?;
    let details = serde_json::json!({"from_tier": before.tier, "changes": req});
    audit(
        conn,
        ("api_key", id),
        "updated",
        Actor::Admin,
        Some(details),
        now,
    )?;
    api_key_by_id(conn, id)?.ok_or_else(|| AppError::not_found("API key"))
}

pub fn revoke_api_key(conn: &Connection, id: &str, now: &str) -> ApiResult<()> {
    let changed = conn
        .prepare_cached("UPDATE api_keys SET revoked = 1, updated_at = ? WHERE id = ?")?
        .execute([now, id])?;
    if changed == 0 {
        return Err(AppError::not_found("API key"));
    }
    audit(conn, ("api_key", id), "revoked", Actor::Admin, None, now)
}

/// The API key behind a secret's hash, checked usable, with this instance's fetch recorded.
pub fn fetch_for_token(
    conn: &Connection,
    key_hash: &str,
    instance_id: &str,
    version: Option<&str>,
    now: OffsetDateTime,
) -> ApiResult<ApiKeyRow> {
    let row = conn
        .prepare_cached("SELECT * FROM api_keys WHERE key_hash = ?")?
        .query_row([key_hash], api_key_row)
        .optional()?
        .ok_or_else(rules::unknown_api_key)?;
    rules::check_api_key_usable(&row, now)?;
    let now_s = timefmt::format(now);
    conn.prepare_cached(
        "INSERT INTO instances (id, api_key_id, instance_id, version, first_seen, last_seen, fetch_count) \
         VALUES (?, ?, ?, ?, ?, ?, 1) \
         ON CONFLICT (api_key_id, instance_id) DO UPDATE SET \
         version = COALESCE(excluded.version, instances.version), \
         last_seen = MAX(instances.last_seen, excluded.last_seen), \
         first_seen = MIN(instances.first_seen, excluded.first_seen), \
         fetch_count = instances.fetch_count + 1",
    )?
    .execute(params![new_id(), row.id, instance_id, version, now_s, now_s])?;
    Ok(row)
}
