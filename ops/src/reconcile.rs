//! `reconcile`: do the tables equal the pool?
//!
//! Runs the scheduled reconciliation's own walk (the `reconciler` crate, the one
//! implementation) on this machine: the pool a page of 60 at a time, each page compared with
//! both tables by key (`BatchGetItem`), then a segmented scan of the users table for items whose
//! user the pool no longer has. Memory holds a page and a fixed-size set difference, whatever
//! the pool's size. It reports every drift by kind ([`drift::DriftKind`]): users missing from
//! both tables (never passed Post Confirmation, or lost), half-synced, stale, enabled or
//! disabled without a signal, and deleted without a signal (orphans).
//!
//! `--repair` sends a refresh signal for each, as the scheduled run does; the consumer reads
//! each user from Cognito and applies what it finds (a missing user is written, an orphan
//! becomes a tombstone). Without it nothing is sent, and the exit code is 3 when anything
//! differs.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use drift::{Cursor, Drift, DriftKind, RunMessage};
use reconciler::run::{Budget, Delivered, DriftSink, SliceEnd, advance};
use reconciler::signals::SignalSender;
use reconciler::walk::{Sources, Walker};
use serde_json::json;
use time::OffsetDateTime;

use crate::user_pool::{self, USER_LIST_DEFAULT_QUOTA};
use crate::{Ctx, Outcome, progress, queue};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The user pool to compare with the users and profiles tables (here, on this machine).
    #[arg(long, value_name = "ID", value_parser = user_pool::parse_pool_id, required_unless_present_any = ["start", "latest"])]
    pub user_pool_id: Option<String>,
    /// Send a refresh signal for every user found to differ (as the scheduled run does).
    #[arg(long)]
    pub repair: bool,
    /// Start a run in the stack instead (a start message on its reconcile queue, as the
    /// schedule sends); its progress and result are the reconciler's log events.
    #[arg(long, conflicts_with_all = ["repair", "user_pool_id"])]
    pub start: bool,
    /// The reconcile queue's URL (instead of the stack's ReconcileQueueUrl output).
    #[arg(long, value_name = "URL", requires = "start")]
    pub reconcile_queue_url: Option<String>,
    /// Report the stack's latest run instead (from the reconciler's log events of the last
    /// --days days), and the run in progress if there is one.
    #[arg(long, conflicts_with_all = ["repair", "user_pool_id", "start"])]
    pub latest: bool,
    /// The reconciler's log group (instead of the stack's ReconcilerLogGroupName output).
    #[arg(long, value_name = "NAME", requires = "latest")]
    pub log_group: Option<String>,
    /// How far back --latest looks.
    #[arg(long, value_name = "N", default_value_t = 8, requires = "latest", value_parser = clap::value_parser!(u32).range(1..=365))]
    pub days: u32,
    /// At most this many ListUsers requests per second (retries included); at most
    /// --user-list-quota. A throttle halves it for a while.
    #[arg(long, value_name = "R", default_value = "5", value_parser = user_pool::parse_rate)]
    pub rate: f64,
    /// The account's Cognito UserList request-rate quota, if raised above the default 30.
    #[arg(long, value_name = "R", default_value_t = USER_LIST_DEFAULT_QUOTA, value_parser = user_pool::parse_rate)]
    pub user_list_quota: f64,
    /// Segments of the users table's scan, read at the same time.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub segments: u32,
}

impl Args {
    /// What clap cannot check flag by flag.
    pub fn validate(&self) -> Result<(), String> {
        user_pool::check_rate(self.rate, self.user_list_quota)
    }
}

