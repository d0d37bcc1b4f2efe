//! Group commit for SQLite, pipelined. Two OS threads own the write path, a third checkpoints:
//!
//! - the **writer** owns the only write connection (rusqlite: a statement is a direct call,
//!   not a round trip to another thread). It runs each job inside its own SAVEPOINT within one
//!   `BEGIN IMMEDIATE` transaction, and keeps adding jobs to that transaction while the syncer
//!   is busy; once the syncer is free (or the batch is full) it commits and hands the batch's
//!   answers over. A job that arrives during a sync would wait for that sync anyway, so it
//!   loses nothing by joining the open batch, and one commit per sync writes each hot page
//!   (the tail of a table and of its indexes) to the WAL once instead of once per small commit;
//! - the **syncer** takes every committed batch waiting, makes them durable with one
//!   `fdatasync` of the WAL file, and only then answers their callers.
//!
//! The connection runs `synchronous=NORMAL`, so SQLite's own COMMIT does not wait for the disk;
//! SQLite documents `FULL` in WAL mode as exactly "NORMAL plus a sync of the WAL after each
//! commit", and that sync is what the syncer does — off the writer's thread, once for all
//! batches committed meanwhile. So no job waits for an fsync per job before it: at most for the
//! one sync in progress when it arrived, then its own batch's, and every answer still means
//! "on disk". A crash before the sync loses only unanswered work: WAL frames are checksummed
//! in a chain, so recovery keeps a prefix of the commits.
//!
//! A third thread, the **checkpointer**, copies the WAL back into the database after new
//! commits, at most once per `CHECKPOINT_EVERY` (auto-checkpoint is off on the writer), so
//! checkpoint I/O — writes and an fsync of the database file — stalls neither the writer nor
//! the answers, and an idle server does no checkpoint work at all. Under sustained writes that
//! alone never lets the WAL start over (SQLite rewinds it only when a write transaction begins
//! with every frame copied back, and new frames keep arriving while the checkpointer copies),
//! so the WAL file would grow without bound. After each of the checkpointer's passes the writer
//! therefore runs one PASSIVE checkpoint itself between two batches: only the few frames
//! committed since that pass are left to copy, and its next transaction rewinds the WAL, which
//! then overwrites blocks already allocated instead of extending the file.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::sqlite_sync::{Syncer, checkpoint_loop};
use crate::error::{ApiResult, AppError};

pub(super) type Reply = Box<dyn FnOnce(Result<(), AppError>) + Send>;
type Work = Box<dyn FnOnce(&Connection) -> (bool, Reply) + Send>;

/// Most jobs in one transaction: bounds the latency a batch adds and the work lost to a
/// failed commit.
const MAX_BATCH: usize = 512;
const QUEUE: usize = 8_192;
pub(super) enum Message {
    Job(Work),
    Close(oneshot::Sender<()>),
    /// From the syncer: it has answered every batch and waits for the next one.
    SyncerIdle,
}

/// What the writer's two helper threads tell it without a message of their own.
pub(super) struct Flags {
    /// The syncer waits for a batch: commit the open one now.
    pub(super) syncer_idle: AtomicBool,
    /// The checkpointer finished a pass: the writer finishes the job (see the module docs).
    pub(super) checkpoint_passed: AtomicBool,
}

