//! `reconcile`: is every user who must be synced in **both** tables?
//!
//! Lists every user of the pool once, scans the keys of the users table and of the profiles
//! table, and reports:
//!
//! - **missing**, per table: users the selection ([`user_pool::must_be_synced`]: confirmed at least
//!   once) says must be synced and who have no users item, or no profile item (the profile's key
//!   is derived from the pool and the `sub`, so "has a profile" is a key lookup). Causes:
//!   confirmed before the trigger was attached, an `enqueue_failed` at confirmation, a message
//!   still in the DLQ, or half-synced (one put succeeded, the message then expired or was
//!   purged from the DLQ). `--repair` enqueues each such user once, as `backfill` would; the
//!   create-only writes complete the missing half and leave the other as it is. A user whose
//!   message is merely still queued is then sent twice, which is harmless.
//! - **orphans**: users items whose `sub` is no user of the pool (in any status) and that are not
//!   tombstones: a user deleted without a signal reaching the consumer (a tombstone is a deleted
//!   user as it should be, and is not listed). Reported for the operator to judge and never
//!   changed here; a refresh of each makes it a tombstone. They do not make the tables "out of
//!   sync".
//!
//! The comparison is a plain function ([`compare`]); the rest is listing.

use std::collections::BTreeSet;

use anyhow::{Context, Result};
use aws_sdk_cognitoidentityprovider::types::UserType;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::json;
use shared::ProfileId;
use shared::mapping::{PROFILES_KEY, USERS_KEY};

use crate::user_pool::{self, MAX_PAGE_SIZE, USER_LIST_DEFAULT_QUOTA, UserLister};
use crate::{Ctx, Outcome, aws, backfill, progress, queue};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The user pool to compare with the users and profiles tables.
    #[arg(long, value_name = "ID", value_parser = user_pool::parse_pool_id)]
    pub user_pool_id: String,
    /// Enqueue the missing users (as backfill does).
    #[arg(long)]
    pub repair: bool,
    /// At most this many ListUsers requests per second (retries included); at most
    /// --user-list-quota.
    #[arg(long, value_name = "R", default_value = "5", value_parser = user_pool::parse_rate)]
    pub rate: f64,
    /// The account's Cognito UserList request-rate quota, if raised above the default 30.
    #[arg(long, value_name = "R", default_value_t = USER_LIST_DEFAULT_QUOTA, value_parser = user_pool::parse_rate)]
    pub user_list_quota: f64,
}

impl Args {
    /// What clap cannot check flag by flag.
    pub fn validate(&self) -> Result<(), String> {
        user_pool::check_rate(self.rate, self.user_list_quota)
    }
}

/// The difference between the pool and the tables, as sorted `sub`s.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Gap {
    /// Must be synced and have no users item.
    pub missing_user_item: Vec<String>,
    /// Must be synced and have no profile item.
    pub missing_profile: Vec<String>,
    /// Users items whose `sub` is no user of the pool.
    pub orphans: Vec<String>,
}

impl Gap {
    /// Everyone missing from either table, once each, sorted.
    pub fn missing(&self) -> Vec<String> {
        let all: BTreeSet<&String> = self
            .missing_user_item
            .iter()
            .chain(&self.missing_profile)
            .collect();
        all.into_iter().cloned().collect()
    }
}

/// What is in the tables: the users table's keys, those of them that are tombstones, the profiles
/// table's keys.
#[derive(Debug, Default)]
pub struct Stored {
    pub users: BTreeSet<String>,
    pub tombstones: BTreeSet<String>,
    pub profiles: BTreeSet<String>,
}

