//! `ops welcome unsent`: the users whose welcome is not known to have reached them.
//!
//! From the users table: **refused** (SES refused it for good; its code is on the item),
//! **undelivered** (SES accepted it and later reported a bounce, a complaint, a rejection or a
//! rendering failure) and **unknown** (a claim whose lease ran out with no record: the mail may
//! have gone). From the welcome DLQ: **given up** (SES's limits, or a paused account, for more
//! than a day), and the counts of SES reports and of messages that can never be handled there.
//! `--resend` asks the welcomer again for each user it can help: refused, given up, a
//! rejection, a rendering failure or a soft bounce (once the cause is fixed), and with
//! `--include-unknown` the unknown ones (who may then get a second mail); never a hard bounce or
//! a complaint, which another mail to the same address would only repeat. It hands the SES
//! reports in the DLQ to the welcomer again; `--drop-invalid` deletes the rest.

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
    /// Delete the welcome DLQ's messages that can never be handled (malformed, or for another
    /// pool: the welcomer's record_failed events say why), after reading their reasons.
    #[arg(long)]
    pub drop_invalid: bool,
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
/// again (or, resent, deleted) right after. Reading stops after [`READ_FOR`], well inside it,
/// so no receipt is stale when it is used.
const HOLD_SECONDS: i32 = 300;
const READ_FOR: std::time::Duration = std::time::Duration::from_secs(120);

/// What a message of the welcome DLQ is, by its body alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DlqMessage {
    /// A request for a user of this pool, given up after a day of SES's limits.
    GivenUp { sub: String },
    /// An SES report EventBridge could not deliver, or the welcomer could not record: safe to
    /// hand to the welcomer again (recording it twice changes nothing).
    Report,
    /// Anything else (malformed, another pool's): it can never be handled.
    Invalid,
}

pub fn dlq_message(body: &str, pool: &str) -> DlqMessage {
    match message::decode(body) {
        Ok(QueueMessage::Request(request)) if request.user_pool_id() == pool => DlqMessage::GivenUp {
            sub: request.sub().to_owned(),
        },
        Ok(QueueMessage::Delivery(_)) => DlqMessage::Report,
        _ => DlqMessage::Invalid,
    }
}

/// The welcome DLQ as read: each message once, held.
#[derive(Default)]
struct Dlq {
    given_up: Vec<(String, Message)>,
    reports: Vec<Message>,
    invalid: Vec<Message>,
    /// Reading stopped at its time limit: more may be there.
    incomplete: bool,
}

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
    let dlq = read_dlq(ctx, &welcome_dlq, &pool).await?;
    for (sub, _) in &dlq.given_up {
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
        "ses_reports_in_dlq": dlq.reports.len(),
        "invalid_in_dlq": dlq.invalid.len(),
        "dlq_read_whole": !dlq.incomplete,
    });
    ctx.printer.report(
        &format!(
            "welcome: {} unsent ({} refused, {} undelivered, {} given up, {} unknown); in the welcome DLQ \
             also {} SES reports (--resend hands them to the welcomer again) and {} messages that can \
             never be handled (--drop-invalid){}",
            found.len(),
            count("refused"),
            count("undelivered"),
            count("given_up"),
            count("unknown"),
            dlq.reports.len(),
            dlq.invalid.len(),
            if dlq.incomplete {
                "; the DLQ was not read whole: run again"
            } else {
                ""
            },
        ),
        &summary,
    );
    if args.drop_invalid {
        delete(ctx, &welcome_dlq, dlq.invalid.iter()).await?;
    } else {
        dlq_peek::release(&ctx.sqs, &welcome_dlq, &dlq.invalid).await;
    }
    if args.resend {
        return resend(
            ctx,
            args,
            (&pool, &table, &welcome_queue, &welcome_dlq),
            &found,
            &dlq,
        )
        .await;
    }
    let held: Vec<Message> = dlq
        .given_up
        .iter()
        .map(|(_, m)| m.clone())
        .chain(dlq.reports.iter().cloned())
        .collect();
    dlq_peek::release(&ctx.sqs, &welcome_dlq, &held).await;
    Ok(Outcome::Done)
}

/// Deletes `messages` from the welcome DLQ (their receipts are fresh: see [`READ_FOR`]).
async fn delete<'m>(ctx: &Ctx, dlq: &str, messages: impl Iterator<Item = &'m Message>) -> Result<()> {
    for message in messages {
        ctx.sqs
            .delete_message()
            .queue_url(dlq)
            .receipt_handle(message.receipt_handle().unwrap_or_default())
            .send()
            .await
            .with_context(|| format!("DeleteMessage on the welcome DLQ {dlq} failed"))?;
    }
    Ok(())
}

