//! End-to-end with hostile and malformed input: the real trigger and consumer binaries against
//! moto, as in `pipeline.rs`, fed what an attacker, a buggy producer or a careless client could
//! send. `pipeline.rs` already covers the plain cases (malformed bodies, one foreign pool, one
//! refused event of each kind, blank attributes); these are the ones that try harder.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use e2e::event_source::PollReport;
use e2e::pipeline::{ConfirmedSignUp, s};
use e2e::runtime_api::InvokeError;
use e2e::{LocalPipeline, NewUser, PipelineOptions};
use serde_json::{Value, json};
use shared::mapping::{Item, PROFILES_KEY, USERS_KEY, item_size, sync_items};
use shared::{ConfirmationSource, ConfirmedUser, envelope};
use time::OffsetDateTime;

/// SQS's classic message size limit. A queue may allow up to 1 MiB (moto's queues do), but a
/// message under this fits any queue.
const SQS_CLASSIC_MESSAGE_LIMIT: usize = 256 * 1024;
/// DynamoDB's item size limit (moto refuses from 405,000 bytes).
const DYNAMODB_ITEM_LIMIT: usize = 400 * 1024;

async fn start(label: &str) -> LocalPipeline {
    LocalPipeline::start_or_panic(label, PipelineOptions::default()).await
}

/// Signs up and confirms `name` with an email address; returns the event Cognito would send.
async fn sign_up(pipeline: &LocalPipeline, name: &str) -> ConfirmedSignUp {
    let email = format!("{name}@example.com");
    pipeline
        .sign_up(&NewUser::new(name, &[("email", &email)]))
        .await
        .unwrap_or_else(|err| panic!("sign-up of {name}: {err:#}"))
}

/// The user attributes of a Post Confirmation event, for editing.
fn user_attributes(event: &mut Value) -> &mut serde_json::Map<String, Value> {
    event["request"]["userAttributes"]
        .as_object_mut()
        .expect("the event has userAttributes")
}

/// The pool id with the case of its id part swapped: another pool to Cognito, which compares
/// ids exactly. (The region part must stay lower case to be a pool id at all.)
fn case_swapped(pool_id: &str) -> String {
    let (region, id) = pool_id.split_once('_').expect("a pool id");
    let swapped: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    assert_ne!(swapped, id, "the id part has no letter");
    format!("{region}_{swapped}")
}

async fn expect_refusal(pipeline: &LocalPipeline, event: &Value, error_type: &str) {
    match pipeline.invoke_trigger(event).await {
        Err(InvokeError::Function(error)) => {
            assert_eq!(error["errorType"], json!(error_type), "{error} for {event}")
        }
        other => panic!("expected {error_type} for {event}, got {other:?}"),
    }
}

/// The envelope the trigger writes for `event`, and the users item the consumer makes of it.
fn envelope_and_item(event: &Value) -> (String, Item) {
    let attributes: BTreeMap<String, String> =
        serde_json::from_value(event["request"]["userAttributes"].clone()).expect("string attributes");
    let user = ConfirmedUser::new(
        event["userPoolId"].as_str().unwrap(),
        &attributes["sub"],
        event["userName"].as_str().unwrap(),
        attributes.clone(),
        OffsetDateTime::now_utc(),
        ConfirmationSource::PostConfirmation,
    )
    .expect("a valid user");
    (
        envelope::encode(&user),
        sync_items(&user, OffsetDateTime::now_utc()).user,
    )
}