/// `must_sync`: subs the selection says must be synced; `in_pool`: subs of every user of the
/// pool; `stored`: the tables' keys. Profiles are looked up by the key derived from `pool_id`.
pub fn compare(
    pool_id: &str,
    must_sync: &BTreeSet<String>,
    in_pool: &BTreeSet<String>,
    stored: &Stored,
) -> Gap {
    Gap {
        missing_user_item: must_sync.difference(&stored.users).cloned().collect(),
        missing_profile: must_sync
            .iter()
            .filter(|sub| {
                !stored
                    .profiles
                    .contains(&ProfileId::derive(pool_id, sub).to_string())
            })
            .cloned()
            .collect(),
        orphans: stored
            .users
            .difference(in_pool)
            .filter(|sub| !stored.tombstones.contains(*sub))
            .cloned()
            .collect(),
    }
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<Outcome> {
    let users_table = ctx.names.users_table().await?;
    let profiles_table = ctx.names.profiles_table().await?;
    // With --repair the queue is checked first: better to fail before the long listing.
    let queue_url = if args.repair {
        let url = ctx.names.queue_url().await?;
        queue::inspect(&ctx.sqs, &url).await?;
        Some(url)
    } else {
        None
    };
    user_pool::describe_pool(&ctx.cognito, &args.user_pool_id).await?;

    let pool_users = list_pool(ctx, args).await?;
    let (users, tombstones) = scan_keys(&ctx.dynamodb, &users_table, USERS_KEY).await?;
    let (profiles, _) = scan_keys(&ctx.dynamodb, &profiles_table, PROFILES_KEY).await?;
    let stored = Stored {
        users,
        tombstones,
        profiles,
    };
    let in_pool: BTreeSet<String> = pool_users
        .iter()
        .filter_map(|u| user_pool::sub_of(u).map(str::to_lowercase))
        .collect();
    let to_sync: Vec<&UserType> = pool_users
        .iter()
        .filter(|u| user_pool::must_be_synced(u.user_status()))
        .collect();
    let must_sync: BTreeSet<String> = to_sync
        .iter()
        .filter_map(|u| user_pool::sub_of(u).map(str::to_lowercase))
        .collect();
    let gap = compare(&args.user_pool_id, &must_sync, &in_pool, &stored);
    let missing = gap.missing();

    let mut repaired = None;
    if let (Some(url), false) = (&queue_url, missing.is_empty()) {
        let wanted: BTreeSet<&str> = missing.iter().map(String::as_str).collect();
        let to_send: Vec<UserType> = to_sync
            .iter()
            .filter(|u| user_pool::sub_of(u).is_some_and(|s| wanted.contains(s.to_lowercase().as_str())))
            .map(|u| (*u).clone())
            .collect();
        let done = backfill::enqueue(&ctx.sqs, url, &args.user_pool_id, &to_send).await;
        for (sub, why) in done.unusable.iter().chain(&done.refused) {
            eprintln!("not enqueued: user {sub}: {why}");
        }
        repaired = Some(done);
    }

    let outcome = match &repaired {
        _ if missing.is_empty() => Outcome::Done,
        None => Outcome::OutOfSync,
        Some(done) if done.unusable.is_empty() && done.refused.is_empty() => Outcome::Done,
        Some(_) => Outcome::Incomplete,
    };
    let enqueued = repaired.as_ref().map_or(0, |d| d.enqueued);
    let verdict = match (outcome, &repaired) {
        (Outcome::Done, None) => {
            "in sync: every user confirmed at least once has a users item and a profile".to_owned()
        }
        (Outcome::Done, Some(_)) => {
            format!("repaired: {enqueued} missing users enqueued; they are in sync once the consumer has run")
        }
        (Outcome::OutOfSync, _) => "out of sync: run with --repair to enqueue the missing users".to_owned(),
        _ => format!(
            "repair incomplete: {enqueued} of {} enqueued (see above)",
            missing.len()
        ),
    };
    let mut human = format!(
        "reconcile {pool} with {users_table} and {profiles_table}: {listed} users, {selected} confirmed \
         at least once, {user_items} users items, {profile_items} profiles; missing: {no_user} users \
         items, {no_profile} profiles ({missing_n} users); {orphans} orphans\n{verdict}",
        pool = args.user_pool_id,
        listed = pool_users.len(),
        selected = must_sync.len(),
        user_items = stored.users.len(),
        profile_items = stored.profiles.len(),
        no_user = gap.missing_user_item.len(),
        no_profile = gap.missing_profile.len(),
        missing_n = missing.len(),
        orphans = gap.orphans.len(),
    );
    for sub in &gap.missing_user_item {
        human.push_str(&format!("\nmissing users item: {sub}"));
    }
    for sub in &gap.missing_profile {
        human.push_str(&format!("\nmissing profile: {sub}"));
    }
    for sub in &gap.orphans {
        human.push_str(&format!("\norphan (not changed): {sub}"));
    }
    ctx.printer.report(
        &human,
        &json!({
            "command": "reconcile",
            "user_pool_id": args.user_pool_id,
            "users_table": users_table,
            "profiles_table": profiles_table,
            "pool_users": pool_users.len(),
            "confirmed_users": must_sync.len(),
            "table_items": stored.users.len(),
            "profile_items": stored.profiles.len(),
            "missing": missing,
            "missing_user_item": gap.missing_user_item,
            "missing_profile": gap.missing_profile,
            "orphans": gap.orphans,
            "in_sync": missing.is_empty(),
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

/// Every value of the key `key` in the table, and those of items that are tombstones: a
/// paginated, strongly consistent scan of the key and `deleted_at` only.
async fn scan_keys(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    key: &str,
) -> Result<(BTreeSet<String>, BTreeSet<String>)> {
    let bar = progress::spinner(&format!("reconcile: {table} items scanned"));
    let mut keys = BTreeSet::new();
    let mut tombstones = BTreeSet::new();
    let mut start = None;
    loop {
        let page = dynamodb
            .scan()
            .table_name(table)
            .projection_expression("#key, #deleted")
            .expression_attribute_names("#key", key)
            .expression_attribute_names("#deleted", shared::lifecycle::DELETED_AT)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|err| anyhow::anyhow!(aws::detail(&err)))
            .with_context(|| format!("cannot scan table {table}"))?;
        for item in page.items() {
            if let Some(AttributeValue::S(id)) = item.get(key) {
                keys.insert(id.to_lowercase());
                if item.contains_key(shared::lifecycle::DELETED_AT) {
                    tombstones.insert(id.to_lowercase());
                }
            }
        }
        bar.inc(page.items().len() as u64);
        match page.last_evaluated_key() {
            Some(last) if !last.is_empty() => start = Some(last.clone()),
            _ => break,
        }
    }
    bar.finish_and_clear();
    Ok((keys, tombstones))
}

#[cfg(test)]
mod tests {
    use super::*;

    const POOL: &str = "us-east-1_AbCdEf123";

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn profiles(subs: &[&str]) -> BTreeSet<String> {
        subs.iter()
            .map(|s| ProfileId::derive(POOL, s).to_string())
            .collect()
    }

    #[test]
    fn missing_is_per_table_and_orphans_are_items_without_a_user() {
        let must_sync = set(&["a", "b", "c", "h"]);
        // "d" is in the pool but never confirmed: its item is no orphan, and it is not missing.
        let in_pool = set(&["a", "b", "c", "d", "e", "h"]);
        let stored = Stored {
            users: set(&["a", "d", "h", "t", "z"]),
            // "t" is a tombstone: a deleted user as they should be, no orphan.
            tombstones: set(&["t"]),
            // "h" is half-synced: a users item and no profile.
            profiles: profiles(&["a", "c", "d"]),
        };
        let gap = compare(POOL, &must_sync, &in_pool, &stored);
        assert_eq!(
            gap,
            Gap {
                missing_user_item: vec!["b".into(), "c".into()],
                missing_profile: vec!["b".into(), "h".into()],
                orphans: vec!["z".into()],
            }
        );
        assert_eq!(gap.missing(), ["b", "c", "h"]);
    }

    #[test]
    fn a_profile_of_another_pools_derivation_does_not_count() {
        let must_sync = set(&["a"]);
        let stored = Stored {
            users: set(&["a"]),
            profiles: [ProfileId::derive("eu-west-1_Other1", "a").to_string()].into(),
            ..Stored::default()
        };
        assert_eq!(
            compare(POOL, &must_sync, &must_sync, &stored).missing_profile,
            ["a"]
        );
    }

    #[test]
    fn both_tables_complete_is_in_sync() {
        let all = set(&["a", "b"]);
        let stored = Stored {
            users: all.clone(),
            profiles: profiles(&["a", "b"]),
            ..Stored::default()
        };
        assert_eq!(compare(POOL, &all, &all, &stored), Gap::default());
    }
}
