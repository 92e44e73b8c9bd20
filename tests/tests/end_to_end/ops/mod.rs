//! End-to-end: the real `ops` binary against moto, with the template deployed into it.
//!
//! Each test starts its own local pipeline (moto, the stack `cognito-user-sync`, a user pool,
//! the trigger and consumer binaries) and runs `ops` as an operator would: as a process, with
//! the SDK's standard environment (`AWS_ENDPOINT_URL` pointing at moto) and `--json` reports.

mod attach_trigger;
mod backfill;
mod cli;
mod dlq_peek;
mod dlq_redrive;
mod forget;
mod reconcile;
mod refresh;

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::QueueAttributeName;
use e2e::ops_cli::{self, OpsRun};
use e2e::pipeline::{ConfirmedSignUp, envelope_for, s};
use e2e::{LocalPipeline, NewUser, PipelineOptions};
use serde_json::{Value, json};
use shared::mapping::{PROFILES_KEY, USERS_KEY};
use shared::{ConfirmationSource, envelope};

const STACK: &str = "cognito-user-sync";

async fn start(label: &str) -> LocalPipeline {
    LocalPipeline::start_or_panic(label, PipelineOptions::default()).await
}

async fn start_with(label: &str, options: PipelineOptions) -> LocalPipeline {
    LocalPipeline::start_or_panic(label, options).await
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
pub(crate) async fn reset_password(pipeline: &LocalPipeline, username: &str) {
    pipeline
        .cognito
        .admin_reset_user_password()
        .user_pool_id(&pipeline.pool.id)
        .username(username)
        .send()
        .await
        .expect("AdminResetUserPassword");
    let (status, _) = pipeline.user_status(username).await.unwrap();
    assert_eq!(status, "RESET_REQUIRED");
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
