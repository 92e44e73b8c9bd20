//! Chaos, end to end: the promise, under faults, duplicates and crashes, with figures.
//!
//! *Every confirmed user ends up exactly once in both tables, and an application's edits are
//! never overwritten*, whatever the network, AWS or the input does. The real trigger and
//! consumer binaries run against moto with a fault-injecting proxy on each function's wire to
//! AWS (`e2e::fault_proxy`): nothing in the SDK or the functions is mocked, so the SDK's retries,
//! the consumer's backon layer and SQS's redelivery are what absorb the faults.
//!
//! Size: `CHAOS_USERS` (default 500, the CI size, a couple of minutes on 2 cores); the documented
//! large run is 10,000, past nextest's slow-timeout, so run it with cargo test:
//! `CHAOS_USERS=10000 cargo test -p e2e --test end_to_end chaos:: -- --nocapture`. `CHAOS_SEED` replays a run's
//! choices and faults (up to the order in which concurrent requests arrive).
//!
//! The figures, one line on stderr and in `target/e2e-logs/chaos/summary.txt`:
//! `duplicates_delivered`, deliveries the consumer processed beyond a user's first (from its
//! logs); `trigger_retries`, Cognito's second invocations; `redelivered`, bodies SQS delivered
//! again; `put_item_faults` and `send_message_faults`, what each wire injected, by kind;
//! `write_retries`, the consumer's backon retries (what the SDK's own attempts did not absorb);
//! `consumer_kills`, processes crashed mid-batch; `event_source_errors`, failed deletes of messages
//! moto moved to the DLQ meanwhile; `enqueue_failed`, users whose every enqueue failed;
//! `dlq_redriven`, messages the operator moved back; `lost`, `duplicated` and `overwritten`,
//! counted from the tables and asserted to be 0.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use e2e::chaos::{ConsumerChaos, Consumers, Tables, counts, deliveries_by_sub, env_number, events, progress};
use e2e::fault_proxy::{Fault, FaultPlan, FaultProxy, PUT_ITEM, SEND_MESSAGE, SplitMix64};
use e2e::pipeline::{ConfirmedSignUp, envelope_for, s};
use e2e::{LocalPipeline, NewUser, PipelineOptions};
use futures::StreamExt;
use serde_json::{Value, json};
use shared::mapping::PROFILES_KEY;

