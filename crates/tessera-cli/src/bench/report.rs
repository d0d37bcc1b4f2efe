//! The benchmark's result, as text for people or JSON for scripts (stdout either way).

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::drive::Measured;
use crate::output::{self, Output};

#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub target: String,
    /// `started` when the benchmark ran the server itself, else `external`.
    pub server: &'static str,
    /// `sqlite` or `postgres` when the benchmark started the server.
    pub database: Option<&'static str>,
    pub connections: u32,
    pub duration_secs: f64,
    /// Requests sent (succeeded + failed).
    pub requests: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// Successful requests per second.
    pub requests_per_sec: f64,
    /// Latency of successful requests.
    pub latency_ms: Latency,
    /// Failed requests by cause (`HTTP 409`, `timeout`, `connection`, …).
    pub errors: BTreeMap<String, u64>,
    /// Per request kind, when the scenario mixes several (`admin-list`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<Endpoint>,
    /// The server's peak resident set size (VmHWM), when known.
    pub peak_rss_mb: Option<f64>,
    /// CPU used during the run, in cores (1.0 = one core busy throughout): the server's when
    /// its PID is known, and the load tool's own (it shares the machine).
    pub server_cpu_cores: Option<f64>,
    pub load_tool_cpu_cores: Option<f64>,
    /// Cores of this machine.
    pub machine_cores: Option<usize>,
}

#[derive(Debug, Serialize)]
pub struct Endpoint {
    pub name: &'static str,
    pub succeeded: u64,
    pub requests_per_sec: f64,
    pub latency_ms: Latency,
}

#[derive(Debug, Serialize)]
pub struct Latency {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| round3(us as f64 / 1000.0);
        if h.is_empty() {
            return Self {
                mean: 0.0,
                p50: 0.0,
                p90: 0.0,
                p99: 0.0,
                max: 0.0,
            };
        }
        Self {
            mean: round3(h.mean() / 1000.0),
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Facts about the run that the measurement itself does not hold.
pub struct RunInfo {
    pub scenario: &'static str,
    pub target: String,
    pub started_server: bool,
    pub database: Option<&'static str>,
    pub connections: u32,
    pub peak_rss_mb: Option<f64>,
    pub server_cpu_cores: Option<f64>,
    pub load_tool_cpu_cores: Option<f64>,
}

impl Report {
    pub fn new(info: RunInfo, labels: &[&'static str], m: &Measured) -> anyhow::Result<Self> {
        let secs = m.elapsed.as_secs_f64().max(f64::EPSILON);
        let succeeded = m.total_succeeded();
        let failed = m.total_errors();
        let endpoints = if labels.len() > 1 {
            labels
                .iter()
                .zip(m.latencies.iter().zip(&m.succeeded))
                .map(|(name, (h, ok))| Endpoint {
                    name,
                    succeeded: *ok,
                    requests_per_sec: round1(*ok as f64 / secs),
                    latency_ms: Latency::of(h),
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(Self {
            scenario: info.scenario,
            target: info.target,
            server: if info.started_server {
                "started"
            } else {
                "external"
            },
            database: info.database,
            connections: info.connections,
            duration_secs: round3(secs),
            requests: succeeded + failed,
            succeeded,
            failed,
            requests_per_sec: round1(succeeded as f64 / secs),
            latency_ms: Latency::of(&m.overall()?),
            errors: m.errors.clone(),
            endpoints,
            peak_rss_mb: info.peak_rss_mb.map(round1),
            server_cpu_cores: info.server_cpu_cores.map(round2),
            load_tool_cpu_cores: info.load_tool_cpu_cores.map(round2),
            machine_cores: std::thread::available_parallelism()
                .ok()
                .map(std::num::NonZeroUsize::get),
        })
    }

    pub fn print(&self, format: Output) -> anyhow::Result<()> {
        match format {
            Output::Json => output::json(self),
            Output::Text => {
                print!("{}", self.text());
                Ok(())
            }
        }
    }

    fn text(&self) -> String {
        let mut out = String::new();
        let server = match (self.server, self.database) {
            ("started", Some(db)) => format!("server started by bench, {db}"),
            ("started", None) => "server started by bench".to_string(),
            _ => "external server".to_string(),
        };
        out.push_str(&format!(
            "scenario     {} — {} connections, {:.1} s, {} ({server})\n",
            self.scenario, self.connections, self.duration_secs, self.target
        ));
        out.push_str(&format!(
            "requests     {} ({} ok, {} failed)\n",
            self.requests, self.succeeded, self.failed
        ));
        out.push_str(&format!(
            "throughput   {:.1} successful requests/s\n",
            self.requests_per_sec
        ));
        out.push_str(&format!(
            "latency ms   {}\n",
            latency_line(&self.latency_ms)
        ));
        for e in &self.endpoints {
            out.push_str(&format!(
                "  {:<24} {:>9.1}/s  {}\n",
                e.name,
                e.requests_per_sec,
                latency_line(&e.latency_ms)
            ));
        }
        if self.errors.is_empty() {
            out.push_str("errors       none\n");
        } else {
            let errors: Vec<String> = self
                .errors
                .iter()
                .map(|(cause, n)| format!("{cause}: {n}"))
                .collect();
            out.push_str(&format!("errors       {}\n", errors.join(", ")));
        }
        let cores = |c: Option<f64>| c.map_or("?".to_string(), |c| format!("{c:.2}"));
        out.push_str(&format!(
            "CPU (cores)  server {}, load tool {} (machine: {})\n",
            cores(self.server_cpu_cores),
            cores(self.load_tool_cpu_cores),
            self.machine_cores
                .map_or("?".to_string(), |n| n.to_string())
        ));
        match self.peak_rss_mb {
            Some(mb) => out.push_str(&format!("peak RSS     {mb:.1} MB (server)\n")),
            None => out.push_str("peak RSS     unknown (external server; see --server-pid)\n"),
        }
        out
    }
}

fn latency_line(l: &Latency) -> String {
    format!(
        "p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}  (mean {:.2})",
        l.p50, l.p90, l.p99, l.max, l.mean
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_is_reported_in_milliseconds() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        for us in [1_000u64, 2_000, 3_000, 4_000, 100_000] {
            h.record(us).unwrap();
        }
        let l = Latency::of(&h);
        assert!((l.p50 - 3.0).abs() < 0.01, "{l:?}");
        assert!((l.max - 100.0).abs() < 0.1, "{l:?}");
        let empty = Latency::of(&Histogram::<u64>::new(3).unwrap());
        assert_eq!(empty.p99, 0.0);
    }
}
