//! [`LicenseClient`]: activation, offline verification, refresh with grace, deactivation and
//! fire-and-forget reports, over one license file.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use tessera_core::clock::{Clock, SystemClock};
use tessera_core::expiry::{Freshness, days, freshness};
use tessera_core::wire::{
    ActivateRequest, ActivateResponse, DeactivateRequest, FlagRequest, RefreshRequest,
    StatusResponse, UsageRequest,
};
use tessera_core::{LicenseClaims, Verifier};

use crate::config::ClientConfig;
use crate::error::ClientError;
use crate::fingerprint;
use crate::http::{build_client, post_json};
use crate::license_file::{self, LicenseFile, LicenseFileError, python_isoformat};
use crate::outcome::{DeactivateOutcome, EffectiveTier, RefreshOutcome, TierSource};
use crate::reports::{Destination, Report, ReportStats, Reporter};
use crate::verify::{Expectations, InvalidReason, LicenseStatus, evaluate};

/// The clock high-water mark on disk is moved forward at most this often (seconds); in memory it
/// is exact.
const HIGH_WATER_STEP_SECS: i64 = 60;

/// Upper bound for the day settings (ten years), so day arithmetic cannot overflow.
const MAX_DAYS: i64 = 3650;

/// Holds one application's license. Cheap to clone; clones share the report queue.
#[derive(Clone)]
pub struct LicenseClient {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClientConfig,
    verifier: Verifier,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    machine_id: String,
    /// Latest time seen (unix seconds), so a clock turned back cannot revive an expired license.
    high_water: AtomicI64,
    reporter: Reporter,
    /// The code of the last fallback reason logged at `warn`, so an app asking per request logs it once.
    last_warning: Mutex<Option<&'static str>>,
}

impl std::fmt::Debug for LicenseClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LicenseClient")
            .field("config", &self.inner.config)
            .field("machine_id", &self.inner.machine_id)
            .finish_non_exhaustive()
    }
}

/// Two views of now: the clock's, and the one decisions use (never earlier than a time seen).
#[derive(Debug, Clone, Copy)]
struct Now {
    clock: i64,
    on_disk: Option<i64>,
    effective: i64,
}

