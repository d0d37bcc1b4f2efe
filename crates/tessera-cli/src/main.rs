//! `tessera`: a thin front over the libraries. Results go to stdout, logs to stderr.

use std::io::IsTerminal;

use clap::{Parser, Subcommand};

mod admin;
mod bench;
mod db;
mod keygen;
mod license;
mod output;

#[derive(Debug, Parser)]
#[command(
    name = "tessera",
    version,
    about = "Self-hosted software licensing: server, keys, licenses"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the license server (SQLite under ./data by default).
    Serve(Box<tessera_server::ServeArgs>),
    /// Generate a signing keypair (private key mode 0600).
    Keygen(keygen::KeygenArgs),
    /// Administer a running server over its admin API.
    Admin(Box<admin::AdminArgs>),
    /// Load-test a server: throughput, latency percentiles, errors, peak RSS.
    Bench(Box<bench::BenchArgs>),
    /// Database maintenance: migrate, copy SQLite to PostgreSQL, back up SQLite.
    Db(db::DbArgs),
    /// Hold a license on this machine: activate, status, refresh, deactivate.
    License {
        #[command(flatten)]
        args: Box<license::LicenseArgs>,
        #[command(subcommand)]
        cmd: license::LicenseCommand,
    },
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in log files or journald.
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none());
    if std::env::var("LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Serve(args) => tessera_server::serve(*args).await,
        Command::Keygen(args) => keygen::run(args),
        Command::Admin(args) => admin::run(*args).await,
        Command::Bench(args) => bench::run(*args).await,
        Command::License { args, cmd } => license::run(*args, cmd).await,
        Command::Db(args) => db::run(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
