//! End-to-end: the real `ops` binary against moto, with the template deployed into it.
//!
//! Each test starts its own local pipeline (moto, the stack `cognito-user-sync`, a user pool,
//! the trigger and consumer binaries) and runs `ops` as an operator would: as a process, with
//! the SDK's standard environment (`AWS_ENDPOINT_URL` pointing at moto) and `--json` reports.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Output;

use aws_sdk_cognitoidentityprovider::types::{
    AccountRecoverySettingType, AdminCreateUserConfigType, AdvancedSecurityModeType, DefaultEmailOptionType,
    DeletionProtectionType, DeviceConfigurationType, EmailConfigurationType, EmailSendingAccountType,
    LambdaConfigType, MessageTemplateType, PasswordPolicyType, RecoveryOptionNameType, RecoveryOptionType,
    SmsConfigurationType, UserAttributeUpdateSettingsType, UserPoolAddOnsType, UserPoolMfaType,
    UserPoolPolicyType, UserPoolTierType, UserPoolType, VerificationMessageTemplateType,
    VerifiedAttributeType,
};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::QueueAttributeName;
use e2e::pipeline::{ConfirmedSignUp, envelope_for, s};
use e2e::{LocalPipeline, NewUser, PipelineOptions};
use serde_json::{Value, json};
use shared::{ConfirmationSource, envelope};

const STACK: &str = "cognito-user-sync";

async fn start(label: &str) -> LocalPipeline {
    LocalPipeline::start_or_panic(label, PipelineOptions::default()).await
}

async fn start_with(label: &str, options: PipelineOptions) -> LocalPipeline {
    LocalPipeline::start_or_panic(label, options).await
}

/// One run of the `ops` binary.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Every stdout line, parsed as JSON.
    fn lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}\n{self}")))
            .collect()
    }

    /// The one JSON report a subcommand prints.
    fn report(&self) -> Value {
        let mut lines = self.lines();
        assert_eq!(lines.len(), 1, "expected one report line:\n{self}");
        lines.remove(0)
    }

    fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "unexpected exit code:\n{self}");
        self
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// The environment an operator's shell would have against this stack: the SDK's standard
/// variables only. Nothing is inherited, so the machine's own AWS settings cannot leak in.
fn operator_env(pipeline: &LocalPipeline) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", pipeline.moto_endpoint()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        (
            "HOME",
            std::env::temp_dir().join("ops-e2e-no-home").display().to_string(),
        ),
    ]
}

/// `ops --stack-name cognito-user-sync ARGS` in the operator's environment.
async fn ops(pipeline: &LocalPipeline, args: &[&str]) -> Run {
    let mut all = vec!["--stack-name", STACK];
    all.extend_from_slice(args);
    ops_with_env(&operator_env(pipeline), &all).await
}

async fn ops_with_env(env: &[(&str, String)], args: &[&str]) -> Run {
    let binary = e2e::paths::workspace_binary("ops").unwrap_or_else(|err| panic!("{err:#}"));
    let output = tokio::process::Command::new(binary)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .args(args)
        .output()
        .await
        .expect("ops runs");
    Run::from(output)
}

fn sorted(items: impl IntoIterator<Item = String>) -> Vec<String> {
    let set: BTreeSet<String> = items.into_iter().collect();
    set.into_iter().collect()
}

/// (visible, in flight) messages of a queue.
async fn depth(pipeline: &LocalPipeline, url: &str) -> (u64, u64) {
    pipeline.queue_counts(url).await.unwrap()
}

/// Every body on a queue (received, so hidden for a minute afterwards).
async fn bodies(pipeline: &LocalPipeline, url: &str) -> Vec<String> {
    pipeline.queue_bodies(url).await.unwrap()
}

async fn send(pipeline: &LocalPipeline, url: &str, body: &str) {
    pipeline
        .sqs
        .send_message()
        .queue_url(url)
        .message_body(body)
        .send()
        .await
        .unwrap();
}

fn person(i: usize) -> NewUser {
    NewUser::new(
        &format!("ops.user{i:03}"),
        &[
            ("email", &format!("ops.pii{i:03}@example.com")),
            ("given_name", &format!("Žofia{i:03}")),
            ("family_name", "Ørsted"),
            ("custom:plan", "pro"),
        ],
    )
}

