//! `tessera db …`: database maintenance for operators. The work is done by
//! `tessera_server::store::maintenance`; this parses flags and prints results to stdout.

use std::path::PathBuf;

use anyhow::bail;
use clap::Subcommand;
use tessera_server::store::maintenance::{self, DEFAULT_BATCH_ROWS};
use tessera_server::store::redact_url;

use crate::output::{self, Output};

#[derive(Debug, clap::Args)]
pub struct DbArgs {
    #[arg(long, value_enum, default_value_t = Output::Text, global = true)]
    pub output: Output,
    #[command(subcommand)]
    pub command: DbCommand,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Apply the database's embedded migrations (what `serve` does at start), then exit.
    Migrate(Database),
    /// Copy every table of a SQLite database into PostgreSQL and verify the row counts.
    ///
    /// Reads the source in one transaction (a live server may keep running: the copy is the
    /// database as of the start), writes the target in one transaction, in foreign-key order.
    /// Rows already in the target (same id) are left alone, so running it again is safe and
    /// adds only new rows. For the final move: stop the SQLite server, copy, start the
    /// PostgreSQL replicas. Exits non-zero when any table's counts differ.
    Copy {
        /// Source database, `sqlite://PATH`.
        #[arg(long)]
        from: String,
        /// Target database, `postgres://USER@HOST/DB` (migrated first). A password is better
        /// given by PGPASSWORD or ~/.pgpass than in this flag.
        #[arg(long)]
        to: String,
        /// Rows per INSERT.
        #[arg(long, default_value_t = DEFAULT_BATCH_ROWS)]
        batch_rows: usize,
    },
    /// Write a consistent copy of a live SQLite database to a new file (`VACUUM INTO`).
    Backup {
        #[command(flatten)]
        database: Database,
        /// The backup file to create; refused if it exists.
        #[arg(long)]
        to: PathBuf,
    },
}

/// The database a command works on: `--database-url`, else the server's default file.
#[derive(Debug, clap::Args)]
pub struct Database {
    /// `sqlite://PATH` or `postgres://USER@HOST/DB` (default: DATA_DIR/tessera.db).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// The server's data directory (where the default SQLite database lives).
    #[arg(long, env = "TESSERA_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
}

impl Database {
    fn url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("tessera.db").display()))
    }
}

pub async fn run(args: DbArgs) -> anyhow::Result<()> {
    match args.command {
        DbCommand::Migrate(db) => {
            let url = db.url();
            let applied = maintenance::migrate(&url).await?;
            match args.output {
                Output::Json => output::json(&serde_json::json!({
                    "database": redact_url(&url),
                    "applied": applied,
                }))?,
                Output::Text => {
                    println!("{}: schema up to date", redact_url(&url));
                    for m in &applied {
                        println!("  {:>4}  {}", m.version, m.description);
                    }
                }
            }
            Ok(())
        }
        DbCommand::Copy {
            from,
            to,
            batch_rows,
        } => {
            let report = maintenance::copy(&from, &to, batch_rows).await?;
            match args.output {
                Output::Json => output::json(&report)?,
                Output::Text => {
                    println!(
                        "{:<14} {:>12} {:>12} {:>12}",
                        "table", "source", "target", "inserted"
                    );
                    for t in &report.tables {
                        println!(
                            "{:<14} {:>12} {:>12} {:>12}",
                            t.table, t.source_rows, t.target_rows, t.inserted
                        );
                    }
                    if report.verified {
                        println!(
                            "verified: every table has as many rows in the target as in the source"
                        );
                    }
                }
            }
            if !report.verified {
                let differ: Vec<&str> = report
                    .tables
                    .iter()
                    .filter(|t| t.source_rows != t.target_rows)
                    .map(|t| t.table.as_str())
                    .collect();
                bail!(
                    "row counts differ in {} (did the target already hold other data?)",
                    differ.join(", ")
                );
            }
            Ok(())
        }
        DbCommand::Backup { database, to } => {
            let report = maintenance::backup_sqlite(&database.url(), &to).await?;
            match args.output {
                Output::Json => output::json(&report)?,
                Output::Text => {
                    println!(
                        "backup written to {} ({} bytes)",
                        report.path.display(),
                        report.bytes
                    );
                    for (table, rows) in &report.tables {
                        println!("  {table:<14} {rows:>12}");
                    }
                }
            }
            Ok(())
        }
    }
}