/// Cognito invokes the trigger again for this share of users (it retries a trigger it thinks
/// failed), and SQS delivers this share of the enqueued messages twice (at-least-once):
/// together about a fifth of the users are delivered more than once.
const TRIGGER_RETRY_RATE: f64 = 0.10;
const REDELIVERY_RATE: f64 = 0.10;
/// The application edits this share of the profiles, then their message arrives again.
const EDIT_RATE: f64 = 0.05;
/// This share of the consumer's batches is crashed after its first successful write.
const CRASH_RATE: f64 = 0.08;
/// Consumer execution environments running at once (the template allows five; moto, one Python
/// process on the same 2 cores, is what limits more).
const CONSUMER_ENVIRONMENTS: usize = 3;
/// Sign-ups in flight at once (Cognito itself is one moto process).
const SIGN_UP_CONCURRENCY: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_confirmed_user_lands_exactly_once_and_no_edit_is_overwritten_under_chaos() {
    let started = Instant::now();
    let size = env_number("CHAOS_USERS", 500) as usize;
    let seed = env_number("CHAOS_SEED", 0xc4a0_5eed);
    assert!(size >= 10, "CHAOS_USERS must be at least 10");
    // Every random choice of the run comes from this stream: one seed replays them all.
    let mut seeds = SplitMix64::new(seed);
    // A fresh folder, so the logs of earlier runs' consumer processes do not linger beside these.
    let _ = std::fs::remove_dir_all(e2e::paths::log_dir("chaos"));

    // The trigger's wire to SQS: a quarter of SendMessage attempts is dropped or answered 5xx,
    // so that about 1.6% of enqueues fail all three of the SDK's attempts. These faults stop
    // the request before SQS: an enqueue that failed enqueued nothing.
    let sqs_wire = FaultProxy::start(
        FaultPlan::new(seeds.next_u64())
            .inject(SEND_MESSAGE, Fault::Drop, 0.12)
            .inject(SEND_MESSAGE, Fault::ServerError, 0.13),
    )
    .await
    .unwrap();
    let pipeline = LocalPipeline::start_or_panic(
        "chaos",
        PipelineOptions {
            trigger_env: vec![("AWS_ENDPOINT_URL_SQS".into(), sqs_wire.endpoint())],
            // Long enough that a batch slowed by retries is not redelivered while it runs, short
            // enough that a crashed batch comes back in seconds.
            visibility_timeout: Duration::from_secs(5),
            ..PipelineOptions::default()
        },
    )
    .await;
    sqs_wire.forward_to(&pipeline.moto_endpoint()).unwrap();

    // What SQS accepted from the trigger, by sub: the exact body it delivers again when it
    // delivers twice, and the wire's own record of which enqueues really happened.
    let accepted = Arc::new(Mutex::new(HashMap::<String, String>::new()));
    sqs_wire.after_success(SEND_MESSAGE, {
        let accepted = Arc::clone(&accepted);
        move |exchange| {
            if let Some((sub, body)) = enqueued_message(exchange.request) {
                accepted.lock().unwrap().entry(sub).or_insert(body);
            }
        }
    });
    let chaos = ConsumerChaos {
        environments: CONSUMER_ENVIRONMENTS,
        crash_rate: CRASH_RATE,
        wire_faults: dynamodb_faults,
    };
    let mut consumers = Consumers::start(&pipeline, &chaos, &mut seeds).await;

    // 1. Users sign up and confirm while the consumers run: Cognito retries some triggers, SQS
    //    delivers some messages twice, malformed messages are mixed in.
    let plans = UserPlan::draw(size, seeds.next_u64());
    let malformed = malformed_messages(&pipeline.pool.id);
    let producing = AtomicBool::new(true);
    let (input, ()) = tokio::join!(
        async {
            let input = confirm_everyone(&pipeline, &plans, &malformed, &accepted).await;
            producing.store(false, Ordering::SeqCst);
            input
        },
        consumers.run_while(&producing),
    );
    progress("chaos", started, "confirmed");

    // 2. The application edits profiles; then their confirmation arrives again.
    let edited = edit_profiles(&pipeline, &input.users, &plans).await;
    let before = Tables::read(&pipeline).await;
    for sub in edited.keys() {
        let body = accepted.lock().unwrap()[sub].clone();
        pipeline.send_raw(&body).await.unwrap();
    }
    consumers.drain().await;
    progress("chaos", started, "edited_and_redelivered");

    // 3. The operator redrives the DLQ once; what is not malformed is synced this time.
    let redrive = pipeline.ops(&["--json", "dlq", "redrive", "--client-side"]).await;
    assert_eq!(redrive.code, Some(0), "{redrive}");
    consumers.drain().await;
    progress("chaos", started, "redriven");

    // 4. Users whose enqueue failed are exactly the ones reconcile reports missing; a repair
    //    brings them in.
    let pool = pipeline.pool.id.clone();
    let never_accepted = never_accepted(&input.users, &accepted.lock().unwrap());
    let failed_enqueues = never_enqueued(&pipeline).await;
    let subs: BTreeSet<&str> = input.users.iter().map(|u| u.sub.as_str()).collect();
    let not_synced: BTreeSet<String> = Tables::read(&pipeline)
        .await
        .lost(&subs)
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        not_synced, never_accepted,
        "before the repair, the only users not in both tables are the ones SQS never accepted"
    );
    let reconcile = pipeline
        .ops(&["--json", "reconcile", "--user-pool-id", &pool, "--rate", "30"])
        .await;
    let missing: BTreeSet<String> = serde_json::from_value(reconcile.report()["missing"].clone()).unwrap();
    assert_eq!(
        missing, never_accepted,
        "reconcile must report exactly the users SQS never accepted\n{reconcile}"
    );
    assert_eq!(
        reconcile.code,
        Some(if missing.is_empty() { 0 } else { 3 }),
        "{reconcile}"
    );
    // Every enqueue that did not happen was logged. (The converse can fail in one legitimate
    // case: SQS accepted the message after the trigger's SDK had timed out; the user is synced
    // and the operator's reconcile finds nothing missing. It is counted in the summary.)
    assert!(
        never_accepted.is_subset(&failed_enqueues),
        "users lost without an enqueue_failed log: {:?}",
        never_accepted.difference(&failed_enqueues).collect::<Vec<_>>()
    );
    let repair = pipeline
        .ops(&[
            "--json",
            "reconcile",
            "--user-pool-id",
            &pool,
            "--rate",
            "30",
            "--repair",
        ])
        .await;
    assert_eq!(repair.code, Some(0), "{repair}");
    consumers.drain().await;
    let after_repair = pipeline
        .ops(&["--json", "reconcile", "--user-pool-id", &pool, "--rate", "30"])
        .await;
    assert_eq!(
        after_repair.code,
        Some(0),
        "in sync after the repair\n{after_repair}"
    );
    progress("chaos", started, "repaired");

    // 5. The promise, counted from the tables, the DLQ and the logs; the figures first, so
    //    that a failing run shows them too.
    let tables = Tables::read(&pipeline).await;
    let lost = tables.lost(&subs);
    let duplicated = tables.duplicated(&subs, &pipeline.pool.id);
    let overwritten = tables.overwritten(&before);
    let edits_kept = edited
        .iter()
        .filter(|(sub, edit)| {
            let profile = tables.profiles.get(&pipeline.profile_id_of(sub));
            profile.and_then(|p| s(p, "full_name")) == Some(edit.as_str())
        })
        .count();
    let dead = pipeline.queue_bodies(pipeline.dlq_url()).await.unwrap();
    let mut expected_dead = malformed.clone();
    expected_dead.sort();
    let mut lines = pipeline.settled_log_lines().await;
    lines.extend(consumers.log_lines());
    lines.extend(
        [&redrive, &reconcile, &repair, &after_repair]
            .iter()
            // Everything the operator saw, stdout and stderr alike.
            .flat_map(|run| run.stdout.lines().chain(run.stderr.lines()).map(str::to_owned)),
    );
    let leaks = lines_with_pii(&lines);

    let deliveries = deliveries_by_sub(&lines);
    let summary = [
        format!("chaos: users={size} seed={seed:#x}"),
        format!(
            "duplicates_delivered={}",
            deliveries.values().map(|n| n.saturating_sub(1)).sum::<usize>()
        ),
        format!("trigger_retries={}", input.trigger_retries),
        format!("redelivered={}", input.redelivered + edited.len()),
        format!("put_item_faults={}", counts(&consumers.faults_injected())),
        format!("send_message_faults={}", counts(&sqs_wire.injected())),
        format!("write_retries={}", events(&lines, "write_retry")),
        format!("consumer_kills={}", consumers.kills()),
        format!("event_source_errors={}", consumers.event_source_errors()),
        format!("enqueue_failed={}", failed_enqueues.len()),
        format!(
            "enqueue_failed_but_accepted={}",
            failed_enqueues.difference(&never_accepted).count()
        ),
        format!("edited_profiles={}", edited.len()),
        format!("malformed={}", malformed.len()),
        format!("dlq_redriven={}", redrive.report()["moved"]),
        format!(
            "lost={} duplicated={} overwritten={}",
            lost.len(),
            duplicated.len(),
            overwritten.len()
        ),
        format!("secs={}", started.elapsed().as_secs()),
    ]
    .join(" ");
    eprintln!("{summary}");
    std::fs::write(pipeline.log_dir.join("summary.txt"), format!("{summary}\n")).unwrap();

    assert_eq!(lost, Vec::<&str>::new(), "users missing from a table");
    assert_eq!(
        duplicated,
        Vec::<String>::new(),
        "items that are not one per user"
    );
    assert_eq!(
        overwritten,
        Vec::<String>::new(),
        "items changed after they were written"
    );
    assert_eq!(edits_kept, edited.len(), "every application edit survives");
    assert_eq!(dead, expected_dead, "only the malformed messages are in the DLQ");
    assert!(
        leaks.is_empty(),
        "PII in {} log lines, e.g. {}",
        leaks.len(),
        leaks[0]
    );
    // A chaos run in which some kind of chaos never happened proves nothing about it. At the CI
    // size each happens several times over; smaller runs are for trying things out.
    if size >= 500 {
        let happened = [
            ("trigger retries", input.trigger_retries),
            ("redeliveries", input.redelivered),
            ("edits", edited.len()),
            ("consumer kills", consumers.kills()),
            ("failed enqueues", never_accepted.len()),
        ];
        for (what, count) in happened {
            assert!(count > 0, "no {what} in this run: pick another CHAOS_SEED");
        }
    }
    assert_eq!(
        consumers.delivered().failed_invocations,
        consumers.kills(),
        "the only invocations that failed as a whole are the ones crashed on purpose"
    );
}

