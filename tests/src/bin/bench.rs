//! Measures the pipeline on the local stack: trigger latency (what Cognito waits for), its worst
//! case when SQS is unreachable or hangs, consumer throughput, and peak memory of both binaries.
//! Run through `scripts/bench` (release binaries). Figures go to stdout as a Markdown table.
//!
//! `BENCH_USERS` sets how many users are confirmed (default 300).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use e2e::lambda::LambdaFunction;
use e2e::{LocalPipeline, NewUser, PipelineOptions};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<()> {
    let users: usize = std::env::var("BENCH_USERS")
        .ok()
        .map(|v| v.parse().context("BENCH_USERS must be a number"))
        .transpose()?
        .unwrap_or(300);
    let pipeline = LocalPipeline::start("bench", PipelineOptions::default()).await?;

    eprintln!("bench: signing up {users} users in the local pool");
    let mut events = Vec::with_capacity(users);
    for i in 0..users {
        let user = NewUser::new(
            &format!("bench{i:05}"),
            &[
                ("email", &format!("bench{i:05}@example.com")),
                ("given_name", "Bench"),
                ("family_name", "Mark"),
                ("custom:plan", "pro"),
            ],
        );
        events.push(pipeline.sign_up(&user).await?.event);
    }

    eprintln!("bench: invoking the trigger {users} times");
    let mut latencies = Vec::with_capacity(users);
    for event in &events {
        let started = Instant::now();
        pipeline.invoke_trigger(event).await.context("trigger failed")?;
        latencies.push(started.elapsed());
    }

    eprintln!("bench: draining the queue through the consumer");
    let started = Instant::now();
    let report = pipeline.drain().await?;
    let drain_time = started.elapsed();
    anyhow::ensure!(
        report.deleted == users,
        "not every message was processed: {report:?}"
    );

    eprintln!("bench: worst cases of the trigger with SQS unreachable");
    let refused = worst_case(&pipeline, &events[0], "refused", &closed_port_endpoint()?).await?;
    let (blackhole_endpoint, _blackhole) = blackhole().await?;
    let hanging = worst_case(&pipeline, &events[0], "blackhole", &blackhole_endpoint).await?;

    latencies.sort();
    println!("| measure | value |");
    println!("|---|---|");
    println!("| users confirmed | {users} |");
    println!(
        "| trigger invocation p50 | {:.1?} |",
        percentile(&latencies, 50.0)
    );
    println!(
        "| trigger invocation p99 | {:.1?} |",
        percentile(&latencies, 99.0)
    );
    println!(
        "| trigger invocation max | {:.1?} |",
        latencies.last().copied().unwrap_or_default()
    );
    println!("| trigger, SQS connection refused (3 attempts) | {refused:.1?} |");
    println!("| trigger, SQS accepts but never answers (timeouts) | {hanging:.1?} |");
    println!(
        "| consumer: {users} messages drained | {drain_time:.1?} ({:.0} users/s, {} batches of up to {}) |",
        users as f64 / drain_time.as_secs_f64(),
        report
            .received
            .div_ceil(pipeline.event_source.batch_size as usize),
        pipeline.event_source.batch_size,
    );
    let kib = |f: &LambdaFunction| f.peak_rss_kib().map(|k| format!("{:.1} MiB", k as f64 / 1024.0));
    println!(
        "| trigger peak RSS | {} |",
        kib(&pipeline.trigger).unwrap_or_else(|| "n/a".into())
    );
    println!(
        "| consumer peak RSS | {} |",
        kib(&pipeline.consumer).unwrap_or_else(|| "n/a".into())
    );
    Ok(())
}

/// How long the trigger takes (and whether it still returns the event) with SQS at `endpoint`.
async fn worst_case(
    pipeline: &LocalPipeline,
    event: &Value,
    label: &str,
    endpoint: &str,
) -> Result<Duration> {
    let trigger = pipeline
        .start_trigger_variant(label, &[("AWS_ENDPOINT_URL_SQS", endpoint)])
        .await?;
    let started = Instant::now();
    let response = trigger.invoke(event).await.context("trigger failed")?;
    let elapsed = started.elapsed();
    anyhow::ensure!(&response == event, "the trigger did not return the event");
    Ok(elapsed)
}

fn closed_port_endpoint() -> Result<String> {
    Ok(format!("http://127.0.0.1:{}", e2e::moto::free_port()?))
}

/// A server that accepts connections and never answers: the worst network failure.
async fn blackhole() -> Result<(String, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    Ok((endpoint, task))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}
