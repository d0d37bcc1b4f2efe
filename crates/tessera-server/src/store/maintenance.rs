//! What `tessera db …` does, as library functions (the CLI only parses flags and prints):
//! run migrations explicitly, copy a SQLite database into PostgreSQL, back up a live SQLite file.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteRow};
use sqlx::{ConnectOptions, Connection, Postgres, QueryBuilder, Row, Sqlite, Transaction};

use super::postgres::PostgresStore;
use super::sqlite::SqliteStore;
use super::{Store, is_postgres_url, redact_url};

/// A column's type, the same on both sides (TEXT, INTEGER/BIGINT, INTEGER/BOOLEAN).
#[derive(Debug, Clone, Copy)]
enum Kind {
    Text,
    Int,
    Bool,
}

struct Table {
    name: &'static str,
    /// The first column is the primary key `id` (TEXT): batches are keyed on it.
    columns: &'static [(&'static str, Kind)],
}

use Kind::{Bool, Int, Text};

/// Every table, parents before children (foreign keys hold at every step).
const TABLES: &[Table] = &[
    Table {
        name: "license_keys",
        columns: &[
            ("id", Text),
            ("key_display", Text),
            ("product", Text),
            ("tier", Text),
            ("seats", Int),
            ("valid_until", Text),
            ("revoked", Bool),
            ("customer_email", Text),
            ("source", Text),
            ("trial", Bool),
            ("notes", Text),
            ("created_at", Text),
            ("lease_ttl_secs", Int),
        ],
    },
    Table {
        name: "activations",
        columns: &[
            ("id", Text),
            ("key_id", Text),
            ("machine_id", Text),
            ("app_version", Text),
            ("platform", Text),
            ("activated_at", Text),
            ("last_refresh", Text),
            ("deactivated_at", Text),
        ],
    },
    Table {
        name: "usage_events",
        columns: &[
            ("id", Text),
            ("key_id", Text),
            ("machine_id", Text),
            ("product", Text),
            ("event_type", Text),
            ("metadata", Text),
            ("created_at", Text),
        ],
    },
    Table {
        name: "flags",
        columns: &[
            ("id", Text),
            ("key_id", Text),
            ("machine_id", Text),
            ("product", Text),
            ("flag_type", Text),
            ("details", Text),
            ("status", Text),
            ("created_at", Text),
            ("reviewed_at", Text),
            ("action_taken", Text),
        ],
    },
    Table {
        name: "audit_log",
        columns: &[
            ("id", Text),
            ("entity_type", Text),
            ("entity_id", Text),
            ("action", Text),
            ("actor", Text),
            ("details", Text),
            ("created_at", Text),
        ],
    },
    Table {
        name: "api_keys",
        columns: &[
            ("id", Text),
            ("key_hash", Text),
            ("key_prefix", Text),
            ("product", Text),
            ("tier", Text),
            ("name", Text),
            ("org_name", Text),
            ("trial", Bool),
            ("expires_at", Text),
            ("revoked", Bool),
            ("created_at", Text),
            ("updated_at", Text),
        ],
    },
    Table {
        name: "instances",
        columns: &[
            ("id", Text),
            ("api_key_id", Text),
            ("instance_id", Text),
            ("version", Text),
            ("first_seen", Text),
            ("last_seen", Text),
            ("fetch_count", Int),
        ],
    },
];

/// The tables `db copy` moves, in the order it moves them.
pub fn table_names() -> Vec<&'static str> {
    TABLES.iter().map(|t| t.name).collect()
}

#[derive(Debug, Clone)]
enum Value {
    Text(Option<String>),
    Int(Option<i64>),
    Bool(Option<bool>),
}

fn read_value(row: &SqliteRow, i: usize, kind: Kind) -> Result<Value, sqlx::Error> {
    Ok(match kind {
        Text => Value::Text(row.try_get(i)?),
        Int => Value::Int(row.try_get(i)?),
        Bool => Value::Bool(row.try_get(i)?),
    })
}

/// A migration the database has applied.
#[derive(Debug, Clone, Serialize)]
pub struct AppliedMigration {
    pub version: i64,
    pub description: String,
}

