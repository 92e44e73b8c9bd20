//! `backfill`: enqueue the users who confirmed before the trigger was attached.
//!
//! Pages through the pool's CONFIRMED users and puts each on the sync queue as the message the
//! trigger would have sent, marked `backfill`. The consumer's writes are create-only, keyed by
//! the `sub` and a deterministic profile id, so a user already synced changes nothing: running
//! it twice, or resuming from an earlier page, is safe.
//!
//! Resuming: once a page is fully enqueued, the token of the next page goes to stderr
//! (`resume with --from-token T`). When a page is only partly enqueued the run stops and names
//! the token that fetches that same page again; re-sending its users is harmless.

use anyhow::{Context, Result};
use aws_sdk_cognitoidentityprovider::types::UserType;
use serde_json::json;

use crate::queue::{self, Outgoing};
use crate::users::{self, CONFIRMED_FILTER, MAX_PAGE_SIZE, UserLister};
use crate::{Ctx, Outcome, progress};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The user pool whose confirmed users to enqueue.
    #[arg(long, value_name = "ID", value_parser = users::parse_pool_id)]
    pub user_pool_id: String,
    /// Start from this page token, printed by an earlier run (give the same --page-size).
    #[arg(long, value_name = "T")]
    pub from_token: Option<String>,
    /// At most this many ListUsers requests per second (retries included).
    #[arg(long, value_name = "R", default_value = "5", value_parser = users::parse_rate)]
    pub rate: f64,
    /// Users per ListUsers page (60 is Cognito's maximum).
    #[arg(long, value_name = "N", default_value_t = MAX_PAGE_SIZE,
          value_parser = clap::value_parser!(i32).range(1..=MAX_PAGE_SIZE as i64))]
    pub page_size: i32,
}

/// What [`enqueue`] did with a list of users.
#[derive(Debug, Default)]
pub struct Enqueued {
    pub enqueued: usize,
    /// Users that are not a valid confirmation (no UUID `sub`, say): `(sub, why)`.
    pub unusable: Vec<(String, String)>,
    /// Users SQS did not accept: `(sub, why)`.
    pub refused: Vec<(String, String)>,
}

/// Puts users on the sync queue as version-1 envelopes with source `backfill`, 10 per
/// `SendMessageBatch`. `reconcile --repair` sends its missing users through here too, so both
/// produce exactly the message the trigger would have sent.
pub async fn enqueue(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    pool_id: &str,
    users: &[UserType],
) -> Enqueued {
    let mut result = Enqueued::default();
    let mut outgoing = Vec::with_capacity(users.len());
    for user in users {
        // Reports name users by sub only: usernames and attributes are PII.
        let label = users::sub_of(user).unwrap_or("(no sub)").to_owned();
        match users::confirmed_user(pool_id, user) {
            Ok(confirmed) => outgoing.push(Outgoing {
                label,
                body: shared::envelope::encode(&confirmed),
            }),
            Err(err) => result.unusable.push((label, err.to_string())),
        }
    }
    let sent = queue::send_batches(sqs, queue_url, &outgoing).await;
    result.enqueued = sent.accepted;
    result.refused = sent.refused;
    result
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<Outcome> {
    let queue_url = ctx.names.queue_url().await?;
    // Both checked before the first page, so a wrong queue or pool fails with its name.
    queue::inspect(&ctx.sqs, &queue_url).await?;
    users::describe_pool(&ctx.cognito, &args.user_pool_id).await?;

    let lister = UserLister::new(
        &ctx.cognito,
        &args.user_pool_id,
        Some(CONFIRMED_FILTER),
        args.page_size,
        args.rate,
    );
    let bar = progress::spinner("backfill: users enqueued");
    let mut pages = 0usize;
    let mut listed = 0usize;
    let mut enqueued = 0usize;
    let mut unusable = 0usize;
    let mut token = args.from_token.clone();
    let outcome = loop {
        let page = lister
            .page(token.as_deref())
            .await
            .with_context(|| resume_hint(token.as_deref()))?;
        pages += 1;
        listed += page.users.len();
        let done = enqueue(&ctx.sqs, &queue_url, &args.user_pool_id, &page.users).await;
        enqueued += done.enqueued;
        unusable += done.unusable.len();
        bar.inc(done.enqueued as u64);
        for (sub, why) in &done.unusable {
            progress::note(&bar, &format!("skipped user {sub}: {why}"));
        }
        if !done.refused.is_empty() {
            for (sub, why) in &done.refused {
                progress::note(&bar, &format!("not enqueued: user {sub}: {why}"));
            }
            progress::note(&bar, &resume_hint(token.as_deref()));
            break Outcome::Incomplete;
        }
        match page.next_token {
            Some(next) => {
                progress::note(&bar, &format!("resume with --from-token {next}"));
                token = Some(next);
            }
            None => {
                token = None;
                break if unusable == 0 {
                    Outcome::Done
                } else {
                    Outcome::Incomplete
                };
            }
        }
    };
    bar.finish_and_clear();

    let refused = listed - enqueued - unusable;
    ctx.printer.report(
        &format!(
            "backfill of {pool}: {listed} confirmed users in {pages} pages, {enqueued} enqueued, \
             {refused} refused by SQS, {unusable} unusable; {retries} ListUsers retries{stopped}",
            pool = args.user_pool_id,
            retries = lister.retries(),
            stopped = if outcome == Outcome::Done {
                ""
            } else {
                " (incomplete: see above)"
            },
        ),
        &json!({
            "command": "backfill",
            "user_pool_id": args.user_pool_id,
            "pages": pages,
            "users": listed,
            "enqueued": enqueued,
            "refused": refused,
            "unusable": unusable,
            "retries": lister.retries(),
            "resume_token": if outcome == Outcome::Done { None } else { token },
        }),
    );
    Ok(outcome)
}

/// How to pick up again from the page `token` fetches.
fn resume_hint(token: Option<&str>) -> String {
    match token {
        Some(token) => format!("resume with --from-token {token}"),
        None => "run it again from the start (no --from-token)".to_owned(),
    }
}
