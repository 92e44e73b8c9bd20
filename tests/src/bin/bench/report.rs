//! The figures as Markdown, and the measured part of `docs/performance.md`.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::cost;
use crate::measure::{Bench, ColdCell, Function, Results, median, percentile, share_label};

/// The generated part of `docs/performance.md` sits between these lines.
pub const BEGIN: &str = "<!-- scripts/bench: measured figures begin -->";
pub const END: &str = "<!-- scripts/bench: measured figures end -->";

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "**not met**" }
}

fn cell<'r>(
    results: &'r Results,
    function: Function,
    memory: Option<u32>,
    transport: &str,
) -> Option<&'r ColdCell> {
    results.cold.iter().find(|c| {
        c.function == function
            && c.memory == memory
            && (function == Function::RuntimeOnly || c.transport == transport)
    })
}

pub fn markdown(bench: &Bench<'_>, results: &Results) -> String {
    let mut out = String::new();
    let s = &bench.settings;
    let template = bench.template_memory;
    let _ = writeln!(
        out,
        "Measured {} with `scripts/bench` on {}: {} fresh processes per cell (medians), {} warm \
         invocations per memory setting, {} ms added to every request by the proxy, CPU quotas \
         over a {} ms CFS period{}. Trust bundle: {} certificates (the system bundle plus the \
         throw-away root).\n",
        time::OffsetDateTime::now_utc().date(),
        machine(),
        s.cold_runs,
        s.warm,
        s.latency.as_millis(),
        s.period.as_millis(),
        if bench.quotas {
            ""
        } else {
            " (**quotas could not be set: whole cores**)"
        },
        bench.bundle_certificates,
    );

    let _ = writeln!(out, "### Cold start: spawn to first answer (median)\n");
    let _ = writeln!(
        out,
        "| CPU share | trigger, plain HTTP | trigger, TLS | of which the first invocation | runtime-only | TLS / plain | TLS / runtime-only | trigger init (spawn to first poll) | runtime-only init | attempts (max per cold start) | CPU to first answer: trigger TLS / runtime-only | consumer first batch of 10, TLS |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut shares: Vec<Option<u32>> = bench.memories().into_iter().map(Some).collect();
    shares.push(None);
    for memory in &shares {
        let (Some(plain), Some(tls), Some(bare), Some(consumer)) = (
            cell(results, Function::Trigger, *memory, bench.plain.name),
            cell(results, Function::Trigger, *memory, bench.tls.name),
            cell(results, Function::RuntimeOnly, *memory, ""),
            cell(results, Function::Consumer, *memory, bench.tls.name),
        ) else {
            continue;
        };
        let attempts = tls
            .samples
            .iter()
            .map(|x| x.requests.max(x.connections as usize))
            .max()
            .unwrap_or(0);
        let _ = writeln!(
            out,
            "| {}{} | {} | {} | {} | {} | {:.2}x | {:.1}x | {} | {} | {} | {} / {} | {} |",
            share_label(*memory),
            if *memory == Some(template.trigger) {
                " (trigger's setting)"
            } else {
                ""
            },
            ms(plain.first_answer()),
            ms(tls.first_answer()),
            ms(tls.median(|x| x.first_invocation)),
            ms(bare.first_answer()),
            ratio(tls.first_answer(), plain.first_answer()),
            ratio(tls.first_answer(), bare.first_answer()),
            ms(tls.median(|x| x.init)),
            ms(bare.median(|x| x.init)),
            attempts,
            ms(tls.median(|x| x.cpu_to_answer)),
            ms(bare.median(|x| x.cpu_to_answer)),
            ms(consumer.first_answer()),
        );
    }

    let _ = writeln!(
        out,
        "\n### Warm trigger over TLS: its own time against one `SendMessage` as the proxy sees it\n"
    );
    let _ = writeln!(
        out,
        "| memory | trigger p50 | SendMessage p50 | ratio | trigger p99 | SendMessage p99 | ratio | CPU per invocation: trigger | runtime-only | CPU quota per period |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    for warm in &results.warm_trigger {
        let (own50, send50) = (median(warm.own.clone()), median(warm.send_message.clone()));
        let (own99, send99) = (
            percentile(warm.own.clone(), 99.0),
            percentile(warm.send_message.clone(), 99.0),
        );
        let _ = writeln!(
            out,
            "| {} MB | {} | {} | {:.2}x | {} | {} | {:.2}x | {} | {} | {} of {} |",
            warm.memory,
            ms(own50),
            ms(send50),
            ratio(own50, send50),
            ms(own99),
            ms(send99),
            ratio(own99, send99),
            ms(warm.cpu_per_invocation),
            ms(warm.runtime_only_cpu_per_invocation),
            ms(Duration::from_micros(e2e::cpu_share::quota_us(
                warm.memory,
                bench.settings.period.as_micros() as u64
            ))),
            ms(bench.settings.period),
        );
    }

    let _ = writeln!(
        out,
        "\n### Consumer over TLS: a batch of 10 (20 conditional writes) against one bare `PutItem`\n"
    );
    let _ = writeln!(
        out,
        "| memory | warm batch p50 | bare PutItem p50 (proxy) | ratio | PutItems in flight at once (most) | moto's bound: latency + 20 x (bare PutItem - latency) | batch time outside its writes p50 | against a service that answers the 20 writes at once: outside + one PutItem | ratio | CPU per batch | first batch after a cold start (spawn to answer) |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|");
    for batch in &results.batches {
        let (b50, p50) = (median(batch.warm.clone()), median(batch.bare_put.clone()));
        let first = cell(results, Function::Consumer, Some(batch.memory), bench.tls.name)
            .map(|c| ms(c.median(|x| x.first_answer)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "| {} MB | {} | {} | {:.2}x | {} | {} | {} | {} | {:.2}x | {} | {} |",
            batch.memory,
            ms(b50),
            ms(p50),
            ratio(b50, p50),
            batch.peak_in_flight,
            ms(bench.settings.latency + p50.saturating_sub(bench.settings.latency) * 20),
            ms(median(batch.outside_writes.clone())),
            ms(batch.against_concurrent_service()),
            ratio(batch.against_concurrent_service(), p50),
            ms(batch.cpu_per_batch),
            first
        );
    }

    let peak = |function: Function, memory: u32| peak_rss_kib(bench, results, function, memory);
    let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
    let soak = &results.soak;
    let growth = soak.growth();
    let _ = writeln!(out, "\n### Memory (peak RSS of a cold start over TLS)\n");
    let _ = writeln!(out, "| measure | value |");
    let _ = writeln!(out, "|---|---|");
    let (trigger_peak, consumer_peak, bare_peak) = (
        peak(Function::Trigger, template.trigger),
        peak(Function::Consumer, template.consumer),
        peak(Function::RuntimeOnly, template.trigger),
    );
    let _ = writeln!(
        out,
        "| trigger | {} ({:.1}x runtime-only) |",
        mib(trigger_peak),
        trigger_peak as f64 / bare_peak.max(1) as f64
    );
    let _ = writeln!(
        out,
        "| consumer (after a batch of 10) | {} ({:.1}x runtime-only) |",
        mib(consumer_peak),
        consumer_peak as f64 / bare_peak.max(1) as f64
    );
    let _ = writeln!(out, "| runtime-only | {} |", mib(bare_peak));
    let _ = writeln!(
        out,
        "| trigger RSS after 1,000 / {} warm invocations | {} / {} ({:+.1}%) |",
        soak.invocations,
        mib(soak.rss_after_1000_kib),
        mib(soak.rss_after_all_kib),
        growth * 100.0
    );

    // Memory setting, as Lambda Power Tuning would choose it, offline.
    let _ = writeln!(
        out,
        "\n### Memory setting: duration and cost per million invocations (arm64)\n"
    );
    let _ = writeln!(
        out,
        "| function | memory | warm p50 | cold start (init + first invocation) | cost per million, all warm | cost per million, all cold | consumer against DynamoDB (model: the longer of outside + one PutItem and CPU at this share) | cost per million, model | cold sign-up target |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    for function in [Function::Trigger, Function::Consumer] {
        for memory in bench.memories() {
            let warm = match function {
                Function::Trigger => results
                    .warm_trigger
                    .iter()
                    .find(|w| w.memory == memory)
                    .map(|w| median(w.own.clone())),
                _ => results
                    .batches
                    .iter()
                    .find(|b| b.memory == memory)
                    .map(|b| median(b.warm.clone())),
            };
            let Some(warm) = warm else { continue };
            let modeled = match function {
                Function::Consumer => results.batches.iter().find(|b| b.memory == memory).map(|b| {
                    let d = b.modeled();
                    (ms(d), format!("${:.2}", cost::lambda_invocation(memory, d) * 1e6))
                }),
                _ => None,
            }
            .unwrap_or_else(|| ("-".to_owned(), "-".to_owned()));
            let Some(cold) =
                cell(results, function, Some(memory), bench.tls.name).map(|c| c.median(|x| x.first_answer))
            else {
                continue;
            };
            let target = match function {
                Function::Trigger => cold_sign_up(bench, results, memory)
                    .map(|target| verdict(target.met()).to_owned())
                    .unwrap_or_default(),
                _ => String::from("n/a"),
            };
            let chosen = memory
                == if function == Function::Trigger {
                    template.trigger
                } else {
                    template.consumer
                };
            let _ = writeln!(
                out,
                "| {}{} | {} MB | {} | {} | ${:.2} | ${:.2} | {} | {} | {} |",
                function.name(),
                if chosen { " (template)" } else { "" },
                memory,
                ms(warm),
                ms(cold),
                cost::lambda_invocation(memory, warm) * 1e6,
                cost::lambda_invocation(memory, cold) * 1e6,
                modeled.0,
                modeled.1,
                target,
            );
        }
    }

    out.push_str(&cost_model(bench, results));
    out.push_str(&targets(bench, results));
    out
}

/// Targets 1 and 4 at one memory setting: the trigger's cold sign-up over TLS against the same
/// binary over plain HTTP and against the runtime-only function, and their inits.
struct ColdSignUp {
    vs_plain: f64,
    vs_bare: f64,
    /// One connection and one request in every cold start: no attempt timed out.
    one_attempt: bool,
    init: f64,
}

impl ColdSignUp {
    fn met(&self) -> bool {
        self.vs_plain <= 1.5 && self.vs_bare <= 5.0 && self.one_attempt
    }
}

fn cold_sign_up(bench: &Bench<'_>, results: &Results, memory: u32) -> Option<ColdSignUp> {
    let plain = cell(results, Function::Trigger, Some(memory), bench.plain.name)?;
    let tls = cell(results, Function::Trigger, Some(memory), bench.tls.name)?;
    let bare = cell(results, Function::RuntimeOnly, Some(memory), "")?;
    Some(ColdSignUp {
        vs_plain: ratio(tls.first_answer(), plain.first_answer()),
        vs_bare: ratio(tls.first_answer(), bare.first_answer()),
        one_attempt: tls.samples.iter().all(|x| x.requests == 1 && x.connections == 1),
        init: ratio(tls.median(|x| x.init), bare.median(|x| x.init)),
    })
}

/// The highest peak RSS of `function`'s cold starts over TLS at `memory`.
fn peak_rss_kib(bench: &Bench<'_>, results: &Results, function: Function, memory: u32) -> u64 {
    cell(results, function, Some(memory), bench.tls.name)
        .and_then(|c| c.samples.iter().map(|x| x.peak_rss_kib).max())
        .unwrap_or(0)
}

fn cost_model(bench: &Bench<'_>, results: &Results) -> String {
    let template = bench.template_memory;
    let mut out = String::new();
    let trigger_warm = results.warm_trigger.iter().find(|w| w.memory == template.trigger);
    let batch = results.batches.iter().find(|b| b.memory == template.consumer);
    let (Some(trigger_warm), Some(batch)) = (trigger_warm, batch) else {
        return out;
    };
    let trigger = median(trigger_warm.own.clone());
    let send = median(trigger_warm.send_message.clone());
    // Against DynamoDB, not moto: moto answers the batch's 20 writes one at a time, which would
    // bill the consumer for moto's queue (see the model column of the memory-setting table).
    let batch_time = batch.modeled();
    let put = median(batch.bare_put.clone());
    let per = 1e6;
    let batch_size = 10.0;
    let ours = cost::lambda_invocation(template.trigger, trigger) * per
        + cost::lambda_invocation(template.consumer, batch_time) * per / batch_size
        + cost::sqs_requests_per_sign_up(10) * cost::SQS_REQUEST * per
        + cost::WRITE_UNITS_PER_SIGN_UP * cost::DYNAMODB_WRITE_UNIT * per;
    // Both writes inline in the trigger, one after the other, as the seed article does: the
    // trigger's time without its SendMessage, plus two PutItems.
    let inline_time = trigger.saturating_sub(send) + put * 2;
    let inline = cost::lambda_invocation(template.trigger, inline_time) * per
        + cost::WRITE_UNITS_PER_SIGN_UP * cost::DYNAMODB_WRITE_UNIT * per;
    // A trigger that starts a standard workflow per sign-up (StartExecution instead of
    // SendMessage, about the same time), the workflow writing both items.
    let step = cost::lambda_invocation(template.trigger, trigger) * per
        + cost::STEP_FUNCTIONS_TRANSITIONS_PER_SIGN_UP * cost::STEP_FUNCTIONS_TRANSITION * per
        + cost::WRITE_UNITS_PER_SIGN_UP * cost::DYNAMODB_WRITE_UNIT * per;
    let _ = writeln!(
        out,
        "\n### Cost per million confirmed sign-ups (warm: the trigger as measured, the consumer as modeled against DynamoDB)\n"
    );
    let _ = writeln!(
        out,
        "Prices: {}. Lambda ${}/M requests, ${}/GB-s (arm64); SQS ${}/M requests; DynamoDB on-demand ${}/M write units; Step Functions standard ${}/1,000 transitions.\n",
        cost::PRICES_AS_OF,
        cost::LAMBDA_REQUEST * 1e6,
        cost::LAMBDA_ARM64_GB_SECOND,
        cost::SQS_REQUEST * 1e6,
        cost::DYNAMODB_WRITE_UNIT * 1e6,
        cost::STEP_FUNCTIONS_TRANSITION * 1e3,
    );
    let _ = writeln!(out, "| design | per million sign-ups | what is in it |");
    let _ = writeln!(out, "|---|---|---|");
    let _ = writeln!(
        out,
        "| this one (trigger enqueues, consumer writes in batches of 10) | ${ours:.2} | trigger {} at {} MB; consumer {} per batch at {} MB (the model against DynamoDB); {:.1} SQS requests; 2 write units |",
        ms(trigger),
        template.trigger,
        ms(batch_time),
        template.consumer,
        cost::sqs_requests_per_sign_up(10)
    );
    let _ = writeln!(
        out,
        "| both writes inline in the trigger | ${inline:.2} | trigger {} at {} MB (two sequential PutItems instead of one SendMessage); 2 write units; the sign-up waits for both writes and a failed write is lost or fails the sign-up |",
        ms(inline_time),
        template.trigger
    );
    let _ = writeln!(
        out,
        "| a Step Functions standard workflow per sign-up | ${step:.2} | trigger {} at {} MB; {} transitions; 2 write units |",
        ms(trigger),
        template.trigger,
        cost::STEP_FUNCTIONS_TRANSITIONS_PER_SIGN_UP
    );
    out
}

fn targets(bench: &Bench<'_>, results: &Results) -> String {
    let template = bench.template_memory;
    let mut out = String::new();
    let _ = writeln!(out, "\n### Targets (ratios within this run)\n");
    let _ = writeln!(out, "| target | measured | |");
    let _ = writeln!(out, "|---|---|---|");
    if let Some(ColdSignUp {
        vs_plain,
        vs_bare,
        one_attempt,
        init,
    }) = cold_sign_up(bench, results, template.trigger)
    {
        let _ = writeln!(
            out,
            "| 1. cold sign-up at {} MB: TLS <= 1.5x plain HTTP | {vs_plain:.2}x | {} |",
            template.trigger,
            verdict(vs_plain <= 1.5)
        );
        let _ = writeln!(
            out,
            "| 1. cold sign-up at {} MB: TLS <= 5x runtime-only | {vs_bare:.1}x | {} |",
            template.trigger,
            verdict(vs_bare <= 5.0)
        );
        let _ = writeln!(
            out,
            "| 1. first attempt never times out on a cold start (one connection, one request) | {} | {} |",
            if one_attempt {
                "every cold start"
            } else {
                "a cold start retried"
            },
            verdict(one_attempt)
        );
        let _ = writeln!(
            out,
            "| 4. init (spawn to first poll) <= 4x runtime-only | {init:.1}x | {} |",
            verdict(init <= 4.0)
        );
    }
    if let Some(warm) = results.warm_trigger.iter().find(|w| w.memory == template.trigger) {
        let p50 = ratio(median(warm.own.clone()), median(warm.send_message.clone()));
        let p99 = ratio(
            percentile(warm.own.clone(), 99.0),
            percentile(warm.send_message.clone(), 99.0),
        );
        let _ = writeln!(
            out,
            "| 2. warm trigger <= 1.10x SendMessage (p50) | {p50:.2}x | {} |",
            verdict(p50 <= 1.10)
        );
        let _ = writeln!(
            out,
            "| 2. warm trigger <= 1.25x SendMessage (p99) | {p99:.2}x | {} |",
            verdict(p99 <= 1.25)
        );
    }
    if let Some(batch) = results.batches.iter().find(|b| b.memory == template.consumer) {
        let put = median(batch.bare_put.clone());
        let r = ratio(median(batch.warm.clone()), put);
        let _ = writeln!(
            out,
            "| 3. batch of 10 at {} MB <= 1.5x one bare PutItem, against moto (which answers one write at a time) | {r:.2}x | {} |",
            template.consumer,
            verdict(r <= 1.5)
        );
        let modeled = ratio(batch.modeled(), put);
        let _ = writeln!(
            out,
            "| 3. the same against a service that answers the 20 writes at once (the longer of the batch's time outside its writes + one PutItem, and its CPU time at this share; {} in flight at once) | {modeled:.2}x | {} |",
            batch.peak_in_flight,
            verdict(modeled <= 1.5 && batch.peak_in_flight >= 20)
        );
    }
    let peak = |function: Function, memory: u32| peak_rss_kib(bench, results, function, memory);
    let bare = peak(Function::RuntimeOnly, template.trigger).max(1) as f64;
    let worst = peak(Function::Trigger, template.trigger).max(peak(Function::Consumer, template.consumer))
        as f64
        / bare;
    let _ = writeln!(
        out,
        "| 5. peak RSS <= 4x runtime-only | {worst:.1}x | {} |",
        verdict(worst <= 4.0)
    );
    let soak = &results.soak;
    let growth = soak.growth();
    let _ = writeln!(
        out,
        "| 5. RSS after {} warm invocations within 10% of after 1,000 | {:+.1}% | {} |",
        soak.invocations,
        growth * 100.0,
        verdict(growth.abs() <= 0.10)
    );
    out
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    format!("{cores} cores ({model}), Linux {}", std::env::consts::ARCH)
}

/// Replaces the measured part of `docs/performance.md` with `markdown`.
pub fn write_docs(markdown: &str) -> Result<()> {
    let path = e2e::paths::workspace_root().join("docs/performance.md");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let (Some(begin), Some(end)) = (text.find(BEGIN), text.find(END)) else {
        anyhow::bail!(
            "{} has no `{BEGIN}` / `{END}` lines to write between",
            path.display()
        );
    };
    let updated = format!("{}{BEGIN}\n{markdown}\n{}", &text[..begin], &text[end..]);
    std::fs::write(&path, updated).with_context(|| format!("cannot write {}", path.display()))
}
