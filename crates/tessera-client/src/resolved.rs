//! The license an application enforces, once resolved: tier, where it came from, grace state,
//! quotas and features. Built off the request path; read on it without allocating.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use tessera_core::apikey::ApiKeyClaims;

use crate::tiers::TierTable;

/// Where the license in force came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LicenseSource {
    /// A JWT given in the configuration.
    Static,
    /// Fetched from the license backend with the API key just now.
    ApiKey,
    /// The JWT cached on disk by an earlier fetch.
    Cache,
    /// Activation-key mode: the license file of [`crate::LicenseClient`].
    Activation,
    /// No usable license: the lowest tier of the table.
    Community,
}

impl LicenseSource {
    pub fn as_str(self) -> &'static str {
        match self {
            LicenseSource::Static => "static",
            LicenseSource::ApiKey => "api_key",
            LicenseSource::Cache => "cache",
            LicenseSource::Activation => "activation",
            LicenseSource::Community => "community",
        }
    }
}

impl std::fmt::Display for LicenseSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the license stands relative to its expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GraceState {
    /// Not expired.
    None,
    /// Expired, in the first half of the grace period.
    Early,
    /// Expired, in the second half of the grace period.
    Late,
}

impl GraceState {
    pub fn as_str(self) -> &'static str {
        match self {
            GraceState::None => "none",
            GraceState::Early => "early",
            GraceState::Late => "late",
        }
    }
}

impl std::fmt::Display for GraceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Quota limits by name, sorted; a name that is not here is unlimited. A flat slice: a lookup is
/// a few string comparisons, no hashing, no allocation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quotas(Box<[(Box<str>, u64)]>);

impl Quotas {
    /// The limit for `name`; `None` is unlimited.
    #[inline]
    pub fn get(&self, name: &str) -> Option<u64> {
        self.0
            .iter()
            .find(|(k, _)| k.as_ref() == name)
            .map(|&(_, v)| v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), *v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&BTreeMap<String, u64>> for Quotas {
    fn from(m: &BTreeMap<String, u64>) -> Self {
        Self(m.iter().map(|(k, v)| (k.as_str().into(), *v)).collect())
    }
}

impl Serialize for Quotas {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

/// A quota check failed: which quota, its limit, the tier in force and the tier to upgrade to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "quota `{quota}` exceeded: {requested} requested, the {tier} tier allows {limit}; {}",
    match upgrade_to {
        Some(t) => format!("upgrade to {t}"),
        None => "no higher tier allows more".to_string(),
    }
)]
pub struct QuotaExceeded {
    pub quota: String,
    pub limit: u64,
    pub requested: u64,
    /// The tier in force (capitalised, e.g. `Community`).
    pub tier: String,
    /// The lowest higher tier whose limit allows the request (capitalised), if any.
    pub upgrade_to: Option<String>,
}

/// The license in force. Immutable: a refresh builds a new one and swaps it in.
#[derive(Debug, Clone, Serialize)]
pub struct ResolvedLicense {
    /// Canonical tier name from the table (`pro`); an unknown tier counts as the lowest.
    tier: Box<str>,
    #[serde(skip)]
    rank: usize,
    source: LicenseSource,
    grace: GraceState,
    quotas: Quotas,
    features: Box<[Box<str>]>,
    /// Signed `exp` (unix seconds); `None` for Community.
    expires_at: Option<i64>,
    /// When the grace period ends (unix seconds); `None` for Community.
    grace_ends_at: Option<i64>,
    subject: Option<String>,
    org_name: Option<String>,
    trial: bool,
    /// Not what was asked for: a fallback (cache or Community after a failure) or in grace.
    degraded: bool,
    /// When this was resolved (unix seconds).
    resolved_at: i64,
    #[serde(skip)]
    tiers: Arc<TierTable>,
}

impl PartialEq for ResolvedLicense {
    fn eq(&self, other: &Self) -> bool {
        self.tier == other.tier
            && self.source == other.source
            && self.grace == other.grace
            && self.quotas == other.quotas
            && self.features == other.features
            && self.expires_at == other.expires_at
            && self.subject == other.subject
            && self.degraded == other.degraded
    }
}

/// Expiry facts of a verified token.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expiry {
    pub expires_at: i64,
    pub grace_ends_at: i64,
    pub grace: GraceState,
}

