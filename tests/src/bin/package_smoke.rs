//! One real invocation of each arm64 bootstrap that `sam build` produced, run by
//! `scripts/package`: each under `qemu-aarch64-static` with the arm64 C library of Debian's
//! `libc6-arm64-cross`, through the Runtime API emulator, against the local stack (deployed with
//! the welcome on). The trigger must return the Cognito event and enqueue the user; the consumer
//! must write both items and ask for the welcome; the reconciler must finish a run; the welcomer
//! must send the welcome.
//!
//! Usage: `package_smoke TRIGGER CONSUMER RECONCILER WELCOMER` (the four bootstraps).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use e2e::runtime_api::Placement;
use e2e::{LocalPipeline, NewUser, PipelineOptions};

/// Where `libc6-arm64-cross` puts the arm64 loader and C library.
const ARM64_SYSROOT: &str = "/usr/aarch64-linux-gnu";

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [trigger, consumer, reconciler, welcomer] = args.as_slice() else {
        bail!(
            "usage: package_smoke TRIGGER_BOOTSTRAP CONSUMER_BOOTSTRAP RECONCILER_BOOTSTRAP WELCOMER_BOOTSTRAP"
        );
    };
    let qemu = find_on_path("qemu-aarch64-static").context(
        "qemu-aarch64-static is not on the PATH: install Debian's qemu-user-static (scripts/package does)",
    )?;
    ensure!(
        Path::new(ARM64_SYSROOT)
            .join("lib/ld-linux-aarch64.so.1")
            .exists(),
        "no arm64 C library at {ARM64_SYSROOT}: install Debian's libc6-arm64-cross (scripts/package does)"
    );
    let placement = || Placement {
        launcher: vec![qemu.clone().into(), "-L".into(), ARM64_SYSROOT.into()],
        ..Placement::default()
    };

    const SENDER: &str = "smoke@example.com";
    const CONFIGURATION_SET: &str = "smoke-welcome";
    let options = PipelineOptions {
        stack_parameters: vec![
            ("WelcomeSenderIdentity".into(), SENDER.into()),
            ("WelcomeConfigurationSet".into(), CONFIGURATION_SET.into()),
        ],
        ..PipelineOptions::default()
    };
    let pipeline = LocalPipeline::start("package-smoke", options).await?;
    e2e::ses::verify_identity(&pipeline.sdk, SENDER).await?;
    e2e::ses::create_configuration_set(&pipeline.sdk, CONFIGURATION_SET).await?;
    let user = NewUser::new(
        "arm64smoke",
        &[("email", "arm64smoke@example.com"), ("given_name", "Arm")],
    );
    let confirmed = pipeline.sign_up(&user).await?;

    let arm64_trigger = pipeline
        .start_binary_placed("trigger", trigger, "arm64-trigger", &[], placement())
        .await?;
    let answer = arm64_trigger
        .invoke(&confirmed.event)
        .await
        .map_err(|e| anyhow::anyhow!("the arm64 trigger failed: {e}"))?;
    ensure!(
        answer == confirmed.event,
        "the arm64 trigger did not return the Cognito event"
    );

    let arm64_consumer = pipeline
        .start_binary_placed("consumer", consumer, "arm64-consumer", &[], placement())
        .await?;
    let report = pipeline.event_source_for(&arm64_consumer).poll_once().await?;
    ensure!(
        report.received == 1 && report.deleted == 1,
        "the arm64 consumer did not settle the trigger's message: {report:?}"
    );
    let sub = &confirmed.sub;
    ensure!(
        pipeline.user_item(sub).await?.is_some(),
        "the arm64 consumer wrote no users item"
    );
    ensure!(
        !pipeline.profiles_of(sub).await?.is_empty(),
        "the arm64 consumer wrote no profile"
    );
    // The reconciler: one whole run over the pool, which the consumer has just synced.
    let arm64_reconciler = pipeline
        .start_reconciler_placed(reconciler, Duration::from_secs(60), &[], placement())
        .await?;
    pipeline.start_reconcile_run().await?;
    pipeline
        .reconcile_source(&arm64_reconciler)
        .drain(Duration::from_secs(120))
        .await?;
    let lines = arm64_reconciler.settled_log_lines().await;
    let finished: Vec<serde_json::Value> = e2e::chaos::parsed(&lines, "reconcile_run_finished").collect();
    ensure!(
        matches!(finished.as_slice(), [run] if run["listed"] == 1 && run["drift"] == 0),
        "the arm64 reconciler did not finish a run over the one synced user: {finished:?}"
    );
    // The welcomer: the welcome the consumer asked for, sent.
    let arm64_welcomer = pipeline
        .start_binary_placed("welcomer", welcomer, "arm64-welcomer", &[], placement())
        .await?;
    let report = pipeline.welcome_source(&arm64_welcomer).poll_once().await?;
    ensure!(
        report.received == 1 && report.deleted == 1,
        "the arm64 welcomer did not settle the consumer's request: {report:?}"
    );
    let sent = e2e::ses::sent_mail(&pipeline.moto_endpoint())?;
    ensure!(
        matches!(sent.as_slice(), [mail] if mail.to == ["arm64smoke@example.com"]),
        "the arm64 welcomer sent no welcome: {sent:?}"
    );
    println!(
        "package: arm64 trigger, consumer, reconciler and welcomer each answered real invocations under qemu-aarch64-static; both items written, one run without drift, one welcome sent"
    );
    Ok(())
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}
