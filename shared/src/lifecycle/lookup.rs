//! Whom a refresh reads from Cognito, and what it observes: the lookup policy as plain
//! functions, one read at a time ([`first`], then [`after`] each read), so that every rule has a
//! test and the consumer only carries the reads out.
//!
//! The state always comes from `AdminGetUser` (strongly consistent). The username the users item
//! stores comes first: the pool having no user of that name, or a user of that name with another
//! sub (usernames are unique within a pool), means that this user is gone. Else the signal's
//! username, and failing that `ListUsers` filtered on the sub finds the username (only the
//! username: `ListUsers` may lag behind a change). A call that names no pool, for a user the
//! tables do not hold, is most likely another pool's user: it is not looked up (that would spend
//! the account's shared `ListUsers` quota on every other pool's users), except for a first
//! sign-in, the one way such a call brings a new user.

use crate::lifecycle::{Observed, PoolUser, StoredUser};
use crate::signal::{Cause, CognitoCall, Refresh};

/// One read of the user from Cognito.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Read {
    /// `AdminGetUser` by the username the users item stores.
    ByStoredUsername(String),
    /// `AdminGetUser` by the username the signal carries.
    BySignalUsername(String),
    /// `ListUsers` filtered on the sub, for the username.
    ListBySub,
    /// `AdminGetUser` by the username `ListUsers` gave.
    ByListedUsername(String),
}

/// What comes next: a read, or the observation.
#[derive(Clone, Debug, PartialEq)]
pub enum Next {
    Read(Read),
    Observed(Observed),
}

/// The first step of a refresh of `signal` for the users item `stored`.
pub fn first(stored: &StoredUser, signal: &Refresh) -> Next {
    if stored.is_tombstone() {
        // Nothing is ever written over a tombstone: what the pool says does not matter.
        return Next::Observed(Observed::Gone);
    }
    if let Some(username) = stored.username() {
        return Next::Read(Read::ByStoredUsername(username.to_owned()));
    }
    if let Some(username) = signal.username() {
        return Next::Read(Read::BySignalUsername(username.to_owned()));
    }
    without_a_username(signal)
}

/// What follows `read`, which found `found` (a user of that name, or the listed user; `None`: no
/// such user).
pub fn after(read: &Read, found: Option<PoolUser>, signal: &Refresh, pool: &str) -> Next {
    let mine = found.filter(|user| user.sub() == signal.sub());
    match (read, mine) {
        (Read::ByStoredUsername(_) | Read::ByListedUsername(_), Some(user)) => {
            Next::Observed(Observed::Present(user))
        }
        (Read::ByStoredUsername(_) | Read::ByListedUsername(_) | Read::ListBySub, None) => {
            Next::Observed(gone(signal, pool))
        }
        (Read::BySignalUsername(_), Some(user)) => Next::Observed(Observed::Present(user)),
        // The signal's username may be stale or another user's: look the sub up instead.
        (Read::BySignalUsername(_), None) => without_a_username(signal),
        (Read::ListBySub, Some(user)) => Next::Read(Read::ByListedUsername(user.username().to_owned())),
    }
}

/// No username to read by: `ListUsers` by the sub, unless the call names no pool and is no
/// first sign-in.
fn without_a_username(signal: &Refresh) -> Next {
    let first_sign_in = signal.cause() == Cause::Call(CognitoCall::RespondToAuthChallenge);
    if signal.user_pool_id().is_none() && !first_sign_in {
        return Next::Observed(Observed::Gone);
    }
    Next::Read(Read::ListBySub)
}

