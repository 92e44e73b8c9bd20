//! `ops welcome check`: whether a welcome can be sent, asked of SES and IAM before the first
//! sign-up instead of learnt from the first refusal.
//!
//! The facts come from the deployed welcomer (its settings and role), SES (`GetAccount`,
//! `GetEmailIdentity`, `GetConfigurationSet`, `GetEmailTemplate`, `TestRenderEmailTemplate` with
//! the data of a user who has no optional attribute) and IAM's policy simulator
//! (`SimulatePrincipalPolicy` of the welcomer's role, with the From address as SES passes it).
//! [`assess`] turns them into findings; only a finding that stops every welcome exits non-zero.

use anyhow::{Context, Result};
use aws_sdk_iam::types::{ContextEntry, ContextKeyTypeEnum, PolicyEvaluationDecisionType};
use serde_json::json;
use welcome::template::{ALWAYS_PRESENT, ATTRIBUTES};

use crate::{Ctx, Outcome, aws};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The welcomer function (instead of the stack's WelcomerFunctionName output).
    #[arg(long, value_name = "NAME")]
    pub function_name: Option<String>,
}

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Ok,
    /// Worth knowing; welcomes are sent.
    Note,
    /// Could not be checked (the operator's credentials may not allow the call).
    Unchecked,
    /// No welcome can be sent until it is fixed.
    Blocks,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Note => "note",
            Self::Unchecked => "unchecked",
            Self::Blocks => "blocks",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub check: &'static str,
    pub severity: Severity,
    pub detail: String,
}

/// What `GetAccount` says.
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    pub sending_enabled: bool,
    pub production_access: bool,
    pub enforcement_status: Option<String>,
    pub quota: welcome::quota::SendQuota,
}

/// The sender identity, as `GetEmailIdentity` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub verified_for_sending: bool,
    pub default_configuration_set: Option<String>,
}

/// Everything the check learnt; a call that failed keeps its error (code and message: about
/// the account's resources, never a user).
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    pub sender_identity: String,
    pub from_address: String,
    pub configuration_set: String,
    pub account: Result<Account, String>,
    pub identity: Result<Identity, String>,
    /// The From address's own identity, when it is not the sender identity and is verified
    /// beside it: SES then authorizes the send by that address identity.
    pub address_identity: Option<Identity>,
    pub configuration_set_exists: Result<(), String>,
    /// `None`: the repository's content, built into the welcomer (checked by its tests).
    pub template: Option<Template>,
    /// Each (action, resource) simulated for the welcomer's role, and IAM's decision.
    pub permissions: Result<Vec<(String, String, String)>, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub name: String,
    pub exists: Result<(), String>,
    /// `TestRenderEmailTemplate` with every documented key empty but the username.
    pub renders_for_a_user_with_no_optional_attribute: Result<(), String>,
}

