//! The welcome email, through the real consumer and moto's SES: a first confirmation from
//! sign-up is greeted once however often it is confirmed or delivered, nothing else is greeted,
//! a claim left by a dead delivery is sent after its lease, and SES's refusal is logged, counted
//! and listed without blocking the sync.
//!
//! moto's SES v2 sends `Simple` content (and refuses an unverified sender, as SES does) but
//! raises `NotImplementedError` for `Template` content, so the SES-template path
//! (`WelcomeSesTemplate`) is shown by the `welcome` crate's unit tests of what it sends, not here.

use std::time::Duration;

use e2e::fault_proxy::{Fault, FaultPlan, FaultProxy, SES_SEND_EMAIL};
use e2e::pipeline::{ConfirmedSignUp, StoredItem, envelope_for, s};
use e2e::ses::{self, SentMail};
use e2e::{LocalPipeline, NewUser, PipelineOptions, emf};
use serde_json::{Value, json};
use shared::lifecycle::{
    WELCOME_CLAIM, WELCOME_FAILED, WELCOME_LEASE_UNTIL, WELCOME_MESSAGE_ID, WELCOME_SENT_AT,
};
use shared::timestamp::epoch_ms;
use time::OffsetDateTime;

const SENDER: &str = "welcome@example.com";

/// A stack deployed with the welcome on (`WelcomeSenderIdentity`), the identity verified in SES
/// unless `verified` is false.
async fn welcoming(label: &str, verified: bool) -> LocalPipeline {
    let options = PipelineOptions {
        stack_parameters: vec![("WelcomeSenderIdentity".into(), SENDER.into())],
        ..PipelineOptions::default()
    };
    let pipeline = LocalPipeline::start_or_panic(label, options).await;
    if verified {
        ses::verify_identity(&pipeline.sdk, SENDER).await.unwrap();
    }
    pipeline
}

fn mail(pipeline: &LocalPipeline) -> Vec<SentMail> {
    ses::sent_mail(&pipeline.moto_endpoint()).unwrap()
}

fn mail_to(pipeline: &LocalPipeline, address: &str) -> Vec<SentMail> {
    mail(pipeline).into_iter().filter(|m| m.to == [address]).collect()
}

async fn metric_total(pipeline: &LocalPipeline, name: &str) -> f64 {
    let documents: Vec<Value> = pipeline
        .settled_log_lines()
        .await
        .iter()
        .filter(|line| emf::is_emf(line))
        .map(|line| emf::validate(line).unwrap_or_else(|why| panic!("invalid EMF ({why}): {line}")))
        .collect();
    emf::total(&documents, name)
}

