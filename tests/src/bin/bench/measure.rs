//! The measurements: fresh processes (cold starts), warm invocations, consumer batches and the
//! memory soak, each at a CPU share, through one of the two proxies.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use e2e::LocalPipeline;
use e2e::cpu_share::{CpuShare, MB_PER_VCPU};
use e2e::fault_proxy::{FaultProxy, PUT_ITEM, SEND_MESSAGE, Timing};
use e2e::pipeline::{envelope_for, local_sdk_config};
use e2e::runtime_api::{LambdaFunction, Placement};
use serde_json::Value;

use crate::MEMORY_SETTINGS;

pub struct Settings {
    /// Memory settings to measure instead of the template's and [`MEMORY_SETTINGS`].
    pub memories: Option<Vec<u32>>,
    /// Cold starts only (no warm, batch or soak runs): for investigating a cold start.
    pub cold_only: bool,
    pub cold_runs: usize,
    pub warm: usize,
    pub soak: usize,
    pub latency: Duration,
    pub period: Duration,
}

/// One way to reach the local stack: a proxy, and the trust bundle when it speaks TLS.
pub struct Transport<'a> {
    pub name: &'static str,
    pub proxy: &'a FaultProxy,
    pub trust_bundle: Option<PathBuf>,
}

impl Transport<'_> {
    /// The variables that point a function's SDK at this transport.
    fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![("AWS_ENDPOINT_URL", self.proxy.endpoint())];
        if let Some(bundle) = &self.trust_bundle {
            env.push(("SSL_CERT_FILE", bundle.display().to_string()));
        }
        env
    }
}

/// The memory the template gives each function.
#[derive(Debug, Clone, Copy)]
pub struct TemplateMemory {
    pub trigger: u32,
    pub consumer: u32,
}

pub async fn template_memory(pipeline: &LocalPipeline) -> Result<TemplateMemory> {
    let lambda = aws_sdk_lambda::Client::new(&pipeline.sdk);
    let memory = |name: String| {
        let lambda = lambda.clone();
        async move {
            let config = lambda
                .get_function_configuration()
                .function_name(&name)
                .send()
                .await
                .with_context(|| format!("GetFunctionConfiguration {name}"))?;
            let mb = config.memory_size().context("no MemorySize")?;
            Ok::<u32, anyhow::Error>(mb as u32)
        }
    };
    Ok(TemplateMemory {
        trigger: memory(pipeline.trigger.name().to_owned()).await?,
        consumer: memory(pipeline.consumer.name().to_owned()).await?,
    })
}

pub struct Bench<'a> {
    pub pipeline: &'a LocalPipeline,
    pub plain: Transport<'a>,
    pub tls: Transport<'a>,
    pub settings: Settings,
    pub quotas: bool,
    pub event: Value,
    pub template_memory: TemplateMemory,
    pub bundle_certificates: usize,
}

/// Which binary a measurement ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Trigger,
    Consumer,
    RuntimeOnly,
}

impl Function {
    pub fn name(self) -> &'static str {
        match self {
            Self::Trigger => "trigger",
            Self::Consumer => "consumer",
            Self::RuntimeOnly => "runtime-only",
        }
    }
}

/// One fresh process, from spawn to its first answer.
#[derive(Debug, Clone)]
pub struct ColdSample {
    /// Spawn to first poll of the Runtime API.
    pub init: Duration,
    /// Spawn to the first answer: what the first caller waits for.
    pub first_answer: Duration,
    /// The first invocation alone.
    pub first_invocation: Duration,
    /// CPU time the process had used by its first answer (init and first invocation): unlike
    /// the times, not rounded to the CFS periods a small share spreads it over.
    pub cpu_to_answer: Duration,
    /// TLS handshakes (connections) the process made to the proxy.
    pub connections: u64,
    /// Requests that reached the proxy: more than one per call is a retried attempt.
    pub requests: usize,
    pub peak_rss_kib: u64,
}

