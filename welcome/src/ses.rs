//! The one SES call: `SendEmail` (SES API v2) of one welcome, and what its failure means.

use aws_sdk_sesv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::types::{
    Body, Content as MailText, Destination, EmailContent, Message, Template as SesTemplate,
};

use crate::config::{Content, WelcomeConfig};
use crate::template::{ALWAYS_PRESENT, ATTRIBUTES, Values};

/// One user's welcome, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rendered {
    Simple {
        subject: String,
        body: String,
    },
    /// An SES template, with the user's values as its data (only those the user has, so that
    /// the template's `{{#if given_name}}` works).
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
                .filter_map(|field| {
                    let value = values.value(field)?;
                    Some((field.to_owned(), serde_json::Value::String(value)))
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
    /// recipient, a paused account) fails the same way until someone changes something.
    pub retryable: bool,
    pub code: String,
    pub status: Option<u16>,
}

/// The codes worth another try (besides any 5xx and 429).
const RETRYABLE: [&str; 3] = [
    "TooManyRequestsException",
    "LimitExceededException",
    "ThrottlingException",
];

pub fn send_error<E: ProvideErrorMetadata>(
    err: &SdkError<E, aws_sdk_sesv2::config::http::HttpResponse>,
) -> SendError {
    let (retryable, code, status) = match err {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("unknown").to_owned();
            let status = service.raw().status().as_u16();
            let retryable = RETRYABLE.contains(&code.as_str()) || status >= 500 || status == 429;
            (retryable, code, Some(status))
        }
        SdkError::TimeoutError(_) => (true, "timeout".to_owned(), None),
        SdkError::DispatchFailure(_) => (true, "dispatch failure".to_owned(), None),
        SdkError::ResponseError(_) => (true, "unreadable response".to_owned(), None),
        _ => (false, "request not built".to_owned(), None),
    };
    SendError {
        retryable,
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
    /// whose answer was lost sends twice; a throttle or 5xx fails the record and SQS retries it.
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

    /// Sends `mail` to `to`; SES's message id.
    pub async fn send(&self, to: &str, mail: Rendered) -> Result<String, SendError> {
        let not_built = |_| SendError {
            retryable: false,
            code: "request not built".to_owned(),
            status: None,
        };
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
            .from_email_address(&self.config.from_address)
            .destination(Destination::builder().to_addresses(to).build())
            .content(content)
            .set_configuration_set_name(self.config.configuration_set.clone())
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
    fn an_ses_template_gets_only_the_values_the_user_has() {
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
        assert_eq!(data, serde_json::json!({"username": "zoë", "given_name": "Zoë"}));
    }
}
