//! The two helpers of the SQLite writer (see `sqlite_writer`): the syncer, which makes
//! committed batches durable with one `fdatasync` of the WAL and answers them, and the
//! checkpointer, which copies the WAL back into the database file off the writer's thread.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use rusqlite::Connection;
use tessera_core::ErrorCode;
use tokio::sync::{mpsc, oneshot};

use super::sqlite_writer::{Committed, Flags, Message};
use crate::error::AppError;

/// The shortest gap between two PASSIVE checkpoints. At the measured peak of a few MB of WAL
/// per second this keeps the WAL to a few MB.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// From the syncer to the checkpointer.
pub(super) enum CheckpointSignal {
    /// New commits are durable in the WAL.
    Committed,
    /// Checkpoint once more, answer, and stop.
    Stop(oneshot::Sender<()>),
}

/// Makes committed batches durable and answers them.
pub(super) struct Syncer {
    pub(super) wal: PathBuf,
    pub(super) flags: Arc<Flags>,
    pub(super) writer: mpsc::WeakSender<Message>,
    pub(super) checkpointer: std_mpsc::SyncSender<CheckpointSignal>,
}

impl Syncer {
    pub(super) fn run(self, committed: &std_mpsc::Receiver<Committed>) {
        while let Some(first) = self.next(committed) {
            let mut round = vec![first];
            round.extend(committed.try_iter());
            let synced = sync_wal(&self.wal).map_err(|e| {
                tracing::error!(wal = %self.wal.display(), error = %e, "could not sync the SQLite WAL; answering the batch with an error");
                AppError::new(ErrorCode::InternalError, "Internal server error")
            });
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
                    self.checkpointer.send(CheckpointSignal::Stop(done))
                {
                    let _ = done.send(());
                }
                return;
            }
            // Full means a signal is already pending; disconnected cannot be helped here.
            let _ = self.checkpointer.try_send(CheckpointSignal::Committed);
        }
    }

    /// The next committed batch; when none is waiting, tells the writer to commit the one it
    /// has open, then waits.
    fn next(&self, committed: &std_mpsc::Receiver<Committed>) -> Option<Committed> {
        match committed.try_recv() {
            Ok(batch) => return Some(batch),
            Err(std_mpsc::TryRecvError::Disconnected) => return None,
            Err(std_mpsc::TryRecvError::Empty) => {}
        }
        self.flags.syncer_idle.store(true, Ordering::Release);
        // A full queue needs no wake-up: the writer is busy taking jobs and sees the flag.
        if let Some(writer) = self.writer.upgrade() {
            let _ = writer.try_send(Message::SyncerIdle);
        }
        committed.recv().ok()
    }
}

/// `fdatasync` of the WAL: durability of every transaction committed before this call.
fn sync_wal(wal: &Path) -> std::io::Result<()> {
    // Opened per round (a few µs against a ~1 ms sync): never a stale descriptor when the
    // WAL is removed and re-created by another process.
    File::open(wal).and_then(|file| file.sync_data())
}

pub(super) fn checkpoint_loop(
    checkpointer: &Connection,
    signals: &std_mpsc::Receiver<CheckpointSignal>,
    flags: &Flags,
) {
    let checkpoint = || match checkpointer.execute_batch("PRAGMA wal_checkpoint(PASSIVE)") {
        Ok(()) => flags.checkpoint_passed.store(true, Ordering::Release),
        Err(e) => {
            tracing::warn!(error = %e, "WAL checkpoint failed; retried after the next commit")
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
