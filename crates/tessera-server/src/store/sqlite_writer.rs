//! Group commit for SQLite. One task owns the only write connection; write jobs queue to it.
//! It takes every job waiting (up to a cap), runs each inside its own SAVEPOINT within one
//! `BEGIN IMMEDIATE` transaction, commits once — one fsync for the whole batch — and only then
//! answers each caller. A job that fails rolls back to its savepoint and does not disturb the
//! others. Under load this turns hundreds of fsyncs per second into a few dozen, while each
//! answer still means "on disk".

use std::future::Future;
use std::pin::Pin;

use sqlx::{Connection, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use crate::error::{ApiResult, AppError};

pub type Fut<'c, T> = Pin<Box<dyn Future<Output = T> + Send + 'c>>;
type Reply = Box<dyn FnOnce(Result<(), String>) + Send>;
type Work = Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> Fut<'c, (bool, Reply)> + Send>;

struct Job {
    work: Work,
    /// A job of one statement needs no savepoint: a failed statement writes nothing.
    single_statement: bool,
}

/// Most jobs in one transaction: bounds the latency a batch adds and the work lost to a
/// failed commit.
const MAX_BATCH: usize = 512;
const QUEUE: usize = 8_192;

enum Message {
    Job(Job),
    Close(oneshot::Sender<()>),
}

pub struct Writer {
    queue: mpsc::Sender<Message>,
}

impl Writer {
    pub fn start(conn: SqliteConnection) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(conn, rx));
        Self { queue }
    }

    /// Runs `job` in the next batch; returns its result once the batch is durably committed.
    pub async fn run<T, F>(&self, job: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> Fut<'c, ApiResult<T>> + Send + 'static,
    {
        self.submit(job, false).await
    }

    /// Like [`Writer::run`] for a job that executes exactly one statement (skips the savepoint).
    pub async fn run_single_statement<T, F>(&self, job: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> Fut<'c, ApiResult<T>> + Send + 'static,
    {
        self.submit(job, true).await
    }

    async fn submit<T, F>(&self, job: F, single_statement: bool) -> ApiResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> Fut<'c, ApiResult<T>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<ApiResult<T>>();
        let work: Work = Box::new(move |conn| {
            Box::pin(async move {
                let result = job(conn).await;
                let ok = result.is_ok();
                let reply: Reply = Box::new(move |commit| {
                    let _ = tx.send(match commit {
                        Ok(()) => result,
                        Err(e) => Err(AppError::internal(format!("commit failed: {e}"))),
                    });
                });
                (ok, reply)
            })
        });
        let job = Job {
            work,
            single_statement,
        };
        if self.queue.send(Message::Job(job)).await.is_err() {
            return Err(closed());
        }
        rx.await.unwrap_or_else(|_| Err(closed()))
    }

    /// Finishes queued work and closes the connection.
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.queue.send(Message::Close(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

fn closed() -> AppError {
    AppError::new(
        tessera_core::ErrorCode::ServiceUnavailable,
        "Database is shutting down",
    )
}

async fn run(mut conn: SqliteConnection, mut rx: mpsc::Receiver<Message>) {
    let mut closing = None;
    while let Some(first) = rx.recv().await {
        let mut batch = Vec::new();
        match first {
            Message::Job(job) => batch.push(job),
            Message::Close(done) => closing = Some(done),
        }
        while closing.is_none() && batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(Message::Job(job)) => batch.push(job),
                Ok(Message::Close(done)) => closing = Some(done),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            commit_batch(&mut conn, batch).await;
        }
        if let Some(done) = closing.take() {
            let _ = conn.close().await;
            let _ = done.send(());
            return;
        }
    }
    let _ = conn.close().await;
}

async fn exec(conn: &mut SqliteConnection, sql: &str) -> Result<(), String> {
    sqlx::query(sql)
        .execute(&mut *conn)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

async fn commit_batch(conn: &mut SqliteConnection, batch: Vec<Job>) {
    let mut replies = Vec::with_capacity(batch.len());
    let outcome = async {
        exec(conn, "BEGIN IMMEDIATE").await?;
        for job in batch {
            if job.single_statement {
                let (_, reply) = (job.work)(conn).await;
                replies.push(reply);
                continue;
            }
            exec(conn, "SAVEPOINT job").await?;
            let (ok, reply) = (job.work)(conn).await;
            replies.push(reply);
            if !ok {
                exec(conn, "ROLLBACK TO job").await?;
            }
            exec(conn, "RELEASE job").await?;
        }
        exec(conn, "COMMIT").await
    }
    .await;
    if outcome.is_err() {
        let _ = exec(conn, "ROLLBACK").await;
        tracing::error!(error = ?outcome, "SQLite batch failed; every job in it is answered with an error");
    }
    for reply in replies {
        reply(outcome.clone());
    }
}