/// Fresh processes of one function at one memory setting (`None`: whole cores) and transport.
#[derive(Debug, Clone)]
pub struct ColdCell {
    pub function: Function,
    pub memory: Option<u32>,
    pub transport: &'static str,
    pub samples: Vec<ColdSample>,
}

impl ColdCell {
    pub fn median(&self, pick: impl Fn(&ColdSample) -> Duration) -> Duration {
        median(self.samples.iter().map(pick).collect())
    }

    /// The median spawn-to-first-answer: what the first caller after a cold start waits for.
    pub fn first_answer(&self) -> Duration {
        self.median(|x| x.first_answer)
    }
}

/// Warm invocations of the trigger: its own time, and `SendMessage` as the proxy saw it.
#[derive(Debug, Clone)]
pub struct WarmTrigger {
    pub memory: u32,
    pub own: Vec<Duration>,
    pub send_message: Vec<Duration>,
    /// CPU time (user + system) per warm invocation, over all of them.
    pub cpu_per_invocation: Duration,
    /// The same for the runtime-only function, at the same share.
    pub runtime_only_cpu_per_invocation: Duration,
}

/// Consumer batches of 10 messages (20 conditional writes) at one memory setting.
#[derive(Debug, Clone)]
pub struct Batches {
    pub memory: u32,
    /// The consumer's own time for each warm batch.
    pub warm: Vec<Duration>,
    /// For each warm batch, the part of its own time in which the proxy had no `PutItem` of it
    /// in flight: decoding, planning, the batch response, and waiting to send. What the batch
    /// would add to one `PutItem` against a service that answers its writes concurrently.
    pub outside_writes: Vec<Duration>,
    /// The most `PutItem`s the proxy had in flight at once during a batch: 20 when every
    /// write of the batch is sent without waiting for another.
    pub peak_in_flight: usize,
    /// One bare `PutItem`, as the proxy sees it (the same proxy, one at a time).
    pub bare_put: Vec<Duration>,
    /// CPU time (user + system) per warm batch.
    pub cpu_per_batch: Duration,
}

impl Batches {
    /// What a warm batch would take against a service that answers all of its writes at once
    /// (DynamoDB does; moto answers one at a time): its time outside the writes plus one bare
    /// `PutItem` (medians).
    pub fn against_concurrent_service(&self) -> Duration {
        median(self.outside_writes.clone()) + median(self.bare_put.clone())
    }

    /// The batch's duration against such a service at this memory setting's CPU share: the
    /// longer of the above and its CPU time at that share (against moto the writes' wait
    /// refills the quota; against a fast service the CPU may be what bounds it).
    pub fn modeled(&self) -> Duration {
        let at_share = self
            .cpu_per_batch
            .mul_f64(f64::from(MB_PER_VCPU) / f64::from(self.memory.min(MB_PER_VCPU)));
        self.against_concurrent_service().max(at_share)
    }
}

#[derive(Debug, Clone)]
pub struct Soak {
    pub invocations: usize,
    pub rss_after_1000_kib: u64,
    pub rss_after_all_kib: u64,
}

impl Soak {
    /// RSS after all the invocations against after 1,000, as a fraction (0.01 is 1% more).
    pub fn growth(&self) -> f64 {
        self.rss_after_all_kib as f64 / self.rss_after_1000_kib.max(1) as f64 - 1.0
    }
}

pub struct Results {
    pub cold: Vec<ColdCell>,
    pub warm_trigger: Vec<WarmTrigger>,
    pub batches: Vec<Batches>,
    pub soak: Soak,
}

