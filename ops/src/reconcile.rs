//! `reconcile`: are all of the pool's confirmed users in the users table?
//!
//! Lists every user of the pool (one unfiltered listing serves both questions below), scans the
//! users table's keys, and reports:
//!
//! - **missing**: CONFIRMED users with no users item: confirmed before the trigger was attached,
//!   an `enqueue_failed` at confirmation, or a message still in the DLQ. `--repair` enqueues
//!   them as `backfill` would; a user whose message is merely still queued is then sent twice,
//!   which the consumer's create-only writes make harmless.
//! - **orphans**: items whose `sub` is no user of the pool (in any status). Deleting a user in
//!   Cognito does not delete their application data, by design, so these are reported for the
//!   operator to judge and never changed. They do not make the table "out of sync".
//!
//! The comparison is a plain function ([`compare`]); the rest is listing.

use std::collections::BTreeSet;

use anyhow::{Context, Result};
use aws_sdk_cognitoidentityprovider::types::{UserStatusType, UserType};
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::json;

use crate::users::{self, MAX_PAGE_SIZE, UserLister};
use crate::{Ctx, Outcome, aws, backfill, progress, queue};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The user pool to compare with the users table.
    #[arg(long, value_name = "ID", value_parser = users::parse_pool_id)]
    pub user_pool_id: String,
    /// Enqueue the missing users (as backfill does).
    #[arg(long)]
    pub repair: bool,
    /// At most this many ListUsers requests per second (retries included).
    #[arg(long, value_name = "R", default_value = "5", value_parser = users::parse_rate)]
    pub rate: f64,
}

/// The difference between the pool and the table, as sorted `sub`s.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Gap {
    pub missing: Vec<String>,
    pub orphans: Vec<String>,
}

