//! Group commit for SQLite, pipelined. Two OS threads own the write path:
//!
//! - the **writer** owns the only write connection (rusqlite: a statement is a direct call,
//!   not a round trip to another thread). It takes every job waiting (up to a cap), runs each
//!   inside its own SAVEPOINT within one `BEGIN IMMEDIATE` transaction, commits, hands the
//!   batch's answers to the syncer and goes straight on to the next batch;
//! - the **syncer** takes every committed batch waiting, makes them durable with one
//!   `fdatasync` of the WAL file, and only then answers their callers.
//!
//! The connection runs `synchronous=NORMAL`, so SQLite's own COMMIT does not wait for the disk;
//! SQLite documents `FULL` in WAL mode as exactly "NORMAL plus a sync of the WAL after each
//! commit", and that sync is what the syncer does — off the writer's thread, once for all
//! batches committed meanwhile. So a caller never waits for the fsync of a batch before its
//! own, and every answer still means "on disk". A crash before the sync loses only unanswered
//! work: WAL frames are checksummed in a chain, so recovery keeps a prefix of the commits.
//!
//! A third thread, the **checkpointer**, copies the WAL back into the database after new
//! commits, at most once per `CHECKPOINT_EVERY` (auto-checkpoint is off on the writer), so
//! checkpoint I/O — writes and an fsync of the database file — stalls neither the writer nor
//! the answers, and an idle server does no checkpoint work at all.

use std::fs::File;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::error::{ApiResult, AppError};

type Reply = Box<dyn FnOnce(Result<(), AppError>) + Send>;
type Work = Box<dyn FnOnce(&Connection) -> (bool, Reply) + Send>;

/// Most jobs in one transaction: bounds the latency a batch adds and the work lost to a
/// failed commit.
const MAX_BATCH: usize = 512;
const QUEUE: usize = 8_192;
/// The shortest gap between two PASSIVE checkpoints. At the measured peak of a few MB of WAL
/// per second this keeps the WAL to a few MB.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

enum Message {
    Job(Work),
    Close(oneshot::Sender<()>),
}

/// From the syncer to the checkpointer.
enum CheckpointSignal {
    /// New commits are durable in the WAL.
    Committed,
    /// Checkpoint once more, answer, and stop.
    Stop(oneshot::Sender<()>),
}

/// A committed batch on its way to the syncer.
struct Committed {
    replies: Vec<Reply>,
    outcome: Result<(), AppError>,
    /// Set on the last batch: answer it, then stop.
    closing: Option<oneshot::Sender<()>>,
}

pub struct Writer {
    queue: mpsc::Sender<Message>,
}

impl Writer {
    /// Starts the writer, syncer and checkpointer threads. `checkpointer` is a second
    /// connection to the same database, used for checkpoints only.
    pub fn start(conn: Connection, checkpointer: Connection, path: &Path) -> std::io::Result<Self> {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let (committed_tx, committed_rx) = std_mpsc::channel();
        // Room for one signal: a pending `Committed` already covers every later commit.
        let (signal_tx, signal_rx) = std_mpsc::sync_channel(1);
        let wal = wal_path(path);
        spawn("tessera-sqlite-ckpt", move || {
            checkpoint_loop(&checkpointer, &signal_rx)
        })?;
        spawn("tessera-sqlite-sync", move || {
            sync_loop(&wal, &committed_rx, &signal_tx)
        })?;
        spawn("tessera-sqlite-writer", move || {
            write_loop(&conn, jobs, &committed_tx)
        })?;
        Ok(Self { queue })
    }

    /// Runs `job` in the next batch; returns its result once the batch is durably committed.
    /// The job runs inside its own savepoint: when it returns an error, what it wrote is rolled
    /// back and the rest of the batch is unaffected.
    pub async fn run<T, F>(&self, job: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> ApiResult<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<ApiResult<T>>();
        let work: Work = Box::new(move |conn| {
            let result = job(conn);
            let ok = result.is_ok();
            let reply: Reply = Box::new(move |durable| {
                let _ = tx.send(durable.and(result));
            });
            (ok, reply)
        });
        if self.queue.send(Message::Job(work)).await.is_err() {
            return Err(closed());
        }
        // A dropped reply (the writer stopped, or the job panicked) is an error, not a hang.
        rx.await.unwrap_or_else(|_| Err(closed()))
    }