/// The findings the facts add up to, one per check.
pub fn assess(facts: &Facts) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut add = |check, severity, detail: String| {
        findings.push(Finding {
            check,
            severity,
            detail,
        })
    };
    match &facts.account {
        Err(err) => add(
            "account",
            Severity::Unchecked,
            format!("GetAccount failed: {err}"),
        ),
        Ok(account) => {
            if !account.sending_enabled {
                add(
                    "sending",
                    Severity::Blocks,
                    format!(
                        "SES has paused this account's sending (enforcement status {}): see the SES console's reputation dashboard",
                        account.enforcement_status.as_deref().unwrap_or("unknown")
                    ),
                );
            } else {
                add("sending", Severity::Ok, "enabled".to_owned());
            }
            let quota = &account.quota;
            let limits = format!(
                "{} a second, {} a rolling day ({} used)",
                quota.max_send_rate,
                if quota.max_24_hour_send < 0.0 {
                    "unlimited".to_owned()
                } else {
                    quota.max_24_hour_send.to_string()
                },
                quota.sent_last_24_hours
            );
            if quota.daily_quota_reached() {
                add(
                    "quota",
                    Severity::Blocks,
                    format!(
                        "the daily quota is used up ({limits}): welcomes wait, retried for more than a day"
                    ),
                );
            } else {
                add("quota", Severity::Ok, limits);
            }
            if account.production_access {
                add("sandbox", Severity::Ok, "production access".to_owned());
            } else {
                add(
                    "sandbox",
                    Severity::Note,
                    "the account is in the SES sandbox: only verified recipients get a welcome; request production access".to_owned(),
                );
            }
        }
    }
    match &facts.identity {
        Err(err) => add(
            "identity",
            Severity::Blocks,
            format!("{}: GetEmailIdentity failed: {err}", facts.sender_identity),
        ),
        Ok(identity) if !identity.verified_for_sending => add(
            "identity",
            Severity::Blocks,
            format!("{} is not verified for sending", facts.sender_identity),
        ),
        Ok(identity) => {
            add(
                "identity",
                Severity::Ok,
                format!("{} is verified", facts.sender_identity),
            );
            if let Some(default) = &identity.default_configuration_set {
                add(
                    "default configuration set",
                    Severity::Note,
                    format!(
                        "{} has the default configuration set {default}; the welcome names {} instead",
                        facts.sender_identity, facts.configuration_set
                    ),
                );
            }
        }
    }
    if let Some(address) = &facts.address_identity {
        add(
            "address identity",
            if address.verified_for_sending {
                Severity::Note
            } else {
                Severity::Blocks
            },
            format!(
                "{} is an identity of its own{}: SES authorizes the welcome by it",
                facts.from_address,
                if address.verified_for_sending {
                    ""
                } else {
                    ", not verified"
                }
            ),
        );
    }
    match &facts.configuration_set_exists {
        Ok(()) => add("configuration set", Severity::Ok, facts.configuration_set.clone()),
        Err(err) => add(
            "configuration set",
            Severity::Blocks,
            format!("{}: {err}", facts.configuration_set),
        ),
    }
    match &facts.template {
        None => add(
            "template",
            Severity::Ok,
            "the repository's subject and body (checked when built)".to_owned(),
        ),
        Some(template) => match (
            &template.exists,
            &template.renders_for_a_user_with_no_optional_attribute,
        ) {
            (Err(err), _) => add("template", Severity::Blocks, format!("{}: {err}", template.name)),
            (Ok(()), Err(err)) => add(
                "template",
                Severity::Blocks,
                format!(
                    "{} does not render for a user with no optional attribute (SES would accept the welcome and drop it): {err}",
                    template.name
                ),
            ),
            (Ok(()), Ok(())) => add(
                "template",
                Severity::Ok,
                format!("{} renders for a user with no optional attribute", template.name),
            ),
        },
    }
    match &facts.permissions {
        Err(err) => add(
            "permissions",
            Severity::Unchecked,
            format!("SimulatePrincipalPolicy failed: {err}"),
        ),
        Ok(decisions) => {
            let denied: Vec<String> = decisions
                .iter()
                .filter(|(_, _, decision)| decision != "allowed")
                .map(|(action, resource, decision)| format!("{action} on {resource}: {decision}"))
                .collect();
            if denied.is_empty() {
                add(
                    "permissions",
                    Severity::Ok,
                    format!(
                        "the welcomer's role may do all {} that SES evaluates",
                        decisions.len()
                    ),
                );
            } else {
                add("permissions", Severity::Blocks, denied.join("; "));
            }
        }
    }
    findings
}

