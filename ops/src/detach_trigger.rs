//! `detach-trigger`: remove this deployment's Post Confirmation trigger from a pool, and change
//! nothing else.
//!
//! Run it before deleting the stack, or after: a user pool outlives a stack that was only given
//! its id (`ExistingUserPoolId`), and a pool whose Post Confirmation names a deleted function
//! fails every confirmation. The request is built as `attach-trigger` builds its own (every
//! setting carried over, see `attach_trigger.rs`), with `LambdaConfig.PostConfirmation` removed,
//! and only when it names this deployment's trigger: another function's trigger is not ours to
//! remove.
//!
//! Lambda is never called, so that it works once the function is gone: `--function-arn` names it
//! then (the stack that would name it is gone too). For the same reason there is no check that
//! the pool is the one the deployment serves, and none is needed: that check keeps
//! `attach-trigger` from making a pool fail, while removing our trigger from a pool that names
//! it can only stop failures (a pool our deployment does not serve already fails every
//! confirmation through it). The one guard that matters is that the trigger is exactly ours.
//!
//! The Lambda permission `attach-trigger` added is left on the function: it lets only this pool
//! invoke it, goes with the function when the stack is deleted, and lets a later attach reuse it.

use anyhow::{Result, bail};
use serde_json::json;
use shared::timestamp::format_rfc3339;
use time::OffsetDateTime;

use crate::attach_trigger::pool_update::{
    POST_CONFIRMATION, apply_hint, changes_json, check_expected_modification, checked_changes, detach,
    last_modified, post_confirmation, update_unless_changed,
};
use crate::attach_trigger::{self};
use crate::{Ctx, Outcome, user_pool};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The user pool to remove the trigger from.
    #[arg(long, value_name = "ID", value_parser = user_pool::parse_pool_id)]
    pub user_pool_id: String,
    /// This deployment's trigger function (default: the stack's TriggerFunctionArn output; once
    /// the stack is deleted, give it here).
    #[arg(long, value_name = "ARN")]
    pub function_arn: Option<String>,
    /// Print what would change, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Refuse unless the pool's LastModifiedDate is this time (RFC 3339), the
    /// `pool_last_modified` a `--dry-run` printed: apply only what was reviewed.
    #[arg(long, value_name = "TIME", value_parser = attach_trigger::parse_time)]
    pub expect_last_modified: Option<OffsetDateTime>,
}

/// What `detach-trigger` does with the pool's Post Confirmation trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detachment {
    /// None is set: nothing to do.
    NotSet,
    /// It is this deployment's trigger: remove it.
    Remove,
}

/// Removes only this deployment's trigger: another function's is someone else's to remove.
pub fn plan_detach(pool_id: &str, current: Option<&str>, function_arn: &str) -> Result<Detachment, String> {
    match current {
        None => Ok(Detachment::NotSet),
        Some(current) if current == function_arn => Ok(Detachment::Remove),
        Some(current) => Err(format!(
            "user pool {pool_id}'s Post Confirmation trigger is another function, {current}, not \
             {function_arn}: it is not this deployment's to remove. Nothing was changed (if it is this \
             deployment's under another name, pass that ARN as --function-arn)"
        )),
    }
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<Outcome> {
    let pool_id = args.user_pool_id.as_str();
    let function_arn = match ctx.names.trigger_function_arn(args.function_arn.as_deref()).await {
        Ok(arn) => arn,
        // Typically after the stack was deleted: say what the pool names, so that the operator
        // can tell whether it is the deleted trigger (an ARN is not personal data).
        Err(err) => {
            let named = user_pool::describe_pool(&ctx.cognito, pool_id)
                .await
                .ok()
                .and_then(|pool| post_confirmation(&pool).map(str::to_owned));
            return Err(match named {
                Some(arn) => anyhow::Error::new(err).context(format!(
                    "cannot tell which function is this deployment's trigger (user pool {pool_id}'s Post \
                     Confirmation is {arn}; if that is it, pass --function-arn {arn})"
                )),
                None => anyhow::Error::new(err),
            });
        }
    };
    let pool = user_pool::describe_pool(&ctx.cognito, pool_id).await?;
    let read = last_modified(&pool);
    if let Some(expected) = args.expect_last_modified {
        check_expected_modification(pool_id, expected, read).map_err(anyhow::Error::msg)?;
    }
    let detachment =
        plan_detach(pool_id, post_confirmation(&pool), &function_arn).map_err(anyhow::Error::msg)?;

    let mut changes = Vec::new();
    if detachment == Detachment::Remove {
        let update = detach(&pool);
        changes = checked_changes(pool_id, &pool, &update)?;
        if !args.dry_run {
            let after = update_unless_changed(ctx, pool_id, read, update).await?;
            if let Some(left) = post_confirmation(&after) {
                bail!("UpdateUserPool succeeded but the pool's Post Confirmation trigger is still {left}");
            }
        }
    }

    let mut human = format!(
        "detach-trigger {pool_id}{dry}",
        dry = if args.dry_run {
            " (dry run: nothing changed)"
        } else {
            ""
        },
    );
    if detachment == Detachment::NotSet {
        human.push_str(&format!("\n  {POST_CONFIRMATION} is not set: pool not updated"));
    }
    for change in &changes {
        human.push_str(&format!("\n  {}: {} -> {}", change.field, change.old, change.new));
    }
    if args.dry_run && detachment == Detachment::Remove {
        human.push_str(&apply_hint(read));
    }
    ctx.printer.report(
        &human,
        &json!({
            "command": "detach-trigger",
            "user_pool_id": pool_id,
            "function_arn": function_arn,
            "dry_run": args.dry_run,
            "changes": changes_json(&changes),
            "pool_last_modified": read.map(format_rfc3339),
        }),
    );
    Ok(Outcome::Done)
}
