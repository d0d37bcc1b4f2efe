//! API-key mode: the token an application instance gets for its `sk-…` key, and the tier model
//! (ordered tiers, features, quotas) both the server (to issue) and the client (to enforce) use.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::validate::{self, FieldError};

/// Prefix of every API key. Keys are `sk-` followed by 64 hex characters (256 bits).
pub const API_KEY_PREFIX: &str = "sk-";

/// Shape check done before any network call or database lookup.
pub fn looks_like_api_key(key: &str) -> bool {
    key.len() > API_KEY_PREFIX.len()
        && key.len() <= 256
        && key.starts_with(API_KEY_PREFIX)
        && key.bytes().all(|b| b.is_ascii_graphic())
}

/// Claims of an API-key token (`POST /api/v1/licenses/token`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiKeyClaims {
    pub iss: String,
    pub sub: String,
    pub tier: String,
    #[serde(default)]
    pub features: Vec<String>,
    /// Missing quota = unlimited.
    #[serde(default)]
    pub quotas: BTreeMap<String, u64>,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_name: Option<String>,
    #[serde(default)]
    pub trial: bool,
}

impl crate::claims::Expiring for ApiKeyClaims {
    fn iat(&self) -> i64 {
        self.iat
    }
    fn exp(&self) -> i64 {
        self.exp
    }
}

/// `POST /api/v1/licenses/token` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenRequest {
    pub instance_id: String,
    #[serde(default)]
    pub version: Option<String>,
}

impl TokenRequest {
    pub fn validate(&self) -> Result<(), FieldError> {
        validate::text("instance_id", &self.instance_id, 128)?;
        validate::optional_text("version", self.version.as_deref(), 64)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenResponse {
    pub jwt: String,
    pub expires_in: i64,
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateApiKeyRequest {
    pub product: String,
    pub tier: String,
    pub name: String,
    #[serde(default)]
    pub org_name: Option<String>,
    #[serde(default)]
    pub trial: bool,
    /// RFC 3339 or `YYYY-MM-DD`.
    #[serde(default)]
    pub expires_at: Option<String>,
}

impl CreateApiKeyRequest {
    pub fn validate(&self) -> Result<(), FieldError> {
        validate::identifier("product", &self.product)?;
        validate::identifier("tier", &self.tier)?;
        validate::text("name", &self.name, 200)?;
        validate::optional_text("org_name", self.org_name.as_deref(), 200)?;
        expires_at(self.expires_at.as_deref())
    }
}

fn expires_at(v: Option<&str>) -> Result<(), FieldError> {
    match v {
        Some(v) if crate::timefmt::parse_until(v).is_none() => Err(FieldError::new(
            "expires_at",
            "must be a date (YYYY-MM-DD) or an RFC 3339 timestamp",
        )),
        _ => Ok(()),
    }
}

/// `PATCH /admin/api-keys/{id}`: every field optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateApiKeyRequest {
    #[serde(default)]
    pub tier: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub org_name: Option<String>,
    #[serde(default)]
    pub trial: Option<bool>,
    #[serde(default)]
    pub expires_at: Option<String>,
}

impl UpdateApiKeyRequest {
    pub fn validate(&self) -> Result<(), FieldError> {
        if let Some(t) = &self.tier {
            validate::identifier("tier", t)?;
        }
        if let Some(n) = &self.name {
            validate::text("name", n, 200)?;
        }
        validate::optional_text("org_name", self.org_name.as_deref(), 200)?;
        expires_at(self.expires_at.as_deref())
    }
}

/// An API key as the admin API lists it: never the secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiKeyRecord {
    pub id: String,
    /// First characters of the key (`sk-1a2b…`), to tell keys apart.
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

/// `POST /admin/api-keys` answer: the record plus the secret, shown this once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiKeyCreated {
    #[serde(flatten)]
    pub record: ApiKeyRecord,
    pub api_key: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InstanceRecord {
    pub id: String,
    pub api_key_id: String,
    pub instance_id: String,
    pub version: Option<String>,
    pub first_seen: String,
    pub last_seen: String,
    pub fetch_count: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_key_shape_check_rejects_bare_prefix_and_other_keys() {
        assert!(looks_like_api_key("sk-abc123"));
        assert!(!looks_like_api_key("sk-"));
        assert!(!looks_like_api_key("pk-abc"));
        assert!(!looks_like_api_key("sk-a b"));
        assert!(!looks_like_api_key(""));
    }

    #[test]
    fn claims_default_missing_lists_and_quotas() {
        let c: ApiKeyClaims =
            serde_json::from_str(r#"{"iss":"i","sub":"s","tier":"pro","iat":1,"exp":2,"jti":"j"}"#)
                .unwrap();
        assert!(c.features.is_empty() && c.quotas.is_empty() && !c.trial);
    }
}