/// Reads the welcome DLQ, each message once (by its id), holding it [`HOLD_SECONDS`]; stops at an
/// empty answer, at a batch of messages already read (the queue has come round), or after
/// [`READ_FOR`].
async fn read_dlq(ctx: &Ctx, dlq: &str, pool: &str) -> Result<Dlq> {
    let started = std::time::Instant::now();
    let mut seen = std::collections::HashSet::new();
    let mut read = Dlq::default();
    loop {
        if started.elapsed() > READ_FOR {
            read.incomplete = true;
            break;
        }
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
        let fresh: Vec<Message> = batch
            .messages()
            .iter()
            .filter(|m| seen.insert(m.message_id().unwrap_or_default().to_owned()))
            .cloned()
            .collect();
        if fresh.is_empty() {
            break;
        }
        for message in fresh {
            match dlq_message(message.body().unwrap_or_default(), pool) {
                DlqMessage::GivenUp { sub } => read.given_up.push((sub, message)),
                DlqMessage::Report => read.reports.push(message),
                DlqMessage::Invalid => read.invalid.push(message),
            }
        }
    }
    Ok(read)
}

/// Asks the welcomer again for each chosen user: a fresh request on the welcome queue (a
/// rejection, a rendering failure or a soft bounce reopened first), the given-up messages
/// deleted from the DLQ once their request is queued, and the SES reports there handed to the
/// welcomer again.
async fn resend(
    ctx: &Ctx,
    args: &Args,
    (pool, table, welcome_queue, welcome_dlq): (&str, &str, &str, &str),
    found: &[(String, String, Unsent)],
    dlq: &Dlq,
) -> Result<Outcome> {
    let given_up = &dlq.given_up;
    let now_ms = epoch_ms(OffsetDateTime::now_utc());
    let store = tables::Store::users_only(ctx.dynamodb.clone(), table);
    let mut outgoing = Vec::new();
    let mut reopen_failed = Vec::new();
    for (sub, _, state) in found.iter().filter(|(_, _, s)| s.resent(args.include_unknown)) {
        if let Unsent::Undelivered { problem } = state {
            // The welcome SES accepted is recorded as sent: reopen it, so that it can be claimed.
            match store.reopen_welcome(sub, problem.as_str(), now_ms).await {
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
    delete(ctx, welcome_dlq, queued.into_iter().map(|(_, m)| m)).await?;
    let kept: Vec<Message> = kept.into_iter().map(|(_, m)| m.clone()).collect();
    dlq_peek::release(&ctx.sqs, welcome_dlq, &kept).await;
    // SES's reports, as they were: recording one twice changes nothing.
    let reports: Vec<Outgoing> = dlq
        .reports
        .iter()
        .map(|m| Outgoing {
            label: m.message_id().unwrap_or_default().to_owned(),
            body: m.body().unwrap_or_default().to_owned(),
        })
        .collect();
    let reports_sent = queue::send_batches(&ctx.sqs, welcome_queue, &reports).await;
    let (handed, unhanded): (Vec<&Message>, Vec<&Message>) = dlq.reports.iter().partition(|m| {
        !reports_sent
            .refused
            .iter()
            .any(|(id, _)| id == m.message_id().unwrap_or_default())
    });
    delete(ctx, welcome_dlq, handed.into_iter()).await?;
    let unhanded: Vec<Message> = unhanded.into_iter().cloned().collect();
    dlq_peek::release(&ctx.sqs, welcome_dlq, &unhanded).await;
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
            "ses_reports_handed_back": reports_sent.accepted,
        }),
    );
    Ok(
        if sent.refused.is_empty() && reopen_failed.is_empty() && reports_sent.refused.is_empty() {
            Outcome::Done
        } else {
            Outcome::Incomplete
        },
    )
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
        assert_eq!(
            unsent(&sent("transient_bounce"), 2_000).unwrap().2,
            Unsent::Undelivered {
                problem: Problem::Bounce { permanent: false }
            }
        );
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
    fn the_welcome_dlqs_messages_are_told_apart_by_body() {
        let sub = "0b5e4a3c-1f2d-4e6a-9b8c-7d6e5f4a3b2c";
        let ours = Request::new("us-east-1_A1", sub).unwrap().encode();
        let theirs = Request::new("eu-west-1_B2", sub).unwrap().encode();
        assert_eq!(
            dlq_message(&ours, "us-east-1_A1"),
            DlqMessage::GivenUp { sub: sub.into() }
        );
        assert_eq!(dlq_message(&theirs, "us-east-1_A1"), DlqMessage::Invalid);
        assert_eq!(dlq_message("not json", "us-east-1_A1"), DlqMessage::Invalid);
        let report = serde_json::json!({
            "source": "aws.ses", "time": "2026-12-08T10:00:05Z",
            "detail": {"eventType": "Complaint", "mail": {"messageId": "m", "tags": {"cognito-user-sync-sub": [sub]}}}
        });
        assert_eq!(
            dlq_message(&report.to_string(), "us-east-1_A1"),
            DlqMessage::Report
        );
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
        assert!(
            Unsent::Undelivered {
                problem: Problem::Bounce { permanent: false }
            }
            .resent(false)
        );
        assert!(!Unsent::Unknown.resent(false) && Unsent::Unknown.resent(true));
    }
}