impl ResolvedLicense {
    /// The lowest tier of the table, with its quotas and features.
    pub fn community(tiers: Arc<TierTable>, degraded: bool, now: i64) -> Self {
        let spec = tiers.spec(0);
        Self {
            tier: spec.name.as_str().into(),
            rank: 0,
            source: LicenseSource::Community,
            grace: GraceState::None,
            quotas: Quotas::from(&spec.quotas),
            features: features_of(&tiers, spec.features.iter()),
            expires_at: None,
            grace_ends_at: None,
            subject: None,
            org_name: None,
            trial: false,
            degraded,
            resolved_at: now,
            tiers,
        }
    }

    /// From verified API-key claims: the signed quotas and features (features the table does
    /// not know are ignored); an unknown tier counts as the lowest.
    pub(crate) fn from_claims(
        claims: &ApiKeyClaims,
        source: LicenseSource,
        expiry: Expiry,
        degraded: bool,
        tiers: Arc<TierTable>,
        now: i64,
    ) -> Self {
        let rank = tiers.rank(&claims.tier).unwrap_or(0);
        Self {
            tier: tiers.spec(rank).name.as_str().into(),
            rank,
            source,
            grace: expiry.grace,
            quotas: Quotas::from(&claims.quotas),
            features: features_of(&tiers, claims.features.iter()),
            expires_at: Some(expiry.expires_at),
            grace_ends_at: Some(expiry.grace_ends_at),
            subject: Some(claims.sub.clone()),
            org_name: claims.org_name.clone(),
            trial: claims.trial,
            degraded: degraded || expiry.grace != GraceState::None,
            resolved_at: now,
            tiers,
        }
    }

    /// From a tier name whose quotas and features come from the table (activation mode).
    pub(crate) fn from_tier_name(
        tier: &str,
        source: LicenseSource,
        expiry: Expiry,
        subject: Option<String>,
        tiers: Arc<TierTable>,
        now: i64,
    ) -> Self {
        let rank = tiers.rank(tier).unwrap_or(0);
        let spec = tiers.spec(rank);
        Self {
            tier: spec.name.as_str().into(),
            rank,
            source,
            grace: expiry.grace,
            quotas: Quotas::from(&spec.quotas),
            features: features_of(&tiers, spec.features.iter()),
            expires_at: Some(expiry.expires_at),
            grace_ends_at: Some(expiry.grace_ends_at),
            subject,
            org_name: None,
            trial: false,
            degraded: expiry.grace != GraceState::None,
            resolved_at: now,
            tiers,
        }
    }

    /// Canonical tier name (`community`, `pro`, …).
    pub fn tier(&self) -> &str {
        &self.tier
    }

    /// Capitalised tier name (`Community`, `Pro`, …).
    pub fn tier_display(&self) -> &str {
        self.tiers.display_name(self.rank)
    }

    /// Position of the tier in the table's order (0 = lowest).
    pub fn tier_rank(&self) -> usize {
        self.rank
    }

    pub fn source(&self) -> LicenseSource {
        self.source
    }

    pub fn grace(&self) -> GraceState {
        self.grace
    }

    pub fn quotas(&self) -> &Quotas {
        &self.quotas
    }

    pub fn features(&self) -> impl Iterator<Item = &str> {
        self.features.iter().map(AsRef::as_ref)
    }

    pub fn expires_at(&self) -> Option<i64> {
        self.expires_at
    }

    pub fn grace_ends_at(&self) -> Option<i64> {
        self.grace_ends_at
    }

    /// The token's `sub` (the API key's id on the server).
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    pub fn org_name(&self) -> Option<&str> {
        self.org_name.as_deref()
    }

    pub fn trial(&self) -> bool {
        self.trial
    }