/// `--start`: a run in the stack, begun as the schedule begins one.
async fn start(ctx: &Ctx, args: &Args) -> Result<Outcome> {
    let url = ctx
        .names
        .reconcile_queue_url(args.reconcile_queue_url.as_deref())
        .await?;
    let body = drift::cursor::encode(&RunMessage::Start {
        requested_by: "ops".to_owned(),
    })?;
    ctx.sqs
        .send_message()
        .queue_url(&url)
        .message_body(body)
        .send()
        .await
        .map_err(|err| anyhow::anyhow!(crate::aws::detail(&err)))
        .with_context(|| format!("cannot send the start to the reconcile queue {url}"))?;
    ctx.printer.report(
        "reconcile: a run was started in the stack (skipped if one is in progress); it sends a \
         refresh signal for every user who differs. Its progress and result are the reconciler's \
         log events reconcile_progress and reconcile_run_finished, and the DriftFound metrics",
        &json!({"command": "reconcile", "started": true, "reconcile_queue_url": url}),
    );
    Ok(Outcome::Done)
}

/// `--latest`: the newest run's `reconcile_run_finished` event and, when a later run has started
/// and not finished, its newest `reconcile_progress`.
async fn latest(ctx: &Ctx, args: &Args) -> Result<Outcome> {
    let group = ctx.names.reconciler_log_group(args.log_group.as_deref()).await?;
    let since = OffsetDateTime::now_utc() - time::Duration::days(i64::from(args.days));
    let since_ms = (since.unix_timestamp_nanos() / 1_000_000) as i64;
    let newest = |event: &'static str| {
        let group = group.clone();
        async move { newest_event(ctx, &group, event, since_ms).await }
    };
    let finished = newest("reconcile_run_finished").await?;
    let started = newest("reconcile_run_started").await?;
    let run_id = |event: &Option<(i64, serde_json::Value)>| {
        event
            .as_ref()
            .and_then(|(_, e)| e["run_id"].as_str().map(str::to_owned))
    };
    // Runs end in the order they start (one at a time): the newest start without the newest
    // end's run id has not ended.
    let in_progress = started.is_some() && run_id(&started) != run_id(&finished);
    let progress = match (in_progress, run_id(&started)) {
        (true, Some(id)) => newest_with(ctx, &group, "reconcile_progress", &id, since_ms).await?,
        _ => None,
    };
    let field = |event: &serde_json::Value, name: &str| event[name].to_string();
    let mut human = match &finished {
        Some((_, run)) => format!(
            "latest run {id}: started {started}, took {seconds} s over {invocations} invocations; {listed} users \
             listed in {pages} pages, {scanned} users items scanned; drift {drift} (missing {missing}, no users item \
             {no_users_item}, no profile {no_profile}, stale {stale}, enabled differs {enabled_differs}, deleted \
             {deleted}); {sent} refresh signals sent, {refused} refused",
            id = run["run_id"].as_str().unwrap_or("?"),
            started = run["started_at"].as_str().unwrap_or("?"),
            seconds = run["duration_ms"].as_u64().unwrap_or(0) / 1000,
            invocations = field(run, "invocations"),
            listed = field(run, "listed"),
            pages = field(run, "pages"),
            scanned = field(run, "scanned"),
            drift = field(run, "drift"),
            missing = field(run, "missing"),
            no_users_item = field(run, "no_users_item"),
            no_profile = field(run, "no_profile"),
            stale = field(run, "stale"),
            enabled_differs = field(run, "enabled_differs"),
            deleted = field(run, "deleted"),
            sent = field(run, "signals_sent"),
            refused = field(run, "signals_refused"),
        ),
        None => format!(
            "no reconciliation run finished in {group} in the last {} days",
            args.days
        ),
    };
    if in_progress {
        let id = run_id(&started).unwrap_or_default();
        match &progress {
            Some((_, step)) => human.push_str(&format!(
                "\nrun {id} in progress: step {}, {} pages walked, {} items scanned, drift {} so far",
                field(step, "step"),
                field(step, "pages"),
                field(step, "scanned"),
                field(step, "drift"),
            )),
            None => human.push_str(&format!("\nrun {id} in progress: started, no step handed on yet")),
        }
    }
    ctx.printer.report(
        &human,
        &json!({
            "command": "reconcile",
            "log_group": group,
            "latest": finished.map(|(_, run)| run),
            "in_progress": in_progress,
            "progress": progress.map(|(_, step)| step),
        }),
    );
    Ok(Outcome::Done)
}