/// Signs up and confirms users in Cognito without invoking the trigger: users who confirmed
/// before the trigger was attached (or whose enqueue failed).
async fn confirmed_without_trigger(
    pipeline: &LocalPipeline,
    range: std::ops::Range<usize>,
) -> Vec<ConfirmedSignUp> {
    let mut users = Vec::new();
    for i in range {
        users.push(
            pipeline
                .sign_up(&person(i))
                .await
                .expect("sign-up and confirmation"),
        );
    }
    users
}

/// Signs users up without confirming them.
async fn unconfirmed(pipeline: &LocalPipeline, range: std::ops::Range<usize>) {
    for i in range {
        pipeline
            .cognito
            .sign_up()
            .client_id(&pipeline.pool.client_id)
            .username(format!("unconfirmed{i:03}"))
            .password("Correct-Horse-9-Battery!")
            .send()
            .await
            .expect("SignUp");
    }
}

/// The subs with a users item, and the subs with a profile, sorted.
async fn synced(pipeline: &LocalPipeline) -> (Vec<String>, Vec<String>) {
    (
        table_keys(pipeline, pipeline.users_table(), "user_id").await,
        table_keys(pipeline, pipeline.profiles_table(), "user_id").await,
    )
}

async fn table_keys(pipeline: &LocalPipeline, table: &str, key: &str) -> Vec<String> {
    sorted(
        pipeline
            .scan(table)
            .await
            .unwrap()
            .iter()
            .filter_map(|item| s(item, key).map(str::to_owned)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_peek_shows_why_each_message_failed_masks_pii_and_consumes_nothing() {
    let pipeline = start("ops_dlq_peek").await;
    let foreign_sub = "3c2b1a00-0000-4000-8000-0000000000f1";
    let bad = [
        "not json at all, from leak.peek@example.com".to_owned(),
        json!({"version": 1, "source": "post_confirmation", "user_pool_id": pipeline.pool.id,
               "sub": "5d0e0000-0000-4000-8000-000000000001", "username": ["peek.username"],
               "confirmed_at": "2026-01-01T00:00:00Z", "attributes": {}})
        .to_string(),
        // Valid, but for another pool: the consumer refuses it.
        envelope_for(
            "eu-west-1_SomeoneElse1",
            foreign_sub,
            "peek.foreigner",
            &[
                ("email", "peek.foreigner@example.com"),
                ("given_name", "Peeky"),
                ("custom:plan", "gold"),
            ],
        ),
    ];
    for body in &bad {
        pipeline.send_raw(body).await.unwrap();
    }
    pipeline.drain().await.unwrap();
    assert_eq!(
        depth(&pipeline, pipeline.dlq_url()).await,
        (3, 0),
        "the bad messages are in the DLQ"
    );

    let run = ops(&pipeline, &["--json", "dlq", "peek"]).await;
    run.assert_code(0);
    let rows = run.lines();
    assert_eq!(rows.len(), 3, "{run}");
    let by_reason: BTreeMap<&str, &Value> = rows.iter().map(|r| (r["reason"].as_str().unwrap(), r)).collect();
    assert_eq!(
        by_reason.keys().copied().collect::<Vec<_>>(),
        ["not_json", "valid_envelope", "wrong_type"],
        "{run}"
    );
    assert_eq!(
        by_reason["wrong_type"]["error"],
        "field `username` must be a string, found an array"
    );
    let valid = by_reason["valid_envelope"];
    assert_eq!(
        valid["error"],
        "valid envelope: failed for another reason, see the consumer's record_failed logs for this message id"
    );
    assert_eq!(valid["user"]["user_pool_id"], "eu-west-1_SomeoneElse1");
    assert_eq!(valid["user"]["sub"], foreign_sub);
    assert_eq!(valid["user"]["username"], "[redacted]");
    assert_eq!(valid["user"]["attributes"]["email"], "[redacted]");
    assert_eq!(valid["user"]["attributes"]["given_name"], "[redacted]");
    assert_eq!(valid["user"]["attributes"]["custom:plan"], "gold");
    for row in &rows {
        assert!(row["receive_count"].as_u64().unwrap() >= 1, "{row}");
        let first = row["first_received_at"].as_str().expect("first receive time");
        assert!(shared::timestamp::parse_rfc3339(first).is_some(), "{first}");
    }
    // The message ids are the ones the consumer logged its failures under.
    let logged: BTreeSet<String> = pipeline
        .log_events("record_failed")
        .await
        .iter()
        .filter_map(|e| e["message_id"].as_str().map(str::to_owned))
        .collect();
    for row in &rows {
        assert!(logged.contains(row["message_id"].as_str().unwrap()), "{row}");
    }

    let table = ops(&pipeline, &["dlq", "peek"]).await;
    table.assert_code(0);
    assert!(table.stdout.starts_with("MESSAGE ID"), "{table}");
    for pii in [
        "leak.peek@example.com",
        "peek.username",
        "peek.foreigner",
        "Peeky",
    ] {
        assert!(
            !run.stdout.contains(pii),
            "{pii} shown without --show-pii:\n{run}"
        );
        assert!(
            !table.stdout.contains(pii),
            "{pii} shown without --show-pii:\n{table}"
        );
    }

    let shown = ops(&pipeline, &["--json", "dlq", "peek", "--show-pii"]).await;
    shown.assert_code(0);
    let rows = shown.lines();
    let valid = rows.iter().find(|r| r["reason"] == "valid_envelope").unwrap();
    assert_eq!(valid["user"]["username"], "peek.foreigner");
    assert_eq!(valid["user"]["attributes"]["email"], "peek.foreigner@example.com");
    let not_json = rows.iter().find(|r| r["reason"] == "not_json").unwrap();
    assert_eq!(not_json["body"].as_str(), Some(bad[0].as_str()));

    // Three peeks later, every message is still there and visible.
    assert_eq!(depth(&pipeline, pipeline.dlq_url()).await, (3, 0));
    let mut expected = bad.to_vec();
    expected.sort();
    assert_eq!(bodies(&pipeline, pipeline.dlq_url()).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_moves_every_dlq_message_and_the_fixed_consumer_syncs_them_all() {
    // A deploy broke the consumer's table name: every confirmation ends in the DLQ.
    let options = PipelineOptions {
        consumer_env: vec![("USERS_TABLE".into(), "table-that-does-not-exist".into())],
        ..PipelineOptions::default()
    };
    let mut pipeline = start_with("ops_redrive_all", options).await;
    let mut subs = Vec::new();
    for i in 0..12 {
        let signed_up = pipeline.sign_up(&person(i)).await.unwrap();
        pipeline.invoke_trigger(&signed_up.event).await.unwrap();
        subs.push(signed_up.sub);
    }
    pipeline.drain().await.unwrap();
    assert_eq!(depth(&pipeline, pipeline.dlq_url()).await, (12, 0));
    let users_table = pipeline.users_table().to_owned();
    pipeline
        .restart_consumer(&[("USERS_TABLE", &users_table)])
        .await
        .unwrap();

    let run = ops(&pipeline, &["--json", "dlq", "redrive"]).await;
    run.assert_code(0);
    let report = run.report();
    assert_eq!(
        report["method"], "receive_send_delete",
        "moto has no StartMessageMoveTask"
    );
    assert!(
        run.stderr.contains("StartMessageMoveTask is not available"),
        "{run}"
    );
    assert_eq!(
        (report["moved"].as_u64(), report["failed"].as_u64()),
        (Some(12), Some(0))
    );
    assert_eq!(report["left"], 0);
    assert_eq!(depth(&pipeline, pipeline.dlq_url()).await, (0, 0));
    assert_eq!(depth(&pipeline, pipeline.queue_url()).await, (12, 0));

    let drained = pipeline.drain().await.unwrap();
    assert_eq!((drained.received, drained.deleted), (12, 12), "{drained:?}");
    let subs = sorted(subs);
    assert_eq!(synced(&pipeline).await, (subs.clone(), subs));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_that_fails_midway_leaves_the_refused_messages_in_the_dlq() {
    let pipeline = start("ops_redrive_refused").await;
    let pool = pipeline.pool.id.clone();
    let small: Vec<String> = (0..6)
        .map(|i| {
            envelope_for(
                &pool,
                &format!("00000000-0000-4000-8000-{i:012}"),
                &format!("small{i}"),
                &[("email", "small@example.com")],
            )
        })
        .collect();
    let large: Vec<String> = (0..4)
        .map(|i| {
            envelope_for(
                &pool,
                &format!("00000000-0000-4000-9000-{i:012}"),
                &format!("large{i}"),
                &[("custom:notes", &"n".repeat(2000))],
            )
        })
        .collect();
    assert!(small.iter().all(|b| b.len() < 1024) && large.iter().all(|b| b.len() > 1024));
    // Interleaved, so refusals happen between successful moves.
    for (i, body) in small.iter().enumerate() {
        send(&pipeline, pipeline.dlq_url(), body).await;
        if let Some(body) = large.get(i) {
            send(&pipeline, pipeline.dlq_url(), body).await;
        }
    }
    // A real refusal: SendMessage to the sync queue now rejects the larger bodies.
    pipeline
        .sqs
        .set_queue_attributes()
        .queue_url(pipeline.queue_url())
        .attributes(QueueAttributeName::MaximumMessageSize, "1024")
        .send()
        .await
        .unwrap();

    let run = ops(&pipeline, &["--json", "dlq", "redrive"]).await;
    run.assert_code(1);
    let report = run.report();
    assert_eq!(
        (
            report["moved"].as_u64(),
            report["failed"].as_u64(),
            report["left"].as_u64()
        ),
        (Some(6), Some(4), Some(4)),
        "{run}"
    );
    assert!(
        run.stderr.contains("Message must be shorter than 1024 bytes"),
        "{run}"
    );
    // The refused ones are visible again at once, not hidden until a timeout.
    assert_eq!(depth(&pipeline, pipeline.dlq_url()).await, (4, 0));
    let mut expected_small = small.clone();
    expected_small.sort();
    let mut expected_large = large.clone();
    expected_large.sort();
    assert_eq!(bodies(&pipeline, pipeline.queue_url()).await, expected_small);
    assert_eq!(bodies(&pipeline, pipeline.dlq_url()).await, expected_large);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_dry_run_moves_nothing_and_max_moves_only_that_many() {
    let pipeline = start("ops_redrive_dry_run").await;
    for i in 0..5 {
        let body = envelope_for(
            &pipeline.pool.id,
            &format!("00000000-0000-4000-a000-{i:012}"),
            &format!("dry{i}"),
            &[],
        );
        send(&pipeline, pipeline.dlq_url(), &body).await;
    }

    let run = ops(&pipeline, &["--json", "dlq", "redrive", "--dry-run"]).await;
    run.assert_code(0);
    let report = run.report();
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["would_move"], 5);
    assert_eq!(report["moved"], 0);
    assert_eq!(
        depth(&pipeline, pipeline.dlq_url()).await,
        (5, 0),
        "dry run left the DLQ as it was"
    );
    assert_eq!(depth(&pipeline, pipeline.queue_url()).await, (0, 0));

    let run = ops(&pipeline, &["--json", "dlq", "redrive", "--max", "2"]).await;
    run.assert_code(0);
    assert_eq!(run.report()["moved"], 2);
    assert_eq!(depth(&pipeline, pipeline.dlq_url()).await, (3, 0));
    assert_eq!(depth(&pipeline, pipeline.queue_url()).await, (2, 0));
}

/// `ops --json backfill` of the pipeline's pool, 10 users a page.
async fn backfill(pipeline: &LocalPipeline, extra: &[&str]) -> Run {
    let pool = pipeline.pool.id.clone();
    let mut args = vec!["--json", "backfill", "--user-pool-id", &pool, "--page-size", "10"];
    args.extend_from_slice(extra);
    ops(pipeline, &args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_enqueues_every_confirmed_user_across_pages_and_is_safe_to_repeat() {
    let pipeline = start("ops_backfill").await;
    let confirmed = confirmed_without_trigger(&pipeline, 0..25).await;
    unconfirmed(&pipeline, 0..3).await;
    let subs = sorted(confirmed.iter().map(|c| c.sub.clone()));
    let pool = pipeline.pool.id.clone();

    let first = backfill(&pipeline, &["--rate", "50"]).await;
    first.assert_code(0);
    let report = first.report();
    assert_eq!(report["users"], 25, "{first}");
    assert_eq!(report["enqueued"], 25);
    assert_eq!(report["pages"], 3);
    let tokens: Vec<&str> = first
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("resume with --from-token "))
        .collect();
    assert_eq!(tokens.len(), 2, "a token after each page but the last:\n{first}");
    assert_eq!(depth(&pipeline, pipeline.queue_url()).await, (25, 0));

    // The messages are the trigger's envelope, marked as a backfill (looked at, left visible).
    let sample = pipeline
        .sqs
        .receive_message()
        .queue_url(pipeline.queue_url())
        .max_number_of_messages(10)
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    assert!(!sample.messages().is_empty());
    for message in sample.messages() {
        let decoded = envelope::decode(message.body().unwrap()).unwrap();
        assert_eq!(decoded.source(), ConfirmationSource::Backfill);
        assert_eq!(decoded.user_pool_id(), pool);
        assert!(subs.contains(&decoded.sub().to_owned()));
    }

    pipeline.drain().await.unwrap();
    assert_eq!(synced(&pipeline).await, (subs.clone(), subs.clone()));
    let item = pipeline.user_item(&confirmed[0].sub).await.unwrap().unwrap();
    assert_eq!(s(&item, "username"), Some(confirmed[0].username.as_str()));
    assert_eq!(s(&item, "email"), Some(confirmed[0].attributes["email"].as_str()));

    // Twice: 25 more messages, still 25 users and 25 profiles.
    let second = backfill(&pipeline, &["--rate", "50"]).await;
    second.assert_code(0);
    assert_eq!(second.report()["enqueued"], 25);
    pipeline.drain().await.unwrap();
    assert_eq!(synced(&pipeline).await, (subs.clone(), subs.clone()));

    // Resuming after the first page enqueues the other two pages only.
    let resumed = backfill(&pipeline, &["--from-token", tokens[0]]).await;
    resumed.assert_code(0);
    let report = resumed.report();
    assert_eq!(
        (report["pages"].as_u64(), report["enqueued"].as_u64()),
        (Some(2), Some(15)),
        "{resumed}"
    );
    assert_eq!(depth(&pipeline, pipeline.queue_url()).await, (15, 0));
    pipeline.drain().await.unwrap();
    assert_eq!(synced(&pipeline).await, (subs.clone(), subs));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_finds_missing_and_orphaned_users_and_repair_closes_the_gap() {
    let pipeline = start("ops_reconcile").await;
    // Synced normally.
    for i in 0..4 {
        let signed_up = pipeline.sign_up(&person(i)).await.unwrap();
        pipeline.invoke_trigger(&signed_up.event).await.unwrap();
    }
    pipeline.drain().await.unwrap();
    // Confirmed, never enqueued (before the trigger, or an enqueue_failed).
    let missing = sorted(
        confirmed_without_trigger(&pipeline, 10..13)
            .await
            .into_iter()
            .map(|c| c.sub),
    );
    unconfirmed(&pipeline, 0..2).await;
    // An item whose user is gone from the pool.
    let orphan = "0a0a0a0a-0000-4000-8000-00000000dead".to_owned();
    pipeline
        .dynamodb
        .put_item()
        .table_name(pipeline.users_table())
        .item("user_id", AttributeValue::S(orphan.clone()))
        .item("user_pool_id", AttributeValue::S(pipeline.pool.id.clone()))
        .send()
        .await
        .unwrap();
    let pool = pipeline.pool.id.clone();

    let found = ops(&pipeline, &["--json", "reconcile", "--user-pool-id", &pool]).await;
    found.assert_code(3);
    let report = found.report();
    assert_eq!(report["in_sync"], false);
    assert_eq!(report["confirmed_users"], 7);
    assert_eq!(report["table_items"], 5);
    assert_eq!(report["missing"], json!(missing));
    assert_eq!(report["orphans"], json!([orphan]));
    assert_eq!(
        depth(&pipeline, pipeline.queue_url()).await,
        (0, 0),
        "no --repair, nothing sent"
    );

    let repaired = ops(
        &pipeline,
        &["--json", "reconcile", "--user-pool-id", &pool, "--repair"],
    )
    .await;
    repaired.assert_code(0);
    assert_eq!(repaired.report()["enqueued"], 3);
    let drained = pipeline.drain().await.unwrap();
    assert_eq!(drained.deleted, 3, "{drained:?}");
    for sub in &missing {
        assert!(pipeline.user_item(sub).await.unwrap().is_some(), "{sub} repaired");
    }

    let again = ops(&pipeline, &["reconcile", "--user-pool-id", &pool]).await;
    again.assert_code(0);
    assert!(again.stdout.contains("in sync"), "{again}");
    assert!(
        again.stdout.contains(&format!("orphan (not changed): {orphan}")),
        "{again}"
    );
    let json_again = ops(&pipeline, &["--json", "reconcile", "--user-pool-id", &pool]).await;
    json_again.assert_code(0);
    assert_eq!(json_again.report()["missing"], json!([]));
}

const PRE_SIGN_UP: &str = "arn:aws:lambda:us-east-1:123456789012:function:pre-sign-up-check";
const CUSTOM_MESSAGE: &str = "arn:aws:lambda:us-east-1:123456789012:function:custom-message";

/// A pool with as many non-default settings as moto keeps.
///
/// No `UsernameAttributes`, `AliasAttributes` or `UsernameConfiguration`: UpdateUserPool cannot
/// set them (AWS keeps them), but moto drops them on any UpdateUserPool.
async fn create_configured_pool(pipeline: &LocalPipeline, name: &str) -> UserPoolType {
    let created = pipeline
        .cognito
        .create_user_pool()
        .pool_name(name)
        .policies(
            UserPoolPolicyType::builder()
                .password_policy(
                    PasswordPolicyType::builder()
                        .minimum_length(14)
                        .require_uppercase(true)
                        .require_lowercase(false)
                        .require_numbers(true)
                        .require_symbols(false)
                        .temporary_password_validity_days(3)
                        .build(),
                )
                .build(),
        )
        .deletion_protection(DeletionProtectionType::Active)
        .lambda_config(
            LambdaConfigType::builder()
                .pre_sign_up(PRE_SIGN_UP)
                .custom_message(CUSTOM_MESSAGE)
                .build(),
        )
        .auto_verified_attributes(VerifiedAttributeType::Email)
        .sms_verification_message("Your SMS code: {####}")
        .email_verification_message("Your email code: {####}")
        .email_verification_subject("Verify your email")
        .verification_message_template(
            VerificationMessageTemplateType::builder()
                .sms_message("Your SMS code: {####}")
                .email_message("Your email code: {####}")
                .email_subject("Verify your email")
                .default_email_option(DefaultEmailOptionType::ConfirmWithCode)
                .build(),
        )
        .sms_authentication_message("Sign-in code: {####}")
        .mfa_configuration(UserPoolMfaType::Optional)
        .sms_configuration(
            SmsConfigurationType::builder()
                .sns_caller_arn("arn:aws:iam::123456789012:role/cognito-sms")
                .external_id("ops-e2e")
                .build(),
        )
        .user_attribute_update_settings(
            UserAttributeUpdateSettingsType::builder()
                .attributes_require_verification_before_update(VerifiedAttributeType::Email)
                .build(),
        )
        .device_configuration(
            DeviceConfigurationType::builder()
                .challenge_required_on_new_device(true)
                .device_only_remembered_on_user_prompt(true)
                .build(),
        )
        .email_configuration(
            EmailConfigurationType::builder()
                .email_sending_account(EmailSendingAccountType::CognitoDefault)
                .reply_to_email_address("help@example.com")
                .build(),
        )
        .user_pool_tags("team", "identity")
        .user_pool_tags("cost-center", "42")
        .admin_create_user_config(
            AdminCreateUserConfigType::builder()
                .allow_admin_create_user_only(true)
                .invite_message_template(
                    MessageTemplateType::builder()
                        .email_subject("Welcome")
                        .email_message("Hello {username}, your code is {####}")
                        .sms_message("Hello {username}: {####}")
                        .build(),
                )
                .build(),
        )
        .user_pool_add_ons(
            UserPoolAddOnsType::builder()
                .advanced_security_mode(AdvancedSecurityModeType::Audit)
                .build()
                .unwrap(),
        )
        .account_recovery_setting(
            AccountRecoverySettingType::builder()
                .recovery_mechanisms(
                    RecoveryOptionType::builder()
                        .priority(1)
                        .name(RecoveryOptionNameType::AdminOnly)
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .user_pool_tier(UserPoolTierType::Plus)
        .send()
        .await
        .expect("CreateUserPool");
    let id = created.user_pool().and_then(|p| p.id()).unwrap().to_owned();
    describe(pipeline, &id).await
}

async fn describe(pipeline: &LocalPipeline, pool_id: &str) -> UserPoolType {
    pipeline
        .cognito
        .describe_user_pool()
        .user_pool_id(pool_id)
        .send()
        .await
        .expect("DescribeUserPool")
        .user_pool()
        .cloned()
        .unwrap()
}

/// The pool without what attaching the trigger is allowed to change.
fn except_post_confirmation(mut pool: UserPoolType) -> UserPoolType {
    pool.last_modified_date = None;
    if let Some(lambda) = pool.lambda_config.as_mut() {
        lambda.post_confirmation = None;
    }
    pool
}

async fn policy_statements(pipeline: &LocalPipeline, function: &str) -> Vec<Value> {
    let lambda = aws_sdk_lambda::Client::new(&pipeline.sdk);
    let policy = lambda
        .get_policy()
        .function_name(function)
        .send()
        .await
        .expect("GetPolicy");
    let policy: Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
    policy["Statement"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_trigger_sets_post_confirmation_and_leaves_every_other_setting_untouched() {
    let pipeline = start("ops_attach_trigger").await;
    let trigger_arn = pipeline.stack.output("TriggerFunctionArn").unwrap().to_owned();
    let before = create_configured_pool(&pipeline, "attach-me").await;
    let pool_id = before.id.clone().unwrap();
    let pool_arn = before.arn.clone().unwrap();

    // The comparison below is meaningful: a naive UpdateUserPool on an identical pool resets
    // what it does not repeat, on moto as on AWS.
    let twin = create_configured_pool(&pipeline, "naive-twin").await;
    pipeline
        .cognito
        .update_user_pool()
        .user_pool_id(twin.id.clone().unwrap())
        .lambda_config(
            LambdaConfigType::builder()
                .post_confirmation(&trigger_arn)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let naive = describe(&pipeline, twin.id.as_deref().unwrap()).await;
    assert_ne!(
        naive.policies, twin.policies,
        "moto no longer resets the password policy"
    );
    assert_eq!(naive.auto_verified_attributes, None);
    assert_eq!(naive.lambda_config.and_then(|l| l.pre_sign_up), None);

    let dry = ops(
        &pipeline,
        &[
            "--json",
            "attach-trigger",
            "--user-pool-id",
            &pool_id,
            "--dry-run",
        ],
    )
    .await;
    dry.assert_code(0);
    let report = dry.report();
    assert_eq!(
        report["changes"],
        json!([{"field": "LambdaConfig.PostConfirmation", "old": "(not set)", "new": format!("{trigger_arn:?}")}]),
        "{dry}"
    );
    assert_eq!(report["permission"], "would_add");
    assert_eq!(
        describe(&pipeline, &pool_id).await,
        before,
        "--dry-run changed the pool"
    );
    let grants_pool = |s: &Value| s["Condition"]["ArnLike"]["AWS:SourceArn"] == pool_arn.as_str();
    assert!(
        !policy_statements(&pipeline, &trigger_arn)
            .await
            .iter()
            .any(grants_pool),
        "--dry-run added a permission"
    );

    let run = ops(
        &pipeline,
        &["--json", "attach-trigger", "--user-pool-id", &pool_id],
    )
    .await;
    run.assert_code(0);
    assert_eq!(run.report()["permission"], "added");
    let after = describe(&pipeline, &pool_id).await;
    assert_eq!(
        after
            .lambda_config
            .as_ref()
            .and_then(|l| l.post_confirmation.as_deref()),
        Some(trigger_arn.as_str())
    );
    assert_eq!(
        except_post_confirmation(after.clone()),
        except_post_confirmation(before.clone()),
        "attach-trigger changed more than the Post Confirmation trigger"
    );
    assert_eq!(
        after
            .lambda_config
            .as_ref()
            .and_then(|l| l.pre_sign_up.as_deref()),
        Some(PRE_SIGN_UP)
    );

    let statements = policy_statements(&pipeline, &trigger_arn).await;
    let ours: Vec<&Value> = statements.iter().filter(|s| grants_pool(s)).collect();
    assert_eq!(ours.len(), 1, "{statements:?}");
    assert_eq!(ours[0]["Sid"], format!("cognito-user-sync-{pool_id}"));
    assert_eq!(ours[0]["Principal"]["Service"], "cognito-idp.amazonaws.com");
    assert_eq!(ours[0]["Action"], "lambda:InvokeFunction");
    assert_eq!(
        ours[0]["Condition"]["StringEquals"]["AWS:SourceAccount"],
        pool_arn.split(':').nth(4).unwrap()
    );

    // Again: nothing to change, the permission is found, no second statement.
    let again = ops(
        &pipeline,
        &["--json", "attach-trigger", "--user-pool-id", &pool_id],
    )
    .await;
    again.assert_code(0);
    let report = again.report();
    assert_eq!(report["changes"], json!([]));
    assert_eq!(report["permission"], "present");
    let statements = policy_statements(&pipeline, &trigger_arn).await;
    assert_eq!(statements.iter().filter(|s| grants_pool(s)).count(), 1);
    assert_eq!(
        except_post_confirmation(describe(&pipeline, &pool_id).await),
        except_post_confirmation(before)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_fails_with_a_message_naming_the_problem() {
    let pipeline = start("ops_bad_input").await;
    let pool = pipeline.pool.id.clone();
    let unknown_pool = "us-east-1_DoesNotExist1";

    for args in [
        vec!["backfill", "--user-pool-id", unknown_pool],
        vec!["reconcile", "--user-pool-id", unknown_pool],
        vec!["attach-trigger", "--user-pool-id", unknown_pool, "--dry-run"],
    ] {
        let run = ops(&pipeline, &args).await;
        run.assert_code(1);
        assert!(
            run.stderr
                .contains(&format!("user pool {unknown_pool} does not exist")),
            "{args:?}:\n{run}"
        );
    }

    let missing_queue = format!("{}/123456789012/no-such-queue", pipeline.moto_endpoint());
    for args in [
        vec!["--queue-url", &missing_queue, "backfill", "--user-pool-id", &pool],
        vec!["--dlq-url", &missing_queue, "dlq", "peek"],
        vec!["--dlq-url", &missing_queue, "dlq", "redrive"],
    ] {
        let run = ops(&pipeline, &args).await;
        run.assert_code(1);
        assert!(
            run.stderr
                .contains(&format!("queue {missing_queue} does not exist")),
            "{args:?}:\n{run}"
        );
    }

    let run = ops_with_env(
        &operator_env(&pipeline),
        &["--stack-name", "no-such-stack", "dlq", "peek"],
    )
    .await;
    run.assert_code(1);
    assert!(
        run.stderr.contains("stack `no-such-stack` does not exist"),
        "{run}"
    );

    let run = ops(&pipeline, &["dlq", "peek", "--bogus"]).await;
    run.assert_code(2);
    assert!(run.stderr.contains("unexpected argument '--bogus'"), "{run}");
    let run = ops(&pipeline, &["backfill", "--user-pool-id", "not-a-pool"]).await;
    run.assert_code(2);
    assert!(run.stderr.contains("not a user pool id"), "{run}");
    let run = ops(
        &pipeline,
        &["backfill", "--user-pool-id", &pool, "--page-size", "61"],
    )
    .await;
    run.assert_code(2);
    assert!(run.stderr.contains("--page-size"), "{run}");

    let no_credentials: Vec<(&str, String)> = operator_env(&pipeline)
        .into_iter()
        .filter(|(k, _)| !k.starts_with("AWS_ACCESS_KEY_ID") && !k.starts_with("AWS_SECRET"))
        .collect();
    let run = ops_with_env(&no_credentials, &["--stack-name", STACK, "dlq", "peek"]).await;
    run.assert_code(1);
    assert!(run.stderr.contains("no AWS credentials"), "{run}");
}
