//! Row types both stores decode into, and their conversion to the wire records. Column names
//! and types are the same on SQLite and PostgreSQL (timestamps are fixed-width RFC 3339 text).

use tessera_core::wire::{ActivationRecord, AuditRecord, FlagRecord, UsageEventRecord};

use super::parse_json_text;

#[derive(sqlx::FromRow)]
pub(super) struct ActivationRow {
    id: String,
    key_id: String,
    machine_id: String,
    app_version: Option<String>,
    platform: Option<String>,
    activated_at: String,
    last_refresh: String,
    deactivated_at: Option<String>,
    key_display: String,
    product: String,
}

impl From<ActivationRow> for ActivationRecord {
    fn from(r: ActivationRow) -> Self {
        ActivationRecord {
            id: r.id,
            key_id: r.key_id,
            machine_id: r.machine_id,
            app_version: r.app_version,
            platform: r.platform,
            activated_at: r.activated_at,
            last_refresh: r.last_refresh,
            deactivated_at: r.deactivated_at,
            key_display: r.key_display,
            product: r.product,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct UsageRow {
    id: String,
    key_id: String,
    machine_id: String,
    product: String,
    event_type: String,
    metadata: Option<String>,
    created_at: String,
}

impl From<UsageRow> for UsageEventRecord {
    fn from(r: UsageRow) -> Self {
        UsageEventRecord {
            id: r.id,
            key_id: r.key_id,
            machine_id: r.machine_id,
            product: r.product,
            event_type: r.event_type,
            metadata: parse_json_text(r.metadata),
            created_at: r.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct FlagRow {
    id: String,
    key_id: String,
    machine_id: Option<String>,
    product: String,
    flag_type: String,
    details: Option<String>,
    status: String,
    created_at: String,
    reviewed_at: Option<String>,
    action_taken: Option<String>,
}

impl From<FlagRow> for FlagRecord {
    fn from(r: FlagRow) -> Self {
        FlagRecord {
            id: r.id,
            key_id: r.key_id,
            machine_id: r.machine_id,
            product: r.product,
            flag_type: r.flag_type,
            details: parse_json_text(r.details),
            status: r.status,
            created_at: r.created_at,
            reviewed_at: r.reviewed_at,
            action_taken: r.action_taken,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct AuditRow {
    id: String,
    entity_type: String,
    entity_id: String,
    action: String,
    actor: Option<String>,
    details: Option<String>,
    created_at: String,
}

impl From<AuditRow> for AuditRecord {
    fn from(r: AuditRow) -> Self {
        AuditRecord {
            id: r.id,
            entity_type: r.entity_type,
            entity_id: r.entity_id,
            action: r.action,
            actor: r.actor,
            details: parse_json_text(r.details),
            created_at: r.created_at,
        }
    }
}
