//! `ops welcome unsent`: the users whose welcome is not known to have reached them.
//!
//! From the users table: **refused** (SES refused it for good; its code is on the item),
//! **undelivered** (SES accepted it and later reported a permanent bounce, a complaint, a
//! rejection or a rendering failure) and **unknown** (a claim whose lease ran out with no record:
//! the mail may have gone). From the welcome DLQ: **given up** (SES's limits, or a paused account,
//! for more than a day). `--resend` asks the welcomer again for each user it can help: refused,
//! given up, a rejection or a rendering failure (once the cause is fixed), and with
//! `--include-unknown` the unknown ones (who may then get a second mail); never a bounce or a
//! complaint, which another mail to the same address would only repeat.

use std::collections::HashMap;

use anyhow::{Context, Result};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::Message;
use serde_json::json;
use shared::lifecycle::{
    DELETED_AT, WELCOME_CLAIM, WELCOME_CLAIMED_AT, WELCOME_FAILED, WELCOME_LEASE_UNTIL, WELCOME_PROBLEM,
    WELCOME_SENT_AT,
};
use shared::mapping::USERS_KEY;
use shared::timestamp::epoch_ms;
use time::OffsetDateTime;
use welcome::message::{self, Problem, QueueMessage, Request};

use crate::queue::{self, Outgoing};
use crate::{Ctx, Outcome, dlq_peek};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Ask the welcomer again for the refused, given-up, rejected and unrendered ones: fix what
    /// stopped them first (`ops welcome check`).
    #[arg(long)]
    pub resend: bool,
    /// With --resend, the unknown ones too (no record of the send: it may have gone, and they
    /// may get a second mail; check their welcome_unrecorded log events first).
    #[arg(long, requires = "resend")]
    pub include_unknown: bool,
}

/// Why a user's welcome is not known to have reached them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unsent {
    /// SES refused it for good: its error code.
    Refused { code: String },
    /// SES accepted it and later reported this.
    Undelivered { problem: Problem },
    /// Given up after a day of SES's limits (in the welcome DLQ).
    GivenUp,
    /// Claimed, and the claim ran out without a record.
    Unknown,
}

impl Unsent {
    pub fn state(&self) -> &'static str {
        match self {
            Self::Refused { .. } => "refused",
            Self::Undelivered { .. } => "undelivered",
            Self::GivenUp => "given_up",
            Self::Unknown => "unknown",
        }
    }

    /// Whether `--resend` greets this user (`include_unknown`: the unknown ones too).
    pub fn resent(&self, include_unknown: bool) -> bool {
        match self {
            Self::Refused { .. } | Self::GivenUp => true,
            Self::Undelivered { problem } => problem.may_be_resent(),
            Self::Unknown => include_unknown,
        }
    }
}

/// The item's unsent welcome, if it has one at `now_ms`, with its sub and when it was claimed.
/// A send still within its claim's lease may be under way and is not unsent; a tombstone's
/// welcome is nobody's business any more.
pub fn unsent(item: &HashMap<String, AttributeValue>, now_ms: i64) -> Option<(String, String, Unsent)> {
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    if item.contains_key(DELETED_AT) {
        return None;
    }
    let sub = text(USERS_KEY)?;
    let claimed_at = text(WELCOME_CLAIMED_AT).unwrap_or_default();
    if let Some(problem) = text(WELCOME_PROBLEM).as_deref().and_then(Problem::parse)
        && problem.is_undelivered()
    {
        return Some((sub, claimed_at, Unsent::Undelivered { problem }));
    }
    if item.contains_key(WELCOME_SENT_AT) || !item.contains_key(WELCOME_CLAIM) {
        return None;
    }
    let lease_until: i64 = item
        .get(WELCOME_LEASE_UNTIL)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if lease_until >= now_ms {
        return None;
    }
    let state = match text(WELCOME_FAILED) {
        Some(code) => Unsent::Refused { code },
        None => Unsent::Unknown,
    };
    Some((sub, claimed_at, state))
}

/// How long the welcome DLQ's messages are held while they are read: they are made visible
/// again (or, resent, deleted) right after.
const HOLD_SECONDS: i32 = 60;

