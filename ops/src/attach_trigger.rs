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

use std::fmt::Debug;

use anyhow::{Context, Result, bail};
use aws_sdk_cognitoidentityprovider::operation::update_user_pool::UpdateUserPoolInput;
use aws_sdk_cognitoidentityprovider::operation::update_user_pool::builders::UpdateUserPoolInputBuilder;
use aws_sdk_cognitoidentityprovider::types::{LambdaConfigType, UserPoolType};
use serde_json::{Value, json};

use crate::users::{self, PoolError};
use crate::{Ctx, Outcome, aws};

const COGNITO_PRINCIPAL: &str = "cognito-idp.amazonaws.com";
const POST_CONFIRMATION: &str = "LambdaConfig.PostConfirmation";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The user pool to attach the trigger to.
    #[arg(long, value_name = "ID", value_parser = users::parse_pool_id)]
    pub user_pool_id: String,
    /// The trigger function (default: the stack's TriggerFunctionArn output).
    #[arg(long, value_name = "ARN")]
    pub function_arn: Option<String>,
    /// Print what would change, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
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

pub async fn run(ctx: &Ctx, args: &Args) -> Result<Outcome> {
    let function_arn = ctx
        .names
        .trigger_function_arn(args.function_arn.as_deref())
        .await?;
    let pool = users::describe_pool(&ctx.cognito, &args.user_pool_id).await?;
    let grant = pool
        .arn
        .as_deref()
        .and_then(Grant::for_pool)
        .with_context(|| format!("DescribeUserPool gave no usable ARN for {}", args.user_pool_id))?;
    let statements = policy_statements(ctx, &function_arn).await?;
    let permission = plan_permission(&statements, &grant, &args.user_pool_id).map_err(anyhow::Error::msg)?;

    let update = attach(&pool, &function_arn);
    let request = update
        .clone()
        .build()
        .context("cannot build the UpdateUserPool request")?;
    let changes = changes(&pool, &request);
    // The safety net for the whole point of this command.
    if changes.iter().any(|c| c.field != POST_CONFIRMATION) {
        bail!(
            "refusing to update {}: the request would also change {:?} (a bug in ops: nothing was changed)",
            args.user_pool_id,
            changes.iter().map(|c| c.field.as_str()).collect::<Vec<_>>()
        );
    }

    if !args.dry_run {
        if let Permission::Add { statement_id } = &permission {
            add_permission(ctx, &function_arn, statement_id, &grant).await?;
        }
        if !changes.is_empty() {
            update.send_with(&ctx.cognito).await.map_err(|err| {
                let missing = err
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception());
                PoolError::from_sdk("UpdateUserPool", &args.user_pool_id, missing, &err)
            })?;
            let after = users::describe_pool(&ctx.cognito, &args.user_pool_id).await?;
            let attached = after.lambda_config.and_then(|l| l.post_confirmation);
            if attached.as_deref() != Some(function_arn.as_str()) {
                bail!("UpdateUserPool succeeded but the pool's Post Confirmation trigger is {attached:?}");
            }
        }
    }

    let (permission_word, sid) = match (&permission, args.dry_run) {
        (Permission::Present { statement_id }, _) => ("present", statement_id),
        (Permission::Add { statement_id }, true) => ("would_add", statement_id),
        (Permission::Add { statement_id }, false) => ("added", statement_id),
    };
    let mut human = format!(
        "attach-trigger {pool}{dry}",
        pool = args.user_pool_id,
        dry = if args.dry_run {
            " (dry run: nothing changed)"
        } else {
            ""
        },
    );
    if changes.is_empty() {
        human.push_str(&format!(
            "\n  {POST_CONFIRMATION} is already {function_arn}: pool not updated"
        ));
    }
    for change in &changes {
        human.push_str(&format!("\n  {}: {} -> {}", change.field, change.old, change.new));
    }
    human.push_str(&format!(
        "\n  permission for {COGNITO_PRINCIPAL} (SourceArn {}, SourceAccount {}): {} (statement {sid})",
        grant.pool_arn,
        grant.account,
        permission_word.replace('_', " ")
    ));
    ctx.printer.report(
        &human,
        &json!({
            "command": "attach-trigger",
            "user_pool_id": args.user_pool_id,
            "function_arn": function_arn,
            "dry_run": args.dry_run,
            "changes": changes.iter().map(|c| json!({"field": c.field, "old": c.old, "new": c.new})).collect::<Vec<_>>(),
            "permission": permission_word,
            "statement_id": sid,
        }),
    );
    Ok(Outcome::Done)
}

/// The function's resource-policy statements; none when it has no policy. Fails, naming it,
/// when the function does not exist.
async fn policy_statements(ctx: &Ctx, function_arn: &str) -> Result<Vec<Value>> {
    ctx.lambda
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
}
