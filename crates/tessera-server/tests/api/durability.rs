//! Data that must survive moving: `db copy` from a live SQLite server into PostgreSQL (every
//! table, verified, idempotent, and the copy serves the same licenses), and `db backup` of a
//! live SQLite database. (Surviving SIGKILL is tested on the real binary, in tessera-cli.)

use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera_server::store::maintenance::{self, CopyReport, DEFAULT_BATCH_ROWS};
use tessera_server::test_support::{Backend, PgTestDatabase, TestOptions};

use crate::helpers::{TestApp, spawn_app_with};

fn on_sqlite() -> TestOptions {
    TestOptions {
        backend: Backend::Sqlite,
        ..TestOptions::default()
    }
}

/// Puts rows in every table: keys (one revoked), seats (one released), usage, a reviewed flag,
/// an API key with instances, and the audit rows of all that. Returns a license JWT for `m1`.
async fn fill(app: &TestApp) -> String {
    let key = app.active_key().await;
    let jwt = app.activate_jwt(&key, "m1").await;
    let jwt2 = app.activate_jwt(&key, "m2").await;
    let resp = app
        .post("/v1/deactivate", json!({"jwt": jwt2, "machine_id": "m2"}))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let other = app
        .create_key(
            json!({"product": "peregrine", "tier": "trial", "seats": 1, "trial": true,
            "valid_until": "2099-12-31", "notes": "n", "lease_ttl_secs": 3600}),
        )
        .await;
    let resp = app
        .http
        .delete(app.url(&format!("/admin/keys/{}", other.id)))
        .bearer_auth(&app.server.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    for i in 0..25 {
        let resp = app
            .post_bearer(
                "/v1/usage",
                &jwt,
                json!({"event_type": "export", "product": "peregrine", "metadata": {"n": i}}),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
    }
    let resp = app
        .post_bearer(
            "/v1/flag",
            &jwt,
            json!({"flag_type": "clock_skew", "product": "peregrine", "details": {"s": 90}}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let flags: Vec<Value> = app.admin_get("/admin/flags").await.json().await.unwrap();
    let resp = app
        .http
        .patch(app.url(&format!(
            "/admin/flags/{}",
            flags[0]["id"].as_str().unwrap()
        )))
        .bearer_auth(&app.server.admin_token)
        .json(&json!({"status": "reviewed", "action_taken": "none"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let created: Value = app
        .admin_post(
            "/admin/api-keys",
            json!({"product": "p", "tier": "pro", "name": "Acme", "org_name": "Acme Inc",
                "trial": true}),
        )
        .await
        .json()
        .await
        .unwrap();
    let api_key = created["api_key"].as_str().unwrap();
    for instance in ["i1", "i1", "i2"] {
        let resp = app
            .http
            .post(app.url("/api/v1/licenses/token"))
            .bearer_auth(api_key)
            .json(&json!({"instance_id": instance}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
    jwt
}

fn assert_verified(report: &CopyReport) {
    assert!(report.verified, "{report:?}");
    assert_eq!(
        report
            .tables
            .iter()
            .map(|t| t.table.as_str())
            .collect::<Vec<_>>(),
        maintenance::table_names()
    );
    for t in &report.tables {
        assert_eq!(t.source_rows, t.target_rows, "{t:?}");
        assert!(t.source_rows > 0, "every table has rows to copy: {t:?}");
    }
}

async fn admin_json(app: &TestApp, path: &str) -> Value {
    let resp = app.admin_get(path).await;
    assert_eq!(resp.status(), StatusCode::OK, "{path}");
    resp.json().await.unwrap()
}

#[tokio::test]
async fn db_copy_moves_a_live_sqlite_server_to_postgres_and_is_idempotent() {
    if Backend::from_env() != Backend::Postgres {
        eprintln!(
            "db_copy_moves_a_live_sqlite_server_to_postgres: skipped: needs TESSERA_TEST_DATABASE=postgres"
        );
        return;
    }
    let source = spawn_app_with(on_sqlite()).await;
    let jwt = fill(&source).await;
    let target = PgTestDatabase::create().await.unwrap();

    // Copied while the source server is running, in small batches to cross batch boundaries.
    let first = maintenance::copy(&source.server.database_url, &target.url, 7)
        .await
        .unwrap();
    assert_verified(&first);
    for t in &first.tables {
        assert_eq!(t.inserted, t.source_rows as u64, "{t:?}");
    }
    let second = maintenance::copy(&source.server.database_url, &target.url, DEFAULT_BATCH_ROWS)
        .await
        .unwrap();
    assert_verified(&second);
    assert!(second.tables.iter().all(|t| t.inserted == 0), "{second:?}");
    assert_eq!(
        maintenance::row_counts(&target.url).await.unwrap(),
        maintenance::row_counts(&source.server.database_url)
            .await
            .unwrap()
    );

    // A server on the copy, with the same signing key, answers exactly like the original.
    let copied = spawn_app_with(TestOptions {
        shared: Some(tessera_server::test_support::SharedDatabase {
            database_url: target.url.clone(),
            private_pem: source.server.private_pem.clone(),
        }),
        ..TestOptions::default()
    })
    .await;
    for path in [
        "/admin/keys",
        "/admin/activations",
        "/admin/usage?limit=1000",
        "/admin/flags?status=reviewed",
        "/admin/audit?limit=1000",
        "/admin/api-keys",
        "/admin/instances",
    ] {
        assert_eq!(
            admin_json(&source, path).await,
            admin_json(&copied, path).await,
            "{path}"
        );
    }
    // A token issued before the copy refreshes on the copy.
    let resp = copied
        .post("/v1/refresh", json!({"jwt": jwt, "machine_id": "m1"}))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let fresh: Value = resp.json().await.unwrap();
    assert!(fresh["jwt"].as_str().is_some());

    // Rows the copy already holds are left alone by a third run; new source rows arrive.
    let key = source.active_key().await;
    let third = maintenance::copy(&source.server.database_url, &target.url, DEFAULT_BATCH_ROWS)
        .await
        .unwrap();
    let keys = third
        .tables
        .iter()
        .find(|t| t.table == "license_keys")
        .unwrap();
    assert_eq!(keys.inserted, 1);
    // The copied server has its own writes now (the refresh's audit row): verification says so.
    assert!(!third.verified);
    let audit = third
        .tables
        .iter()
        .find(|t| t.table == "audit_log")
        .unwrap();
    assert_eq!(audit.target_rows, audit.source_rows + 1);
    assert!(copied.activate(&key, "m9").await.status().is_success());

    copied.server.stop().await.unwrap();
    target.drop_database().await.unwrap();
}

#[tokio::test]
async fn db_copy_refuses_anything_but_sqlite_to_postgres() {
    let err = maintenance::copy(
        "postgres://u:secret@h/db",
        "postgres://u@h/x",
        DEFAULT_BATCH_ROWS,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("--from"), "{err}");
    assert!(!err.contains("secret"), "no password in errors: {err}");
    let err = maintenance::copy("sqlite://x.db", "sqlite://y.db", DEFAULT_BATCH_ROWS)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("--to"), "{err}");
}

#[tokio::test]
async fn db_backup_copies_a_live_sqlite_database_and_never_overwrites() {
    let app = spawn_app_with(on_sqlite()).await;
    fill(&app).await;
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("backup.db");

    let report = maintenance::backup_sqlite(&app.server.database_url, &path)
        .await
        .unwrap();
    assert_eq!(report.path, path);
    assert!(report.bytes > 0);
    let live = maintenance::row_counts(&app.server.database_url)
        .await
        .unwrap();
    assert_eq!(report.tables, live);
    assert!(report.tables.iter().all(|(_, n)| *n > 0), "{report:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // The backup is a working database: a server started on it has the same keys.
    let restored = spawn_app_with(TestOptions {
        shared: Some(tessera_server::test_support::SharedDatabase {
            database_url: format!("sqlite://{}", path.display()),
            private_pem: app.server.private_pem.clone(),
        }),
        ..TestOptions::default()
    })
    .await;
    assert_eq!(
        admin_json(&app, "/admin/keys").await,
        admin_json(&restored, "/admin/keys").await
    );
    restored.server.stop().await.unwrap();

    // An existing file is never overwritten.
    let before = std::fs::read(&path).unwrap();
    let err = maintenance::backup_sqlite(&app.server.database_url, &path)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    // Nor is a PostgreSQL URL accepted.
    assert!(
        maintenance::backup_sqlite("postgres://h/db", &out.path().join("x.db"))
            .await
            .is_err()
    );
}