pub async fn run(ctx: &Ctx, args: &Args) -> Result<Outcome> {
    let table = ctx.names.users_table().await?;
    let (welcome_queue, welcome_dlq) = ctx.names.welcome_queues().await?;
    let pool = ctx.names.served_user_pool_id().await?;
    let now_ms = epoch_ms(OffsetDateTime::now_utc());
    let mut pages = ctx
        .dynamodb
        .scan()
        .table_name(&table)
        .filter_expression(
            "attribute_not_exists(#deleted) AND (attribute_exists(#problem) OR (attribute_exists(#claim) \
             AND attribute_not_exists(#sent) AND (attribute_not_exists(#lease) OR #lease < :now)))",
        )
        .projection_expression("#key, #claim, #claimed_at, #lease, #failed, #sent, #problem")
        .expression_attribute_names("#key", USERS_KEY)
        .expression_attribute_names("#claim", WELCOME_CLAIM)
        .expression_attribute_names("#claimed_at", WELCOME_CLAIMED_AT)
        .expression_attribute_names("#lease", WELCOME_LEASE_UNTIL)
        .expression_attribute_names("#failed", WELCOME_FAILED)
        .expression_attribute_names("#sent", WELCOME_SENT_AT)
        .expression_attribute_names("#problem", WELCOME_PROBLEM)
        .expression_attribute_names("#deleted", DELETED_AT)
        .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
        .into_paginator()
        .send();
    let mut found: Vec<(String, String, Unsent)> = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.with_context(|| format!("cannot scan the users table {table}"))?;
        found.extend(page.items().iter().filter_map(|item| unsent(item, now_ms)));
    }
    let given_up = read_given_up(ctx, &welcome_dlq, &pool).await?;
    for (sub, _) in &given_up {
        found.push((sub.clone(), String::new(), Unsent::GivenUp));
    }

    for (sub, claimed_at, state) in &found {
        let why = match state {
            Unsent::Refused { code } => format!("SES refused it ({code})"),
            Unsent::Undelivered { problem } => format!("SES accepted it, then reported {}", problem.as_str()),
            Unsent::GivenUp => "given up after a day of SES's limits (in the welcome DLQ)".to_owned(),
            Unsent::Unknown => {
                "the claim expired without a record (see its welcome_unrecorded events)".to_owned()
            }
        };
        ctx.printer.report(
            &format!("welcome: {sub} {}: {why}", state.state()),
            &json!({
                "command": "welcome unsent",
                "sub": sub,
                "claimed_at": (!claimed_at.is_empty()).then_some(claimed_at),
                "state": state.state(),
                "ses_error": match state { Unsent::Refused { code } => Some(code.as_str()), _ => None },
                "problem": match state { Unsent::Undelivered { problem } => Some(problem.as_str()), _ => None },
                "resendable": state.resent(true),
            }),
        );
    }
    let count = |state: &str| found.iter().filter(|(_, _, s)| s.state() == state).count();
    let summary = json!({
        "command": "welcome unsent",
        "unsent": found.len(),
        "refused": count("refused"),
        "undelivered": count("undelivered"),
        "given_up": count("given_up"),
        "unknown": count("unknown"),
    });
    if !args.resend {
        let held: Vec<Message> = given_up.into_iter().map(|(_, message)| message).collect();
        dlq_peek::release(&ctx.sqs, &welcome_dlq, &held).await;
        ctx.printer.report(
            &format!(
                "welcome: {} unsent ({} refused, {} undelivered, {} given up, {} unknown){}",
                found.len(),
                count("refused"),
                count("undelivered"),
                count("given_up"),
                count("unknown"),
                if found.is_empty() {
                    ""
                } else {
                    "; --resend asks the welcomer again for those it can help"
                }
            ),
            &summary,
        );
        return Ok(Outcome::Done);
    }
    resend(
        ctx,
        args,
        (&pool, &table, &welcome_queue, &welcome_dlq),
        &found,
        &given_up,
    )
    .await
}