    /// A fallback after a failure (the cache, or Community), or a license in grace.
    pub fn is_degraded(&self) -> bool {
        self.degraded
    }

    pub fn resolved_at(&self) -> i64 {
        self.resolved_at
    }

    /// The tier table this license is enforced with.
    pub fn tier_table(&self) -> &TierTable {
        &self.tiers
    }

    #[inline]
    pub fn has_feature(&self, feature: &str) -> bool {
        self.features.iter().any(|f| f.as_ref() == feature)
    }

    /// The limit for `name`; `None` is unlimited.
    #[inline]
    pub fn quota(&self, name: &str) -> Option<u64> {
        self.quotas.get(name)
    }

    /// `Ok` when `requested` is within the `name` quota (or it is unlimited). Allocates only to
    /// build the error.
    #[inline]
    pub fn check_quota(&self, name: &str, requested: u64) -> Result<(), QuotaExceeded> {
        match self.quotas.get(name) {
            Some(limit) if requested > limit => Err(self.exceeded(name, limit, requested)),
            _ => Ok(()),
        }
    }

    #[cold]
    #[inline(never)]
    fn exceeded(&self, name: &str, limit: u64, requested: u64) -> QuotaExceeded {
        QuotaExceeded {
            quota: name.to_string(),
            limit,
            requested,
            tier: self.tier_display().to_string(),
            upgrade_to: self
                .tiers
                .upgrade_for(self.rank, name, requested)
                .map(|r| self.tiers.display_name(r).to_string()),
        }
    }
}

fn features_of<'a>(
    tiers: &TierTable,
    features: impl Iterator<Item = &'a String>,
) -> Box<[Box<str>]> {
    let mut known: Vec<Box<str>> = features
        .filter(|f| tiers.is_known_feature(f))
        .map(|f| f.as_str().into())
        .collect();
    known.sort();
    known.dedup();
    known.into_boxed_slice()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(tier: &str) -> ApiKeyClaims {
        ApiKeyClaims {
            iss: "i".into(),
            sub: "key-1".into(),
            tier: tier.into(),
            features: vec!["federation".into(), "teleportation".into()],
            quotas: BTreeMap::from([("max_clusters".into(), 5)]),
            iat: 0,
            exp: 100,
            jti: "j".into(),
            org_name: None,
            trial: false,
        }
    }

    const VALID: Expiry = Expiry {
        expires_at: 100,
        grace_ends_at: 200,
        grace: GraceState::None,
    };

    #[test]
    fn unknown_tier_counts_as_community_and_unknown_features_are_ignored() {
        let tiers = Arc::new(TierTable::default());
        let l = ResolvedLicense::from_claims(
            &claims("platinum"),
            LicenseSource::ApiKey,
            VALID,
            false,
            tiers,
            0,
        );
        assert_eq!(l.tier(), "community");
        assert!(l.has_feature("federation"));
        assert!(!l.has_feature("teleportation"));
        assert_eq!(l.quota("max_clusters"), Some(5));
        assert_eq!(l.quota("max_result_rows"), None);
    }

    #[test]
    fn exceeded_quota_names_the_quota_limit_tier_and_upgrade() {
        let l = ResolvedLicense::community(Arc::new(TierTable::default()), false, 0);
        assert!(l.check_quota("max_clusters", 2).is_ok());
        assert!(l.check_quota("unknown_quota", u64::MAX).is_ok());
        let e = l.check_quota("max_clusters", 3).unwrap_err();
        assert_eq!(e.limit, 2);
        assert_eq!(e.tier, "Community");
        assert_eq!(e.upgrade_to.as_deref(), Some("Pro"));
        assert_eq!(
            e.to_string(),
            "quota `max_clusters` exceeded: 3 requested, the Community tier allows 2; upgrade to Pro"
        );
        let e = l.check_quota("max_result_rows", 2_000_000).unwrap_err();
        assert_eq!(e.upgrade_to.as_deref(), Some("Enterprise"));
    }
}