impl Bench<'_> {
    /// The memory settings measured: the template's and [`MEMORY_SETTINGS`], in order.
    pub fn memories(&self) -> Vec<u32> {
        if let Some(memories) = &self.settings.memories {
            return memories.clone();
        }
        let mut all: Vec<u32> = MEMORY_SETTINGS
            .iter()
            .copied()
            .chain([self.template_memory.trigger, self.template_memory.consumer])
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    pub async fn run(&self) -> Result<Results> {
        let mut cold = Vec::new();
        let mut shares: Vec<Option<u32>> = self.memories().into_iter().map(Some).collect();
        shares.push(None);
        for memory in &shares {
            for transport in [&self.plain, &self.tls] {
                eprintln!(
                    "bench: trigger cold starts, {}, {}",
                    share_label(*memory),
                    transport.name
                );
                cold.push(self.cold_cell(Function::Trigger, *memory, transport).await?);
            }
            eprintln!("bench: runtime-only cold starts, {}", share_label(*memory));
            cold.push(
                self.cold_cell(Function::RuntimeOnly, *memory, &self.plain)
                    .await?,
            );
            eprintln!("bench: consumer cold starts, {}, TLS", share_label(*memory));
            cold.push(self.cold_cell(Function::Consumer, *memory, &self.tls).await?);
        }
        let mut warm_trigger = Vec::new();
        let mut batches = Vec::new();
        if self.settings.cold_only {
            return Ok(Results {
                cold,
                warm_trigger,
                batches,
                soak: Soak {
                    invocations: 0,
                    rss_after_1000_kib: 0,
                    rss_after_all_kib: 0,
                },
            });
        }
        for memory in self.memories() {
            eprintln!("bench: warm trigger, {memory} MB, TLS");
            warm_trigger.push(self.warm_trigger(memory).await?);
            eprintln!("bench: consumer batches, {memory} MB, TLS");
            batches.push(self.batches(memory).await?);
        }
        eprintln!(
            "bench: memory soak, {} warm trigger invocations at {} MB, TLS",
            self.settings.soak, self.template_memory.trigger
        );
        let soak = self.soak().await?;
        Ok(Results {
            cold,
            warm_trigger,
            batches,
            soak,
        })
    }

    /// A CPU share for `memory` (none for whole cores, or where quotas cannot be set).
    fn share(&self, memory: Option<u32>) -> Result<Option<CpuShare>> {
        match memory {
            Some(mb) if self.quotas => Ok(Some(CpuShare::create(mb, self.settings.period)?)),
            _ => Ok(None),
        }
    }

    async fn start(
        &self,
        function: Function,
        memory: Option<u32>,
        share: &Option<CpuShare>,
        transport: &Transport<'_>,
        label: &str,
    ) -> Result<LambdaFunction> {
        let (like, binary) = match function {
            Function::Trigger => ("trigger", "trigger"),
            Function::Consumer => ("consumer", "consumer"),
            Function::RuntimeOnly => ("trigger", "runtime_only"),
        };
        let env = transport.env();
        let changes: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let placement = Placement {
            memory_mb: memory,
            cgroup_procs: share.as_ref().map(CpuShare::procs_file),
            ..Placement::default()
        };
        self.pipeline
            .start_placed(like, binary, &format!("bench-{label}"), &changes, placement)
            .await
    }

    async fn cold_cell(
        &self,
        function: Function,
        memory: Option<u32>,
        transport: &Transport<'_>,
    ) -> Result<ColdCell> {
        let mut samples = Vec::new();
        for run in 0..self.settings.cold_runs {
            samples.push(
                self.cold_sample(function, memory, transport, run)
                    .await
                    .with_context(|| {
                        format!(
                            "{} cold start {run} at {}, {}",
                            function.name(),
                            share_label(memory),
                            transport.name
                        )
                    })?,
            );
        }
        Ok(ColdCell {
            function,
            memory,
            transport: transport.name,
            samples,
        })
    }

    async fn cold_sample(
        &self,
        function: Function,
        memory: Option<u32>,
        transport: &Transport<'_>,
        run: usize,
    ) -> Result<ColdSample> {
        if function == Function::Consumer {
            self.consumer_batch(10).await?;
        }
        let share = self.share(memory)?;
        let proxy = transport.proxy;
        let connections = proxy.connections();
        proxy.take_timings();
        let label = format!("{}-{}-{run}", function.name(), share_label(memory));
        let process = self.start(function, memory, &share, transport, &label).await?;
        let times = match function {
            Function::Consumer => {
                let report = self.pipeline.event_source_for(&process).poll_once().await?;
                ensure!(
                    report.deleted == 10,
                    "first batch: {report:?}: not every message was written"
                );
                process.last_invocation().context("no invocation")?
            }
            _ => {
                let (outcome, times) = process.invoke_timed(&self.event).await;
                let answer = outcome.map_err(|e| anyhow::anyhow!("{e}"))?;
                ensure!(
                    function != Function::Trigger || answer == self.event,
                    "the trigger did not return the event"
                );
                times
            }
        };
        let cpu_to_answer = cpu_time(process.pid().context("the function has no process")?)?;
        let started = process.process_times().context("no process times")?;
        let sample = ColdSample {
            init: started.init().context("the function never polled")?,
            first_answer: times
                .answered
                .context("no answer time")?
                .saturating_duration_since(started.spawned),
            first_invocation: times.own().context("no invocation time")?,
            cpu_to_answer,
            connections: proxy.connections() - connections,
            requests: proxy.take_timings().len(),
            peak_rss_kib: process.peak_rss_kib().unwrap_or_default(),
        };
        drop(process);
        drop(share);
        Ok(sample)
    }

    /// `size` fresh users' envelopes on an otherwise empty queue.
    async fn consumer_batch(&self, size: usize) -> Result<()> {
        // Whatever the trigger runs left on the queue is settled first by the main consumer.
        self.pipeline.drain().await?;
        for _ in 0..size {
            let sub = uuid::Uuid::new_v4().to_string();
            let username = format!("bench-{}", &sub[..8]);
            let body = envelope_for(
                &self.pipeline.pool.id,
                &sub,
                &username,
                &[("email", "bench@example.com"), ("given_name", "Bench")],
            );
            self.pipeline.send_raw(&body).await?;
        }
        Ok(())
    }

    async fn warm_trigger(&self, memory: u32) -> Result<WarmTrigger> {
        let share = self.share(Some(memory))?;
        let (process, pid) = self
            .warmed_up(Function::Trigger, memory, &share, &format!("warm-{memory}"))
            .await?;
        self.tls.proxy.take_timings();
        let cpu_before = cpu_time(pid)?;
        let mut own = Vec::with_capacity(self.settings.warm);
        for _ in 0..self.settings.warm {
            let (outcome, times) = process.invoke_timed(&self.event).await;
            outcome.map_err(|e| anyhow::anyhow!("warm invocation: {e}"))?;
            own.push(times.own().context("no invocation time")?);
        }
        let cpu_per_invocation = (cpu_time(pid)? - cpu_before) / self.settings.warm.max(1) as u32;
        let send_message = durations_of(self.tls.proxy.take_timings(), SEND_MESSAGE);
        drop(process);
        // What the invocations enqueued is not for the consumer runs that follow.
        self.discard_queue().await?;
        let runtime_only_cpu_per_invocation = self.runtime_only_cpu(memory, &share).await?;
        ensure!(
            send_message.len() == own.len(),
            "{} SendMessage requests for {} invocations: attempts were retried",
            send_message.len(),
            own.len()
        );
        Ok(WarmTrigger {
            memory,
            own,
            send_message,
            cpu_per_invocation,
            runtime_only_cpu_per_invocation,
        })
    }

    /// A fresh process of `function` over TLS at `memory`'s share that has answered its first
    /// (cold) invocation, and its process id.
    async fn warmed_up(
        &self,
        function: Function,
        memory: u32,
        share: &Option<CpuShare>,
        label: &str,
    ) -> Result<(LambdaFunction, u32)> {
        let process = self
            .start(function, Some(memory), share, &self.tls, label)
            .await?;
        process
            .invoke(&self.event)
            .await
            .map_err(|e| anyhow::anyhow!("{} first invocation: {e}", function.name()))?;
        let pid = process
            .pid()
            .with_context(|| format!("the {} has no process", function.name()))?;
        Ok((process, pid))
    }

    /// CPU time per warm invocation of the runtime-only function, over as many invocations as
    /// the warm trigger's.
    async fn runtime_only_cpu(&self, memory: u32, share: &Option<CpuShare>) -> Result<Duration> {
        let label = format!("warm-runtime-only-{memory}");
        let (process, pid) = self
            .warmed_up(Function::RuntimeOnly, memory, share, &label)
            .await?;
        let before = cpu_time(pid)?;
        for _ in 0..self.settings.warm {
            process
                .invoke(&self.event)
                .await
                .map_err(|e| anyhow::anyhow!("runtime-only warm invocation: {e}"))?;
        }
        Ok((cpu_time(pid)? - before) / self.settings.warm.max(1) as u32)
    }

    async fn batches(&self, memory: u32) -> Result<Batches> {
        let share = self.share(Some(memory))?;
        let process = self
            .start(
                Function::Consumer,
                Some(memory),
                &share,
                &self.tls,
                &format!("batch-{memory}"),
            )
            .await?;
        let source = self.pipeline.event_source_for(&process);
        let runs = (self.settings.warm / 20).max(5);
        let mut warm = Vec::with_capacity(runs);
        let mut outside_writes = Vec::with_capacity(runs);
        let mut peak_in_flight = 0;
        let pid = process.pid().context("the consumer has no process")?;
        let mut cpu_before = Duration::ZERO;
        for run in 0..=runs {
            self.consumer_batch(10).await?;
            self.tls.proxy.take_timings();
            if run == 1 {
                cpu_before = cpu_time(pid)?;
            }
            let report = source.poll_once().await?;
            let puts: Vec<Timing> = self
                .tls
                .proxy
                .take_timings()
                .into_iter()
                .filter(|t| t.operation == PUT_ITEM)
                .collect();
            peak_in_flight = peak_in_flight.max(in_flight(&puts));
            ensure!(
                report.deleted == 10,
                "batch {run}: {report:?}: not every message was written"
            );
            // The first batch is the cold one, measured with the cold starts.
            if run > 0 {
                warm.push(report.function_time);
                outside_writes.push(report.function_time.saturating_sub(covered(&puts)));
            }
        }
        let cpu_per_batch = (cpu_time(pid)? - cpu_before) / runs.max(1) as u32;
        drop(process);
        drop(share);

        // One bare conditional PutItem at a time through the same proxy, as the consumer's.
        let sdk = local_sdk_config(&self.plain.proxy.endpoint()).await;
        let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
        let table = self.pipeline.users_table().to_owned();
        self.plain.proxy.take_timings();
        for _ in 0..runs * 2 {
            dynamodb
                .put_item()
                .table_name(&table)
                .item(
                    shared::mapping::USERS_KEY,
                    aws_sdk_dynamodb::types::AttributeValue::S(format!(
                        "bench-bare-{}",
                        uuid::Uuid::new_v4()
                    )),
                )
                .condition_expression("attribute_not_exists(#k)")
                .expression_attribute_names("#k", shared::mapping::USERS_KEY)
                .send()
                .await
                .context("bare PutItem")?;
        }
        let bare_put = durations_of(self.plain.proxy.take_timings(), PUT_ITEM);
        if bare_put.is_empty() {
            bail!("the proxy saw no bare PutItem");
        }
        Ok(Batches {
            memory,
            warm,
            outside_writes,
            peak_in_flight,
            bare_put,
            cpu_per_batch,
        })
    }

    async fn soak(&self) -> Result<Soak> {
        let memory = self.template_memory.trigger;
        let share = self.share(Some(memory))?;
        let process = self
            .start(Function::Trigger, Some(memory), &share, &self.tls, "soak")
            .await?;
        let mut rss_after_1000_kib = 0;
        for i in 1..=self.settings.soak {
            process
                .invoke(&self.event)
                .await
                .map_err(|e| anyhow::anyhow!("soak invocation {i}: {e}"))?;
            if i == 1000 {
                rss_after_1000_kib = process.rss_kib().unwrap_or_default();
            }
            if i % 1000 == 0 {
                self.tls.proxy.take_timings();
                // moto's SendMessage slows as its queue grows: keep the queue short.
                self.discard_queue().await?;
            }
        }
        Ok(Soak {
            invocations: self.settings.soak,
            rss_after_1000_kib,
            rss_after_all_kib: process.rss_kib().unwrap_or_default(),
        })
    }
}

