//! The benchmark: the release binaries as Lambda runs them.
//!
//! Every function process runs under the Runtime API emulator inside a cgroup whose CPU quota is
//! Lambda's share of its memory setting (`memory / 1769` of one core), and reaches the local
//! stack through a proxy that adds a fixed network latency, over plain HTTP or over TLS with a
//! throw-away CA that the binaries trust through `SSL_CERT_FILE` (the system bundle plus that
//! CA, so loading the trust store costs what it costs on Lambda). A runtime-only Rust function
//! (`runtime_only`: `lambda_runtime` echoing its event) runs under the same quota in the same run,
//! and every target is a ratio within the run.
//!
//! Run through `scripts/bench`, which builds the release binaries; it prints the tables and
//! rewrites the measured part of `docs/performance.md`. Settings (environment):
//! `BENCH_COLD_RUNS` (fresh processes per cell, default 7), `BENCH_WARM` (warm invocations per
//! memory setting, default 200), `BENCH_SOAK` (warm invocations of the memory soak, default
//! 10000), `BENCH_LATENCY_MS` (added per request, default 5), `BENCH_CFS_PERIOD_MS` (default
//! 20, see `cpu_share::DEFAULT_PERIOD`), `BENCH_WRITE_DOCS` (default true); for investigating, `BENCH_MEMORIES` (a list such as
//! `128,256` instead of the template's and [`MEMORY_SETTINGS`]) and `BENCH_COLD_ONLY=true`,
//! neither of which rewrites the page.

mod cost;
mod measure;
mod report;

use std::time::Duration;

use anyhow::{Context, Result};
use e2e::cpu_share::{CpuShare, DEFAULT_PERIOD};
use e2e::fault_proxy::{FaultPlan, FaultProxy, ProxyOptions};
use e2e::throwaway_ca::ThrowawayCa;
use e2e::{LocalPipeline, NewUser, PipelineOptions};

use measure::{Bench, Transport};

/// The memory settings every function is measured at, beside the template's own.
pub const MEMORY_SETTINGS: [u32; 4] = [128, 256, 512, 1024];

fn setting<T: std::str::FromStr>(name: &str, default: T) -> Result<T> {
    match std::env::var(name) {
        Ok(text) if !text.trim().is_empty() => text
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("{name} must be a number, not {text:?}")),
        _ => Ok(default),
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let memories = match std::env::var("BENCH_MEMORIES") {
        Ok(list) if !list.trim().is_empty() => Some(
            list.split(',')
                .map(|mb| {
                    mb.trim().parse().map_err(|_| {
                        anyhow::anyhow!("BENCH_MEMORIES must list megabytes, like 128,256: not {list:?}")
                    })
                })
                .collect::<Result<Vec<u32>>>()?,
        ),
        _ => None,
    };
    let settings = measure::Settings {
        memories,
        cold_only: std::env::var("BENCH_COLD_ONLY").is_ok_and(|v| v == "true"),
        cold_runs: setting("BENCH_COLD_RUNS", 7usize)?,
        warm: setting("BENCH_WARM", 200usize)?,
        soak: setting("BENCH_SOAK", 10_000usize)?,
        latency: Duration::from_millis(setting("BENCH_LATENCY_MS", 5u64)?),
        period: Duration::from_millis(setting("BENCH_CFS_PERIOD_MS", DEFAULT_PERIOD.as_millis() as u64)?),
    };
    // A partial run never rewrites the page.
    let write_docs = std::env::var("BENCH_WRITE_DOCS").map_or(true, |v| v != "false")
        && !settings.cold_only
        && settings.memories.is_none();

    // Fail before the slow set-up when CPU shares cannot work here.
    let quotas = match CpuShare::create(128, settings.period) {
        Ok(_) => true,
        Err(err) => {
            eprintln!(
                "bench: WARNING: {err}. Every function runs on whole cores instead: the figures \
                 will not show Lambda's CPU share and docs/performance.md is not rewritten."
            );
            false
        }
    };

    let pipeline = LocalPipeline::start("bench", PipelineOptions::default()).await?;
    let ca_dir = e2e::paths::log_dir("bench").join("ca");
    let ca = ThrowawayCa::create(&ca_dir)?;
    let plain = FaultProxy::start_with(
        FaultPlan::new(0),
        ProxyOptions {
            tls: None,
            added_latency: settings.latency,
        },
    )
    .await?;
    let tls = FaultProxy::start_with(
        FaultPlan::new(0),
        ProxyOptions {
            tls: Some(std::sync::Arc::new(ca.server_config()?)),
            added_latency: settings.latency,
        },
    )
    .await?;
    plain.forward_to(&pipeline.moto_endpoint())?;
    tls.forward_to(&pipeline.moto_endpoint())?;

    let user = NewUser::new(
        "bench00001",
        &[
            ("email", "bench00001@example.com"),
            ("given_name", "Bench"),
            ("family_name", "Mark"),
            ("custom:plan", "pro"),
        ],
    );
    let event = pipeline.sign_up(&user).await?.event;
    let bench = Bench {
        pipeline: &pipeline,
        plain: Transport {
            name: "plain HTTP",
            proxy: &plain,
            // The same store as over TLS (less the throw-away root), so that the two differ by
            // the handshake alone. Without SSL_CERT_FILE, rustls-native-certs reads the bundle
            // and then every file of /etc/ssl/certs, which on Debian is one file per
            // certificate: the whole store parsed twice, a cost provided.al2023 (whose
            // certificate directories hold bundle files) does not have in that form.
            trust_bundle: Some(ca.system_bundle.clone()),
        },
        tls: Transport {
            name: "TLS",
            proxy: &tls,
            trust_bundle: Some(ca.trust_bundle.clone()),
        },
        settings,
        quotas,
        event,
        template_memory: measure::template_memory(&pipeline).await?,
        bundle_certificates: ca.bundle_certificates,
    };
    let results = bench.run().await.context("the benchmark failed")?;
    let markdown = report::markdown(&bench, &results);
    println!("{markdown}");
    if write_docs && quotas {
        report::write_docs(&markdown)?;
        eprintln!("bench: docs/performance.md rewritten");
    }
    Ok(())
}