// ---------------------------------------------------------------------------------------------
// The input: users, their retries and duplicates, malformed messages.

const GIVEN: [&str; 6] = ["Zoë", "José", "Łucja", "Αλέξης", "明美", "Søren"];
const FAMILY: [&str; 6] = ["Ñúñez-Gómez", "O'Brien", "Wójcik", "Παπαδόπουλος", "山田", "Ærø"];
const EMAIL_DOMAIN: &str = "@chaos.example";
const PHONE_PREFIX: &str = "+3460077";
const USERNAME_PREFIX: &str = "chaos.user";

/// A sign-up with the attributes a real one has. Every PII value contains one of
/// [`pii_markers`].
fn person(i: usize) -> NewUser {
    let given = format!("{}{i:05}", GIVEN[i % GIVEN.len()]);
    let family = FAMILY[i % FAMILY.len()];
    NewUser::new(
        &format!("{USERNAME_PREFIX}{i:05}"),
        &[
            ("email", &format!("pii{i:05}{EMAIL_DOMAIN}")),
            ("given_name", &given),
            ("family_name", family),
            ("name", &format!("{given} {family}")),
            ("phone_number", &format!("{PHONE_PREFIX}{i:05}")),
            ("custom:plan", if i.is_multiple_of(2) { "pro" } else { "free" }),
        ],
    )
}

