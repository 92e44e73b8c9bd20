//! `attach-trigger`: set a pool's Post Confirmation trigger, and change nothing else.
//!
//! `UpdateUserPool` is not a patch: every setting the call does not repeat goes back to its
//! default (password policy, auto-verified attributes, MFA, email and SMS configuration, the
//! other triggers...). So the request is built from `DescribeUserPool` by [`carry_over`], which
//! copies every setting `UpdateUserPool` takes, and [`attach`] then changes
//! `LambdaConfig.PostConfirmation` alone. [`changes`] compares the request with the pool as
//! described: `--dry-run` prints it, and a request that would change anything else is refused.
//!
//! Cognito invokes the trigger only if the function's policy lets it, so the Lambda permission
//! (principal `cognito-idp.amazonaws.com`, restricted to this pool's ARN and account) is added
//! *before* the pool is updated: the other order leaves a window in which every confirmation
//! fails because Cognito may not invoke the new trigger. A statement that already grants exactly
//! that (ours, or the stack's own) is left as it is.
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
//!   ([`same_modification`] serves both).
//!
//! `detach-trigger` (`detach_trigger.rs`) is the reverse, built from the same pieces: [`detach`]
//! and [`plan_detach`].

use std::fmt::Debug;

use anyhow::{Context, Result, bail};
use aws_sdk_cognitoidentityprovider::operation::update_user_pool::UpdateUserPoolInput;
use aws_sdk_cognitoidentityprovider::operation::update_user_pool::builders::UpdateUserPoolInputBuilder;
use aws_sdk_cognitoidentityprovider::types::{LambdaConfigType, UserPoolType};
use serde_json::{Value, json};
use shared::timestamp::{format_rfc3339, parse_rfc3339};
use time::OffsetDateTime;

use crate::user_pool::{self, PoolError};
use crate::{Ctx, Outcome, aws};

const COGNITO_PRINCIPAL: &str = "cognito-idp.amazonaws.com";
pub const POST_CONFIRMATION: &str = "LambdaConfig.PostConfirmation";

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

/// An `UpdateUserPool` request that repeats every updatable setting of `pool` unchanged.
///
/// One line per field of `UpdateUserPoolInput`; a unit test fails when the SDK grows a field
/// this function does not set. Fields are cloned whole, so a setting the SDK adds inside one of
/// these types (a new trigger in `LambdaConfigType`, say) is carried over too.
pub fn carry_over(pool: &UserPoolType) -> UpdateUserPoolInputBuilder {
    UpdateUserPoolInput::builder()
        .set_user_pool_id(pool.id.clone())
        .set_pool_name(pool.name.clone())
        .set_policies(pool.policies.clone())
        .set_deletion_protection(pool.deletion_protection.clone())
        .set_lambda_config(pool.lambda_config.clone())
        .set_auto_verified_attributes(pool.auto_verified_attributes.clone())
        .set_sms_verification_message(pool.sms_verification_message.clone())
        .set_email_verification_message(pool.email_verification_message.clone())
        .set_email_verification_subject(pool.email_verification_subject.clone())
        .set_verification_message_template(pool.verification_message_template.clone())
        .set_sms_authentication_message(pool.sms_authentication_message.clone())
        .set_user_attribute_update_settings(pool.user_attribute_update_settings.clone())
        .set_mfa_configuration(pool.mfa_configuration.clone())
        .set_device_configuration(pool.device_configuration.clone())
        .set_email_configuration(pool.email_configuration.clone())
        .set_sms_configuration(pool.sms_configuration.clone())
        .set_user_pool_tags(pool.user_pool_tags.clone())
        .set_admin_create_user_config(admin_create_user_config(pool))
        .set_user_pool_add_ons(pool.user_pool_add_ons.clone())
        .set_account_recovery_setting(pool.account_recovery_setting.clone())
        .set_user_pool_tier(pool.user_pool_tier.clone())
        .set_key_configuration(pool.key_configuration.clone())
        .set_issuer_configuration(pool.issuer_configuration.clone())
        .set_acr_configuration(pool.acr_configuration.clone())
}

/// [`carry_over`] with `LambdaConfig.PostConfirmation` set to `function_arn`: the one change.
pub fn attach(pool: &UserPoolType, function_arn: &str) -> UpdateUserPoolInputBuilder {
    let mut lambda = pool
        .lambda_config
        .clone()
        .unwrap_or_else(|| LambdaConfigType::builder().build());
    lambda.post_confirmation = Some(function_arn.to_owned());
    carry_over(pool).lambda_config(lambda)
}

/// [`carry_over`] without `LambdaConfig.PostConfirmation`: the one change `detach-trigger` makes.
pub fn detach(pool: &UserPoolType) -> UpdateUserPoolInputBuilder {
    let mut lambda = pool
        .lambda_config
        .clone()
        .unwrap_or_else(|| LambdaConfigType::builder().build());
    lambda.post_confirmation = None;
    carry_over(pool).lambda_config(lambda)
}

/// `AdminCreateUserConfig` as it must be sent back. Its `UnusedAccountValidityDays` is the
/// deprecated twin of `PasswordPolicy.TemporaryPasswordValidityDays`: DescribeUserPool returns
/// both, but UpdateUserPool refuses a request with both ("Please use
/// TemporaryPasswordValidityDays in PasswordPolicy instead of UnusedAccountValidityDays"), and
/// this SDK always serialises the integer, so 0 ("not set") is sent when the policy has it.
fn admin_create_user_config(
    pool: &UserPoolType,
) -> Option<aws_sdk_cognitoidentityprovider::types::AdminCreateUserConfigType> {
    let mut config = pool.admin_create_user_config.clone()?;
    let policy_sets_it = pool
        .policies
        .as_ref()
        .and_then(|p| p.password_policy.as_ref())
        .is_some_and(|p| p.temporary_password_validity_days != 0);
    if policy_sets_it {
        config.unused_account_validity_days = 0;
    }
    Some(config)
}

