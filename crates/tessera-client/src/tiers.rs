//! The tier table the client enforces with: tiers in ascending order, each with its features and
//! quotas (a missing quota is unlimited). The license's own signed quotas are what is enforced;
//! the table gives the order of tiers, the Community fallback, the features the app knows, and
//! the tier to suggest when a quota is exceeded.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use tessera_core::catalog::ProductConfig;

/// One tier of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierSpec {
    pub name: String,
    #[serde(default)]
    pub features: Vec<String>,
    /// Absent quota = unlimited.
    #[serde(default)]
    pub quotas: BTreeMap<String, u64>,
}

impl TierSpec {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            features: Vec::new(),
            quotas: BTreeMap::new(),
        }
    }

    pub fn feature(mut self, feature: impl Into<String>) -> Self {
        self.features.push(feature.into());
        self
    }

    pub fn quota(mut self, name: impl Into<String>, limit: u64) -> Self {
        self.quotas.insert(name.into(), limit);
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TierTableError {
    #[error("the tier table is empty")]
    Empty,
    #[error("tier `{0}` is listed twice")]
    Duplicate(String),
    #[error("a tier has an empty name")]
    EmptyName,
}

/// Tiers in ascending order. The first one is the floor: Community, the fallback, and the tier
/// an unknown tier name counts as. Names match case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<TierSpec>", into = "Vec<TierSpec>")]
pub struct TierTable {
    tiers: Vec<TierSpec>,
    /// Capitalised names for messages (`pro` → `Pro`).
    display: Vec<String>,
    known_features: BTreeSet<String>,
}

impl TryFrom<Vec<TierSpec>> for TierTable {
    type Error = TierTableError;
    fn try_from(tiers: Vec<TierSpec>) -> Result<Self, Self::Error> {
        Self::new(tiers)
    }
}

impl From<TierTable> for Vec<TierSpec> {
    fn from(t: TierTable) -> Self {
        t.tiers
    }
}

impl Default for TierTable {
    /// [`TierTable::softclient4es`].
    fn default() -> Self {
        Self::softclient4es()
    }
}

/// `community` → `Community`.
pub fn capitalise(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

impl TierTable {
    pub fn new(tiers: Vec<TierSpec>) -> Result<Self, TierTableError> {
        if tiers.is_empty() {
            return Err(TierTableError::Empty);
        }
        for (i, t) in tiers.iter().enumerate() {
            if t.name.trim().is_empty() {
                return Err(TierTableError::EmptyName);
            }
            if tiers[..i]
                .iter()
                .any(|o| o.name.eq_ignore_ascii_case(&t.name))
            {
                return Err(TierTableError::Duplicate(t.name.clone()));
            }
        }
        let display = tiers.iter().map(|t| capitalise(&t.name)).collect();
        let known_features = tiers
            .iter()
            .flat_map(|t| t.features.iter().cloned())
            .collect();
        Ok(Self {
            tiers,
            display,
            known_features,
        })
    }

    /// SoftClient4ES's tiers, as its public code and `deploy/catalog.example.toml` have them:
    /// Community 3 views / 10,000 rows / 5 queries / 2 clusters; Pro 50 / 1,000,000 / 50 / 5;
    /// Enterprise unlimited.
    pub fn softclient4es() -> Self {
        let quotas = |views, rows, queries, clusters| {
            BTreeMap::from([
                ("max_materialized_views".to_string(), views),
                ("max_result_rows".to_string(), rows),
                ("max_concurrent_queries".to_string(), queries),
                ("max_clusters".to_string(), clusters),
            ])
        };
        let features = |f: &[&str]| f.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let tiers = vec![
            TierSpec {
                name: "community".into(),
                features: Vec::new(),
                quotas: quotas(3, 10_000, 5, 2),
            },
            TierSpec {
                name: "pro".into(),
                features: features(&["materialized_views", "federation"]),
                quotas: quotas(50, 1_000_000, 50, 5),
            },
            TierSpec {
                name: "enterprise".into(),
                features: features(&[
                    "materialized_views",
                    "federation",
                    "audit_log",
                    "priority_support",
                ]),
                quotas: BTreeMap::new(),
            },
        ];
        match Self::new(tiers) {
            Ok(t) => t,
            // The literal above is a valid table; keep a one-tier table rather than panic.
            Err(_) => Self {
                tiers: vec![TierSpec::new("community")],
                display: vec!["Community".into()],
                known_features: BTreeSet::new(),
            },
        }
    }

    /// The tiers of a product in the server's catalog (the same file the server issues from).
    pub fn from_catalog(product: &ProductConfig) -> Result<Self, TierTableError> {
        Self::new(
            product
                .tiers
                .iter()
                .map(|t| TierSpec {
                    name: t.name.clone(),
                    features: t.features.clone(),
                    quotas: t.quotas.clone(),
                })
                .collect(),
        )
    }

    pub fn tiers(&self) -> &[TierSpec] {
        &self.tiers
    }

    /// Position of `name` in the order, if the table knows it.
    pub fn rank(&self, name: &str) -> Option<usize> {
        self.tiers
            .iter()
            .position(|t| t.name.eq_ignore_ascii_case(name))
    }

    /// The tier at `rank` (clamped to the table).
    pub fn spec(&self, rank: usize) -> &TierSpec {
        let last = self.tiers.len().saturating_sub(1);
        &self.tiers[rank.min(last)]
    }

    /// Capitalised name of the tier at `rank`.
    pub fn display_name(&self, rank: usize) -> &str {
        let last = self.display.len().saturating_sub(1);
        &self.display[rank.min(last)]
    }

    /// A feature some tier of the table grants. Others are ignored when a license lists them.
    pub fn is_known_feature(&self, feature: &str) -> bool {
        self.known_features.contains(feature)
    }

    /// The lowest tier above `from_rank` whose `quota` allows `requested` (absent = unlimited).
    pub fn upgrade_for(&self, from_rank: usize, quota: &str, requested: u64) -> Option<usize> {
        (from_rank + 1..self.tiers.len()).find(|&r| {
            self.tiers[r]
                .quotas
                .get(quota)
                .is_none_or(|&l| requested <= l)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_table_is_softclient4es_in_ascending_order() {
        let t = TierTable::default();
        assert_eq!(t.rank("community"), Some(0));
        assert_eq!(t.rank("Pro"), Some(1));
        assert_eq!(t.rank("enterprise"), Some(2));
        assert_eq!(t.rank("gold"), None);
        assert_eq!(t.spec(0).quotas["max_result_rows"], 10_000);
        assert_eq!(t.spec(1).quotas["max_clusters"], 5);
        assert!(t.spec(2).quotas.is_empty());
        assert_eq!(t.display_name(1), "Pro");
    }

    #[test]
    fn upgrade_is_the_lowest_higher_tier_that_allows_the_request() {
        let t = TierTable::default();
        assert_eq!(t.upgrade_for(0, "max_clusters", 3), Some(1));
        assert_eq!(t.upgrade_for(0, "max_clusters", 6), Some(2));
        assert_eq!(t.upgrade_for(2, "max_clusters", 600), None);
    }

    #[test]
    fn duplicate_or_empty_tables_are_refused() {
        assert_eq!(TierTable::new(vec![]), Err(TierTableError::Empty));
        assert!(matches!(
            TierTable::new(vec![TierSpec::new("a"), TierSpec::new("A")]),
            Err(TierTableError::Duplicate(_))
        ));
        let t: TierTable = serde_json::from_str(r#"[{"name":"free"},{"name":"paid"}]"#).unwrap();
        assert_eq!(t.display_name(1), "Paid");
    }
}
