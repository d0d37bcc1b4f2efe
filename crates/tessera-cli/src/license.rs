//! `tessera license activate|status|refresh|deactivate|resolve`: the client library from a
//! shell. Results go to stdout (`--output text|json`); logs and warnings go to stderr.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use tessera_client::verify::rfc3339;
use tessera_client::{
    ApiKeyConfig, ClientConfig, ClientError, InvalidReason, LicenseClient, LicenseManager,
    LicenseStatus, ResolvedLicense, TierTable,
};
use tessera_core::catalog::Catalog;

use crate::output::{self, Output};

#[derive(Debug, Clone, Subcommand)]
pub enum LicenseCommand {
    /// Activate this machine with a license key and store the license file.
    Activate {
        /// The license key, e.g. CFG-PRNG-XXXX-XXXX-XXXX.
        key: String,
    },
    /// Show the tier, expiry and grace state, offline; says why a license is not valid.
    /// Exits non-zero when there is no valid license.
    Status,
    /// Ask the server for a fresh token now (the current one must be valid or in grace).
    Refresh,
    /// Free this machine's seat on the server (best effort) and remove the license file.
    Deactivate,
    /// API-key mode: resolve the license as an app would (static JWT, then a fetch with the
    /// API key, then the disk cache, then Community) and print the tier, its source, the grace
    /// state, quotas and features. Does not need --product or the activation settings.
    Resolve(Box<ResolveArgs>),
}

#[derive(Clone, Args)]
pub struct ResolveArgs {
    /// API key (`sk-…`) to fetch the license with. Never printed.
    #[arg(long, env = "TESSERA_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Base URL of the license backend (needed with --api-key).
    #[arg(
        long,
        env = "TESSERA_BACKEND_URL",
        default_value = "http://127.0.0.1:8600"
    )]
    pub backend_url: String,
    /// A public key license tokens may be signed with, as KID=PATH (PEM, Ed25519 or RSA; the
    /// algorithm follows from the key). Repeat for several keys (rotation). A bare PATH trusts
    /// the key for tokens of any kid.
    #[arg(long = "public-key", value_name = "KID=PATH")]
    pub public_keys: Vec<String>,
    /// A JWKS file (e.g. a saved /.well-known/jwks.json) whose keys are trusted. Repeatable.
    #[arg(long, value_name = "PATH")]
    pub jwks: Vec<PathBuf>,
    /// The `iss` tokens must carry, compared exactly (default: the catalog's, with --catalog).
    #[arg(long, env = "TESSERA_ISSUER")]
    pub issuer: Option<String>,
    /// Directory holding `instance-id` and `license-cache.jwt` (created 0700).
    #[arg(long, env = "TESSERA_CACHE_DIR", default_value_os_t = default_cache_dir())]
    pub cache_dir: PathBuf,
    /// A license JWT given directly; tried first and accepted in grace. Never printed.
    #[arg(long, env = "TESSERA_LICENSE_JWT", hide_env_values = true)]
    pub static_jwt: Option<String>,
    /// A product catalog (the server's TOML) for the tier table and the issuer; without it the
    /// built-in table (SoftClient4ES: community < pro < enterprise) is used.
    #[arg(long, env = "TESSERA_CATALOG", value_name = "PATH")]
    pub catalog: Option<PathBuf>,
    /// The catalog's product to take (default: its first product).
    #[arg(long, value_name = "NAME")]
    pub catalog_product: Option<String>,
}

/// The API key and the static JWT never reach `Debug` output.
impl std::fmt::Debug for ResolveArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolveArgs")
            .field("api_key", &self.api_key.as_ref().map(|_| "****"))
            .field("backend_url", &self.backend_url)
            .field("public_keys", &self.public_keys)
            .field("issuer", &self.issuer)
            .field("cache_dir", &self.cache_dir)
            .field("static_jwt", &self.static_jwt.as_ref().map(|_| "****"))
            .finish_non_exhaustive()
    }
}

/// `$XDG_CACHE_HOME/tessera`, else `$HOME/.cache/tessera`, else `.tessera-cache`.
fn default_cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })
        .map(|d| d.join("tessera"))
        .unwrap_or_else(|| PathBuf::from(".tessera-cache"))
}