/// One setting the request changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub field: String,
    pub old: String,
    pub new: String,
}

fn show<T: Debug>(value: Option<&T>) -> String {
    value.map_or_else(|| "(not set)".to_owned(), |v| format!("{v:?}"))
}

/// Each trigger of `LambdaConfigType`, for a per-trigger diff.
type TriggerField = (&'static str, fn(&LambdaConfigType) -> Option<String>);
const TRIGGERS: [TriggerField; 15] = [
    ("PreSignUp", |l| l.pre_sign_up.clone()),
    ("CustomMessage", |l| l.custom_message.clone()),
    ("PostConfirmation", |l| l.post_confirmation.clone()),
    ("PreAuthentication", |l| l.pre_authentication.clone()),
    ("PostAuthentication", |l| l.post_authentication.clone()),
    ("DefineAuthChallenge", |l| l.define_auth_challenge.clone()),
    ("CreateAuthChallenge", |l| l.create_auth_challenge.clone()),
    ("VerifyAuthChallengeResponse", |l| {
        l.verify_auth_challenge_response.clone()
    }),
    ("PreTokenGeneration", |l| l.pre_token_generation.clone()),
    ("UserMigration", |l| l.user_migration.clone()),
    ("PreTokenGenerationConfig", |l| {
        l.pre_token_generation_config.as_ref().map(|v| format!("{v:?}"))
    }),
    ("CustomSMSSender", |l| {
        l.custom_sms_sender.as_ref().map(|v| format!("{v:?}"))
    }),
    ("CustomEmailSender", |l| {
        l.custom_email_sender.as_ref().map(|v| format!("{v:?}"))
    }),
    ("KMSKeyID", |l| l.kms_key_id.clone()),
    ("InboundFederation", |l| {
        l.inbound_federation.as_ref().map(|v| format!("{v:?}"))
    }),
];

/// What `request` changes in `pool` as `DescribeUserPool` showed it, setting by setting (and
/// trigger by trigger). [`carry_over`]'s request changes nothing; [`attach`]'s changes exactly
/// `LambdaConfig.PostConfirmation`, unless it was already that function.
pub fn changes(pool: &UserPoolType, request: &UpdateUserPoolInput) -> Vec<Change> {
    let mut changes = Vec::new();
    let mut compare = |field: &str, old: String, new: String| {
        if old != new {
            changes.push(Change {
                field: field.to_owned(),
                old,
                new,
            });
        }
    };
    let p = pool;
    let r = request;
    compare("UserPoolId", show(p.id.as_ref()), show(r.user_pool_id.as_ref()));
    compare("PoolName", show(p.name.as_ref()), show(r.pool_name.as_ref()));
    compare("Policies", show(p.policies.as_ref()), show(r.policies.as_ref()));
    compare(
        "DeletionProtection",
        show(p.deletion_protection.as_ref()),
        show(r.deletion_protection.as_ref()),
    );
    compare(
        "AutoVerifiedAttributes",
        show(p.auto_verified_attributes.as_ref()),
        show(r.auto_verified_attributes.as_ref()),
    );
    compare(
        "SmsVerificationMessage",
        show(p.sms_verification_message.as_ref()),
        show(r.sms_verification_message.as_ref()),
    );
    compare(
        "EmailVerificationMessage",
        show(p.email_verification_message.as_ref()),
        show(r.email_verification_message.as_ref()),
    );
    compare(
        "EmailVerificationSubject",
        show(p.email_verification_subject.as_ref()),
        show(r.email_verification_subject.as_ref()),
    );
    compare(
        "VerificationMessageTemplate",
        show(p.verification_message_template.as_ref()),
        show(r.verification_message_template.as_ref()),
    );
    compare(
        "SmsAuthenticationMessage",
        show(p.sms_authentication_message.as_ref()),
        show(r.sms_authentication_message.as_ref()),
    );
    compare(
        "UserAttributeUpdateSettings",
        show(p.user_attribute_update_settings.as_ref()),
        show(r.user_attribute_update_settings.as_ref()),
    );
    compare(
        "MfaConfiguration",
        show(p.mfa_configuration.as_ref()),
        show(r.mfa_configuration.as_ref()),
    );
    compare(
        "DeviceConfiguration",
        show(p.device_configuration.as_ref()),
        show(r.device_configuration.as_ref()),
    );
    compare(
        "EmailConfiguration",
        show(p.email_configuration.as_ref()),
        show(r.email_configuration.as_ref()),
    );
    compare(
        "SmsConfiguration",
        show(p.sms_configuration.as_ref()),
        show(r.sms_configuration.as_ref()),
    );
    compare(
        "UserPoolTags",
        show(p.user_pool_tags.as_ref().map(sorted).as_ref()),
        show(r.user_pool_tags.as_ref().map(sorted).as_ref()),
    );
    // The deprecated twin is compared as it must be sent (see `admin_create_user_config`).
    compare(
        "AdminCreateUserConfig",
        show(admin_create_user_config(p).as_ref()),
        show(r.admin_create_user_config.as_ref()),
    );
    compare(
        "UserPoolAddOns",
        show(p.user_pool_add_ons.as_ref()),
        show(r.user_pool_add_ons.as_ref()),
    );
    compare(
        "AccountRecoverySetting",
        show(p.account_recovery_setting.as_ref()),
        show(r.account_recovery_setting.as_ref()),
    );
    compare(
        "UserPoolTier",
        show(p.user_pool_tier.as_ref()),
        show(r.user_pool_tier.as_ref()),
    );
    compare(
        "KeyConfiguration",
        show(p.key_configuration.as_ref()),
        show(r.key_configuration.as_ref()),
    );
    compare(
        "IssuerConfiguration",
        show(p.issuer_configuration.as_ref()),
        show(r.issuer_configuration.as_ref()),
    );
    compare(
        "AcrConfiguration",
        show(p.acr_configuration.as_ref().map(sorted).as_ref()),
        show(r.acr_configuration.as_ref().map(sorted).as_ref()),
    );

    // Trigger by trigger, so the one expected change reads as such.
    let empty = LambdaConfigType::builder().build();
    let old = p.lambda_config.as_ref().unwrap_or(&empty);
    let new = r.lambda_config.as_ref().unwrap_or(&empty);
    let mut trigger_changed = false;
    for (name, get) in TRIGGERS {
        let (before, after) = (get(old), get(new));
        if before != after {
            trigger_changed = true;
            compare(
                &format!("LambdaConfig.{name}"),
                show(before.as_ref()),
                show(after.as_ref()),
            );
        }
    }
    // A setting the SDK added to LambdaConfigType since TRIGGERS was written.
    if !trigger_changed && old != new {
        compare("LambdaConfig", format!("{old:?}"), format!("{new:?}"));
    }
    changes
}

fn sorted<V: Debug>(map: &std::collections::HashMap<String, V>) -> std::collections::BTreeMap<&String, &V> {
    map.iter().collect()
}

/// The statement id this tool gives the permission: one per pool, so a rerun finds it.
pub fn statement_id(pool_id: &str) -> String {
    format!("cognito-user-sync-{pool_id}")
}

/// Who may invoke the trigger: Cognito, for this pool of this account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub pool_arn: String,
    pub account: String,
}

