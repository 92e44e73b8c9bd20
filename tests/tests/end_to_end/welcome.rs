//! The welcome email, through the real consumer, the real welcomer and moto's SES: a first
//! confirmation from sign-up is greeted once however often it is confirmed or delivered, nothing
//! else is greeted, a claim left by a dead delivery is sent after its lease, and nothing SES does
//! (a refusal, a throttle, a spent daily quota, a report of a bounce or of a template that did not
//! render) holds back the sync, goes unseen or is lost.
//!
//! moto's SES v2 sends `Simple` content (and refuses an unverified sender, as SES does) but
//! implements neither template content, `GetAccount`, nor event publishing: the SES-template
//! data is shown by the `welcome` crate's unit tests of what it sends, a spent quota by SES's
//! documented `GetAccount` answer planted on the wire, and SES's reports by the events SES
//! publishes put on the local bus, where the stack's rule routes them.

use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use e2e::fault_proxy::{Fault, FaultPlan, FaultProxy, SES_GET_ACCOUNT, SES_SEND_EMAIL};
use e2e::pipeline::{ConfirmedSignUp, StoredItem, envelope_for, s};
use e2e::ses::{self, SentMail, SesEvent};
use e2e::{LocalPipeline, NewUser, PipelineOptions, emf};
use serde_json::{Value, json};
use shared::lifecycle::{
    WELCOME_CLAIM, WELCOME_FAILED, WELCOME_LEASE_UNTIL, WELCOME_MESSAGE_ID, WELCOME_PROBLEM, WELCOME_SENT_AT,
};
use shared::timestamp::epoch_ms;
use time::OffsetDateTime;

const SENDER: &str = "welcome@example.com";
/// The team's own configuration set the stacks here are deployed with (moto skips the one a
/// stack would create).
const CONFIGURATION_SET: &str = "team-welcome";

/// A stack deployed with the welcome on (`WelcomeSenderIdentity`), the identity verified in SES
/// unless `verified` is false.
async fn welcoming(label: &str, verified: bool) -> LocalPipeline {
    welcoming_with(label, verified, PipelineOptions::default()).await
}