/// The subs of the welcome DLQ's requests for `pool`, with each message's receipt (held
/// [`HOLD_SECONDS`]). Anything else there (an SES report EventBridge could not deliver, a message
/// that was never a request) is no welcome to resend: it is made visible again at once.
async fn read_given_up(ctx: &Ctx, dlq: &str, pool: &str) -> Result<Vec<(String, Message)>> {
    let mut received: Vec<Message> = Vec::new();
    loop {
        let batch = ctx
            .sqs
            .receive_message()
            .queue_url(dlq)
            .max_number_of_messages(queue::MAX_BATCH as i32)
            .visibility_timeout(HOLD_SECONDS)
            .wait_time_seconds(1)
            .send()
            .await
            .with_context(|| format!("ReceiveMessage on the welcome DLQ {dlq} failed"))?;
        if batch.messages().is_empty() {
            break;
        }
        received.extend(batch.messages().iter().cloned());
    }
    let (requests, others): (Vec<Message>, Vec<Message>) = received.into_iter().partition(|m| {
        matches!(message::decode(m.body().unwrap_or_default()),
            Ok(QueueMessage::Request(request)) if request.user_pool_id() == pool)
    });
    dlq_peek::release(&ctx.sqs, dlq, &others).await;
    Ok(requests
        .into_iter()
        .filter_map(|m| match message::decode(m.body().unwrap_or_default()) {
            Ok(QueueMessage::Request(request)) => Some((request.sub().to_owned(), m)),
            _ => None,
        })
        .collect())
}