/// The newest log event of `group` since `since_ms` that is the JSON event `event`, with its
/// timestamp.
async fn newest_event(
    ctx: &Ctx,
    group: &str,
    event: &str,
    since_ms: i64,
) -> Result<Option<(i64, serde_json::Value)>> {
    let mut newest: Option<(i64, serde_json::Value)> = None;
    let mut token = None;
    loop {
        let page = ctx
            .logs
            .filter_log_events()
            .log_group_name(group)
            .start_time(since_ms)
            // A quoted term: CloudWatch Logs matches the exact phrase.
            .filter_pattern(format!("\"{event}\""))
            .set_next_token(token)
            .send()
            .await
            .map_err(|err| anyhow::anyhow!(crate::aws::detail(&err)))
            .with_context(|| format!("cannot read the log events of {group}"))?;
        for found in page.events() {
            let Some(parsed) = found
                .message()
                .and_then(|m| serde_json::from_str::<serde_json::Value>(m).ok())
                .filter(|v| v["event"] == event)
            else {
                continue;
            };
            let at = found.timestamp().unwrap_or(0);
            if newest.as_ref().is_none_or(|(t, _)| at >= *t) {
                newest = Some((at, parsed));
            }
        }
        match page.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_owned()),
            _ => break,
        }
    }
    Ok(newest)
}

/// [`newest_event`], of one run.
async fn newest_with(
    ctx: &Ctx,
    group: &str,
    event: &str,
    run_id: &str,
    since_ms: i64,
) -> Result<Option<(i64, serde_json::Value)>> {
    let found = newest_event(ctx, group, event, since_ms).await?;
    Ok(found.filter(|(_, e)| e["run_id"] == run_id))
}

/// Collects the drifts for the report, and with `--repair` sends them on.
struct Report {
    found: BTreeMap<DriftKind, Vec<String>>,
    sender: Option<SignalSender>,
}

impl DriftSink for Report {
    async fn found(&mut self, drifts: &[Drift]) -> Delivered {
        for drift in drifts {
            self.found.entry(drift.kind).or_default().push(drift.sub.clone());
        }
        match &mut self.sender {
            Some(sender) => sender.found(drifts).await,
            None => Delivered::default(),
        }
    }
}