/// A committed batch on its way to the syncer.
pub(super) struct Committed {
    pub(super) replies: Vec<Reply>,
    pub(super) outcome: Result<(), AppError>,
    /// Set on the last batch: answer it, then stop.
    pub(super) closing: Option<oneshot::Sender<()>>,
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
        let flags = Arc::new(Flags {
            syncer_idle: AtomicBool::new(true),
            checkpoint_passed: AtomicBool::new(false),
        });
        let wal = wal_path(path);
        let checkpoint_flags = Arc::clone(&flags);
        spawn("tessera-sqlite-ckpt", move || {
            checkpoint_loop(&checkpointer, &signal_rx, &checkpoint_flags)
        })?;
        // Weak: the writer thread stops once every `Writer` handle is gone.
        let syncer = Syncer {
            wal,
            flags: Arc::clone(&flags),
            writer: queue.downgrade(),
            checkpointer: signal_tx,
        };
        spawn("tessera-sqlite-sync", move || syncer.run(&committed_rx))?;
        spawn("tessera-sqlite-writer", move || {
            write_loop(&conn, jobs, &committed_tx, &flags)
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
            return Err(AppError::store_closed());
        }
        // A dropped reply (the writer stopped, or the job panicked) is an error, not a hang.
        rx.await.unwrap_or_else(|_| Err(AppError::store_closed()))
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

fn write_loop(
    conn: &Connection,
    mut jobs: mpsc::Receiver<Message>,
    committed: &std_mpsc::Sender<Committed>,
    flags: &Flags,
) {
    let mut open: Option<Batch> = None;
    loop {
        let commit_now = open
            .as_ref()
            .is_some_and(|batch| batch.ready() || flags.syncer_idle.load(Ordering::Acquire));
        // Wait for work only while there is nothing to hand over; `None` from a blocking
        // receive means every `Writer` handle is gone.
        let message = if commit_now {
            jobs.try_recv().ok()
        } else {
            jobs.blocking_recv()
        };
        let closing = match message {
            Some(Message::Job(work)) => {
                match &mut open {
                    Some(batch) => batch.run(conn, work),
                    None => open = Batch::begin(conn, work),
                }
                continue;
            }
            Some(Message::SyncerIdle) => continue,
            Some(Message::Close(done)) => Some(done),
            None if commit_now => None,
            None => {
                hand_over(conn, open, committed, None);
                return;
            }
        };
        let is_last = closing.is_some();
        flags.syncer_idle.store(false, Ordering::Release);
        if !hand_over(conn, open.take(), committed, closing) || is_last {
            return;
        }
        if flags.checkpoint_passed.swap(false, Ordering::AcqRel) {
            finish_checkpoint(conn);
        }
    }
}

/// Commits the open batch (if any; a closing message goes through even without one) and
/// hands it to the syncer. False when the syncer is gone.
fn hand_over(
    conn: &Connection,
    open: Option<Batch>,
    committed: &std_mpsc::Sender<Committed>,
    closing: Option<oneshot::Sender<()>>,
) -> bool {
    let (replies, outcome) = open.map_or((Vec::new(), Ok(())), |b| b.commit(conn));
    committed
        .send(Committed {
            replies,
            outcome,
            closing,
        })
        .is_ok()
}

/// Copies the frames committed since the checkpointer's last pass. Run between batches, so
/// no frame arrives meanwhile and the next transaction can rewind the WAL.
fn finish_checkpoint(conn: &Connection) {
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)") {
        tracing::debug!(error = %e, "writer-side WAL checkpoint did not run; retried after the next pass");
    }
}

fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)
        .and_then(|mut statement| statement.execute([]))
        .map(|_| ())
}

/// The open write transaction and the answers of the jobs run in it.
struct Batch {
    replies: Vec<Reply>,
    /// Set when a statement of the batch itself (not of a job) failed: the transaction is
    /// rolled back at commit and every job in it answered with this error.
    failed: Option<rusqlite::Error>,
}

impl Batch {
    /// Opens the transaction and runs `first` in it. `None` when the transaction cannot be
    /// opened: the job is dropped unanswered, which its caller sees as "unavailable".
    fn begin(conn: &Connection, first: Work) -> Option<Self> {
        if let Err(e) = exec(conn, "BEGIN IMMEDIATE") {
            tracing::error!(error = %e, "could not open a SQLite write transaction");
            return None;
        }
        let mut batch = Self {
            replies: Vec::with_capacity(64),
            failed: None,
        };
        batch.run(conn, first);
        Some(batch)
    }

    /// Full, or broken: commit (or roll back) without waiting for the syncer.
    fn ready(&self) -> bool {
        self.replies.len() >= MAX_BATCH || self.failed.is_some()
    }

    /// Runs `work` inside its own savepoint: when it fails, what it wrote is rolled back and
    /// the rest of the batch is unaffected.
    fn run(&mut self, conn: &Connection, work: Work) {
        if self.failed.is_some() {
            return; // dropped unanswered: "unavailable"
        }
        if let Err(e) = exec(conn, "SAVEPOINT job") {
            self.failed = Some(e);
            return;
        }
        let ok = match catch_unwind(AssertUnwindSafe(|| work(conn))) {
            Ok((ok, reply)) => {
                self.replies.push(reply);
                ok
            }
            Err(_) => {
                tracing::error!("a write job panicked; its work is rolled back");
                false
            }
        };
        let released = if ok {
            exec(conn, "RELEASE job")
        } else {
            exec(conn, "ROLLBACK TO job").and_then(|()| exec(conn, "RELEASE job"))
        };
        if let Err(e) = released {
            self.failed = Some(e);
        }
    }

    fn commit(self, conn: &Connection) -> (Vec<Reply>, Result<(), AppError>) {
        let committed = match self.failed {
            Some(e) => Err(e),
            None => exec(conn, "COMMIT"),
        };
        let outcome = committed.map_err(|e| {
            if !conn.is_autocommit() {
                let _ = exec(conn, "ROLLBACK");
            }
            tracing::error!(error = %e, "SQLite batch rolled back; every job in it is answered with an error");
            // Busy or locked (another process holds the write lock) maps to 503, anything else 500.
            AppError::from(e)
        });
        (self.replies, outcome)
    }
}

#[cfg(test)]
#[path = "sqlite_writer_tests.rs"]
mod tests;
