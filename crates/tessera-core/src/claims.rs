//! JWT claims. `LicenseClaims` is the seed's activation token, field for field.

use serde::{Deserialize, Serialize};

/// Claims of a token issued by `/v1/activate` and `/v1/refresh`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LicenseClaims {
    /// The license key as the customer typed it (`CFG-PRNG-XXXX-XXXX-XXXX`).
    pub sub: String,
    pub product: String,
    pub tier: String,
    pub seats: i64,
    /// The machine fingerprint this token is bound to.
    pub machine: String,
    pub iat: i64,
    pub exp: i64,
    /// Operator message (`SERVER_NOTICE`), present only when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
}

/// Anything with an issue and an expiry time can go through the grace rules.
pub trait Expiring {
    fn iat(&self) -> i64;
    fn exp(&self) -> i64;
}

impl Expiring for LicenseClaims {
    fn iat(&self) -> i64 {
        self.iat
    }
    fn exp(&self) -> i64 {
        self.exp
    }
}
