//! `attach-trigger`: set a pool's Post Confirmation trigger, and change nothing else.
//!
//! Three parts, each its own module: the pool-update request that changes that one trigger and
//! the checks around sending it ([`pool_update`]), the Lambda permission that lets Cognito invoke
//! the trigger, added *before* the pool is updated ([`permission`]), and what the operator is
//! told ([`report`]). This module decides whether to go ahead and runs them in that order.
//!
//! Before anything is changed, three refusals (each exits 1 and changes nothing):
//! - the pool's Post Confirmation is already *another* function: attaching would silently stop
//!   it from running, so that takes `--replace`, and the report names what was replaced
//!   ([`plan_attach`]);
//! - the pool is not the one this deployment serves (the stack's `UserPoolId` output, or the
//!   function's own `USER_POOL_ID`): the trigger and the consumer refuse every other pool's
//!   confirmations, so attaching there would fail every confirmation ([`check_served_pool`]);
//! - the pool changed since it was read: `UpdateUserPool` sends back every setting as it was
//!   read, so a change made in between would be reverted. The pool is read again just before
//!   the update and its `LastModifiedDate` compared; `--expect-last-modified` compares it with
//!   the one a `--dry-run` printed, so that what is applied is what was reviewed
//!   ([`pool_update::same_modification`] serves both).
//!
//! `detach-trigger` (`detach_trigger.rs`) is the reverse, built from the same pool update.

pub mod permission;
pub mod pool_update;
pub mod report;
#[cfg(test)]
mod tests;

use anyhow::{Context, Result, bail};
use shared::timestamp::parse_rfc3339;
use time::OffsetDateTime;

use crate::user_pool;
use crate::{Ctx, Outcome, aws};
use permission::{Grant, Permission};
use pool_update::{attach, checked_changes, last_modified, post_confirmation, update_unless_changed};
use report::AttachReport;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The user pool to attach the trigger to.
    #[arg(long, value_name = "ID", value_parser = user_pool::parse_pool_id)]
    pub user_pool_id: String,
    /// The trigger function (default: the stack's TriggerFunctionArn output).
    #[arg(long, value_name = "ARN")]
    pub function_arn: Option<String>,
    /// Print what would change, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Replace the pool's Post Confirmation trigger when it is another function (refused
    /// without this: that function would stop running). The report names the one replaced.
    #[arg(long)]
    pub replace: bool,
    /// Refuse unless the pool's LastModifiedDate is this time (RFC 3339), the
    /// `pool_last_modified` a `--dry-run` printed: apply only what was reviewed.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub expect_last_modified: Option<OffsetDateTime>,
}

/// `--expect-last-modified`: an RFC 3339 time, any offset.
pub fn parse_time(text: &str) -> Result<OffsetDateTime, String> {
    parse_rfc3339(text).ok_or_else(|| {
        "not an RFC 3339 time (e.g. 2026-11-23T18:08:47.123Z, as --dry-run prints it)".to_owned()
    })
}

/// What attaching does to the pool's Post Confirmation trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attachment {
    /// It is already this function: the pool is not updated.
    Already,
    /// None was set.
    New,
    /// Another function was set and `--replace` was given: it stops running.
    Replace { previous: String },
}

/// Refuses to replace another function's trigger unless `replace` (`--replace`) says so.
pub fn plan_attach(
    pool_id: &str,
    current: Option<&str>,
    function_arn: &str,
    replace: bool,
) -> Result<Attachment, String> {
    match current {
        None => Ok(Attachment::New),
        Some(current) if current == function_arn => Ok(Attachment::Already),
        Some(current) if replace => Ok(Attachment::Replace {
            previous: current.to_owned(),
        }),
        Some(current) => Err(format!(
            "user pool {pool_id} already has another Post Confirmation trigger, {current}: attaching \
             {function_arn} would stop it from running. Nothing was changed; if that function is to be \
             replaced, run again with --replace"
        )),
    }
}

