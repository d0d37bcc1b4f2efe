//! The product catalog: per product, how its API-key tokens are signed (algorithm, keys, `kid`,
//! `iss`, lifetime) and what each tier grants (features, quotas), tiers in ascending order.
//! Parsed from TOML text; reading the file is the caller's job.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::jwt::SigningAlgorithm;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    #[serde(default, rename = "product")]
    pub products: Vec<ProductConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductConfig {
    pub name: String,
    /// `iss` claim; clients check it exactly.
    pub issuer: String,
    /// Lifetime of API-key tokens, seconds (`expires_in`).
    #[serde(default = "default_lifetime")]
    pub token_lifetime_secs: i64,
    /// Tier of a key created without one, and the floor of the tier order.
    pub default_tier: String,
    /// Signing keys. Exactly one is `active` (signs); the others are published in JWKS only,
    /// so clients that embed an older key keep verifying during a rotation.
    #[serde(rename = "key")]
    pub keys: Vec<KeyConfig>,
    /// Tiers in ascending order.
    #[serde(rename = "tier")]
    pub tiers: Vec<TierConfig>,
}

fn default_lifetime() -> i64 {
    86_400
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    pub kid: String,
    pub algorithm: SigningAlgorithm,
    /// PEM private key; relative paths are relative to the catalog file.
    pub private_key_path: String,
    #[serde(default)]
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierConfig {
    pub name: String,
    #[serde(default)]
    pub features: Vec<String>,
    /// Absent quota = unlimited.
    #[serde(default)]
    pub quotas: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog is not valid TOML: {0}")]
    Parse(String),
    #[error("product `{product}`: {message}")]
    Invalid { product: String, message: String },
}

impl Catalog {
    pub fn parse(text: &str) -> Result<Self, CatalogError> {
        let catalog: Catalog =
            toml::from_str(text).map_err(|e| CatalogError::Parse(e.to_string()))?;
        catalog.check()?;
        Ok(catalog)
    }

    pub fn product(&self, name: &str) -> Option<&ProductConfig> {
        self.products.iter().find(|p| p.name == name)
    }

    fn check(&self) -> Result<(), CatalogError> {
        let mut seen = std::collections::BTreeSet::new();
        for p in &self.products {
            let bad = |message: &str| CatalogError::Invalid {
                product: p.name.clone(),
                message: message.to_string(),
            };
            if !seen.insert(&p.name) {
                return Err(bad("listed twice"));
            }
            if crate::validate::identifier("name", &p.name).is_err() {
                return Err(bad(
                    "name must be 1-64 characters of a-z, 0-9, '.', '_' or '-'",
                ));
            }
            if p.keys.iter().filter(|k| k.active).count() != 1 {
                return Err(bad("exactly one [[product.key]] must have active = true"));
            }
            let mut kids = std::collections::BTreeSet::new();
            if !p.keys.iter().all(|k| kids.insert(&k.kid)) {
                return Err(bad("key ids (kid) must be unique"));
            }
            if p.tiers.is_empty() {
                return Err(bad("needs at least one [[product.tier]]"));
            }
            if p.tier(&p.default_tier).is_none() {
                return Err(bad("default_tier is not one of its tiers"));
            }
            if !(60..=365 * 86_400).contains(&p.token_lifetime_secs) {
                return Err(bad("token_lifetime_secs must be between 60 and 31536000"));
            }
        }
        Ok(())
    }
}

impl ProductConfig {
    pub fn tier(&self, name: &str) -> Option<&TierConfig> {
        self.tiers.iter().find(|t| t.name == name)
    }
    pub fn active_key(&self) -> Option<&KeyConfig> {
        self.keys.iter().find(|k| k.active)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[[product]]
name = "softclient4es"
issuer = "https://license.softclient4es.com"
default_tier = "community"

[[product.key]]
kid = "k1"
algorithm = "EdDSA"
private_key_path = "keys/k1.pem"
active = true

[[product.tier]]
name = "community"
quotas = { max_clusters = 2 }

[[product.tier]]
name = "pro"
features = ["materialized_views"]
quotas = { max_clusters = 5 }
"#;

    #[test]
    fn parses_products_tiers_and_keys() {
        let c = Catalog::parse(EXAMPLE).unwrap();
        let p = c.product("softclient4es").unwrap();
        assert_eq!(p.token_lifetime_secs, 86_400);
        assert_eq!(p.tier("pro").unwrap().quotas["max_clusters"], 5);
        assert_eq!(p.active_key().unwrap().algorithm, SigningAlgorithm::EdDSA);
    }

    #[test]
    fn rejects_inconsistent_catalogs() {
        let no_active = EXAMPLE.replace("active = true", "active = false");
        assert!(matches!(
            Catalog::parse(&no_active),
            Err(CatalogError::Invalid { .. })
        ));
        let bad_default =
            EXAMPLE.replace("default_tier = \"community\"", "default_tier = \"gold\"");
        assert!(Catalog::parse(&bad_default).is_err());
        assert!(matches!(
            Catalog::parse("[[product]]\nname ="),
            Err(CatalogError::Parse(_))
        ));
    }
}