#[derive(Debug, Clone, Args)]
pub struct LicenseArgs {
    /// Base URL of the Tessera server (not contacted by `status`).
    #[arg(
        long,
        env = "TESSERA_SERVER_URL",
        default_value = "http://127.0.0.1:8600"
    )]
    pub server_url: String,
    /// Product this license is for (required except by `resolve`).
    #[arg(long, env = "TESSERA_PRODUCT")]
    pub product: Option<String>,
    /// Path to the vendor's public key (PEM) that license tokens must be signed with
    /// (required except by `resolve`, which takes its own `--public-key KID=PATH`).
    #[arg(long, env = "TESSERA_PUBLIC_KEY")]
    pub public_key: Option<PathBuf>,
    /// Path of the license file.
    #[arg(long, env = "TESSERA_LICENSE_FILE", default_value = "license.json")]
    pub license_file: PathBuf,
    /// Use this machine id instead of the computed fingerprint (containers).
    #[arg(long, env = "TESSERA_MACHINE_ID")]
    pub machine_id: Option<String>,
    /// Network timeout in seconds.
    #[arg(long, env = "TESSERA_TIMEOUT_SECS", default_value_t = 10)]
    pub timeout_secs: u64,
    #[arg(long, value_enum, default_value_t = Output::Text, global = true)]
    pub output: Output,
}

impl LicenseArgs {
    fn client(&self) -> Result<LicenseClient> {
        let (Some(product), Some(public_key)) = (&self.product, &self.public_key) else {
            bail!(
                "--product and --public-key (or TESSERA_PRODUCT and TESSERA_PUBLIC_KEY) are required"
            );
        };
        let pem = std::fs::read(public_key)
            .with_context(|| format!("reading public key {}", public_key.display()))?;
        let mut config = ClientConfig::new(&self.server_url, product, pem, &self.license_file)
            .with_timeout(Duration::from_secs(self.timeout_secs.max(1)))
            .with_app_version(concat!("tessera-cli/", env!("CARGO_PKG_VERSION")));
        if let Some(id) = &self.machine_id {
            config = config.with_machine_id(id);
        }
        Ok(LicenseClient::new(config)?)
    }
}

pub async fn run(args: LicenseArgs, cmd: LicenseCommand) -> Result<()> {
    // `resolve` is API-key mode: it needs none of the activation settings.
    let client = match &cmd {
        LicenseCommand::Resolve(resolve) => return run_resolve(&args, resolve).await,
        _ => args.client()?,
    };
    match cmd {
        LicenseCommand::Resolve(_) => unreachable_resolve(),
        LicenseCommand::Activate { key } => {
            let status = client.activate(&key).await.map_err(explain)?;
            print_status(args.output, "activated", &status)
        }
        LicenseCommand::Status => match client.verify_local() {
            Ok(status) => print_status(args.output, "valid", &status),
            Err(reason) => {
                print_invalid(args.output, &client.config().fallback_tier, &reason)?;
                bail!("no valid license ({})", reason.code())
            }
        },
        LicenseCommand::Refresh => {
            let status = client.refresh().await.map_err(explain)?;
            print_status(args.output, "refreshed", &status)
        }
        LicenseCommand::Deactivate => {
            let outcome = client.deactivate().await.map_err(explain)?;
            let server_error = outcome.server_error.as_ref().map(ToString::to_string);
            if let Some(e) = &server_error {
                eprintln!("warning: the server did not confirm: {e}; the seat may still be held");
            }
            match args.output {
                Output::Json => output::json(&json!({
                    "deactivated": true,
                    "had_license": outcome.had_license,
                    "server_confirmed": outcome.server_confirmed,
                    "server_error": server_error,
                }))?,
                Output::Text if !outcome.had_license => {
                    println!("no license file; nothing to deactivate")
                }
                Output::Text if outcome.server_confirmed => {
                    println!("deactivated: the seat is free and the license file is removed")
                }
                Output::Text => println!("license file removed (the server did not confirm)"),
            }
            Ok(())
        }
    }
}

impl ResolveArgs {
    fn config(&self, timeout: Duration) -> Result<ApiKeyConfig> {
        let product = match &self.catalog {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading catalog {}", path.display()))?;
                let catalog = Catalog::parse(&text)?;
                let product =
                    match &self.catalog_product {
                        Some(name) => catalog.product(name).cloned().with_context(|| {
                            format!("product `{name}` is not in catalog {}", path.display())
                        })?,
                        None => catalog.products.first().cloned().with_context(|| {
                            format!("catalog {} lists no product", path.display())
                        })?,
                    };
                Some(product)
            }
            None => None,
        };
        let issuer = match (&self.issuer, &product) {
            (Some(i), _) => i.clone(),
            (None, Some(p)) => p.issuer.clone(),
            (None, None) => bail!("--issuer (or TESSERA_ISSUER, or --catalog) is required"),
        };
        let tiers = match &product {
            Some(p) => TierTable::from_catalog(p)?,
            None => TierTable::default(),
        };
        let mut config = ApiKeyConfig::new(&self.backend_url, issuer, &self.cache_dir)
            .with_tiers(tiers)
            .with_timeout(timeout)
            .with_app_version(concat!("tessera-cli/", env!("CARGO_PKG_VERSION")));
        if let Some(key) = &self.api_key {
            config = config.with_api_key(key.as_str());
        }
        if let Some(jwt) = &self.static_jwt {
            config = config.with_static_jwt(jwt.as_str());
        }
        for spec in &self.public_keys {
            let (kid, path) = parse_public_key(spec);
            let pem = std::fs::read(path)
                .with_context(|| format!("reading public key {}", path.display()))?;
            config = config.with_public_key(kid, pem);
        }
        for path in &self.jwks {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading JWKS {}", path.display()))?;
            config = config.with_jwks(text);
        }
        Ok(config)
    }
}

