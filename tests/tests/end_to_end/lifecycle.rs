//! The users table follows each user's life: a change made in Cognito reaches the users item
//! through its CloudTrail record (built as AWS documents it and routed by the stack's own
//! EventBridge rule), deletion leaves a tombstone, and nothing re-creates a deleted user.

use aws_sdk_cognitoidentityprovider::types::AttributeType;
use aws_sdk_dynamodb::types::AttributeValue;
use e2e::pipeline::{StoredItem, s};
use e2e::{LocalPipeline, NewUser, PipelineOptions};
use serde_json::{Value, json};
use shared::mapping::PROFILES_KEY;

async fn start(label: &str) -> LocalPipeline {
    LocalPipeline::start_or_panic(label, PipelineOptions::default()).await
}

fn person(i: usize) -> NewUser {
    NewUser::new(
        &format!("life{i:03}"),
        &[
            ("email", &format!("life.user{i:03}@example.com")),
            ("given_name", &format!("Zoë{i:03}")),
            ("family_name", "Ñúñez"),
            ("phone_number", &format!("+3460022{i:04}")),
            ("custom:plan", "pro"),
        ],
    )
}

/// Signs `user` up, runs the trigger and lets the consumer write both items.
async fn synced(pipeline: &LocalPipeline, user: &NewUser) -> (String, Value) {
    let signed_up = pipeline.sign_up(user).await.expect("sign-up");
    pipeline.invoke_trigger(&signed_up.event).await.expect("trigger");
    pipeline.drain().await.unwrap();
    assert!(pipeline.user_item(&signed_up.sub).await.unwrap().is_some());
    (signed_up.sub, signed_up.event)
}

fn attribute(name: &str, value: &str) -> AttributeType {
    AttributeType::builder().name(name).value(value).build().unwrap()
}

/// An administrator's `AdminUpdateUserAttributes` in the local pool.
async fn admin_update(pipeline: &LocalPipeline, username: &str, name: &str, value: &str) {
    pipeline
        .cognito
        .admin_update_user_attributes()
        .user_pool_id(&pipeline.pool.id)
        .username(username)
        .user_attributes(attribute(name, value))
        .send()
        .await
        .unwrap();
}

/// An administrator creates `username` (`AdminCreateUser`), with a temporary password when
/// given; returns their sub.
async fn invite(
    pipeline: &LocalPipeline,
    username: &str,
    given_name: &str,
    temporary: Option<&str>,
) -> String {
    let created = pipeline
        .cognito
        .admin_create_user()
        .user_pool_id(&pipeline.pool.id)
        .username(username)
        .set_temporary_password(temporary.map(str::to_owned))
        .user_attributes(attribute("email", &format!("{username}@example.com")))
        .user_attributes(attribute("given_name", given_name))
        .send()
        .await
        .unwrap();
    created
        .user()
        .unwrap()
        .attributes()
        .iter()
        .find(|a| a.name() == "sub")
        .and_then(|a| a.value())
        .unwrap()
        .to_owned()
}

/// An administrator deletes the user; CloudTrail's record of it reaches the consumer.
async fn delete_in_cognito_and_sync(pipeline: &LocalPipeline, username: &str, sub: &str) {
    pipeline.delete_user(username).await.unwrap();
    pipeline
        .record_cognito_call("AdminDeleteUser", Some(sub), true)
        .await
        .unwrap();
    pipeline.drain().await.unwrap();
}

/// A profile replaced by its tombstone: its key and when the user was deleted, nothing else.
pub fn assert_profile_tombstone(profile: &StoredItem) {
    let mut names: Vec<&str> = profile.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["profile_id", "user_deleted_at"], "{profile:?}");
}

fn flag(item: &StoredItem, name: &str) -> Option<bool> {
    item.get(name).and_then(|v| v.as_bool().ok()).copied()
}

