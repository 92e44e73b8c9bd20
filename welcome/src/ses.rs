//! The one SES call: `SendEmail` (SES API v2) of one welcome, and what its failure means.

use aws_sdk_sesv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::types::{
    Body, Content as MailText, Destination, EmailContent, Message, MessageTag, Template as SesTemplate,
};

use crate::config::{Content, WelcomeConfig};
use crate::message::{STACK_TAG, SUB_TAG};
use crate::quota::SendQuota;
use crate::template::{ALWAYS_PRESENT, ATTRIBUTES, Values};

/// One user's welcome, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rendered {
    Simple {
        subject: String,
        body: String,
    },
    /// An SES template, with every documented key as its data: the user's value, or an empty
    /// string when they have none. SES renders the template after `SendEmail` has succeeded, and
    /// drops the mail (a "Rendering Failure" event, nothing else) when a variable it uses is
    /// missing from the data; an empty string renders, and `{{#if given_name}}` still tests false.
    Template {
        name: String,
        data: String,
    },
}

/// Renders `content` for one user.
pub fn render(content: &Content, values: &Values<'_>) -> Rendered {
    match content {
        Content::Repository { subject, body } => Rendered::Simple {
            subject: subject.render(values),
            body: body.render(values),
        },
        Content::SesTemplate { name } => {
            let data: serde_json::Map<String, serde_json::Value> = std::iter::once(ALWAYS_PRESENT)
                .chain(ATTRIBUTES)
                .map(|field| {
                    let value = values.value(field).unwrap_or_default();
                    (field.to_owned(), serde_json::Value::String(value))
                })
                .collect();
            Rendered::Template {
                name: name.clone(),
                data: serde_json::Value::Object(data).to_string(),
            }
        }
    }
}

/// Why SES did not take a welcome: its error code and HTTP status, never its message (which
/// can quote the recipient's address).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SendEmail failed ({}): {code}{}", if *retryable { "retryable" } else { "not retryable" }, status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
pub struct SendError {
    /// Throttling, a sending quota, SES's own failures, the network: worth another try later.
    /// Anything else (an unverified sender, a missing template or configuration set, a refused
    /// recipient, a suspended account) fails the same way until someone changes something.
    pub retryable: bool,
    /// SES answered with a client error (4xx): it did not take the mail. Otherwise (its 5xx, a
    /// timeout, a dropped connection) it may have: the answer is what was lost.
    pub certainly_not_sent: bool,
    pub code: String,
    pub status: Option<u16>,
}

/// The codes worth another try (besides any 5xx and 429): SES's rate and quota, and a pause
/// of the account's or the configuration set's sending, which SES lifts (a welcome waits it
/// out on its queue).
const RETRYABLE: [&str; 4] = [
    "TooManyRequestsException",
    "LimitExceededException",
    "ThrottlingException",
    "SendingPausedException",
];

/// Whether SES's answer `code` with HTTP `status` is worth another try later.
pub fn is_retryable(code: &str, status: u16) -> bool {
    RETRYABLE.contains(&code) || status >= 500 || status == 429
}

pub fn send_error<E: ProvideErrorMetadata>(
    err: &SdkError<E, aws_sdk_sesv2::config::http::HttpResponse>,
) -> SendError {
    let (retryable, certainly_not_sent, code, status) = match err {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("unknown").to_owned();
            let status = service.raw().status().as_u16();
            let retryable = is_retryable(&code, status);
            (retryable, status < 500, code, Some(status))
        }
        SdkError::TimeoutError(_) => (true, false, "timeout".to_owned(), None),
        SdkError::DispatchFailure(_) => (true, false, "dispatch failure".to_owned(), None),
        SdkError::ResponseError(_) => (true, false, "unreadable response".to_owned(), None),
        _ => (false, true, "request not built".to_owned(), None),
    };
    SendError {
        retryable,
        certainly_not_sent,
        code,
        status,
    }
}

/// Sends welcomes through SES.
#[derive(Debug, Clone)]
pub struct Mailer {
    client: aws_sdk_sesv2::Client,
    config: WelcomeConfig,
}

impl Mailer {
    pub fn new(client: aws_sdk_sesv2::Client, config: WelcomeConfig) -> Self {
        Self { client, config }
    }

    /// A mailer on the functions' shared SDK configuration, with the welcome's own limits: one
    /// attempt within `send_timeout`. No SDK retries: a repeated `SendEmail` after an attempt
    /// whose answer was lost sends twice; a throttle or 5xx hands the request back to the
    /// welcome queue.
    pub fn connect(sdk: &aws_config::SdkConfig, config: WelcomeConfig) -> Self {
        let timeouts = aws_sdk_sesv2::config::timeout::TimeoutConfig::builder()
            .connect_timeout(std::time::Duration::from_secs(1))
            .operation_attempt_timeout(config.send_timeout)
            .operation_timeout(config.send_timeout)
            .build();
        let ses = aws_sdk_sesv2::config::Builder::from(sdk)
            .timeout_config(timeouts)
            .retry_config(aws_sdk_sesv2::config::retry::RetryConfig::disabled())
            .build();
        Self::new(aws_sdk_sesv2::Client::from_conf(ses), config)
    }