impl Grant {
    /// From the pool's ARN (`arn:aws:cognito-idp:<region>:<account>:userpool/<id>`).
    pub fn for_pool(pool_arn: &str) -> Option<Self> {
        let account = pool_arn.split(':').nth(4).filter(|a| !a.is_empty())?;
        Some(Self {
            pool_arn: pool_arn.to_owned(),
            account: account.to_owned(),
        })
    }

    /// Whether a statement of the function's resource policy allows exactly this.
    pub fn is_granted_by(&self, statement: &Value) -> bool {
        let action = &statement["Action"];
        let action_ok = action == "lambda:InvokeFunction"
            || action
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == "lambda:InvokeFunction"));
        statement["Effect"] == "Allow"
            && action_ok
            && statement["Principal"]["Service"] == COGNITO_PRINCIPAL
            && statement["Condition"]["ArnLike"]["AWS:SourceArn"] == self.pool_arn.as_str()
            && statement["Condition"]["StringEquals"]["AWS:SourceAccount"] == self.account.as_str()
    }
}

/// What to do about the Lambda permission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Permission {
    /// A statement (this id or another) already grants it.
    Present { statement_id: String },
    /// No statement grants it; add ours.
    Add { statement_id: String },
}

/// Decides from the function's policy statements; refuses when our statement id is taken by a
/// statement that grants something else (removing it is the operator's call).
pub fn plan_permission(statements: &[Value], grant: &Grant, pool_id: &str) -> Result<Permission, String> {
    let ours = statement_id(pool_id);
    if let Some(existing) = statements.iter().find(|s| grant.is_granted_by(s)) {
        return Ok(Permission::Present {
            statement_id: existing["Sid"].as_str().unwrap_or_default().to_owned(),
        });
    }
    if statements.iter().any(|s| s["Sid"] == ours.as_str()) {
        return Err(format!(
            "the function's policy has a statement `{ours}` that does not grant what this tool \
             would: remove it (lambda remove-permission --statement-id {ours}) and run again"
        ));
    }
    Ok(Permission::Add { statement_id: ours })
}

