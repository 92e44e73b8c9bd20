//! The `UpdateUserPool` request that changes one trigger and nothing else, and the checks
//! around sending it.
//!
//! `UpdateUserPool` is not a patch: every setting the call does not repeat goes back to its
//! default (password policy, auto-verified attributes, MFA, email and SMS configuration, the
//! other triggers...). So the request is built from `DescribeUserPool` by [`carry_over`], which
//! copies every setting `UpdateUserPool` takes, and [`attach`] or [`detach`] then change
//! `LambdaConfig.PostConfirmation` alone. [`changes`] compares a request with the pool as
//! described; [`checked_changes`] refuses a request that would change anything else. Both
//! [`carry_over`] and the diff of [`changes`] are generated from one list of the settings (the
//! `carried_over_settings!` below).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;

use anyhow::{Context, Result, bail};
use aws_sdk_cognitoidentityprovider::operation::update_user_pool::UpdateUserPoolInput;
use aws_sdk_cognitoidentityprovider::operation::update_user_pool::builders::UpdateUserPoolInputBuilder;
use aws_sdk_cognitoidentityprovider::types::{LambdaConfigType, UserPoolType};
use serde_json::{Value, json};
use shared::timestamp::format_rfc3339;
use time::OffsetDateTime;

use crate::Ctx;
use crate::user_pool::{self, PoolError};

pub const POST_CONFIRMATION: &str = "LambdaConfig.PostConfirmation";

/// Declares the settings `UpdateUserPool` takes besides `LambdaConfig`, once, and generates from
/// the list both the request that repeats them ([`carry_over`]) and their diff
/// ([`setting_changes`]). Each entry: the name the diff shows, the field of the pool as
/// described, the request's setter and field, and optionally how a value is shown (a map sorted,
/// so that its order does not read as a change).
macro_rules! carried_over_settings {
    ($($name:literal: $pool_field:ident => $setter:ident($request_field:ident) $(shown by $show:ident)?;)+) => {
        /// An `UpdateUserPool` request that repeats every updatable setting of `pool` unchanged.
        ///
        /// A unit test fails when the SDK grows a field of `UpdateUserPoolInput` this does not
        /// set. Fields are cloned whole, so a setting the SDK adds inside one of these types (a
        /// new trigger in `LambdaConfigType`, say) is carried over too.
        pub fn carry_over(pool: &UserPoolType) -> UpdateUserPoolInputBuilder {
            let sent = as_sent(pool);
            UpdateUserPoolInput::builder()
                .set_lambda_config(sent.lambda_config)
                $(.$setter(sent.$pool_field))+
        }

        /// Each carried-over setting that `request` sends differently from `pool` (as it must be
        /// sent), given to `compare` as (name, in the pool, in the request).
        fn setting_changes(pool: &UserPoolType, request: &UpdateUserPoolInput, compare: &mut dyn FnMut(&str, String, String)) {
            let sent = as_sent(pool);
            $(
                compare(
                    $name,
                    shown!(sent.$pool_field.as_ref() $(, $show)?),
                    shown!(request.$request_field.as_ref() $(, $show)?),
                );
            )+
        }
    };
}

macro_rules! shown {
    ($value:expr) => {
        show($value)
    };
    ($value:expr, $show:ident) => {
        $show($value)
    };
}

carried_over_settings! {
    "UserPoolId": id => set_user_pool_id(user_pool_id);
    "PoolName": name => set_pool_name(pool_name);
    "Policies": policies => set_policies(policies);
    "DeletionProtection": deletion_protection => set_deletion_protection(deletion_protection);
    "AutoVerifiedAttributes": auto_verified_attributes => set_auto_verified_attributes(auto_verified_attributes);
    "SmsVerificationMessage": sms_verification_message => set_sms_verification_message(sms_verification_message);
    "EmailVerificationMessage": email_verification_message => set_email_verification_message(email_verification_message);
    "EmailVerificationSubject": email_verification_subject => set_email_verification_subject(email_verification_subject);
    "VerificationMessageTemplate": verification_message_template => set_verification_message_template(verification_message_template);
    "SmsAuthenticationMessage": sms_authentication_message => set_sms_authentication_message(sms_authentication_message);
    "UserAttributeUpdateSettings": user_attribute_update_settings => set_user_attribute_update_settings(user_attribute_update_settings);
    "MfaConfiguration": mfa_configuration => set_mfa_configuration(mfa_configuration);
    "DeviceConfiguration": device_configuration => set_device_configuration(device_configuration);
    "EmailConfiguration": email_configuration => set_email_configuration(email_configuration);
    "SmsConfiguration": sms_configuration => set_sms_configuration(sms_configuration);
    "UserPoolTags": user_pool_tags => set_user_pool_tags(user_pool_tags) shown by show_sorted;
    "AdminCreateUserConfig": admin_create_user_config => set_admin_create_user_config(admin_create_user_config);
    "UserPoolAddOns": user_pool_add_ons => set_user_pool_add_ons(user_pool_add_ons);
    "AccountRecoverySetting": account_recovery_setting => set_account_recovery_setting(account_recovery_setting);
    "UserPoolTier": user_pool_tier => set_user_pool_tier(user_pool_tier);
    "KeyConfiguration": key_configuration => set_key_configuration(key_configuration);
    "IssuerConfiguration": issuer_configuration => set_issuer_configuration(issuer_configuration);
    "AcrConfiguration": acr_configuration => set_acr_configuration(acr_configuration) shown by show_sorted;
}

/// The pool as `UpdateUserPool` must be sent it back: `AdminCreateUserConfig`'s
/// `UnusedAccountValidityDays` is the deprecated twin of
/// `PasswordPolicy.TemporaryPasswordValidityDays`: DescribeUserPool returns both, but
/// UpdateUserPool refuses a request with both ("Please use TemporaryPasswordValidityDays in
/// PasswordPolicy instead of UnusedAccountValidityDays"), and this SDK always serialises the
/// integer, so 0 ("not set") is sent when the policy has it. The diff compares with this too.
fn as_sent(pool: &UserPoolType) -> UserPoolType {
    let mut sent = pool.clone();
    let policy_sets_it = pool
        .policies
        .as_ref()
        .and_then(|p| p.password_policy.as_ref())
        .is_some_and(|p| p.temporary_password_validity_days != 0);
    if policy_sets_it && let Some(config) = sent.admin_create_user_config.as_mut() {
        config.unused_account_validity_days = 0;
    }
    sent
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

fn show_sorted<V: Debug>(map: Option<&HashMap<String, V>>) -> String {
    show(map.map(|m| m.iter().collect::<BTreeMap<_, _>>()).as_ref())
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
    setting_changes(pool, request, &mut compare);

    // Trigger by trigger, so the one expected change reads as such.
    let empty = LambdaConfigType::builder().build();
    let old = pool.lambda_config.as_ref().unwrap_or(&empty);
    let new = request.lambda_config.as_ref().unwrap_or(&empty);
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

/// The changes as the JSON report lists them.
pub fn changes_json(changes: &[Change]) -> Vec<Value> {
    changes
        .iter()
        .map(|c| json!({"field": c.field, "old": c.old, "new": c.new}))
        .collect()
}

/// The pool's current Post Confirmation trigger; an empty string is none.
pub fn post_confirmation(pool: &UserPoolType) -> Option<&str> {
    pool.lambda_config
        .as_ref()
        .and_then(|l| l.post_confirmation.as_deref())
        .filter(|arn| !arn.is_empty())
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
