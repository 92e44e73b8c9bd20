//! The chaos test's harness: the consumer as Lambda runs it (several execution environments,
//! each with its own fault-injecting wire to DynamoDB and crashed on purpose mid-batch), the two
//! tables read whole and what they say (lost, duplicated, overwritten), and the logs counted.
//! The scenario (who signs up, what fails, how often) is the test's.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use shared::ProfileId;
use shared::lifecycle::{COGNITO_MODIFIED_AT, PROFILE_DELETED_AT, StoredUser, holds_state, mirror_item};
use shared::mapping::{PROFILES_KEY, USERS_KEY};

use crate::event_source::PollReport;
use crate::fault_proxy::{FaultPlan, FaultProxy, PUT_ITEM, SplitMix64};
use crate::pipeline::{LocalPipeline, StoredItem, s};
use crate::runtime_api::{LambdaFunction, kill_process};

/// Kills the consumer process right after one of its writes succeeded, before the write's
/// answer reaches it, while the rest of its batch is in flight: a crash mid-batch. Once armed,
/// it fires at the next successful `PutItem` (the DynamoDB wire's hook calls it).
#[derive(Default)]
pub struct CrashSwitch {
    armed_pid: AtomicU32,
    kills: AtomicUsize,
}

impl CrashSwitch {
    pub fn arm(&self, pid: u32) {
        self.armed_pid.store(pid, Ordering::SeqCst);
    }

    pub fn fire(&self) {
        let pid = self.armed_pid.swap(0, Ordering::SeqCst);
        if pid != 0 {
            kill_process(pid);
            self.kills.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// The consumer as Lambda runs it: several execution environments polling the queue at once
/// (the template allows five), so duplicates of one user also race between processes. (The
/// pipeline's own consumer stays idle: replacing a crashed process needs `&mut LocalPipeline`,
/// while Cognito keeps confirming users through the same pipeline.)
pub struct Consumers<'a> {
    environments: Vec<Environment<'a>>,
}

/// How the consumers are run: how many environments at once, what their wire to DynamoDB and
/// Cognito does, and how often a batch is crashed.
pub struct ConsumerChaos {
    pub environments: usize,
    /// The share of batches crashed after their first successful write.
    pub crash_rate: f64,
    /// The faults of each environment's wire to DynamoDB and Cognito, from a seed.
    pub wire_faults: fn(u64) -> FaultPlan,
}

impl<'a> Consumers<'a> {
    /// Starts `chaos.environments` consumer environments; every random choice comes from `seeds`.
    pub async fn start(pipeline: &'a LocalPipeline, chaos: &ConsumerChaos, seeds: &mut SplitMix64) -> Self {
        let mut environments = Vec::new();
        for slot in 0..chaos.environments {
            environments.push(Environment::start(pipeline, slot, chaos, seeds).await);
        }
        Self { environments }
    }

    /// Polls, crashing some invocations, until `producing` is false and the queue is empty.
    pub async fn run_while(&mut self, producing: &AtomicBool) {
        futures::future::join_all(self.environments.iter_mut().map(|e| e.run_while(producing))).await;
    }

    pub async fn drain(&mut self) {
        self.run_while(&AtomicBool::new(false)).await;
    }

    pub fn kills(&self) -> usize {
        self.environments
            .iter()
            .map(|e| e.crash.kills.load(Ordering::SeqCst))
            .sum()
    }

    pub fn event_source_errors(&self) -> usize {
        self.environments.iter().map(|e| e.event_source_errors).sum()
    }

    pub fn delivered(&self) -> PollReport {
        let mut total = PollReport::default();
        for environment in &self.environments {
            total += environment.delivered;
        }
        total
    }

    pub fn faults_injected(&self) -> BTreeMap<&'static str, u64> {
        let mut total = BTreeMap::new();
        for (kind, n) in self.environments.iter().flat_map(|e| e.wire.injected()) {
            *total.entry(kind).or_default() += n;
        }
        total
    }

    /// Every line every process printed.
    pub fn log_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for environment in &self.environments {
            lines.extend(environment.retired_lines.iter().cloned());
            lines.extend(environment.function.log_lines());
        }
        lines
    }
}