impl Bench<'_> {
    /// Receives and deletes whatever the sync queue holds, processing none of it.
    async fn discard_queue(&self) -> Result<()> {
        let sqs = &self.pipeline.sqs;
        let url = self.pipeline.queue_url();
        loop {
            let received = sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .send()
                .await
                .context("ReceiveMessage")?;
            let entries: Vec<_> = received
                .messages()
                .iter()
                .enumerate()
                .filter_map(|(i, m)| {
                    aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .set_receipt_handle(m.receipt_handle().map(str::to_owned))
                        .build()
                        .ok()
                })
                .collect();
            if entries.is_empty() {
                return Ok(());
            }
            sqs.delete_message_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
                .context("DeleteMessageBatch")?;
        }
    }
}

pub fn share_label(memory: Option<u32>) -> String {
    match memory {
        Some(mb) => format!("{mb} MB"),
        None => "whole core".to_owned(),
    }
}

/// How long at least one of `timings` was in flight (the length of the union of their
/// intervals).
fn covered(timings: &[Timing]) -> Duration {
    let mut spans: Vec<(std::time::Instant, std::time::Instant)> = timings
        .iter()
        .map(|t| (t.received, t.received + t.elapsed))
        .collect();
    spans.sort_unstable();
    let mut total = Duration::ZERO;
    let mut current: Option<(std::time::Instant, std::time::Instant)> = None;
    for (start, end) in spans {
        current = match current {
            Some((s, e)) if start <= e => Some((s, e.max(end))),
            Some((s, e)) => {
                total += e - s;
                Some((start, end))
            }
            None => Some((start, end)),
        };
    }
    if let Some((s, e)) = current {
        total += e - s;
    }
    total
}

