//! The welcome of a first confirmation from sign-up, asked for once both items are written: a
//! request on the welcome queue, which the welcomer sends from, paced under SES's limits and
//! retried there for as long as a day. Nothing SES does can fail or hold back the sync: the
//! record is done once the request is queued (a failed enqueue fails the record, whose writes
//! are idempotent, so SQS's retry only asks again).

use shared::ConfirmedUser;
use tables::PutOutcome;
use welcome::Skip;
use welcome::message::Request;

use crate::deps::{Deps, WelcomeQueue};
use crate::record::RecordError;

/// What became of a user's welcome in this delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Welcome {
    /// A request is on the welcome queue (a redelivery asks again; the welcomer's claim sends
    /// once whatever it is asked).
    Requested,
    Skipped(Skip),
}

impl Welcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Skipped(skip) => skip.as_str(),
        }
    }
}

/// Whether `user`, whose users item the put found as `user_outcome`, is to be greeted: a first
/// confirmation from sign-up with a verified email, not deleted. The welcomer checks the users
/// item again when it claims the send.
pub fn decide(user: &ConfirmedUser, user_outcome: PutOutcome) -> Welcome {
    let deleted = user_outcome == PutOutcome::UserDeleted;
    match welcome::recipient(user.source(), user.attributes(), deleted) {
        Ok(_) => Welcome::Requested,
        Err(skip) => Welcome::Skipped(skip),
    }
}

/// Asks for `user`'s welcome if the welcome is on and they are to be greeted (`None`: off).
pub async fn request(
    deps: &Deps,
    user: &ConfirmedUser,
    user_outcome: PutOutcome,
) -> Option<Result<Welcome, RecordError>> {
    let queue = deps.welcome_queue.as_ref()?;
    Some(match decide(user, user_outcome) {
        Welcome::Requested => enqueue(queue, user).await.map(|()| Welcome::Requested),
        skipped => Ok(skipped),
    })
}

async fn enqueue(queue: &WelcomeQueue, user: &ConfirmedUser) -> Result<(), RecordError> {
    let request =
        Request::new(user.user_pool_id(), user.sub()).map_err(|err| RecordError::WelcomeEnqueue {
            detail: err.to_string(),
        })?;
    queue
        .client
        .send_message()
        .queue_url(&queue.url)
        .message_body(request.encode())
        .send()
        .await
        .map_err(|err| RecordError::WelcomeEnqueue {
            detail: sdk_config::detail(&err),
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use shared::ConfirmationSource;
    use time::OffsetDateTime;

    use super::*;

    fn user(source: ConfirmationSource, attributes: &[(&str, &str)]) -> ConfirmedUser {
        let mut all: BTreeMap<String, String> = attributes
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        all.insert("sub".into(), "0b5e4a3c-1f2d-4e6a-9b8c-7d6e5f4a3b2c".into());
        ConfirmedUser::new(
            "us-east-1_A1b2C3",
            "0b5e4a3c-1f2d-4e6a-9b8c-7d6e5f4a3b2c",
            "ana",
            all,
            OffsetDateTime::UNIX_EPOCH,
            source,
        )
        .unwrap()
    }

    #[test]
    fn only_a_sign_up_with_a_verified_email_of_a_user_not_deleted_is_requested() {
        let verified = [("email", "ana@example.com"), ("email_verified", "true")];
        let sign_up = user(ConfirmationSource::PostConfirmation, &verified);
        assert_eq!(decide(&sign_up, PutOutcome::Written), Welcome::Requested);
        // A redelivery asks again: the welcomer's claim keeps it to one mail.
        assert_eq!(decide(&sign_up, PutOutcome::AlreadyExists), Welcome::Requested);
        assert_eq!(
            decide(&sign_up, PutOutcome::UserDeleted),
            Welcome::Skipped(Skip::UserDeleted)
        );
        let reset = user(ConfirmationSource::PostConfirmationForgotPassword, &verified);
        assert_eq!(
            decide(&reset, PutOutcome::Written),
            Welcome::Skipped(Skip::NotASignUp)
        );
        let unverified = user(
            ConfirmationSource::PostConfirmation,
            &[("email", "ana@example.com")],
        );
        assert_eq!(
            decide(&unverified, PutOutcome::Written),
            Welcome::Skipped(Skip::EmailNotVerified)
        );
        let no_email = user(ConfirmationSource::PostConfirmation, &[]);
        assert_eq!(
            decide(&no_email, PutOutcome::Written),
            Welcome::Skipped(Skip::NoEmail)
        );
    }
}
