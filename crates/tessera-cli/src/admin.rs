//! `tessera admin …`: the seed's `issue-key.sh`, as a real command over the admin API.

use anyhow::{Context, bail};
use clap::Subcommand;
use serde::de::DeserializeOwned;
use tessera_core::ErrorBody;
use tessera_core::wire::{CreateKeyRequest, KeyResponse, StatusResponse};

use crate::output::{self, Output};

#[derive(clap::Args)]
pub struct AdminArgs {
    /// Base URL of the Tessera server.
    #[arg(
        long,
        env = "TESSERA_SERVER_URL",
        default_value = "http://127.0.0.1:8600"
    )]
    pub server_url: String,
    /// Admin bearer token (default: the environment variable; never logged).
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Read the admin token from this file (e.g. ./data/admin-token written on first start).
    #[arg(long, env = "ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<std::path::PathBuf>,
    #[arg(long, value_enum, default_value_t = Output::Text, global = true)]
    pub output: Output,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// License keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Issue a new license key.
    Create {
        #[arg(long, default_value = "peregrine")]
        product: String,
        #[arg(long, default_value = "paid")]
        tier: String,
        #[arg(long, default_value_t = 1)]
        seats: i64,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        notes: Option<String>,
        #[arg(long)]
        trial: bool,
        /// `YYYY-MM-DD` or RFC 3339.
        #[arg(long)]
        valid_until: Option<String>,
        /// Floating seats: release a seat not refreshed for this many seconds.
        #[arg(long)]
        lease_ttl_secs: Option<i64>,
        #[arg(long, default_value = "manual")]
        source: String,
    },
    /// List keys, newest first.
    List {
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[arg(long, default_value_t = 0)]
        offset: i64,
    },
    /// Revoke a key by id.
    Revoke { id: String },
}

/// The admin token never reaches `Debug` output.
impl std::fmt::Debug for AdminArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminArgs")
            .field("server_url", &self.server_url)
            .field("admin_token", &self.admin_token.as_ref().map(|_| "****"))
            .field("admin_token_file", &self.admin_token_file)
            .field("output", &self.output)
            .field("command", &self.command)
            .finish()
    }
}

struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    fn new(args: &AdminArgs) -> anyhow::Result<Self> {
        let token = match (&args.admin_token, &args.admin_token_file) {
            (Some(t), _) if !t.trim().is_empty() => t.trim().to_string(),
            (_, Some(path)) => std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?
                .trim()
                .to_string(),
            _ => bail!("set ADMIN_TOKEN (or --admin-token-file ./data/admin-token)"),
        };
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            http,
            base: args.server_url.trim_end_matches('/').to_string(),
            token,
        })
    }

    async fn send<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> anyhow::Result<T> {
        let resp = req
            .bearer_auth(&self.token)
            .send()
            .await
            .context("contacting the server")?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        if !status.is_success() {
            match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(body) => bail!(
                    "server refused ({status}): {} [{}]",
                    body.message,
                    body.error
                ),
                Err(_) => bail!("server answered {status}"),
            }
        }
        serde_json::from_slice(&bytes).context("decoding the server's answer")
    }
}

pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let api = Api::new(&args)?;
    match &args.command {
        AdminCommand::Keys(KeysCommand::Create {
            product,
            tier,
            seats,
            email,
            notes,
            trial,
            valid_until,
            lease_ttl_secs,
            source,
        }) => {
            let body = CreateKeyRequest {
                product: product.clone(),
                tier: tier.clone(),
                seats: *seats,
                valid_until: valid_until.clone(),
                customer_email: email.clone(),
                source: source.clone(),
                trial: *trial,
                notes: notes.clone(),
                lease_ttl_secs: *lease_ttl_secs,
            };
            body.validate()?;
            let key: KeyResponse = api
                .send(
                    api.http
                        .post(format!("{}/admin/keys", api.base))
                        .json(&body),
                )
                .await?;
            match args.output {
                Output::Json => output::json(&key)?,
                Output::Text => {
                    println!("Key:  {}", key.key_display);
                    println!("ID:   {}", key.id);
                    println!("Tier: {} ({} seat(s))", key.tier, key.seats);
                }
            }
        }
        AdminCommand::Keys(KeysCommand::List { limit, offset }) => {
            let keys: Vec<KeyResponse> = api
                .send(api.http.get(format!(
                    "{}/admin/keys?limit={limit}&offset={offset}",
                    api.base
                )))
                .await?;
            match args.output {
                Output::Json => output::json(&keys)?,
                Output::Text => {
                    println!(
                        "{:<36}  {:<24}  {:<10}  {:<8}  {:>5}  STATUS",
                        "ID", "KEY", "PRODUCT", "TIER", "SEATS"
                    );
                    for k in keys {
                        let status = if k.revoked { "revoked" } else { "active" };
                        println!(
                            "{:<36}  {:<24}  {:<10}  {:<8}  {:>2}/{:<2}  {status}",
                            k.id, k.key_display, k.product, k.tier, k.active_seat_count, k.seats
                        );
                    }
                }
            }
        }
        AdminCommand::Keys(KeysCommand::Revoke { id }) => {
            let status: StatusResponse = api
                .send(api.http.delete(format!("{}/admin/keys/{id}", api.base)))
                .await?;
            match args.output {
                Output::Json => output::json(&status)?,
                Output::Text => println!("Key {id}: {}", status.status),
            }
        }
    }
    Ok(())
}