/// Every email, phone number, name and username of the run contains one of these, so a line
/// with none of them holds none of that PII. Looking for the markers rather than for every value
/// keeps the scan linear at 10,000 users, and it is the stricter check.
fn pii_markers() -> Vec<&'static str> {
    let mut markers = vec![EMAIL_DOMAIN, PHONE_PREFIX, USERNAME_PREFIX];
    markers.extend(GIVEN);
    markers.extend(FAMILY);
    markers
}

fn lines_with_pii(lines: &[String]) -> Vec<&String> {
    let markers = pii_markers();
    lines
        .iter()
        .filter(|line| markers.iter().any(|m| line.contains(m)))
        .collect()
}

/// What happens to one user, drawn up front from the seed so that it does not depend on the
/// order in which concurrent sign-ups finish.
struct UserPlan {
    trigger_retry: bool,
    redelivery: bool,
    edit: bool,
}

impl UserPlan {
    fn draw(size: usize, seed: u64) -> Vec<Self> {
        let mut rng = SplitMix64::new(seed);
        (0..size)
            .map(|_| Self {
                trigger_retry: rng.chance(TRIGGER_RETRY_RATE),
                redelivery: rng.chance(REDELIVERY_RATE),
                edit: rng.chance(EDIT_RATE),
            })
            .collect()
    }
}

/// What was sent in.
struct Input {
    users: Vec<ConfirmedSignUp>,
    trigger_retries: usize,
    redelivered: usize,
}

/// Signs every user up and confirms them, invoking the trigger as Cognito would (twice for the
/// users it retries), delivering some enqueued messages a second time, and sending the
/// malformed messages in between.
async fn confirm_everyone(
    pipeline: &LocalPipeline,
    plans: &[UserPlan],
    malformed: &[String],
    accepted: &Mutex<HashMap<String, String>>,
) -> Input {
    let malformed_every = (plans.len() / malformed.len()).max(1);
    let mut outcomes: Vec<(usize, ConfirmedSignUp, bool)> = futures::stream::iter(plans.iter().enumerate())
        .map(|(i, plan)| async move {
            if i % malformed_every == 0
                && let Some(body) = malformed.get(i / malformed_every)
            {
                pipeline.send_raw(body).await.unwrap();
            }
            let signed_up = pipeline
                .sign_up(&person(i))
                .await
                .expect("sign-up and confirmation");
            for _ in 0..if plan.trigger_retry { 2 } else { 1 } {
                let answer = pipeline.invoke_trigger(&signed_up.event).await;
                // Whatever happened to the enqueue, the sign-up itself is never broken.
                assert_eq!(answer.expect("the trigger answers"), signed_up.event);
            }
            let body = accepted.lock().unwrap().get(&signed_up.sub).cloned();
            let redelivered = match (plan.redelivery, body) {
                (true, Some(body)) => {
                    pipeline.send_raw(&body).await.unwrap();
                    true
                }
                _ => false,
            };
            (i, signed_up, redelivered)
        })
        .buffer_unordered(SIGN_UP_CONCURRENCY)
        .collect()
        .await;
    outcomes.sort_by_key(|(i, _, _)| *i);
    Input {
        trigger_retries: plans.iter().filter(|p| p.trigger_retry).count(),
        redelivered: outcomes.iter().filter(|(_, _, r)| *r).count(),
        users: outcomes.into_iter().map(|(_, u, _)| u).collect(),
    }
}

