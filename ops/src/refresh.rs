//! `ops refresh`: asks the consumer to bring some users' items up to the pool's state now.
//!
//! Each `sub` becomes a refresh signal on the sync queue (the envelope the consumer answers by
//! reading the user from Cognito, as for any recorded change), so the write is the consumer's,
//! with its conditions: a user gone from the pool becomes a tombstone, a tombstone stays one,
//! and an item already up to date is left alone. For a change no signal brought (the trail was
//! not logging, a record was lost).

use anyhow::Result;
use serde_json::json;

use crate::queue::{self, Outgoing};
use crate::{Ctx, Outcome, user_pool};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The sub of a user to refresh (their users item's key); repeat for several users.
    #[arg(long = "sub", value_name = "SUB", value_parser = user_pool::parse_sub, required = true)]
    pub subs: Vec<String>,
    /// The user pool the users belong to; default: the pool the stack serves (its UserPoolId
    /// output).
    #[arg(long, value_name = "ID", value_parser = user_pool::parse_pool_id)]
    pub user_pool_id: Option<String>,
}

/// The refresh signal of each sub, labelled by it.
pub fn signals(pool: &str, subs: &[String]) -> Result<Vec<Outgoing>> {
    subs.iter()
        .map(|sub| {
            let refresh = shared::signal::Refresh::requested(pool, sub, None)?;
            Ok(Outgoing {
                label: refresh.sub().to_owned(),
                body: shared::envelope::encode_refresh(&refresh),
            })
        })
        .collect()
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<Outcome> {
    let pool = match &args.user_pool_id {
        Some(pool) => pool.clone(),
        None => ctx.names.served_user_pool_id().await?,
    };
    let queue_url = ctx.names.queue_url().await?;
    queue::inspect(&ctx.sqs, &queue_url).await?;
    let outgoing = signals(&pool, &args.subs)?;
    let sent = queue::send_batches(&ctx.sqs, &queue_url, &outgoing).await;
    for (sub, why) in &sent.refused {
        eprintln!("refresh: SQS refused the signal for {sub}: {why}");
    }
    let refused: Vec<&str> = sent.refused.iter().map(|(sub, _)| sub.as_str()).collect();
    ctx.printer.report(
        &format!(
            "refresh: {} signals enqueued for pool {pool}, {} refused by SQS; the consumer applies \
             each user's state as Cognito has it now",
            sent.accepted,
            refused.len()
        ),
        &json!({
            "command": "refresh",
            "user_pool_id": pool,
            "enqueued": sent.accepted,
            "refused": refused.len(),
            "refused_subs": refused,
        }),
    );
    Ok(if refused.is_empty() {
        Outcome::Done
    } else {
        Outcome::Incomplete
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_sub_becomes_a_refresh_signal_the_consumer_decodes() {
        let subs = vec![
            "0b5e4a3c-1f2d-4e6a-9b8c-7d6e5f4a3b2c".to_owned(),
            "1c6f5b4d-2e3f-4a5b-8c9d-0e1f2a3b4c5d".to_owned(),
        ];
        let outgoing = signals("us-east-1_Mine1", &subs).unwrap();
        assert_eq!(outgoing.len(), 2);
        for (message, sub) in outgoing.iter().zip(&subs) {
            assert_eq!(&message.label, sub);
            match shared::envelope::decode_message(&message.body).unwrap() {
                shared::envelope::Message::Signal(shared::signal::Signal::Refresh(refresh)) => {
                    assert_eq!(refresh.sub(), sub);
                    assert_eq!(refresh.user_pool_id(), Some("us-east-1_Mine1"));
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