/// Drains the queue until `dead` messages have reached the DLQ. `drain` can stop a moment
/// early: moto counts visible and in-flight messages at slightly different instants, so a
/// message that turns visible in between (the one about to move to the DLQ) counts as neither.
async fn drain_until_dead_letters(pipeline: &LocalPipeline, dead: usize) -> PollReport {
    let mut total = PollReport::default();
    for _ in 0..20 {
        total += pipeline.drain().await.unwrap();
        let (waiting, _) = pipeline.queue_counts(pipeline.dlq_url()).await.unwrap();
        if waiting >= dead as u64 {
            return total;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("fewer than {dead} messages reached the DLQ: {total:?}");
}

/// How many items the users and the profiles tables hold.
async fn table_sizes(pipeline: &LocalPipeline) -> (usize, usize) {
    let users = pipeline.scan(pipeline.users_table()).await.unwrap();
    let profiles = pipeline.scan(pipeline.profiles_table()).await.unwrap();
    (users.len(), profiles.len())
}

/// Every `record_failed` log event's reason and error, by message id.
async fn failures_by_message(pipeline: &LocalPipeline) -> HashMap<String, Vec<(String, String)>> {
    let mut failures: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for event in pipeline.log_events("record_failed").await {
        let field = |name: &str| event[name].as_str().unwrap_or_default().to_owned();
        failures
            .entry(field("message_id"))
            .or_default()
            .push((field("reason"), field("error")));
    }
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_that_look_like_expressions_or_injections_are_stored_verbatim_and_change_no_condition() {
    let pipeline = start("hostile_values").await;
    let two_kb: String = "attribute_not_exists(#key) OR :v "
        .chars()
        .cycle()
        .take(2048)
        .collect();
    let username = "#key:v;--";
    let attributes: Vec<(&str, &str)> = vec![
        ("email", "hostile+:v#key@example.com"),
        ("given_name", "attribute_not_exists(user_id) OR #k = :v"),
        ("family_name", "\"; DROP TABLE users; --"),
        ("name", &two_kb),
        ("middle_name", "${jndi:ldap://x}"),
        ("custom:plan", ":v"),
        ("custom:tenant_id", "#key"),
        ("address", "{\"S\": \"injected\"}"),
        ("zoneinfo", "SET #key = :v REMOVE profile_id"),
        (
            "nickname",
            "NUL\u{0} BEL\u{7} ESC\u{1b}[2J DEL\u{7f} TAB\t CR\r LF\n end",
        ),
        ("profile", "\u{202E}gnp.exe\u{202C} مرحبا بك שלום"),
        (
            "website",
            "👩\u{200D}👩\u{200D}👧\u{200D}👦 🏳\u{FE0F}\u{200D}🌈 ✨",
        ),
    ];
    let signed_up = pipeline
        .sign_up(&NewUser::new(username, &attributes))
        .await
        .expect("moto's Cognito accepts every one of these values");
    for (name, value) in &attributes {
        assert_eq!(
            signed_up.attributes.get(*name).map(String::as_str),
            Some(*value),
            "Cognito changed {name}"
        );
    }
    // Attribute names no schema allows, as only a forged event could carry them: they stay
    // names inside the `attributes` map and can never replace a key.
    let mut event = signed_up.event.clone();
    let forged = user_attributes(&mut event);
    forged.insert(USERS_KEY.into(), json!("00000000-0000-4000-8000-000000000000"));
    forged.insert(PROFILES_KEY.into(), json!("attribute_not_exists(profile_id)"));
    forged.insert("custom:#k = :v".into(), json!(":v"));
    let sent: BTreeMap<String, String> =
        serde_json::from_value(event["request"]["userAttributes"].clone()).unwrap();

    assert_eq!(pipeline.invoke_trigger(&event).await.unwrap(), event);
    let report = pipeline.drain().await.unwrap();
    assert_eq!((report.deleted, report.reported_failures), (1, 0), "{report:?}");

    let sub = &signed_up.sub;
    let profile_id = pipeline.profile_id_of(sub);
    let item = pipeline.user_item(sub).await.unwrap().expect("users item");
    assert_eq!(s(&item, USERS_KEY), Some(sub.as_str()));
    assert_eq!(s(&item, PROFILES_KEY), Some(profile_id.as_str()));
    assert_eq!(s(&item, "username"), Some(username));
    for name in ["email", "given_name", "family_name", "name"] {
        assert_eq!(s(&item, name), Some(sent[name].as_str()), "{name}");
    }
    let stored: BTreeMap<String, String> = item["attributes"]
        .as_m()
        .expect("attributes map")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_s().expect("a string").clone()))
        .collect();
    assert_eq!(stored, sent, "every attribute is stored as it was sent");

    let profile = pipeline
        .profile_item(&profile_id)
        .await
        .unwrap()
        .expect("profile");
    let full_name = format!("{} {}", sent["given_name"], sent["family_name"]);
    assert_eq!(s(&profile, "full_name"), Some(full_name.as_str()));
    assert_eq!(s(&profile, USERS_KEY), Some(sub.as_str()));

    // Cognito retries the trigger: the second delivery finds both items and changes nothing.
    assert_eq!(pipeline.invoke_trigger(&event).await.unwrap(), event);
    let report = pipeline.drain().await.unwrap();
    assert_eq!((report.deleted, report.reported_failures), (1, 0), "{report:?}");
    assert_eq!(pipeline.user_item(sub).await.unwrap().unwrap(), item);
    assert_eq!(
        pipeline.profile_item(&profile_id).await.unwrap().unwrap(),
        profile
    );
    assert_eq!(table_sizes(&pipeline).await, (1, 1));
    let written: Vec<bool> = pipeline
        .log_events("already_synced")
        .await
        .iter()
        .flat_map(|e| {
            [
                e["user_written"] == json!(true),
                e["profile_written"] == json!(true),
            ]
        })
        .collect();
    assert_eq!(written, [false, false], "the redelivery must write nothing");

    // The values are data to the logs too: none of them is printed.
    let secrets = [&sent["email"], &sent["given_name"], &sent["family_name"], &two_kb];
    pipeline.assert_no_pii_in_logs(&secrets.map(String::clone)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelopes_whose_sub_is_not_a_uuid_or_whose_pool_is_not_ours_end_in_the_dlq_with_their_reason() {
    let pipeline = start("invalid_user_foreign_pool").await;
    let pool = pipeline.pool.id.clone();
    let id = pool.split_once('_').unwrap().1;
    let sub = "3f1c2b4a-5d6e-4f70-8a9b-0c1d2e3f4a5b";
    let body = |pool: &str, sub: &str, attributes: Value| {
        json!({
            "version": 1, "source": "post_confirmation", "user_pool_id": pool, "sub": sub,
            "username": "hostile", "confirmed_at": "2026-11-23T18:08:47.123Z", "attributes": attributes,
        })
        .to_string()
    };
    let bad = [
        (
            body(&pool, "attribute_not_exists(user_id) OR #k = :v", json!({})),
            "invalid_user",
        ),
        (body(&pool, "", json!({})), "invalid_user"),
        (body(&pool, &format!("{sub} OR 1=1"), json!({})), "invalid_user"),
        (body(&pool, &format!("{sub}\u{0}"), json!({})), "invalid_user"),
        (body(&pool, "../users/3f1c2b4a", json!({})), "invalid_user"),
        // A UUID, but its `sub` attribute names another user.
        (
            body(&pool, sub, json!({"sub": "4a5b6c7d-0000-4000-8000-000000000001"})),
            "invalid_user",
        ),
        // Well-formed envelopes of other pools, the first two one character or one region away.
        (body(&case_swapped(&pool), sub, json!({})), "foreign_user_pool"),
        (
            body(&format!("eu-west-1_{id}"), sub, json!({})),
            "foreign_user_pool",
        ),
        (
            body("us-east-1_AnotherPool1", sub, json!({"email": "x@example.com"})),
            "foreign_user_pool",
        ),
    ];
    let good: Vec<(String, String)> = (0..3)
        .map(|i| {
            let sub = format!("7e57c0de-0000-4000-8000-{i:012}");
            let body = body(&pool, &sub, json!({"email": format!("good{i}@example.com")}));
            (sub, body)
        })
        .collect();

    let mut expected_reason = HashMap::new();
    for (i, (body, reason)) in bad.iter().enumerate() {
        expected_reason.insert(pipeline.send_raw(body).await.unwrap(), *reason);
        if let Some((_, good_body)) = good.get(i) {
            pipeline.send_raw(good_body).await.unwrap();
        }
    }
    let report = drain_until_dead_letters(&pipeline, bad.len()).await;
    assert_eq!(report.deleted, good.len(), "{report:?}");
    assert_eq!(report.failed_invocations, 0, "{report:?}");

    let failures = failures_by_message(&pipeline).await;
    for (message_id, reason) in &expected_reason {
        let seen: HashSet<&str> = failures
            .get(message_id)
            .unwrap_or_else(|| panic!("no record_failed for the {reason} message"))
            .iter()
            .map(|(r, _)| r.as_str())
            .collect();
        assert_eq!(seen, HashSet::from([*reason]), "message {message_id}");
    }
    assert_eq!(failures.len(), bad.len(), "only the bad messages failed");

    let in_dlq = pipeline.queue_bodies(pipeline.dlq_url()).await.unwrap();
    let mut expected_dlq: Vec<String> = bad.iter().map(|(body, _)| body.clone()).collect();
    expected_dlq.sort();
    assert!(
        in_dlq == expected_dlq,
        "exactly the refused messages are in the DLQ"
    );

    for (good_sub, _) in &good {
        assert!(
            pipeline.user_item(good_sub).await.unwrap().is_some(),
            "{good_sub} not written"
        );
    }
    // The foreign pools' messages carried a valid sub: nothing of theirs was written.
    assert!(pipeline.user_item(sub).await.unwrap().is_none());
    assert!(pipeline.profiles_of(sub).await.unwrap().is_empty());
    assert_eq!(table_sizes(&pipeline).await, (good.len(), good.len()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_misses_of_the_trigger_source_pool_or_sub_are_refused_and_enqueue_nothing() {
    let pipeline = start("trigger_near_misses").await;
    let signed_up = sign_up(&pipeline, "near.miss").await;
    let (pool, sub) = (pipeline.pool.id.clone(), signed_up.sub.clone());
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut event = signed_up.event.clone();
        edit(&mut event);
        event
    };

    let mut cases: Vec<(Value, &str)> = Vec::new();
    for source in [
        "postconfirmation_confirmsignup",
        "PostConfirmation_ConfirmSignUp ",
        " PostConfirmation_ConfirmSignUp",
        "PostConfirmation_ConfirmSignUp\u{0}",
        "",
        "PostConfirmation_AdminConfirmSignUp",
        "PostAuthentication_Authentication",
    ] {
        cases.push((
            with(&|e| e["triggerSource"] = json!(source)),
            "UnknownTriggerSource",
        ));
    }
    let id = pool.split_once('_').unwrap().1;
    for other in [
        case_swapped(&pool),
        format!("{pool} "),
        format!("eu-west-1_{id}"),
        String::new(),
    ] {
        cases.push((with(&|e| e["userPoolId"] = json!(other)), "ForeignUserPool"));
    }
    for bad in [
        String::new(),
        format!("{{{sub}}}"),
        format!("urn:uuid:{sub}"),
        sub.replace('-', ""),
        format!("{sub}\u{0}"),
        format!("{sub} OR 1=1"),
        "00000000-0000-0000-0000-00000000000g".to_owned(),
    ] {
        cases.push((with(&|e| user_attributes(e)["sub"] = json!(bad)), "InvalidUser"));
    }
    cases.push((
        with(&|e| {
            user_attributes(e).remove("sub");
        }),
        "InvalidUser",
    ));

    for (event, error_type) in &cases {
        expect_refusal(&pipeline, event, error_type).await;
    }
    assert!(pipeline.log_events("enqueued").await.is_empty());
    let report = pipeline.poll_once().await.unwrap();
    assert_eq!(report.received, 0, "nothing refused is enqueued: {report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_custom_attributes_are_synced_and_an_item_over_400_kb_goes_alone_to_the_dlq() {
    let pipeline = start("thousands_of_attributes").await;
    // As many custom attributes as fit one message under SQS's classic limit.
    let wide = sign_up(&pipeline, "wide").await;
    let mut wide_event = wide.event.clone();
    let (base, _) = envelope_and_item(&wide_event);
    let mut room = SQS_CLASSIC_MESSAGE_LIMIT - base.len() - 256;
    let mut custom = 0;
    loop {
        let name = format!("custom:attr_{custom:05}");
        let value = format!("{custom:05} Zoë 明美 :v #k");
        // `"name":"value",` in the envelope.
        let cost =
            serde_json::to_string(&name).unwrap().len() + serde_json::to_string(&value).unwrap().len() + 2;
        if cost > room {
            break;
        }
        room -= cost;
        user_attributes(&mut wide_event).insert(name, json!(value));
        custom += 1;
    }
    let (wide_body, wide_item) = envelope_and_item(&wide_event);
    assert!(custom > 3000, "{custom} custom attributes");
    assert!(
        wide_body.len() <= SQS_CLASSIC_MESSAGE_LIMIT,
        "{} bytes",
        wide_body.len()
    );
    assert!(
        item_size(&wide_item) < DYNAMODB_ITEM_LIMIT,
        "{} bytes",
        item_size(&wide_item)
    );

    // A message that fits SQS but whose item does not fit DynamoDB: the five attributes the
    // users item also copies to the top level count twice (Cognito caps each at 2048
    // characters, so only a forged event or a buggy producer can do this).
    let huge = sign_up(&pipeline, "huge").await;
    let mut huge_event = huge.event.clone();
    for (i, name) in ["email", "phone_number", "given_name", "family_name", "name"]
        .iter()
        .enumerate()
    {
        let fill = char::from(b'a' + i as u8).to_string().repeat(40_000);
        user_attributes(&mut huge_event).insert((*name).to_owned(), json!(fill));
    }
    for i in 0..1000 {
        user_attributes(&mut huge_event).insert(format!("custom:attr_{i:05}"), json!(format!("value {i}")));
    }
    let (huge_body, huge_item) = envelope_and_item(&huge_event);
    assert!(
        huge_body.len() <= SQS_CLASSIC_MESSAGE_LIMIT,
        "{} bytes",
        huge_body.len()
    );
    assert!(item_size(&huge_item) > 410_000, "{} bytes", item_size(&huge_item));

    let mut ordinary = Vec::new();
    for i in 0..4 {
        ordinary.push(sign_up(&pipeline, &format!("ordinary{i}")).await);
    }
    // One batch: two ordinary users, the huge one, the wide one, two more ordinary users.
    let events = [
        &ordinary[0].event,
        &ordinary[1].event,
        &huge_event,
        &wide_event,
        &ordinary[2].event,
        &ordinary[3].event,
    ];
    for event in events {
        assert_eq!(&pipeline.invoke_trigger(event).await.unwrap(), event);
    }
    assert_eq!(pipeline.log_events("enqueued").await.len(), events.len());
    let report = drain_until_dead_letters(&pipeline, 1).await;
    assert_eq!(report.deleted, events.len() - 1, "{report:?}");
    assert_eq!(report.failed_invocations, 0, "{report:?}");

    // The wide user: every attribute, in one item.
    let item = pipeline
        .user_item(&wide.sub)
        .await
        .unwrap()
        .expect("the wide user's item");
    let stored = item["attributes"].as_m().expect("attributes map");
    let sent = wide_event["request"]["userAttributes"].as_object().unwrap();
    assert_eq!(stored.len(), sent.len());
    for (name, value) in sent {
        assert_eq!(
            stored.get(name),
            Some(&AttributeValue::S(value.as_str().unwrap().to_owned())),
            "{name}"
        );
    }
    let profile_id = pipeline.profile_id_of(&wide.sub);
    assert!(pipeline.profile_item(&profile_id).await.unwrap().is_some());

    // The ordinary users of the same batch lost nothing.
    for user in &ordinary {
        assert!(
            pipeline.user_item(&user.sub).await.unwrap().is_some(),
            "{}",
            user.username
        );
        let profile_id = pipeline.profile_id_of(&user.sub);
        assert!(pipeline.profile_item(&profile_id).await.unwrap().is_some());
    }

    // The huge one is in the DLQ, with a reason that says why.
    assert!(pipeline.user_item(&huge.sub).await.unwrap().is_none());
    assert!(
        pipeline.profiles_of(&huge.sub).await.unwrap().is_empty(),
        "the size is checked before either write: no half-written user"
    );
    let dead = pipeline.queue_bodies(pipeline.dlq_url()).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(envelope::decode(&dead[0]).unwrap().sub(), huge.sub);
    let failures = failures_by_message(&pipeline).await;
    assert_eq!(
        failures.len(),
        1,
        "only the huge user failed: {:?}",
        failures.keys()
    );
    for (reason, error) in failures.values().next().unwrap() {
        assert_eq!(reason, "item_too_large");
        assert!(
            error.contains("the users item would be") && error.contains("400 KB"),
            "{error}"
        );
    }
    let (users, _) = table_sizes(&pipeline).await;
    assert_eq!(users, events.len() - 1);
}
