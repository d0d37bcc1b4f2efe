//! `tessera bench`: a load tool for Tessera's HTTP API. It starts the real server on a fresh
//! database (or targets `--url`), prepares data through the API, drives one scenario in closed
//! loop at a fixed number of connections for a fixed time, and reports requests/s, latency
//! percentiles, errors by cause and the server's peak RSS.

mod args;
mod drive;
mod prepare;
mod procfs;
mod report;
mod spawn;

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};

pub use args::BenchArgs;
use prepare::{AdminApi, Plan, Workload};
use spawn::{SpawnOptions, StartedServer};

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let server = match &args.url {
        Some(_) => None,
        None => {
            tracing::info!("starting `tessera serve` for the benchmark");
            Some(
                StartedServer::start(SpawnOptions {
                    database_url: args.database_url.clone(),
                    data_dir: args.data_dir.clone(),
                    catalog: args.catalog.clone(),
                    server_log: args.server_log.clone(),
                    product: args.product.clone(),
                })
                .await?,
            )
        }
    };
    let result = measure(&args, server.as_ref()).await;
    // Read the peak before the server goes away.
    let peak_rss_mb = match (&server, args.server_pid) {
        (Some(s), _) => procfs::peak_rss_mb(s.pid()),
        (None, Some(pid)) => procfs::peak_rss_mb(pid),
        (None, None) => None,
    };
    if let Some(server) = server {
        server.stop().await?;
    }
    let (info, labels, measured) = result?;
    let report = report::Report::new(
        report::RunInfo {
            peak_rss_mb,
            ..info
        },
        labels,
        &measured,
    )?;
    report.print(args.output)
}

async fn measure(
    args: &BenchArgs,
    server: Option<&StartedServer>,
) -> anyhow::Result<(report::RunInfo, &'static [&'static str], drive::Measured)> {
    let (base, admin_token, catalog) = match (server, &args.url) {
        (Some(s), _) => (s.base_url.clone(), s.admin_token.clone(), s.catalog.clone()),
        (None, Some(url)) => {
            let Some(token) = args.admin_token.as_deref().filter(|t| !t.trim().is_empty()) else {
                bail!("--url needs the server's admin token: set ADMIN_TOKEN (or --admin-token)");
            };
            (
                url.trim_end_matches('/').to_string(),
                token.trim().to_string(),
                args.catalog.clone(),
            )
        }
        (None, None) => bail!("no server to measure"),
    };
    let tier = match &args.tier {
        Some(t) => t.clone(),
        None => first_tier(catalog.as_deref(), &args.product)?
            .unwrap_or_else(|| spawn::GENERATED_TIER.to_string()),
    };

    let http = drive::load_client(args.connections, args.request_timeout)?;
    let api = AdminApi::new(http.clone(), &base, &admin_token);
    let plan = Plan {
        scenario: args.scenario,
        product: &args.product,
        tier: &tier,
        seats: args.seats,
        machines: args
            .machines
            .unwrap_or(u64::from(args.connections).saturating_mul(4)),
        connections: args.connections,
        admin_token: &admin_token,
        page_size: args.page_size,
        max_offset: args.max_offset,
    };
    tracing::info!(scenario = args.scenario.name(), %base, "preparing");
    let workload = Arc::new(
        Workload::prepare(&api, &plan)
            .await
            .with_context(|| format!("preparing the `{}` scenario", args.scenario.name()))?,
    );
    let labels = workload.labels();
    tracing::info!(
        scenario = args.scenario.name(),
        connections = args.connections,
        seconds = args.duration.as_secs_f64(),
        "driving load"
    );
    let server_pid = server.map(StartedServer::pid).or(args.server_pid);
    let me = std::process::id();
    let cpu_before = (server_pid.and_then(procfs::cpu_time), procfs::cpu_time(me));
    let measured = drive::drive(workload, http, args.connections, args.duration).await?;
    let cpu_after = (server_pid.and_then(procfs::cpu_time), procfs::cpu_time(me));
    let info = report::RunInfo {
        scenario: args.scenario.name(),
        target: base,
        started_server: server.is_some(),
        database: server.map(|s| s.database),
        connections: args.connections,
        peak_rss_mb: None,
        server_cpu_cores: procfs::cores_used(cpu_before.0, cpu_after.0, measured.elapsed),
        load_tool_cpu_cores: procfs::cores_used(cpu_before.1, cpu_after.1, measured.elapsed),
    };
    Ok((info, labels, measured))
}

/// The first tier of `product` in the catalog file, if there is one and it lists the product.
fn first_tier(catalog: Option<&Path>, product: &str) -> anyhow::Result<Option<String>> {
    let Some(path) = catalog else {
        return Ok(None);
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let catalog = tessera_core::catalog::Catalog::parse(&text)
        .with_context(|| format!("parsing {}", path.display()))?;
    Ok(catalog
        .product(product)
        .and_then(|p| p.tiers.first())
        .map(|t| t.name.clone()))
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use tessera_server::Limits;
    use tessera_server::test_support::{TestOptions, TestServer};

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    #[tokio::test]
    async fn every_scenario_runs_against_a_url_without_errors() {
        // As `tessera bench` starts its own server: rate limiting off.
        let server = TestServer::spawn_with(TestOptions {
            limits: Limits {
                rate_limit: None,
                lease_sweep: None,
                ..Limits::default()
            },
            ..TestOptions::default()
        })
        .await
        .unwrap();
        for scenario in ["activate", "refresh", "token", "usage", "admin-list"] {
            // Five seats per key, so `activate` and `refresh` also roll over to new keys.
            let cli = Cli::try_parse_from([
                "bench",
                "--url",
                &server.base_url,
                "--admin-token",
                &server.admin_token,
                "--scenario",
                scenario,
                "--duration",
                "300ms",
                "--connections",
                "2",
                "--seats",
                "5",
            ])
            .unwrap();
            let (info, labels, measured) = measure(&cli.bench, None).await.unwrap();
            let report = report::Report::new(info, labels, &measured).unwrap();
            assert!(report.succeeded > 0, "{scenario}: nothing succeeded");
            assert_eq!(report.failed, 0, "{scenario}: {:?}", report.errors);
            assert_eq!(report.server, "external");
            assert_eq!(report.peak_rss_mb, None);
            if scenario == "admin-list" {
                assert_eq!(report.endpoints.len(), 3);
            }
        }
    }

    #[tokio::test]
    async fn a_wrong_admin_token_fails_the_preparation_with_the_servers_reason() {
        let server = TestServer::spawn().await.unwrap();
        let cli = Cli::try_parse_from([
            "bench",
            "--url",
            &server.base_url,
            "--admin-token",
            "not-the-token",
            "--duration",
            "1",
        ])
        .unwrap();
        let err = measure(&cli.bench, None).await.err().unwrap();
        assert!(format!("{err:#}").contains("401"), "{err:#}");
    }
}
