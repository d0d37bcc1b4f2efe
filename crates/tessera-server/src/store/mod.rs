//! Persistence. One small trait; one implementation per database, each with its own embedded
//! migrations. Every method that changes state commits (durably) before it returns.

use async_trait::async_trait;
use serde::Deserialize;
use tessera_core::apikey::{
    ApiKeyRecord, CreateApiKeyRequest, InstanceRecord, UpdateApiKeyRequest,
};
use tessera_core::wire::{
    ActivateRequest, ActivationRecord, AuditRecord, CreateKeyRequest, FlagRecord, FlagRequest,
    FlagUpdateRequest, KeyResponse, UsageEventRecord, UsageRequest,
};
use time::OffsetDateTime;

use crate::error::ApiResult;

pub mod maintenance;
pub mod postgres;
mod postgres_usage;
mod rows;
pub mod sqlite;
mod sqlite_jobs;
mod sqlite_sync;
mod sqlite_writer;

/// A license key row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyRow {
    pub id: String,
    pub key_display: String,
    pub product: String,
    pub tier: String,
    pub seats: i64,
    pub valid_until: Option<String>,
    pub revoked: bool,
    pub customer_email: Option<String>,
    pub source: String,
    pub trial: bool,
    pub notes: Option<String>,
    pub created_at: String,
    pub lease_ttl_secs: Option<i64>,
    /// Kept by triggers on `activations` (migration 0003): the count as of this row's read.
    pub active_seats: i64,
}

impl KeyRow {
    /// The row a new key gets: not revoked, created `now`.
    pub fn new(req: &CreateKeyRequest, key_display: &str, now: &str) -> Self {
        Self {
            id: new_id(),
            key_display: key_display.to_string(),
            product: req.product.clone(),
            tier: req.tier.clone(),
            seats: req.seats,
            valid_until: req.valid_until.clone(),
            revoked: false,
            customer_email: req.customer_email.clone(),
            source: req.source.clone(),
            trial: req.trial,
            notes: req.notes.clone(),
            created_at: now.to_string(),
            lease_ttl_secs: req.lease_ttl_secs,
            active_seats: 0,
        }
    }

    pub fn into_response(self) -> KeyResponse {
        KeyResponse {
            id: self.id,
            key_display: self.key_display,
            product: self.product,
            tier: self.tier,
            seats: self.seats,
            valid_until: self.valid_until,
            revoked: self.revoked,
            customer_email: self.customer_email,
            source: self.source,
            trial: self.trial,
            notes: self.notes,
            created_at: self.created_at,
            active_seat_count: self.active_seats,
            lease_ttl_secs: self.lease_ttl_secs,
        }
    }
}

