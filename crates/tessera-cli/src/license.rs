//! `tessera license activate|status|refresh|deactivate`: the client library from a shell.
//! Results go to stdout (`--output text|json`); warnings go to stderr.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use tessera_client::verify::rfc3339;
use tessera_client::{ClientConfig, ClientError, InvalidReason, LicenseClient, LicenseStatus};

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
    /// Product this license is for.
    #[arg(long, env = "TESSERA_PRODUCT")]
    pub product: String,
    /// Path to the vendor's public key (PEM) that license tokens must be signed with.
    #[arg(long, env = "TESSERA_PUBLIC_KEY")]
    pub public_key: PathBuf,
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
        let pem = std::fs::read(&self.public_key)
            .with_context(|| format!("reading public key {}", self.public_key.display()))?;
        let mut config =
            ClientConfig::new(&self.server_url, &self.product, pem, &self.license_file)
                .with_timeout(Duration::from_secs(self.timeout_secs.max(1)))
                .with_app_version(concat!("tessera-cli/", env!("CARGO_PKG_VERSION")));
        if let Some(id) = &self.machine_id {
            config = config.with_machine_id(id);
        }
        Ok(LicenseClient::new(config)?)
    }
}

pub async fn run(args: LicenseArgs, cmd: LicenseCommand) -> Result<()> {
    let client = args.client()?;
    match cmd {
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
