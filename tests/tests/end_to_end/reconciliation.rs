//! The scheduled reconciliation, through the real reconciler binary: every kind of drift planted
//! in a pool converges in one run, and a second run finds nothing.
//!
//! The pool's size is `RECONCILE_USERS` (default 300; the figure in docs/architecture.md is
//! from a run of 5,000). The reconciler hands its cursor on every few pages, so the run spans
//! many invocations, each a message on the reconcile queue.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use aws_sdk_cognitoidentityprovider::types::{AttributeType, MessageActionType};
use aws_sdk_dynamodb::types::AttributeValue;
use e2e::chaos::{Convergence, Tables, env_number, parsed, progress};
use e2e::pipeline::ConfirmedSignUp;
use e2e::runtime_api::LambdaFunction;
use e2e::{LocalPipeline, NewUser, PipelineOptions};
use futures::StreamExt;
use serde_json::Value;
use shared::mapping::{PROFILES_KEY, USERS_KEY};

const EMAIL_DOMAIN: &str = "drift-pii.example.com";

fn person(i: usize) -> NewUser {
    NewUser::new(
        &format!("drift.user{i:05}"),
        &[
            ("email", &format!("drift{i:05}@{EMAIL_DOMAIN}")),
            ("given_name", &format!("Ýrr{i:05}")),
            ("custom:plan", "pro"),
        ],
    )
}

/// What is done to user `i` after everyone is synced, without a signal (but for
/// `DeletedWithSignal`, whose confirmation is then delivered again).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Plant {
    InSync,
    NeverTriggered,
    ProfileLost,
    UsersItemLost,
    AttributeChanged,
    Disabled,
    DeletedWithoutSignal,
    DeletedWithSignal,
}

fn plant(i: usize) -> Plant {
    match i % 40 {
        1 => Plant::NeverTriggered,
        2 => Plant::ProfileLost,
        3 => Plant::UsersItemLost,
        4 => Plant::AttributeChanged,
        5 => Plant::Disabled,
        6 => Plant::DeletedWithoutSignal,
        7 => Plant::DeletedWithSignal,
        _ => Plant::InSync,
    }
}

/// Signs `person(0..size)` up and confirms them (four at a time), without the trigger.
async fn sign_up_people(pipeline: &LocalPipeline, size: usize) -> Vec<(usize, ConfirmedSignUp)> {
    futures::stream::iter(0..size)
        .map(|i| async move { (i, pipeline.sign_up(&person(i)).await.expect("sign-up")) })
        .buffer_unordered(4)
        .collect()
        .await
}

async fn delete_item(pipeline: &LocalPipeline, table: &str, key: &str, value: String) {
    pipeline
        .dynamodb
        .delete_item()
        .table_name(table)
        .key(key, AttributeValue::S(value))
        .send()
        .await
        .unwrap();
}

/// An administrator's user who never passes Post Confirmation: created with a permanent
/// password (`CONFIRMED`), or imported and left to reset their password (`RESET_REQUIRED`).
async fn created_by_administrator(pipeline: &LocalPipeline, username: &str, imported: bool) -> String {
    let attribute =
        |name: &str, value: &str| AttributeType::builder().name(name).value(value).build().unwrap();
    pipeline
        .cognito
        .admin_create_user()
        .user_pool_id(&pipeline.pool.id)
        .username(username)
        .message_action(MessageActionType::Suppress)
        .user_attributes(attribute("email", &format!("{username}@{EMAIL_DOMAIN}")))
        .user_attributes(attribute("email_verified", "true"))
        .send()
        .await
        .expect("AdminCreateUser");
    pipeline
        .cognito
        .admin_set_user_password()
        .user_pool_id(&pipeline.pool.id)
        .username(username)
        .password("Correct-Horse-9-Battery!")
        .permanent(true)
        .send()
        .await
        .expect("AdminSetUserPassword");
    if imported {
        // Asserts RESET_REQUIRED.
        crate::ops::reset_password(pipeline, username).await;
    }
    let (status, sub) = pipeline.user_status(username).await.unwrap();
    assert_eq!(status, if imported { "RESET_REQUIRED" } else { "CONFIRMED" });
    sub
}

/// How a run is started.
#[derive(Clone, Copy)]
enum Start {
    /// The schedule's message.
    Schedule,
    /// `ops reconcile --start`.
    Operator,
}