/// An `api_keys` row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKeyRow {
    pub id: String,
    pub key_hash: String,
    pub key_prefix: String,
    pub product: String,
    pub tier: String,
    pub name: String,
    pub org_name: Option<String>,
    pub trial: bool,
    pub expires_at: Option<String>,
    pub revoked: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl From<ApiKeyRow> for ApiKeyRecord {
    fn from(r: ApiKeyRow) -> Self {
        ApiKeyRecord {
            id: r.id,
            key_prefix: r.key_prefix,
            product: r.product,
            tier: r.tier,
            name: r.name,
            org_name: r.org_name,
            trial: r.trial,
            expires_at: r.expires_at,
            revoked: r.revoked,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InstanceRow {
    pub id: String,
    pub api_key_id: String,
    pub instance_id: String,
    pub version: Option<String>,
    pub first_seen: String,
    pub last_seen: String,
    pub fetch_count: i64,
}

impl From<InstanceRow> for InstanceRecord {
    fn from(r: InstanceRow) -> Self {
        InstanceRecord {
            id: r.id,
            api_key_id: r.api_key_id,
            instance_id: r.instance_id,
            version: r.version,
            first_seen: r.first_seen,
            last_seen: r.last_seen,
            fetch_count: r.fetch_count,
        }
    }
}

/// `?limit=&offset=` on every list endpoint.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Page {
    #[serde(default = "Page::default_limit")]
    pub limit: i64,
    #[serde(default)]
    pub offset: i64,
}

impl Page {
    pub const DEFAULT_LIMIT: i64 = 100;
    pub const MAX_LIMIT: i64 = 1_000;
    fn default_limit() -> i64 {
        Self::DEFAULT_LIMIT
    }
    /// Clamps into sane bounds instead of failing: `limit` 1..=1000, `offset` ≥ 0.
    pub fn clamped(self) -> Self {
        Self {
            limit: self.limit.clamp(1, Self::MAX_LIMIT),
            offset: self.offset.max(0),
        }
    }
}

impl Default for Page {
    fn default() -> Self {
        Self {
            limit: Self::DEFAULT_LIMIT,
            offset: 0,
        }
    }
}

/// Who did it, for the audit log.
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    Admin,
    System,
    Machine(&'a str),
}

impl Actor<'_> {
    pub fn as_string(&self) -> String {
        match self {
            Actor::Admin => "admin".into(),
            Actor::System => "system".into(),
            Actor::Machine(m) => format!("machine:{m}"),
        }
    }
}

/// What a successful activation or refresh hands back to the handler for signing.
#[derive(Debug, Clone)]
pub struct Granted {
    pub key: KeyRow,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Cheap round trip for readiness checks.
    async fn ping(&self) -> ApiResult<()>;

    async fn create_key(
        &self,
        req: &CreateKeyRequest,
        key_display: &str,
        now: OffsetDateTime,
    ) -> ApiResult<KeyResponse>;
    async fn list_keys(&self, page: Page) -> ApiResult<Vec<KeyResponse>>;
    async fn get_key(&self, id: &str) -> ApiResult<Option<KeyResponse>>;
    async fn revoke_key(&self, id: &str, now: OffsetDateTime) -> ApiResult<()>;

    /// Seat check and insert in one transaction: concurrent activations never overshoot.
    async fn activate(&self, req: &ActivateRequest, now: OffsetDateTime) -> ApiResult<Granted>;
    /// Re-checks the key and the machine's seat, bumps `last_refresh`.
    async fn refresh(
        &self,
        key_display: &str,
        product: &str,
        machine_id: &str,
        app_version: Option<&str>,
        platform: Option<&str>,
        now: OffsetDateTime,
    ) -> ApiResult<Granted>;
    async fn deactivate(
        &self,
        key_display: &str,
        machine_id: &str,
        now: OffsetDateTime,
    ) -> ApiResult<()>;

    async fn record_usage(
        &self,
        key_display: &str,
        machine_id: &str,
        req: &UsageRequest,
        now: OffsetDateTime,
    ) -> ApiResult<()>;
    async fn record_flag(
        &self,
        key_display: &str,
        machine_id: &str,
        req: &FlagRequest,
        now: OffsetDateTime,
    ) -> ApiResult<()>;

    async fn list_activations(
        &self,
        key_id: Option<&str>,
        page: Page,
    ) -> ApiResult<Vec<ActivationRecord>>;
    async fn list_usage(
        &self,
        key_id: Option<&str>,
        page: Page,
    ) -> ApiResult<Vec<UsageEventRecord>>;
    async fn list_flags(&self, status: &str, page: Page) -> ApiResult<Vec<FlagRecord>>;
    async fn update_flag(
        &self,
        id: &str,
        req: &FlagUpdateRequest,
        now: OffsetDateTime,
    ) -> ApiResult<()>;
    async fn list_audit(&self, entity_id: Option<&str>, page: Page) -> ApiResult<Vec<AuditRecord>>;

    /// Stores a new API key (its hash only).
    async fn create_api_key(
        &self,
        req: &CreateApiKeyRequest,
        key_hash: &str,
        key_prefix: &str,
        now: OffsetDateTime,
    ) -> ApiResult<ApiKeyRecord>;
    async fn list_api_keys(&self, page: Page) -> ApiResult<Vec<ApiKeyRecord>>;
    async fn get_api_key(&self, id: &str) -> ApiResult<Option<ApiKeyRecord>>;
    async fn update_api_key(
        &self,
        id: &str,
        req: &UpdateApiKeyRequest,
        now: OffsetDateTime,
    ) -> ApiResult<ApiKeyRecord>;
    async fn revoke_api_key(&self, id: &str, now: OffsetDateTime) -> ApiResult<()>;
    /// Finds the key by hash, refuses revoked or expired keys, and records the instance
    /// (first/last seen, count) in the same transaction.
    async fn fetch_for_token(
        &self,
        key_hash: &str,
        instance_id: &str,
        version: Option<&str>,
        now: OffsetDateTime,
    ) -> ApiResult<ApiKeyRecord>;
    async fn list_instances(
        &self,
        api_key_id: Option<&str>,
        page: Page,
    ) -> ApiResult<Vec<InstanceRecord>>;

    /// Floating seats: releases every lease older than its key's TTL; returns how many.
    async fn release_expired_leases(&self, now: OffsetDateTime) -> ApiResult<u64>;

    async fn close(&self);

    /// Connection pools as (name, open connections, idle connections), for `/metrics`.
    fn pool_stats(&self) -> Vec<(&'static str, u32, usize)> {
        Vec::new()
    }
}

/// Opens the store named by `database_url` and runs its migrations: `sqlite:…` or
/// `postgres://…` / `postgresql://…`.
pub async fn connect(database_url: &str) -> anyhow::Result<std::sync::Arc<dyn Store>> {
    if database_url.starts_with("sqlite:") {
        Ok(std::sync::Arc::new(
            sqlite::SqliteStore::connect(database_url).await?,
        ))
    } else if is_postgres_url(database_url) {
        Ok(std::sync::Arc::new(
            postgres::PostgresStore::connect(database_url).await?,
        ))
    } else {
        anyhow::bail!(
            "unsupported DATABASE_URL scheme in `{}`: use sqlite://PATH or postgres://USER@HOST/DB",
            redact_url(database_url)
        )
    }
}

/// `postgres://…` or `postgresql://…`.
pub fn is_postgres_url(database_url: &str) -> bool {
    database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")
}

/// A database URL safe to log: the password, if any, replaced.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let creds = &url[scheme_end + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:****{}", &url[..scheme_end + 3], user, &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

pub(crate) fn json_text(v: Option<&serde_json::Value>) -> Option<String> {
    match v {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(v.to_string()),
    }
}

pub(crate) fn parse_json_text(s: Option<String>) -> Option<serde_json::Value> {
    s.map(|s| serde_json::from_str(&s).unwrap_or(serde_json::Value::String(s)))
}

/// Time-ordered (UUIDv7): a batch of inserts lands on the last page of each id index instead
/// of one random page per row, which is most of the bytes a commit writes to the WAL.
pub(crate) fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_logs() {
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:****@h/db"
        );
        assert_eq!(redact_url("sqlite://./data/x.db"), "sqlite://./data/x.db");
    }

    #[test]
    fn pages_are_clamped() {
        let p = Page {
            limit: 1_000_000,
            offset: -5,
        }
        .clamped();
        assert_eq!((p.limit, p.offset), (Page::MAX_LIMIT, 0));
    }
}