/// One execution environment: a consumer process fed by the event source, with its own wire to
/// DynamoDB (so that a crash hits the process whose write just succeeded). When an invocation
/// crashes it, a fresh process with the same environment variables takes over.
struct Environment<'a> {
    pipeline: &'a LocalPipeline,
    slot: usize,
    wire: FaultProxy,
    crash: Arc<CrashSwitch>,
    function: LambdaFunction,
    processes: usize,
    retired_lines: Vec<String>,
    rng: SplitMix64,
    crash_rate: f64,
    delivered: PollReport,
    event_source_errors: usize,
}

impl<'a> Environment<'a> {
    async fn start(
        pipeline: &'a LocalPipeline,
        slot: usize,
        chaos: &ConsumerChaos,
        seeds: &mut SplitMix64,
    ) -> Self {
        let wire = FaultProxy::start((chaos.wire_faults)(seeds.next_u64()))
            .await
            .unwrap();
        wire.forward_to(&pipeline.moto_endpoint()).unwrap();
        let crash = Arc::new(CrashSwitch::default());
        wire.after_success(PUT_ITEM, {
            let crash = Arc::clone(&crash);
            move |_| crash.fire()
        });
        Self {
            function: start_consumer(pipeline, &wire, &format!("consumer-{slot}-1")).await,
            pipeline,
            slot,
            wire,
            crash,
            processes: 1,
            retired_lines: Vec::new(),
            rng: SplitMix64::new(seeds.next_u64()),
            crash_rate: chaos.crash_rate,
            delivered: PollReport::default(),
            event_source_errors: 0,
        }
    }

