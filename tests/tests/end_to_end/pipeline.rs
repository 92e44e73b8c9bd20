//! End-to-end: the real trigger and consumer binaries against moto, with `infra/template.yaml`
//! deployed into it. Each test starts its own moto on a free port (stopped by PID at the end),
//! so tests run in parallel without sharing anything.

use std::collections::HashSet;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use e2e::moto::free_port;
use e2e::pipeline::{ConfirmedSignUp, StoredItem, envelope_for, s};
use e2e::runtime_api::InvokeError;
use e2e::{LocalPipeline, NewUser, PipelineOptions};
use serde_json::{Value, json};
use shared::mapping::{PROFILES_KEY, USERS_KEY};

async fn start(label: &str) -> LocalPipeline {
    LocalPipeline::start_or_panic(label, PipelineOptions::default()).await
}

async fn start_with(label: &str, options: PipelineOptions) -> LocalPipeline {
    LocalPipeline::start_or_panic(label, options).await
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A sign-up with the attributes a real one has, made distinctive so the PII checks can find
/// any leak.
fn person(i: usize) -> NewUser {
    const GIVEN: [&str; 6] = ["Zoë", "José", "Łucja", "Αλέξης", "明美", "Søren"];
    const FAMILY: [&str; 6] = ["Ñúñez-Gómez", "O'Brien", "Wójcik", "Παπαδόπουλος", "山田", "Ærø"];
    NewUser::new(
        &format!("user{i:03}"),
        &[
            ("email", &format!("pii.user{i:03}@example.com")),
            ("given_name", &format!("{}{i:03}", GIVEN[i % GIVEN.len()])),
            ("family_name", FAMILY[i % FAMILY.len()]),
            ("phone_number", &format!("+3460011{i:04}")),
            ("custom:plan", if i.is_multiple_of(2) { "pro" } else { "free" }),
            ("custom:tenant_id", &format!("tenant-{}", i % 3)),
        ],
    )
}

/// The PII of a sign-up: every value a log line must never contain.
fn pii_of(user: &NewUser) -> Vec<String> {
    ["email", "phone_number", "given_name", "family_name", "name"]
        .iter()
        .filter_map(|name| user.attributes.get(*name).cloned())
        .chain([user.username.clone()])
        .collect()
}

async fn confirm(pipeline: &LocalPipeline, user: &NewUser) -> ConfirmedSignUp {
    let signed_up = pipeline.sign_up(user).await.expect("sign-up and confirmation");
    let response = pipeline
        .invoke_trigger(&signed_up.event)
        .await
        .expect("trigger succeeds");
    assert_eq!(
        response, signed_up.event,
        "the trigger must return the event unchanged"
    );
    signed_up
}

async fn queue_depth(pipeline: &LocalPipeline, url: &str) -> usize {
    let (visible, in_flight) = pipeline.queue_counts(url).await.unwrap();
    (visible + in_flight) as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_users_with_unicode_names_and_custom_attributes_land_in_both_tables() {
    let pipeline = start("many_users").await;
    let users: Vec<NewUser> = (0..24).map(person).collect();
    let mut confirmed = Vec::new();
    for user in &users {
        confirmed.push(confirm(&pipeline, user).await);
    }
    let report = pipeline.drain().await.unwrap();
    assert_eq!(report.deleted, users.len(), "{report:?}");
    assert_eq!(report.reported_failures, 0, "{report:?}");

    for (user, signed_up) in users.iter().zip(&confirmed) {
        let item = pipeline
            .user_item(&signed_up.sub)
            .await
            .unwrap()
            .expect("users item");
        let profile_id = pipeline.profile_id_of(&signed_up.sub);
        assert_eq!(s(&item, "username"), Some(user.username.as_str()));
        assert_eq!(s(&item, "user_pool_id"), Some(pipeline.pool.id.as_str()));
        assert_eq!(s(&item, PROFILES_KEY), Some(profile_id.as_str()));
        for name in ["email", "given_name", "family_name", "phone_number"] {
            assert_eq!(s(&item, name), Some(user.attributes[name].as_str()), "{name}");
        }
        assert_eq!(item["email_verified"], AttributeValue::Bool(true));
        let attributes = item["attributes"].as_m().expect("attributes map");
        assert_eq!(
            attributes["custom:plan"].as_s().unwrap(),
            &user.attributes["custom:plan"]
        );
        assert_eq!(
            attributes["custom:tenant_id"].as_s().unwrap(),
            &user.attributes["custom:tenant_id"]
        );
        for stamp in ["confirmed_at", "created_at", "updated_at"] {
            let text = s(&item, stamp).unwrap();
            assert!(
                shared::timestamp::parse_rfc3339(text).is_some() && text.ends_with('Z'),
                "{stamp}={text}"
            );
        }

        let profile = pipeline
            .profile_item(&profile_id)
            .await
            .unwrap()
            .expect("profile item");
        let expected_name = format!(
            "{} {}",
            user.attributes["given_name"], user.attributes["family_name"]
        );
        assert_eq!(s(&profile, "full_name"), Some(expected_name.as_str()));
        assert_eq!(s(&profile, USERS_KEY), Some(signed_up.sub.as_str()));
        assert_eq!(profile["id_type"], AttributeValue::Null(true));
        assert_eq!(profile["id_number"], AttributeValue::Null(true));
    }
    assert_eq!(
        pipeline.scan(pipeline.users_table()).await.unwrap().len(),
        users.len()
    );
    assert_eq!(
        pipeline.scan(pipeline.profiles_table()).await.unwrap().len(),
        users.len()
    );
    let secrets: Vec<String> = users.iter().flat_map(pii_of).collect();
    pipeline.assert_no_pii_in_logs(&secrets).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_returns_its_input_unchanged_including_unmodelled_fields() {
    let pipeline = start("trigger_echo").await;
    let signed_up = pipeline.sign_up(&person(1)).await.unwrap();
    let mut event = signed_up.event.clone();
    event["request"]["clientMetadata"] = json!({"source": "mobile", "campaign": "ñ-2026"});
    event["futureTopLevelField"] = json!({"nested": [1, 2.5, null, true, "ü"]});
    event["callerContext"]["extra"] = json!(42);
    event["response"] = json!({});

    let response = pipeline.invoke_trigger(&event).await.unwrap();
    assert_eq!(response, event);
    assert_eq!(response.to_string(), event.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_reset_confirmation_of_a_synced_user_changes_nothing() {
    let pipeline = start("forgot_password_synced").await;
    let signed_up = confirm(&pipeline, &person(2)).await;
    pipeline.drain().await.unwrap();
    let user_before = pipeline.user_item(&signed_up.sub).await.unwrap().unwrap();
    let profile_id = pipeline.profile_id_of(&signed_up.sub);
    let profile_before = pipeline.profile_item(&profile_id).await.unwrap().unwrap();

    let mut event = signed_up.event.clone();
    event["triggerSource"] = json!("PostConfirmation_ConfirmForgotPassword");
    let response = pipeline.invoke_trigger(&event).await.unwrap();
    assert_eq!(response, event);
    let enqueued = pipeline.log_events("enqueued").await;
    assert_eq!(enqueued.len(), 2, "{enqueued:?}");
    assert_eq!(enqueued[1]["source"], json!("post_confirmation_forgot_password"));
    let report = pipeline.drain().await.unwrap();
    assert_eq!(report.received, 1);

    assert_eq!(
        pipeline.user_item(&signed_up.sub).await.unwrap().unwrap(),
        user_before
    );
    assert_eq!(
        pipeline.profile_item(&profile_id).await.unwrap().unwrap(),
        profile_before
    );
    assert_eq!(pipeline.log_events("already_synced").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_reset_that_is_a_users_first_confirmation_syncs_them() {
    // An imported or migrated user: their first confirmation is ConfirmForgotPassword, and no
    // sign-up confirmation ever ran for them.
    let pipeline = start("forgot_password_first").await;
    let signed_up = pipeline.sign_up(&person(3)).await.unwrap();
    let mut event = signed_up.event.clone();
    event["triggerSource"] = json!("PostConfirmation_ConfirmForgotPassword");

    let response = pipeline.invoke_trigger(&event).await.unwrap();
    assert_eq!(response, event);
    assert_eq!(pipeline.drain().await.unwrap().received, 1);
    let item = pipeline.user_item(&signed_up.sub).await.unwrap().expect("synced");
    assert_eq!(s(&item, "username"), Some(signed_up.username.as_str()));
    let profile_id = pipeline.profile_id_of(&signed_up.sub);
    assert!(pipeline.profile_item(&profile_id).await.unwrap().is_some());
    assert_eq!(pipeline.log_events("synced").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_and_empty_attributes_are_omitted_not_stored_empty() {
    let pipeline = start("missing_attributes").await;
    // Only an email at sign-up: no names, no phone.
    let minimal = confirm(
        &pipeline,
        &NewUser::new("minimal", &[("email", "min@example.com")]),
    )
    .await;
    // Empty and blank values, as a misbehaving client could send them.
    let blank = pipeline
        .sign_up(&NewUser::new("blank", &[("email", "b@example.com")]))
        .await
        .unwrap();
    let mut event = blank.event.clone();
    let attributes = &mut event["request"]["userAttributes"];
    attributes["given_name"] = json!("");
    attributes["family_name"] = json!("   ");
    attributes["phone_number"] = json!("");
    attributes["name"] = json!("Only Name");
    attributes["custom:plan"] = json!("");
    assert_eq!(pipeline.invoke_trigger(&event).await.unwrap(), event);
    pipeline.drain().await.unwrap();

    let item = pipeline
        .user_item(&minimal.sub)
        .await
        .unwrap()
        .expect("users item");
    for absent in [
        "given_name",
        "family_name",
        "name",
        "phone_number",
        "phone_number_verified",
    ] {
        assert!(!item.contains_key(absent), "{absent} must be omitted: {item:?}");
    }
    let profile = pipeline
        .profile_item(&pipeline.profile_id_of(&minimal.sub))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s(&profile, "full_name"), Some("minimal"));

    let item = pipeline.user_item(&blank.sub).await.unwrap().expect("users item");
    for absent in ["given_name", "family_name", "phone_number"] {
        assert!(!item.contains_key(absent), "{absent} must be omitted: {item:?}");
    }
    let attributes = item["attributes"].as_m().unwrap();
    for absent in ["given_name", "family_name", "phone_number", "custom:plan"] {
        assert!(
            !attributes.contains_key(absent),
            "attributes.{absent} must be omitted"
        );
    }
    let no_empty_strings = |item: &StoredItem| {
        item.values()
            .all(|v| v.as_s().map(|s| !s.trim().is_empty()).unwrap_or(true))
    };
    assert!(no_empty_strings(&item) && no_empty_strings(&profile));
    let profile = pipeline
        .profile_item(&pipeline.profile_id_of(&blank.sub))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s(&profile, "full_name"), Some("Only Name"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_user_confirmed_three_times_gives_one_users_item_and_one_profile() {
    let pipeline = start("confirmed_three_times").await;
    let signed_up = confirm(&pipeline, &person(3)).await;
    // Cognito retries a trigger it thinks timed out: the same event twice more.
    for _ in 0..2 {
        assert_eq!(
            pipeline.invoke_trigger(&signed_up.event).await.unwrap(),
            signed_up.event
        );
    }
    assert_eq!(pipeline.log_events("enqueued").await.len(), 3);
    let report = pipeline.drain().await.unwrap();
    assert_eq!(report.deleted, 3, "{report:?}");

    let users = pipeline.scan(pipeline.users_table()).await.unwrap();
    assert_eq!(users.len(), 1);
    let profiles = pipeline.profiles_of(&signed_up.sub).await.unwrap();
    assert_eq!(profiles.len(), 1, "one profile per user, whatever the retries");
    let profile_id = pipeline.profile_id_of(&signed_up.sub);
    assert_eq!(s(&profiles[0], PROFILES_KEY), Some(profile_id.as_str()));
    assert_eq!(s(&users[0], PROFILES_KEY), Some(profile_id.as_str()));
    // The three messages may be processed concurrently, but each item is written exactly once.
    let mut outcomes = pipeline.log_events("synced").await;
    outcomes.extend(pipeline.log_events("already_synced").await);
    assert_eq!(outcomes.len(), 3);
    let written = |field: &str| outcomes.iter().filter(|e| e[field] == json!(true)).count();
    assert_eq!(
        (written("user_written"), written("profile_written")),
        (1, 1),
        "{outcomes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_message_delivered_twice_changes_nothing() {
    let pipeline = start("delivered_twice").await;
    let sub = "6f0e7a52-3c1d-4b8e-9a7f-2d5c4b3a1e0f";
    let body = envelope_for(
        &pipeline.pool.id,
        sub,
        "twice",
        &[("email", "twice@example.com"), ("given_name", "Twice")],
    );
    pipeline.send_raw(&body).await.unwrap();
    pipeline.drain().await.unwrap();
    let user_before = pipeline.user_item(sub).await.unwrap().expect("users item");
    let profile_before = pipeline
        .profile_item(&pipeline.profile_id_of(sub))
        .await
        .unwrap()
        .expect("profile");

    // Let the clock move so a rewrite would show in created_at/updated_at.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    pipeline.send_raw(&body).await.unwrap();
    let report = pipeline.drain().await.unwrap();
    assert_eq!((report.received, report.deleted), (1, 1), "{report:?}");

    assert_eq!(pipeline.user_item(sub).await.unwrap().unwrap(), user_before);
    assert_eq!(
        pipeline
            .profile_item(&pipeline.profile_id_of(sub))
            .await
            .unwrap()
            .unwrap(),
        profile_before
    );
    assert_eq!(pipeline.scan(pipeline.users_table()).await.unwrap().len(), 1);
    assert_eq!(pipeline.scan(pipeline.profiles_table()).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn application_edit_of_a_profile_survives_redelivery() {
    let pipeline = start("edit_survives").await;
    let signed_up = confirm(&pipeline, &person(4)).await;
    pipeline.drain().await.unwrap();
    let profile_id = pipeline.profile_id_of(&signed_up.sub);

    // The application fills in the profile.
    pipeline
        .dynamodb
        .update_item()
        .table_name(pipeline.profiles_table())
        .key(PROFILES_KEY, AttributeValue::S(profile_id.clone()))
        .update_expression("SET id_type = :t, id_number = :n, full_name = :f, updated_at = :u")
        .expression_attribute_values(":t", AttributeValue::S("passport".into()))
        .expression_attribute_values(":n", AttributeValue::S("X1234567".into()))
        .expression_attribute_values(":f", AttributeValue::S("Edited By App".into()))
        .expression_attribute_values(":u", AttributeValue::S("2030-01-01T00:00:00Z".into()))
        .send()
        .await
        .unwrap();
    let edited = pipeline.profile_item(&profile_id).await.unwrap().unwrap();

    // Cognito retries the trigger and SQS redelivers.
    pipeline.invoke_trigger(&signed_up.event).await.unwrap();
    pipeline.invoke_trigger(&signed_up.event).await.unwrap();
    let report = pipeline.drain().await.unwrap();
    assert_eq!(report.deleted, 2, "{report:?}");

    let after = pipeline.profile_item(&profile_id).await.unwrap().unwrap();
    assert_eq!(after, edited, "the application's edit must survive");
    assert_eq!(s(&after, "id_type"), Some("passport"));
    assert_eq!(pipeline.profiles_of(&signed_up.sub).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_end_in_the_dlq_and_good_ones_are_written() {
    let pipeline = start("malformed_to_dlq").await;
    let pool = pipeline.pool.id.clone();
    let other_sub = "1a2b3c4d-0000-4000-8000-00000000abcd";
    let mut bad = vec![
        "this is not json, and it mentions leaked.name@example.com".to_owned(),
        " ".to_owned(),
        "[1, 2, 3]".to_owned(),
        json!({"version": 1, "user_pool_id": pool}).to_string(),
        json!({"version": 99, "source": "post_confirmation", "user_pool_id": pool, "sub": other_sub,
               "username": "v99", "confirmed_at": "2026-01-01T00:00:00Z", "attributes": {}})
        .to_string(),
        json!({"version": 1, "source": "post_confirmation", "user_pool_id": pool, "sub": "not-a-uuid",
               "username": "x", "confirmed_at": "2026-01-01T00:00:00Z", "attributes": {"email": 7}})
        .to_string(),
        envelope_for(
            "eu-west-1_OtherPool9",
            other_sub,
            "foreign",
            &[("email", "foreign@example.com")],
        ),
        format!("{{\"version\":1,\"padding\":\"{}\"}}", "x".repeat(250_000)),
    ];
    let good: Vec<(String, String)> = (0..10)
        .map(|i| {
            let sub = format!("00000000-0000-4000-8000-{i:012}");
            let body = envelope_for(
                &pool,
                &sub,
                &format!("good{i}"),
                &[("email", &format!("good{i}@example.com"))],
            );
            (sub, body)
        })
        .collect();
    // Interleave so that batches mix good and bad records.
    let mut sent = Vec::new();
    for i in 0..good.len().max(bad.len()) {
        if let Some((_, body)) = good.get(i) {
            sent.push(body.clone());
        }
        if let Some(body) = bad.get(i) {
            sent.push(body.clone());
        }
    }
    for body in &sent {
        pipeline.send_raw(body).await.unwrap();
    }

    let report = pipeline.drain().await.unwrap();
    assert_eq!(report.deleted, good.len(), "{report:?}");
    assert!(
        report.reported_failures >= bad.len() * 5,
        "each bad message is tried maxReceiveCount times: {report:?}"
    );
    assert_eq!(
        report.failed_invocations, 0,
        "one bad record must never fail the batch: {report:?}"
    );

    for (sub, _) in &good {
        assert!(
            pipeline.user_item(sub).await.unwrap().is_some(),
            "good message {sub} not written"
        );
    }
    assert_eq!(
        pipeline.scan(pipeline.users_table()).await.unwrap().len(),
        good.len()
    );
    assert_eq!(
        pipeline.scan(pipeline.profiles_table()).await.unwrap().len(),
        good.len()
    );

    let mut in_dlq: Vec<String> = pipeline
        .dlq_messages()
        .await
        .unwrap()
        .into_iter()
        .map(|(b, _)| b)
        .collect();
    in_dlq.sort();
    bad.sort();
    assert_eq!(in_dlq.len(), bad.len());
    assert!(in_dlq == bad, "exactly the malformed messages are in the DLQ");

    let reasons: HashSet<String> = pipeline
        .log_events("record_failed")
        .await
        .iter()
        .filter_map(|e| e["reason"].as_str().map(str::to_owned))
        .collect();
    for reason in [
        "not_json",
        "empty",
        "not_an_object",
        "missing_field",
        "unsupported_version",
        "wrong_type",
        "foreign_user_pool",
    ] {
        assert!(
            reasons.contains(reason),
            "no record_failed with reason {reason}: {reasons:?}"
        );
    }
    pipeline
        .assert_no_pii_in_logs(&[
            "leaked.name@example.com".into(),
            "foreign@example.com".into(),
            "good1@example.com".into(),
        ])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_redriven_from_the_dlq_is_processed_once() {
    // A deploy that broke the consumer's table name: every write fails, messages end in the DLQ.
    let options = PipelineOptions {
        consumer_env: env(&[("USERS_TABLE", "table-that-does-not-exist")]),
        ..PipelineOptions::default()
    };
    let mut pipeline = start_with("redrive_once", options).await;
    let signed_up = confirm(&pipeline, &person(5)).await;
    let report = pipeline.drain().await.unwrap();
    assert_eq!(report.deleted, 0, "{report:?}");
    assert!(pipeline.user_item(&signed_up.sub).await.unwrap().is_none());
    let dead = pipeline.dlq_messages().await.unwrap();
    assert_eq!(dead.len(), 1);
    // Make the DLQ message visible again for the redrive.
    for (_, receipt) in &dead {
        pipeline
            .sqs
            .change_message_visibility()
            .queue_url(pipeline.dlq_url())
            .receipt_handle(receipt)
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
    }

    // The fix is deployed; the operator redrives the DLQ.
    let users_table = pipeline.users_table().to_owned();
    pipeline
        .restart_consumer(&[("USERS_TABLE", &users_table)])
        .await
        .unwrap();
    assert_eq!(pipeline.redrive_dlq().await.unwrap(), 1);
    let report = pipeline.drain().await.unwrap();
    assert_eq!((report.received, report.deleted), (1, 1), "{report:?}");
    let item = pipeline
        .user_item(&signed_up.sub)
        .await
        .unwrap()
        .expect("users item after redrive");
    let profile_id = pipeline.profile_id_of(&signed_up.sub);
    assert_eq!(s(&item, PROFILES_KEY), Some(profile_id.as_str()));

    // A second redrive (nothing left) and a stray duplicate change nothing.
    assert_eq!(pipeline.redrive_dlq().await.unwrap(), 0);
    pipeline.send_raw(&dead[0].0).await.unwrap();
    pipeline.drain().await.unwrap();
    assert_eq!(pipeline.scan(pipeline.users_table()).await.unwrap().len(), 1);
    assert_eq!(pipeline.profiles_of(&signed_up.sub).await.unwrap().len(), 1);
    assert_eq!(pipeline.user_item(&signed_up.sub).await.unwrap().unwrap(), item);
    assert_eq!(queue_depth(&pipeline, pipeline.dlq_url()).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_queue_logs_enqueue_failed_and_does_not_break_the_sign_up() {
    let closed = format!("http://127.0.0.1:{}", free_port().unwrap());
    let options = PipelineOptions {
        trigger_env: env(&[("AWS_ENDPOINT_URL_SQS", &closed)]),
        ..PipelineOptions::default()
    };
    let pipeline = start_with("enqueue_failed_open", options).await;
    let user = person(6);
    let signed_up = pipeline.sign_up(&user).await.unwrap();

    let response = pipeline
        .invoke_trigger(&signed_up.event)
        .await
        .expect("sign-up is not broken");
    assert_eq!(response, signed_up.event);
    let failures = pipeline.log_events("enqueue_failed").await;
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0]["sub"], json!(signed_up.sub));
    assert_eq!(failures[0]["user_pool_id"], json!(pipeline.pool.id));
    assert_eq!(failures[0]["level"], json!("ERROR"));
    pipeline.assert_no_pii_in_logs(&pii_of(&user)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_queue_fails_the_invocation_when_configured_to() {
    let closed = format!("http://127.0.0.1:{}", free_port().unwrap());
    let options = PipelineOptions {
        trigger_env: env(&[
            ("AWS_ENDPOINT_URL_SQS", &closed),
            ("FAIL_ON_ENQUEUE_ERROR", "true"),
        ]),
        ..PipelineOptions::default()
    };
    let pipeline = start_with("enqueue_failed_closed", options).await;
    let signed_up = pipeline.sign_up(&person(7)).await.unwrap();
    match pipeline.invoke_trigger(&signed_up.event).await {
        Err(InvokeError::Function(error)) => {
            assert_eq!(error["errorType"], json!("EnqueueFailed"), "{error}");
            assert_tells_the_user_nothing_but_the_code(&pipeline, &error, "SYNC-QUEUE");
        }
        other => panic!("expected a function error, got {other:?}"),
    }
    let failures = pipeline.log_events("enqueue_failed").await;
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0]["code"], json!("SYNC-QUEUE"));
    // The detail is in the log, for the operator.
    assert!(
        failures[0]["error"].as_str().unwrap().contains("SendMessage"),
        "{failures:?}"
    );
}

/// What Cognito passes on to the signing-up user's client: the fixed sentence and the code,
/// and no pool id, account id, ARN, queue URL or SDK detail.
fn assert_tells_the_user_nothing_but_the_code(pipeline: &LocalPipeline, error: &Value, code: &str) {
    let message = error["errorMessage"].as_str().unwrap_or_default();
    assert_eq!(message, trigger::handler::public_message(code), "{error}");
    for secret in [
        pipeline.pool.id.as_str(),
        "eu-west-1_SomeoneElse1",
        "123456789012",
        "arn:",
        "127.0.0.1",
        pipeline.queue_url(),
        "SendMessage",
    ] {
        assert!(
            !error.to_string().contains(secret),
            "{secret} reaches the user: {error}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_from_another_user_pool_or_trigger_are_refused() {
    let pipeline = start("foreign_events").await;
    let signed_up = pipeline.sign_up(&person(8)).await.unwrap();

    let mut foreign = signed_up.event.clone();
    foreign["userPoolId"] = json!("eu-west-1_SomeoneElse1");
    match pipeline.invoke_trigger(&foreign).await {
        Err(InvokeError::Function(error)) => {
            assert_eq!(error["errorType"], json!("ForeignUserPool"), "{error}");
            assert_tells_the_user_nothing_but_the_code(&pipeline, &error, "SYNC-POOL");
        }
        other => panic!("expected ForeignUserPool, got {other:?}"),
    }
    // Both pool ids are in the log, where the operator needs them.
    let refused = pipeline.log_events("trigger_refused").await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    let detail = refused[0]["error"].as_str().unwrap();
    assert!(
        detail.contains("eu-west-1_SomeoneElse1") && detail.contains(&pipeline.pool.id),
        "{detail}"
    );
    assert_eq!(refused[0]["code"], json!("SYNC-POOL"));

    let mut wrong_trigger = signed_up.event.clone();
    wrong_trigger["triggerSource"] = json!("PreSignUp_SignUp");
    match pipeline.invoke_trigger(&wrong_trigger).await {
        Err(InvokeError::Function(error)) => assert_eq!(error["errorType"], json!("UnknownTriggerSource")),
        other => panic!("expected UnknownTriggerSource, got {other:?}"),
    }

    let mut not_uuid = signed_up.event.clone();
    not_uuid["request"]["userAttributes"]["sub"] = json!("attribute_not_exists(user_id)");
    match pipeline.invoke_trigger(&not_uuid).await {
        Err(InvokeError::Function(error)) => assert_eq!(error["errorType"], json!("InvalidUser")),
        other => panic!("expected InvalidUser, got {other:?}"),
    }
    assert_eq!(
        queue_depth(&pipeline, pipeline.queue_url()).await,
        0,
        "nothing refused is enqueued"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_email_phone_or_name_appears_in_any_log_line() {
    let pipeline = start("no_pii_in_logs").await;
    every_log_path_without_pii(&pipeline).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_email_phone_or_name_appears_in_any_log_line_even_at_trace_level() {
    // At TRACE the Lambda runtime logs every raw event and the SDK every request: the functions
    // cap third-party crates at INFO so that this holds at every level an operator can set.
    let trace = env(&[("AWS_LAMBDA_LOG_LEVEL", "TRACE")]);
    let options = PipelineOptions {
        trigger_env: trace.clone(),
        consumer_env: trace,
        ..PipelineOptions::default()
    };
    let pipeline = start_with("no_pii_in_logs_at_trace", options).await;
    every_log_path_without_pii(&pipeline).await;
}

/// Takes every log path of both functions with users full of PII, then scans every line.
async fn every_log_path_without_pii(pipeline: &LocalPipeline) {
    let users: Vec<NewUser> = (20..26).map(person).collect();
    let mut signed = Vec::new();
    for user in &users {
        signed.push(confirm(pipeline, user).await);
    }
    // Duplicates, a forgot-password confirmation and malformed messages carrying PII, so that
    // every log path is taken.
    pipeline.invoke_trigger(&signed[0].event).await.unwrap();
    let mut forgot = signed[1].event.clone();
    forgot["triggerSource"] = json!("PostConfirmation_ConfirmForgotPassword");
    pipeline.invoke_trigger(&forgot).await.unwrap();
    let mut foreign = signed[2].event.clone();
    foreign["userPoolId"] = json!("eu-west-1_SomeoneElse1");
    assert!(pipeline.invoke_trigger(&foreign).await.is_err());
    let mut malformed = signed[3].event.clone();
    malformed["request"]["userAttributes"]["email"] = json!(["pii.user023@example.com"]);
    assert!(pipeline.invoke_trigger(&malformed).await.is_err());
    pipeline
        .send_raw("pii.user024@example.com +34600110024")
        .await
        .unwrap();
    pipeline
        .send_raw(
            &json!({"version": 1, "source": "post_confirmation", "user_pool_id": pipeline.pool.id,
                          "sub": "pii.user025@example.com", "username": "user025", "confirmed_at": "x",
                          "attributes": {"given_name": 5}})
            .to_string(),
        )
        .await
        .unwrap();
    pipeline.drain().await.unwrap();

    // Every user is in both tables. (Counting `synced` lines would be wrong: a put whose answer
    // comes after the SDK's attempt timeout is retried and then found written, `already_synced`.)
    for signed_up in &signed {
        assert!(
            pipeline.user_item(&signed_up.sub).await.unwrap().is_some(),
            "{}",
            signed_up.sub
        );
        assert_eq!(
            pipeline.profiles_of(&signed_up.sub).await.unwrap().len(),
            1,
            "{}",
            signed_up.sub
        );
    }
    assert!(!pipeline.log_events("synced").await.is_empty());
    assert!(!pipeline.log_events("record_failed").await.is_empty());
    let secrets: Vec<String> = users.iter().flat_map(pii_of).collect();
    pipeline.assert_no_pii_in_logs(&secrets).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_that_cannot_work_stop_the_real_binaries_at_start_up_naming_the_variable() {
    let pipeline = start("config_refused").await;
    let signed_up = pipeline.sign_up(&person(30)).await.unwrap();
    // (The welcomer's: `welcome.rs`.)
    let cases: [(&str, &str, &str); 5] = [
        ("trigger", "ENQUEUE_TIMEOUT_MS", "5000"),
        ("trigger", "ENQUEUE_MAX_ATTEMPTS", "0"),
        ("consumer", "MAX_CONCURRENT_RECORDS", "0"),
        ("consumer", "DEADLINE_MARGIN_MS", "29000"),
        ("consumer", "METRICS_NAMESPACE", "AWS/Lambda"),
    ];
    for (function, name, value) in cases {
        let label = format!("{function}-{name}");
        let variant = match function {
            "trigger" => pipeline.start_trigger_variant(&label, &[(name, value)]).await,
            _ => pipeline.start_consumer_variant(&label, &[(name, value)]).await,
        }
        .unwrap();
        let payload = match function {
            "trigger" => signed_up.event.clone(),
            _ => json!({"Records": []}),
        };
        variant.assert_refused_at_start_up(&payload, name).await;
    }
}

/// A loopback port that accepts connections (the kernel completes them) and never answers.
fn black_hole() -> (std::net::TcpListener, String) {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    (listener, endpoint)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_still_running_at_its_deadline_is_killed_and_the_next_invocation_gets_a_fresh_process() {
    // The emulator's guarantee, which the tests below rely on: as Lambda does, it does not wait
    // past the function's timeout, and the next invocation is a cold start.
    let pipeline = start("deadline_enforced").await;
    let (_held, silent_sqs) = black_hole();
    let trigger = pipeline
        .start_variant_with_timeout(
            "trigger",
            "slow-trigger",
            &[
                ("AWS_ENDPOINT_URL_SQS", &silent_sqs),
                ("ENQUEUE_TIMEOUT_MS", "4000"),
                ("ENQUEUE_ATTEMPT_TIMEOUT_MS", "4000"),
            ],
            Duration::from_secs(1),
        )
        .await
        .unwrap();
    let signed_up = pipeline.sign_up(&person(40)).await.unwrap();
    let first_pid = trigger.pid().expect("running");

    let started = std::time::Instant::now();
    let outcome = trigger.invoke(&signed_up.event).await;
    assert!(matches!(outcome, Err(InvokeError::TimedOut)), "{outcome:?}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "not waited out: {:?}",
        started.elapsed()
    );
    assert_eq!(trigger.starts(), 2, "killed at the deadline and started again");
    assert_ne!(trigger.pid(), Some(first_pid));

    // The fresh process serves the next invocation (one that needs no SQS: a foreign pool).
    let mut foreign = signed_up.event.clone();
    foreign["userPoolId"] = json!("eu-west-1_SomeoneElse1");
    match trigger.invoke(&foreign).await {
        Err(InvokeError::Function(error)) => assert_eq!(error["errorType"], json!("ForeignUserPool")),
        other => panic!("expected the fresh process to answer, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_margin_lets_the_consumer_report_its_batch_before_lambda_would_kill_it() {
    let pipeline = start("deadline_margin").await;
    // DynamoDB never answers: every put would wait out its SDK attempts (2 s each) and backon's
    // retries, far beyond the 2 s function timeout.
    let (_held, silent_dynamodb) = black_hole();
    let consumer = pipeline
        .start_consumer_against("stuck-consumer", &silent_dynamodb, &[])
        .await
        .unwrap();
    let subs: Vec<String> = (0..3)
        .map(|i| format!("00000000-0000-4000-8000-00000000004{i}"))
        .collect();
    pipeline.send_envelopes(&subs, "stuck").await.unwrap();
    let report = pipeline.event_source_for(&consumer).poll_once().await.unwrap();
    assert_eq!(report.received, 3);
    assert_eq!(
        report.failed_invocations, 0,
        "the invocation answered before its deadline: {report:?}"
    );
    assert_eq!(report.reported_failures, 3, "{report:?}");
    assert_eq!(consumer.starts(), 1, "never killed");
    let lines = consumer.settled_log_lines().await;
    let failed = lines
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|v| v["event"] == "record_failed")
        .map(|v| v["reason"].as_str().unwrap_or_default().to_owned())
        .collect::<Vec<_>>();
    assert_eq!(failed, ["deadline_exceeded"; 3], "{lines:?}");
}
