//! SES in moto: verifying a sender identity (SES API v2, through the SDK) and reading back the
//! mail moto accepted, from its backend API (`/moto-api/data.json`): moto keeps sent mail there
//! instead of delivering it.

use std::io::{Read, Write};
use std::net::TcpStream;

use anyhow::{Context, Result, bail};
use aws_config::SdkConfig;
use serde_json::Value;

/// Creates `identity` (an address or a domain) in moto's SES, which counts it as verified.
pub async fn verify_identity(sdk: &SdkConfig, identity: &str) -> Result<()> {
    aws_sdk_sesv2::Client::new(sdk)
        .create_email_identity()
        .email_identity(identity)
        .send()
        .await
        .with_context(|| format!("CreateEmailIdentity of {identity} failed"))?;
    Ok(())
}

/// One mail SES accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMail {
    pub id: String,
    pub source: String,
    pub to: Vec<String>,
    pub subject: String,
    pub body: String,
}

/// Every mail moto's SES accepted so far, oldest first.
pub fn sent_mail(endpoint: &str) -> Result<Vec<SentMail>> {
    let data = moto_data(endpoint)?;
    let messages = match &data["ses"]["Message"] {
        Value::Array(messages) => messages.clone(),
        Value::Null => Vec::new(),
        other => bail!("moto's ses.Message is not a list: {other}"),
    };
    messages
        .iter()
        .map(|m| {
            let text = |name: &str| {
                m[name]
                    .as_str()
                    .map(str::to_owned)
                    .with_context(|| format!("moto's message has no {name}: {m}"))
            };
            let to = m["destinations"]["ToAddresses"]
                .as_array()
                .with_context(|| format!("moto's message has no ToAddresses: {m}"))?
                .iter()
                .filter_map(|a| a.as_str().map(str::to_owned))
                .collect();
            Ok(SentMail {
                id: text("id")?,
                source: text("source")?,
                to,
                subject: text("subject")?,
                body: text("body")?,
            })
        })
        .collect()
}

/// moto's whole backend state as JSON (a plain HTTP GET: moto speaks HTTP/1.1 on 127.0.0.1).
fn moto_data(endpoint: &str) -> Result<Value> {
    let address = endpoint
        .strip_prefix("http://")
        .with_context(|| format!("moto's endpoint is not plain HTTP: {endpoint}"))?;
    let mut stream =
        TcpStream::connect(address).with_context(|| format!("cannot connect to moto at {address}"))?;
    write!(
        stream,
        "GET /moto-api/data.json HTTP/1.0\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = String::from_utf8(response).context("moto's answer is not UTF-8")?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("moto's answer has no body")?;
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        bail!(
            "GET /moto-api/data.json: {}",
            head.lines().next().unwrap_or_default()
        );
    }
    serde_json::from_str(body).context("moto's data.json is not JSON")
}

/// What SES publishes about a mail it accepted, as its configuration set's EventBridge
/// destination puts it on the default bus (SES's event record under `detail`, with the mail's
/// tags as lists of values): moto's SES publishes no events, so a test puts the event SES would.
pub struct SesEvent<'a> {
    /// `detail-type`, e.g. `Email Bounced`, `Email Rendering Failed`.
    pub detail_type: &'a str,
    /// The record's `eventType`: `Bounce`, `Complaint`, `Reject`, `Rendering Failure`,
    /// `DeliveryDelay`.
    pub event_type: &'a str,
    pub ses_message_id: &'a str,
    pub recipient: &'a str,
    /// The mail's tags, as SendEmail set them.
    pub tags: &'a [(&'a str, &'a str)],
    /// The type's own part (`bounce`, `failure`, ...), merged into the record.
    pub extra: Value,
}

/// Puts `event` on the local bus, where the stack's rule routes it.
pub async fn publish(sdk: &SdkConfig, event: &SesEvent<'_>) -> Result<()> {
    let tags: serde_json::Map<String, Value> = event
        .tags
        .iter()
        .map(|(name, value)| ((*name).to_owned(), serde_json::json!([value])))
        .collect();
    let mut detail = serde_json::json!({
        "eventType": event.event_type,
        "mail": {
            "timestamp": "2026-12-08T10:00:00.000Z",
            "source": "welcome@example.com",
            "sendingAccountId": "123456789012",
            "messageId": event.ses_message_id,
            "destination": [event.recipient],
            "headersTruncated": false,
            "tags": tags,
        }
    });
    if let (Some(detail), Some(extra)) = (detail.as_object_mut(), event.extra.as_object()) {
        detail.extend(extra.clone());
    }
    let put = aws_sdk_eventbridge::Client::new(sdk)
        .put_events()
        .entries(
            aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                .source("aws.ses")
                .detail_type(event.detail_type)
                .detail(detail.to_string())
                .build(),
        )
        .send()
        .await
        .context("PutEvents of an SES event failed")?;
    if put.failed_entry_count() != 0 {
        bail!("PutEvents refused the SES event: {:?}", put.entries());
    }
    Ok(())
}

/// Creates a configuration set in moto's SES (which ignores it when sending): the team's own
/// set a stack is deployed with.
pub async fn create_configuration_set(sdk: &SdkConfig, name: &str) -> Result<()> {
    aws_sdk_sesv2::Client::new(sdk)
        .create_configuration_set()
        .configuration_set_name(name)
        .send()
        .await
        .with_context(|| format!("CreateConfigurationSet {name} failed"))?;
    Ok(())
}