    /// Finishes queued work, makes it durable, checkpoints, and stops the threads.
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.queue.send(Message::Close(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// Detached: `close` is how the threads are stopped and waited for.
fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .map(drop)
}

fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

fn closed() -> AppError {
    AppError::new(
        tessera_core::ErrorCode::ServiceUnavailable,
        "Database is shutting down",
    )
}

fn write_loop(
    conn: &Connection,
    mut jobs: mpsc::Receiver<Message>,
    committed: &std_mpsc::Sender<Committed>,
) {
    let mut closing = None;
    while closing.is_none() {
        let mut batch = Vec::new();
        match jobs.blocking_recv() {
            Some(Message::Job(job)) => batch.push(job),
            Some(Message::Close(done)) => closing = Some(done),
            None => break,
        }
        while closing.is_none() && batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(Message::Job(job)) => batch.push(job),
                Ok(Message::Close(done)) => closing = Some(done),
                Err(_) => break,
            }
        }
        let (replies, outcome) = commit_batch(conn, batch);
        let last = closing.take();
        let is_last = last.is_some();
        if committed
            .send(Committed {
                replies,
                outcome,
                closing: last,
            })
            .is_err()
            || is_last
        {
            return;
        }
    }
}

fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)
        .and_then(|mut statement| statement.execute([]))
        .map(|_| ())
}

fn commit_batch(conn: &Connection, batch: Vec<Work>) -> (Vec<Reply>, Result<(), AppError>) {
    let mut replies = Vec::with_capacity(batch.len());
    if batch.is_empty() {
        return (replies, Ok(()));
    }
    let outcome = (|| {
        exec(conn, "BEGIN IMMEDIATE")?;
        for work in batch {
            exec(conn, "SAVEPOINT job")?;
            let ok = match catch_unwind(AssertUnwindSafe(|| work(conn))) {
                Ok((ok, reply)) => {
                    replies.push(reply);
                    ok
                }
                Err(_) => {
                    tracing::error!("a write job panicked; its work is rolled back");
                    false
                }
            };
            if !ok {
                exec(conn, "ROLLBACK TO job")?;
            }
            exec(conn, "RELEASE job")?;
        }
        exec(conn, "COMMIT")
    })();
    let outcome = outcome.map_err(|e| {
        if !conn.is_autocommit() {
            let _ = exec(conn, "ROLLBACK");
        }
        tracing::error!(error = %e, "SQLite batch rolled back; every job in it is answered with an error");
        // Busy or locked (another process holds the write lock) maps to 503, anything else 500.
        AppError::from(e)
    });
    (replies, outcome)
}

fn sync_loop(
    wal: &Path,
    committed: &std_mpsc::Receiver<Committed>,
    checkpointer: &std_mpsc::SyncSender<CheckpointSignal>,
) {
    while let Ok(first) = committed.recv() {
        let mut round = vec![first];
        round.extend(committed.try_iter());
        let synced = sync_wal(wal);
        if synced.is_err() {
            tracing::error!(wal = %wal.display(), "could not sync the SQLite WAL; answering the batch with an error");
        }
        let mut closing = None;
        for batch in round {
            let outcome = batch.outcome.and(synced.clone());
            for reply in batch.replies {
                reply(outcome.clone());
            }
            if batch.closing.is_some() {
                closing = batch.closing;
            }
        }
        if let Some(done) = closing {
            // The checkpointer answers `done` after its last checkpoint.
            if let Err(std_mpsc::SendError(CheckpointSignal::Stop(done))) =
                checkpointer.send(CheckpointSignal::Stop(done))
            {
                let _ = done.send(());
            }
            return;
        }
        // Full means a signal is already pending; disconnected cannot be helped here.
        let _ = checkpointer.try_send(CheckpointSignal::Committed);
    }
}

/// `fdatasync` of the WAL: durability of every transaction committed before this call.
fn sync_wal(wal: &Path) -> Result<(), AppError> {
    // Opened per round (a few µs against a ~1 ms sync): never a stale descriptor when the
    // WAL is removed and re-created by another process.
    File::open(wal)
        .and_then(|file| file.sync_data())
        .map_err(|e| AppError::internal(format!("sync of the write-ahead log failed: {e}")))
}

fn checkpoint_loop(checkpointer: &Connection, signals: &std_mpsc::Receiver<CheckpointSignal>) {
    let checkpoint = || {
        if let Err(e) = checkpointer.execute_batch("PRAGMA wal_checkpoint(PASSIVE)") {
            tracing::warn!(error = %e, "WAL checkpoint failed; retried after the next commit");
        }
    };
    while let Ok(signal) = signals.recv() {
        checkpoint();
        match signal {
            CheckpointSignal::Committed => std::thread::sleep(CHECKPOINT_EVERY),
            CheckpointSignal::Stop(done) => {
                let _ = done.send(());
                return;
            }
        }
    }
}