/// One of each way a message can be unusable, each carrying PII that must not reach a log.
fn malformed_messages(pool_id: &str) -> Vec<String> {
    let sub = "7e1d0000-0000-4000-8000-0000000000ff";
    vec![
        format!("not json: sign-up of pii.malformed{EMAIL_DOMAIN}"),
        " ".to_owned(),
        json!({"version": 99, "source": "post_confirmation", "user_pool_id": pool_id, "sub": sub,
               "username": format!("{USERNAME_PREFIX}v99"), "confirmed_at": "2026-01-01T00:00:00Z",
               "attributes": {"name": "José Ærø"}})
        .to_string(),
        json!({"version": 1, "source": "post_confirmation", "user_pool_id": pool_id, "sub": sub,
               "username": "typed", "confirmed_at": "2026-01-01T00:00:00Z",
               "attributes": {"email": 7, "given_name": ["Zoë"], "phone_number": format!("{PHONE_PREFIX}99")}})
        .to_string(),
        envelope_for(
            "eu-west-1_SomeoneElse1",
            sub,
            &format!("{USERNAME_PREFIX}foreign"),
            &[("email", &format!("foreign{EMAIL_DOMAIN}"))],
        ),
    ]
}

/// The body and sub of a SendMessage request in SQS's JSON protocol.
fn enqueued_message(request: &[u8]) -> Option<(String, String)> {
    let request: Value = serde_json::from_slice(request).ok()?;
    let body = request["MessageBody"].as_str()?;
    let envelope: Value = serde_json::from_str(body).ok()?;
    Some((envelope["sub"].as_str()?.to_owned(), body.to_owned()))
}

/// Users for whom SQS accepted no message, according to the wire.
fn never_accepted(users: &[ConfirmedSignUp], accepted: &HashMap<String, String>) -> BTreeSet<String> {
    users
        .iter()
        .filter(|u| !accepted.contains_key(&u.sub))
        .map(|u| u.sub.clone())
        .collect()
}

/// Users the trigger logged `enqueue_failed` for and never `enqueued` (a retry by Cognito may
/// have succeeded).
async fn never_enqueued(pipeline: &LocalPipeline) -> BTreeSet<String> {
    let subs = |events: Vec<Value>| -> BTreeSet<String> {
        events
            .iter()
            .filter_map(|e| e["sub"].as_str().map(str::to_owned))
            .collect()
    };
    let failed = subs(pipeline.log_events("enqueue_failed").await);
    let enqueued = subs(pipeline.log_events("enqueued").await);
    failed.difference(&enqueued).cloned().collect()
}

// ---------------------------------------------------------------------------------------------
// The application.

/// The application fills in the planned users' profiles. Returns the edited full name by sub.
async fn edit_profiles(
    pipeline: &LocalPipeline,
    users: &[ConfirmedSignUp],
    plans: &[UserPlan],
) -> BTreeMap<String, String> {
    let mut edited = BTreeMap::new();
    for (user, _) in users.iter().zip(plans).filter(|(_, plan)| plan.edit) {
        let full_name = format!("Edited by the application {}", &user.sub[..8]);
        let update = pipeline
            .dynamodb
            .update_item()
            .table_name(pipeline.profiles_table())
            .key(PROFILES_KEY, AttributeValue::S(pipeline.profile_id_of(&user.sub)))
            .update_expression("SET id_type = :t, id_number = :n, full_name = :f, updated_at = :u")
            // Only profiles that exist: a user whose enqueue failed has none yet.
            .condition_expression("attribute_exists(profile_id)")
            .expression_attribute_values(":t", AttributeValue::S("passport".into()))
            .expression_attribute_values(":n", AttributeValue::S("X1234567".into()))
            .expression_attribute_values(":f", AttributeValue::S(full_name.clone()))
            .expression_attribute_values(":u", AttributeValue::S("2030-01-01T00:00:00.000Z".into()))
            .send()
            .await;
        match update {
            Ok(_) => {
                edited.insert(user.sub.clone(), full_name);
            }
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) => {}
            Err(err) => panic!("UpdateItem failed: {err:?}"),
        }
    }
    edited
}

/// The consumer's wire to DynamoDB: throttling and 5xx at the rates the issue names, plus
/// dropped connections, slow answers, and answers lost after the write took effect.
fn dynamodb_faults(seed: u64) -> FaultPlan {
    let slow = Fault::Latency {
        min: Duration::from_millis(100),
        max: Duration::from_millis(800),
    };
    FaultPlan::new(seed)
        .inject(PUT_ITEM, Fault::Throttle, 0.10)
        .inject(PUT_ITEM, Fault::ServerError, 0.02)
        .inject(PUT_ITEM, Fault::Drop, 0.01)
        .inject(PUT_ITEM, Fault::LoseResponse, 0.01)
        .inject(PUT_ITEM, slow, 0.03)
}