async fn welcome_outcomes(pipeline: &LocalPipeline, sub: &str) -> Vec<String> {
    pipeline
        .log_events("welcome")
        .await
        .iter()
        .filter(|e| e["sub"] == sub)
        .map(|e| e["outcome"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The message the trigger sends for this sign-up (a redelivery of it, or a redrive).
fn confirmation(pipeline: &LocalPipeline, signed_up: &ConfirmedSignUp) -> String {
    let attributes: Vec<(&str, &str)> = signed_up
        .attributes
        .iter()
        .filter(|(name, _)| name.as_str() != "sub")
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    envelope_for(
        &pipeline.pool.id,
        &signed_up.sub,
        &signed_up.username,
        &attributes,
    )
}

/// An administrator changes the user's attributes; CloudTrail's record of it is queued.
async fn change_in_cognito(pipeline: &LocalPipeline, user: &ConfirmedSignUp, changes: &[(&str, &str)]) {
    let mut update = pipeline
        .cognito
        .admin_update_user_attributes()
        .user_pool_id(&pipeline.pool.id)
        .username(&user.username);
    for (name, value) in changes {
        update = update.user_attributes(
            aws_sdk_cognitoidentityprovider::types::AttributeType::builder()
                .name(*name)
                .value(*value)
                .build()
                .unwrap(),
        );
    }
    update.send().await.unwrap();
    pipeline
        .record_cognito_call("AdminUpdateUserAttributes", Some(&user.sub), true)
        .await
        .unwrap();
}

/// The items of this confirmation written by a consumer with the welcome off: a user synced,
/// with no claim yet, for a test to plant one.
async fn written_without_welcome(pipeline: &LocalPipeline, confirmation: &str) {
    let writer = pipeline
        .start_consumer_variant("welcome_off", &[("WELCOME_SENDER_IDENTITY", "")])
        .await
        .unwrap();
    pipeline.send_raw(confirmation).await.unwrap();
    pipeline
        .event_source_for(&writer)
        .drain(Duration::from_secs(60))
        .await
        .unwrap();
}

fn store(pipeline: &LocalPipeline) -> tables::Store {
    tables::Store::new(
        pipeline.dynamodb.clone(),
        pipeline.users_table(),
        pipeline.profiles_table(),
    )
}

async fn users_item(pipeline: &LocalPipeline, sub: &str) -> StoredItem {
    pipeline.user_item(sub).await.unwrap().expect("a users item")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_up_is_greeted_once_however_often_it_is_confirmed_delivered_or_refreshed() {
    let pipeline = welcoming("welcome_once", true).await;
    let user = NewUser::new(
        "zoe",
        &[
            ("email", "zoe.welcome@example.com"),
            ("given_name", "Zoë"),
            ("family_name", "Ñúñez"),
        ],
    );
    let signed_up = pipeline.sign_up(&user).await.unwrap();
    // Cognito retries the trigger: three confirmations; then a redelivery of one.
    for _ in 0..3 {
        pipeline.invoke_trigger(&signed_up.event).await.unwrap();
    }
    // The three are in one batch: one claims, the others find the claim held and come back.
    pipeline.drain().await.unwrap();
    pipeline
        .send_raw(&confirmation(&pipeline, &signed_up))
        .await
        .unwrap();
    let report = pipeline.drain().await.unwrap();
    assert_eq!((report.received, report.reported_failures), (1, 0), "{report:?}");

    let sent = mail_to(&pipeline, "zoe.welcome@example.com");
    assert_eq!(sent.len(), 1, "one welcome: {sent:#?}");
    let welcome = &sent[0];
    assert_eq!(welcome.source, SENDER);
    assert_eq!(welcome.subject, "Your account is confirmed");
    assert!(welcome.body.starts_with("Hello Zoë,\n"), "{:?}", welcome.body);
    assert!(!welcome.body.contains(['{', '}', '[', ']']), "{:?}", welcome.body);
    let item = users_item(&pipeline, &signed_up.sub).await;
    assert_eq!(s(&item, WELCOME_MESSAGE_ID), Some(welcome.id.as_str()));
    assert!(s(&item, WELCOME_SENT_AT).is_some(), "{item:?}");
    let outcomes = welcome_outcomes(&pipeline, &signed_up.sub).await;
    assert_eq!(
        outcomes.iter().filter(|o| *o == "sent").count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes.len(),
        4,
        "each of the four deliveries ends once: {outcomes:?}"
    );
    assert!(
        outcomes.iter().all(|o| o == "sent" || o == "already_sent"),
        "{outcomes:?}"
    );
    assert_eq!(metric_total(&pipeline, "WelcomeSent").await, 1.0);

    // A change in Cognito replaces the users item: the welcome's record stays, nothing is sent.
    change_in_cognito(&pipeline, &signed_up, &[("given_name", "Zoé")]).await;
    pipeline.drain().await.unwrap();
    let refreshed = users_item(&pipeline, &signed_up.sub).await;
    assert_eq!(
        s(&refreshed, "given_name"),
        Some("Zoé"),
        "the refresh was applied"
    );
    for field in [WELCOME_SENT_AT, WELCOME_MESSAGE_ID, WELCOME_CLAIM] {
        assert_eq!(s(&refreshed, field), s(&item, field), "{field}");
    }
    assert_eq!(mail_to(&pipeline, "zoe.welcome@example.com").len(), 1);

    pipeline
        .assert_no_pii_in_logs(&[
            "zoe.welcome@example.com".to_owned(),
            "Zoë".to_owned(),
            "Ñúñez".to_owned(),
        ])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_sign_up_with_a_verified_email_is_greeted_and_a_nameless_one_without_a_name() {
    let pipeline = welcoming("welcome_who", true).await;
    // Nameless: greeted without a name, never "Hello ,".
    let nameless = pipeline
        .sign_up(&NewUser::new("nameless", &[("email", "nameless@example.com")]))
        .await
        .unwrap();
    pipeline.invoke_trigger(&nameless.event).await.unwrap();
    // Unverified: the address Cognito was given, never proved.
    let unverified = pipeline
        .sign_up(&NewUser::new(
            "unverified",
            &[("email", "unverified@example.com")],
        ))
        .await
        .unwrap();
    let mut event = unverified.event.clone();
    event["request"]["userAttributes"]["email_verified"] = json!("false");
    pipeline.invoke_trigger(&event).await.unwrap();
    // No email at all: a phone sign-up.
    let phone = pipeline
        .sign_up(&NewUser::new("phone", &[("phone_number", "+34600990001")]))
        .await
        .unwrap();
    pipeline.invoke_trigger(&phone.event).await.unwrap();
    // A confirmed password reset, never preceded here by a sign-up confirmation.
    let reset = pipeline
        .sign_up(&NewUser::new(
            "reset",
            &[("email", "reset@example.com"), ("given_name", "Reset")],
        ))
        .await
        .unwrap();
    let mut forgot = reset.event.clone();
    forgot["triggerSource"] = json!("PostConfirmation_ConfirmForgotPassword");
    pipeline.invoke_trigger(&forgot).await.unwrap();
    let report = pipeline.drain().await.unwrap();
    assert_eq!(report.reported_failures, 0, "{report:?}");
    // A backfill and a requested refresh of a user never confirmed through the trigger.
    let backfilled = pipeline
        .sign_up(&NewUser::new(
            "backfilled",
            &[("email", "backfilled@example.com")],
        ))
        .await
        .unwrap();
    pipeline
        .ops(&["backfill", "--user-pool-id", &pipeline.pool.id, "--json"])
        .await
        .assert_code(0);
    pipeline
        .ops(&["refresh", "--sub", &backfilled.sub])
        .await
        .assert_code(0);
    pipeline.drain().await.unwrap();

    let sent = mail(&pipeline);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(sent[0].to, ["nameless@example.com"]);
    assert!(sent[0].body.starts_with("Hello,\n"), "{:?}", sent[0].body);
    for user in [&unverified, &phone, &reset, &backfilled] {
        let item = users_item(&pipeline, &user.sub).await;
        assert!(s(&item, WELCOME_CLAIM).is_none(), "{}: {item:?}", user.username);
    }
    // The backfill enqueued every confirmed user again: not a sign-up, each.
    let of_sign_ups = |outcomes: Vec<String>| -> Vec<String> {
        outcomes.into_iter().filter(|o| o != "not_a_sign_up").collect()
    };
    assert_eq!(
        of_sign_ups(welcome_outcomes(&pipeline, &unverified.sub).await),
        ["email_not_verified"]
    );
    assert_eq!(
        of_sign_ups(welcome_outcomes(&pipeline, &phone.sub).await),
        ["no_email"]
    );
    // Never candidates: logged, not counted as skipped.
    assert!(
        welcome_outcomes(&pipeline, &reset.sub)
            .await
            .iter()
            .all(|o| o == "not_a_sign_up"),
    );
    assert_eq!(metric_total(&pipeline, "WelcomeSkipped").await, 2.0);
    assert_eq!(metric_total(&pipeline, "WelcomeSent").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_left_by_a_dead_delivery_holds_until_its_lease_then_the_redelivery_sends() {
    let pipeline = welcoming("welcome_lease", true).await;
    let user = NewUser::new("leased", &[("email", "leased@example.com"), ("name", "Lee")]);
    let signed_up = pipeline.sign_up(&user).await.unwrap();
    let body = confirmation(&pipeline, &signed_up);
    // The items are written by a delivery that then claims and dies before sending: its claim,
    // with a lease that runs 4 s from now, is all it leaves.
    let store = store(&pipeline);
    written_without_welcome(&pipeline, &body).await;
    let now_ms = epoch_ms(OffsetDateTime::now_utc());
    let lease_until_ms = now_ms + 4_000;
    let claimed = store
        .claim_welcome(
            &signed_up.sub,
            "dead-delivery",
            "2026-12-04T00:00:00.000Z",
            now_ms,
            lease_until_ms,
        )
        .await
        .unwrap();
    assert_eq!(
        claimed,
        tables::WelcomeClaim::Claimed {
            email: "leased@example.com".into()
        }
    );

    // The redelivery finds the claim held: its record fails, for SQS to bring it back.
    pipeline.send_raw(&body).await.unwrap();
    let first = pipeline.poll_once().await.unwrap();
    assert_eq!(first.reported_failures, 1, "{first:?}");
    assert!(mail(&pipeline).is_empty());
    let held = pipeline.log_events("record_failed").await;
    assert!(
        held.iter()
            .any(|e| e["reason"] == "welcome_claim_held" && e["sub"] == signed_up.sub),
        "{held:#?}"
    );

    // Meanwhile the user changes their address (verified), and the change reaches the item.
    change_in_cognito(
        &pipeline,
        &signed_up,
        &[("email", "leased.new@example.com"), ("email_verified", "true")],
    )
    .await;

    // After the lease, it claims and sends, once, to the address the item has now.
    let report = pipeline.drain().await.unwrap();
    assert!(report.received >= 1, "{report:?}");
    let now_ms = epoch_ms(OffsetDateTime::now_utc());
    assert!(now_ms > lease_until_ms, "sent only once the lease was over");
    assert!(mail_to(&pipeline, "leased@example.com").is_empty());
    let sent = mail_to(&pipeline, "leased.new@example.com");
    assert_eq!(sent.len(), 1, "{:#?}", mail(&pipeline));
    assert!(sent[0].body.starts_with("Hello Lee,\n"), "{:?}", sent[0].body);
    let item = users_item(&pipeline, &signed_up.sub).await;
    assert_ne!(s(&item, WELCOME_CLAIM), Some("dead-delivery"));
    assert_eq!(s(&item, WELCOME_MESSAGE_ID), Some(sent[0].id.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ses_refusing_is_logged_counted_and_listed_without_blocking_the_sync_and_resend_greets() {
    // The sender identity is not verified: SES (and moto) refuse with MessageRejected.
    let pipeline = welcoming("welcome_refused", false).await;
    let user = NewUser::new(
        "refused",
        &[("email", "refused@example.com"), ("given_name", "Ref")],
    );
    let signed_up = pipeline.sign_up(&user).await.unwrap();
    pipeline.invoke_trigger(&signed_up.event).await.unwrap();
    let report = pipeline.drain().await.unwrap();
    assert_eq!(
        report.reported_failures, 0,
        "a refusal does not block the sync: {report:?}"
    );
    assert_eq!(pipeline.queue_counts(pipeline.dlq_url()).await.unwrap(), (0, 0));
    assert!(pipeline.user_item(&signed_up.sub).await.unwrap().is_some());
    assert_eq!(pipeline.profiles_of(&signed_up.sub).await.unwrap().len(), 1);
    let item = users_item(&pipeline, &signed_up.sub).await;
    assert_eq!(s(&item, WELCOME_FAILED), Some("MessageRejected"), "{item:?}");
    assert!(s(&item, WELCOME_SENT_AT).is_none());
    let failed = pipeline.log_events("welcome_failed").await;
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(failed[0]["code"], "MessageRejected");
    assert_eq!(failed[0]["sub"], json!(signed_up.sub));
    assert_eq!(metric_total(&pipeline, "WelcomeFailed").await, 1.0);
    assert!(mail(&pipeline).is_empty());

    // Listed once its claim's lease is over (not while a send may be under way).
    let listed = pipeline.ops(&["welcome", "--unsent", "--json"]).await;
    listed.assert_code(0);
    assert_eq!(listed.report()["unsent"], 0, "the lease still runs:\n{listed}");

    // Another user's claim left by a delivery that died (sent or not, nobody knows): unknown.
    let silent = pipeline
        .sign_up(&NewUser::new("silent", &[("email", "silent@example.com")]))
        .await
        .unwrap();
    written_without_welcome(&pipeline, &confirmation(&pipeline, &silent)).await;
    let store = store(&pipeline);
    let now_ms = epoch_ms(OffsetDateTime::now_utc());
    store
        .claim_welcome(
            &silent.sub,
            "dead",
            "2026-12-04T00:00:00.000Z",
            now_ms,
            now_ms + 1_000,
        )
        .await
        .unwrap();

    let lease_until: i64 = item[WELCOME_LEASE_UNTIL].as_n().unwrap().parse().unwrap();
    let now_ms = epoch_ms(OffsetDateTime::now_utc());
    tokio::time::sleep(Duration::from_millis((lease_until - now_ms).max(0) as u64 + 200)).await;
    let listed = pipeline.ops(&["welcome", "--unsent", "--json"]).await;
    listed.assert_code(0);
    let lines = listed.lines();
    assert_eq!(lines.len(), 3, "{listed}");
    let state_of = |sub: &str| {
        lines
            .iter()
            .find(|l| l["sub"] == sub)
            .map(|l| (l["state"].clone(), l["ses_error"].clone()))
    };
    assert_eq!(
        state_of(&signed_up.sub),
        Some((json!("refused"), json!("MessageRejected")))
    );
    assert_eq!(state_of(&silent.sub), Some((json!("unknown"), Value::Null)));
    assert_eq!(
        (&lines[2]["unsent"], &lines[2]["unknown"]),
        (&json!(2), &json!(1))
    );
    for address in ["refused@example.com", "silent@example.com"] {
        assert!(!listed.to_string().contains(address), "{listed}");
    }

    // Fixed: the identity verified, --resend greets the refused one, once, and not the unknown
    // one (who may have had it); nothing refused is listed after.
    ses::verify_identity(&pipeline.sdk, SENDER).await.unwrap();
    let resent = pipeline.ops(&["welcome", "--unsent", "--resend", "--json"]).await;
    resent.assert_code(0);
    assert_eq!(resent.lines().last().unwrap()["enqueued"], 1, "{resent}");
    pipeline.drain().await.unwrap();
    let sent = mail_to(&pipeline, "refused@example.com");
    assert_eq!(sent.len(), 1, "{sent:#?}");
    let item = users_item(&pipeline, &signed_up.sub).await;
    assert_eq!(s(&item, WELCOME_MESSAGE_ID), Some(sent[0].id.as_str()));
    assert!(s(&item, WELCOME_FAILED).is_none(), "{item:?}");
    assert!(mail_to(&pipeline, "silent@example.com").is_empty());
    let listed = pipeline.ops(&["welcome", "--unsent", "--json"]).await;
    assert_eq!(
        listed.lines().last().unwrap()["unsent"],
        1,
        "only the unknown one is left:\n{listed}"
    );
    pipeline.ops(&["welcome", "--resend"]).await.assert_code(2);
    pipeline
        .ops(&["welcome", "--unsent", "--include-unknown"])
        .await
        .assert_code(2);
    pipeline
        .assert_no_pii_in_logs(&["refused@example.com".to_owned(), "Ref".to_owned()])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tombstoned_user_is_never_greeted_and_without_a_sender_nothing_is_sent() {
    let pipeline = welcoming("welcome_tombstone", true).await;
    let user = NewUser::new("gone", &[("email", "gone@example.com"), ("given_name", "Gone")]);
    let signed_up = pipeline.sign_up(&user).await.unwrap();
    // The confirmation waits while the user is deleted, and the deletion is processed first.
    let late = confirmation(&pipeline, &signed_up);
    pipeline.delete_user(&user.username).await.unwrap();
    pipeline
        .record_cognito_call("AdminDeleteUser", Some(&signed_up.sub), true)
        .await
        .unwrap();
    pipeline.drain().await.unwrap();
    let tombstone = users_item(&pipeline, &signed_up.sub).await;
    assert!(s(&tombstone, "deleted_at").is_some());
    pipeline.send_raw(&late).await.unwrap();
    let report = pipeline.drain().await.unwrap();
    assert_eq!(report.reported_failures, 0, "{report:?}");
    assert!(mail(&pipeline).is_empty());
    assert_eq!(users_item(&pipeline, &signed_up.sub).await, tombstone);
    assert_eq!(
        welcome_outcomes(&pipeline, &signed_up.sub).await,
        ["user_deleted"]
    );

    // The stack deployed without a sender identity (the default) sends nothing and logs no
    // welcome: the same sign-up through a consumer configured as the default stack is.
    let off = pipeline
        .start_consumer_variant("welcome_off", &[("WELCOME_SENDER_IDENTITY", "")])
        .await
        .unwrap();
    let other = pipeline
        .sign_up(&NewUser::new(
            "unwelcomed",
            &[("email", "unwelcomed@example.com")],
        ))
        .await
        .unwrap();
    pipeline.invoke_trigger(&other.event).await.unwrap();
    pipeline
        .event_source_for(&off)
        .drain(Duration::from_secs(60))
        .await
        .unwrap();
    assert!(pipeline.user_item(&other.sub).await.unwrap().is_some());
    assert!(mail(&pipeline).is_empty());
    let welcomes: Vec<String> = off
        .log_lines()
        .into_iter()
        .filter(|l| l.contains("\"welcome"))
        .collect();
    assert!(welcomes.is_empty(), "{welcomes:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ses_throttle_or_5xx_fails_the_record_and_the_retry_only_sends_the_email() {
    let pipeline = welcoming("welcome_throttled", true).await;
    for (fault, username) in [(Fault::Throttle, "throttled"), (Fault::ServerError, "failing")] {
        let proxy = FaultProxy::start(FaultPlan::new(11).inject(SES_SEND_EMAIL, fault.clone(), 1.0))
            .await
            .unwrap();
        proxy.forward_to(&pipeline.moto_endpoint()).unwrap();
        let consumer = pipeline
            .start_consumer_variant(
                &format!("ses-{}", fault.kind()),
                &[("AWS_ENDPOINT_URL_SESV2", &proxy.endpoint())],
            )
            .await
            .unwrap();
        let address = format!("{username}@example.com");
        let signed_up = pipeline
            .sign_up(&NewUser::new(
                username,
                &[("email", &address), ("given_name", "Tess")],
            ))
            .await
            .unwrap();
        pipeline.invoke_trigger(&signed_up.event).await.unwrap();
        let report = pipeline.event_source_for(&consumer).poll_once().await.unwrap();
        assert_eq!(
            (report.received, report.reported_failures),
            (1, 1),
            "{fault:?}: {report:?}"
        );
        assert!(proxy.injected()[fault.kind()] >= 1, "{:?}", proxy.injected());
        // The items are written; the message is back on the queue for the email alone.
        let written = users_item(&pipeline, &signed_up.sub).await;
        assert_eq!(pipeline.profiles_of(&signed_up.sub).await.unwrap().len(), 1);
        assert!(s(&written, WELCOME_SENT_AT).is_none());
        let failed: Vec<Value> = consumer
            .settled_log_lines()
            .await
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|v| v["event"] == "record_failed" && v["sub"] == signed_up.sub)
            .collect();
        assert_eq!(failed.len(), 1, "{failed:#?}");
        assert_eq!(failed[0]["reason"], "welcome_send_failed_retryable");
        assert!(mail_to(&pipeline, &address).is_empty());

        // SES recovers: the redelivery (once the claim's lease is over) sends, once, and writes
        // nothing else.
        drop(consumer);
        pipeline.drain().await.unwrap();
        assert_eq!(mail_to(&pipeline, &address).len(), 1, "{fault:?}");
        let after = users_item(&pipeline, &signed_up.sub).await;
        for (name, value) in &written {
            if !name.starts_with("welcome_") && name != "revision" {
                assert_eq!(after.get(name), Some(value), "{name} changed");
            }
        }
    }
    assert_eq!(metric_total(&pipeline, "WelcomeSent").await, 2.0);
    assert_eq!(metric_total(&pipeline, "WelcomeFailed").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_many_claims_made_at_once_exactly_one_wins() {
    const ROUNDS: usize = 20;
    const CLAIMS_AT_ONCE: usize = 32;
    // DynamoDB applies each conditional write atomically; the local stack's moto is made to as
    // well (infra/local/moto_server.py), or two deliveries could both claim and both send.
    let pipeline = welcoming("welcome_race", true).await;
    let signed_up = pipeline
        .sign_up(&NewUser::new("raced", &[("email", "raced@example.com")]))
        .await
        .unwrap();
    written_without_welcome(&pipeline, &confirmation(&pipeline, &signed_up)).await;
    let store = std::sync::Arc::new(store(&pipeline));
    // Rounds of claims arriving together, each round on a lease already over: one winner each.
    for round in 0..ROUNDS {
        let now_ms = epoch_ms(OffsetDateTime::now_utc());
        let claims = (0..CLAIMS_AT_ONCE).map(|i| {
            let store = std::sync::Arc::clone(&store);
            let sub = signed_up.sub.clone();
            let claim = format!("claim-{round}-{i}");
            tokio::spawn(async move {
                store
                    .claim_welcome(&sub, &claim, "2026-12-04T00:00:00.000Z", now_ms, now_ms + 1)
                    .await
                    .unwrap()
            })
        });
        let outcomes = futures::future::join_all(claims).await;
        let won = outcomes
            .iter()
            .filter(|o| matches!(o.as_ref().unwrap(), tables::WelcomeClaim::Claimed { .. }))
            .count();
        assert_eq!(won, 1, "round {round}: {outcomes:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