/// `tessera db migrate`: opens the database (which runs the backend's embedded migrations, as
/// `serve` does at start) and lists what is applied.
pub async fn migrate(database_url: &str) -> anyhow::Result<Vec<AppliedMigration>> {
    const APPLIED: &str =
        "SELECT version, description FROM _sqlx_migrations WHERE success ORDER BY version";
    let rows: Vec<(i64, String)> = if is_postgres_url(database_url) {
        let store = PostgresStore::connect(database_url).await?;
        let rows = sqlx::query_as(APPLIED).fetch_all(store.pool()).await;
        store.close().await;
        rows?
    } else if database_url.starts_with("sqlite:") {
        let store = SqliteStore::connect(database_url).await?;
        let rows = sqlx::query_as(APPLIED).fetch_all(store.pool()).await;
        store.close().await;
        rows?
    } else {
        bail!(
            "unsupported database URL `{}`: use sqlite://PATH or postgres://USER@HOST/DB",
            redact_url(database_url)
        );
    };
    Ok(rows
        .into_iter()
        .map(|(version, description)| AppliedMigration {
            version,
            description,
        })
        .collect())
}

/// One table of a copy: rows in the source, rows in the target afterwards, rows this run added.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TableCopy {
    pub table: String,
    pub source_rows: i64,
    pub target_rows: i64,
    pub inserted: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CopyReport {
    pub tables: Vec<TableCopy>,
    /// Every table has as many rows in the target as in the source.
    pub verified: bool,
}

pub const DEFAULT_BATCH_ROWS: usize = 500;

/// `tessera db copy`: every row of a SQLite database into a PostgreSQL one (migrated first).
///
/// The source is read in one transaction, so a live server may keep writing: the copy is the
/// database as it was when the copy started. The target is written in one transaction (all or
/// nothing), table by table in foreign-key order, `batch_rows` rows per INSERT. Rows whose `id`
/// is already there are left alone, so running the copy again adds only what is new. Afterwards
/// the row count of every table is compared; `verified` is false when any differs (for example,
/// a target that already held other data).
pub async fn copy(from: &str, to: &str, batch_rows: usize) -> anyhow::Result<CopyReport> {
    if !from.starts_with("sqlite:") {
        bail!(
            "--from must be a SQLite URL (sqlite://PATH), not `{}`",
            redact_url(from)
        );
    }
    if !is_postgres_url(to) {
        bail!(
            "--to must be a PostgreSQL URL (postgres://USER@HOST/DB), not `{}`",
            redact_url(to)
        );
    }
    let batch_rows = batch_rows.clamp(1, 2_000);
    let source = SqliteStore::connect(from)
        .await
        .with_context(|| format!("opening the source {}", redact_url(from)))?;
    let target = PostgresStore::connect(to)
        .await
        .with_context(|| format!("opening the target {}", redact_url(to)))?;

    let result = copy_all(&source, &target, batch_rows).await;
    source.close().await;
    target.close().await;
    result
}

async fn copy_all(
    source: &SqliteStore,
    target: &PostgresStore,
    batch_rows: usize,
) -> anyhow::Result<CopyReport> {
    // One read transaction on the source: a consistent snapshot while the server writes on.
    let mut src = source.pool().begin().await?;
    let mut dst = target.pool().begin().await?;
    let mut copied = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        let inserted = copy_table(&mut src, &mut dst, table, batch_rows)
            .await
            .with_context(|| format!("copying {}", table.name))?;
        let source_rows: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}", table.name))
            .fetch_one(&mut *src)
            .await?;
        copied.push((table.name, source_rows, inserted));
        tracing::info!(table = table.name, source_rows, inserted, "copied table");
    }
    dst.commit().await?;
    src.rollback().await?;

    let mut tables = Vec::with_capacity(copied.len());
    for (name, source_rows, inserted) in copied {
        let target_rows: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {name}"))
            .fetch_one(target.pool())
            .await?;
        tables.push(TableCopy {
            table: name.to_string(),
            source_rows,
            target_rows,
            inserted,
        });
    }
    let verified = tables.iter().all(|t| t.source_rows == t.target_rows);
    Ok(CopyReport { tables, verified })
}

