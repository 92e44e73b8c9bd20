//! A refresh signal: read the users item and the profile, *then* the user from Cognito, let
//! [`shared::lifecycle::decide`] say what to write, and write it. A write conditional on what
//! was read that finds the item changed starts the round again.
//!
//! The order of the reads is what makes a late signal harmless: whatever is stored was read
//! from Cognito before it was written, and this round read it before reading Cognito, so the
//! state this round read is at least as new.

use shared::ProfileId;
use shared::lifecycle::PoolUser;
use shared::lifecycle::lookup::{self, Next, Read};
use shared::lifecycle::{Change, Decision, Observed, ProfileWrite, StoredUser, UsersWrite, decide};
use shared::signal::{Cause, Refresh};
use time::OffsetDateTime;

use crate::deps::Deps;
use crate::record::{RecordError, Retries};
use crate::retry::{Service, retrying};
use tables::{Conditional, PutOutcome, Table};

/// Rounds of read, decide and write before the record is handed back to SQS for later.
const MAX_ROUNDS: u32 = 5;

/// What a refresh did.
#[derive(Debug)]
pub struct Refreshed {
    pub sub: String,
    pub cause: Cause,
    pub change: Change,
    pub users_written: bool,
    pub profile: ProfileEffect,
    /// Rounds that found the item changed under them.
    pub conflicts: u32,
}

/// What a refresh did to the profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProfileEffect {
    Unchanged,
    Created,
    MarkedDeleted,
    /// Replaced by a profile tombstone.
    Erased,
}

impl ProfileEffect {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unchanged => "unchanged",
            Self::Created => "created",
            Self::MarkedDeleted => "marked_deleted",
            Self::Erased => "erased",
        }
    }
}

/// Applies `signal`: the user's current state, or their deletion, reaches the tables.
pub async fn apply(deps: &Deps, signal: &Refresh, retries: &mut Retries) -> Result<Refreshed, RecordError> {
    let pool = &deps.config.user_pool_id;
    let profile_id = ProfileId::derive(pool, signal.sub()).to_string();
    for round in 0..MAX_ROUNDS {
        let (mut user_retries, mut profile_retries) = (0, 0);
        let reads = tokio::try_join!(
            retrying(Service::DynamoDb, "users", &mut user_retries, || deps
                .store
                .read_user(signal.sub())),
            retrying(Service::DynamoDb, "profiles", &mut profile_retries, || {
                deps.store.read_profile(&profile_id)
            }),
        );
        retries.dynamodb += user_retries + profile_retries;
        let (stored, profile) = reads?;
        let observed = observe(deps, &stored, signal, retries).await?;
        let decision = decide(
            &stored,
            profile,
            &observed,
            deps.config.profile_on_deletion,
            OffsetDateTime::now_utc(),
        );
        if let Some(done) = execute(deps, signal, decision, &profile_id, retries).await? {
            return Ok(Refreshed {
                conflicts: round,
                ..done
            });
        }
    }
    Err(RecordError::KeptChanging { rounds: MAX_ROUNDS })
}

/// What Cognito says about the signal's user now: the reads [`lookup`] asks for, one at a time
/// (its module says whom it reads, and why).
async fn observe(
    deps: &Deps,
    stored: &StoredUser,
    signal: &Refresh,
    retries: &mut Retries,
) -> Result<Observed, RecordError> {
    let mut next = lookup::first(stored, signal);
    loop {
        let read = match next {
            Next::Observed(observed) => return Ok(observed),
            Next::Read(read) => read,
        };
        let found = match &read {
            Read::ListBySub => {
                retrying(Service::Cognito, "ListUsers", &mut retries.cognito, || {
                    deps.pool.find_by_sub(signal.sub())
                })
                .await?
            }
            Read::ByStoredUsername(username)
            | Read::BySignalUsername(username)
            | Read::ByListedUsername(username) => get_user(deps, username, retries).await?,
        };
        next = lookup::after(&read, found, signal, &deps.config.user_pool_id);
    }
}

async fn get_user(
    deps: &Deps,
    username: &str,
    retries: &mut Retries,
) -> Result<Option<PoolUser>, RecordError> {
    let user = retrying(Service::Cognito, "AdminGetUser", &mut retries.cognito, || {
        deps.pool.get(username)
    })
    .await?;
    Ok(user)
}

/// Carries out `decision`; `None` when the users item changed since it was read.
async fn execute(
    deps: &Deps,
    signal: &Refresh,
    decision: Decision,
    profile_id: &str,
    retries: &mut Retries,
) -> Result<Option<Refreshed>, RecordError> {
    if let Some(bytes) = decision.oversized() {
        return Err(RecordError::ItemTooLarge {
            table: "users",
            bytes,
        });
    }
    let mut users_written = false;
    if let UsersWrite::Put { item, expected } = &decision.users {
        let written = retrying(Service::DynamoDb, "users", &mut retries.dynamodb, || {
            deps.store.put_user(item, *expected)
        })
        .await?;
        if written == Conditional::Conflict {
            return Ok(None);
        }
        users_written = true;
    }
    // After the users item: the tombstone is in place before the profile is touched, and a
    // crash in between is completed by the redelivery (a refresh of a tombstone does the
    // profile's part).
    let profile = match &decision.profile {
        ProfileWrite::Nothing => ProfileEffect::Unchanged,
        ProfileWrite::CreateIfAbsent(item) => {
            let outcome = retrying(Service::DynamoDb, "profiles", &mut retries.dynamodb, || {
                deps.store.put_if_absent(Table::Profiles, item)
            })
            .await?;
            match outcome {
                PutOutcome::Written => ProfileEffect::Created,
                // Created meanwhile, or a profile tombstone: a deletion got there first.
                PutOutcome::AlreadyExists | PutOutcome::UserDeleted => ProfileEffect::Unchanged,
            }
        }
        ProfileWrite::MarkDeleted { at } => {
            retrying(Service::DynamoDb, "profiles", &mut retries.dynamodb, || {
                deps.store.mark_profile_deleted(profile_id, at)
            })
            .await?;
            ProfileEffect::MarkedDeleted
        }
        ProfileWrite::Erase { at } => {
            retrying(Service::DynamoDb, "profiles", &mut retries.dynamodb, || {
                deps.store.erase_profile(profile_id, at)
            })
            .await?;
            ProfileEffect::Erased
        }
    };
    Ok(Some(Refreshed {
        sub: signal.sub().to_owned(),
        cause: signal.cause(),
        change: decision.change,
        users_written,
        profile,
        conflicts: 0,
    }))
}
