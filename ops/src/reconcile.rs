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
    #[arg(long, value_name = "ID", value_parser = user_pool::parse_pool_id, required_unless_present = "start")]
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
    let drift = counts.drift();
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
            "deletions_complete": counts.deletions_complete,
            "in_sync": drift == 0,
            "enqueued": counts.signals_sent,
            "refused": refused,
        }),
    );
    Ok(outcome)
}