/// Runs the reconciliation to its end: a start on the reconcile queue, then every invocation
/// the run's cursor leads to; returns the run's `reconcile_run_finished` event.
async fn run_to_the_end(pipeline: &LocalPipeline, reconciler: &LambdaFunction, start: Start) -> Value {
    let finished_before = parsed(&reconciler.log_lines(), "reconcile_run_finished").count();
    match start {
        Start::Schedule => pipeline.start_reconcile_run().await.unwrap(),
        Start::Operator => {
            let started = pipeline.ops(&["--json", "reconcile", "--start"]).await;
            started.assert_code(0);
            assert_eq!(started.report()["started"], true, "{started}");
        }
    }
    pipeline
        .reconcile_source(reconciler)
        .drain(Duration::from_secs(1_200))
        .await
        .expect("the run's messages drain");
    let lines = reconciler.settled_log_lines().await;
    let finished: Vec<Value> = parsed(&lines, "reconcile_run_finished").collect();
    assert_eq!(finished.len(), finished_before + 1, "one run ended");
    finished.last().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_drift_converges_in_one_scheduled_run_and_the_next_finds_none() {
    let size = env_number("RECONCILE_USERS", 300) as usize;
    let started = Instant::now();
    let pipeline = LocalPipeline::start_or_panic("reconciliation", PipelineOptions::default()).await;

    // 1. A pool of `size` users, synced as usual (but those never triggered).
    let signed_up = sign_up_people(&pipeline, size).await;
    for (n, (i, user)) in signed_up.iter().enumerate() {
        if plant(*i) != Plant::NeverTriggered {
            pipeline.invoke_trigger(&user.event).await.expect("trigger");
        }
        if n % 50 == 49 {
            pipeline.drain().await.unwrap();
        }
    }
    pipeline.drain().await.unwrap();
    progress("reconciliation", started, "synced");

    // 2. Drift, each kind without the signal that would have repaired it.
    let mut planted: BTreeMap<Plant, usize> = BTreeMap::new();
    let mut redelivered = Vec::new();
    for (i, user) in &signed_up {
        let kind = plant(*i);
        *planted.entry(kind).or_default() += 1;
        let username = person(*i).username;
        match kind {
            Plant::InSync | Plant::NeverTriggered => {}
            Plant::ProfileLost => {
                let profile = pipeline.profile_id_of(&user.sub);
                delete_item(&pipeline, pipeline.profiles_table(), PROFILES_KEY, profile).await;
            }
            Plant::UsersItemLost => {
                delete_item(&pipeline, pipeline.users_table(), USERS_KEY, user.sub.clone()).await
            }
            Plant::AttributeChanged => {
                pipeline
                    .cognito
                    .admin_update_user_attributes()
                    .user_pool_id(&pipeline.pool.id)
                    .username(&username)
                    .user_attributes(
                        AttributeType::builder()
                            .name("given_name")
                            .value("Ýrr renamed")
                            .build()
                            .unwrap(),
                    )
                    .send()
                    .await
                    .unwrap();
            }
            Plant::Disabled => {
                pipeline
                    .cognito
                    .admin_disable_user()
                    .user_pool_id(&pipeline.pool.id)
                    .username(&username)
                    .send()
                    .await
                    .unwrap();
            }
            Plant::DeletedWithoutSignal => pipeline.delete_user(&username).await.unwrap(),
            Plant::DeletedWithSignal => {
                pipeline.delete_user(&username).await.unwrap();
                pipeline
                    .record_cognito_call("AdminDeleteUser", Some(&user.sub), true)
                    .await
                    .unwrap();
                redelivered.push(user.event.clone());
            }
        }
    }
    // Tombstoned users' confirmations delivered again, after their deletion was applied.
    pipeline.drain().await.unwrap();
    for event in &redelivered {
        pipeline.invoke_trigger(event).await.expect("trigger");
    }
    pipeline.drain().await.unwrap();
    // Users who never pass Post Confirmation, and one not confirmed yet (no drift).
    let mut administrators = Vec::new();
    for n in 0..3 {
        let name = format!("admin.made{n}");
        administrators.push((
            name.clone(),
            created_by_administrator(&pipeline, &name, false).await,
        ));
        let name = format!("imported{n}");
        administrators.push((
            name.clone(),
            created_by_administrator(&pipeline, &name, true).await,
        ));
    }
    pipeline
        .cognito
        .admin_create_user()
        .user_pool_id(&pipeline.pool.id)
        .username("invited.not.yet")
        .message_action(MessageActionType::Suppress)
        .send()
        .await
        .unwrap();
    progress("reconciliation", started, "drift planted");

    // 3. One run of the real reconciler, handing its cursor on every 3 pages, then the consumer
    //    applies the refresh signals it sent.
    let reconciler = pipeline
        .start_reconciler(
            Duration::from_secs(60),
            &[
                ("RECONCILE_LISTS_PER_SECOND", "25"),
                ("RECONCILE_PAGES_PER_INVOCATION", "3"),
            ],
        )
        .await
        .unwrap();
    let run = run_to_the_end(&pipeline, &reconciler, Start::Schedule).await;
    progress("reconciliation", started, "first run");
    pipeline.drain().await.unwrap();

    let count = |kind: Plant| planted.get(&kind).copied().unwrap_or(0) as u64;
    let found = |field: &str| run[field].as_u64().unwrap_or_else(|| panic!("{field} in {run}"));
    assert_eq!(
        found("missing"),
        count(Plant::NeverTriggered) + 6,
        "never triggered, created, imported\n{run}"
    );
    assert_eq!(found("no_profile"), count(Plant::ProfileLost), "{run}");
    assert_eq!(found("no_users_item"), count(Plant::UsersItemLost), "{run}");
    assert_eq!(found("stale"), count(Plant::AttributeChanged), "{run}");
    assert_eq!(found("enabled_differs"), count(Plant::Disabled), "{run}");
    assert_eq!(found("deleted"), count(Plant::DeletedWithoutSignal), "{run}");
    assert_eq!(run["deletions_complete"], true, "{run}");
    assert_eq!(found("signals_refused"), 0, "{run}");
    assert_eq!(found("signals_sent"), found("drift"), "{run}");
    let in_pool = size as u64 + 7 - count(Plant::DeletedWithoutSignal) - count(Plant::DeletedWithSignal);
    assert_eq!(found("listed"), in_pool, "{run}");
    let pages = in_pool.div_ceil(60);
    assert_eq!(found("pages"), pages, "{run}");
    assert!(
        found("invocations") >= pages / 3,
        "the cursor was handed on: {run}"
    );

    // 4. The tables equal the pool.
    let tables = Tables::read(&pipeline).await;
    let mut users: Vec<(String, String)> = signed_up
        .iter()
        .map(|(i, user)| (person(*i).username, user.sub.clone()))
        .collect();
    users.extend(administrators);
    let convergence = Convergence::measure(&pipeline, &tables, &users, &BTreeSet::new()).await;
    assert_eq!(convergence.lost, Vec::<String>::new(), "lost");
    assert_eq!(convergence.stale, Vec::<String>::new(), "stale");
    assert_eq!(convergence.resurrected, Vec::<String>::new(), "resurrected");
    assert_eq!(
        convergence.deleted,
        (count(Plant::DeletedWithoutSignal) + count(Plant::DeletedWithSignal)) as usize
    );
    assert!(
        !tables
            .users
            .values()
            .any(|item| e2e::pipeline::s(item, "username") == Some("invited.not.yet")),
        "a user not confirmed yet is not written"
    );

    // 5. The next run, started by the operator, finds nothing, and nothing personal reached
    //    the reconciler's logs.
    let again = run_to_the_end(&pipeline, &reconciler, Start::Operator).await;
    assert_eq!(again["drift"], 0, "{again}");
    // The operator's report of the latest run comes from the function's log events.
    pipeline.deliver_logs(&reconciler).await.unwrap();
    let latest = pipeline.ops(&["--json", "reconcile", "--latest"]).await;
    latest.assert_code(0);
    let report = latest.report();
    assert_eq!(report["latest"]["run_id"], again["run_id"], "{latest}");
    assert_eq!(report["latest"]["drift"], 0, "{latest}");
    assert_eq!(report["in_progress"], false, "{latest}");
    let lines = reconciler.settled_log_lines().await;
    assert!(
        !lines
            .iter()
            .any(|line| line.contains(EMAIL_DOMAIN) || line.contains("Ýrr"))
    );
    // 6. What the drift alarm reads of the two runs: a datapoint at each run's start with its
    //    drift, which breaches the alarm's threshold for the first run and not for the second.
    let alarm = DriftAlarm::of_deployed_stack(&pipeline).await;
    let datapoints = alarm.datapoints(&lines);
    for (run, breaches) in [(&run, true), (&again, false)] {
        let started_ms = time::OffsetDateTime::parse(
            run["started_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
        .unix_timestamp_nanos()
            / 1_000_000;
        let at_start: Vec<f64> = datapoints
            .iter()
            .filter(|(timestamp, _)| i128::from(*timestamp) == started_ms)
            .map(|(_, value)| *value)
            .collect();
        assert_eq!(
            at_start,
            vec![run["drift"].as_f64().unwrap()],
            "{run}\n{datapoints:?}"
        );
        assert_eq!(alarm.breaches(at_start[0]), breaches, "{run}");
    }
    assert_eq!(datapoints.len(), 2, "one per run: {datapoints:?}");
    progress("reconciliation", started, "converged");
    // The figure docs/architecture.md compares across pool sizes (a ratio, never asserted as
    // a limit here).
    eprintln!(
        "reconciliation: users={size} pages={} invocations={} peak_rss_kib={:?}",
        run["pages"],
        run["invocations"],
        reconciler.peak_rss_kib()
    );
}

/// `ReconcileDriftAlarm` as the template defines it, resolved for the deployed stack.
struct DriftAlarm {
    namespace: String,
    metric: String,
    service: String,
    threshold: f64,
}

impl DriftAlarm {
    async fn of_deployed_stack(pipeline: &LocalPipeline) -> Self {
        let template: Value = serde_json::from_str(&e2e::stack::translate(&[]).unwrap()).unwrap();
        let alarm = &template["Resources"]["ReconcileDriftAlarm"]["Properties"];
        // The deployed stack takes the parameter's default; the function was given the same.
        assert_eq!(alarm["Namespace"], serde_json::json!({"Ref": "MetricsNamespace"}));
        let namespace = template["Parameters"]["MetricsNamespace"]["Default"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            alarm["Dimensions"],
            serde_json::json!([{"Name": "Service", "Value": {"Ref": "AWS::StackName"}}])
        );
        let environment = e2e::stack::function_environment(
            &pipeline.sdk,
            pipeline.stack.output("ReconcilerFunctionName").unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(environment["METRICS_NAMESPACE"], namespace);
        assert_eq!(environment["METRICS_SERVICE"], pipeline.stack.name);
        assert_eq!(alarm["Statistic"], "Sum");
        assert_eq!(alarm["ComparisonOperator"], "GreaterThanThreshold");
        Self {
            namespace,
            metric: alarm["MetricName"].as_str().unwrap().to_owned(),
            service: pipeline.stack.name.clone(),
            threshold: alarm["Threshold"].as_f64().unwrap(),
        }
    }

    /// The (timestamp, value) of every datapoint the alarm's metric gets from `lines`: EMF
    /// documents of its namespace, with exactly its dimension set and value.
    fn datapoints(&self, lines: &[String]) -> Vec<(u64, f64)> {
        lines
            .iter()
            .filter(|line| e2e::emf::is_emf(line))
            .map(|line| e2e::emf::validate(line).unwrap_or_else(|why| panic!("invalid EMF ({why}): {line}")))
            .filter(|document| {
                document["_aws"]["CloudWatchMetrics"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|directive| {
                        directive["Namespace"] == self.namespace.as_str()
                            && directive["Dimensions"] == serde_json::json!([["Service"]])
                            && directive["Metrics"]
                                .as_array()
                                .unwrap()
                                .iter()
                                .any(|m| m["Name"] == self.metric.as_str() && m["Unit"] == "Count")
                    })
                    && document["Service"] == self.service.as_str()
            })
            .map(|document| {
                (
                    document["_aws"]["Timestamp"].as_u64().unwrap(),
                    document[self.metric.as_str()].as_f64().unwrap(),
                )
            })
            .collect()
    }

    fn breaches(&self, sum: f64) -> bool {
        sum > self.threshold
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_halfway_resumes_where_it_was_and_a_throttled_walk_slows_down_instead_of_failing() {
    use e2e::fault_proxy::{Fault, FaultPlan, FaultProxy, LIST_USERS};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let pipeline = LocalPipeline::start_or_panic("reconciliation_resumed", PipelineOptions::default()).await;
    // RECONCILE_RESUME_USERS: 200 in CI; the figure in docs/architecture.md is from 5,000.
    let size = env_number("RECONCILE_RESUME_USERS", 200) as usize;
    let signed_up = sign_up_people(&pipeline, size).await;
    let mut planted_missing = 0;
    let mut deleted = Vec::new();
    let mut users = Vec::new();
    for (n, (i, user)) in signed_up.iter().enumerate() {
        if i % 50 == 1 {
            planted_missing += 1;
        } else {
            pipeline.invoke_trigger(&user.event).await.expect("trigger");
        }
        if i % 50 == 2 {
            deleted.push(person(*i).username);
        }
        users.push((person(*i).username, user.sub.clone()));
        if n % 50 == 49 {
            pipeline.drain().await.unwrap();
        }
    }
    pipeline.drain().await.unwrap();
    for username in &deleted {
        pipeline.delete_user(username).await.unwrap();
    }

    // Cognito throttles a third of the walk's ListUsers calls; the run is 4 pages, 2 per
    // invocation, at most one page a second (so an invocation lasts a second or more).
    let wire = FaultProxy::start(FaultPlan::new(5).inject(LIST_USERS, Fault::Throttle, 0.33))
        .await
        .unwrap();
    wire.forward_to(&pipeline.moto_endpoint()).unwrap();
    // Every page the walk lists, counted where Cognito would see it: a throttled call is
    // answered by the proxy and never reaches the pool.
    let listed = || wire.forwarded().get(LIST_USERS).copied().unwrap_or(0);
    let endpoint = wire.endpoint();
    let settings = [
        ("RECONCILE_LISTS_PER_SECOND", "1"),
        ("RECONCILE_PAGES_PER_INVOCATION", "2"),
        ("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", endpoint.as_str()),
    ];
    let first = pipeline
        .start_reconciler(Duration::from_secs(20), &settings)
        .await
        .unwrap();
    pipeline.start_reconcile_run().await.unwrap();
    // The start's invocation walks 2 pages and hands the cursor on.
    let started = pipeline.reconcile_source(&first).poll_once().await.unwrap();
    assert_eq!((started.received, started.deleted), (1, 1), "{started:?}");
    assert!(parsed(&first.log_lines(), "reconcile_progress").any(|p| p["step"] == 1));
    assert_eq!(listed(), 2, "the first slice listed its 2 pages");
    // The operator sees the run in progress, and no run finished yet.
    pipeline.deliver_logs(&first).await.unwrap();
    let latest = pipeline.ops(&["--json", "reconcile", "--latest"]).await;
    latest.assert_code(0);
    assert_eq!(latest.report()["in_progress"], true, "{latest}");
    assert_eq!(latest.report()["progress"]["step"], 1, "{latest}");
    assert_eq!(latest.report()["latest"], Value::Null, "{latest}");
    // The next invocation is killed halfway: the moment the pool has answered its first page,
    // before the function reads the answer. Its message comes back after the visibility timeout,
    // to a fresh execution environment, which lists that one page again.
    let pid = first.pid().expect("the first process runs");
    let armed = Arc::new(AtomicBool::new(true));
    wire.after_success(LIST_USERS, {
        let armed = Arc::clone(&armed);
        move |_| {
            if armed.swap(false, Ordering::SeqCst) {
                e2e::runtime_api::kill_process(pid);
            }
        }
    });
    let killed = pipeline.reconcile_source(&first).poll_once().await.unwrap();
    assert_eq!((killed.received, killed.deleted), (1, 0), "{killed:?}");
    assert!(
        !armed.load(Ordering::SeqCst) && !first.is_running(),
        "killed mid-slice"
    );
    let listed_by_the_killed_slice = listed() - 2;
    assert_eq!(listed_by_the_killed_slice, 1);
    let reconciler = pipeline
        .start_reconciler(Duration::from_secs(20), &settings)
        .await
        .unwrap();
    // At one page a second, a third of them throttled: a few minutes per thousand users.
    pipeline
        .reconcile_source(&reconciler)
        .drain(Duration::from_secs(120 + size as u64 / 4))
        .await
        .expect("the run's messages drain");
    let mut lines = first.settled_log_lines().await;
    lines.extend(reconciler.settled_log_lines().await);
    let finished: Vec<Value> = parsed(&lines, "reconcile_run_finished").collect();
    let [run] = finished.as_slice() else {
        panic!("one run ended: {finished:?}");
    };
    let resumed: Vec<Value> = parsed(&lines, "reconcile_resumed").collect();
    assert!(
        resumed.iter().any(|r| r["step"].as_u64() >= Some(1)),
        "resumed from a later step, not from the start: {resumed:?}"
    );
    assert!(run["resumed"].as_u64() >= Some(1), "{run}");
    // Resumed, not started over: the pool saw every page listed once, but the one page the
    // killed invocation had fetched, listed again by its successor.
    let pages = (size as u64 - deleted.len() as u64).div_ceil(60);
    eprintln!(
        "reconciliation resumed: users={size} pages={} listed_on_the_wire={} invocations={} resumed={} throttles={}",
        run["pages"],
        listed(),
        run["invocations"],
        run["resumed"],
        run["throttles"]
    );
    assert_eq!(run["pages"], pages, "{run}");
    assert_eq!(listed(), pages + listed_by_the_killed_slice, "{run}");
    // A walk slowed below one page per invocation waits in the queue (a delayed message), not
    // in a loop of invocations that cannot take a step.
    assert!(run["invocations"].as_u64().unwrap() <= 2 * pages + 8, "{run}");
    assert!(run["throttles"].as_u64() >= Some(1), "{run}");
    assert!(parsed(&lines, "reconcile_slowed_down").count() >= 1);
    assert_eq!(
        parsed(&lines, "reconcile_step_failed").count(),
        0,
        "a throttle fails nothing"
    );
    assert_eq!(run["missing"], planted_missing, "{run}");
    assert_eq!(run["deleted"], deleted.len(), "{run}");

    pipeline.drain().await.unwrap();
    let tables = Tables::read(&pipeline).await;
    let convergence = Convergence::measure(&pipeline, &tables, &users, &BTreeSet::new()).await;
    assert_eq!(
        (
            convergence.lost.len(),
            convergence.stale.len(),
            convergence.resurrected.len()
        ),
        (0, 0, 0),
        "{convergence:?}"
    );
    assert_eq!(convergence.deleted, deleted.len());
}

/// The reconcile queue's messages, read without taking them (visible again at once).
async fn peek_reconcile_queue(pipeline: &LocalPipeline) -> Vec<String> {
    let received = pipeline
        .sqs
        .receive_message()
        .queue_url(pipeline.reconcile_queue_url())
        .max_number_of_messages(10)
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    received
        .messages()
        .iter()
        .filter_map(|m| m.body().map(str::to_owned))
        .collect()
}

async fn send_to_reconcile_queue(pipeline: &LocalPipeline, body: &str) {
    pipeline
        .sqs
        .send_message()
        .queue_url(pipeline.reconcile_queue_url())
        .message_body(body)
        .send()
        .await
        .unwrap();
}

/// Plants the pool's run state item as a run begun elsewhere left it.
async fn plant_run_state(pipeline: &LocalPipeline, run_id: &str, lease_until: time::OffsetDateTime) {
    let ms = (lease_until.unix_timestamp_nanos() / 1_000_000).to_string();
    pipeline
        .dynamodb
        .put_item()
        .table_name(pipeline.reconcile_state_table())
        .item("user_pool_id", AttributeValue::S(pipeline.pool.id.clone()))
        .item("run_id", AttributeValue::S(run_id.to_owned()))
        .item("step", AttributeValue::N("7".to_owned()))
        .item("lease_until", AttributeValue::N(ms))
        .item("started_at", AttributeValue::S("2026-01-01T00:00:00Z".to_owned()))
        .send()
        .await
        .unwrap();
}

fn refusals<'a>(lines: &'a [String], reason: &'a str) -> impl Iterator<Item = Value> + 'a {
    parsed(lines, "reconcile_message_refused").filter(move |r| r["reason"] == reason)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicated_concurrent_or_stale_run_message_never_forks_a_run() {
    let pipeline = LocalPipeline::start_or_panic("reconciliation_single", PipelineOptions::default()).await;
    let size = 125;
    let signed_up = sign_up_people(&pipeline, size).await;
    let mut missing = 0;
    for (i, user) in &signed_up {
        if i % 40 == 1 {
            missing += 1;
        } else {
            pipeline.invoke_trigger(&user.event).await.expect("trigger");
        }
    }
    pipeline.drain().await.unwrap();
    // One page an invocation: the run is a chain of several messages.
    let reconciler = pipeline
        .start_reconciler(
            Duration::from_secs(20),
            &[
                ("RECONCILE_PAGES_PER_INVOCATION", "1"),
                ("RECONCILE_LISTS_PER_SECOND", "25"),
            ],
        )
        .await
        .unwrap();
    let source = pipeline.reconcile_source(&reconciler);

    // 1. A run's first step, then a second start (an operator's while the schedule's run goes
    //    on) and a duplicate of the run's cursor (SQS delivers at least once).
    pipeline.start_reconcile_run().await.unwrap();
    let first = source.poll_once().await.unwrap();
    assert_eq!((first.received, first.deleted), (1, 1), "{first:?}");
    pipeline.start_reconcile_run().await.unwrap();
    let cursor = peek_reconcile_queue(&pipeline)
        .await
        .into_iter()
        .find(|body| body.starts_with(r#"{"continue""#))
        .expect("the run's cursor is on the queue");
    send_to_reconcile_queue(&pipeline, &cursor).await;
    source.drain(Duration::from_secs(300)).await.unwrap();
    let lines = reconciler.settled_log_lines().await;
    let started: Vec<Value> = parsed(&lines, "reconcile_run_started").collect();
    let finished: Vec<Value> = parsed(&lines, "reconcile_run_finished").collect();
    let ([start], [run]) = (started.as_slice(), finished.as_slice()) else {
        panic!("one run, started and finished once: {started:?} {finished:?}");
    };
    assert_eq!(start["run_id"], run["run_id"]);
    assert_eq!(refusals(&lines, "another run is in progress").count(), 1);
    // The duplicate comes back while its twin holds the step, then is dropped as done (the run
    // has passed the step, or finished, by the time it is seen again).
    let done = |lines: &[String]| {
        parsed(lines, "reconcile_message_refused")
            .filter(|r| r["detail"].as_str().is_some_and(|d| d.starts_with("AlreadyDone")))
            .count()
    };
    assert_eq!(done(&lines), 1, "the duplicate cursor is dropped");
    // Not forked: every page walked once.
    assert_eq!(run["pages"], size.div_ceil(60), "{run}");
    assert_eq!(run["missing"], missing, "{run}");

    // 2. The same cursor redriven after its run finished, then after a newer run: dropped.
    send_to_reconcile_queue(&pipeline, &cursor).await;
    source.drain(Duration::from_secs(60)).await.unwrap();
    pipeline.start_reconcile_run().await.unwrap();
    source.drain(Duration::from_secs(300)).await.unwrap();
    send_to_reconcile_queue(&pipeline, &cursor).await;
    source.drain(Duration::from_secs(60)).await.unwrap();
    let finished_refusals = refusals(&lines, "the run has finished").count();
    let lines = reconciler.settled_log_lines().await;
    assert_eq!(done(&lines), 2);
    assert_eq!(
        refusals(&lines, "the run has finished").count(),
        finished_refusals + 1
    );
    assert_eq!(refusals(&lines, "a newer run has superseded this one").count(), 1);
    assert_eq!(parsed(&lines, "reconcile_run_finished").count(), 2);

    // 3. A run that claimed a step 10 minutes ago and may still be going on keeps the next
    //    start out; one whose lease ended two hours ago has lost its chain and is replaced.
    let now = time::OffsetDateTime::now_utc();
    plant_run_state(&pipeline, "live-elsewhere", now + time::Duration::minutes(10)).await;
    pipeline.start_reconcile_run().await.unwrap();
    source.drain(Duration::from_secs(60)).await.unwrap();
    plant_run_state(&pipeline, "lost-chain", now - time::Duration::hours(2)).await;
    pipeline.start_reconcile_run().await.unwrap();
    source.drain(Duration::from_secs(300)).await.unwrap();
    let lines = reconciler.settled_log_lines().await;
    let in_progress: Vec<Value> = refusals(&lines, "another run is in progress").collect();
    assert_eq!(in_progress.len(), 2, "{in_progress:?}");
    assert!(
        in_progress[1]["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("live-elsewhere")
    );
    assert_eq!(parsed(&lines, "reconcile_run_finished").count(), 3);

    // 4. A cursor from before the state table (an upgrade mid-run) adopts the empty state;
    //    its pagination token has expired meanwhile, so the run begins again from the top
    //    instead of failing until the DLQ.
    pipeline
        .dynamodb
        .delete_item()
        .table_name(pipeline.reconcile_state_table())
        .key("user_pool_id", AttributeValue::S(pipeline.pool.id.clone()))
        .send()
        .await
        .unwrap();
    let mut old = drift::Cursor::start("from-before-the-upgrade", &pipeline.pool.id, now, 4);
    old.step = 3;
    old.next_token = Some("an-expired-pagination-token".to_owned());
    old.counts.pages = 2;
    old.counts.listed = 120;
    send_to_reconcile_queue(
        &pipeline,
        &drift::cursor::encode(&drift::RunMessage::Continue(Box::new(old))).unwrap(),
    )
    .await;
    source.drain(Duration::from_secs(300)).await.unwrap();
    let lines = reconciler.settled_log_lines().await;
    let restarted: Vec<Value> = parsed(&lines, "reconcile_run_restarted").collect();
    let [restarted] = restarted.as_slice() else {
        panic!("one restart: {restarted:?}");
    };
    assert_eq!(restarted["run_id"], "from-before-the-upgrade");
    let last = parsed(&lines, "reconcile_run_finished").last().unwrap();
    assert_eq!(last["run_id"], "from-before-the-upgrade", "{last}");
    assert_eq!(
        (last["listed"].as_u64(), last["pages"].as_u64()),
        (Some(size as u64), Some(3)),
        "{last}"
    );
    assert_eq!(parsed(&lines, "reconcile_step_failed").count(), 0);
    // Nothing was given up on: every refused message was dropped on purpose.
    let dlq = pipeline
        .sqs
        .get_queue_attributes()
        .queue_url(pipeline.stack.output("ReconcileDeadLetterQueueUrl").unwrap())
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .unwrap();
    assert_eq!(
        dlq.attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages))
            .map(String::as_str),
        Some("0")
    );
}

/// `n` confirmed users from `first` on, with their two items as a confirmation writes them
/// (put straight into the tables: this test is about the reconciler's memory, not the sync).
async fn confirmed_and_stored(pipeline: &LocalPipeline, first: usize, n: usize) {
    use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
    let now = time::OffsetDateTime::now_utc();
    let made: Vec<(String, String)> = futures::stream::iter(first..first + n)
        .map(|i| async move {
            let username = format!("flat.user{i:05}");
            (
                username.clone(),
                created_by_administrator(pipeline, &username, false).await,
            )
        })
        .buffer_unordered(4)
        .collect()
        .await;
    let mut users = Vec::new();
    let mut profiles = Vec::new();
    for (username, sub) in &made {
        let attributes = BTreeMap::from([
            ("sub".to_owned(), sub.clone()),
            ("email".to_owned(), format!("{username}@{EMAIL_DOMAIN}")),
            ("email_verified".to_owned(), "true".to_owned()),
        ]);
        let user = shared::ConfirmedUser::new(
            &pipeline.pool.id,
            sub,
            username,
            attributes,
            now,
            shared::ConfirmationSource::PostConfirmation,
        )
        .unwrap();
        let items = shared::mapping::sync_items(&user, now);
        users.push(tables::to_attribute_values(&items.user));
        profiles.push(tables::to_attribute_values(&items.profile));
    }
    for (table, items) in [
        (pipeline.users_table(), users),
        (pipeline.profiles_table(), profiles),
    ] {
        for chunk in items.chunks(25) {
            let requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|item| {
                    WriteRequest::builder()
                        .put_request(
                            PutRequest::builder()
                                .set_item(Some(item.clone()))
                                .build()
                                .unwrap(),
                        )
                        .build()
                })
                .collect();
            let written = pipeline
                .dynamodb
                .batch_write_item()
                .request_items(table, requests)
                .send()
                .await
                .unwrap();
            assert!(written.unprocessed_items().is_none_or(|u| u.is_empty()));
        }
    }
}

/// The peak resident memory of one whole run, on a fresh execution environment.
async fn peak_rss_of_a_run(pipeline: &LocalPipeline) -> (u64, Value) {
    let reconciler = pipeline
        .start_reconciler(Duration::from_secs(60), &[("RECONCILE_LISTS_PER_SECOND", "25")])
        .await
        .unwrap();
    let run = run_to_the_end(pipeline, &reconciler, Start::Schedule).await;
    (reconciler.peak_rss_kib().expect("the process's VmHWM"), run)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runs_memory_does_not_grow_with_the_pool() {
    let small = env_number("RECONCILE_RSS_SMALL", 500) as usize;
    let large = env_number("RECONCILE_RSS_LARGE", 5_000) as usize;
    let started = Instant::now();
    let pipeline = LocalPipeline::start_or_panic("reconciliation_memory", PipelineOptions::default()).await;
    confirmed_and_stored(&pipeline, 0, small).await;
    let (small_rss, small_run) = peak_rss_of_a_run(&pipeline).await;
    // The whole pool walked and the whole users table scanned, in both runs.
    assert_eq!(small_run["listed"], small, "{small_run}");
    assert_eq!(small_run["scanned"], small, "{small_run}");
    assert_eq!(small_run["deletions_complete"], true, "{small_run}");
    assert_eq!(small_run["drift"], 0, "{small_run}");
    confirmed_and_stored(&pipeline, small, large - small).await;
    progress("reconciliation memory", started, "pool grown");
    let (large_rss, large_run) = peak_rss_of_a_run(&pipeline).await;
    assert_eq!(large_run["listed"], large, "{large_run}");
    assert_eq!(large_run["scanned"], large, "{large_run}");
    assert_eq!(large_run["deletions_complete"], true, "{large_run}");
    assert_eq!(large_run["drift"], 0, "{large_run}");
    let ratio = large_rss as f64 / small_rss as f64;
    eprintln!(
        "reconciliation memory: {small} users {small_rss} KiB, {large} users {large_rss} KiB, ratio {ratio:.3}"
    );
    // A ratio within one run of the test, as the issue states it: one page and a fixed-size
    // set difference in memory, whatever the pool's size.
    assert!(
        ratio <= 1.2,
        "peak RSS grew {ratio:.3}x from {small} to {large} users"
    );
}
