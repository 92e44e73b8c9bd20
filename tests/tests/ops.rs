//! End-to-end: the real `ops` binary against moto, with the template deployed into it.
//!
//! Each test starts its own local pipeline (moto, the stack `cognito-user-sync`, a user pool,
//! the trigger and consumer binaries) and runs `ops` as an operator would: as a process, with
//! the SDK's standard environment (`AWS_ENDPOINT_URL` pointing at moto) and `--json` reports.

use shared::mapping::{PROFILES_KEY, USERS_KEY};
use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::QueueAttributeName;
use e2e::ops_cli::{self, OpsRun};
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

/// `ops --stack-name cognito-user-sync ARGS` in the operator's environment.
async fn ops(pipeline: &LocalPipeline, args: &[&str]) -> OpsRun {
    let mut all = vec!["--stack-name", STACK];
    all.extend_from_slice(args);
    ops_cli::run(&pipeline.operator_env(), &all).await
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

/// An administrator's password reset (`AdminResetUserPassword`): the user is `RESET_REQUIRED`.
async fn reset_password(pipeline: &LocalPipeline, username: &str) {
    pipeline
        .cognito
        .admin_reset_user_password()
        .user_pool_id(&pipeline.pool.id)
        .username(username)
        .send()
        .await
        .expect("AdminResetUserPassword");
    let user = pipeline
        .cognito
        .admin_get_user()
        .user_pool_id(&pipeline.pool.id)
        .username(username)
        .send()
        .await
        .unwrap();
    assert_eq!(user.user_status().map(|s| s.as_str()), Some("RESET_REQUIRED"));
}

/// A user created by an administrator (`AdminCreateUser`): `FORCE_CHANGE_PASSWORD`.
async fn admin_created(pipeline: &LocalPipeline, username: &str) {
    pipeline
        .cognito
        .admin_create_user()
        .user_pool_id(&pipeline.pool.id)
        .username(username)
        .message_action(aws_sdk_cognitoidentityprovider::types::MessageActionType::Suppress)
        .send()
        .await
        .expect("AdminCreateUser");
}

/// The subs with a users item, and the subs with a profile, sorted.
async fn synced(pipeline: &LocalPipeline) -> (Vec<String>, Vec<String>) {
    (
        table_keys(pipeline, pipeline.users_table(), USERS_KEY).await,
        table_keys(pipeline, pipeline.profiles_table(), USERS_KEY).await,
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
                ("email_verified", "true"),
                ("given_name", "Peeky"),
                ("custom:plan", "gold"),
                // A federated user's identities carry their IdP's user id, often an email.
                (
                    "identities",
                    r#"[{"userId":"peek.idp@corp.example","providerName":"Corp","providerType":"SAML"}]"#,
                ),
                ("custom:national_id", "X9876543Z"),
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
    // An allow-list: only attributes known to carry no personal data are shown in clear.
    assert_eq!(valid["user"]["attributes"]["custom:plan"], "[redacted]");
    assert_eq!(valid["user"]["attributes"]["identities"], "[redacted]");
    assert_eq!(valid["user"]["attributes"]["custom:national_id"], "[redacted]");
    assert_eq!(valid["user"]["attributes"]["email_verified"], "true");
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
        "peek.idp@corp.example",
        "X9876543Z",
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
    assert_eq!(valid["user"]["attributes"]["custom:national_id"], "X9876543Z");
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

    // moto answers ListMessageMoveTasks and StartMessageMoveTask with a bare HTTP 500, which
    // says nothing about support (on AWS, a task may have started): the default refuses and
    // moves nothing, naming the flag for an endpoint without the move-task API.
    let refused = ops(&pipeline, &["--json", "dlq", "redrive"]).await;
    refused.assert_code(1);
    assert!(
        refused.stderr.contains("ListMessageMoveTasks failed") && refused.stderr.contains("--client-side"),
        "{refused}"
    );
    assert_eq!(
        depth(&pipeline, pipeline.dlq_url()).await,
        (12, 0),
        "nothing moved"
    );
    assert_eq!(depth(&pipeline, pipeline.queue_url()).await, (0, 0));

    let run = ops(&pipeline, &["--json", "dlq", "redrive", "--client-side"]).await;
    run.assert_code(0);
    let report = run.report();
    assert_eq!(report["method"], "receive_send_delete");
    assert!(
        run.stderr.contains("moving client-side as --client-side asks"),
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

    let run = ops(&pipeline, &["--json", "dlq", "redrive", "--client-side"]).await;
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

    let run = ops(
        &pipeline,
        &["--json", "dlq", "redrive", "--max", "2", "--client-side"],
    )
    .await;
    run.assert_code(0);
    assert_eq!(run.report()["moved"], 2);
    assert_eq!(depth(&pipeline, pipeline.dlq_url()).await, (3, 0));
    assert_eq!(depth(&pipeline, pipeline.queue_url()).await, (2, 0));
}

/// `ops --json backfill` of the pipeline's pool, 10 users a page.
async fn backfill(pipeline: &LocalPipeline, extra: &[&str]) -> OpsRun {
    let pool = pipeline.pool.id.clone();
    let mut args = vec!["--json", "backfill", "--user-pool-id", &pool, "--page-size", "10"];
    args.extend_from_slice(extra);
    ops(pipeline, &args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_enqueues_every_confirmed_user_across_pages_and_is_safe_to_repeat() {
    let pipeline = start("ops_backfill").await;
    let confirmed = confirmed_without_trigger(&pipeline, 0..25).await;
    // Confirmed earlier, then an administrator reset the password: still a user to sync.
    reset_password(&pipeline, &confirmed[3].username).await;
    unconfirmed(&pipeline, 0..3).await;
    // Created by an administrator and never signed in (FORCE_CHANGE_PASSWORD): not yet.
    admin_created(&pipeline, "admin.created").await;
    let subs = sorted(confirmed.iter().map(|c| c.sub.clone()));
    let pool = pipeline.pool.id.clone();

    let first = backfill(&pipeline, &["--rate", "30"]).await;
    first.assert_code(0);
    let report = first.report();
    assert_eq!(report["users"], 29, "{first}");
    assert_eq!(report["selected"], 25, "{first}");
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
    let second = backfill(&pipeline, &["--rate", "30"]).await;
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
async fn backfill_splits_batches_by_size_and_reports_a_refused_user_without_stopping() {
    // Ten users whose messages fit SQS one by one but not ten to a SendMessageBatch (1 MiB in
    // all), and one whose message SQS refuses on its own. (On AWS an attribute holds at most 2048
    // characters, but a user's dozens of attributes in 4-byte characters reach ~100 KB each just
    // the same; moto counts characters, not bytes, hence one long ASCII value here.)
    let pipeline = start("ops_backfill_sizes").await;
    let mut large = Vec::new();
    for i in 0..10 {
        let user = NewUser::new(&format!("large{i:02}"), &[("address", &"a".repeat(110_000))]);
        large.push(pipeline.sign_up(&user).await.unwrap().sub);
    }
    let too_large = NewUser::new("too.large", &[("address", &"b".repeat(1_100_000))]);
    let too_large = pipeline.sign_up(&too_large).await.unwrap().sub;
    let pool = pipeline.pool.id.clone();

    let run = ops(
        &pipeline,
        &["--json", "backfill", "--user-pool-id", &pool, "--page-size", "20"],
    )
    .await;
    run.assert_code(1);
    let report = run.report();
    assert_eq!(report["enqueued"], 10, "{run}");
    assert_eq!(report["refused"], 1, "{run}");
    assert_eq!(report["refused_subs"], json!([too_large]), "{run}");
    assert!(
        run.stderr.contains(&format!("not enqueued: user {too_large}")),
        "{run}"
    );
    assert_eq!(depth(&pipeline, pipeline.queue_url()).await, (10, 0));
    pipeline.drain().await.unwrap();
    let (users, profiles) = synced(&pipeline).await;
    assert_eq!(users, sorted(large.clone()));
    assert_eq!(profiles, sorted(large));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_finds_users_missing_from_either_table_and_orphans_and_repair_closes_the_gap() {
    let pipeline = start("ops_reconcile").await;
    // Synced normally.
    for i in 0..4 {
        let signed_up = pipeline.sign_up(&person(i)).await.unwrap();
        pipeline.invoke_trigger(&signed_up.event).await.unwrap();
    }
    pipeline.drain().await.unwrap();
    // Half-synced: the users item is there, the profile is not (its put failed until the
    // message reached the DLQ, whose copy then expired).
    let half = sorted(
        pipeline
            .scan(pipeline.users_table())
            .await
            .unwrap()
            .iter()
            .filter_map(|i| s(i, USERS_KEY).map(str::to_owned)),
    )
    .remove(0);
    let half_user_item = pipeline.user_item(&half).await.unwrap().unwrap();
    pipeline
        .dynamodb
        .delete_item()
        .table_name(pipeline.profiles_table())
        .key(
            PROFILES_KEY,
            AttributeValue::S(shared::ProfileId::derive(&pipeline.pool.id, &half).to_string()),
        )
        .send()
        .await
        .unwrap();
    // Confirmed, never enqueued (before the trigger, or an enqueue_failed); one of them has a
    // password reset pending since (RESET_REQUIRED), which does not make them less confirmed.
    let never_enqueued = confirmed_without_trigger(&pipeline, 10..13).await;
    reset_password(&pipeline, &never_enqueued[1].username).await;
    let no_user_item = sorted(never_enqueued.into_iter().map(|c| c.sub));
    let missing = sorted(no_user_item.iter().cloned().chain([half.clone()]));
    unconfirmed(&pipeline, 0..2).await;
    // An item whose user is gone from the pool.
    let orphan = "0a0a0a0a-0000-4000-8000-00000000dead".to_owned();
    pipeline
        .dynamodb
        .put_item()
        .table_name(pipeline.users_table())
        .item(USERS_KEY, AttributeValue::S(orphan.clone()))
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
    assert_eq!(report["profile_items"], 3);
    assert_eq!(report["missing"], json!(missing));
    assert_eq!(report["missing_user_item"], json!(no_user_item));
    let mut no_profile = no_user_item.clone();
    no_profile.push(half.clone());
    assert_eq!(report["missing_profile"], json!(sorted(no_profile)));
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
    assert_eq!(repaired.report()["enqueued"], 4);
    let drained = pipeline.drain().await.unwrap();
    assert_eq!(drained.deleted, 4, "{drained:?}");
    for sub in &missing {
        assert!(pipeline.user_item(sub).await.unwrap().is_some(), "{sub} repaired");
        assert_eq!(
            pipeline.profiles_of(sub).await.unwrap().len(),
            1,
            "{sub}'s profile repaired"
        );
    }
    // The half that was there is left exactly as it was.
    assert_eq!(pipeline.user_item(&half).await.unwrap().unwrap(), half_user_item);

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

    let run = ops_cli::run(
        &pipeline.operator_env(),
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
    // A rate the account-wide ListUsers quota cannot serve, before any request is made.
    for command in ["backfill", "reconcile"] {
        let run = ops(&pipeline, &[command, "--user-pool-id", &pool, "--rate", "31"]).await;
        run.assert_code(2);
        assert!(
            run.stderr
                .contains("UserList request-rate quota (30 requests per second"),
            "{command}:\n{run}"
        );
        let raised = ops(
            &pipeline,
            &[
                "--json",
                command,
                "--user-pool-id",
                &pool,
                "--rate",
                "31",
                "--user-list-quota",
                "60",
            ],
        )
        .await;
        assert_ne!(raised.code, Some(2), "a raised quota allows it:\n{raised}");
    }

    let no_credentials: Vec<(&str, String)> = pipeline
        .operator_env()
        .into_iter()
        .filter(|(k, _)| !k.starts_with("AWS_ACCESS_KEY_ID") && !k.starts_with("AWS_SECRET"))
        .collect();
    let run = ops_cli::run(&no_credentials, &["--stack-name", STACK, "dlq", "peek"]).await;
    run.assert_code(1);
    assert!(run.stderr.contains("no AWS credentials"), "{run}");
}
