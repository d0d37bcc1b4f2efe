//! [`LicenseManager`]: resolves the license through the chain, holds it in memory behind a
//! lock-free read for per-request checks, refreshes it in the background, and logs what changed.
//!
//! API-key mode resolves, in order:
//! 1. a static JWT from the configuration, accepted in grace;
//! 2. the API key: fetch, verify *without* grace, and on success write the cache;
//! 3. the disk cache, accepted in grace, deleted when it does not verify;
//! 4. Community (the lowest tier of the table).
//!
//! Activation-key mode wraps a [`LicenseClient`]: its license file (refreshed when due) is the
//! license, Community when there is none.
//!
//! The per-request path ([`LicenseManager::check_quota`], [`LicenseManager::has_feature`],
//! [`LicenseManager::quota`]) is one atomic load and a scan of a few entries: no lock, no
//! allocation (an error allocates its message, only on failure).

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use arc_swap::{ArcSwap, Guard};
use tessera_core::Verifier;
use tessera_core::clock::{Clock, SystemClock};

use crate::apikey::{
    ApiKeyClient, ApiKeyConfig, CacheError, LicenseCache, RefreshSchedule, Verified, instance_id,
    verify_token,
};
use crate::client::LicenseClient;
use crate::error::ClientError;
use crate::outcome::RefreshOutcome;
use crate::resolved::{Expiry, GraceState, LicenseSource, QuotaExceeded, ResolvedLicense};
use crate::tiers::TierTable;
use crate::verify::{InvalidReason, rfc3339};

/// Holds the license an application enforces. Cheap to clone; clones share the license.
#[derive(Clone)]
pub struct LicenseManager {
    inner: Arc<Inner>,
}

struct Inner {
    current: ArcSwap<ResolvedLicense>,
    tiers: Arc<TierTable>,
    clock: Arc<dyn Clock>,
    schedule: RefreshSchedule,
    mode: Mode,
    /// One resolution at a time (the background task and an explicit `refresh`).
    refresh_lock: tokio::sync::Mutex<()>,
}

enum Mode {
    ApiKey(Box<ApiKeyMode>),
    Activation(LicenseClient),
}

struct ApiKeyMode {
    config: ApiKeyConfig,
    verifier: Verifier,
    client: Option<ApiKeyClient>,
    cache: LicenseCache,
    instance_id: OnceLock<String>,
}

impl ApiKeyMode {
    /// Created on first use (the first fetch), then reused.
    fn instance_id(&self) -> &str {
        self.instance_id
            .get_or_init(|| instance_id(&self.config.cache_dir))
    }
}

impl std::fmt::Debug for LicenseManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match &self.inner.mode {
            Mode::ApiKey(_) => "api_key",
            Mode::Activation(_) => "activation",
        };
        f.debug_struct("LicenseManager")
            .field("mode", &mode)
            .field("current", &self.inner.current.load())
            .finish_non_exhaustive()
    }
}

/// Stops the background refresh when dropped (or [`RefreshHandle::cancel`]led).
#[derive(Debug)]
pub struct RefreshHandle {
    task: tokio::task::JoinHandle<()>,
}