/// The application's own edit of a profile.
async fn edit_profile(pipeline: &LocalPipeline, profile_id: &str) -> StoredItem {
    pipeline
        .dynamodb
        .update_item()
        .table_name(pipeline.profiles_table())
        .key(PROFILES_KEY, AttributeValue::S(profile_id.to_owned()))
        .update_expression("SET id_type = :t, full_name = :f")
        .expression_attribute_values(":t", AttributeValue::S("passport".into()))
        .expression_attribute_values(":f", AttributeValue::S("Edited By App".into()))
        .send()
        .await
        .unwrap();
    pipeline.profile_item(profile_id).await.unwrap().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attribute_changes_reach_the_users_item_and_removed_attributes_leave_it() {
    let pipeline = start("lifecycle_update").await;
    let user = person(1);
    let (sub, _) = synced(&pipeline, &user).await;
    let edited = edit_profile(&pipeline, &pipeline.profile_id_of(&sub)).await;
    let created_at = s(&pipeline.user_item(&sub).await.unwrap().unwrap(), "created_at").map(str::to_owned);

    let pool = &pipeline.pool.id;
    admin_update(&pipeline, &user.username, "email", "changed.life001@example.com").await;
    pipeline
        .cognito
        .admin_delete_user_attributes()
        .user_pool_id(pool)
        .username(&user.username)
        .user_attribute_names("phone_number")
        .send()
        .await
        .unwrap();
    // Both calls recorded; the second one's record twice (CloudTrail's delivery is at least once).
    for call in [
        "AdminUpdateUserAttributes",
        "AdminDeleteUserAttributes",
        "AdminDeleteUserAttributes",
    ] {
        pipeline
            .record_cognito_call(call, Some(&sub), true)
            .await
            .unwrap();
    }
    let report = pipeline.drain().await.unwrap();
    assert_eq!((report.received, report.reported_failures), (3, 0), "{report:?}");

    let item = pipeline.user_item(&sub).await.unwrap().unwrap();
    assert_eq!(s(&item, "email"), Some("changed.life001@example.com"));
    assert_eq!(s(&item, "phone_number"), None, "removed in Cognito, removed here");
    assert!(!item["attributes"].as_m().unwrap().contains_key("phone_number"));
    assert_eq!(s(&item, "cognito_status"), Some("CONFIRMED"));
    assert_eq!(flag(&item, "enabled"), Some(true));
    assert!(s(&item, "cognito_modified_at").is_some());
    assert_eq!(
        s(&item, "created_at").map(str::to_owned),
        created_at,
        "created_at never changes"
    );
    assert_eq!(
        pipeline
            .profile_item(&pipeline.profile_id_of(&sub))
            .await
            .unwrap()
            .unwrap(),
        edited,
        "the profile is the application's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_within_the_same_tick_of_the_version_is_still_applied() {
    // moto, like any Cognito, can give two different states one UserLastModifiedDate: disabling
    // a user does not change it there at all. The state read after the item wins.
    let pipeline = start("lifecycle_same_tick").await;
    let user = person(2);
    let (sub, _) = synced(&pipeline, &user).await;
    let pool = &pipeline.pool.id;
    admin_update(&pipeline, &user.username, "given_name", "Renamed").await;
    pipeline
        .record_cognito_call("AdminUpdateUserAttributes", Some(&sub), true)
        .await
        .unwrap();
    pipeline.drain().await.unwrap();
    let updated = pipeline.user_item(&sub).await.unwrap().unwrap();
    assert_eq!(s(&updated, "given_name"), Some("Renamed"));

    pipeline
        .cognito
        .admin_disable_user()
        .user_pool_id(pool)
        .username(&user.username)
        .send()
        .await
        .unwrap();
    let read = pipeline
        .cognito
        .admin_get_user()
        .user_pool_id(pool)
        .username(&user.username)
        .send()
        .await
        .unwrap();
    let version = read.user_last_modified_date().unwrap().as_nanos();
    pipeline
        .record_cognito_call("AdminDisableUser", Some(&sub), true)
        .await
        .unwrap();
    pipeline.drain().await.unwrap();
    let disabled = pipeline.user_item(&sub).await.unwrap().unwrap();
    assert_eq!(flag(&disabled, "enabled"), Some(false));
    assert_eq!(
        s(&disabled, "cognito_modified_at"),
        s(&updated, "cognito_modified_at"),
        "the same version as before the change (Cognito's is {version} ns)"
    );
    assert_ne!(disabled["revision"], updated["revision"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_user_becomes_a_tombstone_that_nothing_brings_back() {
    let pipeline = start("lifecycle_delete").await;
    let user = person(3);
    let (sub, confirmation_event) = synced(&pipeline, &user).await;
    let profile_id = pipeline.profile_id_of(&sub);
    edit_profile(&pipeline, &profile_id).await;

    delete_in_cognito_and_sync(&pipeline, &user.username, &sub).await;

    let tombstone = pipeline.user_item(&sub).await.unwrap().unwrap();
    let mut names: Vec<&str> = tombstone.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "created_at",
            "deleted_at",
            "profile_id",
            "revision",
            "updated_at",
            "user_id",
            "user_pool_id"
        ],
        "no personal attribute is left"
    );
    let marked = pipeline.profile_item(&profile_id).await.unwrap().unwrap();
    assert!(
        s(&marked, "user_deleted_at").is_some(),
        "ProfileOnDeletion=mark: {marked:?}"
    );
    assert_eq!(
        s(&marked, "full_name"),
        Some("Edited By App"),
        "nothing else changes"
    );

    // Everything that could re-create the user: a late duplicate of the confirmation, a
    // backfill of it, a requested refresh and another recorded call.
    pipeline.invoke_trigger(&confirmation_event).await.unwrap();
    let backfill = e2e::pipeline::envelope_for(
        &pipeline.pool.id,
        &sub,
        &user.username,
        &[("email", "x@example.com")],
    )
    .replace("\"post_confirmation\"", "\"backfill\"");
    pipeline.send_raw(&backfill).await.unwrap();
    let refresh = shared::signal::Refresh::requested(&pipeline.pool.id, &sub, Some(&user.username)).unwrap();
    pipeline
        .send_raw(&shared::envelope::encode_refresh(&refresh))
        .await
        .unwrap();
    pipeline
        .record_cognito_call("AdminUpdateUserAttributes", Some(&sub), true)
        .await
        .unwrap();
    let report = pipeline.drain().await.unwrap();
    assert_eq!((report.received, report.reported_failures), (4, 0), "{report:?}");

    assert_eq!(pipeline.user_item(&sub).await.unwrap().unwrap(), tombstone);
    assert_eq!(pipeline.profile_item(&profile_id).await.unwrap().unwrap(), marked);
    assert_eq!(pipeline.profiles_of(&sub).await.unwrap().len(), 1);
    pipeline
        .assert_no_pii_in_logs(&[user.attributes["email"].clone()])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_deleted_before_their_confirmation_is_consumed_is_never_written() {
    let pipeline = start("lifecycle_deleted_before_sync").await;
    let user = person(6);
    let signed_up = pipeline.sign_up(&user).await.unwrap();
    pipeline.invoke_trigger(&signed_up.event).await.unwrap();
    // The confirmation waits on the queue (here: received and hidden) while the administrator
    // deletes the user, and the deletion's record is processed first.
    let confirmation = pipeline.queue_bodies(pipeline.queue_url()).await.unwrap();
    assert_eq!(confirmation.len(), 1);
    delete_in_cognito_and_sync(&pipeline, &user.username, &signed_up.sub).await;
    let tombstone = pipeline
        .user_item(&signed_up.sub)
        .await
        .unwrap()
        .expect("a tombstone");
    assert!(s(&tombstone, "deleted_at").is_some() && s(&tombstone, "email").is_none());
    let profile_id = pipeline.profile_id_of(&signed_up.sub);
    let marker = pipeline
        .profile_item(&profile_id)
        .await
        .unwrap()
        .expect("a profile tombstone");
    assert_profile_tombstone(&marker);

    // The confirmation arrives late.
    pipeline.send_raw(&confirmation[0]).await.unwrap();
    let report = pipeline.drain().await.unwrap();
    assert_eq!((report.received, report.reported_failures), (1, 0), "{report:?}");
    assert_eq!(
        pipeline.user_item(&signed_up.sub).await.unwrap().unwrap(),
        tombstone
    );
    assert_eq!(pipeline.profile_item(&profile_id).await.unwrap().unwrap(), marker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_profile_on_deletion_delete_the_profiles_data_goes_and_a_late_confirmation_does_not_recreate_it()
{
    let options = PipelineOptions {
        consumer_env: vec![("PROFILE_ON_DELETION".into(), "delete".into())],
        ..PipelineOptions::default()
    };
    let pipeline = LocalPipeline::start_or_panic("lifecycle_delete_profile", options).await;
    let user = person(4);
    let signed_up = pipeline.sign_up(&user).await.unwrap();
    pipeline.invoke_trigger(&signed_up.event).await.unwrap();
    pipeline.drain().await.unwrap();
    let profile_id = pipeline.profile_id_of(&signed_up.sub);
    assert!(pipeline.profile_item(&profile_id).await.unwrap().is_some());

    delete_in_cognito_and_sync(&pipeline, &user.username, &signed_up.sub).await;
    let erased = pipeline.profile_item(&profile_id).await.unwrap().unwrap();
    assert_profile_tombstone(&erased);
    assert!(
        s(
            &pipeline.user_item(&signed_up.sub).await.unwrap().unwrap(),
            "deleted_at"
        )
        .is_some()
    );

    // Cognito retries the trigger late: the confirmation arrives after the deletion.
    pipeline.invoke_trigger(&signed_up.event).await.unwrap();
    pipeline.drain().await.unwrap();
    assert_eq!(
        pipeline.profile_item(&profile_id).await.unwrap(),
        Some(erased),
        "not re-created"
    );
    assert!(pipeline.profiles_of(&signed_up.sub).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_made_with_an_access_token_is_found_by_sub_and_one_without_a_sub_is_only_counted() {
    let pipeline = start("lifecycle_token_calls").await;
    let user = person(5);
    let (sub, _) = synced(&pipeline, &user).await;
    admin_update(&pipeline, &user.username, "custom:plan", "free").await;
    // UpdateUserAttributes names no pool: the rule matches the call alone.
    pipeline
        .record_cognito_call("UpdateUserAttributes", Some(&sub), false)
        .await
        .unwrap();
    // A record without a sub: nothing to refresh, nothing for the DLQ.
    pipeline
        .record_cognito_call("AdminDisableUser", None, true)
        .await
        .unwrap();
    let report = pipeline.drain().await.unwrap();
    assert_eq!((report.received, report.reported_failures), (2, 0), "{report:?}");
    let item = pipeline.user_item(&sub).await.unwrap().unwrap();
    assert_eq!(
        item["attributes"].as_m().unwrap()["custom:plan"],
        AttributeValue::S("free".into())
    );
    let lines = pipeline.consumer.settled_log_lines().await;
    let events: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(
        events
            .iter()
            .filter(|e| e["event"] == "signal_without_user")
            .count(),
        1
    );
    assert_eq!(queue_depth(&pipeline, pipeline.dlq_url()).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rule_routes_only_this_pools_calls_and_an_unhandled_call_ends_in_the_dlq_with_its_reason() {
    let pipeline = start("lifecycle_routing").await;
    let other_pool = json!("eu-west-1_SomeoneElse1");
    let mut foreign = e2e::cloudtrail::record(
        "AdminDisableUser",
        None,
        Some("0b5e4a3c-1f2d-4e6a-9b8c-7d6e5f4a3b2c"),
    );
    foreign["requestParameters"]["userPoolId"] = other_pool;
    let events = aws_sdk_eventbridge::Client::new(&pipeline.sdk);
    e2e::cloudtrail::put(&events, &foreign).await.unwrap();
    assert_eq!(
        queue_depth(&pipeline, pipeline.queue_url()).await,
        0,
        "another pool's call"
    );

    let unhandled = json!({
        "version": "0", "id": "1", "detail-type": "AWS API Call via CloudTrail", "source": "aws.cognito-idp",
        "detail": e2e::cloudtrail::record("AdminAddUserToGroup", Some(&pipeline.pool.id), Some("0b5e4a3c-1f2d-4e6a-9b8c-7d6e5f4a3b2c")),
    });
    pipeline.send_raw(&unhandled.to_string()).await.unwrap();
    // Five receives, then SQS moves it to the DLQ.
    for _ in 0..6 {
        pipeline.drain().await.unwrap();
        if queue_depth(&pipeline, pipeline.dlq_url()).await == 1 {
            break;
        }
        tokio::time::sleep(pipeline.consumer.timeout).await;
    }
    let lines = pipeline.consumer.settled_log_lines().await;
    let failed: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"] == "record_failed")
        .collect();
    assert!(
        !failed.is_empty() && failed.iter().all(|e| e["reason"] == "unhandled_call"),
        "{failed:?}"
    );
    assert_eq!(queue_depth(&pipeline, pipeline.dlq_url()).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_created_user_is_synced_once_confirmed_without_post_confirmation() {
    let pipeline = start("lifecycle_admin_created").await;
    let pool = &pipeline.pool.id;
    let sub = invite(&pipeline, "invited001", "Invitée", None).await;
    // Never signed in: not in the tables yet.
    pipeline
        .record_cognito_call("AdminUpdateUserAttributes", Some(&sub), true)
        .await
        .unwrap();
    pipeline.drain().await.unwrap();
    assert_eq!(pipeline.user_item(&sub).await.unwrap(), None);

    pipeline
        .cognito
        .admin_set_user_password()
        .user_pool_id(pool)
        .username("invited001")
        .password("Correct-Horse-9")
        .permanent(true)
        .send()
        .await
        .unwrap();
    pipeline
        .record_cognito_call("AdminSetUserPassword", Some(&sub), true)
        .await
        .unwrap();
    pipeline.drain().await.unwrap();
    let item = pipeline
        .user_item(&sub)
        .await
        .unwrap()
        .expect("synced once confirmed");
    assert_eq!(s(&item, "cognito_status"), Some("CONFIRMED"));
    assert_eq!(s(&item, "given_name"), Some("Invitée"));
    let profile = pipeline
        .profile_item(&pipeline.profile_id_of(&sub))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s(&profile, "full_name"), Some("Invitée"));
}

async fn queue_depth(pipeline: &LocalPipeline, url: &str) -> usize {
    let (visible, in_flight) = pipeline.queue_counts(url).await.unwrap();
    (visible + in_flight) as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invited_users_first_sign_in_syncs_them_other_unknown_token_calls_are_not_looked_up() {
    let pipeline = start("lifecycle_first_sign_in").await;
    let pool = &pipeline.pool.id;
    let sub = invite(&pipeline, "invited002", "Anaïs", Some("Temporary-Pass-1")).await;
    // The first sign-in: Cognito asks for a new password, and the user's answer confirms them.
    let challenge = pipeline
        .cognito
        .admin_initiate_auth()
        .user_pool_id(pool)
        .client_id(&pipeline.pool.client_id)
        .auth_flow(aws_sdk_cognitoidentityprovider::types::AuthFlowType::AdminUserPasswordAuth)
        .auth_parameters("USERNAME", "invited002")
        .auth_parameters("PASSWORD", "Temporary-Pass-1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        challenge.challenge_name().map(|c| c.as_str()),
        Some("NEW_PASSWORD_REQUIRED")
    );
    pipeline
        .cognito
        .respond_to_auth_challenge()
        .client_id(&pipeline.pool.client_id)
        .challenge_name(aws_sdk_cognitoidentityprovider::types::ChallengeNameType::NewPasswordRequired)
        .session(challenge.session().unwrap())
        .challenge_responses("USERNAME", "invited002")
        .challenge_responses("NEW_PASSWORD", "Correct-Horse-9")
        .send()
        .await
        .unwrap();

    // A call made with an access token names no pool: for a user the tables do not hold it is
    // not looked up (it could be any pool's user), so this confirmed user is not written yet.
    pipeline
        .record_cognito_call("UpdateUserAttributes", Some(&sub), false)
        .await
        .unwrap();
    // Another challenge answered is a sign-in step like any other: the rule does not route it.
    let answered = |challenge: &str| {
        let mut record = e2e::cloudtrail::record("RespondToAuthChallenge", None, Some(&sub));
        record["requestParameters"] = json!({
            "clientId": pipeline.pool.client_id,
            "challengeName": challenge,
            "session": e2e::cloudtrail::HIDDEN,
            "challengeResponses": e2e::cloudtrail::HIDDEN,
        });
        record
    };
    let events = aws_sdk_eventbridge::Client::new(&pipeline.sdk);
    e2e::cloudtrail::put(&events, &answered("SMS_MFA")).await.unwrap();
    let report = pipeline.drain().await.unwrap();
    assert_eq!((report.received, report.reported_failures), (1, 0), "{report:?}");
    assert_eq!(pipeline.user_item(&sub).await.unwrap(), None, "not looked up");

    // The new password's answer is the one token call that brings a user: it is looked up.
    e2e::cloudtrail::put(&events, &answered("NEW_PASSWORD_REQUIRED"))
        .await
        .unwrap();
    let report = pipeline.drain().await.unwrap();
    assert_eq!((report.received, report.reported_failures), (1, 0), "{report:?}");
    let item = pipeline
        .user_item(&sub)
        .await
        .unwrap()
        .expect("synced at the first sign-in");
    assert_eq!(s(&item, "cognito_status"), Some("CONFIRMED"));
    assert_eq!(s(&item, "given_name"), Some("Anaïs"));
    assert!(
        pipeline
            .profile_item(&pipeline.profile_id_of(&sub))
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_whose_username_was_taken_again_or_who_deleted_their_own_account_becomes_a_tombstone() {
    let pipeline = start("lifecycle_username_reused").await;
    let first = person(7);
    let (old_sub, _) = synced(&pipeline, &first).await;
    let second = person(8);
    let (own_sub, _) = synced(&pipeline, &second).await;
    // Deleted without a signal, then a new user signs up with the same username.
    pipeline.delete_user(&first.username).await.unwrap();
    let newcomer = pipeline.sign_up(&first).await.unwrap();
    assert_ne!(newcomer.sub, old_sub);
    pipeline
        .record_cognito_call("AdminUpdateUserAttributes", Some(&old_sub), true)
        .await
        .unwrap();
    // The user's own deletion, with an access token: the record names no pool.
    pipeline.delete_user(&second.username).await.unwrap();
    pipeline
        .record_cognito_call("DeleteUser", Some(&own_sub), false)
        .await
        .unwrap();
    let report = pipeline.drain().await.unwrap();
    assert_eq!((report.received, report.reported_failures), (2, 0), "{report:?}");

    for sub in [&old_sub, &own_sub] {
        let item = pipeline.user_item(sub).await.unwrap().unwrap();
        assert!(s(&item, "deleted_at").is_some(), "{item:?}");
        assert_eq!(
            s(&item, "username"),
            None,
            "no personal attribute is left: {item:?}"
        );
        let profile = pipeline
            .profile_item(&pipeline.profile_id_of(sub))
            .await
            .unwrap()
            .unwrap();
        assert!(s(&profile, "user_deleted_at").is_some(), "{profile:?}");
    }
    // The newcomer is another user: the old user's item never became theirs.
    assert_eq!(pipeline.user_item(&newcomer.sub).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_interrupted_between_the_tombstone_and_the_profile_is_completed_by_the_redelivery() {
    use e2e::fault_proxy::{Fault, FaultPlan, FaultProxy};
    let pipeline = start("lifecycle_interrupted_delete").await;
    let user = person(9);
    let (sub, _) = synced(&pipeline, &user).await;
    let profile_id = pipeline.profile_id_of(&sub);
    edit_profile(&pipeline, &profile_id).await;
    pipeline.delete_user(&user.username).await.unwrap();
    pipeline
        .record_cognito_call("AdminDeleteUser", Some(&sub), true)
        .await
        .unwrap();

    // An environment whose every profile update fails: the tombstone is written, the marker not.
    let wire =
        FaultProxy::start(FaultPlan::new(11).inject("DynamoDB_20120810.UpdateItem", Fault::ServerError, 1.0))
            .await
            .unwrap();
    wire.forward_to(&pipeline.moto_endpoint()).unwrap();
    let failing = pipeline
        .start_consumer_variant(
            "consumer-failing-updates",
            &[("AWS_ENDPOINT_URL_DYNAMODB", &wire.endpoint())],
        )
        .await
        .unwrap();
    let report = pipeline.event_source_for(&failing).poll_once().await.unwrap();
    assert_eq!((report.received, report.reported_failures), (1, 1), "{report:?}");
    drop(failing);
    let tombstone = pipeline.user_item(&sub).await.unwrap().unwrap();
    assert!(s(&tombstone, "deleted_at").is_some(), "{tombstone:?}");
    let untouched = pipeline.profile_item(&profile_id).await.unwrap().unwrap();
    assert_eq!(s(&untouched, "user_deleted_at"), None, "{untouched:?}");

    // SQS delivers the message again; a healthy environment finishes the profile's part.
    let report = pipeline.drain().await.unwrap();
    assert_eq!((report.received, report.reported_failures), (1, 0), "{report:?}");
    assert_eq!(pipeline.user_item(&sub).await.unwrap().unwrap(), tombstone);
    let marked = pipeline.profile_item(&profile_id).await.unwrap().unwrap();
    assert!(s(&marked, "user_deleted_at").is_some(), "{marked:?}");
    assert_eq!(
        s(&marked, "full_name"),
        Some("Edited By App"),
        "the edit survives"
    );
}
