//! The decisions of `attach-trigger` and `detach-trigger`, on hand-built pools.

use aws_sdk_cognitoidentityprovider::types::*;
use serde_json::{Value, json};
use shared::timestamp::format_rfc3339;
use time::OffsetDateTime;

use super::permission::{Grant, Permission, plan_permission, statement_id};
use super::pool_update::*;
use super::report::AttachReport;
use super::{Attachment, check_served_pool, parse_time, plan_attach};
use crate::detach_trigger::{Detachment, plan_detach};
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

#[test]
fn the_report_says_what_a_dry_run_would_do_for_a_person_and_a_script() {
    let pool = full_pool();
    let changes = changes(&pool, &attach(&pool, TRIGGER).build().unwrap());
    let grant = Grant::for_pool(POOL_ARN).unwrap();
    let previous = lambda("legacy-sync");
    let report = AttachReport {
        pool_id: POOL,
        function_arn: TRIGGER,
        dry_run: true,
        attachment: &Attachment::Replace {
            previous: previous.clone(),
        },
        changes: &changes,
        permission: &Permission::Add {
            statement_id: statement_id(POOL),
        },
        grant: &grant,
        read: at(1_795_457_327_123_000_000),
    };
    let (human, json) = report.render();
    for needle in [
        "(dry run: nothing changed)",
        "LambdaConfig.PostConfirmation: (not set) -> ",
        &format!("would replace the Post Confirmation trigger {previous}"),
        "permission for cognito-idp.amazonaws.com",
        "would add",
        "--expect-last-modified 2026-11-23T18:08:47.123Z",
    ] {
        assert!(human.contains(needle), "{needle:?} not in {human}");
    }
    assert_eq!(json["replaced"], json!(previous));
    assert_eq!(json["permission"], "would_add");
    assert_eq!(json["changes"][0]["field"], POST_CONFIRMATION);
    assert_eq!(json["pool_last_modified"], "2026-11-23T18:08:47.123Z");
}
