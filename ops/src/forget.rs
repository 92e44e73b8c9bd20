//! `ops forget`: the application's erasure of one user (a data-subject request).
//!
//! The users item becomes a tombstone (no personal attribute left, the key and `profile_id`
//! kept) and the profile is replaced by a profile tombstone (its key and `user_deleted_at`),
//! whatever the pool says. Nothing re-creates them afterwards:
//! not a late confirmation, a redelivery, a redrive, a backfill nor a refresh. (Deleting the two
//! items by hand is not an erasure: the next late message writes them again.) Cognito is not
//! changed; delete the user there as well, before or after.
//!
//! The write is the consumer's: [`shared::lifecycle::forget`] decides, and the users item is
//! replaced only if it still holds what was read.

use anyhow::{Result, bail};
use serde_json::json;
use shared::ProfileId;
use shared::lifecycle::{self, ProfileWrite, StoredUser, UsersWrite};
use shared::mapping::ItemValue;
use tables::{Conditional, Store};
use time::OffsetDateTime;

use crate::{Ctx, Outcome, user_pool};

/// Rounds of read, decide and write before giving up on an item that keeps changing.
const MAX_ROUNDS: u32 = 5;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The user's sub (their users item's key).
    #[arg(long, value_name = "SUB", value_parser = user_pool::parse_sub)]
    pub sub: String,
    /// The user pool the user belongs to; default: the pool the stack serves (its UserPoolId
    /// output).
    #[arg(long, value_name = "ID", value_parser = user_pool::parse_pool_id)]
    pub user_pool_id: Option<String>,
    /// Say what would be written, and write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// What forgetting did (or would do), for the report.
#[derive(Debug, PartialEq, Eq)]
pub struct Forgotten {
    pub users_item: &'static str,
    pub profile: &'static str,
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<Outcome> {
    let pool = match &args.user_pool_id {
        Some(pool) => pool.clone(),
        None => ctx.names.served_user_pool_id().await?,
    };
    let store = Store::new(
        ctx.dynamodb.clone(),
        &ctx.names.users_table().await?,
        &ctx.names.profiles_table().await?,
    );
    let profile_id = ProfileId::derive(&pool, &args.sub).to_string();
    for _ in 0..MAX_ROUNDS {
        let stored = store.read_user(&args.sub).await?;
        check_pool(&stored, &pool, &args.sub)?;
        let profile = store.read_profile(&profile_id).await?;
        let decision = lifecycle::forget(&stored, profile, &pool, &args.sub, OffsetDateTime::now_utc());
        let forgotten = describe(&decision.users, &decision.profile);
        if !args.dry_run {
            if let UsersWrite::Put { item, expected } = &decision.users
                && store.put_user(item, *expected).await? == Conditional::Conflict
            {
                continue;
            }
            if let ProfileWrite::Erase { at } = &decision.profile {
                store.erase_profile(&profile_id, at).await?;
            }
        }
        report(ctx, &args.sub, &profile_id, &forgotten, args.dry_run);
        return Ok(Outcome::Done);
    }
    bail!(
        "the users item of {} changed under each of {MAX_ROUNDS} attempts (the consumer is writing it); \
         run the command again",
        args.sub
    )
}

/// An item of another pool is not this command's to forget: the operator named the wrong pool.
fn check_pool(stored: &StoredUser, pool: &str, sub: &str) -> Result<()> {
    let item = match stored {
        StoredUser::Absent => return Ok(()),
        StoredUser::Live(item) | StoredUser::Tombstone(item) => item,
    };
    match item.get("user_pool_id") {
        Some(ItemValue::S(stored_pool)) if stored_pool != pool => bail!(
            "the users item of {sub} belongs to user pool {stored_pool}, not {pool}; pass --user-pool-id {stored_pool}"
        ),
        _ => Ok(()),
    }
}

fn describe(users: &UsersWrite, profile: &ProfileWrite) -> Forgotten {
    Forgotten {
        users_item: match users {
            UsersWrite::Put { .. } => "tombstoned",
            UsersWrite::Nothing => "already a tombstone",
        },
        profile: match profile {
            ProfileWrite::Erase { .. } => "erased",
            _ => "already erased",
        },
    }
}

fn report(ctx: &Ctx, sub: &str, profile_id: &str, forgotten: &Forgotten, dry_run: bool) {
    let would = if dry_run {
        " (dry run: nothing written)"
    } else {
        ""
    };
    ctx.printer.report(
        &format!(
            "forgot {sub}{would}: users item {}, profile {profile_id} {}",
            forgotten.users_item, forgotten.profile
        ),
        &json!({
            "command": "forget",
            "sub": sub,
            "profile_id": profile_id,
            "users_item": forgotten.users_item,
            "profile": forgotten.profile,
            "dry_run": dry_run,
        }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::lifecycle::StoredItem;

    const SUB: &str = "0b5e4a3c-1f2d-4e6a-9b8c-7d6e5f4a3b2c";

    #[test]
    fn an_item_of_another_pool_is_refused_naming_its_pool() {
        let item: StoredItem = [("user_pool_id".to_owned(), ItemValue::S("eu-west-1_Other1".into()))].into();
        let err = check_pool(&StoredUser::Live(item), "us-east-1_Mine1", SUB).unwrap_err();
        assert!(
            err.to_string().contains("--user-pool-id eu-west-1_Other1"),
            "{err}"
        );
        assert!(check_pool(&StoredUser::Absent, "us-east-1_Mine1", SUB).is_ok());
    }
}
