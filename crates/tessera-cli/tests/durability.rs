//! Data survives, tested on the real `tessera` binary: a server killed with SIGKILL under a
//! stream of activations keeps every activation it answered 200, and the `db` commands
//! (migrate, backup, copy) work from the command line.
//!
//! SQLite by default; with `TESSERA_TEST_DATABASE=postgres` the server runs on a fresh
//! PostgreSQL database (see `tessera_server::test_support`). Everything stays on loopback and
//! every loop is bounded in count and time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tessera_server::test_support::{Backend, PgTestDatabase};

const BIN: &str = env!("CARGO_BIN_EXE_tessera");
const ADMIN_TOKEN: &str = "durability-admin-token-0123456789";

/// A `tessera serve` process; killed (SIGKILL) when dropped.
struct Served {
    child: Child,
    base_url: String,
}

impl Served {
    /// Starts the server on 127.0.0.1 with a free port and waits until it listens.
    fn start(data_dir: &Path, database_url: Option<&str>) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("TESSERA_DATA_DIR", data_dir)
            .env("ADMIN_TOKEN", ADMIN_TOKEN)
            .env("LEASE_SWEEP_SECS", "0")
            .env("RATE_LIMIT_BURST", "0") // a load from one address, on purpose
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info,sqlx=warn")
            .env_remove("JWT_PRIVATE_KEY_PATH")
            .env_remove("JWT_PUBLIC_KEY_PATH")
            .env_remove("CATALOG_PATH")
            .env_remove("SERVER_NOTICE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        match database_url {
            Some(url) => cmd.env("DATABASE_URL", url),
            None => cmd.env_remove("DATABASE_URL"),
        };
        let mut child = cmd.spawn().expect("start tessera serve");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        // Reads the log until the process ends (so the pipe never fills); reports the address.
        std::thread::spawn(move || {
            let mut recent: Vec<String> = Vec::new();
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = listening_addr(&line) {
                    let _ = tx.send(Ok(addr));
                }
                recent.push(line);
                if recent.len() > 20 {
                    recent.remove(0);
                }
            }
            let _ = tx.send(Err(recent.join("\n")));
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(addr)) => Self {
                child,
                base_url: format!("http://{addr}"),
            },
            Ok(Err(log)) => panic!("tessera serve exited before listening:\n{log}"),
            Err(_) => {
                let _ = child.kill();
                panic!("tessera serve did not listen within 60 s")
            }
        }
    }

    /// SIGTERM, then waits (at most 20 s) for the process to exit by itself.
    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not stop within 20 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no shutdown handler runs, nothing is flushed by the process.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `addr` of the "tessera server listening" line (JSON log format).
