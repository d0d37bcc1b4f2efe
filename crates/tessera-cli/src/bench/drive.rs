//! Closed-loop load: exactly `connections` workers, each sending its next request as soon as the
//! previous answer is read, until the duration is up. Every latency goes into an HDR histogram.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;

use super::prepare::Workload;

/// Latencies are recorded in microseconds, from 1 µs to one hour, 3 significant digits.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// The load tool's client: HTTP/1.1 keep-alive, one pooled connection per worker.
pub fn load_client(connections: u32, timeout: Duration) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .http1_only()
        .pool_max_idle_per_host(usize::try_from(connections).unwrap_or(usize::MAX))
        .pool_idle_timeout(None)
        .tcp_nodelay(true)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("building the HTTP client")
}

/// What one run measured.
pub struct Measured {
    pub elapsed: Duration,
    /// Latencies of successful requests, one histogram per request kind.
    pub latencies: Vec<Histogram<u64>>,
    /// Successful requests per request kind.
    pub succeeded: Vec<u64>,
    /// Failed requests by cause: `HTTP 409`, `timeout`, `connection`, …
    pub errors: BTreeMap<String, u64>,
}

impl Measured {
    fn new(kinds: usize) -> anyhow::Result<Self> {
        let latencies = (0..kinds)
            .map(|_| Histogram::new_with_bounds(1, MAX_LATENCY_US, 3))
            .collect::<Result<Vec<_>, _>>()
            .context("creating a latency histogram")?;
        Ok(Self {
            elapsed: Duration::ZERO,
            latencies,
            succeeded: vec![0; kinds],
            errors: BTreeMap::new(),
        })
    }

    fn merge(&mut self, other: Measured) -> anyhow::Result<()> {
        for (mine, theirs) in self.latencies.iter_mut().zip(&other.latencies) {
            mine.add(theirs).context("merging latency histograms")?;
        }
        for (mine, theirs) in self.succeeded.iter_mut().zip(&other.succeeded) {
            *mine += theirs;
        }
        for (cause, count) in other.errors {
            *self.errors.entry(cause).or_default() += count;
        }
        Ok(())
    }

    fn error(&mut self, cause: String) {
        *self.errors.entry(cause).or_default() += 1;
    }

    pub fn total_succeeded(&self) -> u64 {
        self.succeeded.iter().sum()
    }

    pub fn total_errors(&self) -> u64 {
        self.errors.values().sum()
    }

    /// All request kinds in one histogram.
    pub fn overall(&self) -> anyhow::Result<Histogram<u64>> {
        let mut all = Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
            .context("creating a latency histogram")?;
        for h in &self.latencies {
            all.add(h).context("merging latency histograms")?;
        }
        Ok(all)
    }
}

/// Drives `workload` with `connections` workers for `duration`.
pub async fn drive(
    workload: Arc<Workload>,
    http: reqwest::Client,
    connections: u32,
    duration: Duration,
) -> anyhow::Result<Measured> {
    let kinds = workload.labels().len();
    let counter = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let (workload, http, counter) = (workload.clone(), http.clone(), counter.clone());
        set.spawn(worker(workload, http, counter, deadline, kinds));
    }
    let mut total = Measured::new(kinds)?;
    while let Some(joined) = set.join_next().await {
        total.merge(joined.context("a load worker failed")??)?;
    }
    total.elapsed = started.elapsed();
    Ok(total)
}

async fn worker(
    workload: Arc<Workload>,
    http: reqwest::Client,
    counter: Arc<AtomicU64>,
    deadline: Instant,
    kinds: usize,
) -> anyhow::Result<Measured> {
    let mut measured = Measured::new(kinds)?;
    while Instant::now() < deadline {
        let n = counter.fetch_add(1, Ordering::Relaxed);
        let (kind, request) = workload.request(&http, n).await?;
        let sent = Instant::now();
        let answer = match request.send().await {
            Ok(resp) => {
                let status = resp.status();
                resp.bytes().await.map(|body| (status, body))
            }
            Err(e) => Err(e),
        };
        let latency = sent.elapsed();
        match answer {
            Ok((status, body)) if status.is_success() => {
                let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                if let Some(h) = measured.latencies.get_mut(kind) {
                    h.saturating_record(us.max(1));
                }
                if let Some(count) = measured.succeeded.get_mut(kind) {
                    *count += 1;
                }
                if let Err(e) = workload.on_success(n, &body) {
                    tracing::debug!("unexpected answer: {e:#}");
                    measured.error("bad answer".to_string());
                }
            }
            Ok((status, _)) => measured.error(format!("HTTP {}", status.as_u16())),
            Err(e) => {
                measured.error(transport_cause(&e).to_string());
                // A refused connection fails at once; do not spin on a dead server.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    Ok(measured)
}

fn transport_cause(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "transport"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_measurements_add_up() {
        let mut a = Measured::new(2).unwrap();
        let mut b = Measured::new(2).unwrap();
        a.latencies[0].record(1_000).unwrap();
        a.succeeded[0] = 1;
        b.latencies[1].record(3_000).unwrap();
        b.succeeded[1] = 1;
        b.error("HTTP 409".into());
        b.error("HTTP 409".into());
        a.merge(b).unwrap();
        assert_eq!(a.total_succeeded(), 2);
        assert_eq!(a.errors.get("HTTP 409"), Some(&2));
        let all = a.overall().unwrap();
        assert_eq!(all.len(), 2);
        assert!(all.max() >= 2_990);
    }
}