impl LicenseClient {
    /// A client on the system clock.
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        Self::with_clock(config, Arc::new(SystemClock))
    }

    /// A client on the given clock (tests, drills).
    pub fn with_clock(config: ClientConfig, clock: Arc<dyn Clock>) -> Result<Self, ClientError> {
        validate(&config)?;
        let verifier = Verifier::from_pem(&config.public_key_pem)
            .map_err(|e| ClientError::Config(format!("public key: {e}")))?;
        let machine_id = match &config.machine_id {
            Some(id) => id.clone(),
            None => fingerprint::machine_fingerprint()?,
        };
        let http = build_client(config.timeout)?;
        let reporter = Reporter::new(
            config.report_queue_capacity,
            Destination {
                http: http.clone(),
                usage_url: config.url("/v1/usage"),
                flag_url: config.url("/v1/flag"),
                license_path: config.license_path.clone(),
            },
        );
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                verifier,
                http,
                clock,
                machine_id,
                high_water: AtomicI64::new(i64::MIN),
                reporter,
                last_warning: Mutex::new(None),
            }),
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The clock this client decides with.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.inner.clock.clone()
    }

    /// The fingerprint sent to the server and required in tokens.
    pub fn machine_id(&self) -> &str {
        &self.inner.machine_id
    }

    fn grace_secs(&self) -> i64 {
        days(self.inner.config.grace_days)
    }

    fn expectations(&self) -> Expectations<'_> {
        Expectations {
            product: &self.inner.config.product,
            machine_id: &self.inner.machine_id,
            grace_secs: self.grace_secs(),
        }
    }

    fn now(&self) -> Now {
        let clock = self.inner.clock.unix();
        let on_disk = license_file::read_high_water(&self.inner.config.license_path);
        let in_memory = self.inner.high_water.load(Ordering::SeqCst);
        let effective = clock.max(in_memory).max(on_disk.unwrap_or(i64::MIN));
        Now {
            clock,
            on_disk,
            effective,
        }
    }

    /// Moves the high-water mark forward (in memory always, on disk at most every minute).
    fn note_time(&self, now: Now) {
        self.inner.high_water.fetch_max(now.clock, Ordering::SeqCst);
        if now
            .on_disk
            .is_none_or(|d| now.clock >= d + HIGH_WATER_STEP_SECS)
        {
            self.store_high_water(now.clock);
        }
    }

    fn store_high_water(&self, unix: i64) {
        if let Err(e) = license_file::write_high_water(&self.inner.config.license_path, unix) {
            tracing::debug!(error = %e, "could not record the clock high-water mark");
        }
    }

    /// Checks the license file offline: signature with the embedded key, product, machine, issue
    /// time, and expiry with grace from the signed `exp`. No network.
    pub fn verify_local(&self) -> Result<LicenseStatus, InvalidReason> {
        let file = LicenseFile::read(&self.inner.config.license_path)?;
        let now = self.now();
        self.note_time(now);
        match evaluate(
            &self.inner.verifier,
            &file.jwt,
            &self.expectations(),
            now.effective,
        ) {
            Ok((claims, f)) => Ok(self.status(claims, f, now.effective, &file)),
            Err(InvalidReason::Expired { exp, grace_end, .. }) => Err(InvalidReason::Expired {
                exp,
                grace_end,
                clock_behind: now.clock < now.effective
                    && freshness(exp, self.grace_secs(), now.clock) != Freshness::Expired,
            }),
            Err(other) => Err(other),
        }
    }

    fn status(
        &self,
        claims: LicenseClaims,
        f: Freshness,
        now: i64,
        file: &LicenseFile,
    ) -> LicenseStatus {
        LicenseStatus {
            expires_at: claims.exp,
            grace_ends_at: claims.exp.saturating_add(self.grace_secs().max(0)),
            in_grace: f == Freshness::InGrace,
            freshness: f,
            checked_at: now,
            key_display: file.key_display.clone(),
            valid_until: file.valid_until.clone(),
            claims,
        }
    }

    /// The license's tier, or the fallback tier with the reason. Logs why it falls back.
    pub fn effective_tier(&self) -> EffectiveTier {
        match self.verify_local() {
            Ok(status) => EffectiveTier {
                tier: status.claims.tier,
                source: TierSource::License,
                in_grace: status.in_grace,
                reason: None,
            },
            Err(reason) => {
                let tier = &self.inner.config.fallback_tier;
                if reason.is_missing() {
                    tracing::debug!(%reason, tier, "no license; using the fallback tier");
                } else if self.first_time_warning(&reason) {
                    tracing::warn!(%reason, code = reason.code(), tier, "license not usable; using the fallback tier");
                } else {
                    tracing::debug!(%reason, tier, "license still not usable; using the fallback tier");
                }
                EffectiveTier {
                    tier: tier.clone(),
                    source: TierSource::Fallback,
                    in_grace: false,
                    reason: Some(reason),
                }
            }
        }
    }

    fn first_time_warning(&self, reason: &InvalidReason) -> bool {
        let code = reason.code();
        match self.inner.last_warning.lock() {
            Ok(mut last) if *last != Some(code) => {
                *last = Some(code);
                true
            }
            Ok(_) => false,
            Err(_) => true,
        }
    }

    /// Exchanges a license key for a token, verifies it and stores the license file.
    pub async fn activate(&self, key: &str) -> Result<LicenseStatus, ClientError> {
        let cfg = &self.inner.config;
        let request = ActivateRequest {
            key: key.trim().to_string(),
            machine_id: self.inner.machine_id.clone(),
            product: cfg.product.clone(),
            app_version: cfg.app_version.clone(),
            platform: Some(std::env::consts::OS.to_string()),
        };
        let resp: ActivateResponse = post_json(
            &self.inner.http,
            &cfg.url("/v1/activate"),
            &request,
            cfg.timeout,
        )
        .await?;
        self.accept(resp, None)
    }

    /// Refreshes now, whatever the expiry (the CLI's `refresh`). The current license must still
    /// be valid or in grace — or be expired only because the clock reads earlier than a time
    /// already seen: then the server, whose clock is authoritative, decides.
    pub async fn refresh(&self) -> Result<LicenseStatus, ClientError> {
        let cfg = &self.inner.config;
        let file =
            LicenseFile::read(&cfg.license_path).map_err(|e| ClientError::NoLicense(e.into()))?;
        match self.verify_local() {
            Ok(_)
            | Err(InvalidReason::Expired {
                clock_behind: true, ..
            }) => {}
            Err(reason) => return Err(ClientError::NoLicense(reason)),
        }
        let request = RefreshRequest {
            jwt: file.jwt.clone(),
            machine_id: self.inner.machine_id.clone(),
            app_version: cfg.app_version.clone(),
            platform: Some(std::env::consts::OS.to_string()),
        };
        let resp: ActivateResponse = post_json(
            &self.inner.http,
            &cfg.url("/v1/refresh"),
            &request,
            cfg.timeout,
        )
        .await?;
        self.accept(resp, Some(file))
    }

    /// Refreshes when the token expires within `refresh_before_days` or is in grace. Never
    /// fails and never takes longer than the configured timeout; when the server is unreachable
    /// the cached license keeps working (in grace once expired).
    pub async fn refresh_if_needed(&self) -> RefreshOutcome {
        let status = match self.verify_local() {
            Ok(s) => s,
            Err(
                reason @ InvalidReason::Expired {
                    clock_behind: true, ..
                },
            ) => {
                // A high-water mark from a clock that once ran ahead: only the server can heal it.
                return match self.refresh().await {
                    Ok(new) => RefreshOutcome::Refreshed(new),
                    Err(error) => {
                        tracing::warn!(%error, %reason, "license refresh failed");
                        RefreshOutcome::NoValidLicense(reason)
                    }
                };
            }
            Err(reason) => return RefreshOutcome::NoValidLicense(reason),
        };
        if !status.needs_refresh(days(self.inner.config.refresh_before_days)) {
            return RefreshOutcome::NotNeeded(status);
        }
        match self.refresh().await {
            Ok(new) => RefreshOutcome::Refreshed(new),
            Err(error) if error.is_transient() => {
                tracing::warn!(%error, in_grace = status.in_grace, "license refresh failed; keeping the cached license");
                RefreshOutcome::Unreachable { status, error }
            }
            Err(error) => {
                tracing::warn!(%error, "license refresh refused; keeping the cached license until it lapses");
                RefreshOutcome::Rejected { status, error }
            }
        }
    }

    /// Verifies a token from the server and stores it. Nothing is written when it does not
    /// verify. The server's signed `iat` is trusted time: the high-water mark restarts there.
    fn accept(
        &self,
        resp: ActivateResponse,
        previous: Option<LicenseFile>,
    ) -> Result<LicenseStatus, ClientError> {
        let now = self.inner.clock.unix();
        let (claims, f) = evaluate(&self.inner.verifier, &resp.jwt, &self.expectations(), now)
            .map_err(ClientError::InvalidToken)?;
        let file = LicenseFile {
            jwt: resp.jwt,
            key_display: Some(claims.sub.clone()),
            tier: Some(claims.tier.clone()),
            valid_until: resp.valid_until,
            machine_id: Some(self.inner.machine_id.clone()),
            last_refresh: Some(python_isoformat(now)),
            grace_until: Some(python_isoformat(
                claims.exp.saturating_add(self.grace_secs().max(0)),
            )),
            extra: previous.map(|p| p.extra).unwrap_or_default(),
        };
        file.write(&self.inner.config.license_path)?;
        let seen = now.max(claims.iat);
        self.inner.high_water.store(seen, Ordering::SeqCst);
        self.store_high_water(seen);
        Ok(self.status(claims, f, now, &file))
    }

    /// Best effort `POST /v1/deactivate`, then removes the license file whatever the answer.
    pub async fn deactivate(&self) -> Result<DeactivateOutcome, ClientError> {
        let cfg = &self.inner.config;
        let file = match LicenseFile::read(&cfg.license_path) {
            Ok(f) => Some(f),
            Err(LicenseFileError::Missing(_)) => None,
            Err(e) => {
                tracing::warn!(error = %e, "license file unusable; removing it without telling the server");
                None
            }
        };
        let mut outcome = DeactivateOutcome {
            had_license: file.is_some(),
            server_confirmed: false,
            server_error: None,
        };
        if let Some(file) = file {
            let request = DeactivateRequest {
                jwt: file.jwt,
                machine_id: self.inner.machine_id.clone(),
            };
            let url = cfg.url("/v1/deactivate");
            match post_json::<_, StatusResponse>(&self.inner.http, &url, &request, cfg.timeout)
                .await
            {
                Ok(_) => outcome.server_confirmed = true,
                Err(e) => {
                    tracing::warn!(error = %e, "server did not confirm deactivation");
                    outcome.server_error = Some(e);
                }
            }
        }
        LicenseFile::remove(&cfg.license_path)?;
        Ok(outcome)
    }

    /// Queues a usage event. Never blocks; returns `false` when the report was dropped.
    pub fn report_usage(&self, event_type: &str, metadata: Option<serde_json::Value>) -> bool {
        self.inner.reporter.submit(Report::Usage(UsageRequest {
            event_type: event_type.to_string(),
            product: self.inner.config.product.clone(),
            metadata,
        }))
    }

    /// Queues a flag (suspected misuse). Never blocks; returns `false` when it was dropped.
    pub fn report_flag(&self, flag_type: &str, details: Option<serde_json::Value>) -> bool {
        self.inner.reporter.submit(Report::Flag(FlagRequest {
            flag_type: flag_type.to_string(),
            product: self.inner.config.product.clone(),
            details,
        }))
    }

    /// Reports dropped because the queue was full.
    pub fn dropped_reports(&self) -> u64 {
        self.inner.reporter.stats().dropped
    }

    pub fn report_stats(&self) -> ReportStats {
        self.inner.reporter.stats()
    }
}

fn validate(config: &ClientConfig) -> Result<(), ClientError> {
    let bad = |m: &str| Err(ClientError::Config(m.to_string()));
    match reqwest::Url::parse(&config.server_url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => {}
        _ => return bad("server_url must be an http:// or https:// URL"),
    }
    if config.product.trim().is_empty() {
        return bad("product is empty");
    }
    let day_range = 0..=MAX_DAYS;
    if !day_range.contains(&config.grace_days) || !day_range.contains(&config.refresh_before_days) {
        return bad("grace_days and refresh_before_days must be between 0 and 3650");
    }
    if config.timeout.is_zero() {
        return bad("timeout must be more than zero");
    }
    if config
        .machine_id
        .as_deref()
        .is_some_and(|m| m.trim().is_empty())
    {
        return bad("machine_id is empty");
    }
    Ok(())
}
