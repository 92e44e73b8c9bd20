//! The main job on the local stack, end to end: moto, the deployed template, a real sign-up
//! and confirmation in a local user pool, the trigger and the consumer binaries, and the two
//! items they wrote. Run through `scripts/demo`, which installs and builds what it needs.

use std::time::Instant;

use anyhow::{Context, Result, ensure};
use e2e::pipeline::item_to_json;
use e2e::{LocalPipeline, NewUser, PipelineOptions};
use shared::ProfileId;

#[tokio::main]
async fn main() -> Result<()> {
    println!("demo: starting moto and deploying infra/template.yaml into it");
    let started = Instant::now();
    let pipeline = LocalPipeline::start("demo", PipelineOptions::default()).await?;
    println!(
        "demo: local stack ready in {:.1?} (moto pid {} at {}; stack {}; user pool {})",
        started.elapsed(),
        pipeline.moto_pid(),
        pipeline.moto_endpoint(),
        pipeline.stack.name,
        pipeline.pool.id,
    );

    let user = NewUser::new(
        "ana.garcia",
        &[
            ("email", "ana.garcia@example.com"),
            ("given_name", "Ana María"),
            ("family_name", "García Núñez"),
            ("phone_number", "+34600111222"),
            ("custom:plan", "pro"),
            ("custom:tenant_id", "acme"),
        ],
    );
    let signed_up = pipeline.sign_up(&user).await?;
    println!(
        "demo: signed up and confirmed {} (sub {})",
        signed_up.username, signed_up.sub
    );

    let invoked = Instant::now();
    let response = pipeline
        .invoke_trigger(&signed_up.event)
        .await
        .context("the trigger failed")?;
    let trigger_time = invoked.elapsed();
    ensure!(
        response == signed_up.event,
        "the trigger changed the Cognito event"
    );
    println!(
        "demo: trigger enqueued the confirmation and returned the event unchanged in {trigger_time:.1?}"
    );

    let report = pipeline.drain().await?;
    println!(
        "demo: consumer processed {} message(s): {} deleted, {} reported as failed",
        report.received, report.deleted, report.reported_failures
    );

    let profile_id = ProfileId::derive(&pipeline.pool.id, &signed_up.sub).to_string();
    let user_item = pipeline
        .user_item(&signed_up.sub)
        .await?
        .context("no users item was written")?;
    let profile_item = pipeline
        .profile_item(&profile_id)
        .await?
        .context("no profile item was written")?;
    println!(
        "\nusers table ({}):\n{}",
        pipeline.users_table(),
        serde_json::to_string_pretty(&item_to_json(&user_item))?
    );
    println!(
        "\nprofiles table ({}):\n{}",
        pipeline.profiles_table(),
        serde_json::to_string_pretty(&item_to_json(&profile_item))?
    );
    println!(
        "\ndemo: function logs in {}; stopping the functions and moto",
        pipeline.log_dir.display()
    );
    Ok(())
}
