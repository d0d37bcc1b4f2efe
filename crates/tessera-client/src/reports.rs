//! Fire-and-forget usage and flag reports: a bounded queue drained by one background task.
//!
//! `submit` never blocks and never fails: when the queue is full the report is dropped and
//! counted. The task starts on the first report made inside a tokio runtime and ends when the
//! client is dropped (the queue's sender goes away).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tessera_core::wire::{FlagRequest, UsageRequest};
use tokio::sync::mpsc;

use crate::license_file::LicenseFile;

#[derive(Debug)]
pub(crate) enum Report {
    Usage(UsageRequest),
    Flag(FlagRequest),
}

/// Counters of the report queue since the client was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportStats {
    /// Accepted into the queue.
    pub queued: u64,
    /// Delivered (the server answered 2xx).
    pub sent: u64,
    /// Taken from the queue but not delivered (no license, network error, server refusal).
    pub failed: u64,
    /// Dropped because the queue was full.
    pub dropped: u64,
}

#[derive(Debug, Default)]
struct Counters {
    queued: AtomicU64,
    sent: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
}

/// What the background task needs; deliberately not the client itself (no reference cycle).
#[derive(Debug, Clone)]
pub(crate) struct Destination {
    pub http: reqwest::Client,
    pub usage_url: String,
    pub flag_url: String,
    pub license_path: PathBuf,
}

#[derive(Debug)]
pub(crate) struct Reporter {
    tx: mpsc::Sender<Report>,
    pending: Mutex<Option<(mpsc::Receiver<Report>, Destination)>>,
    started: AtomicBool,
    counters: Arc<Counters>,
}

impl Reporter {
    pub fn new(capacity: usize, dest: Destination) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        Self {
            tx,
            pending: Mutex::new(Some((rx, dest))),
            started: AtomicBool::new(false),
            counters: Arc::new(Counters::default()),
        }
    }

    /// Queues a report; returns whether it was accepted. Never blocks.
    pub fn submit(&self, report: Report) -> bool {
        self.ensure_started();
        match self.tx.try_send(report) {
            Ok(()) => {
                self.counters.queued.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(_) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("license report queue is full; report dropped");
                false
            }
        }
    }

    pub fn stats(&self) -> ReportStats {
        ReportStats {
            queued: self.counters.queued.load(Ordering::Relaxed),
            sent: self.counters.sent.load(Ordering::Relaxed),
            failed: self.counters.failed.load(Ordering::Relaxed),
            dropped: self.counters.dropped.load(Ordering::Relaxed),
        }
    }

    fn ensure_started(&self) {
        if self.started.load(Ordering::Acquire) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return; // not in a runtime yet: reports wait in the bounded queue
        };
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        if let Some((rx, dest)) = pending.take() {
            handle.spawn(run(rx, dest, self.counters.clone()));
            self.started.store(true, Ordering::Release);
        }
    }
}

async fn run(mut rx: mpsc::Receiver<Report>, dest: Destination, counters: Arc<Counters>) {
    while let Some(report) = rx.recv().await {
        let ok = deliver(&dest, &report).await;
        let counter = if ok { &counters.sent } else { &counters.failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

async fn deliver(dest: &Destination, report: &Report) -> bool {
    // The current token, read when sending: a refresh between queueing and sending is honoured.
    let jwt = match LicenseFile::read(&dest.license_path) {
        Ok(f) => f.jwt,
        Err(e) => {
            tracing::debug!(reason = %e, "license report not sent: no license");
            return false;
        }
    };
    let request = match report {
        Report::Usage(body) => dest.http.post(&dest.usage_url).json(body),
        Report::Flag(body) => dest.http.post(&dest.flag_url).json(body),
    };
    match request.bearer_auth(jwt).send().await {
        Ok(resp) if resp.status().is_success() => true,
        Ok(resp) => {
            tracing::debug!(status = resp.status().as_u16(), "license report refused");
            false
        }
        Err(e) => {
            tracing::debug!(error = %e, "license report not sent");
            false
        }
    }
}
