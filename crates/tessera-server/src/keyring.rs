//! Every signing key the server holds: the default key (license-key mode, and API-key mode for
//! products without a catalog entry) and each catalog product's keys, parsed once at start.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use tessera_core::Signer;
use tessera_core::catalog::{Catalog, ProductConfig};

/// Issuer of API-key tokens for products without a catalog entry.
pub const DEFAULT_ISSUER: &str = "tessera";
pub const DEFAULT_TOKEN_LIFETIME_SECS: i64 = 86_400;

pub struct ProductSigning {
    pub config: ProductConfig,
    pub signer: Signer,
}

pub struct KeyRing {
    license: Arc<Signer>,
    products: HashMap<String, ProductSigning>,
    jwks: serde_json::Value,
}

impl KeyRing {
    /// Loads every catalog key (relative paths from `catalog_dir`) and checks each matches its
    /// declared algorithm.
    pub fn load(license: Signer, catalog: Option<(&Catalog, &Path)>) -> anyhow::Result<Self> {
        let mut jwk_list = vec![with_thumbprint_kid(&license)];
        let mut products = HashMap::new();
        if let Some((catalog, dir)) = catalog {
            for product in &catalog.products {
                let mut active = None;
                for key in &product.keys {
                    let path = dir.join(&key.private_key_path);
                    let pem = std::fs::read(&path).with_context(|| {
                        format!("product {}: reading key {}", product.name, path.display())
                    })?;
                    let signer =
                        Signer::from_pem(&pem, Some(key.kid.clone())).with_context(|| {
                            format!("product {}: parsing key {}", product.name, path.display())
                        })?;
                    anyhow::ensure!(
                        signer.algorithm() == key.algorithm,
                        "product {}: key {} is {:?}, catalog says {:?}",
                        product.name,
                        key.kid,
                        signer.algorithm(),
                        key.algorithm
                    );
                    jwk_list.push(signer.jwk());
                    if key.active {
                        active = Some(signer);
                    }
                }
                let signer = active.context("catalog checked: one active key")?;
                products.insert(
                    product.name.clone(),
                    ProductSigning {
                        config: product.clone(),
                        signer,
                    },
                );
            }
        }
        Ok(Self {
            license: Arc::new(license),
            products,
            jwks: serde_json::json!({ "keys": jwk_list }),
        })
    }

    pub fn license(&self) -> &Arc<Signer> {
        &self.license
    }

    pub fn product(&self, name: &str) -> Option<&ProductSigning> {
        self.products.get(name)
    }

    pub fn jwks(&self) -> &serde_json::Value {
        &self.jwks
    }
}

/// The default key's tokens carry no `kid` (the seed's clients do not expect one); in JWKS it
/// is still named, by the first 16 hex digits of its JWK's SHA-256.
fn with_thumbprint_kid(signer: &Signer) -> serde_json::Value {
    let mut jwk = signer.jwk();
    let kid = crate::secret::sha256_hex(jwk.to_string().as_bytes());
    if let Some(obj) = jwk.as_object_mut() {
        obj.entry("kid")
            .or_insert(serde_json::Value::String(kid[..16].to_string()));
    }
    jwk
}