/// `resolve` returns before an activation client is built.
fn unreachable_resolve() -> Result<()> {
    bail!("internal error: `resolve` reached the activation commands")
}

/// `KID=PATH` → (Some(KID), PATH); a bare `PATH` → (None, PATH).
fn parse_public_key(spec: &str) -> (Option<&str>, &std::path::Path) {
    match spec.split_once('=') {
        Some((kid, path)) if !kid.is_empty() && !path.is_empty() => {
            (Some(kid), std::path::Path::new(path))
        }
        _ => (None, std::path::Path::new(spec)),
    }
}

async fn run_resolve(args: &LicenseArgs, resolve: &ResolveArgs) -> Result<()> {
    let mut config = resolve.config(Duration::from_secs(args.timeout_secs.max(1)))?;
    if config.public_keys.is_empty()
        && config.jwks.is_empty()
        && let Some(path) = &args.public_key
    {
        // `tessera license --public-key PATH resolve`: the activation setting, no kid.
        let pem = std::fs::read(path)
            .with_context(|| format!("reading public key {}", path.display()))?;
        config = config.with_public_key(None, pem);
    }
    let manager = LicenseManager::start(config).await.map_err(explain)?;
    let license = manager.current();
    match args.output {
        Output::Json => output::json(&resolved_json(&license)),
        Output::Text => {
            print_resolved(&license);
            Ok(())
        }
    }
}

/// Every quota the license or the tier table names; `None` = unlimited.
fn quota_rows(l: &ResolvedLicense) -> Vec<(String, Option<u64>)> {
    let mut names: std::collections::BTreeSet<String> =
        l.quotas().iter().map(|(k, _)| k.to_string()).collect();
    for tier in l.tier_table().tiers() {
        names.extend(tier.quotas.keys().cloned());
    }
    names
        .into_iter()
        .map(|n| {
            let limit = l.quota(&n);
            (n, limit)
        })
        .collect()
}

fn resolved_json(l: &ResolvedLicense) -> Value {
    let quotas: serde_json::Map<String, Value> = quota_rows(l)
        .into_iter()
        .map(|(n, v)| (n, v.map_or(Value::Null, Value::from)))
        .collect();
    json!({
        "tier": l.tier(),
        "source": l.source(),
        "grace": l.grace(),
        "degraded": l.is_degraded(),
        "quotas": quotas,
        "features": l.features().collect::<Vec<_>>(),
        "expires_at": l.expires_at().map(rfc3339),
        "grace_ends_at": l.grace_ends_at().map(rfc3339),
        "subject": l.subject(),
        "org_name": l.org_name(),
        "trial": l.trial(),
    })
}

fn print_resolved(l: &ResolvedLicense) {
    println!("tier:     {}", l.tier_display());
    println!("source:   {}", l.source());
    println!("grace:    {}", l.grace());
    if let Some(exp) = l.expires_at() {
        println!("expires:  {}", rfc3339(exp));
    }
    if let (Some(end), true) = (
        l.grace_ends_at(),
        l.grace() != tessera_client::GraceState::None,
    ) {
        println!("grace ends: {}", rfc3339(end));
    }
    if let Some(org) = l.org_name() {
        println!("org:      {org}{}", if l.trial() { " (trial)" } else { "" });
    }
    let rows = quota_rows(l);
    if rows.is_empty() {
        println!("quotas:   (none: unlimited)");
    }
    for (i, (name, limit)) in rows.iter().enumerate() {
        let label = if i == 0 { "quotas:" } else { "" };
        match limit {
            Some(v) => println!("{label:<9} {name} = {v}"),
            None => println!("{label:<9} {name} = unlimited"),
        }
    }
    let features: Vec<&str> = l.features().collect();
    if features.is_empty() {
        println!("features: (none)");
    } else {
        println!("features: {}", features.join(", "));
    }
}