impl Report {
    fn subs(&self, kinds: &[DriftKind]) -> Vec<String> {
        let mut subs: Vec<String> = kinds
            .iter()
            .flat_map(|kind| self.found.get(kind).into_iter().flatten().cloned())
            .collect();
        subs.sort();
        subs.dedup();
        subs
    }
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<Outcome> {
    if args.latest {
        return latest(ctx, args).await;
    }
    let Some(pool) = args.user_pool_id.clone() else {
        return start(ctx, args).await;
    };
    let users_table = ctx.names.users_table().await?;
    let profiles_table = ctx.names.profiles_table().await?;
    // With --repair the queue is checked first: better to fail before the long walk.
    let sender = if args.repair {
        let url = ctx.names.queue_url().await?;
        queue::inspect(&ctx.sqs, &url).await?;
        Some(SignalSender::new(ctx.sqs.clone(), &url, &pool))
    } else {
        None
    };
    user_pool::describe_pool(&ctx.cognito, &pool).await?;

    let mut walker = Walker::new(
        Sources {
            cognito: ctx.cognito.clone(),
            dynamodb: ctx.dynamodb.clone(),
            user_pool_id: pool.clone(),
            users_table: users_table.clone(),
            profiles_table: profiles_table.clone(),
        },
        args.rate,
    );
    let mut cursor = Cursor::start("local", &pool, OffsetDateTime::now_utc(), args.segments);
    let mut report = Report {
        found: BTreeMap::new(),
        sender,
    };
    let bar = progress::spinner("reconcile: users listed, then items scanned");
    loop {
        let budget = Budget {
            pages: 10,
            deadline: None,
        };
        let end = advance(&mut walker, &mut cursor, budget, &mut report)
            .await
            .with_context(|| format!("reconcile of {pool} with {users_table} and {profiles_table} failed"))?;
        bar.set_position(cursor.counts.listed + cursor.counts.scanned);
        if end == SliceEnd::Finished {
            break;
        }
    }
    bar.finish_and_clear();

    let counts = &cursor.counts;
    // Everything that differs, a federated user's attributes included: each gets a signal.
    let drift = counts.differing();
    let refused = counts.signals_refused;
    let outcome = match (drift, args.repair) {
        (0, _) => Outcome::Done,
        (_, false) => Outcome::OutOfSync,
        (_, true) if refused == 0 => Outcome::Done,
        (_, true) => Outcome::Incomplete,
    };
    let verdict = match (drift, args.repair) {
        (0, _) => "in sync: the tables equal the pool".to_owned(),
        (_, false) => "out of sync: run with --repair to send a refresh signal for each".to_owned(),
        (_, true) if refused == 0 => format!(
            "repaired: {} refresh signals enqueued; the tables equal the pool once the consumer has run",
            counts.signals_sent
        ),
        (_, true) => format!(
            "repair incomplete: {} of {drift} refresh signals enqueued (see above)",
            counts.signals_sent
        ),
    };
    let by_kind: serde_json::Map<String, serde_json::Value> = DriftKind::ALL
        .iter()
        .map(|kind| (kind.as_str().to_owned(), json!(counts.of(*kind))))
        .collect();
    let mut human = format!(
        "reconcile {pool} with {users_table} and {profiles_table}: {listed} users listed in {pages} pages, \
         {scanned} users items scanned; drift: {drift} ({kinds}){incomplete}\n{verdict}",
        listed = counts.listed,
        pages = counts.pages,
        scanned = counts.scanned,
        kinds = DriftKind::ALL
            .iter()
            .map(|kind| format!("{} {}", counts.of(*kind), kind.as_str()))
            .collect::<Vec<_>>()
            .join(", "),
        incomplete = if counts.deletions_complete {
            ""
        } else {
            "; more users were deleted without a signal than one run lists: run again after the repair"
        },
    );
    for kind in DriftKind::ALL {
        for sub in report.found.get(&kind).into_iter().flatten() {
            human.push_str(&format!("\n{}: {sub}", kind.as_str()));
        }
    }
    ctx.printer.report(
        &human,
        &json!({
            "command": "reconcile",
            "user_pool_id": pool,
            "users_table": users_table,
            "profiles_table": profiles_table,
            "pool_users": counts.listed,
            "pages": counts.pages,
            "table_items": counts.scanned,
            "drift": drift,
            "drift_by_kind": by_kind,
            "missing": report.subs(&[DriftKind::Missing, DriftKind::NoUsersItem, DriftKind::NoProfile]),
            "missing_user_item": report.subs(&[DriftKind::Missing, DriftKind::NoUsersItem]),
            "missing_profile": report.subs(&[DriftKind::Missing, DriftKind::NoProfile]),
            "stale": report.subs(&[DriftKind::Stale]),
            "enabled_differs": report.subs(&[DriftKind::EnabledDiffers]),
            "orphans": report.subs(&[DriftKind::Deleted]),
            "federated_attributes": report.subs(&[DriftKind::FederatedAttributes]),
            "deletions_complete": counts.deletions_complete,
            "in_sync": drift == 0,
            "enqueued": counts.signals_sent,
            "refused": refused,
        }),
    );
    Ok(outcome)
}