/// The user is not in the pool: a recorded deletion (in this pool: the plan checked any pool the
/// call names) says they were deleted, so that a tombstone stands even with nothing stored.
fn gone(signal: &Refresh, pool: &str) -> Observed {
    match signal.cause() {
        Cause::Call(CognitoCall::AdminDeleteUser) => Observed::Deleted {
            user_pool_id: pool.to_owned(),
            sub: signal.sub().to_owned(),
        },
        _ => Observed::Gone,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use time::OffsetDateTime;

    use super::*;
    use crate::envelope::{Message, decode_message};
    use crate::mapping::ItemValue;
    use crate::signal::Signal;

    const POOL: &str = "us-east-1_A1b2C3";
    const SUB: &str = "0b5e4a3c-1f2d-4e6a-9b8c-7d6e5f4a3b2c";
    const OTHER_SUB: &str = "9f1e2d3c-4b5a-4968-8776-655443322110";

    fn user(username: &str, sub: &str) -> PoolUser {
        let attributes = BTreeMap::from([("sub".to_owned(), sub.to_owned())]);
        PoolUser::new(
            POOL,
            username,
            attributes,
            "CONFIRMED",
            true,
            OffsetDateTime::UNIX_EPOCH,
        )
        .unwrap()
    }

    fn stored(pairs: &[(&str, &str)]) -> StoredUser {
        StoredUser::from_item(Some(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), ItemValue::S((*v).to_owned())))
                .collect(),
        ))
    }

    /// A recorded call: `pool` when the call names one (an Admin* call), none for a token call.
    fn call(name: &str, pool: Option<&str>, extra: serde_json::Value) -> Refresh {
        let mut request = serde_json::json!({"userPoolId": pool});
        if pool.is_none() {
            request = serde_json::json!({"accessToken": "HIDDEN_DUE_TO_SECURITY_REASONS"});
        }
        request
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let event = serde_json::json!({
            "version": "0", "detail-type": "AWS API Call via CloudTrail", "source": "aws.cognito-idp",
            "detail": {"eventName": name, "requestParameters": request, "additionalEventData": {"sub": SUB}}
        });
        match decode_message(&event.to_string()).unwrap() {
            Message::Signal(Signal::Refresh(refresh)) => refresh,
            other => panic!("{other:?}"),
        }
    }

    fn requested(username: Option<&str>) -> Refresh {
        Refresh::requested(POOL, SUB, username).unwrap()
    }

    #[test]
    fn a_tombstone_is_not_looked_up() {
        let tombstone = stored(&[("username", "ana"), ("deleted_at", "2026-12-01T00:00:00.000Z")]);
        assert_eq!(
            first(&tombstone, &requested(None)),
            Next::Observed(Observed::Gone)
        );
    }

    #[test]
    fn the_stored_username_is_read_first_and_decides() {
        let item = stored(&[("username", "ana")]);
        let read = Read::ByStoredUsername("ana".into());
        assert_eq!(first(&item, &requested(Some("other"))), Next::Read(read.clone()));
        let signal = requested(None);
        assert_eq!(
            after(&read, Some(user("ana", SUB)), &signal, POOL),
            Next::Observed(Observed::Present(user("ana", SUB)))
        );
        // No user of that name, or that name taken by another sub: this user is gone.
        assert_eq!(after(&read, None, &signal, POOL), Next::Observed(Observed::Gone));
        assert_eq!(
            after(&read, Some(user("ana", OTHER_SUB)), &signal, POOL),
            Next::Observed(Observed::Gone)
        );
    }

    #[test]
    fn the_signals_username_is_tried_then_the_sub_is_listed() {
        let nothing = StoredUser::Absent;
        let signal = requested(Some("ana"));
        let read = Read::BySignalUsername("ana".into());
        assert_eq!(first(&nothing, &signal), Next::Read(read.clone()));
        assert_eq!(
            after(&read, Some(user("ana", SUB)), &signal, POOL),
            Next::Observed(Observed::Present(user("ana", SUB)))
        );
        // A stale username, or another user's: the sub decides.
        assert_eq!(after(&read, None, &signal, POOL), Next::Read(Read::ListBySub));
        assert_eq!(
            after(&read, Some(user("ana", OTHER_SUB)), &signal, POOL),
            Next::Read(Read::ListBySub)
        );
    }

    #[test]
    fn listing_gives_the_username_and_admin_get_user_the_state() {
        let signal = requested(None);
        assert_eq!(first(&StoredUser::Absent, &signal), Next::Read(Read::ListBySub));
        assert_eq!(
            after(&Read::ListBySub, Some(user("ana", SUB)), &signal, POOL),
            Next::Read(Read::ByListedUsername("ana".into()))
        );
        assert_eq!(
            after(&Read::ListBySub, None, &signal, POOL),
            Next::Observed(Observed::Gone)
        );
        let listed = Read::ByListedUsername("ana".into());
        assert_eq!(
            after(&listed, Some(user("ana", SUB)), &signal, POOL),
            Next::Observed(Observed::Present(user("ana", SUB)))
        );
        assert_eq!(
            after(&listed, None, &signal, POOL),
            Next::Observed(Observed::Gone)
        );
    }

    #[test]
    fn a_token_call_for_a_user_the_tables_do_not_hold_is_not_looked_up_but_a_first_sign_in() {
        let update = call("UpdateUserAttributes", None, serde_json::json!({}));
        assert_eq!(
            first(&StoredUser::Absent, &update),
            Next::Observed(Observed::Gone)
        );
        let sign_in = call(
            "RespondToAuthChallenge",
            None,
            serde_json::json!({"challengeName": "NEW_PASSWORD_REQUIRED"}),
        );
        assert_eq!(first(&StoredUser::Absent, &sign_in), Next::Read(Read::ListBySub));
        // A token call for a user the tables hold reads them by their stored username.
        assert_eq!(
            first(&stored(&[("username", "ana")]), &update),
            Next::Read(Read::ByStoredUsername("ana".into()))
        );
    }

    #[test]
    fn a_recorded_deletion_of_a_user_the_pool_no_longer_has_is_a_deletion() {
        let deleted = call("AdminDeleteUser", Some(POOL), serde_json::json!({}));
        let expected = Observed::Deleted {
            user_pool_id: POOL.into(),
            sub: SUB.into(),
        };
        assert_eq!(
            after(&Read::ListBySub, None, &deleted, POOL),
            Next::Observed(expected.clone())
        );
        assert_eq!(
            after(&Read::ByStoredUsername("ana".into()), None, &deleted, POOL),
            Next::Observed(expected)
        );
        // Any other call finds the user merely gone.
        let disabled = call("AdminDisableUser", Some(POOL), serde_json::json!({}));
        assert_eq!(
            after(&Read::ListBySub, None, &disabled, POOL),
            Next::Observed(Observed::Gone)
        );
    }
}