    async fn run_while(&mut self, producing: &AtomicBool) {
        let started = Instant::now();
        let mut failing = 0;
        let mut seen_empty = false;
        loop {
            if !self.function.is_running() {
                self.replace_crashed().await;
            }
            let report = match self.pipeline.event_source_for(&self.function).poll_once().await {
                Ok(report) => report,
                // A batch that outlived its visibility timeout is received again by another
                // environment; if moto moves a message to the DLQ meanwhile, deleting it with
                // the first receipt handle fails. Lambda's event source logs such a failure and
                // goes on: so does this one, unless failures keep coming.
                Err(err) => {
                    self.event_source_errors += 1;
                    failing += 1;
                    assert!(failing < 10, "the event source keeps failing: {err:#}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            failing = 0;
            self.delivered += report;
            // Drawn after a batch, for the next one: a crash needs a batch that writes, and an
            // idle queue has none.
            if report.received > 0
                && self.rng.chance(self.crash_rate)
                && let Some(pid) = self.function.pid()
            {
                self.crash.arm(pid);
            }
            // moto counts visible and in-flight messages at slightly different moments, so a
            // message that becomes visible in between is counted as neither: the queue is
            // drained only when it is seen empty twice, with an empty poll between.
            if report.received > 0 {
                seen_empty = false;
            } else {
                let queue = self
                    .pipeline
                    .queue_counts(self.pipeline.queue_url())
                    .await
                    .unwrap();
                let empty = queue == (0, 0) && !producing.load(Ordering::SeqCst);
                if empty && seen_empty {
                    return;
                }
                seen_empty = empty;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            assert!(
                started.elapsed() < Duration::from_secs(4 * 3600),
                "the queue did not drain: {:?}",
                self.delivered
            );
        }
    }

    async fn replace_crashed(&mut self) {
        self.retired_lines.extend(self.function.log_lines());
        self.processes += 1;
        let label = format!("consumer-{}-{}", self.slot, self.processes);
        self.function = start_consumer(self.pipeline, &self.wire, &label).await;
    }
}

/// A consumer process with the stack's environment, its DynamoDB and Cognito calls through
/// `wire`.
async fn start_consumer(pipeline: &LocalPipeline, wire: &FaultProxy, label: &str) -> LambdaFunction {
    let endpoint = wire.endpoint();
    pipeline
        .start_consumer_variant(
            label,
            &[
                ("AWS_ENDPOINT_URL_DYNAMODB", &endpoint),
                ("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", &endpoint),
            ],
        )
        .await
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// The tables, and what they say.

pub struct Tables {
    pub users: HashMap<String, StoredItem>,
    pub profiles: HashMap<String, StoredItem>,
}

impl Tables {
    pub async fn read(pipeline: &LocalPipeline) -> Self {
        let keyed = |items: Vec<StoredItem>, key: &str| -> HashMap<String, StoredItem> {
            items
                .into_iter()
                .map(|item| (s(&item, key).unwrap_or_default().to_owned(), item))
                .collect()
        };
        Self {
            users: keyed(pipeline.scan(pipeline.users_table()).await.unwrap(), USERS_KEY),
            profiles: keyed(
                pipeline.scan(pipeline.profiles_table()).await.unwrap(),
                PROFILES_KEY,
            ),
        }
    }

    /// Users without a users item or without a profile.
    pub fn lost<'s>(&self, subs: &BTreeSet<&'s str>) -> Vec<&'s str> {
        let with_profile: BTreeSet<&str> = self.profiles.values().filter_map(|p| s(p, USERS_KEY)).collect();
        subs.iter()
            .filter(|sub| !self.users.contains_key(**sub) || !with_profile.contains(**sub))
            .copied()
            .collect()
    }

    /// Items beyond one users item and one profile per user: a second profile, a profile whose
    /// id is not the deterministic one, an item for nobody.
    pub fn duplicated(&self, subs: &BTreeSet<&str>, pool_id: &str) -> Vec<String> {
        let mut wrong: Vec<String> = self
            .users
            .keys()
            .filter(|sub| !subs.contains(sub.as_str()))
            .map(|sub| format!("users item of unknown {sub}"))
            .collect();
        // A deleted user's profile tombstone names no user: its key must be one user's.
        let profile_ids: BTreeSet<String> = subs
            .iter()
            .map(|sub| ProfileId::derive(pool_id, sub).to_string())
            .collect();
        for (profile_id, profile) in &self.profiles {
            let is_profile_tombstone = profile.len() == 2 && profile.contains_key(PROFILE_DELETED_AT);
            if is_profile_tombstone && profile_ids.contains(profile_id) {
                continue;
            }
            let sub = s(profile, USERS_KEY).unwrap_or_default();
            if !subs.contains(sub) || *profile_id != ProfileId::derive(pool_id, sub).to_string() {
                wrong.push(format!("profile {profile_id} of {sub}"));
            }
        }
        for (sub, user) in &self.users {
            if s(user, PROFILES_KEY) != Some(ProfileId::derive(pool_id, sub).to_string().as_str()) {
                wrong.push(format!("users item {sub} points at another profile"));
            }
        }
        wrong
    }

    /// Items that differ from what they were at `before`.
    pub fn overwritten(&self, before: &Tables) -> Vec<String> {
        let changed = |now: &HashMap<String, StoredItem>, then: &HashMap<String, StoredItem>, table: &str| {
            then.iter()
                .filter(|(key, item)| now.get(*key) != Some(*item))
                .map(|(key, _)| format!("{table} {key}"))
                .collect::<Vec<_>>()
        };
        let mut changed_items = changed(&self.users, &before.users, "users");
        changed_items.extend(changed(&self.profiles, &before.profiles, "profile"));
        changed_items
    }
}

// ---------------------------------------------------------------------------------------------
// The logs.

/// How many lines are the JSON event `name`.
pub fn events(lines: &[String], name: &str) -> usize {
    parsed(lines, name).count()
}

/// The lines that are the JSON event `name`, parsed.
pub fn parsed<'l>(lines: &'l [String], name: &'l str) -> impl Iterator<Item = Value> + 'l {
    lines
        .iter()
        .filter(move |line| line.contains(name))
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(move |v| v["event"] == name)
}

/// How many times the consumer processed each user's confirmation (synced or already synced).
pub fn deliveries_by_sub(lines: &[String]) -> HashMap<String, usize> {
    let mut count = HashMap::new();
    for event in parsed(lines, "synced").chain(parsed(lines, "already_synced")) {
        if let Some(sub) = event["sub"].as_str() {
            *count.entry(sub.to_owned()).or_default() += 1;
        }
    }
    count
}

/// `kind:count,...` of a proxy's injected faults.
pub fn counts(injected: &BTreeMap<&str, u64>) -> String {
    injected
        .iter()
        .map(|(kind, n)| format!("{kind}:{n}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A line per phase of a chaos run (`run` names it), so that a long run shows where it is and
/// where the time went.
pub fn progress(run: &str, started: std::time::Instant, phase: &str) {
    eprintln!("{run}: {phase} after {} s", started.elapsed().as_secs());
}

/// A number from the environment (a run's size or seed), or `default`.
pub fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} must be a number, got {v:?}"))
        })
        .unwrap_or(default)
}

/// Every user against the pool, after the consumers have drained: what the lifecycle chaos run
/// and the scheduled convergence test both assert is all zero.
#[derive(Debug, Default)]
pub struct Convergence {
    /// In the pool, and without a live users item or without a profile.
    pub lost: Vec<String>,
    /// A live users item that is not the user's state now (`AdminGetUser`).
    pub stale: Vec<String>,
    /// Gone from the pool (or forgotten), and not a bare tombstone with a deleted profile.
    pub resurrected: Vec<String>,
    pub deleted: usize,
    pub disabled: usize,
}

impl Convergence {
    /// `users`: (username, sub) of every user the test made; `forgotten`: subs erased with
    /// `ops forget`, whose profile must be a profile tombstone.
    pub async fn measure(
        pipeline: &LocalPipeline,
        tables: &Tables,
        users: &[(String, String)],
        forgotten: &BTreeSet<String>,
    ) -> Self {
        let now = time::OffsetDateTime::now_utc();
        let mut found = Self::default();
        for (username, sub) in users {
            let item = tables.users.get(sub);
            let profile = tables.profiles.get(&pipeline.profile_id_of(sub));
            let stored = StoredUser::from_item(item.map(tables::from_attribute_values));
            let read = pipeline
                .cognito
                .admin_get_user()
                .user_pool_id(&pipeline.pool.id)
                .username(username)
                .send()
                .await;
            let read = match read {
                Ok(read)
                    if !forgotten.contains(sub)
                        && read.user_attributes().iter().any(|a| a.value() == Some(sub)) =>
                {
                    read
                }
                _ => {
                    found.deleted += 1;
                    let tombstone_ok = matches!(&stored, StoredUser::Tombstone(t) if is_bare_tombstone(t));
                    let profile_ok = if forgotten.contains(sub) {
                        profile.is_some_and(|p| {
                            p.len() == 2 && p.contains_key(PROFILES_KEY) && p.contains_key(PROFILE_DELETED_AT)
                        })
                    } else {
                        profile.is_some_and(|p| p.contains_key(PROFILE_DELETED_AT))
                    };
                    if !tombstone_ok || !profile_ok {
                        found.resurrected.push(sub.clone());
                    }
                    continue;
                }
            };
            if !read.enabled() {
                found.disabled += 1;
            }
            let user =
                pool_reader::pool_user(&pipeline.pool.id, pool_reader::CognitoUser::from(&read)).unwrap();
            let StoredUser::Live(current) = &stored else {
                found.lost.push(sub.clone());
                continue;
            };
            if profile.is_none() {
                found.lost.push(sub.clone());
            }
            let current_state = if current.contains_key(COGNITO_MODIFIED_AT) {
                holds_state(current, &mirror_item(&user, &stored, now))
            } else {
                confirmation_holds(current, &user)
            };
            if !current_state {
                found.stale.push(sub.clone());
            }
        }
        found
    }
}

/// Whether an item written by a confirmation (never refreshed, so without the mirror's status,
/// enabled flag and version) still says what the pool does: a confirmed, enabled user with the
/// same username and attributes (Cognito's `cognito:` pseudo-attributes aside, which only the
/// Post Confirmation event carries).
fn confirmation_holds(item: &shared::lifecycle::StoredItem, user: &shared::lifecycle::PoolUser) -> bool {
    let attributes = match item.get("attributes") {
        Some(shared::ItemValue::M(map)) => map
            .iter()
            .filter(|(name, _)| !name.starts_with("cognito:"))
            .collect(),
        _ => BTreeMap::new(),
    };
    let listed: BTreeMap<&String, &String> = user
        .attributes()
        .iter()
        .filter(|(_, value)| !value.trim().is_empty())
        .collect();
    user.status() == "CONFIRMED"
        && user.enabled()
        && item.get("username") == Some(&shared::ItemValue::S(user.username().to_owned()))
        && attributes == listed
}

/// A tombstone holds the key, the pool, the profile id and the write stamps, nothing personal.
fn is_bare_tombstone(item: &shared::lifecycle::StoredItem) -> bool {
    let names: BTreeSet<&str> = item.keys().map(String::as_str).collect();
    let allowed: BTreeSet<&str> = [
        "user_id",
        "profile_id",
        "user_pool_id",
        "created_at",
        "deleted_at",
        "forgotten_at",
        "revision",
        "updated_at",
    ]
    .into();
    names.is_subset(&allowed) && names.contains("deleted_at")
}
