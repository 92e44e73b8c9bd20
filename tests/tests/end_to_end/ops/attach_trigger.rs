//! End-to-end: `ops attach-trigger` and `ops detach-trigger`, the real binary against moto with
//! the template deployed into it (`ExistingUserPoolId` = the pipeline's pool, the pool the stack
//! serves).
//!
//! Each refusal is shown to change nothing: the pool is described before and after, and the
//! trigger's resource policy is compared. What moto cannot show: it never moves a pool's
//! `LastModifiedDate` (only `CreateUserPool` sets it; `UpdateUserPool` leaves it), so a pool
//! changed between the read and the write cannot be produced here; the review-then-apply check
//! (`--expect-last-modified`) is shown with a review of an earlier state instead, and the
//! comparison both checks share is unit-tested in `ops/src/attach_trigger.rs`.

use aws_sdk_cognitoidentityprovider::types::{
    AccountRecoverySettingType, AdminCreateUserConfigType, AdvancedSecurityModeType, DefaultEmailOptionType,
    DeletionProtectionType, DeviceConfigurationType, EmailConfigurationType, EmailSendingAccountType,
    LambdaConfigType, MessageTemplateType, PasswordPolicyType, RecoveryOptionNameType, RecoveryOptionType,
    SmsConfigurationType, UserAttributeUpdateSettingsType, UserPoolAddOnsType, UserPoolMfaType,
    UserPoolPolicyType, UserPoolTierType, UserPoolType, VerificationMessageTemplateType,
    VerifiedAttributeType,
};
use e2e::{LocalPipeline, PipelineOptions};
use serde_json::{Value, json};
use shared::timestamp::format_rfc3339;
use time::{Duration, OffsetDateTime, UtcOffset};

const STACK: &str = "cognito-user-sync";
const PRE_SIGN_UP: &str = "arn:aws:lambda:us-east-1:123456789012:function:pre-sign-up-check";
const CUSTOM_MESSAGE: &str = "arn:aws:lambda:us-east-1:123456789012:function:custom-message";
/// Another team's Post Confirmation trigger, already on the pool.
const OTHER_TRIGGER: &str = "arn:aws:lambda:us-east-1:123456789012:function:legacy-welcome-mail";

async fn start(label: &str) -> LocalPipeline {
    LocalPipeline::start_or_panic(label, PipelineOptions::default()).await
}

fn trigger_arn(pipeline: &LocalPipeline) -> String {
    pipeline.stack.output("TriggerFunctionArn").unwrap().to_owned()
}