/// `confirmed`: subs of CONFIRMED users; `in_pool`: subs of every user of the pool;
/// `in_table`: the users table's keys.
pub fn compare(confirmed: &BTreeSet<String>, in_pool: &BTreeSet<String>, in_table: &BTreeSet<String>) -> Gap {
    Gap {
        missing: confirmed.difference(in_table).cloned().collect(),
        orphans: in_table.difference(in_pool).cloned().collect(),
    }
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<Outcome> {
    let table = ctx.names.users_table().await?;
    // With --repair the queue is checked first: better to fail before the long listing.
    let queue_url = if args.repair {
        let url = ctx.names.queue_url().await?;
        queue::inspect(&ctx.sqs, &url).await?;
        Some(url)
    } else {
        None
    };
    users::describe_pool(&ctx.cognito, &args.user_pool_id).await?;

    let pool_users = list_pool(ctx, args).await?;
    let in_table = scan_keys(&ctx.dynamodb, &table).await?;
    let in_pool: BTreeSet<String> = pool_users
        .iter()
        .filter_map(|u| users::sub_of(u).map(str::to_lowercase))
        .collect();
    let confirmed_users: Vec<&UserType> = pool_users
        .iter()
        .filter(|u| u.user_status() == Some(&UserStatusType::Confirmed))
        .collect();
    let confirmed: BTreeSet<String> = confirmed_users
        .iter()
        .filter_map(|u| users::sub_of(u).map(str::to_lowercase))
        .collect();
    let gap = compare(&confirmed, &in_pool, &in_table);

    let mut repaired = None;
    if let (Some(url), false) = (&queue_url, gap.missing.is_empty()) {
        let missing: BTreeSet<&str> = gap.missing.iter().map(String::as_str).collect();
        let to_send: Vec<UserType> = confirmed_users
            .iter()
            .filter(|u| users::sub_of(u).is_some_and(|s| missing.contains(s.to_lowercase().as_str())))
            .map(|u| (*u).clone())
            .collect();
        let done = backfill::enqueue(&ctx.sqs, url, &args.user_pool_id, &to_send).await;
        for (sub, why) in done.unusable.iter().chain(&done.refused) {
            eprintln!("not enqueued: user {sub}: {why}");
        }
        repaired = Some(done);
    }

    let outcome = match &repaired {
        _ if gap.missing.is_empty() => Outcome::Done,
        None => Outcome::OutOfSync,
        Some(done) if done.unusable.is_empty() && done.refused.is_empty() => Outcome::Done,
        Some(_) => Outcome::Incomplete,
    };
    let enqueued = repaired.as_ref().map_or(0, |d| d.enqueued);
    let verdict = match (outcome, &repaired) {
        (Outcome::Done, None) => "in sync: every confirmed user has a users item".to_owned(),
        (Outcome::Done, Some(_)) => {
            format!("repaired: {enqueued} missing users enqueued; they are in sync once the consumer has run")
        }
        (Outcome::OutOfSync, _) => "out of sync: run with --repair to enqueue the missing users".to_owned(),
        _ => format!(
            "repair incomplete: {enqueued} of {} enqueued (see above)",
            gap.missing.len()
        ),
    };
    let mut human = format!(
        "reconcile {pool} with {table}: {confirmed} confirmed users, {items} table items, \
         {missing} missing, {orphans} orphans\n{verdict}",
        pool = args.user_pool_id,
        confirmed = confirmed.len(),
        items = in_table.len(),
        missing = gap.missing.len(),
        orphans = gap.orphans.len(),
    );
    for sub in &gap.missing {
        human.push_str(&format!("\nmissing: {sub}"));
    }
    for sub in &gap.orphans {
        human.push_str(&format!("\norphan (not changed): {sub}"));
    }
    ctx.printer.report(
        &human,
        &json!({
            "command": "reconcile",
            "user_pool_id": args.user_pool_id,
            "users_table": table,
            "confirmed_users": confirmed.len(),
            "table_items": in_table.len(),
            "missing": gap.missing,
            "orphans": gap.orphans,
            "in_sync": gap.missing.is_empty(),
            "enqueued": enqueued,
        }),
    );
    Ok(outcome)
}

async fn list_pool(ctx: &Ctx, args: &Args) -> Result<Vec<UserType>> {
    let lister = UserLister::new(&ctx.cognito, &args.user_pool_id, None, MAX_PAGE_SIZE, args.rate);
    let bar = progress::spinner("reconcile: users listed");
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = lister.page(token.as_deref()).await?;
        bar.inc(page.users.len() as u64);
        all.extend(page.users);
        match page.next_token {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    bar.finish_and_clear();
    Ok(all)
}

/// Every `user_id` in the table: a paginated, strongly consistent scan of the key only.
async fn scan_keys(dynamodb: &aws_sdk_dynamodb::Client, table: &str) -> Result<BTreeSet<String>> {
    let bar = progress::spinner("reconcile: table items scanned");
    let mut keys = BTreeSet::new();
    let mut start = None;
    loop {
        let page = dynamodb
            .scan()
            .table_name(table)
            .projection_expression("user_id")
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|err| anyhow::anyhow!(aws::detail(&err)))
            .with_context(|| format!("cannot scan users table {table}"))?;
        for item in page.items() {
            if let Some(AttributeValue::S(id)) = item.get("user_id") {
                keys.insert(id.to_lowercase());
            }
        }
        bar.inc(page.items().len() as u64);
        match page.last_evaluated_key() {
            Some(key) if !key.is_empty() => start = Some(key.clone()),
            _ => break,
        }
    }
    bar.finish_and_clear();
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn missing_are_confirmed_users_without_an_item_and_orphans_items_without_a_user() {
        let confirmed = set(&["a", "b", "c"]);
        // "d" is in the pool but not confirmed (e.g. RESET_REQUIRED): its item is no orphan.
        let in_pool = set(&["a", "b", "c", "d", "e"]);
        let in_table = set(&["a", "d", "z"]);
        assert_eq!(
            compare(&confirmed, &in_pool, &in_table),
            Gap {
                missing: vec!["b".into(), "c".into()],
                orphans: vec!["z".into()],
            }
        );
    }

    #[test]
    fn identical_sets_are_in_sync() {
        let all = set(&["a", "b"]);
        assert_eq!(compare(&all, &all, &all), Gap::default());
    }
}