/// Checks that `pool_id` is the pool the trigger serves, by what tells: `stack`, the stack's
/// `UserPoolId` output (or why it could not be read), and `function`, the function's own
/// `USER_POOL_ID` (`None` when it is empty: a stack that created its pool cannot set it).
///
/// Every source that tells must name `pool_id`; when none tells, the answer is no. Attaching to
/// another pool would fail every confirmation there (the trigger refuses events of other pools
/// when it knows its own, and the consumer always refuses their messages).
pub fn check_served_pool(
    pool_id: &str,
    function_arn: &str,
    stack_name: &str,
    stack: Result<&str, &str>,
    function: Option<&str>,
) -> Result<(), String> {
    let consequence = "the trigger and the consumer refuse confirmations of any other pool, so \
                       attaching the trigger there would fail every confirmation. Nothing was changed";
    if let Ok(served) = stack
        && served != pool_id
    {
        return Err(format!(
            "user pool {pool_id} is not the pool stack `{stack_name}` serves ({served}, its UserPoolId \
             output): {consequence}. To sync {pool_id}, deploy a stack with ExistingUserPoolId={pool_id} \
             and pass its --stack-name"
        ));
    }
    if let Some(served) = function
        && served != pool_id
    {
        return Err(format!(
            "user pool {pool_id} is not the pool function {function_arn} serves ({served}, its \
             USER_POOL_ID): {consequence}"
        ));
    }
    match stack {
        Ok(_) => Ok(()),
        Err(_) if function.is_some() => Ok(()),
        Err(why) => Err(format!(
            "cannot tell which user pool function {function_arn} serves: {why}; and its USER_POOL_ID \
             is empty (as when its stack created the pool). Nothing was changed; pass --stack-name of \
             the stack that deployed it, whose UserPoolId output says"
        )),
    }
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<Outcome> {
    let pool_id = args.user_pool_id.as_str();
    let function_arn = ctx
        .names
        .trigger_function_arn(args.function_arn.as_deref())
        .await?;
    let pool = user_pool::describe_pool(&ctx.cognito, pool_id).await?;
    let read = last_modified(&pool);
    if let Some(expected) = args.expect_last_modified {
        pool_update::check_expected_modification(pool_id, expected, read).map_err(anyhow::Error::msg)?;
    }

    // Which pool the deployment serves: the stack's output when it can be read (with
    // --function-arn it may not be); the function's own environment in any case.
    let function_pool = function_user_pool_id(ctx, &function_arn).await?;
    let stack_pool = ctx.names.served_user_pool_id().await.map_err(|e| e.to_string());
    check_served_pool(
        pool_id,
        &function_arn,
        ctx.names.stack_name(),
        stack_pool.as_deref().map_err(String::as_str),
        function_pool.as_deref(),
    )
    .map_err(anyhow::Error::msg)?;
    let attachment = plan_attach(pool_id, post_confirmation(&pool), &function_arn, args.replace)
        .map_err(anyhow::Error::msg)?;

    let grant = pool
        .arn
        .as_deref()
        .and_then(Grant::for_pool)
        .with_context(|| format!("DescribeUserPool gave no usable ARN for {pool_id}"))?;
    let statements = permission::policy_statements(ctx, &function_arn).await?;
    let permission = permission::plan_permission(&statements, &grant, pool_id).map_err(anyhow::Error::msg)?;

    let update = attach(&pool, &function_arn);
    let changes = checked_changes(pool_id, &pool, &update)?;

    if !args.dry_run {
        if let Permission::Add { statement_id } = &permission {
            permission::add_permission(ctx, &function_arn, statement_id, &grant).await?;
        }
        if !changes.is_empty() {
            // The permission first, then the pool re-read just before the update: the
            // smallest window for a change to slip in between read and write.
            let after = update_unless_changed(ctx, pool_id, read, update)
                .await
                .map_err(|err| match &permission {
                    Permission::Add { statement_id } => anyhow::anyhow!(
                        "{err:#} (the invoke permission, statement {statement_id}, was added and stays: it \
                         lets only this pool invoke the trigger, and a rerun finds it)"
                    ),
                    Permission::Present { .. } => err,
                })?;
            let attached = post_confirmation(&after);
            if attached != Some(function_arn.as_str()) {
                bail!("UpdateUserPool succeeded but the pool's Post Confirmation trigger is {attached:?}");
            }
        }
    }

    let report = AttachReport {
        pool_id,
        function_arn: &function_arn,
        dry_run: args.dry_run,
        attachment: &attachment,
        changes: &changes,
        permission: &permission,
        grant: &grant,
        read,
    };
    let (human, json) = report.render();
    ctx.printer.report(&human, &json);
    Ok(Outcome::Done)
}

/// The pool the function serves by its own environment (`USER_POOL_ID`; `None` when unset or
/// empty). Fails, naming it, when the function does not exist.
async fn function_user_pool_id(ctx: &Ctx, function_arn: &str) -> Result<Option<String>> {
    let config = ctx
        .lambda
        .get_function_configuration()
        .function_name(function_arn)
        .send()
        .await
        .map_err(|err| {
            if err
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception())
            {
                anyhow::anyhow!("function {function_arn} does not exist in this account and region")
            } else {
                anyhow::anyhow!(
                    "GetFunctionConfiguration on {function_arn} failed: {}",
                    aws::detail(&err)
                )
            }
        })?;
    Ok(config
        .environment()
        .and_then(|e| e.variables())
        .and_then(|v| v.get("USER_POOL_ID"))
        .filter(|id| !id.is_empty())
        .cloned())
}