impl RefreshHandle {
    pub fn cancel(self) {}

    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl Drop for RefreshHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LicenseManager {
    /// API-key mode on the system clock: resolves through the chain before returning.
    pub async fn start(config: ApiKeyConfig) -> Result<Self, ClientError> {
        Self::start_with_clock(config, Arc::new(SystemClock)).await
    }

    /// API-key mode on the given clock (tests, drills).
    pub async fn start_with_clock(
        config: ApiKeyConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ClientError> {
        config.validate()?;
        let verifier = config.verifier()?;
        let client = match config.api_key {
            Some(_) => Some(ApiKeyClient::from_config(&config)?),
            None => None,
        };
        let tiers = Arc::new(config.tiers.clone());
        let schedule = config.refresh;
        let mode = Mode::ApiKey(Box::new(ApiKeyMode {
            cache: LicenseCache::new(&config.cache_dir),
            config,
            verifier,
            client,
            instance_id: OnceLock::new(),
        }));
        Ok(Self::started(mode, tiers, clock, schedule).await)
    }

    /// Activation-key mode: the license of `client` (refreshed when due), enforced with the
    /// quotas and features `tiers` gives its tier.
    pub async fn start_activation(
        client: LicenseClient,
        tiers: TierTable,
        schedule: RefreshSchedule,
    ) -> Self {
        let clock = client.clock();
        Self::started(Mode::Activation(client), Arc::new(tiers), clock, schedule).await
    }

    async fn started(
        mode: Mode,
        tiers: Arc<TierTable>,
        clock: Arc<dyn Clock>,
        schedule: RefreshSchedule,
    ) -> Self {
        let placeholder = ResolvedLicense::community(tiers.clone(), false, clock.unix());
        let manager = Self {
            inner: Arc::new(Inner {
                current: ArcSwap::from_pointee(placeholder),
                tiers,
                clock,
                schedule,
                mode,
                refresh_lock: tokio::sync::Mutex::new(()),
            }),
        };
        let resolved = manager.resolve().await;
        tracing::info!(
            tier = resolved.tier(),
            source = %resolved.source(),
            grace = %resolved.grace(),
            "License in force: {} ({})",
            resolved.tier_display(),
            resolved.source()
        );
        manager.inner.current.store(Arc::new(resolved));
        manager
    }

    /// The license in force. Clones an `Arc` (an atomic increment).
    #[inline]
    pub fn current(&self) -> Arc<ResolvedLicense> {
        self.inner.current.load_full()
    }

    /// The license in force, borrowed: the cheapest read. Do not hold it across long waits.
    #[inline]
    pub fn load(&self) -> Guard<Arc<ResolvedLicense>> {
        self.inner.current.load()
    }

    #[inline]
    pub fn has_feature(&self, feature: &str) -> bool {
        self.inner.current.load().has_feature(feature)
    }

    /// The limit for `name` in the license in force; `None` is unlimited.
    #[inline]
    pub fn quota(&self, name: &str) -> Option<u64> {
        self.inner.current.load().quota(name)
    }

    /// `Ok` when `requested` is within the `name` quota of the license in force. The error says
    /// which quota, its limit, the tier and the tier to upgrade to.
    #[inline]
    pub fn check_quota(&self, name: &str, requested: u64) -> Result<(), QuotaExceeded> {
        self.inner.current.load().check_quota(name, requested)
    }

    pub fn tier_table(&self) -> &TierTable {
        &self.inner.tiers
    }

    /// API-key mode: this installation's instance id (created on first use).
    pub fn instance_id(&self) -> Option<String> {
        match &self.inner.mode {
            Mode::ApiKey(m) => Some(m.instance_id().to_string()),
            Mode::Activation(_) => None,
        }
    }

    /// Resolves again now and swaps the result in; new quotas apply to the next check. Logs a
    /// tier change (`License upgraded from Community to Pro`) and a recovery
    /// (`License restored to Pro`).
    pub async fn refresh(&self) -> Arc<ResolvedLicense> {
        let _one_at_a_time = self.inner.refresh_lock.lock().await;
        let new = Arc::new(self.resolve().await);
        let old = self.inner.current.swap(new.clone());
        log_transition(&old, &new);
        new
    }

    /// Refreshes in the background on the schedule (24 h ± jitter by default; sooner after a
    /// fallback, and at the license's expiry and grace milestones) until the handle is dropped
    /// or every clone of the manager is. Needs a Tokio runtime.
    pub fn spawn_refresh(&self) -> RefreshHandle {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let task = tokio::spawn(async move {
            loop {
                let delay = match weak.upgrade() {
                    Some(inner) => LicenseManager { inner }.next_delay(),
                    None => break,
                };
                tokio::time::sleep(delay).await;
                match weak.upgrade() {
                    Some(inner) => {
                        LicenseManager { inner }.refresh().await;
                    }
                    None => break,
                }
            }
        });
        RefreshHandle { task }
    }

    /// How long until the next background refresh.
    pub fn next_delay(&self) -> Duration {
        let current = self.inner.current.load();
        let schedule = &self.inner.schedule;
        let fetches = match &self.inner.mode {
            Mode::ApiKey(m) => m.client.is_some(),
            Mode::Activation(_) => true,
        };
        let base = if current.is_degraded() && fetches {
            schedule.retry_interval.min(schedule.interval)
        } else {
            schedule.interval
        };
        let delay = jittered(base, schedule.jitter);
        // Wake at the next milestone too, so the grace state in memory stays true.
        let now = self.inner.clock.unix();
        let milestone = match (current.expires_at(), current.grace_ends_at()) {
            (Some(exp), Some(end)) => [exp, exp + (end - exp) / 2, end]
                .into_iter()
                .find(|&t| t > now)
                .map(|t| Duration::from_secs(u64::try_from(t - now).unwrap_or(1).max(1))),
            _ => None,
        };
        milestone.map_or(delay, |m| delay.min(m))
    }

    async fn resolve(&self) -> ResolvedLicense {
        match &self.inner.mode {
            Mode::ApiKey(m) => self.resolve_api_key(m).await,
            Mode::Activation(c) => self.resolve_activation(c).await,
        }
    }

    async fn resolve_api_key(&self, m: &ApiKeyMode) -> ResolvedLicense {
        let cfg = &m.config;
        let now = self.inner.clock.unix();
        let mut fell_back = false;

        // (1) A static JWT, with grace.
        if let Some(jwt) = &cfg.static_jwt {
            match verify_token(&m.verifier, jwt, &cfg.issuer, cfg.grace_secs, now) {
                Ok(v) => return self.accept(v, LicenseSource::Static, false, now),
                Err(e) => {
                    tracing::error!(code = e.code(), "Static license JWT is not usable: {e}");
                    fell_back = true;
                }
            }
        }

        // (2) The API key: fetch, verify without grace, cache.
        if let (Some(key), Some(client)) = (&cfg.api_key, &m.client) {
            // A failed fetch is logged by the client (ERROR for a refused key, WARN when the
            // backend is unreachable).
            if let Ok(token) = client.fetch_jwt(key, m.instance_id()).await {
                let now = self.inner.clock.unix();
                match verify_token(&m.verifier, &token.jwt, &cfg.issuer, 0, now) {
                    Ok(mut v) => {
                        // Valid now without grace; once cached it is good until exp + grace.
                        v.grace_ends_at = v.claims.exp.saturating_add(cfg.grace_secs.max(0));
                        if let Err(e) = m.cache.write(&token.jwt) {
                            tracing::warn!("Could not write the license cache: {e}");
                        }
                        return self.accept(v, LicenseSource::ApiKey, false, now);
                    }
                    Err(e) => tracing::error!(
                        code = e.code(),
                        "License backend sent a token that does not verify: {e}"
                    ),
                }
            }
            fell_back = true;
        }

        // (3) The disk cache, with grace; deleted when it does not verify.
        let now = self.inner.clock.unix();
        match m.cache.read() {
            Ok(jwt) => match verify_token(&m.verifier, &jwt, &cfg.issuer, cfg.grace_secs, now) {
                Ok(v) => {
                    if fell_back {
                        tracing::warn!("Using cached license");
                    } else {
                        tracing::info!("Using cached license");
                    }
                    return self.accept(v, LicenseSource::Cache, true, now);
                }
                Err(e) => {
                    tracing::warn!(
                        code = e.code(),
                        "Cached license is not valid ({e}); deleting it"
                    );
                    if let Err(e) = m.cache.remove() {
                        tracing::warn!("Could not delete the license cache: {e}");
                    }
                }
            },
            Err(CacheError::Missing(_)) => {}
            Err(e @ CacheError::Garbage(_)) => {
                tracing::warn!("{e}; deleting it");
                if let Err(e) = m.cache.remove() {
                    tracing::warn!("Could not delete the license cache: {e}");
                }
            }
            // A symlink, a non-file or an oversized file: ignored, left alone.
            Err(e) => tracing::warn!("{e}"),
        }

        // (4) Community.
        if cfg.api_key.is_some() {
            tracing::warn!("Could not fetch license — falling back to Community mode");
        } else if fell_back {
            tracing::warn!("No usable license — falling back to Community mode");
        } else {
            tracing::info!("No license configured — Community mode");
        }
        ResolvedLicense::community(self.inner.tiers.clone(), fell_back, now)
    }

    fn accept(
        &self,
        v: Verified,
        source: LicenseSource,
        degraded: bool,
        now: i64,
    ) -> ResolvedLicense {
        if self.inner.tiers.rank(&v.claims.tier).is_none() {
            tracing::warn!(
                "License tier `{}` is unknown to this application; enforcing it as {}",
                v.claims.tier,
                self.inner.tiers.display_name(0)
            );
        }
        let expiry = Expiry {
            expires_at: v.claims.exp,
            grace_ends_at: v.grace_ends_at,
            grace: v.grace,
        };
        log_grace(expiry);
        ResolvedLicense::from_claims(
            &v.claims,
            source,
            expiry,
            degraded,
            self.inner.tiers.clone(),
            now,
        )
    }

    async fn resolve_activation(&self, client: &LicenseClient) -> ResolvedLicense {
        let outcome = client.refresh_if_needed().await;
        let now = self.inner.clock.unix();
        let tiers = self.inner.tiers.clone();
        match (outcome.status(), &outcome) {
            (Some(status), _) => {
                let half = (status.grace_ends_at - status.expires_at) / 2;
                let grace = if !status.in_grace {
                    GraceState::None
                } else if status.checked_at < status.expires_at + half {
                    GraceState::Early
                } else {
                    GraceState::Late
                };
                let expiry = Expiry {
                    expires_at: status.expires_at,
                    grace_ends_at: status.grace_ends_at,
                    grace,
                };
                log_grace(expiry);
                let subject = status
                    .key_display
                    .clone()
                    .unwrap_or_else(|| status.claims.sub.clone());
                ResolvedLicense::from_tier_name(
                    status.tier(),
                    LicenseSource::Activation,
                    expiry,
                    Some(subject),
                    tiers,
                    now,
                )
            }
            (None, RefreshOutcome::NoValidLicense(reason)) => community_after(reason, tiers, now),
            (None, _) => ResolvedLicense::community(tiers, true, now),
        }
    }
}

fn community_after(reason: &InvalidReason, tiers: Arc<TierTable>, now: i64) -> ResolvedLicense {
    if reason.is_missing() {
        tracing::info!("No license activated — Community mode");
        ResolvedLicense::community(tiers, false, now)
    } else {
        tracing::warn!(
            code = reason.code(),
            "License not usable ({reason}) — falling back to Community mode"
        );
        ResolvedLicense::community(tiers, true, now)
    }
}

fn log_grace(e: Expiry) {
    match e.grace {
        GraceState::None => {}
        GraceState::Early => tracing::warn!(
            "License expired at {}; in grace until {} — renew it",
            rfc3339(e.expires_at),
            rfc3339(e.grace_ends_at)
        ),
        GraceState::Late => tracing::error!(
            "License expired at {}; grace ends at {}, then Community mode — renew it now",
            rfc3339(e.expires_at),
            rfc3339(e.grace_ends_at)
        ),
    }
}

/// Tier changes and recoveries, as the operator's runbook expects them.
fn log_transition(old: &ResolvedLicense, new: &ResolvedLicense) {
    let fresh = matches!(
        new.source(),
        LicenseSource::ApiKey | LicenseSource::Static | LicenseSource::Activation
    );
    if fresh && new.tier_rank() != old.tier_rank() {
        let verb = if new.tier_rank() > old.tier_rank() {
            "upgraded"
        } else {
            "downgraded"
        };
        tracing::info!(
            "License {verb} from {} to {}",
            old.tier_display(),
            new.tier_display()
        );
    }
    if old.is_degraded() && !new.is_degraded() {
        tracing::info!("License restored to {}", new.tier_display());
    }
    tracing::debug!(
        tier = new.tier(),
        source = %new.source(),
        grace = %new.grace(),
        "license refreshed"
    );
}

/// `base` moved by a random amount within ± `jitter` (never below zero).
fn jittered(base: Duration, jitter: Duration) -> Duration {
    let span = jitter.as_millis().min(u128::from(u64::MAX / 4)) as u64;
    if span == 0 {
        return base;
    }
    let mut bytes = [0u8; 8];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        return base;
    }
    let r = u64::from_le_bytes(bytes) % (2 * span + 1);
    let base_ms = base.as_millis().min(u128::from(u64::MAX / 4)) as u64;
    Duration::from_millis((base_ms + r).saturating_sub(span))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_its_bounds() {
        let base = Duration::from_secs(100);
        for _ in 0..200 {
            let d = jittered(base, Duration::from_secs(10));
            assert!(d >= Duration::from_secs(90) && d <= Duration::from_secs(110));
        }
        assert_eq!(jittered(base, Duration::ZERO), base);
        assert!(
            jittered(Duration::from_secs(1), Duration::from_secs(10)) <= Duration::from_secs(11)
        );
    }
}