/// Asks the welcomer again for each chosen user: a fresh request on the welcome queue (a
/// rejection or rendering failure reopened first), the given-up messages deleted from the DLQ
/// once their request is queued, the others made visible again.
async fn resend(
    ctx: &Ctx,
    args: &Args,
    (pool, table, welcome_queue, welcome_dlq): (&str, &str, &str, &str),
    found: &[(String, String, Unsent)],
    given_up: &[(String, Message)],
) -> Result<Outcome> {
    let store = tables::Store::users_only(ctx.dynamodb.clone(), table);
    let mut outgoing = Vec::new();
    let mut reopen_failed = Vec::new();
    for (sub, _, state) in found.iter().filter(|(_, _, s)| s.resent(args.include_unknown)) {
        if let Unsent::Undelivered { problem } = state {
            // The welcome SES accepted is recorded as sent: reopen it, so that it can be claimed.
            match store.reopen_welcome(sub, problem.as_str()).await {
                Ok(_) => {}
                Err(err) => {
                    reopen_failed.push(sub.as_str());
                    eprintln!("welcome: cannot reopen the welcome of {sub}: {err}");
                    continue;
                }
            }
        }
        let request = Request::new(pool, sub).with_context(|| format!("user {sub}"))?;
        outgoing.push(Outgoing {
            label: sub.clone(),
            body: request.encode(),
        });
    }
    let sent = queue::send_batches(&ctx.sqs, welcome_queue, &outgoing).await;
    for (sub, why) in &sent.refused {
        eprintln!("welcome: SQS refused the request for {sub}: {why}");
    }
    // The DLQ's messages whose request is now queued go; every other one is made visible again.
    /// A given-up message, by the sub it names.
    type GivenUp = (String, Message);
    let (queued, kept): (Vec<&GivenUp>, Vec<&GivenUp>) = given_up
        .iter()
        .partition(|(sub, _)| !sent.refused.iter().any(|(refused, _)| refused == sub));
    for (_, message) in queued {
        ctx.sqs
            .delete_message()
            .queue_url(welcome_dlq)
            .receipt_handle(message.receipt_handle().unwrap_or_default())
            .send()
            .await
            .with_context(|| format!("DeleteMessage on the welcome DLQ {welcome_dlq} failed"))?;
    }
    let kept: Vec<Message> = kept.into_iter().map(|(_, m)| m.clone()).collect();
    dlq_peek::release(&ctx.sqs, welcome_dlq, &kept).await;
    ctx.printer.report(
        &format!(
            "welcome: {} welcomes asked for again, {} refused by SQS, {} could not be reopened",
            sent.accepted,
            sent.refused.len(),
            reopen_failed.len()
        ),
        &json!({
            "command": "welcome unsent",
            "unsent": found.len(),
            "enqueued": sent.accepted,
            "refused": sent.refused.len(),
            "not_reopened": reopen_failed,
        }),
    );
    Ok(if sent.refused.is_empty() && reopen_failed.is_empty() {
        Outcome::Done
    } else {
        Outcome::Incomplete
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, AttributeValue)]) -> HashMap<String, AttributeValue> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
    }

    fn s(text: &str) -> AttributeValue {
        AttributeValue::S(text.to_owned())
    }

    fn n(number: i64) -> AttributeValue {
        AttributeValue::N(number.to_string())
    }

    const CLAIMED: [(&str, &str); 2] = [(USERS_KEY, "sub-1"), (WELCOME_CLAIM, "claim")];

    fn claimed(extra: &[(&str, AttributeValue)]) -> HashMap<String, AttributeValue> {
        let mut all = item(&CLAIMED.map(|(k, v)| (k, s(v))));
        all.insert(WELCOME_CLAIMED_AT.into(), s("2026-12-04T10:00:00.000Z"));
        all.insert(WELCOME_LEASE_UNTIL.into(), n(1_000));
        all.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        all
    }

    #[test]
    fn a_claim_past_its_lease_without_a_send_is_refused_or_unknown() {
        assert_eq!(
            unsent(&claimed(&[]), 1_001),
            Some(("sub-1".into(), "2026-12-04T10:00:00.000Z".into(), Unsent::Unknown))
        );
        let refused = claimed(&[(WELCOME_FAILED, s("MessageRejected"))]);
        assert_eq!(
            unsent(&refused, 1_001).unwrap().2,
            Unsent::Refused {
                code: "MessageRejected".into()
            }
        );
    }

    #[test]
    fn a_welcome_ses_did_not_deliver_is_unsent_and_a_delay_is_not() {
        let sent = |problem: &str| {
            claimed(&[
                (WELCOME_SENT_AT, s("2026-12-04T10:00:01.000Z")),
                (WELCOME_PROBLEM, s(problem)),
            ])
        };
        assert_eq!(
            unsent(&sent("rendering_failure"), 2_000).unwrap().2,
            Unsent::Undelivered {
                problem: Problem::RenderingFailure
            }
        );
        assert_eq!(
            unsent(&sent("bounce"), 2_000).unwrap().2,
            Unsent::Undelivered {
                problem: Problem::Bounce { permanent: true }
            }
        );
        assert_eq!(unsent(&sent("delivery_delay"), 2_000), None);
        assert_eq!(unsent(&sent("transient_bounce"), 2_000), None);
    }

    #[test]
    fn a_live_claim_a_send_a_tombstone_or_no_claim_is_not_unsent() {
        assert_eq!(unsent(&claimed(&[]), 1_000), None, "the lease runs until then");
        assert_eq!(unsent(&claimed(&[(WELCOME_SENT_AT, s("x"))]), 2_000), None);
        assert_eq!(
            unsent(
                &claimed(&[(DELETED_AT, s("x")), (WELCOME_PROBLEM, s("bounce"))]),
                2_000
            ),
            None
        );
        assert_eq!(unsent(&item(&[(USERS_KEY, s("sub-1"))]), 2_000), None);
    }

    #[test]
    fn resend_greets_whom_another_mail_can_help() {
        assert!(Unsent::Refused { code: "x".into() }.resent(false));
        assert!(Unsent::GivenUp.resent(false));
        assert!(
            Unsent::Undelivered {
                problem: Problem::RenderingFailure
            }
            .resent(false)
        );
        assert!(
            Unsent::Undelivered {
                problem: Problem::Reject
            }
            .resent(false)
        );
        assert!(
            !Unsent::Undelivered {
                problem: Problem::Bounce { permanent: true }
            }
            .resent(true)
        );
        assert!(
            !Unsent::Undelivered {
                problem: Problem::Complaint
            }
            .resent(true)
        );
        assert!(!Unsent::Unknown.resent(false) && Unsent::Unknown.resent(true));
    }
}
