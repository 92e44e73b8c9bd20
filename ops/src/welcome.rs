//! `ops welcome --unsent`: the users whose welcome email was claimed and never sent.
//!
//! A claim without `welcome_sent_at` whose lease has run out is a welcome not known to be sent:
//! **refused**, when SES refused it for good (`welcome_failed` holds its code: an unverified
//! sender, a missing template, a refused recipient), certainly not sent; or **unknown**, with no
//! record at all: the delivery died before or after sending, SES's answer was lost, or the
//! record failed after the send (`welcome_unrecorded` in the consumer's logs). A claim still
//! within its lease is a send that may be under way, and is not listed. `--resend` enqueues each
//! refused user's sign-up confirmation again (`--include-unknown`: the unknown ones too, who may
//! then get a second mail), read from the pool now; the consumer claims the expired claim and
//! sends, as for any sign-up (it skips a user without a verified email, and one the pool deleted
//! meanwhile).

use std::collections::HashMap;

use anyhow::{Context, Result};
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::json;
use shared::ConfirmationSource;
use shared::lifecycle::{
    DELETED_AT, WELCOME_CLAIM, WELCOME_CLAIMED_AT, WELCOME_FAILED, WELCOME_LEASE_UNTIL, WELCOME_SENT_AT,
};
use shared::mapping::USERS_KEY;
use shared::timestamp::epoch_ms;
use time::OffsetDateTime;

use crate::queue::{self, Outgoing};
use crate::user_pool::{self, Pacer};
use crate::{Ctx, Outcome};

/// `ListUsers` calls per second of a resend, one per user: well under the account's quota of 30.
const RESEND_LISTS_PER_SECOND: f64 = 2.0;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// List the users whose welcome was claimed, is not sent, and whose claim's lease has run out.
    #[arg(long, required = true)]
    pub unsent: bool,
    /// Greet the users SES refused: enqueue each one's sign-up confirmation again, as the pool
    /// has the user now, for the consumer to send the welcome. Fix what SES refused first.
    #[arg(long, requires = "unsent")]
    pub resend: bool,
    /// With --resend, greet the unknown ones too (no record of the send: it may have gone, and
    /// they may get a second mail; check their welcome_unrecorded log events first).
    #[arg(long, requires = "resend")]
    pub include_unknown: bool,
    /// The user pool; default: the pool the stack serves (its UserPoolId output).
    #[arg(long, value_name = "ID", value_parser = user_pool::parse_pool_id)]
    pub user_pool_id: Option<String>,
}

/// A welcome claimed and never sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsent {
    pub sub: String,
    pub claimed_at: String,
    /// SES's error code, when it refused the welcome for good.
    pub failed: Option<String>,
}