fn status_json(state: &str, s: &LicenseStatus) -> Value {
    json!({
        "state": state,
        "valid": true,
        "tier": s.claims.tier,
        "in_grace": s.in_grace,
        "expires_at": rfc3339(s.expires_at),
        "grace_ends_at": rfc3339(s.grace_ends_at),
        "key": s.key_display.as_deref().unwrap_or(&s.claims.sub),
        "product": s.claims.product,
        "seats": s.claims.seats,
        "machine": s.claims.machine,
        "valid_until": s.valid_until,
        "notice": s.claims.notice,
    })
}

fn print_status(out: Output, state: &str, s: &LicenseStatus) -> Result<()> {
    if out == Output::Json {
        return output::json(&status_json(state, s));
    }
    let key = s.key_display.as_deref().unwrap_or(&s.claims.sub);
    println!("license: {state}");
    println!("tier:    {}", s.claims.tier);
    println!("key:     {key}");
    if s.in_grace {
        println!(
            "expired: {} (the token was not renewed)",
            rfc3339(s.expires_at)
        );
        println!(
            "grace:   IN GRACE until {}; run `tessera license refresh`",
            rfc3339(s.grace_ends_at)
        );
    } else {
        let days_left = (s.expires_at - s.checked_at) / 86_400;
        println!("expires: {} (in {days_left} days)", rfc3339(s.expires_at));
        println!(
            "grace:   not in grace; would end {}",
            rfc3339(s.grace_ends_at)
        );
    }
    if let Some(until) = &s.valid_until {
        println!("key valid until: {until}");
    }
    if let Some(notice) = &s.claims.notice {
        println!("notice:  {notice}");
    }
    Ok(())
}

fn print_invalid(out: Output, fallback: &str, reason: &InvalidReason) -> Result<()> {
    match out {
        Output::Json => output::json(&json!({
            "state": "invalid",
            "valid": false,
            "tier": fallback,
            "reason": {"code": reason.code(), "message": reason.to_string()},
        })),
        Output::Text => {
            println!("license: not valid");
            println!("tier:    {fallback} (fallback)");
            println!("why:     {reason}");
            Ok(())
        }
    }
}

/// Adds a hint to the errors a user can act on.
fn explain(e: ClientError) -> anyhow::Error {
    let hint = match &e {
        ClientError::Timeout(_) | ClientError::Network(_) => {
            Some("check --server-url and the network")
        }
        ClientError::InvalidToken(_) => Some("is --public-key the server's public key?"),
        ClientError::NoLicense(r) if r.is_missing() => {
            Some("activate first: tessera license activate KEY")
        }
        _ => None,
    };
    match hint {
        Some(h) => anyhow::anyhow!("{e}\nhint: {h}"),
        None => anyhow::Error::new(e),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: LicenseArgs,
        #[command(subcommand)]
        cmd: LicenseCommand,
    }

    #[test]
    fn public_keys_are_kid_equals_path_or_a_bare_path() {
        assert_eq!(
            parse_public_key("sc4es-2026-11=keys/a.pem"),
            (Some("sc4es-2026-11"), std::path::Path::new("keys/a.pem"))
        );
        assert_eq!(
            parse_public_key("keys/a.pem"),
            (None, std::path::Path::new("keys/a.pem"))
        );
    }

    #[test]
    fn resolve_needs_neither_product_nor_the_activation_key() {
        let cli = Cli::try_parse_from([
            "license",
            "--output",
            "json",
            "resolve",
            "--api-key",
            "sk-abc",
            "--public-key",
            "k1=a.pem",
            "--public-key",
            "k2=b.pem",
            "--issuer",
            "https://iss",
            "--cache-dir",
            "/tmp/c",
        ])
        .unwrap();
        assert_eq!(cli.args.output, Output::Json);
        let LicenseCommand::Resolve(r) = cli.cmd else {
            panic!("not resolve");
        };
        assert_eq!(r.public_keys, ["k1=a.pem", "k2=b.pem"]);
        assert_eq!(r.api_key.as_deref(), Some("sk-abc"));
        // A key file that cannot be read is named in the error.
        let err = r.config(Duration::from_secs(1)).unwrap_err();
        assert!(err.to_string().contains("a.pem"), "{err}");
    }

    #[test]
    fn resolved_json_has_tier_source_grace_quotas_and_no_secret() {
        let table = std::sync::Arc::new(TierTable::default());
        let community = ResolvedLicense::community(table, false, 0);
        let v = resolved_json(&community);
        assert_eq!(v["tier"], "community");
        assert_eq!(v["source"], "community");
        assert_eq!(v["grace"], "none");
        assert_eq!(v["quotas"]["max_clusters"], 2);
        assert!(v.get("api_key").is_none());
    }
}