/// The data `TestRenderEmailTemplate` renders with: a user who has a username and nothing
/// else, as the welcomer sends it (every documented key, empty when absent).
pub fn data_of_a_user_with_no_optional_attribute() -> String {
    let data: serde_json::Map<String, serde_json::Value> = std::iter::once(ALWAYS_PRESENT)
        .chain(ATTRIBUTES)
        .map(|key| {
            let value = if key == ALWAYS_PRESENT { "check-user" } else { "" };
            (key.to_owned(), json!(value))
        })
        .collect();
    serde_json::Value::Object(data).to_string()
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<Outcome> {
    let function = ctx.names.welcomer_function(args.function_name.as_deref()).await?;
    let configuration = ctx
        .lambda
        .get_function_configuration()
        .function_name(&function)
        .send()
        .await
        .with_context(|| format!("cannot read the welcomer {function}"))?;
    let env = configuration
        .environment()
        .and_then(|e| e.variables())
        .cloned()
        .unwrap_or_default();
    let setting = |name: &str| env.get(name).filter(|v| !v.is_empty()).cloned();
    let sender_identity = setting("WELCOME_SENDER_IDENTITY")
        .with_context(|| format!("{function} has no WELCOME_SENDER_IDENTITY: is it the welcomer?"))?;
    let from_address = setting("WELCOME_FROM_ADDRESS").unwrap_or_else(|| sender_identity.clone());
    let configuration_set = setting("WELCOME_CONFIGURATION_SET").unwrap_or_default();
    let template_name = setting("WELCOME_SES_TEMPLATE");
    let role = configuration.role().unwrap_or_default().to_owned();
    // arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME
    let arn: Vec<&str> = configuration
        .function_arn()
        .unwrap_or_default()
        .split(':')
        .collect();
    let (partition, region, account) = match arn.as_slice() {
        ["arn", partition, "lambda", region, account, ..] => (*partition, *region, *account),
        _ => anyhow::bail!("{function} has no function ARN to read the account and region from"),
    };
    let ses_arn = |kind: &str, name: &str| format!("arn:{partition}:ses:{region}:{account}:{kind}/{name}");

    let ses = &ctx.ses;
    let identity_of = |name: String| async move {
        ses.get_email_identity()
            .email_identity(name)
            .send()
            .await
            .map(|found| Identity {
                // Either says so on AWS; moto leaves VerifiedForSendingStatus false for every
                // identity, and sends from it.
                verified_for_sending: found.verified_for_sending_status()
                    || found.verification_status()
                        == Some(&aws_sdk_sesv2::types::VerificationStatus::Success),
                default_configuration_set: found
                    .configuration_set_name()
                    .filter(|n| !n.is_empty())
                    .map(str::to_owned),
            })
            .map_err(|err| aws::detail(&err))
    };
    let account_facts = ses
        .get_account()
        .send()
        .await
        .map(|account| {
            let quota = account.send_quota();
            Account {
                sending_enabled: account.sending_enabled(),
                production_access: account.production_access_enabled(),
                enforcement_status: account.enforcement_status().map(str::to_owned),
                quota: welcome::quota::SendQuota {
                    max_send_rate: quota.map_or(0.0, |q| q.max_send_rate()),
                    max_24_hour_send: quota.map_or(0.0, |q| q.max24_hour_send()),
                    sent_last_24_hours: quota.map_or(0.0, |q| q.sent_last24_hours()),
                    sending_enabled: account.sending_enabled(),
                    production_access: account.production_access_enabled(),
                },
            }
        })
        .map_err(|err| aws::detail(&err));
    let identity = identity_of(sender_identity.clone()).await;
    let address_identity = if from_address.eq_ignore_ascii_case(&sender_identity) {
        None
    } else {
        identity_of(from_address.clone()).await.ok()
    };
    let configuration_set_exists = ses
        .get_configuration_set()
        .configuration_set_name(&configuration_set)
        .send()
        .await
        .map(|_| ())
        .map_err(|err| aws::detail(&err));
    let template = match &template_name {
        None => None,
        Some(name) => Some(Template {
            name: name.clone(),
            exists: ses
                .get_email_template()
                .template_name(name)
                .send()
                .await
                .map(|_| ())
                .map_err(|err| aws::detail(&err)),
            renders_for_a_user_with_no_optional_attribute: ses
                .test_render_email_template()
                .template_name(name)
                .template_data(data_of_a_user_with_no_optional_attribute())
                .send()
                .await
                .map(|_| ())
                .map_err(|err| aws::detail(&err)),
        }),
    };
    // What SES evaluates for one send: the sender identity (and the address's own, when it has
    // one), the configuration set and the template; in the sandbox a recipient's identity too,
    // which an example address stands for. And the quota read.
    let mut resources = vec![ses_arn("identity", &sender_identity)];
    if address_identity.is_some() {
        resources.push(ses_arn("identity", &from_address));
    }
    resources.push(ses_arn("configuration-set", &configuration_set));
    if let Some(name) = &template_name {
        resources.push(ses_arn("template", name));
    }
    if matches!(&account_facts, Ok(a) if !a.production_access) {
        resources.push(ses_arn("identity", "recipient@example.com"));
    }
    let permissions = simulate(ctx, &role, &from_address, &resources).await;
    let facts = Facts {
        sender_identity,
        from_address,
        configuration_set,
        account: account_facts,
        identity,
        address_identity,
        configuration_set_exists,
        template,
        permissions,
    };
    let findings = assess(&facts);
    for finding in &findings {
        ctx.printer.report(
            &format!(
                "{:>9}  {}: {}",
                finding.severity.as_str(),
                finding.check,
                finding.detail
            ),
            &json!({
                "command": "welcome check",
                "check": finding.check,
                "severity": finding.severity.as_str(),
                "detail": finding.detail,
            }),
        );
    }
    let blocking = findings.iter().filter(|f| f.severity == Severity::Blocks).count();
    ctx.printer.report(
        &if blocking == 0 {
            format!("welcome check of {function}: a welcome can be sent")
        } else {
            format!("welcome check of {function}: no welcome can be sent until {blocking} finding(s) marked `blocks` are fixed")
        },
        &json!({"command": "welcome check", "function": function, "blocking": blocking, "ready": blocking == 0}),
    );
    Ok(if blocking == 0 {
        Outcome::Done
    } else {
        Outcome::NotReady
    })
}

/// IAM's decision for each (action, resource) the welcomer needs, with the From address as the
/// `ses:FromAddress` SES passes.
async fn simulate(
    ctx: &Ctx,
    role: &str,
    from_address: &str,
    resources: &[String],
) -> Result<Vec<(String, String, String)>, String> {
    let from = ContextEntry::builder()
        .context_key_name("ses:FromAddress")
        .context_key_type(ContextKeyTypeEnum::String)
        .context_key_values(from_address)
        .build();
    let mut decisions = Vec::new();
    for (action, resources) in [
        ("ses:SendEmail", resources.to_vec()),
        ("ses:GetAccount", vec!["*".to_owned()]),
    ] {
        let simulated = ctx
            .iam
            .simulate_principal_policy()
            .policy_source_arn(role)
            .action_names(action)
            .set_resource_arns(Some(resources))
            .context_entries(from.clone())
            .send()
            .await
            .map_err(|err| aws::detail(&err))?;
        for result in simulated.evaluation_results() {
            let per_resource = result.resource_specific_results();
            if per_resource.is_empty() {
                decisions.push((
                    action.to_owned(),
                    result.eval_resource_name().unwrap_or("*").to_owned(),
                    decision(result.eval_decision()),
                ));
            }
            for specific in per_resource {
                decisions.push((
                    action.to_owned(),
                    specific.eval_resource_name().to_owned(),
                    decision(specific.eval_resource_decision()),
                ));
            }
        }
    }
    Ok(decisions)
}

fn decision(decision: &PolicyEvaluationDecisionType) -> String {
    decision.as_str().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use welcome::quota::SendQuota;

    fn ready() -> Facts {
        Facts {
            sender_identity: "example.com".into(),
            from_address: "hello@example.com".into(),
            configuration_set: "stack-welcome".into(),
            account: Ok(Account {
                sending_enabled: true,
                production_access: true,
                enforcement_status: Some("HEALTHY".into()),
                quota: SendQuota {
                    max_send_rate: 14.0,
                    max_24_hour_send: 50_000.0,
                    sent_last_24_hours: 10.0,
                    sending_enabled: true,
                    production_access: true,
                },
            }),
            identity: Ok(Identity {
                verified_for_sending: true,
                default_configuration_set: None,
            }),
            address_identity: None,
            configuration_set_exists: Ok(()),
            template: Some(Template {
                name: "welcome".into(),
                exists: Ok(()),
                renders_for_a_user_with_no_optional_attribute: Ok(()),
            }),
            permissions: Ok(vec![(
                "ses:SendEmail".into(),
                "arn:aws:ses:us-east-1:1:identity/example.com".into(),
                "allowed".into(),
            )]),
        }
    }

    fn blocking(facts: &Facts) -> Vec<&'static str> {
        assess(facts)
            .into_iter()
            .filter(|f| f.severity == Severity::Blocks)
            .map(|f| f.check)
            .collect()
    }

    #[test]
    fn a_ready_account_blocks_nothing() {
        assert_eq!(blocking(&ready()), Vec::<&str>::new());
    }

    #[test]
    fn each_thing_that_stops_every_welcome_blocks_and_is_named() {
        let mut facts = ready();
        facts.account.as_mut().unwrap().sending_enabled = false;
        facts.account.as_mut().unwrap().quota.sent_last_24_hours = 50_000.0;
        facts.identity = Ok(Identity {
            verified_for_sending: false,
            default_configuration_set: None,
        });
        facts.configuration_set_exists = Err("NotFoundException: no such set".into());
        facts
            .template
            .as_mut()
            .unwrap()
            .renders_for_a_user_with_no_optional_attribute =
            Err("BadRequestException: Attribute 'given_name' is not present in the rendering data.".into());
        facts.permissions = Ok(vec![(
            "ses:SendEmail".into(),
            "arn:aws:ses:us-east-1:1:identity/recipient@example.com".into(),
            "implicitDeny".into(),
        )]);
        assert_eq!(
            blocking(&facts),
            [
                "sending",
                "quota",
                "identity",
                "configuration set",
                "template",
                "permissions"
            ]
        );
    }

    #[test]
    fn the_sandbox_and_a_default_configuration_set_are_notes_and_an_unanswered_call_unchecked() {
        let mut facts = ready();
        facts.account.as_mut().unwrap().production_access = false;
        facts.identity.as_mut().unwrap().default_configuration_set = Some("team-default".into());
        facts.permissions = Err("AccessDenied: not allowed".into());
        let findings = assess(&facts);
        let severity = |check: &str| findings.iter().find(|f| f.check == check).unwrap().severity;
        assert_eq!(severity("sandbox"), Severity::Note);
        assert_eq!(severity("default configuration set"), Severity::Note);
        assert_eq!(severity("permissions"), Severity::Unchecked);
        assert_eq!(blocking(&facts), Vec::<&str>::new());
    }

    #[test]
    fn the_render_data_has_every_key_empty_but_the_username() {
        let data: serde_json::Value =
            serde_json::from_str(&data_of_a_user_with_no_optional_attribute()).unwrap();
        let object = data.as_object().unwrap();
        assert_eq!(object.len(), 1 + ATTRIBUTES.len());
        assert_eq!(object["username"], "check-user");
        assert!(ATTRIBUTES.iter().all(|key| object[*key] == ""));
    }
}