    pub fn config(&self) -> &WelcomeConfig {
        &self.config
    }

    /// What SES says of the account's sending (`GetAccount`): its rate, its daily quota and
    /// how much of it is used.
    pub async fn send_quota(&self) -> Result<SendQuota, SendError> {
        let account = self
            .client
            .get_account()
            .send()
            .await
            .map_err(|err| send_error(&err))?;
        let quota = account.send_quota();
        Ok(SendQuota {
            max_send_rate: quota.map_or(1.0, |q| q.max_send_rate()),
            max_24_hour_send: quota.map_or(-1.0, |q| q.max24_hour_send()),
            sent_last_24_hours: quota.map_or(0.0, |q| q.sent_last24_hours()),
            sending_enabled: account.sending_enabled(),
            production_access: account.production_access_enabled(),
        })
    }

    /// Sends `mail` to `to`, tagged with the user's `sub` and the stack (SES's events about the
    /// mail carry both); SES's message id.
    pub async fn send(&self, to: &str, mail: Rendered, sub: &str) -> Result<String, SendError> {
        let not_built = |_| SendError {
            retryable: false,
            certainly_not_sent: true,
            code: "request not built".to_owned(),
            status: None,
        };
        let tag = |name: &str, value: &str| MessageTag::builder().name(name).value(value).build();
        let text = |data: String| MailText::builder().data(data).charset("UTF-8").build();
        let content = match mail {
            Rendered::Simple { subject, body } => EmailContent::builder()
                .simple(
                    Message::builder()
                        .subject(text(subject).map_err(not_built)?)
                        .body(Body::builder().text(text(body).map_err(not_built)?).build())
                        .build(),
                )
                .build(),
            Rendered::Template { name, data } => EmailContent::builder()
                .template(
                    SesTemplate::builder()
                        .template_name(name)
                        .template_data(data)
                        .build(),
                )
                .build(),
        };
        let sent = self
            .client
            .send_email()
            .from_email_address(self.config.from())
            .destination(Destination::builder().to_addresses(to).build())
            .content(content)
            .configuration_set_name(&self.config.configuration_set)
            .email_tags(tag(SUB_TAG, sub).map_err(not_built)?)
            .email_tags(tag(STACK_TAG, &self.config.stack_tag).map_err(not_built)?)
            .send()
            .await
            .map_err(|err| send_error(&err))?;
        Ok(sent.message_id().unwrap_or_default().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::template::Template;

    fn values(attributes: &BTreeMap<String, String>) -> Values<'_> {
        Values {
            username: "zoë",
            attributes,
        }
    }

    #[test]
    fn rate_quota_pause_and_ses_failures_are_retried_and_the_rest_refused_for_good() {
        for (code, status) in [
            ("TooManyRequestsException", 429),
            ("ThrottlingException", 400),
            ("LimitExceededException", 400),
            ("SendingPausedException", 400),
            ("InternalFailure", 500),
        ] {
            assert!(is_retryable(code, status), "{code}");
        }
        for code in [
            "MessageRejected",
            "AccountSuspendedException",
            "AccessDeniedException",
            "NotFoundException",
            "MailFromDomainNotVerifiedException",
        ] {
            assert!(!is_retryable(code, 400), "{code}");
        }
    }

    #[test]
    fn the_repository_content_renders_here() {
        let content = Content::Repository {
            subject: Template::parse("Welcome[, {given_name}]").unwrap(),
            body: Template::parse("Hi {name|username}").unwrap(),
        };
        let attributes = BTreeMap::from([("given_name".to_owned(), "Zoë".to_owned())]);
        assert_eq!(
            render(&content, &values(&attributes)),
            Rendered::Simple {
                subject: "Welcome, Zoë".into(),
                body: "Hi zoë".into()
            }
        );
    }

    #[test]
    fn an_ses_template_gets_every_documented_key_empty_when_the_user_has_no_value() {
        let content = Content::SesTemplate {
            name: "welcome".into(),
        };
        let attributes = BTreeMap::from([
            ("given_name".to_owned(), "Zoë\n".to_owned()),
            ("family_name".to_owned(), " ".to_owned()),
            ("custom:plan".to_owned(), "pro".to_owned()),
            ("phone_number".to_owned(), "+15555550100".to_owned()),
        ]);
        let Rendered::Template { name, data } = render(&content, &values(&attributes)) else {
            panic!("an SES template");
        };
        assert_eq!(name, "welcome");
        let data: serde_json::Value = serde_json::from_str(&data).unwrap();
        // Every key a template may use is there, so no variable is ever missing from the data
        // (SES would drop the mail after accepting it); custom attributes and the phone are not.
        assert_eq!(
            data,
            serde_json::json!({
                "username": "zoë", "given_name": "Zoë", "family_name": "", "middle_name": "",
                "name": "", "nickname": "", "preferred_username": "", "email": ""
            })
        );
    }
}