/// The CPU time a process's threads have run, in nanoseconds from each thread's
/// `/proc/<pid>/task/<tid>/schedstat` (the clock-tick `utime`/`stime` of `/proc/<pid>/stat` is
/// too coarse for a millisecond an invocation). A thread that exits between two readings drops
/// out of the second: the functions run on one thread (tokio's `current_thread`), and the
/// blocking pool's threads, which resolve names at connect, outlive the measurements.
fn cpu_time(pid: u32) -> Result<Duration> {
    let tasks = format!("/proc/{pid}/task");
    let mut total = 0u64;
    for task in std::fs::read_dir(&tasks).with_context(|| tasks.clone())? {
        let path = task?.path().join("schedstat");
        // A thread may end between listing and reading.
        let Ok(stat) = std::fs::read_to_string(&path) else {
            continue;
        };
        let on_cpu: u64 = stat
            .split_whitespace()
            .next()
            .and_then(|ns| ns.parse().ok())
            .with_context(|| format!("unexpected {}: {stat:?}", path.display()))?;
        total += on_cpu;
    }
    Ok(Duration::from_nanos(total))
}

/// The most requests in flight at once.
fn in_flight(timings: &[Timing]) -> usize {
    let mut edges: Vec<(std::time::Instant, i32)> = timings
        .iter()
        .flat_map(|t| [(t.received, 1), (t.received + t.elapsed, -1)])
        .collect();
    // An end sorts before a start at the same instant.
    edges.sort_by_key(|&(at, step)| (at, step));
    let (mut now, mut peak) = (0i32, 0i32);
    for (_, step) in edges {
        now += step;
        peak = peak.max(now);
    }
    peak as usize
}

fn durations_of(timings: Vec<Timing>, operation: &str) -> Vec<Duration> {
    timings
        .into_iter()
        .filter(|t| t.operation == operation)
        .map(|t| t.elapsed)
        .collect()
}

pub fn median(values: Vec<Duration>) -> Duration {
    percentile(values, 50.0)
}

pub fn percentile(mut values: Vec<Duration>, p: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    values.sort_unstable();
    let rank = ((p / 100.0) * (values.len() - 1) as f64).round() as usize;
    values[rank.min(values.len() - 1)]
}