/// Gives `pool_id` as many non-default settings as moto keeps, through UpdateUserPool (the
/// pipeline's pool exists before the stack is deployed against it), with `post_confirmation`
/// as its Post Confirmation trigger.
///
/// No `UsernameAttributes`, `AliasAttributes` or `UsernameConfiguration`: UpdateUserPool cannot
/// set them (AWS keeps them), but moto drops them on any UpdateUserPool.
async fn configure_pool(
    pipeline: &LocalPipeline,
    pool_id: &str,
    post_confirmation: Option<&str>,
) -> UserPoolType {
    pipeline
        .cognito
        .update_user_pool()
        .user_pool_id(pool_id)
        .policies(
            UserPoolPolicyType::builder()
                .password_policy(
                    PasswordPolicyType::builder()
                        .minimum_length(14)
                        .require_uppercase(true)
                        .require_lowercase(false)
                        .require_numbers(true)
                        .require_symbols(false)
                        .temporary_password_validity_days(3)
                        .build(),
                )
                .build(),
        )
        .deletion_protection(DeletionProtectionType::Active)
        .lambda_config(
            LambdaConfigType::builder()
                .pre_sign_up(PRE_SIGN_UP)
                .custom_message(CUSTOM_MESSAGE)
                .set_post_confirmation(post_confirmation.map(str::to_owned))
                .build(),
        )
        .auto_verified_attributes(VerifiedAttributeType::Email)
        .sms_verification_message("Your SMS code: {####}")
        .email_verification_message("Your email code: {####}")
        .email_verification_subject("Verify your email")
        .verification_message_template(
            VerificationMessageTemplateType::builder()
                .sms_message("Your SMS code: {####}")
                .email_message("Your email code: {####}")
                .email_subject("Verify your email")
                .default_email_option(DefaultEmailOptionType::ConfirmWithCode)
                .build(),
        )
        .sms_authentication_message("Sign-in code: {####}")
        .mfa_configuration(UserPoolMfaType::Optional)
        .sms_configuration(
            SmsConfigurationType::builder()
                .sns_caller_arn("arn:aws:iam::123456789012:role/cognito-sms")
                .external_id("ops-e2e")
                .build(),
        )
        .user_attribute_update_settings(
            UserAttributeUpdateSettingsType::builder()
                .attributes_require_verification_before_update(VerifiedAttributeType::Email)
                .build(),
        )
        .device_configuration(
            DeviceConfigurationType::builder()
                .challenge_required_on_new_device(true)
                .device_only_remembered_on_user_prompt(true)
                .build(),
        )
        .email_configuration(
            EmailConfigurationType::builder()
                .email_sending_account(EmailSendingAccountType::CognitoDefault)
                .reply_to_email_address("help@example.com")
                .build(),
        )
        .user_pool_tags("team", "identity")
        .user_pool_tags("cost-center", "42")
        .admin_create_user_config(
            AdminCreateUserConfigType::builder()
                .allow_admin_create_user_only(true)
                .invite_message_template(
                    MessageTemplateType::builder()
                        .email_subject("Welcome")
                        .email_message("Hello {username}, your code is {####}")
                        .sms_message("Hello {username}: {####}")
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
        .send()
        .await
        .expect("UpdateUserPool");
    let configured = describe(pipeline, pool_id).await;
    assert_eq!(
        configured.auto_verified_attributes,
        Some(vec![VerifiedAttributeType::Email]),
        "the pool was not configured"
    );
    configured
}

async fn create_pool(pipeline: &LocalPipeline, name: &str) -> String {
    let created = pipeline
        .cognito
        .create_user_pool()
        .pool_name(name)
        .send()
        .await
        .expect("CreateUserPool");
    created.user_pool().and_then(|p| p.id()).unwrap().to_owned()
}

async fn describe(pipeline: &LocalPipeline, pool_id: &str) -> UserPoolType {
    pipeline
        .cognito
        .describe_user_pool()
        .user_pool_id(pool_id)
        .send()
        .await
        .expect("DescribeUserPool")
        .user_pool()
        .cloned()
        .unwrap()
}

fn post_confirmation(pool: &UserPoolType) -> Option<&str> {
    pool.lambda_config
        .as_ref()
        .and_then(|l| l.post_confirmation.as_deref())
}

/// The pool without what attaching or detaching the trigger is allowed to change.
fn except_post_confirmation(mut pool: UserPoolType) -> UserPoolType {
    pool.last_modified_date = None;
    if let Some(lambda) = pool.lambda_config.as_mut() {
        lambda.post_confirmation = None;
    }
    pool
}

async fn policy_statements(pipeline: &LocalPipeline, function: &str) -> Vec<Value> {
    let lambda = aws_sdk_lambda::Client::new(&pipeline.sdk);
    let policy = lambda
        .get_policy()
        .function_name(function)
        .send()
        .await
        .expect("GetPolicy");
    let policy: Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
    policy["Statement"].as_array().cloned().unwrap_or_default()
}

/// The pool's LastModifiedDate as the report prints it.
fn printed_last_modified(pool: &UserPoolType) -> String {
    let at = pool
        .last_modified_date
        .expect("DescribeUserPool gives LastModifiedDate");
    format_rfc3339(OffsetDateTime::from_unix_timestamp_nanos(at.as_nanos()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_to_the_served_pool_sets_post_confirmation_and_leaves_every_other_setting_untouched() {
    let pipeline = start("attach_served_pool").await;
    let trigger_arn = trigger_arn(&pipeline);
    let pool_id = pipeline.pool.id.clone();
    let before = configure_pool(&pipeline, &pool_id, None).await;
    let statements_before = policy_statements(&pipeline, &trigger_arn).await;

    // The comparison below is meaningful: a naive UpdateUserPool on an identically configured
    // pool resets what it does not repeat, on moto as on AWS.
    let twin_id = create_pool(&pipeline, "naive-twin").await;
    let twin = configure_pool(&pipeline, &twin_id, None).await;
    pipeline
        .cognito
        .update_user_pool()
        .user_pool_id(&twin_id)
        .lambda_config(
            LambdaConfigType::builder()
                .post_confirmation(&trigger_arn)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let naive = describe(&pipeline, &twin_id).await;
    assert_ne!(
        naive.policies, twin.policies,
        "moto no longer resets the password policy"
    );
    assert_eq!(naive.auto_verified_attributes, None);
    assert_eq!(naive.lambda_config.and_then(|l| l.pre_sign_up), None);

    let dry = pipeline
        .ops(&[
            "--json",
            "attach-trigger",
            "--user-pool-id",
            &pool_id,
            "--dry-run",
        ])
        .await;
    dry.assert_code(0);
    let report = dry.report();
    assert_eq!(
        report["changes"],
        json!([{"field": "LambdaConfig.PostConfirmation", "old": "(not set)", "new": format!("{trigger_arn:?}")}]),
        "{dry}"
    );
    assert_eq!(report["replaced"], Value::Null);
    assert_eq!(report["pool_last_modified"], printed_last_modified(&before));
    // The stack's own TriggerInvokePermission already lets this pool invoke the trigger.
    assert_eq!(report["permission"], "present", "{dry}");
    assert_eq!(
        describe(&pipeline, &pool_id).await,
        before,
        "--dry-run changed the pool"
    );

    let run = pipeline
        .ops(&["--json", "attach-trigger", "--user-pool-id", &pool_id])
        .await;
    run.assert_code(0);
    assert_eq!(run.report()["changes"], report["changes"]);
    let after = describe(&pipeline, &pool_id).await;
    assert_eq!(post_confirmation(&after), Some(trigger_arn.as_str()));
    assert_eq!(
        except_post_confirmation(after.clone()),
        except_post_confirmation(before.clone()),
        "attach-trigger changed more than the Post Confirmation trigger"
    );
    assert_eq!(
        after
            .lambda_config
            .as_ref()
            .and_then(|l| l.pre_sign_up.as_deref()),
        Some(PRE_SIGN_UP)
    );
    assert_eq!(
        policy_statements(&pipeline, &trigger_arn).await,
        statements_before,
        "a statement was added although the stack's grants the invoke"
    );

    // Again: nothing to change.
    let again = pipeline
        .ops(&["--json", "attach-trigger", "--user-pool-id", &pool_id])
        .await;
    again.assert_code(0);
    assert_eq!(again.report()["changes"], json!([]));
    assert_eq!(describe(&pipeline, &pool_id).await, after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_refuses_to_replace_another_functions_trigger_without_replace() {
    let pipeline = start("attach_refuses_other_trigger").await;
    let trigger_arn = trigger_arn(&pipeline);
    let pool_id = pipeline.pool.id.clone();
    let before = configure_pool(&pipeline, &pool_id, Some(OTHER_TRIGGER)).await;
    let statements_before = policy_statements(&pipeline, &trigger_arn).await;

    for extra in [&["--dry-run"][..], &[]] {
        let mut args = vec!["attach-trigger", "--user-pool-id", &pool_id];
        args.extend_from_slice(extra);
        let run = pipeline.ops(&args).await;
        run.assert_refused(&format!(
            "already has another Post Confirmation trigger, {OTHER_TRIGGER}"
        ));
        assert!(run.stderr.contains("--replace"), "{run}");
    }
    assert_eq!(
        describe(&pipeline, &pool_id).await,
        before,
        "the refusal changed the pool"
    );
    assert_eq!(
        policy_statements(&pipeline, &trigger_arn).await,
        statements_before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_with_replace_says_which_function_it_replaced() {
    let pipeline = start("attach_replace").await;
    let trigger_arn = trigger_arn(&pipeline);
    let pool_id = pipeline.pool.id.clone();
    let before = configure_pool(&pipeline, &pool_id, Some(OTHER_TRIGGER)).await;

    let human = pipeline
        .ops(&[
            "attach-trigger",
            "--user-pool-id",
            &pool_id,
            "--replace",
            "--dry-run",
        ])
        .await;
    human.assert_code(0);
    assert!(
        human.stdout.contains(&format!(
            "would replace the Post Confirmation trigger {OTHER_TRIGGER}"
        )),
        "{human}"
    );
    assert_eq!(
        describe(&pipeline, &pool_id).await,
        before,
        "--dry-run changed the pool"
    );

    let run = pipeline
        .ops(&[
            "--json",
            "attach-trigger",
            "--user-pool-id",
            &pool_id,
            "--replace",
        ])
        .await;
    run.assert_code(0);
    let report = run.report();
    assert_eq!(report["replaced"], OTHER_TRIGGER);
    assert_eq!(
        report["changes"],
        json!([{
            "field": "LambdaConfig.PostConfirmation",
            "old": format!("{OTHER_TRIGGER:?}"),
            "new": format!("{trigger_arn:?}"),
        }])
    );
    let after = describe(&pipeline, &pool_id).await;
    assert_eq!(post_confirmation(&after), Some(trigger_arn.as_str()));
    assert_eq!(except_post_confirmation(after), except_post_confirmation(before));

    let human = pipeline
        .ops(&["attach-trigger", "--user-pool-id", &pool_id, "--replace"])
        .await;
    human.assert_code(0);
    assert!(human.stdout.contains("is already"), "{human}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_refuses_a_pool_the_deployment_does_not_serve() {
    let pipeline = start("attach_refuses_foreign_pool").await;
    let trigger_arn = trigger_arn(&pipeline);
    let served = pipeline.pool.id.clone();
    let foreign = create_pool(&pipeline, "another-application").await;
    let before = describe(&pipeline, &foreign).await;
    let statements_before = policy_statements(&pipeline, &trigger_arn).await;

    // The stack's UserPoolId output says which pool it serves.
    assert_eq!(pipeline.stack.output("UserPoolId").unwrap(), served);
    let run = pipeline
        .ops(&["attach-trigger", "--user-pool-id", &foreign])
        .await;
    run.assert_refused(&format!(
        "user pool {foreign} is not the pool stack `{STACK}` serves ({served}"
    ));
    assert!(run.stderr.contains("fail every confirmation"), "{run}");

    // Without a readable stack, the function's own USER_POOL_ID says it.
    let gone = [
        "--stack-name",
        "no-such-stack",
        "attach-trigger",
        "--function-arn",
        &trigger_arn,
    ];
    let run = pipeline
        .ops_choosing_the_stack(&[&gone[..], &["--user-pool-id", &foreign]].concat())
        .await;
    run.assert_refused(&format!(
        "user pool {foreign} is not the pool function {trigger_arn} serves ({served}, its USER_POOL_ID)"
    ));
    assert_eq!(
        describe(&pipeline, &foreign).await,
        before,
        "the refusal changed the pool"
    );
    assert_eq!(
        policy_statements(&pipeline, &trigger_arn).await,
        statements_before
    );

    // ... and lets the served pool through.
    let run = pipeline
        .ops_choosing_the_stack(&[&gone[..], &["--user-pool-id", &served, "--dry-run"]].concat())
        .await;
    run.assert_code(0);
    assert!(run.stdout.contains("LambdaConfig.PostConfirmation"), "{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_refuses_a_pool_modified_since_the_reviewed_dry_run() {
    let pipeline = start("attach_refuses_modified_pool").await;
    let pool_id = pipeline.pool.id.clone();
    let before = configure_pool(&pipeline, &pool_id, None).await;

    let dry = pipeline
        .ops(&[
            "--json",
            "attach-trigger",
            "--user-pool-id",
            &pool_id,
            "--dry-run",
        ])
        .await;
    dry.assert_code(0);
    let reviewed = dry.report()["pool_last_modified"].as_str().unwrap().to_owned();
    assert_eq!(reviewed, printed_last_modified(&before));
    let human = pipeline
        .ops(&["attach-trigger", "--user-pool-id", &pool_id, "--dry-run"])
        .await;
    assert!(
        human
            .stdout
            .contains(&format!("--expect-last-modified {reviewed}")),
        "{human}"
    );

    // A review of the pool as it was before its last modification (moto cannot move the
    // date, so the review is the one made earlier, not the pool).
    let reviewed_at = shared::timestamp::parse_rfc3339(&reviewed).unwrap();
    let earlier = format_rfc3339(reviewed_at - Duration::milliseconds(1));
    let run = pipeline
        .ops(&[
            "attach-trigger",
            "--user-pool-id",
            &pool_id,
            "--expect-last-modified",
            &earlier,
        ])
        .await;
    run.assert_refused(&format!(
        "user pool {pool_id} was last modified at {reviewed}, not at {earlier}"
    ));
    assert!(run.stderr.contains("changed since that review"), "{run}");
    assert_eq!(
        describe(&pipeline, &pool_id).await,
        before,
        "the refusal changed the pool"
    );

    // The reviewed time applies, whatever offset it is written in.
    let in_paris = reviewed_at
        .to_offset(UtcOffset::from_hms(1, 0, 0).unwrap())
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let run = pipeline
        .ops(&[
            "attach-trigger",
            "--user-pool-id",
            &pool_id,
            "--expect-last-modified",
            &in_paris,
        ])
        .await;
    run.assert_code(0);
    assert!(
        post_confirmation(&describe(&pipeline, &pool_id).await).is_some(),
        "{run}"
    );

    let run = pipeline
        .ops(&[
            "attach-trigger",
            "--user-pool-id",
            &pool_id,
            "--expect-last-modified",
            "yesterday",
        ])
        .await;
    run.assert_code(2);
    assert!(run.stderr.contains("not an RFC 3339 time"), "{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detach_removes_only_post_confirmation_even_after_the_stack_is_deleted() {
    let pipeline = start("detach_trigger").await;
    let trigger_arn = trigger_arn(&pipeline);
    let pool_id = pipeline.pool.id.clone();
    let before = configure_pool(&pipeline, &pool_id, None).await;
    pipeline
        .ops(&["attach-trigger", "--user-pool-id", &pool_id])
        .await
        .assert_code(0);
    let attached = describe(&pipeline, &pool_id).await;
    assert_eq!(post_confirmation(&attached), Some(trigger_arn.as_str()));

    let dry = pipeline
        .ops(&[
            "--json",
            "detach-trigger",
            "--user-pool-id",
            &pool_id,
            "--dry-run",
        ])
        .await;
    dry.assert_code(0);
    let removal = json!([{
        "field": "LambdaConfig.PostConfirmation",
        "old": format!("{trigger_arn:?}"),
        "new": "(not set)",
    }]);
    assert_eq!(dry.report()["changes"], removal, "{dry}");
    assert_eq!(
        describe(&pipeline, &pool_id).await,
        attached,
        "--dry-run changed the pool"
    );

    let run = pipeline
        .ops(&["--json", "detach-trigger", "--user-pool-id", &pool_id])
        .await;
    run.assert_code(0);
    assert_eq!(run.report()["changes"], removal);
    let detached = describe(&pipeline, &pool_id).await;
    assert_eq!(post_confirmation(&detached), None);
    assert_eq!(
        except_post_confirmation(detached.clone()),
        except_post_confirmation(before.clone()),
        "detach-trigger changed more than the Post Confirmation trigger"
    );

    // Nothing left to remove: a no-op.
    let again = pipeline
        .ops(&["detach-trigger", "--user-pool-id", &pool_id])
        .await;
    again.assert_code(0);
    assert!(again.stdout.contains("is not set: pool not updated"), "{again}");
    assert_eq!(describe(&pipeline, &pool_id).await, detached);

    // Attached again, then the stack deleted with its function: the pool keeps naming it.
    pipeline
        .ops(&["attach-trigger", "--user-pool-id", &pool_id])
        .await
        .assert_code(0);
    let cloudformation = aws_sdk_cloudformation::Client::new(&pipeline.sdk);
    cloudformation
        .delete_stack()
        .stack_name(STACK)
        .send()
        .await
        .expect("DeleteStack");
    let lambda = aws_sdk_lambda::Client::new(&pipeline.sdk);
    if lambda
        .get_function()
        .function_name(&trigger_arn)
        .send()
        .await
        .is_ok()
    {
        // Whether moto's DeleteStack deletes the function is moto's business; the point here
        // is a trigger that no longer exists.
        lambda
            .delete_function()
            .function_name(&trigger_arn)
            .send()
            .await
            .expect("DeleteFunction");
    }

    // The stack no longer names the function; the refusal says what the pool names.
    let run = pipeline
        .ops(&["detach-trigger", "--user-pool-id", &pool_id])
        .await;
    run.assert_refused(&format!("pass --function-arn {trigger_arn}"));
    let run = pipeline
        .ops(&[
            "detach-trigger",
            "--user-pool-id",
            &pool_id,
            "--function-arn",
            &trigger_arn,
        ])
        .await;
    run.assert_code(0);
    let detached = describe(&pipeline, &pool_id).await;
    assert_eq!(post_confirmation(&detached), None, "{run}");
    assert_eq!(
        except_post_confirmation(detached),
        except_post_confirmation(before)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detach_refuses_another_functions_trigger() {
    let pipeline = start("detach_refuses_other_trigger").await;
    let trigger_arn = trigger_arn(&pipeline);
    let pool_id = pipeline.pool.id.clone();
    let before = configure_pool(&pipeline, &pool_id, Some(OTHER_TRIGGER)).await;

    for extra in [&["--dry-run"][..], &[]] {
        let mut args = vec!["detach-trigger", "--user-pool-id", &pool_id];
        args.extend_from_slice(extra);
        let run = pipeline.ops(&args).await;
        run.assert_refused(&format!(
            "Post Confirmation trigger is another function, {OTHER_TRIGGER}, not {trigger_arn}"
        ));
    }
    assert_eq!(
        describe(&pipeline, &pool_id).await,
        before,
        "the refusal changed the pool"
    );
}
