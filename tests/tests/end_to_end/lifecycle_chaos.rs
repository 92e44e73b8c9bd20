//! Chaos for the user lifecycle: the tables converge to the pool, and nothing makes them worse.
//!
//! Every user signs up and is confirmed, then lives a random life in Cognito (attribute
//! updates and removals, disabling, re-enabling, deletion; some are erased with `ops forget`)
//! while the application edits some profiles. Each change's CloudTrail record is put on the
//! local bus (the stack's rule routes it to the queue) at least once: a share twice, all in
//! shuffled order, a share held back to arrive after later changes, a share recorded as the
//! user's own call (made with an access token, naming no pool), and late duplicates of
//! confirmations at the end. The consumers run as in the confirmation chaos test: several
//! environments, DynamoDB and Cognito throttled (and DynamoDB failing) on their wire, batches
//! crashed mid-way.
//!
//! At the end, for every user: the users item is what `AdminGetUser` says now, or a tombstone
//! without personal data when the pool no longer has them (or they were forgotten); every profile
//! edit survived; no deleted user was re-created. Figures (stderr and
//! `target/e2e-logs/lifecycle_chaos/summary.txt`): `lost`, `duplicated`, `overwritten`, `stale`,
//! `resurrected` (all asserted 0), `events` (signals put on the bus), `duplicates`,
//! `reorderings` (signals delivered after a later change's), `token_calls` (changes recorded as
//! the user's own call), kills, faults, time.
//!
//! Size: `LIFECYCLE_CHAOS_USERS` (default 500, the CI size); the documented large run is
//! 10,000: `LIFECYCLE_CHAOS_USERS=10000 cargo test -p e2e --test end_to_end lifecycle_chaos --
//! --nocapture`. `LIFECYCLE_CHAOS_SEED` replays a run's choices.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use aws_sdk_cognitoidentityprovider::types::AttributeType;
use aws_sdk_dynamodb::types::AttributeValue;
use e2e::chaos::{ConsumerChaos, Consumers, Convergence, Tables, counts, env_number, progress};
use e2e::fault_proxy::{ADMIN_GET_USER, Fault, FaultPlan, PUT_ITEM, SplitMix64};
use e2e::pipeline::s;
use e2e::{LocalPipeline, NewUser, PipelineOptions};
use futures::StreamExt;
use serde_json::Value;
use shared::mapping::PROFILES_KEY;

/// A change's record is put on the bus twice for this share.
const DUPLICATE_RATE: f64 = 0.20;
/// This share of the changes a user can make themselves is recorded as their own call (made
/// with an access token, naming no pool) instead of an administrator's.
const SELF_SERVICE_RATE: f64 = 0.30;
/// This share of a round's records is held back to a later round (after later changes).
const HOLD_BACK_RATE: f64 = 0.30;
/// This share of users gets a late duplicate of their confirmation at the end.
const LATE_CONFIRMATION_RATE: f64 = 0.10;
const EDIT_RATE: f64 = 0.10;
const DISABLE_RATE: f64 = 0.40;
const REENABLE_RATE: f64 = 0.50;
const DELETE_RATE: f64 = 0.15;
const FORGET_RATE: f64 = 0.05;
const CRASH_RATE: f64 = 0.05;
const CONSUMER_ENVIRONMENTS: usize = 3;
const COGNITO_CONCURRENCY: usize = 4;
/// Producers wait while the queue holds this many messages (see
/// `LocalPipeline::wait_for_backlog_below`: a deep queue slows moto, not the consumer).
const BACKLOG: usize = 60;
const GET_ITEM: &str = "DynamoDB_20120810.GetItem";

const EMAIL_DOMAIN: &str = "@life-chaos.example";
const USERNAME_PREFIX: &str = "life.chaos";
const NAME_MARKER: &str = "Ålvaro";