fn listening_addr(line: &str) -> Option<String> {
    let v: Value = serde_json::from_str(line).ok()?;
    let fields = v.get("fields")?;
    let message = fields.get("message")?.as_str()?;
    if !message.contains("listening") {
        return None;
    }
    fields.get("addr")?.as_str().map(String::from)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A fresh PostgreSQL database when the tests run on PostgreSQL.
async fn database() -> Option<PgTestDatabase> {
    match Backend::from_env() {
        Backend::Postgres => Some(PgTestDatabase::create().await.unwrap()),
        Backend::Sqlite => None,
    }
}

/// Every machine id with an activation, read through the admin API a page at a time.
async fn activated_machines(http: &reqwest::Client, base_url: &str) -> HashSet<String> {
    let mut machines = HashSet::new();
    for page in 0..100 {
        let rows: Vec<Value> = http
            .get(format!(
                "{base_url}/admin/activations?limit=1000&offset={}",
                page * 1000
            ))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap();
        let n = rows.len();
        machines.extend(
            rows.into_iter()
                .map(|r| r["machine_id"].as_str().unwrap().to_string()),
        );
        if n < 1000 {
            return machines;
        }
    }
    panic!("more than 100 pages of activations");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_activation_answered_200_survives_sigkill() {
    const WRITERS: usize = 4;
    const MAX_PER_WRITER: usize = 5_000;
    let data = tempfile::tempdir().unwrap();
    let pg = database().await;
    let database_url = pg.as_ref().map(|d| d.url.as_str());
    let http = client();

    let server = Served::start(data.path(), database_url);
    let resp = http
        .post(format!("{}/admin/keys", server.base_url))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"product": "peregrine", "tier": "paid", "seats": 100_000}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let key: Value = resp.json().await.unwrap();
    let key = key["key_display"].as_str().unwrap().to_string();

    // Writers activate new machines until the server disappears under them.
    let deadline = Instant::now() + Duration::from_secs(30);
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (http, url, key) = (http.clone(), server.base_url.clone(), key.clone());
            tokio::spawn(async move {
                let mut answered_ok = Vec::new();
                let mut other_statuses = Vec::new();
                for i in 0..MAX_PER_WRITER {
                    if Instant::now() > deadline {
                        break;
                    }
                    let machine = format!("w{w}-{i:05}");
                    let sent = http
                        .post(format!("{url}/v1/activate"))
                        .json(&json!({"key": key, "machine_id": machine, "product": "peregrine"}))
                        .send()
                        .await;
                    match sent {
                        Ok(resp) if resp.status() == 200 => {
                            // The 200 counts only once its body arrived whole.
                            if resp.json::<Value>().await.is_ok() {
                                answered_ok.push(machine);
                            } else {
                                break;
                            }
                        }
                        Ok(resp) => other_statuses.push(resp.status().as_u16()),
                        Err(_) => break, // the server is gone
                    }
                }
                (answered_ok, other_statuses)
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_secs(1)).await;
    server.kill();

    let mut answered_ok = Vec::new();
    for writer in writers {
        let (ok, other) = writer.await.unwrap();
        assert!(
            other.is_empty(),
            "unexpected statuses before the kill: {other:?}"
        );
        answered_ok.extend(ok);
    }
    assert!(
        answered_ok.len() >= 20,
        "too few activations before the kill to test anything: {}",
        answered_ok.len()
    );

    let server = Served::start(data.path(), database_url);
    let stored = activated_machines(&http, &server.base_url).await;
    let lost: Vec<&String> = answered_ok
        .iter()
        .filter(|m| !stored.contains(*m))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} activations answered 200 were lost: {:?}",
        lost.len(),
        answered_ok.len(),
        &lost[..lost.len().min(10)]
    );
    // The key itself survived too, and the server works on the recovered data.
    let resp = http
        .post(format!("{}/v1/activate", server.base_url))
        .json(&json!({"key": key, "machine_id": "after-restart", "product": "peregrine"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    eprintln!(
        "durability: {} activations answered 200 before SIGKILL, all present after restart ({} stored)",
        answered_ok.len(),
        stored.len()
    );
    server.kill();
    if let Some(pg) = pg {
        pg.drop_database().await.unwrap();
    }
}

/// Runs `tessera ARGS…` to completion: (exit success, stdout, stderr).
fn tessera(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_commands_migrate_back_up_and_copy_from_the_command_line() {
    let data = tempfile::tempdir().unwrap();
    let db_path = data.path().join("tessera.db");
    let sqlite_url = format!("sqlite://{}", db_path.display());

    // migrate: creates and migrates the default database of a data dir.
    let (ok, stdout, stderr) = tessera(&[
        "db",
        "migrate",
        "--data-dir",
        data.path().to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert!(ok, "{stderr}");
    let migrated: Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        migrated["applied"].as_array().unwrap().len() >= 2,
        "{migrated}"
    );
    assert!(db_path.exists());

    // Some data, through a server on that file.
    let server = Served::start(data.path(), None);
    let http = client();
    let resp = http
        .post(format!("{}/admin/keys", server.base_url))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"product": "peregrine", "tier": "paid", "seats": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // backup: of the live database, once; never over an existing file.
    let backup = data.path().join("backup.db");
    let backup_s = backup.to_str().unwrap();
    let (ok, stdout, stderr) = tessera(&[
        "db",
        "backup",
        "--database-url",
        &sqlite_url,
        "--to",
        backup_s,
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("backup written to"), "{stdout}");
    let (ok, _, stderr) = tessera(&[
        "db",
        "backup",
        "--database-url",
        &sqlite_url,
        "--to",
        backup_s,
    ]);
    assert!(!ok);
    assert!(stderr.contains("already exists"), "{stderr}");

    // copy: only when PostgreSQL is the test backend.
    if Backend::from_env() == Backend::Postgres {
        let pg = PgTestDatabase::create().await.unwrap();
        for run in 0..2 {
            let (ok, stdout, stderr) = tessera(&[
                "db",
                "copy",
                "--from",
                &sqlite_url,
                "--to",
                &pg.url,
                "--output",
                "json",
            ]);
            assert!(ok, "run {run}: {stderr}");
            let report: Value = serde_json::from_str(&stdout).unwrap();
            assert_eq!(report["verified"], json!(true), "{report}");
            let keys = report["tables"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["table"] == "license_keys")
                .unwrap()
                .clone();
            assert_eq!(keys["source_rows"], json!(1));
            assert_eq!(keys["target_rows"], json!(1));
            assert_eq!(keys["inserted"], json!(if run == 0 { 1 } else { 0 }));
        }
        pg.drop_database().await.unwrap();
    } else {
        eprintln!("db copy from the command line: skipped: needs TESSERA_TEST_DATABASE=postgres");
    }
    server.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_requests_and_exits_cleanly() {
    let data = tempfile::tempdir().unwrap();
    let pg = database().await;
    let database_url = pg.as_ref().map(|d| d.url.as_str());
    let http = client();
    let server = Served::start(data.path(), database_url);
    let key: Value = http
        .post(format!("{}/admin/keys", server.base_url))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"product": "peregrine", "tier": "paid", "seats": 100_000}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = key["key_display"].as_str().unwrap().to_string();

    let url = server.base_url.clone();
    let deadline = Instant::now() + Duration::from_secs(20);
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (http, url, key) = (http.clone(), url.clone(), key.clone());
            tokio::spawn(async move {
                let (mut ok, mut bad) = (Vec::new(), Vec::new());
                for i in 0..2_000 {
                    if Instant::now() > deadline {
                        break;
                    }
                    let machine = format!("t{w}-{i:04}");
                    let body = json!({"key": key, "machine_id": machine, "product": "peregrine"});
                    match http
                        .post(format!("{url}/v1/activate"))
                        .json(&body)
                        .send()
                        .await
                    {
                        Ok(resp) if resp.status() == 200 => ok.push(machine),
                        Ok(resp) => bad.push(resp.status().as_u16()),
                        // Refused once the listener is closed: the stream is over.
                        Err(_) => break,
                    }
                }
                (ok, bad)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let status = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    assert!(
        status.success(),
        "tessera serve exited with {status} after SIGTERM"
    );

    let mut answered = Vec::new();
    for w in writers {
        let (ok, bad) = w.await.unwrap();
        assert!(
            bad.is_empty(),
            "in-flight requests failed during shutdown: {bad:?}"
        );
        answered.extend(ok);
    }
    assert!(
        !answered.is_empty(),
        "no activation was answered before SIGTERM"
    );

    let server = Served::start(data.path(), database_url);
    let present = activated_machines(&http, &server.base_url).await;
    let lost: Vec<_> = answered.iter().filter(|m| !present.contains(*m)).collect();
    assert!(
        lost.is_empty(),
        "{} answered activations lost: {lost:?}",
        lost.len()
    );
}