async fn welcoming_with(label: &str, verified: bool, options: PipelineOptions) -> LocalPipeline {
    let mut options = options;
    options.stack_parameters.extend([
        ("WelcomeSenderIdentity".into(), SENDER.into()),
        ("WelcomeConfigurationSet".into(), CONFIGURATION_SET.into()),
    ]);
    let pipeline = LocalPipeline::start_or_panic(label, options).await;
    ses::create_configuration_set(&pipeline.sdk, CONFIGURATION_SET)
        .await
        .unwrap();
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

fn metric_total_of(lines: &[String], name: &str) -> f64 {
    let documents: Vec<Value> = lines
        .iter()
        .filter(|line| emf::is_emf(line))
        .map(|line| emf::validate(line).unwrap_or_else(|why| panic!("invalid EMF ({why}): {line}")))
        .collect();
    emf::total(&documents, name)
}

async fn metric_total(pipeline: &LocalPipeline, name: &str) -> f64 {
    metric_total_of(&pipeline.settled_log_lines().await, name)
}

/// The welcome's outcomes for `sub`, as the consumer (`requested`, or why not) and the welcomer
/// (`sent`, `already_sent`, ...) logged them.
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
        .start_consumer_variant("welcome_off", &[("WELCOME_QUEUE_URL", "")])
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

async fn item_text(pipeline: &LocalPipeline, sub: &str, field: &str) -> Option<String> {
    s(&users_item(pipeline, sub).await, field).map(str::to_owned)
}

fn welcomer(pipeline: &LocalPipeline) -> &e2e::runtime_api::LambdaFunction {
    pipeline.welcomer.as_ref().expect("the welcome is on")
}

/// The sync side holds nothing: no failed record, nothing in the sync DLQ.
async fn the_sync_was_not_held_back(pipeline: &LocalPipeline) {
    assert_eq!(pipeline.queue_counts(pipeline.dlq_url()).await.unwrap(), (0, 0));
    assert!(
        pipeline.log_events("record_failed").await.is_empty(),
        "{:#?}",
        pipeline.log_events("record_failed").await
    );
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
    // Each asks for the welcome; the welcomer's first claim sends, the others find the claim
    // held and come back after its lease, to find it sent.
    pipeline.drain().await.unwrap();
    pipeline
        .send_raw(&confirmation(&pipeline, &signed_up))
        .await
        .unwrap();
    let report = pipeline.drain().await.unwrap();
    assert_eq!(report.reported_failures, 0, "{report:?}");
    the_sync_was_not_held_back(&pipeline).await;

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
    let mut outcomes = welcome_outcomes(&pipeline, &signed_up.sub).await;
    outcomes.sort();
    assert_eq!(
        outcomes,
        [
            "already_sent",
            "already_sent",
            "already_sent",
            "requested",
            "requested",
            "requested",
            "requested",
            "sent"
        ],
        "each of the four deliveries asks once and each request ends once"
    );
    assert_eq!(metric_total(&pipeline, "WelcomeRequested").await, 4.0);
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
    assert_eq!(metric_total(&pipeline, "WelcomeRequested").await, 1.0);
    assert_eq!(metric_total(&pipeline, "WelcomeSent").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_left_by_a_dead_delivery_holds_until_its_lease_then_the_welcome_goes_to_the_address_the_item_has_now()
 {
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
    assert!(
        matches!(&claimed, tables::WelcomeClaim::Claimed { email, username, .. }
            if email == "leased@example.com" && username == "leased"),
        "{claimed:?}"
    );

    // The redelivery is synced at once and asks for the welcome; the welcomer finds the claim
    // held and hands the request back until the lease is over.
    pipeline.send_raw(&body).await.unwrap();
    let synced = pipeline.poll_once().await.unwrap();
    assert_eq!((synced.received, synced.reported_failures), (1, 0), "{synced:?}");
    let held = pipeline
        .welcome_source(welcomer(&pipeline))
        .poll_once()
        .await
        .unwrap();
    assert_eq!((held.received, held.reported_failures), (1, 1), "{held:?}");
    assert!(mail(&pipeline).is_empty());
    let deferred = pipeline.log_events("welcome_deferred").await;
    assert!(
        deferred.iter().any(|e| e["reason"] == "claim_held"
            && e["sub"] == signed_up.sub
            && e["retry_in_s"].as_u64() <= Some(5)),
        "{deferred:#?}"
    );

    // Meanwhile the user changes their address (verified), and the change reaches the item.
    change_in_cognito(
        &pipeline,
        &signed_up,
        &[("email", "leased.new@example.com"), ("email_verified", "true")],
    )
    .await;

    // After the lease, it claims and sends, once, to the address the item has now.
    pipeline.drain().await.unwrap();
    let now_ms = epoch_ms(OffsetDateTime::now_utc());
    assert!(now_ms > lease_until_ms, "sent only once the lease was over");
    assert!(mail_to(&pipeline, "leased@example.com").is_empty());
    let sent = mail_to(&pipeline, "leased.new@example.com");
    assert_eq!(sent.len(), 1, "{:#?}", mail(&pipeline));
    assert!(sent[0].body.starts_with("Hello Lee,\n"), "{:?}", sent[0].body);
    let item = users_item(&pipeline, &signed_up.sub).await;
    assert_ne!(s(&item, WELCOME_CLAIM), Some("dead-delivery"));
    assert_eq!(s(&item, WELCOME_MESSAGE_ID), Some(sent[0].id.as_str()));
    the_sync_was_not_held_back(&pipeline).await;
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
    let listed = pipeline.ops(&["--json", "welcome", "unsent"]).await;
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
    let listed = pipeline.ops(&["--json", "welcome", "unsent"]).await;
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
        (&lines[2]["unsent"], &lines[2]["refused"], &lines[2]["unknown"]),
        (&json!(2), &json!(1), &json!(1))
    );
    for address in ["refused@example.com", "silent@example.com"] {
        assert!(!listed.to_string().contains(address), "{listed}");
    }

    // Fixed: the identity verified, --resend greets the refused one, once, and not the unknown
    // one (who may have had it); nothing refused is listed after.
    ses::verify_identity(&pipeline.sdk, SENDER).await.unwrap();
    let resent = pipeline.ops(&["--json", "welcome", "unsent", "--resend"]).await;
    resent.assert_code(0);
    assert_eq!(resent.lines().last().unwrap()["enqueued"], 1, "{resent}");
    pipeline.drain().await.unwrap();
    let sent = mail_to(&pipeline, "refused@example.com");
    assert_eq!(sent.len(), 1, "{sent:#?}");
    let item = users_item(&pipeline, &signed_up.sub).await;
    assert_eq!(s(&item, WELCOME_MESSAGE_ID), Some(sent[0].id.as_str()));
    assert!(s(&item, WELCOME_FAILED).is_none(), "{item:?}");
    assert!(mail_to(&pipeline, "silent@example.com").is_empty());
    let listed = pipeline.ops(&["--json", "welcome", "unsent"]).await;
    assert_eq!(
        listed.lines().last().unwrap()["unsent"],
        1,
        "only the unknown one is left:\n{listed}"
    );
    pipeline.ops(&["welcome", "--resend"]).await.assert_code(2);
    pipeline
        .ops(&["welcome", "unsent", "--include-unknown"])
        .await
        .assert_code(2);
    the_sync_was_not_held_back(&pipeline).await;
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

    // The stack deployed without a sender identity (the default) asks for no welcome and logs
    // none: the same sign-up through a consumer configured as the default stack is.
    let off = pipeline
        .start_consumer_variant("welcome_off", &[("WELCOME_QUEUE_URL", "")])
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
    assert_eq!(
        pipeline.queue_counts(pipeline.welcome_queue_url()).await.unwrap(),
        (0, 0),
        "nothing asked of the welcomer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ses_throttle_or_5xx_defers_the_welcome_never_the_sync_and_the_retry_sends_once() {
    let pipeline = welcoming("welcome_throttled", true).await;
    for (fault, username) in [(Fault::Throttle, "throttled"), (Fault::ServerError, "failing")] {
        let proxy = FaultProxy::start(FaultPlan::new(11).inject(SES_SEND_EMAIL, fault.clone(), 1.0))
            .await
            .unwrap();
        proxy.forward_to(&pipeline.moto_endpoint()).unwrap();
        let throttled = pipeline
            .start_welcomer_variant(
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
        // The sync is done, whatever SES does: both items written, the record deleted.
        let synced = pipeline.poll_once().await.unwrap();
        assert_eq!(
            (synced.received, synced.reported_failures),
            (1, 0),
            "{fault:?}: {synced:?}"
        );
        let written = users_item(&pipeline, &signed_up.sub).await;
        assert_eq!(pipeline.profiles_of(&signed_up.sub).await.unwrap().len(), 1);
        // The welcome is handed back to the welcome queue with its delay.
        let report = pipeline.welcome_source(&throttled).poll_once().await.unwrap();
        assert_eq!(
            (report.received, report.reported_failures),
            (1, 1),
            "{fault:?}: {report:?}"
        );
        assert!(proxy.injected()[fault.kind()] >= 1, "{:?}", proxy.injected());
        let deferred: Vec<Value> = throttled
            .settled_log_lines()
            .await
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|v| v["event"] == "welcome_deferred" && v["sub"] == signed_up.sub)
            .collect();
        assert_eq!(deferred.len(), 1, "{deferred:#?}");
        let item = users_item(&pipeline, &signed_up.sub).await;
        assert!(s(&item, WELCOME_SENT_AT).is_none());
        match fault {
            // SES answered: nothing went out, the claim is given up, the retry comes after the
            // first delay.
            Fault::Throttle => {
                assert_eq!(deferred[0]["reason"], "throttled");
                assert_eq!(deferred[0]["code"], "TooManyRequestsException");
                assert_eq!(deferred[0]["retry_in_s"], 1);
                assert!(s(&item, WELCOME_CLAIM).is_none(), "claim released: {item:?}");
            }
            // The answer is lost: the mail may have gone, so the claim stays until its lease
            // runs out and the retry waits for it.
            _ => {
                assert_eq!(deferred[0]["reason"], "answer_lost");
                assert!(deferred[0]["retry_in_s"].as_u64() > Some(10), "{deferred:?}");
                assert!(s(&item, WELCOME_CLAIM).is_some(), "claim kept: {item:?}");
            }
        }
        assert!(mail_to(&pipeline, &address).is_empty());

        // SES recovers: the retry sends, once, and writes nothing but the welcome's record.
        drop(throttled);
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
    the_sync_was_not_held_back(&pipeline).await;
}

/// SES's `GetAccount` answer (API reference, `GetAccount`): a production account whose rolling
/// day's quota is used up, or one whose sending SES has paused.
fn account(max_24_hour_send: f64, sent_last_24_hours: f64, sending_enabled: bool) -> Fault {
    Fault::Answer {
        status: 200,
        content_type: "application/json",
        body: json!({
            "DedicatedIpAutoWarmupEnabled": false,
            "EnforcementStatus": if sending_enabled { "HEALTHY" } else { "SHUTDOWN" },
            "ProductionAccessEnabled": true,
            "SendQuota": {
                "Max24HourSend": max_24_hour_send,
                "MaxSendRate": 14.0,
                "SentLast24Hours": sent_last_24_hours
            },
            "SendingEnabled": sending_enabled
        })
        .to_string(),
        error_type: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_daily_quota_holds_every_welcome_without_a_send_then_it_is_given_up_listed_and_resent() {
    let pipeline = welcoming("welcome_quota", true).await;
    // The welcome queue gives a message up after its third receive here (36, more than a day of
    // backoff, in the template), so that the give-up takes seconds.
    let dlq_arn = pipeline
        .sqs
        .get_queue_attributes()
        .queue_url(pipeline.welcome_dlq_url())
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    pipeline
        .sqs
        .set_queue_attributes()
        .queue_url(pipeline.welcome_queue_url())
        .attributes(
            QueueAttributeName::RedrivePolicy,
            json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3}).to_string(),
        )
        .send()
        .await
        .unwrap();
    let proxy =
        FaultProxy::start(FaultPlan::new(3).inject(SES_GET_ACCOUNT, account(200.0, 200.0, true), 1.0))
            .await
            .unwrap();
    proxy.forward_to(&pipeline.moto_endpoint()).unwrap();
    let spent = pipeline
        .start_welcomer_variant("quota-spent", &[("AWS_ENDPOINT_URL_SESV2", &proxy.endpoint())])
        .await
        .unwrap();
    let signed_up = pipeline
        .sign_up(&NewUser::new("quota", &[("email", "quota@example.com")]))
        .await
        .unwrap();
    pipeline.invoke_trigger(&signed_up.event).await.unwrap();
    let synced = pipeline.poll_once().await.unwrap();
    assert_eq!((synced.received, synced.reported_failures), (1, 0), "{synced:?}");

    // Each try finds the quota spent: no claim, no SendEmail, the request handed back, until SQS
    // moves it to the welcome DLQ.
    pipeline
        .welcome_source(&spent)
        .drain(Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(proxy.forwarded().get(SES_SEND_EMAIL), None, "nothing was sent");
    let lines = spent.settled_log_lines().await;
    let deferred: Vec<Value> = lines
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|v| v["event"] == "welcome_deferred")
        .collect();
    assert_eq!(deferred.len(), 3, "{deferred:#?}");
    assert!(
        deferred.iter().all(|d| d["reason"] == "daily_quota"),
        "{deferred:#?}"
    );
    let delays: Vec<u64> = deferred
        .iter()
        .map(|d| d["retry_in_s"].as_u64().unwrap())
        .collect();
    assert_eq!(delays, [1, 2, 4], "the backoff doubles");
    assert_eq!(metric_total_of(&lines, "WelcomeDeferred"), 3.0);
    // The backlog the alarm reads: each try's age since the consumer asked.
    let documents: Vec<Value> = lines
        .iter()
        .filter(|line| emf::is_emf(line))
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(emf::samples(&documents, "WelcomeAge"), 3);
    assert!(s(&users_item(&pipeline, &signed_up.sub).await, WELCOME_CLAIM).is_none());
    assert_eq!(
        pipeline.queue_counts(pipeline.welcome_dlq_url()).await.unwrap().0,
        1
    );
    // The user is synced, and nothing says otherwise: the sync DLQ (users missing) is empty.
    the_sync_was_not_held_back(&pipeline).await;

    // Given up: listed, then resent once SES has quota again.
    let listed = pipeline.ops(&["--json", "welcome", "unsent"]).await;
    listed.assert_code(0);
    let lines = listed.lines();
    assert_eq!(lines[0]["sub"], json!(signed_up.sub), "{listed}");
    assert_eq!(lines[0]["state"], "given_up", "{listed}");
    assert_eq!(lines.last().unwrap()["given_up"], 1, "{listed}");
    drop(spent);
    let resent = pipeline.ops(&["--json", "welcome", "unsent", "--resend"]).await;
    resent.assert_code(0);
    assert_eq!(resent.lines().last().unwrap()["enqueued"], 1, "{resent}");
    assert_eq!(
        pipeline.queue_counts(pipeline.welcome_dlq_url()).await.unwrap(),
        (0, 0)
    );
    pipeline.drain().await.unwrap();
    assert_eq!(mail_to(&pipeline, "quota@example.com").len(), 1);
    let listed = pipeline.ops(&["--json", "welcome", "unsent"]).await;
    assert_eq!(listed.report()["unsent"], 0, "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ses_reports_of_a_welcome_are_recorded_counted_and_listed_and_a_template_fixed_is_resent() {
    let pipeline = welcoming("welcome_reports", true).await;
    let mut subs = Vec::new();
    for name in ["rendered", "bounced"] {
        let signed_up = pipeline
            .sign_up(&NewUser::new(name, &[("email", &format!("{name}@example.com"))]))
            .await
            .unwrap();
        pipeline.invoke_trigger(&signed_up.event).await.unwrap();
        subs.push(signed_up.sub);
    }
    pipeline.drain().await.unwrap();
    let rendered_id = item_text(&pipeline, &subs[0], WELCOME_MESSAGE_ID).await.unwrap();
    let bounced_id = item_text(&pipeline, &subs[1], WELCOME_MESSAGE_ID).await.unwrap();
    let stack = pipeline.stack.name.clone();
    let ours = |sub: &str| -> Vec<(&str, String)> {
        vec![
            ("ses:configuration-set", CONFIGURATION_SET.to_owned()),
            ("cognito-user-sync-sub", sub.to_owned()),
            ("cognito-user-sync-stack", stack.clone()),
        ]
    };
    let publish = |detail_type: &'static str,
                   event_type: &'static str,
                   id: String,
                   to: &'static str,
                   tags: Vec<(&'static str, String)>,
                   extra: Value| {
        let sdk = pipeline.sdk.clone();
        async move {
            let tags: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (*k, v.as_str())).collect();
            ses::publish(
                &sdk,
                &SesEvent {
                    detail_type,
                    event_type,
                    ses_message_id: &id,
                    recipient: to,
                    tags: &tags,
                    extra,
                },
            )
            .await
            .unwrap();
        }
    };
    // SES could not render the template for the first; the second's address bounced for good;
    // a report of another stack's welcome (its own tag) is not this stack's to record.
    publish(
        "Email Rendering Failed",
        "Rendering Failure",
        rendered_id.clone(),
        "rendered@example.com",
        ours(&subs[0]),
        json!({"failure": {"errorMessage": "Attribute 'given_name' is not present in the rendering data.", "templateName": "welcome"}}),
    )
    .await;
    publish(
        "Email Bounced",
        "Bounce",
        bounced_id.clone(),
        "bounced@example.com",
        ours(&subs[1]),
        json!({"bounce": {"bounceType": "Permanent", "bounceSubType": "General",
            "bouncedRecipients": [{"emailAddress": "bounced@example.com"}]}}),
    )
    .await;
    let mut foreign = ours(&subs[0]);
    foreign[2].1 = "another-stack".to_owned();
    publish(
        "Email Bounced",
        "Bounce",
        rendered_id.clone(),
        "rendered@example.com",
        foreign,
        json!({"bounce": {"bounceType": "Permanent"}}),
    )
    .await;
    pipeline.drain().await.unwrap();

    assert_eq!(
        item_text(&pipeline, &subs[0], WELCOME_PROBLEM).await.as_deref(),
        Some("rendering_failure")
    );
    assert_eq!(
        item_text(&pipeline, &subs[1], WELCOME_PROBLEM).await.as_deref(),
        Some("bounce")
    );
    let reports = pipeline.log_events("welcome_problem").await;
    assert_eq!(
        reports.len(),
        2,
        "the other stack's report never reached this queue: {reports:#?}"
    );
    assert!(reports.iter().all(|r| r["recorded"] == true), "{reports:#?}");
    assert_eq!(metric_total(&pipeline, "WelcomeRenderingFailed").await, 1.0);
    assert_eq!(metric_total(&pipeline, "WelcomeBounced").await, 1.0);

    // Both listed as undelivered; only the rendering failure can be helped by sending again.
    let listed = pipeline.ops(&["--json", "welcome", "unsent"]).await;
    listed.assert_code(0);
    let lines = listed.lines();
    let of = |sub: &str| {
        lines
            .iter()
            .find(|l| l["sub"] == sub)
            .cloned()
            .unwrap_or_else(|| panic!("{listed}"))
    };
    assert_eq!(
        (
            of(&subs[0])["state"].clone(),
            of(&subs[0])["problem"].clone(),
            of(&subs[0])["resendable"].clone()
        ),
        (json!("undelivered"), json!("rendering_failure"), json!(true))
    );
    assert_eq!(
        (
            of(&subs[1])["problem"].clone(),
            of(&subs[1])["resendable"].clone()
        ),
        (json!("bounce"), json!(false))
    );
    // The template fixed, --resend reopens and sends the first again, and leaves the bounce.
    let resent = pipeline.ops(&["--json", "welcome", "unsent", "--resend"]).await;
    resent.assert_code(0);
    assert_eq!(resent.lines().last().unwrap()["enqueued"], 1, "{resent}");
    pipeline.drain().await.unwrap();
    assert_eq!(mail_to(&pipeline, "rendered@example.com").len(), 2, "sent again");
    assert_eq!(mail_to(&pipeline, "bounced@example.com").len(), 1, "not again");
    let item = users_item(&pipeline, &subs[0]).await;
    assert!(s(&item, WELCOME_PROBLEM).is_none(), "{item:?}");
    assert_ne!(s(&item, WELCOME_MESSAGE_ID), Some(rendered_id.as_str()));
    pipeline
        .assert_no_pii_in_logs(&[
            "rendered@example.com".to_owned(),
            "bounced@example.com".to_owned(),
        ])
        .await;
}

/// IAM's answer to `SimulatePrincipalPolicy` (its API reference's XML shape), one decision.
fn simulated(decision: &str) -> Fault {
    Fault::Answer {
        status: 200,
        content_type: "text/xml",
        body: format!(
            r#"<SimulatePrincipalPolicyResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">
  <SimulatePrincipalPolicyResult>
    <IsTruncated>false</IsTruncated>
    <EvaluationResults>
      <member>
        <EvalActionName>ses:SendEmail</EvalActionName>
        <EvalResourceName>*</EvalResourceName>
        <EvalDecision>{decision}</EvalDecision>
        <MatchedStatements/>
        <MissingContextValues/>
      </member>
    </EvaluationResults>
  </SimulatePrincipalPolicyResult>
  <ResponseMetadata><RequestId>7e9a2b1c-0000-4000-8000-000000000001</RequestId></ResponseMetadata>
</SimulatePrincipalPolicyResponse>"#
        ),
        error_type: None,
    }
}

/// SES's JSON answer of `status` with `body`, or its `BadRequestException`.
fn ses_answer(status: u16, body: Value, error_type: Option<&'static str>) -> Fault {
    Fault::Answer {
        status,
        content_type: "application/json",
        body: body.to_string(),
        error_type,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn welcome_check_names_what_stops_every_welcome_before_the_first_sign_up() {
    use e2e::fault_proxy::{
        IAM_SIMULATE, SES_GET_CONFIGURATION_SET, SES_GET_EMAIL_TEMPLATE, SES_TEST_RENDER,
    };
    let options = PipelineOptions {
        stack_parameters: vec![("WelcomeSesTemplate".into(), "welcome_v1".into())],
        ..PipelineOptions::default()
    };
    let pipeline = welcoming_with("welcome_check", false, options).await;
    // Where moto implements nothing (GetAccount, the templates, the policy simulator) or answers
    // what the SDK cannot read (GetConfigurationSet), the wire answers what AWS's API reference
    // documents; the identity is moto's own.
    let check = |renders: bool, decision: &'static str| {
        let pipeline = &pipeline;
        async move {
            let render = if renders {
                ses_answer(
                    200,
                    json!({"RenderedTemplate": "Subject: Welcome\r\n\r\nHello"}),
                    None,
                )
            } else {
                ses_answer(
                    400,
                    json!({"message": "Attribute 'given_name' is not present in the rendering data."}),
                    Some("BadRequestException"),
                )
            };
            let wire = FaultProxy::start(
                FaultPlan::new(1)
                    .inject(SES_GET_ACCOUNT, account(200.0, 0.0, true), 1.0)
                    .inject(
                        SES_GET_EMAIL_TEMPLATE,
                        ses_answer(200, json!({"TemplateName": "welcome_v1", "TemplateContent": {"Subject": "Welcome", "Text": "Hello {{given_name}}"}}), None),
                        1.0,
                    )
                    .inject(SES_TEST_RENDER, render, 1.0)
                    .inject(
                        SES_GET_CONFIGURATION_SET,
                        ses_answer(200, json!({"ConfigurationSetName": CONFIGURATION_SET, "SendingOptions": {"SendingEnabled": true}}), None),
                        1.0,
                    )
                    .inject(IAM_SIMULATE, simulated(decision), 1.0),
            )
            .await
            .unwrap();
            wire.forward_to(&pipeline.moto_endpoint()).unwrap();
            let mut env = pipeline.operator_env();
            env.push(("AWS_ENDPOINT_URL_SESV2", wire.endpoint()));
            env.push(("AWS_ENDPOINT_URL_IAM", wire.endpoint()));
            let args = [
                "--stack-name",
                pipeline.stack.name.as_str(),
                "--json",
                "welcome",
                "check",
            ];
            e2e::ops_cli::run(&env, &args).await
        }
    };
    let blocking = |run: &e2e::ops_cli::OpsRun| -> Vec<String> {
        run.lines()
            .iter()
            .filter(|l| l["severity"] == "blocks")
            .map(|l| l["check"].as_str().unwrap().to_owned())
            .collect()
    };

    // The sender not verified, and a template that uses {{given_name}} without a guard: no
    // welcome could be sent (or, for a nameless user, rendered): exit 4, each named.
    let run = check(false, "allowed").await;
    run.assert_code(4);
    assert_eq!(blocking(&run), ["identity", "template"], "{run}");
    assert!(
        run.to_string().contains("given_name"),
        "SES's reason is shown:\n{run}"
    );
    assert_eq!(run.lines().last().unwrap()["ready"], false, "{run}");
    // The welcomer's role denied by IAM: named too.
    ses::verify_identity(&pipeline.sdk, SENDER).await.unwrap();
    let run = check(true, "implicitDeny").await;
    run.assert_code(4);
    assert_eq!(blocking(&run), ["permissions"], "{run}");
    // All fixed: exit 0, the account's limits reported.
    let run = check(true, "allowed").await;
    run.assert_code(0);
    assert!(blocking(&run).is_empty(), "{run}");
    let quota = run.lines().into_iter().find(|l| l["check"] == "quota").unwrap();
    assert!(quota["detail"].as_str().unwrap().contains("200"), "{quota}");
    // A stack deployed without the welcome has no welcomer to check.
    let off = LocalPipeline::start_or_panic("welcome_check_off", PipelineOptions::default()).await;
    let run = off.ops(&["welcome", "check"]).await;
    run.assert_refused("WelcomerFunctionName");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_that_cannot_send_a_welcome_stop_the_welcomer_at_start_up_naming_the_variable() {
    let pipeline = welcoming("welcome_config", true).await;
    for (name, value) in [
        ("WELCOME_SENDER_IDENTITY", "not an identity"),
        ("WELCOME_FROM_ADDRESS", "Team <team@example.com>"),
        ("WELCOME_CONFIGURATION_SET", ""),
        ("WELCOME_STACK_TAG", "has.dots"),
    ] {
        let variant = pipeline
            .start_welcomer_variant(&format!("config-{name}"), &[(name, value)])
            .await
            .unwrap();
        variant
            .assert_refused_at_start_up(&json!({"Records": []}), name)
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_welcome_queue_message_that_can_never_be_handled_reaches_the_welcome_dlq_with_its_reason() {
    let pipeline = welcoming("welcome_invalid", true).await;
    let foreign = welcome::message::Request::new("eu-west-1_Other1", "0b5e4a3c-1f2d-4e6a-9b8c-7d6e5f4a3b2c")
        .unwrap()
        .encode();
    for body in ["not a welcome request", foreign.as_str()] {
        pipeline
            .sqs
            .send_message()
            .queue_url(pipeline.welcome_queue_url())
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    // Handed back at once each time, so both reach the DLQ after the queue's 36 receives, in
    // seconds, not the day a welcome gets.
    pipeline
        .welcome_source(welcomer(&pipeline))
        .drain(Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(
        pipeline.queue_counts(pipeline.welcome_dlq_url()).await.unwrap().0,
        2
    );
    let reasons: std::collections::BTreeSet<String> = pipeline
        .log_events("record_failed")
        .await
        .iter()
        .map(|e| e["reason"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        reasons,
        std::collections::BTreeSet::from(["foreign_user_pool".to_owned(), "not_json".to_owned()])
    );
    let invalid = metric_total(&pipeline, "WelcomeInvalidMessages").await;
    assert_eq!(invalid, 2.0 * f64::from(welcome::backoff::GIVE_UP_AFTER_RECEIVES));
    // Neither is a welcome of this stack's users: nothing to resend, two to drop.
    let listed = pipeline.ops(&["--json", "welcome", "unsent"]).await;
    let report = listed.report();
    assert_eq!(report["given_up"], 0, "{listed}");
    assert_eq!(report["invalid_in_dlq"], 2, "{listed}");
    assert_eq!(
        pipeline.queue_counts(pipeline.welcome_dlq_url()).await.unwrap().0,
        2,
        "left there"
    );
    pipeline
        .ops(&["--json", "welcome", "unsent", "--drop-invalid"])
        .await
        .assert_code(0);
    assert_eq!(
        pipeline.queue_counts(pipeline.welcome_dlq_url()).await.unwrap(),
        (0, 0)
    );
    assert!(mail(&pipeline).is_empty());
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
