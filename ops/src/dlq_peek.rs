//! `dlq peek`: what is in the dead-letter queue, and why, without consuming it.
//!
//! SQS has no read-only peek: messages are received (hidden for [`HOLD_SECONDS`], so one peek
//! does not see the same message twice) and then made visible again at once with
//! `ChangeMessageVisibility` 0. Receiving counts as a receive, so `ApproximateReceiveCount`
//! includes this peek's own. The DLQ has no redrive policy of its own, so the count moves no
//! message anywhere.
//!
//! The reason is re-derived from the body with the consumer's own decoder: a body that is not a
//! valid envelope is shown with `EnvelopeError::reason()` and its message (which names fields,
//! never values). A valid envelope failed for another reason (another pool, a table that could
//! not be written); the consumer's `record_failed` log line for the message id says which. Only
//! the pool id, the `sub`, the source and the attributes of
//! [`shared::pii::NON_PERSONAL_ATTRIBUTES`] are shown in clear; everything else is masked unless
//! `--show-pii`, so the output can be pasted into a ticket.

use anyhow::Result;
use aws_sdk_sqs::types::{ChangeMessageVisibilityBatchRequestEntry, Message, MessageSystemAttributeName};
use serde_json::{Map, Value, json};
use shared::envelope::Message as DecodedMessage;
use shared::pii::{Redacted, is_non_personal};
use shared::signal::Signal;
use time::OffsetDateTime;

use crate::{Ctx, Outcome, aws, progress, queue};

/// How long received messages stay hidden while the peek runs, at most.
const HOLD_SECONDS: i32 = 30;

pub const VALID_ENVELOPE: &str =
    "valid envelope: failed for another reason, see the consumer's record_failed logs for this message id";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Show at most this many messages.
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max: u32,
    /// Show the username and every attribute in clear (by default only the sub, the *_verified
    /// flags and a few other attributes known to carry no personal data are).
    #[arg(long)]
    pub show_pii: bool,
}

/// One DLQ message as shown.
#[derive(Debug, Clone, PartialEq)]
pub struct Peeked {
    pub message_id: String,
    pub receive_count: Option<u64>,
    pub first_received_at: Option<String>,
    pub reason: &'static str,
    pub error: String,
    /// For a valid envelope: pool id, sub, username and attributes (PII masked unless asked).
    pub user: Option<Value>,
    /// The raw body: only with `--show-pii`, and only when it is not a valid envelope.
    pub body: Option<String>,
}

impl Peeked {
    pub fn to_json(&self) -> Value {
        let mut object = json!({
            "message_id": self.message_id,
            "receive_count": self.receive_count,
            "first_received_at": self.first_received_at,
            "reason": self.reason,
            "error": self.error,
        });
        if let Some(user) = &self.user {
            object["user"] = user.clone();
        }
        if let Some(body) = &self.body {
            object["body"] = json!(body);
        }
        object
    }
}

/// What a message says about itself, re-derived with the consumer's decoder.
pub fn describe(message: &Message, show_pii: bool) -> Peeked {
    let system = |name: MessageSystemAttributeName| message.attributes().and_then(|a| a.get(&name));
    let body = message.body().unwrap_or_default();
    let mut peeked = Peeked {
        message_id: message.message_id().unwrap_or_default().to_owned(),
        receive_count: system(MessageSystemAttributeName::ApproximateReceiveCount)
            .and_then(|c| c.parse().ok()),
        first_received_at: system(MessageSystemAttributeName::ApproximateFirstReceiveTimestamp)
            .and_then(|ms| epoch_millis_to_rfc3339(ms)),
        reason: "valid_envelope",
        error: VALID_ENVELOPE.to_owned(),
        user: None,
        body: None,
    };
    let mask = |value: &str| {
        if show_pii {
            value.to_owned()
        } else {
            Redacted(value).to_string()
        }
    };
    match shared::envelope::decode_message(body) {
        Ok(DecodedMessage::Signal(Signal::Refresh(refresh))) => {
            peeked.user = Some(json!({
                "user_pool_id": refresh.user_pool_id(),
                "sub": refresh.sub(),
                "source": "refresh",
                "cause": refresh.cause().as_str(),
                "username": refresh.username().map(mask),
            }));
        }
        Ok(DecodedMessage::Signal(Signal::Unattributable(call))) => {
            peeked.user = Some(json!({ "source": "refresh", "cause": call.as_str() }));
        }
        Ok(DecodedMessage::Confirmation(user)) => {
            let attributes: Map<String, Value> = user
                .attributes()
                .iter()
                .map(|(name, value)| {
                    // Masked unless known to be harmless: an allow-list, so a custom attribute
                    // or one Cognito adds later is never printed by default.
                    let shown = if is_non_personal(name) {
                        value.clone()
                    } else {
                        mask(value)
                    };
                    (name.clone(), Value::String(shown))
                })
                .collect();
            peeked.user = Some(json!({
                "user_pool_id": user.user_pool_id(),
                "sub": user.sub(),
                "source": user.source().as_str(),
                "username": mask(user.username()),
                "attributes": attributes,
            }));
        }
        Err(err) => {
            peeked.reason = err.reason();
            peeked.error = err.to_string();
            peeked.body = show_pii.then(|| body.to_owned());
        }
    }
    peeked
}

