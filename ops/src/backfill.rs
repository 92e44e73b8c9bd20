//! `backfill`: enqueue the users who confirmed before the trigger was attached.
//!
//! Pages through the pool's users and puts on the sync queue every one that must be in the tables
//! ([`user_pool::must_be_synced`]: confirmed at least once, federated and password-reset users
//! included), as the message the trigger would have sent, marked `backfill`. The consumer's writes
//! are create-only, keyed by the `sub` and a deterministic profile id, so a user already synced
//! changes nothing: running it twice, or resuming from an earlier page, is safe.
//!
//! The listing is unfiltered: `ListUsers` filters on one status at a time, and a page token
//! belongs to one filter, so one listing selected here keeps one resume token for the run.
//!
//! Resuming: once a page is handled, the token of the next page goes to stderr (`resume with
//! --from-token T`). A user SQS refuses (a body over the queue's size limit, say) is reported by
//! `sub` and does not stop the run; the run then exits non-zero, and a later `reconcile --repair`
//! finds that user again. A page that cannot be listed stops the run with the token that fetches
//! it again.

use anyhow::{Context, Result};
use aws_sdk_cognitoidentityprovider::types::UserType;
use serde_json::json;

use crate::queue::{self, Outgoing};
use crate::user_pool::{self, MAX_PAGE_SIZE, USER_LIST_DEFAULT_QUOTA, UserLister};
use crate::{Ctx, Outcome, progress};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The user pool whose users to enqueue (those confirmed at least once).
    #[arg(long, value_name = "ID", value_parser = user_pool::parse_pool_id)]
    pub user_pool_id: String,
    /// Start from this page token, printed by an earlier run (give the same --page-size).
    #[arg(long, value_name = "T")]
    pub from_token: Option<String>,
    /// At most this many ListUsers requests per second (retries included); at most
    /// --user-list-quota.
    #[arg(long, value_name = "R", default_value = "5", value_parser = user_pool::parse_rate)]
    pub rate: f64,
    /// The account's Cognito UserList request-rate quota, if raised above the default 30.
    #[arg(long, value_name = "R", default_value_t = USER_LIST_DEFAULT_QUOTA, value_parser = user_pool::parse_rate)]
    pub user_list_quota: f64,
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
        let label = user_pool::sub_of(user).unwrap_or("(no sub)").to_owned();
        match user_pool::confirmed_user(pool_id, user) {
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

impl Args {
    /// What clap cannot check flag by flag.
    pub fn validate(&self) -> Result<(), String> {
        user_pool::check_rate(self.rate, self.user_list_quota)
    }
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<Outcome> {
    let queue_url = ctx.names.queue_url().await?;
    // Both checked before the first page, so a wrong queue or pool fails with its name.
    queue::inspect(&ctx.sqs, &queue_url).await?;
    user_pool::describe_pool(&ctx.cognito, &args.user_pool_id).await?;

    let lister = UserLister::new(&ctx.cognito, &args.user_pool_id, None, args.page_size, args.rate);
    let bar = progress::spinner("backfill: users enqueued");
    let mut pages = 0usize;
    let mut listed = 0usize;
    let mut selected = 0usize;
    let mut enqueued = 0usize;
    let mut unusable = Vec::new();
    let mut refused = Vec::new();
    let mut token = args.from_token.clone();
    loop {
        let page = lister
            .page(token.as_deref())
            .await
            .with_context(|| resume_hint(token.as_deref()))?;
        pages += 1;
        listed += page.users.len();
        let to_sync: Vec<UserType> = page
            .users
            .into_iter()
            .filter(|u| user_pool::must_be_synced(u.user_status()))
            .collect();
        selected += to_sync.len();
        let done = enqueue(&ctx.sqs, &queue_url, &args.user_pool_id, &to_sync).await;
        enqueued += done.enqueued;
        bar.inc(done.enqueued as u64);
        for (sub, why) in &done.unusable {
            progress::note(&bar, &format!("skipped user {sub}: {why}"));
        }
        for (sub, why) in &done.refused {
            progress::note(&bar, &format!("not enqueued: user {sub}: {why}"));
        }
        unusable.extend(done.unusable.into_iter().map(|(sub, _)| sub));
        refused.extend(done.refused.into_iter().map(|(sub, _)| sub));
        match page.next_token {
            Some(next) => {
                progress::note(&bar, &format!("resume with --from-token {next}"));
                token = Some(next);
            }
            None => break,
        }
    }
    bar.finish_and_clear();

    let outcome = if unusable.is_empty() && refused.is_empty() {
        Outcome::Done
    } else {
        Outcome::Incomplete
    };
    ctx.printer.report(
        &format!(
            "backfill of {pool}: {listed} users in {pages} pages, {selected} confirmed at least once, \
             {enqueued} enqueued, {refused_n} refused by SQS, {unusable_n} unusable; {retries} ListUsers \
             retries{stopped}",
            pool = args.user_pool_id,
            refused_n = refused.len(),
            unusable_n = unusable.len(),
            retries = lister.retries(),
            stopped = if outcome == Outcome::Done {
                ""
            } else {
                " (incomplete: the users above were not enqueued; `ops reconcile --repair` retries them)"
            },
        ),
        &json!({
            "command": "backfill",
            "user_pool_id": args.user_pool_id,
            "pages": pages,
            "users": listed,
            "selected": selected,
            "enqueued": enqueued,
            "refused": refused.len(),
            "refused_subs": refused,
            "unusable": unusable.len(),
            "unusable_subs": unusable,
            "retries": lister.retries(),
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