/// The item's unsent welcome, if it has one at `now_ms`: claimed, not sent, the lease over, and
/// the user not deleted. (The scan's filter says the same; this is what the report trusts.)
pub fn unsent(item: &HashMap<String, AttributeValue>, now_ms: i64) -> Option<Unsent> {
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    if item.contains_key(WELCOME_SENT_AT)
        || item.contains_key(DELETED_AT)
        || !item.contains_key(WELCOME_CLAIM)
    {
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
    Some(Unsent {
        sub: text(USERS_KEY)?,
        claimed_at: text(WELCOME_CLAIMED_AT).unwrap_or_default(),
        failed: text(WELCOME_FAILED),
    })
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<Outcome> {
    let table = ctx.names.users_table().await?;
    let now_ms = epoch_ms(OffsetDateTime::now_utc());
    let mut pages = ctx
        .dynamodb
        .scan()
        .table_name(&table)
        .filter_expression(
            "attribute_exists(#claim) AND attribute_not_exists(#sent) AND attribute_not_exists(#deleted) \
             AND (attribute_not_exists(#lease) OR #lease < :now)",
        )
        .projection_expression("#key, #claim, #claimed_at, #lease, #failed")
        .expression_attribute_names("#key", USERS_KEY)
        .expression_attribute_names("#claim", WELCOME_CLAIM)
        .expression_attribute_names("#claimed_at", WELCOME_CLAIMED_AT)
        .expression_attribute_names("#lease", WELCOME_LEASE_UNTIL)
        .expression_attribute_names("#failed", WELCOME_FAILED)
        .expression_attribute_names("#sent", WELCOME_SENT_AT)
        .expression_attribute_names("#deleted", DELETED_AT)
        .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
        .into_paginator()
        .send();
    let mut found = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.with_context(|| format!("cannot scan the users table {table}"))?;
        found.extend(page.items().iter().filter_map(|item| unsent(item, now_ms)));
    }
    for user in &found {
        let why = match &user.failed {
            Some(code) => format!("refused: SES refused it ({code})"),
            None => {
                "unknown: the claim expired without a record (see its welcome_unrecorded events)".to_owned()
            }
        };
        ctx.printer.report(
            &format!("welcome: {} claimed at {}, {why}", user.sub, user.claimed_at),
            &json!({
                "command": "welcome",
                "sub": user.sub,
                "claimed_at": user.claimed_at,
                "state": if user.failed.is_some() { "refused" } else { "unknown" },
                "ses_error": user.failed,
            }),
        );
    }
    let refused = found.iter().filter(|u| u.failed.is_some()).count();
    if !args.resend {
        ctx.printer.report(
            &format!(
                "welcome: {} unsent ({refused} refused by SES, {} unknown){}",
                found.len(),
                found.len() - refused,
                if found.is_empty() {
                    ""
                } else {
                    "; --resend greets the refused, --include-unknown the unknown too"
                }
            ),
            &json!({
                "command": "welcome",
                "unsent": found.len(),
                "refused_by_ses": refused,
                "unknown": found.len() - refused,
            }),
        );
        return Ok(Outcome::Done);
    }
    let chosen: Vec<Unsent> = found
        .into_iter()
        .filter(|user| args.include_unknown || user.failed.is_some())
        .collect();
    resend(ctx, args, &chosen).await
}

/// Enqueues the sign-up confirmation of each user, as the pool has them now.
async fn resend(ctx: &Ctx, args: &Args, users: &[Unsent]) -> Result<Outcome> {
    let pool = match &args.user_pool_id {
        Some(pool) => pool.clone(),
        None => ctx.names.served_user_pool_id().await?,
    };
    let queue_url = ctx.names.queue_url().await?;
    queue::inspect(&ctx.sqs, &queue_url).await?;
    let pacer = Pacer::per_second(RESEND_LISTS_PER_SECOND);
    let mut outgoing = Vec::new();
    let mut not_in_pool = Vec::new();
    for user in users {
        pacer.wait().await;
        let listed = ctx
            .cognito
            .list_users()
            .user_pool_id(&pool)
            // A sub read from the users item is a validated UUID: nothing in it changes the filter.
            .filter(format!("sub = \"{}\"", shared::user::normalise_sub(&user.sub)?))
            .limit(1)
            .send()
            .await
            .with_context(|| format!("cannot read user {} from pool {pool}", user.sub))?;
        let Some(found) = listed.users().first() else {
            not_in_pool.push(user.sub.as_str());
            continue;
        };
        let confirmed = user_pool::confirmed_user_from(&pool, found, ConfirmationSource::PostConfirmation)
            .with_context(|| format!("user {} cannot be enqueued", user.sub))?;
        outgoing.push(Outgoing {
            label: user.sub.clone(),
            body: shared::envelope::encode(&confirmed),
        });
    }
    let sent = queue::send_batches(&ctx.sqs, &queue_url, &outgoing).await;
    for (sub, why) in &sent.refused {
        eprintln!("welcome: SQS refused the confirmation of {sub}: {why}");
    }
    ctx.printer.report(
        &format!(
            "welcome: {} confirmations enqueued again for the consumer to greet, {} refused by SQS, \
             {} no longer in the pool",
            sent.accepted,
            sent.refused.len(),
            not_in_pool.len()
        ),
        &json!({
            "command": "welcome",
            "unsent": users.len(),
            "enqueued": sent.accepted,
            "refused": sent.refused.len(),
            "not_in_pool": not_in_pool,
        }),
    );
    Ok(if sent.refused.is_empty() {
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

    #[test]
    fn a_claim_past_its_lease_without_a_send_is_unsent() {
        let claimed = [
            (USERS_KEY, s("sub-1")),
            (WELCOME_CLAIM, s("claim")),
            (WELCOME_CLAIMED_AT, s("2026-12-04T10:00:00.000Z")),
            (WELCOME_LEASE_UNTIL, n(1_000)),
        ];
        assert_eq!(
            unsent(&item(&claimed), 1_001),
            Some(Unsent {
                sub: "sub-1".into(),
                claimed_at: "2026-12-04T10:00:00.000Z".into(),
                failed: None
            })
        );
        let mut refused = item(&claimed);
        refused.insert(WELCOME_FAILED.into(), s("MessageRejected"));
        assert_eq!(
            unsent(&refused, 1_001).unwrap().failed.as_deref(),
            Some("MessageRejected")
        );
    }

    #[test]
    fn a_live_claim_a_send_a_tombstone_or_no_claim_is_not() {
        let claimed = [
            (USERS_KEY, s("sub-1")),
            (WELCOME_CLAIM, s("claim")),
            (WELCOME_LEASE_UNTIL, n(1_000)),
        ];
        assert_eq!(unsent(&item(&claimed), 1_000), None, "the lease runs until then");
        for extra in [WELCOME_SENT_AT, DELETED_AT] {
            let mut done = item(&claimed);
            done.insert(extra.into(), s("2026-12-04T10:00:00.000Z"));
            assert_eq!(unsent(&done, 2_000), None, "{extra}");
        }
        assert_eq!(unsent(&item(&[(USERS_KEY, s("sub-1"))]), 2_000), None);
    }
}