async fn copy_table(
    src: &mut Transaction<'static, Sqlite>,
    dst: &mut Transaction<'static, Postgres>,
    table: &Table,
    batch_rows: usize,
) -> anyhow::Result<u64> {
    let columns = table
        .columns
        .iter()
        .map(|(c, _)| *c)
        .collect::<Vec<_>>()
        .join(", ");
    let select = format!(
        "SELECT {columns} FROM {} WHERE id > ? ORDER BY id LIMIT ?",
        table.name
    );
    let mut after = String::new();
    let mut inserted = 0;
    loop {
        let rows: Vec<SqliteRow> = sqlx::query(&select)
            .bind(&after)
            .bind(i64::try_from(batch_rows)?)
            .fetch_all(&mut **src)
            .await?;
        let Some(last) = rows.last() else {
            break;
        };
        after = last.try_get::<String, _>(0)?;
        let values = rows
            .iter()
            .map(|row| {
                table
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(i, (_, kind))| read_value(row, i, *kind))
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut insert =
            QueryBuilder::<Postgres>::new(format!("INSERT INTO {} ({columns}) ", table.name));
        insert.push_values(values, |mut b, row| {
            for value in row {
                match value {
                    Value::Text(v) => b.push_bind(v),
                    Value::Int(v) => b.push_bind(v),
                    Value::Bool(v) => b.push_bind(v),
                };
            }
        });
        insert.push(" ON CONFLICT (id) DO NOTHING");
        inserted += insert.build().execute(&mut **dst).await?.rows_affected();
        if rows.len() < batch_rows {
            break;
        }
    }
    Ok(inserted)
}

/// Rows per table of a database, for reports and checks.
pub async fn row_counts(database_url: &str) -> anyhow::Result<Vec<(String, i64)>> {
    let mut counts = Vec::with_capacity(TABLES.len());
    if is_postgres_url(database_url) {
        let mut conn = sqlx::postgres::PgConnectOptions::from_str(database_url)?
            .connect()
            .await?;
        for t in TABLES {
            let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}", t.name))
                .fetch_one(&mut conn)
                .await?;
            counts.push((t.name.to_string(), n));
        }
        conn.close().await?;
    } else {
        let mut conn = SqliteConnectOptions::from_str(database_url)?
            .read_only(true)
            .connect()
            .await?;
        for t in TABLES {
            let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}", t.name))
                .fetch_one(&mut conn)
                .await?;
            counts.push((t.name.to_string(), n));
        }
        conn.close().await?;
    }
    Ok(counts)
}

#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    pub path: PathBuf,
    pub bytes: u64,
    pub tables: Vec<(String, i64)>,
}

/// `tessera db backup`: a consistent copy of a (possibly live) SQLite database, by
/// `VACUUM INTO`. Refuses to overwrite: the file is created new, readable by its owner only
/// (it holds customer e-mails and API-key hashes), then checked with `PRAGMA integrity_check`.
pub async fn backup_sqlite(database_url: &str, to: &Path) -> anyhow::Result<BackupReport> {
    if !database_url.starts_with("sqlite:") {
        bail!(
            "db backup works on SQLite (sqlite://PATH), not `{}`: for PostgreSQL use pg_dump",
            redact_url(database_url)
        );
    }
    let options = SqliteConnectOptions::from_str(database_url)?
        .create_if_missing(false)
        .busy_timeout(Duration::from_secs(10));
    if !options.get_filename().exists() {
        bail!("no database at {}", options.get_filename().display());
    }
    create_private_empty(to)?;
    let result = async {
        let mut conn = options.connect().await?;
        sqlx::query("VACUUM INTO ?")
            .bind(to.to_string_lossy().as_ref())
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        let backup_url = format!("sqlite://{}", to.display());
        let mut check = SqliteConnectOptions::from_str(&backup_url)?
            .read_only(true)
            .connect()
            .await?;
        let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&mut check)
            .await?;
        check.close().await?;
        if integrity != "ok" {
            bail!("the backup failed its integrity check: {integrity}");
        }
        let tables = row_counts(&backup_url).await?;
        anyhow::Ok(tables)
    }
    .await;
    match result {
        Ok(tables) => Ok(BackupReport {
            path: to.to_path_buf(),
            bytes: std::fs::metadata(to)?.len(),
            tables,
        }),
        Err(e) => {
            let _ = std::fs::remove_file(to);
            Err(e.context(format!("backing up to {}", to.display())))
        }
    }
}

/// Creates `path` empty with mode 0600, failing if anything is there already.
fn create_private_empty(path: &Path) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            bail!(
                "{} already exists: refusing to overwrite it",
                path.display()
            )
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("creating {}", path.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_come_parents_first_and_are_keyed_on_id() {
        let names = table_names();
        let pos = |n: &str| names.iter().position(|t| *t == n);
        assert!(pos("license_keys") < pos("activations"));
        assert!(pos("license_keys") < pos("usage_events"));
        assert!(pos("license_keys") < pos("flags"));
        assert!(pos("api_keys") < pos("instances"));
        assert_eq!(names.len(), 7);
        assert!(TABLES.iter().all(|t| matches!(t.columns[0], ("id", Text))));
    }
}
