//! Request and response bodies of the HTTP API, field for field as the seed's FastAPI models.

use serde::{Deserialize, Serialize};

use crate::validate::{self, FieldError};

pub const MAX_KEY_LEN: usize = 64;
pub const MAX_MACHINE_ID_LEN: usize = 128;
pub const MAX_SHORT_TEXT: usize = 128;
pub const MAX_NOTES_LEN: usize = 2_000;
pub const MAX_JWT_LEN: usize = 16 * 1024;
pub const MAX_SEATS: i64 = 100_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActivateRequest {
    pub key: String,
    pub machine_id: String,
    pub product: String,
    #[serde(default)]
    pub app_version: Option<String>,
    #[serde(default)]
    pub platform: Option<String>,
}

impl ActivateRequest {
    pub fn validate(&self) -> Result<(), FieldError> {
        validate::text("key", &self.key, MAX_KEY_LEN)?;
        validate::text("machine_id", &self.machine_id, MAX_MACHINE_ID_LEN)?;
        validate::text("product", &self.product, 64)?;
        validate::optional_text("app_version", self.app_version.as_deref(), MAX_SHORT_TEXT)?;
        validate::optional_text("platform", self.platform.as_deref(), MAX_SHORT_TEXT)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActivateResponse {
    pub jwt: String,
    pub tier: String,
    #[serde(default)]
    pub valid_until: Option<String>,
    #[serde(default)]
    pub notice: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RefreshRequest {
    pub jwt: String,
    pub machine_id: String,
    #[serde(default)]
    pub app_version: Option<String>,
    #[serde(default)]
    pub platform: Option<String>,
}

impl RefreshRequest {
    pub fn validate(&self) -> Result<(), FieldError> {
        validate::text("jwt", &self.jwt, MAX_JWT_LEN)?;
        validate::text("machine_id", &self.machine_id, MAX_MACHINE_ID_LEN)?;
        validate::optional_text("app_version", self.app_version.as_deref(), MAX_SHORT_TEXT)?;
        validate::optional_text("platform", self.platform.as_deref(), MAX_SHORT_TEXT)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeactivateRequest {
    pub jwt: String,
    pub machine_id: String,
}

impl DeactivateRequest {
    pub fn validate(&self) -> Result<(), FieldError> {
        validate::text("jwt", &self.jwt, MAX_JWT_LEN)?;
        validate::text("machine_id", &self.machine_id, MAX_MACHINE_ID_LEN)
    }
}

/// `{"status": "..."}`, the seed's acknowledgement body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusResponse {
    pub status: String,
}

impl StatusResponse {
    pub fn new(status: &str) -> Self {
        Self {
            status: status.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageRequest {
    pub event_type: String,
    pub product: String,
    #[serde(default)]
    pub metadata: Option<serde_json::Value>,
}

impl UsageRequest {
    pub fn validate(&self) -> Result<(), FieldError> {
        validate::text("event_type", &self.event_type, MAX_SHORT_TEXT)?;
        validate::text("product", &self.product, 64)?;
        validate::metadata("metadata", self.metadata.as_ref())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlagRequest {
    pub flag_type: String,
    pub product: String,
    #[serde(default)]
    pub details: Option<serde_json::Value>,
}

impl FlagRequest {
    pub fn validate(&self) -> Result<(), FieldError> {
        validate::text("flag_type", &self.flag_type, MAX_SHORT_TEXT)?;
        validate::text("product", &self.product, 64)?;
        validate::metadata("details", self.details.as_ref())
    }
}

fn default_seats() -> i64 {
    1
}
fn default_source() -> String {
    "manual".to_string()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateKeyRequest {
    pub product: String,
    pub tier: String,
    #[serde(default = "default_seats")]
    pub seats: i64,
    /// `YYYY-MM-DD` (valid through that day, UTC) or an RFC 3339 timestamp.
    #[serde(default)]
    pub valid_until: Option<String>,
    #[serde(default)]
    pub customer_email: Option<String>,
    #[serde(default = "default_source")]
    pub source: String,
    #[serde(default)]
    pub trial: bool,
    #[serde(default)]
    pub notes: Option<String>,
    /// Floating seats: release a seat whose machine has not refreshed for this many seconds.
    /// Absent (the default) keeps the seed's behaviour: seats are held until deactivated.
    #[serde(default)]
    pub lease_ttl_secs: Option<i64>,
}

impl CreateKeyRequest {
    pub fn validate(&self) -> Result<(), FieldError> {
        validate::identifier("product", &self.product)?;
        validate::identifier("tier", &self.tier)?;
        if !(1..=MAX_SEATS).contains(&self.seats) {
            return Err(FieldError::new(
                "seats",
                format!("must be between 1 and {MAX_SEATS}"),
            ));
        }
        if let Some(v) = &self.valid_until
            && crate::timefmt::parse_until(v).is_none()
        {
            return Err(FieldError::new(
                "valid_until",
                "must be a date (YYYY-MM-DD) or an RFC 3339 timestamp",
            ));
        }
        validate::optional_text("customer_email", self.customer_email.as_deref(), 254)?;
        validate::text("source", &self.source, 64)?;
        validate::optional_text("notes", self.notes.as_deref(), MAX_NOTES_LEN)?;
        if let Some(ttl) = self.lease_ttl_secs
            && !(60..=365 * 86_400).contains(&ttl)
        {
            return Err(FieldError::new(
                "lease_ttl_secs",
                "must be between 60 and 31536000",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyResponse {
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
    #[serde(default)]
    pub active_seat_count: i64,
    #[serde(default)]
    pub lease_ttl_secs: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActivationRecord {
    pub id: String,
    pub key_id: String,
    pub machine_id: String,
    pub app_version: Option<String>,
    pub platform: Option<String>,
    pub activated_at: String,
    pub last_refresh: String,
    pub deactivated_at: Option<String>,
    pub key_display: String,
    pub product: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageEventRecord {
    pub id: String,
    pub key_id: String,
    pub machine_id: String,
    pub product: String,
    pub event_type: String,
    pub metadata: Option<serde_json::Value>,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlagRecord {
    pub id: String,
    pub key_id: String,
    pub machine_id: Option<String>,
    pub product: String,
    pub flag_type: String,
    pub details: Option<serde_json::Value>,
    pub status: String,
    pub created_at: String,
    pub reviewed_at: Option<String>,
    pub action_taken: Option<String>,
}

pub const FLAG_STATUSES: &[&str] = &["open", "reviewed", "dismissed", "actioned"];
pub const FLAG_ACTIONS: &[&str] = &["none", "warned", "revoked"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlagUpdateRequest {
    /// `reviewed` | `dismissed` | `actioned`
    pub status: String,
    /// `none` | `warned` | `revoked`
    #[serde(default)]
    pub action_taken: Option<String>,
}

impl FlagUpdateRequest {
    pub fn validate(&self) -> Result<(), FieldError> {
        if !FLAG_STATUSES[1..].contains(&self.status.as_str()) {
            return Err(FieldError::new(
                "status",
                "must be reviewed, dismissed or actioned",
            ));
        }
        if let Some(a) = &self.action_taken
            && !FLAG_ACTIONS.contains(&a.as_str())
        {
            return Err(FieldError::new(
                "action_taken",
                "must be none, warned or revoked",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditRecord {
    pub id: String,
    pub entity_type: String,
    pub entity_id: String,
    pub action: String,
    pub actor: Option<String>,
    pub details: Option<serde_json::Value>,
    pub created_at: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_key_defaults_match_the_seed() {
        let req: CreateKeyRequest =
            serde_json::from_str(r#"{"product":"peregrine","tier":"paid"}"#).unwrap();
        assert_eq!(req.seats, 1);
        assert_eq!(req.source, "manual");
        assert!(!req.trial);
        assert!(req.valid_until.is_none());
        assert!(req.validate().is_ok());
    }

    #[test]
    fn create_key_rejects_bad_values() {
        let mut req: CreateKeyRequest =
            serde_json::from_str(r#"{"product":"peregrine","tier":"paid"}"#).unwrap();
        req.seats = 0;
        assert_eq!(req.validate().unwrap_err().field, "seats");
        req.seats = 1;
        req.valid_until = Some("soon".into());
        assert_eq!(req.validate().unwrap_err().field, "valid_until");
    }
}