/// SQS timestamps are milliseconds since the epoch, as text.
fn epoch_millis_to_rfc3339(text: &str) -> Option<String> {
    let millis: i128 = text.parse().ok()?;
    let at = OffsetDateTime::from_unix_timestamp_nanos(millis * 1_000_000).ok()?;
    Some(shared::timestamp::format_rfc3339(at))
}

/// The human-readable table: one row per message, the user (or the body) on the line below.
pub fn table(rows: &[Peeked]) -> String {
    let header = ["MESSAGE ID", "RECEIVES", "FIRST RECEIVED", "REASON", "ERROR"];
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            [
                r.message_id.clone(),
                r.receive_count.map_or("-".into(), |c| c.to_string()),
                r.first_received_at.clone().unwrap_or_else(|| "-".into()),
                r.reason.to_owned(),
                r.error.clone(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 5]| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        text
    };
    let mut out = line(header);
    for (row, peeked) in cells.iter().zip(rows) {
        out.push('\n');
        out.push_str(&line([&row[0], &row[1], &row[2], &row[3], &row[4]]));
        if let Some(user) = &peeked.user {
            out.push_str(&format!("\n    user: {user}"));
        }
        if let Some(body) = &peeked.body {
            out.push_str(&format!("\n    body: {body}"));
        }
    }
    out
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<Outcome> {
    let dlq_url = ctx.names.dlq_url().await?;
    let before = queue::inspect(&ctx.sqs, &dlq_url).await?;
    let bar = progress::bar(before.visible.min(u64::from(args.max)), "dlq peek: messages read");
    let mut received: Vec<Message> = Vec::new();
    let mut failure = None;
    while received.len() < args.max as usize {
        let want = (args.max as usize - received.len()).min(queue::MAX_BATCH) as i32;
        match ctx
            .sqs
            .receive_message()
            .queue_url(&dlq_url)
            .max_number_of_messages(want)
            .visibility_timeout(HOLD_SECONDS)
            // A short long-poll asks every SQS server, so an almost empty queue is not missed.
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
        {
            Ok(batch) if batch.messages().is_empty() => break,
            Ok(batch) => {
                bar.inc(batch.messages().len() as u64);
                received.extend(batch.messages().iter().cloned());
            }
            Err(err) => {
                failure = Some(anyhow::anyhow!(
                    "ReceiveMessage on {dlq_url} failed: {}",
                    aws::detail(&err)
                ));
                break;
            }
        }
    }
    bar.finish_and_clear();
    // Whatever happened above, what was received is made visible again before anything else.
    let unreleased = release(&ctx.sqs, &dlq_url, &received).await;
    if let Some(err) = failure {
        return Err(err);
    }

    let rows: Vec<Peeked> = received.iter().map(|m| describe(m, args.show_pii)).collect();
    if ctx.printer.json() {
        for row in &rows {
            println!("{}", row.to_json());
        }
    } else {
        println!("{}", table(&rows));
    }
    eprintln!(
        "{} messages shown of about {} in the DLQ; none consumed{}",
        rows.len(),
        before.total(),
        if unreleased == 0 {
            String::new()
        } else {
            format!(" ({unreleased} stay hidden up to {HOLD_SECONDS} s: ChangeMessageVisibility failed)")
        }
    );
    Ok(Outcome::Done)
}

/// Makes the messages visible again now; returns how many could not be (they reappear by
/// themselves when the hold ends).
pub(crate) async fn release(sqs: &aws_sdk_sqs::Client, url: &str, messages: &[Message]) -> usize {
    let mut failed = 0;
    for chunk in messages.chunks(queue::MAX_BATCH) {
        let entries: Result<Vec<_>, _> = chunk
            .iter()
            .enumerate()
            .map(|(i, m)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .visibility_timeout(0)
                    .build()
            })
            .collect();
        let Ok(entries) = entries else {
            failed += chunk.len();
            continue;
        };
        match sqs
            .change_message_visibility_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(output) => failed += output.failed().len(),
            Err(_) => failed += chunk.len(),
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const POOL: &str = "us-east-1_AbCdEf123";
    const SUB: &str = "0b5e4a3c-1f2d-4e6a-9b8c-7d6e5f4a3b2c";

    fn message(body: &str) -> Message {
        Message::builder()
            .message_id("m-1")
            .body(body)
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "6")
            .attributes(
                MessageSystemAttributeName::ApproximateFirstReceiveTimestamp,
                "1795457327123",
            )
            .build()
    }

    fn valid_body() -> String {
        json!({"version": 1, "source": "post_confirmation", "user_pool_id": POOL, "sub": SUB,
               "username": "ana.lopez", "confirmed_at": "2026-11-23T18:08:47.123Z",
               "attributes": {"email": "ana@example.com", "given_name": "Ana", "custom:plan": "pro"}})
        .to_string()
    }

    #[test]
    fn an_invalid_body_shows_the_decoders_reason_and_never_its_values() {
        let peeked = describe(&message("ana@example.com is not json"), false);
        assert_eq!(peeked.reason, "not_json");
        assert_eq!(
            peeked.error,
            "message body is not JSON (syntax error at line 1, column 1)"
        );
        assert_eq!(peeked.receive_count, Some(6));
        assert_eq!(
            peeked.first_received_at.as_deref(),
            Some("2026-11-23T18:08:47.123Z")
        );
        assert!(!peeked.to_json().to_string().contains("ana@example.com"));
        assert!(!table(&[peeked]).contains("ana@example.com"));
    }

    #[test]
    fn a_refresh_signal_shows_pool_sub_and_cause_with_the_username_masked() {
        let refresh = shared::signal::Refresh::requested(POOL, SUB, Some("ana@example.com")).unwrap();
        let peeked = describe(&message(&shared::envelope::encode_refresh(&refresh)), false);
        assert_eq!(peeked.reason, "valid_envelope");
        let user = peeked.user.unwrap();
        assert_eq!(
            (user["sub"].as_str(), user["cause"].as_str()),
            (Some(SUB), Some("requested"))
        );
        assert_eq!(user["username"], "[redacted]");
    }

    #[test]
    fn a_valid_envelope_shows_pool_and_sub_with_pii_masked() {
        let peeked = describe(&message(&valid_body()), false);
        assert_eq!(peeked.reason, "valid_envelope");
        assert_eq!(peeked.error, VALID_ENVELOPE);
        let user = peeked.user.clone().unwrap();
        assert_eq!(user["user_pool_id"], POOL);
        assert_eq!(user["sub"], SUB);
        assert_eq!(user["username"], "[redacted]");
        assert_eq!(user["attributes"]["email"], "[redacted]");
        assert_eq!(user["attributes"]["given_name"], "[redacted]");
        // Masked too: an allow-list shows only what is known to be harmless.
        assert_eq!(user["attributes"]["custom:plan"], "[redacted]");
        let shown = format!("{} {}", peeked.to_json(), table(&[peeked]));
        for secret in ["ana.lopez", "ana@example.com", "\"Ana\""] {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
    }

    #[test]
    fn everything_but_the_allow_list_is_masked_identities_and_custom_attributes_included() {
        let body = json!({"version": 1, "source": "post_confirmation", "user_pool_id": POOL, "sub": SUB,
        "username": "ana", "confirmed_at": "2026-11-23T18:08:47.123Z",
        "attributes": {
            "sub": SUB,
            "email_verified": "true",
            "identities": "[{\"userId\":\"ana@corp.example\",\"providerName\":\"Corp\"}]",
            "custom:national_id": "X1234567Z",
            "picture": "https://example.com/ana.jpg",
            "gender": "female",
            "birthdate": "1990-01-01",
        }})
        .to_string();
        let peeked = describe(&message(&body), false);
        let shown = format!("{} {}", peeked.to_json(), table(std::slice::from_ref(&peeked)));
        for secret in ["ana@corp.example", "X1234567Z", "ana.jpg", "female", "1990-01-01"] {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
        let user = peeked.user.unwrap();
        assert_eq!(user["attributes"]["sub"], SUB);
        assert_eq!(user["attributes"]["email_verified"], "true");
        assert_eq!(user["attributes"]["identities"], "[redacted]");
    }

    #[test]
    fn show_pii_shows_it() {
        let peeked = describe(&message(&valid_body()), true);
        let user = peeked.user.unwrap();
        assert_eq!(user["username"], "ana.lopez");
        assert_eq!(user["attributes"]["email"], "ana@example.com");
        let raw = describe(&message("ana@example.com"), true);
        assert_eq!(raw.body.as_deref(), Some("ana@example.com"));
    }
}