/// The pool's current Post Confirmation trigger; an empty string is none.
pub fn post_confirmation(pool: &UserPoolType) -> Option<&str> {
    pool.lambda_config
        .as_ref()
        .and_then(|l| l.post_confirmation.as_deref())
        .filter(|arn| !arn.is_empty())
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

/// The pool's `LastModifiedDate`.
pub fn last_modified(pool: &UserPoolType) -> Option<OffsetDateTime> {
    pool.last_modified_date
        .and_then(|at| OffsetDateTime::from_unix_timestamp_nanos(at.as_nanos()).ok())
}

/// Whether two `LastModifiedDate`s are the same modification: equal to the millisecond, the
/// precision Cognito returns and [`format_rfc3339`] prints (so a printed time compares equal to
/// the one read). Two missing dates are the same: there is nothing to tell them apart by.
pub fn same_modification(a: Option<OffsetDateTime>, b: Option<OffsetDateTime>) -> bool {
    let millis = |at: OffsetDateTime| at.unix_timestamp_nanos().div_euclid(1_000_000);
    a.map(millis) == b.map(millis)
}

fn show_time(at: Option<OffsetDateTime>) -> String {
    at.map_or_else(|| "(none)".to_owned(), format_rfc3339)
}

/// `--expect-last-modified`: the pool must be as it was when the dry run was reviewed.
pub fn check_expected_modification(
    pool_id: &str,
    expected: OffsetDateTime,
    found: Option<OffsetDateTime>,
) -> Result<(), String> {
    if same_modification(Some(expected), found) {
        Ok(())
    } else {
        Err(format!(
            "user pool {pool_id} was last modified at {}, not at {} as --expect-last-modified says: it \
             changed since that review. Nothing was changed; review it again with --dry-run",
            show_time(found),
            show_time(Some(expected)),
        ))
    }
}

/// The pool must not have changed between the read the request was built from and the write:
/// `UpdateUserPool` would revert whatever changed in between.
pub fn check_unchanged_since_read(
    pool_id: &str,
    read: Option<OffsetDateTime>,
    now: Option<OffsetDateTime>,
) -> Result<(), String> {
    if same_modification(read, now) {
        Ok(())
    } else {
        Err(format!(
            "user pool {pool_id} changed since it was read (LastModifiedDate {} then, {} now): updating \
             it would revert that change. The pool was not updated; run again",
            show_time(read),
            show_time(now),
        ))
    }
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

/// The request `update` would send, refused unless it changes `LambdaConfig.PostConfirmation`
/// alone: the safety net for the whole point of `attach-trigger` and `detach-trigger`.
pub fn checked_changes(
    pool_id: &str,
    pool: &UserPoolType,
    update: &UpdateUserPoolInputBuilder,
) -> Result<Vec<Change>> {
    let request = update
        .clone()
        .build()
        .context("cannot build the UpdateUserPool request")?;
    let changes = changes(pool, &request);
    if changes.iter().any(|c| c.field != POST_CONFIRMATION) {
        bail!(
            "refusing to update {pool_id}: the request would also change {:?} (a bug in ops: nothing was \
             changed)",
            changes.iter().map(|c| c.field.as_str()).collect::<Vec<_>>()
        );
    }
    Ok(changes)
}

/// Reads the pool again, refuses if it changed since `read` (its `LastModifiedDate` when the
/// request was built), then sends `update`; returns the pool as described after the update.
pub async fn update_unless_changed(
    ctx: &Ctx,
    pool_id: &str,
    read: Option<OffsetDateTime>,
    update: UpdateUserPoolInputBuilder,
) -> Result<UserPoolType> {
    let now = user_pool::describe_pool(&ctx.cognito, pool_id).await?;
    check_unchanged_since_read(pool_id, read, last_modified(&now)).map_err(anyhow::Error::msg)?;
    update.send_with(&ctx.cognito).await.map_err(|err| {
        let missing = err
            .as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception());
        PoolError::from_sdk("UpdateUserPool", pool_id, missing, &err)
    })?;
    Ok(user_pool::describe_pool(&ctx.cognito, pool_id).await?)
}

/// The dry run's hint: how to apply exactly what it showed, and nothing the pool became since.
pub fn apply_hint(read: Option<OffsetDateTime>) -> String {
    match read {
        Some(at) => format!(
            "\n  pool last modified {t}: to apply exactly this, run the same command without --dry-run and \
             with --expect-last-modified {t}",
            t = format_rfc3339(at)
        ),
        None => "\n  pool last modified: (DescribeUserPool gave no LastModifiedDate)".to_owned(),
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
        check_expected_modification(pool_id, expected, read).map_err(anyhow::Error::msg)?;
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
    let statements = policy_statements(ctx, &function_arn).await?;
    let permission = plan_permission(&statements, &grant, pool_id).map_err(anyhow::Error::msg)?;

    let update = attach(&pool, &function_arn);
    let changes = checked_changes(pool_id, &pool, &update)?;

    if !args.dry_run {
        if let Permission::Add { statement_id } = &permission {
            add_permission(ctx, &function_arn, statement_id, &grant).await?;
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

    let (permission_word, sid) = match (&permission, args.dry_run) {
        (Permission::Present { statement_id }, _) => ("present", statement_id),
        (Permission::Add { statement_id }, true) => ("would_add", statement_id),
        (Permission::Add { statement_id }, false) => ("added", statement_id),
    };
    let replaced = match &attachment {
        Attachment::Replace { previous } => Some(previous.as_str()),
        Attachment::Already | Attachment::New => None,
    };
    let mut human = format!(
        "attach-trigger {pool_id}{dry}",
        dry = if args.dry_run {
            " (dry run: nothing changed)"
        } else {
            ""
        },
    );
    if attachment == Attachment::Already {
        human.push_str(&format!(
            "\n  {POST_CONFIRMATION} is already {function_arn}: pool not updated"
        ));
    }
    for change in &changes {
        human.push_str(&format!("\n  {}: {} -> {}", change.field, change.old, change.new));
    }
    if let Some(previous) = replaced {
        let verb = if args.dry_run { "would replace" } else { "replaced" };
        human.push_str(&format!(
            "\n  {verb} the Post Confirmation trigger {previous} (--replace)"
        ));
    }
    human.push_str(&format!(
        "\n  permission for {COGNITO_PRINCIPAL} (SourceArn {}, SourceAccount {}): {} (statement {sid})",
        grant.pool_arn,
        grant.account,
        permission_word.replace('_', " ")
    ));
    if args.dry_run {
        human.push_str(&apply_hint(read));
    }
    ctx.printer.report(
        &human,
        &json!({
            "command": "attach-trigger",
            "user_pool_id": pool_id,
            "function_arn": function_arn,
            "dry_run": args.dry_run,
            "changes": changes_json(&changes),
            "replaced": replaced,
            "permission": permission_word,
            "statement_id": sid,
            "pool_last_modified": read.map(format_rfc3339),
        }),
    );
    Ok(Outcome::Done)
}

pub fn changes_json(changes: &[Change]) -> Vec<Value> {
    changes
        .iter()
        .map(|c| json!({"field": c.field, "old": c.old, "new": c.new}))
        .collect()
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

/// The function's resource-policy statements; none when it has no policy (GetPolicy answers
/// ResourceNotFound then, as it does for a missing function: [`function_user_pool_id`], called
/// first, tells those apart).
async fn policy_statements(ctx: &Ctx, function_arn: &str) -> Result<Vec<Value>> {
    let policy = match ctx.lambda.get_policy().function_name(function_arn).send().await {
        Ok(output) => output.policy().unwrap_or("{}").to_owned(),
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            return Ok(Vec::new());
        }
        Err(err) => bail!("GetPolicy on {function_arn} failed: {}", aws::detail(&err)),
    };
    let policy: Value = serde_json::from_str(&policy).context("the function's policy is not JSON")?;
    Ok(match &policy["Statement"] {
        Value::Array(statements) => statements.clone(),
        Value::Object(_) => vec![policy["Statement"].clone()],
        _ => Vec::new(),
    })
}

async fn add_permission(ctx: &Ctx, function_arn: &str, statement_id: &str, grant: &Grant) -> Result<()> {
    let added = ctx
        .lambda
        .add_permission()
        .function_name(function_arn)
        .statement_id(statement_id)
        .action("lambda:InvokeFunction")
        .principal(COGNITO_PRINCIPAL)
        .source_arn(&grant.pool_arn)
        .source_account(&grant.account)
        .send()
        .await;
    match added {
        Ok(_) => Ok(()),
        // Added by someone else since we looked: fine if it is what we would have added.
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_resource_conflict_exception()) =>
        {
            let statements = policy_statements(ctx, function_arn).await?;
            if statements.iter().any(|s| grant.is_granted_by(s)) {
                Ok(())
            } else {
                bail!("statement {statement_id} appeared on {function_arn} with other conditions")
            }
        }
        Err(err) => bail!("AddPermission on {function_arn} failed: {}", aws::detail(&err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cognitoidentityprovider::types::*;
    use aws_smithy_types::DateTime;

    const POOL: &str = "us-east-1_AbCdEf123";
    const POOL_ARN: &str = "arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_AbCdEf123";
    const TRIGGER: &str = "arn:aws:lambda:us-east-1:123456789012:function:cognito-user-sync-trigger";

    fn lambda(name: &str) -> String {
        format!("arn:aws:lambda:us-east-1:123456789012:function:{name}")
    }

    /// A pool with every setting DescribeUserPool can return set to something non-default.
    fn full_pool() -> UserPoolType {
        UserPoolType::builder()
            .id(POOL)
            .arn(POOL_ARN)
            .name("production-users")
            .policies(
                UserPoolPolicyType::builder()
                    .password_policy(
                        PasswordPolicyType::builder()
                            .minimum_length(14)
                            .require_uppercase(true)
                            .require_lowercase(true)
                            .require_numbers(false)
                            .require_symbols(true)
                            .password_history_size(5)
                            .temporary_password_validity_days(3)
                            .build(),
                    )
                    .sign_in_policy(
                        SignInPolicyType::builder()
                            .allowed_first_auth_factors(AuthFactorType::Password)
                            .allowed_first_auth_factors(AuthFactorType::EmailOtp)
                            .build(),
                    )
                    .build(),
            )
            .deletion_protection(DeletionProtectionType::Active)
            .lambda_config(
                LambdaConfigType::builder()
                    .pre_sign_up(lambda("pre-sign-up"))
                    .custom_message(lambda("custom-message"))
                    .pre_authentication(lambda("pre-auth"))
                    .post_authentication(lambda("post-auth"))
                    .define_auth_challenge(lambda("define"))
                    .create_auth_challenge(lambda("create"))
                    .verify_auth_challenge_response(lambda("verify"))
                    .pre_token_generation(lambda("pre-token"))
                    .user_migration(lambda("migrate"))
                    .pre_token_generation_config(
                        PreTokenGenerationVersionConfigType::builder()
                            .lambda_version(PreTokenGenerationLambdaVersionType::V20)
                            .lambda_arn(lambda("pre-token"))
                            .build()
                            .unwrap(),
                    )
                    .custom_sms_sender(
                        CustomSmsLambdaVersionConfigType::builder()
                            .lambda_version(CustomSmsSenderLambdaVersionType::V10)
                            .lambda_arn(lambda("sms"))
                            .build()
                            .unwrap(),
                    )
                    .custom_email_sender(
                        CustomEmailLambdaVersionConfigType::builder()
                            .lambda_version(CustomEmailSenderLambdaVersionType::V10)
                            .lambda_arn(lambda("email"))
                            .build()
                            .unwrap(),
                    )
                    .kms_key_id("arn:aws:kms:us-east-1:123456789012:key/k")
                    .inbound_federation(
                        InboundFederationLambdaType::builder()
                            .lambda_version(InboundFederationLambdaVersionType::V10)
                            .lambda_arn(lambda("federation"))
                            .build()
                            .unwrap(),
                    )
                    .build(),
            )
            .last_modified_date(DateTime::from_secs(1_795_000_000))
            .creation_date(DateTime::from_secs(1_700_000_000))
            .auto_verified_attributes(VerifiedAttributeType::Email)
            .auto_verified_attributes(VerifiedAttributeType::PhoneNumber)
            .sms_verification_message("SMS code {####}")
            .email_verification_message("Email code {####}")
            .email_verification_subject("Your code")
            .verification_message_template(
                VerificationMessageTemplateType::builder()
                    .sms_message("SMS code {####}")
                    .email_message("Email code {####}")
                    .email_subject("Your code")
                    .default_email_option(DefaultEmailOptionType::ConfirmWithCode)
                    .build(),
            )
            .sms_authentication_message("Sign-in code {####}")
            .user_attribute_update_settings(
                UserAttributeUpdateSettingsType::builder()
                    .attributes_require_verification_before_update(VerifiedAttributeType::Email)
                    .build(),
            )
            .mfa_configuration(UserPoolMfaType::Optional)
            .device_configuration(
                DeviceConfigurationType::builder()
                    .challenge_required_on_new_device(true)
                    .device_only_remembered_on_user_prompt(true)
                    .build(),
            )
            .estimated_number_of_users(42)
            .email_configuration(
                EmailConfigurationType::builder()
                    .source_arn("arn:aws:ses:us-east-1:123456789012:identity/example.com")
                    .reply_to_email_address("help@example.com")
                    .email_sending_account(EmailSendingAccountType::Developer)
                    .from("Example <no-reply@example.com>")
                    .configuration_set("ops")
                    .build(),
            )
            .sms_configuration(
                SmsConfigurationType::builder()
                    .sns_caller_arn("arn:aws:iam::123456789012:role/sms")
                    .external_id("external")
                    .sns_region("us-east-1")
                    .build(),
            )
            .user_pool_tags("team", "identity")
            .user_pool_tags("cost-center", "42")
            .admin_create_user_config(
                AdminCreateUserConfigType::builder()
                    .allow_admin_create_user_only(true)
                    .unused_account_validity_days(3)
                    .invite_message_template(
                        MessageTemplateType::builder()
                            .sms_message("Hi {username}, {####}")
                            .email_message("Hi {username}, {####}")
                            .email_subject("Welcome")
                            .build(),
                    )
                    .build(),
            )
            .user_pool_add_ons(
                UserPoolAddOnsType::builder()
                    .advanced_security_mode(AdvancedSecurityModeType::Audit)
                    .build()
                    .unwrap(),
            )
            .account_recovery_setting(
                AccountRecoverySettingType::builder()
                    .recovery_mechanisms(
                        RecoveryOptionType::builder()
                            .priority(1)
                            .name(RecoveryOptionNameType::AdminOnly)
                            .build()
                            .unwrap(),
                    )
                    .build(),
            )
            .user_pool_tier(UserPoolTierType::Plus)
            .key_configuration(
                KeyConfigurationType::builder()
                    .key_type(EncryptionKeyType::CustomerManagedKey)
                    .kms_key_arn("arn:aws:kms:us-east-1:123456789012:key/pool")
                    .build(),
            )
            .issuer_configuration(
                IssuerConfigurationType::builder()
                    .r#type(IssuerType::Original)
                    .build(),
            )
            .acr_configuration(
                "urn:level1",
                AcrLevelConfigType::builder().acr_value("low").build().unwrap(),
            )
            .build()
    }

    #[test]
    fn carry_over_sets_every_field_of_the_update_request() {
        let request = carry_over(&full_pool()).build().unwrap();
        // Top-level fields of the pretty Debug output are indented by exactly four spaces. A
        // field the SDK adds to UpdateUserPoolInput shows up here as `None` until carried over.
        let debug = format!("{request:#?}");
        let unset: Vec<&str> = debug
            .lines()
            .filter(|l| l.starts_with("    ") && !l.starts_with("     ") && l.ends_with(": None,"))
            .collect();
        assert!(unset.is_empty(), "not carried over: {unset:?}");
    }

    #[test]
    fn carry_over_repeats_each_setting_unchanged() {
        let pool = full_pool();
        let r = carry_over(&pool).build().unwrap();
        assert_eq!(r.user_pool_id, pool.id);
        assert_eq!(r.pool_name, pool.name);
        assert_eq!(r.policies, pool.policies);
        assert_eq!(r.deletion_protection, pool.deletion_protection);
        assert_eq!(r.lambda_config, pool.lambda_config);
        assert_eq!(r.auto_verified_attributes, pool.auto_verified_attributes);
        assert_eq!(r.sms_verification_message, pool.sms_verification_message);
        assert_eq!(r.email_verification_message, pool.email_verification_message);
        assert_eq!(r.email_verification_subject, pool.email_verification_subject);
        assert_eq!(
            r.verification_message_template,
            pool.verification_message_template
        );
        assert_eq!(r.sms_authentication_message, pool.sms_authentication_message);
        assert_eq!(
            r.user_attribute_update_settings,
            pool.user_attribute_update_settings
        );
        assert_eq!(r.mfa_configuration, pool.mfa_configuration);
        assert_eq!(r.device_configuration, pool.device_configuration);
        assert_eq!(r.email_configuration, pool.email_configuration);
        assert_eq!(r.sms_configuration, pool.sms_configuration);
        assert_eq!(r.user_pool_tags, pool.user_pool_tags);
        assert_eq!(r.user_pool_add_ons, pool.user_pool_add_ons);
        assert_eq!(r.account_recovery_setting, pool.account_recovery_setting);
        assert_eq!(r.user_pool_tier, pool.user_pool_tier);
        assert_eq!(r.key_configuration, pool.key_configuration);
        assert_eq!(r.issuer_configuration, pool.issuer_configuration);
        assert_eq!(r.acr_configuration, pool.acr_configuration);
        let admin = r.admin_create_user_config.unwrap();
        let described = pool.admin_create_user_config.unwrap();
        assert_eq!(
            admin.allow_admin_create_user_only,
            described.allow_admin_create_user_only
        );
        assert_eq!(admin.invite_message_template, described.invite_message_template);
        assert_eq!(
            changes(&full_pool(), &carry_over(&full_pool()).build().unwrap()),
            vec![]
        );
    }

    #[test]
    fn the_deprecated_validity_days_are_dropped_only_when_the_password_policy_has_them() {
        let pool = full_pool();
        let sent = carry_over(&pool)
            .build()
            .unwrap()
            .admin_create_user_config
            .unwrap();
        assert_eq!(sent.unused_account_validity_days, 0);

        let mut legacy = full_pool();
        legacy.policies = None;
        let sent = carry_over(&legacy)
            .build()
            .unwrap()
            .admin_create_user_config
            .unwrap();
        assert_eq!(sent.unused_account_validity_days, 3);
    }

    #[test]
    fn attach_changes_post_confirmation_and_nothing_else() {
        let pool = full_pool();
        let request = attach(&pool, TRIGGER).build().unwrap();
        assert_eq!(
            changes(&pool, &request),
            vec![Change {
                field: "LambdaConfig.PostConfirmation".into(),
                old: "(not set)".into(),
                new: format!("{TRIGGER:?}"),
            }]
        );
        let lambda_config = request.lambda_config.unwrap();
        assert_eq!(lambda_config.post_confirmation.as_deref(), Some(TRIGGER));
        let mut expected = pool.lambda_config.clone().unwrap();
        expected.post_confirmation = Some(TRIGGER.into());
        assert_eq!(lambda_config, expected, "every other trigger is kept");
    }

    #[test]
    fn attach_to_a_pool_without_triggers_or_settings() {
        let bare = UserPoolType::builder().id(POOL).name("bare").build();
        let request = attach(&bare, TRIGGER).build().unwrap();
        assert_eq!(changes(&bare, &request).len(), 1);
        assert_eq!(request.policies, None);
    }

    #[test]
    fn attaching_the_same_function_again_changes_nothing() {
        let mut pool = full_pool();
        pool.lambda_config.as_mut().unwrap().post_confirmation = Some(TRIGGER.into());
        assert!(changes(&pool, &attach(&pool, TRIGGER).build().unwrap()).is_empty());
    }

    #[test]
    fn replacing_another_post_confirmation_shows_old_and_new() {
        let mut pool = full_pool();
        pool.lambda_config.as_mut().unwrap().post_confirmation = Some(lambda("old"));
        let found = changes(&pool, &attach(&pool, TRIGGER).build().unwrap());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].old, format!("{:?}", lambda("old")));
    }

    fn statement(sid: &str, source_arn: &str, account: &str) -> Value {
        json!({
            "Sid": sid,
            "Effect": "Allow",
            "Principal": {"Service": "cognito-idp.amazonaws.com"},
            "Action": "lambda:InvokeFunction",
            "Resource": TRIGGER,
            "Condition": {
                "ArnLike": {"AWS:SourceArn": source_arn},
                "StringEquals": {"AWS:SourceAccount": account},
            },
        })
    }

    #[test]
    fn the_permission_is_added_once_and_a_conflicting_statement_is_refused() {
        let grant = Grant::for_pool(POOL_ARN).unwrap();
        assert_eq!(grant.account, "123456789012");
        let sid = statement_id(POOL);
        assert_eq!(
            plan_permission(&[], &grant, POOL),
            Ok(Permission::Add {
                statement_id: sid.clone()
            })
        );
        // The stack's own statement (another id) already grants it.
        let stack = statement("TriggerInvokePermission-X", POOL_ARN, "123456789012");
        assert_eq!(
            plan_permission(&[stack], &grant, POOL),
            Ok(Permission::Present {
                statement_id: "TriggerInvokePermission-X".into()
            })
        );
        // Our id, for another pool: not ours to overwrite.
        let other = statement(
            &sid,
            "arn:aws:cognito-idp:us-east-1:123456789012:userpool/x_Y",
            "123456789012",
        );
        assert!(plan_permission(&[other], &grant, POOL).is_err());
        // Another account's statement grants nothing here.
        let foreign = statement("s", POOL_ARN, "999999999999");
        assert!(!grant.is_granted_by(&foreign));
    }

    #[test]
    fn another_functions_trigger_is_replaced_only_with_replace() {
        assert_eq!(plan_attach(POOL, None, TRIGGER, false), Ok(Attachment::New));
        assert_eq!(
            plan_attach(POOL, Some(TRIGGER), TRIGGER, false),
            Ok(Attachment::Already)
        );
        assert_eq!(
            plan_attach(POOL, Some(TRIGGER), TRIGGER, true),
            Ok(Attachment::Already)
        );
        let other = lambda("legacy-sync");
        let err = plan_attach(POOL, Some(&other), TRIGGER, false).unwrap_err();
        assert!(err.contains(&other) && err.contains("--replace"), "{err}");
        assert_eq!(
            plan_attach(POOL, Some(&other), TRIGGER, true),
            Ok(Attachment::Replace { previous: other })
        );
    }

    #[test]
    fn an_empty_post_confirmation_is_none() {
        let mut pool = full_pool();
        assert_eq!(post_confirmation(&pool), None);
        pool.lambda_config.as_mut().unwrap().post_confirmation = Some(String::new());
        assert_eq!(post_confirmation(&pool), None);
        pool.lambda_config = None;
        assert_eq!(post_confirmation(&pool), None);
    }

    #[test]
    fn only_the_served_pool_is_attached_to() {
        let other = "us-east-1_Other1";
        let check = |stack, function| check_served_pool(POOL, TRIGGER, "cognito-user-sync", stack, function);
        // The stack tells; the function agrees or cannot tell.
        assert_eq!(check(Ok(POOL), Some(POOL)), Ok(()));
        assert_eq!(check(Ok(POOL), None), Ok(()));
        // The stack cannot be read: the function's own USER_POOL_ID tells.
        assert_eq!(check(Err("stack `x` does not exist"), Some(POOL)), Ok(()));
        // Any source naming another pool refuses, and says which source and which pool.
        let err = check(Ok(other), Some(POOL)).unwrap_err();
        assert!(
            err.contains("stack `cognito-user-sync`") && err.contains(other),
            "{err}"
        );
        let err = check(Ok(POOL), Some(other)).unwrap_err();
        assert!(err.contains("USER_POOL_ID") && err.contains(other), "{err}");
        let err = check(Err("stack `x` does not exist"), Some(other)).unwrap_err();
        assert!(err.contains(other), "{err}");
        // Nothing tells: refused, saying how to tell it.
        let err = check(Err("stack `x` does not exist"), None).unwrap_err();
        assert!(
            err.contains("stack `x` does not exist") && err.contains("--stack-name"),
            "{err}"
        );
    }

    fn at(nanos: i128) -> Option<OffsetDateTime> {
        Some(OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap())
    }

    #[test]
    fn modifications_are_compared_to_the_millisecond() {
        let t = 1_795_457_327_123_000_000;
        assert!(same_modification(at(t), at(t)));
        // What is printed (milliseconds) is what is compared.
        assert!(same_modification(at(t), at(t + 999_999)));
        assert!(!same_modification(at(t), at(t + 1_000_000)));
        assert!(!same_modification(at(t), at(t - 1)));
        assert!(!same_modification(at(t), None));
        assert!(same_modification(None, None));
        // A printed time parses back to the same modification, whatever its offset.
        let printed = format_rfc3339(at(t + 456_789).unwrap());
        assert_eq!(printed, "2026-11-23T18:08:47.123Z");
        assert!(same_modification(parse_time(&printed).ok(), at(t + 456_789)));
        assert!(same_modification(
            parse_time("2026-11-23T19:08:47.123+01:00").ok(),
            at(t)
        ));
        assert!(parse_time("yesterday").unwrap_err().contains("RFC 3339"));
    }

    #[test]
    fn a_pool_changed_since_review_or_since_read_is_refused() {
        let t = 1_795_457_327_123_000_000;
        let mut pool = full_pool();
        pool.last_modified_date = Some(DateTime::from_millis(1_795_457_327_123));
        assert_eq!(last_modified(&pool), at(t));
        assert_eq!(
            check_expected_modification(POOL, at(t).unwrap(), last_modified(&pool)),
            Ok(())
        );
        let err = check_expected_modification(POOL, at(t - 1_000_000).unwrap(), at(t)).unwrap_err();
        assert!(
            err.contains("2026-11-23T18:08:47.123Z") && err.contains("2026-11-23T18:08:47.122Z"),
            "{err}"
        );
        assert_eq!(check_unchanged_since_read(POOL, at(t), at(t)), Ok(()));
        let err = check_unchanged_since_read(POOL, at(t), at(t + 5_000_000)).unwrap_err();
        assert!(
            err.contains("changed since it was read") && err.contains("run again"),
            "{err}"
        );
    }

    #[test]
    fn only_this_deployments_trigger_is_detached() {
        assert_eq!(plan_detach(POOL, None, TRIGGER), Ok(Detachment::NotSet));
        assert_eq!(plan_detach(POOL, Some(TRIGGER), TRIGGER), Ok(Detachment::Remove));
        let other = lambda("legacy-sync");
        let err = plan_detach(POOL, Some(&other), TRIGGER).unwrap_err();
        assert!(err.contains(&other), "{err}");
    }

    #[test]
    fn detach_removes_post_confirmation_and_nothing_else() {
        let mut pool = full_pool();
        pool.lambda_config.as_mut().unwrap().post_confirmation = Some(TRIGGER.into());
        let update = detach(&pool);
        assert_eq!(
            checked_changes(POOL, &pool, &update).unwrap(),
            vec![Change {
                field: "LambdaConfig.PostConfirmation".into(),
                old: format!("{TRIGGER:?}"),
                new: "(not set)".into(),
            }]
        );
        let mut expected = pool.lambda_config.clone().unwrap();
        expected.post_confirmation = None;
        assert_eq!(
            update.build().unwrap().lambda_config,
            Some(expected),
            "every other trigger is kept"
        );
    }

    #[test]
    fn a_request_changing_more_than_post_confirmation_is_refused() {
        let pool = full_pool();
        let update = attach(&pool, TRIGGER).mfa_configuration(UserPoolMfaType::Off);
        let err = checked_changes(POOL, &pool, &update).unwrap_err().to_string();
        assert!(err.contains("MfaConfiguration"), "{err}");
    }
}