/// One change in Cognito.
#[derive(Clone, Debug)]
enum Step {
    Update { name: &'static str, value: String },
    RemovePhone,
    Disable,
    Enable,
    Delete,
}

impl Step {
    /// The Cognito call CloudTrail records for it, and whether that call names the pool: an
    /// administrator's call does; the user's own (`self_service`, made with an access token,
    /// for the steps a user can take themselves) does not.
    fn recorded(&self, self_service: bool) -> (&'static str, bool) {
        match (self, self_service) {
            (Self::Update { .. }, true) => ("UpdateUserAttributes", false),
            (Self::Update { .. }, false) => ("AdminUpdateUserAttributes", true),
            (Self::RemovePhone, true) => ("DeleteUserAttributes", false),
            (Self::RemovePhone, false) => ("AdminDeleteUserAttributes", true),
            (Self::Disable, _) => ("AdminDisableUser", true),
            (Self::Enable, _) => ("AdminEnableUser", true),
            (Self::Delete, true) => ("DeleteUser", false),
            (Self::Delete, false) => ("AdminDeleteUser", true),
        }
    }
}

/// A user's life, drawn up front from the seed.
struct Life {
    steps: Vec<Step>,
    edit: bool,
    forget: bool,
    late_confirmation: bool,
}

impl Life {
    fn draw(i: usize, rng: &mut SplitMix64) -> Self {
        let mut steps = Vec::new();
        let updates = 1 + (rng.next_u64() % 3) as usize;
        for n in 0..updates {
            steps.push(match rng.next_u64() % 3 {
                0 => Step::Update {
                    name: "given_name",
                    value: format!("{NAME_MARKER}{i:05}v{n}"),
                },
                1 => Step::Update {
                    name: "custom:plan",
                    value: format!("plan-{n}"),
                },
                _ => Step::RemovePhone,
            });
        }
        if rng.chance(DISABLE_RATE) {
            steps.push(Step::Disable);
            if rng.chance(REENABLE_RATE) {
                steps.push(Step::Enable);
            }
        }
        let delete = rng.chance(DELETE_RATE);
        if delete {
            steps.push(Step::Delete);
        }
        Self {
            steps,
            edit: rng.chance(EDIT_RATE),
            forget: !delete && rng.chance(FORGET_RATE),
            late_confirmation: rng.chance(LATE_CONFIRMATION_RATE),
        }
    }
}

fn person(i: usize) -> NewUser {
    NewUser::new(
        &format!("{USERNAME_PREFIX}{i:05}"),
        &[
            ("email", &format!("life{i:05}{EMAIL_DOMAIN}")),
            ("given_name", &format!("{NAME_MARKER}{i:05}")),
            ("family_name", "Ñúñez"),
            ("phone_number", &format!("+3460088{i:05}")),
            ("custom:plan", "free"),
        ],
    )
}

fn wire_faults(seed: u64) -> FaultPlan {
    FaultPlan::new(seed)
        .inject(PUT_ITEM, Fault::Throttle, 0.10)
        .inject(PUT_ITEM, Fault::ServerError, 0.02)
        .inject(PUT_ITEM, Fault::LoseResponse, 0.01)
        .inject(GET_ITEM, Fault::Throttle, 0.05)
        .inject(ADMIN_GET_USER, Fault::Throttle, 0.05)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_users_items_end_as_the_pool_says_and_no_deleted_user_comes_back_under_chaos() {
    let started = Instant::now();
    let size = env_number("LIFECYCLE_CHAOS_USERS", 500) as usize;
    let seed = env_number("LIFECYCLE_CHAOS_SEED", 0x11fe_c4a0);
    assert!(size >= 10, "LIFECYCLE_CHAOS_USERS must be at least 10");
    let mut seeds = SplitMix64::new(seed);
    let _ = std::fs::remove_dir_all(e2e::paths::log_dir("lifecycle_chaos"));
    let pipeline = LocalPipeline::start_or_panic(
        "lifecycle_chaos",
        PipelineOptions {
            visibility_timeout: Duration::from_secs(5),
            ..PipelineOptions::default()
        },
    )
    .await;
    let chaos = ConsumerChaos {
        environments: CONSUMER_ENVIRONMENTS,
        crash_rate: CRASH_RATE,
        wire_faults,
    };
    let mut consumers = Consumers::start(&pipeline, &chaos, &mut seeds).await;
    let mut rng = SplitMix64::new(seeds.next_u64());
    let lives: Vec<Life> = (0..size).map(|i| Life::draw(i, &mut rng)).collect();

    // 1. Everyone signs up and is confirmed through the trigger.
    let producing = AtomicBool::new(true);
    let (users, ()) = tokio::join!(
        async {
            let users: Vec<(usize, String, Value)> = futures::stream::iter(0..size)
                .map(|i| {
                    let pipeline = &pipeline;
                    async move {
                        if i % 20 == 0 {
                            pipeline.wait_for_backlog_below(BACKLOG).await.unwrap();
                        }
                        let signed_up = pipeline.sign_up(&person(i)).await.expect("sign-up");
                        pipeline.invoke_trigger(&signed_up.event).await.expect("trigger");
                        (i, signed_up.sub, signed_up.event)
                    }
                })
                .buffer_unordered(COGNITO_CONCURRENCY)
                .collect()
                .await;
            producing.store(false, std::sync::atomic::Ordering::SeqCst);
            users
        },
        consumers.run_while(&producing),
    );
    let mut users = users;
    users.sort_by_key(|(i, _, _)| *i);
    consumers.drain().await;
    progress("lifecycle chaos", started, "confirmed");

    // 2. The lives play out, round by round; the application edits some profiles meanwhile.
    let mut edits = HashMap::new();
    let rounds = lives.iter().map(|l| l.steps.len()).max().unwrap_or(0);
    let mut held: Vec<Value> = Vec::new();
    let (mut events, mut duplicates, mut reorderings, mut token_calls) = (0usize, 0usize, 0usize, 0usize);
    for round in 0..rounds {
        let steps: Vec<(usize, &String, Step)> = users
            .iter()
            .filter_map(|(i, sub, _)| Some((*i, sub, lives[*i].steps.get(round)?.clone())))
            .collect();
        let changed: Vec<(String, Step)> = futures::stream::iter(steps)
            .map(|(i, sub, step)| {
                let pipeline = &pipeline;
                async move {
                    apply(pipeline, &person(i).username, &step).await;
                    (sub.clone(), step)
                }
            })
            .buffer_unordered(COGNITO_CONCURRENCY)
            .collect()
            .await;
        let mut records: Vec<Value> = Vec::new();
        for (sub, step) in changed {
            let (call, names_pool) = step.recorded(rng.chance(SELF_SERVICE_RATE));
            if !names_pool {
                token_calls += 1;
            }
            let pool = names_pool.then_some(pipeline.pool.id.as_str());
            let record = e2e::cloudtrail::record(call, pool, Some(&sub));
            if rng.chance(DUPLICATE_RATE) {
                records.push(record.clone());
                duplicates += 1;
            }
            records.push(record);
        }
        let mut now: Vec<Value> = std::mem::take(&mut held);
        for record in records {
            if rng.chance(HOLD_BACK_RATE) && round + 1 < rounds {
                held.push(record);
                reorderings += 1;
            } else {
                now.push(record);
            }
        }
        shuffle(&mut now, &mut rng);
        events += now.len();
        let producing = AtomicBool::new(true);
        let (edited, ()) = tokio::join!(
            async {
                let (first, second) = now.split_at(now.len() / 2);
                put_all(&pipeline, first).await;
                // Halfway through the first round's signals, while the consumers write.
                let edited = if round == 0 {
                    edit_profiles(&pipeline, &users, &lives).await
                } else {
                    HashMap::new()
                };
                put_all(&pipeline, second).await;
                producing.store(false, std::sync::atomic::Ordering::SeqCst);
                edited
            },
            consumers.run_while(&producing),
        );
        edits.extend(edited);
        progress("lifecycle chaos", started, &format!("round {round}"));
    }

    // 3. Some users are erased by the application, then late messages arrive: duplicates of
    //    confirmations, and another refresh of everyone forgotten.
    let mut forgotten = BTreeSet::new();
    for (i, sub, _) in &users {
        if lives[*i].forget {
            pipeline
                .ops(&["--json", "forget", "--sub", sub])
                .await
                .assert_code(0);
            forgotten.insert(sub.clone());
        }
    }
    let mut late = std::mem::take(&mut held);
    for (_, sub, _) in users.iter().filter(|(_, sub, _)| forgotten.contains(sub)) {
        late.push(e2e::cloudtrail::record(
            "AdminUpdateUserAttributes",
            Some(&pipeline.pool.id),
            Some(sub),
        ));
    }
    events += late.len();
    let producing = AtomicBool::new(true);
    tokio::join!(
        async {
            let confirmed_again = users
                .iter()
                .filter(|(i, sub, _)| lives[*i].late_confirmation || forgotten.contains(sub));
            for (n, (_, _, event)) in confirmed_again.enumerate() {
                if n % 20 == 0 {
                    pipeline.wait_for_backlog_below(BACKLOG).await.unwrap();
                }
                pipeline.invoke_trigger(event).await.expect("trigger");
            }
            put_all(&pipeline, &late).await;
            producing.store(false, std::sync::atomic::Ordering::SeqCst);
        },
        consumers.run_while(&producing),
    );
    consumers.drain().await;
    let redrive = pipeline.ops(&["--json", "dlq", "redrive", "--client-side"]).await;
    redrive.assert_code(0);
    consumers.drain().await;
    progress("lifecycle chaos", started, "drained");

    // 4. Every user against the pool.
    let tables = Tables::read(&pipeline).await;
    let named: Vec<(String, String)> = users
        .iter()
        .map(|(i, sub, _)| (person(*i).username, sub.clone()))
        .collect();
    let Convergence {
        lost,
        stale,
        resurrected,
        deleted,
        disabled,
    } = Convergence::measure(&pipeline, &tables, &named, &forgotten).await;
    let mut overwritten = Vec::new();
    for (_, sub, _) in &users {
        let profile = tables.profiles.get(&pipeline.profile_id_of(sub));
        if let Some(edit) = edits.get(sub)
            && !forgotten.contains(sub)
            && profile.and_then(|p| s(p, "full_name")) != Some(edit.as_str())
        {
            overwritten.push(sub.clone());
        }
    }
    let subs: BTreeSet<&str> = users.iter().map(|(_, sub, _)| sub.as_str()).collect();
    let duplicated = tables.duplicated(&subs, &pipeline.pool.id);
    let mut lines = pipeline.settled_log_lines().await;
    lines.extend(consumers.log_lines());
    let markers = [EMAIL_DOMAIN, USERNAME_PREFIX, NAME_MARKER];
    let leaks: Vec<&String> = lines
        .iter()
        .filter(|line| markers.iter().any(|m| line.contains(m)))
        .collect();

    let summary = [
        format!("lifecycle chaos: users={size} seed={seed:#x}"),
        format!(
            "events={events} duplicates={duplicates} reorderings={reorderings} token_calls={token_calls}"
        ),
        format!(
            "deleted={deleted} forgotten={} disabled_at_end={disabled} edited={}",
            forgotten.len(),
            edits.len()
        ),
        format!("consumer_kills={}", consumers.kills()),
        format!("faults={}", counts(&consumers.faults_injected())),
        format!("dlq_redriven={}", redrive.report()["moved"]),
        format!(
            "lost={} duplicated={} overwritten={} stale={} resurrected={}",
            lost.len(),
            duplicated.len(),
            overwritten.len(),
            stale.len(),
            resurrected.len()
        ),
        format!("secs={}", started.elapsed().as_secs()),
    ]
    .join(" ");
    eprintln!("{summary}");
    std::fs::write(pipeline.log_dir.join("summary.txt"), format!("{summary}\n")).unwrap();

    assert!(
        leaks.is_empty(),
        "PII in {} log lines, e.g. {}",
        leaks.len(),
        leaks[0]
    );
    assert_eq!(
        lost,
        Vec::<String>::new(),
        "users of the pool missing from a table"
    );
    assert_eq!(
        duplicated,
        Vec::<String>::new(),
        "items that are not one per user"
    );
    assert_eq!(overwritten, Vec::<String>::new(), "profile edits lost");
    assert_eq!(
        stale,
        Vec::<String>::new(),
        "users items that are not the user's state now"
    );
    assert_eq!(
        resurrected,
        Vec::<String>::new(),
        "deleted or forgotten users not (only) a tombstone"
    );
    if size >= 500 {
        assert!(
            consumers.kills() > 0
                && duplicates > 0
                && reorderings > 0
                && deleted > 0
                && !forgotten.is_empty()
        );
    }
}

/// The application's own edits of the profiles of the users whose life says so: sub to the
/// `full_name` written.
async fn edit_profiles(
    pipeline: &LocalPipeline,
    users: &[(usize, String, Value)],
    lives: &[Life],
) -> HashMap<String, String> {
    let mut edits = HashMap::new();
    for (i, sub, _) in users.iter().filter(|(i, _, _)| lives[*i].edit) {
        let edit = format!("edited by the application {i}");
        pipeline
            .dynamodb
            .update_item()
            .table_name(pipeline.profiles_table())
            .key(PROFILES_KEY, AttributeValue::S(pipeline.profile_id_of(sub)))
            .update_expression("SET full_name = :f, id_type = :t")
            .expression_attribute_values(":f", AttributeValue::S(edit.clone()))
            .expression_attribute_values(":t", AttributeValue::S("passport".into()))
            .send()
            .await
            .unwrap();
        edits.insert(sub.clone(), edit);
    }
    edits
}

/// Makes `step` happen to `username` in the local pool.
async fn apply(pipeline: &LocalPipeline, username: &str, step: &Step) {
    let cognito = &pipeline.cognito;
    let pool = &pipeline.pool.id;
    // The calls differ only in their builder: each names the pool and the user, and is sent.
    macro_rules! on_the_user {
        ($builder:expr) => {
            $builder
                .user_pool_id(pool)
                .username(username)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| format!("{e:?}"))
        };
    }
    let result = match step {
        Step::Update { name, value } => on_the_user!(
            cognito
                .admin_update_user_attributes()
                .user_attributes(AttributeType::builder().name(*name).value(value).build().unwrap())
        ),
        // Removed by an earlier step already: not a failure.
        Step::RemovePhone => on_the_user!(
            cognito
                .admin_delete_user_attributes()
                .user_attribute_names("phone_number")
        )
        .or(Ok(())),
        Step::Disable => on_the_user!(cognito.admin_disable_user()),
        Step::Enable => on_the_user!(cognito.admin_enable_user()),
        Step::Delete => on_the_user!(cognito.admin_delete_user()),
    };
    result.unwrap_or_else(|err| panic!("{step:?} failed: {err}"));
}

/// Puts records on the bus, ten to a `PutEvents` call as AWS allows, while the queue's backlog
/// stays under [`BACKLOG`] (consumers must be running).
async fn put_all(pipeline: &LocalPipeline, records: &[Value]) {
    let events = aws_sdk_eventbridge::Client::new(&pipeline.sdk);
    for (n, chunk) in records.chunks(10).enumerate() {
        if n % 4 == 0 {
            pipeline.wait_for_backlog_below(BACKLOG).await.unwrap();
        }
        e2e::cloudtrail::put_many(&events, chunk).await.unwrap();
    }
}

fn shuffle<T>(items: &mut [T], rng: &mut SplitMix64) {
    for i in (1..items.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}
