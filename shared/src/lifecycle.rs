//! The users item as a mirror of the user's current Cognito state, and what to write when a
//! signal says that a user changed.
//!
//! A signal carries no state. The consumer reads the users item (and whether the profile
//! exists), *then* reads the user from Cognito, and [`decide`] says what to write. Every write of
//! the users item is conditional on the item still being the one read ([`Expected`]: absent, or
//! its `revision`), and every state stored was read from Cognito before it was written, so a
//! state read after the item is at least as new as the one stored. Hence a signal delivered
//! late, twice or out of order can only ever write the user's current state, and a concurrent
//! writer makes the condition fail, after which the consumer reads both again.
//!
//! Cognito's `UserLastModifiedDate` is stored as the version (`cognito_modified_at`). A read
//! older than the stored version is refused ([`Change::Stale`]): belt and braces against a
//! lagging read. Two changes within one tick of it carry the same version; the state read last
//! is then written, which the read order above makes the newer one (so is a change Cognito does
//! not version at all, such as enabling a user).
//!
//! A user the pool no longer has becomes a tombstone: every personal attribute removed,
//! `deleted_at` set, the key and `profile_id` kept. Nothing is ever written over a tombstone.
//! Their profile gets the marker, or (`ProfileOnDeletion=delete`, or `ops forget`) is replaced
//! by a profile tombstone; either way an item stays under the profile's key, so the create-only
//! put of a late confirmation finds it and writes nothing. The deletion writes the users
//! tombstone first and the profile's second, and a refresh of a tombstoned user completes the
//! profile's part, so a crash between the two is repaired by the redelivery.

use std::collections::BTreeMap;
use std::fmt;

use time::OffsetDateTime;

use crate::ProfileId;
use crate::mapping::{Item, ItemValue, PROFILES_KEY, USERS_KEY, insert_user_fields, profile_item};
use crate::timestamp::{format_rfc3339, parse_rfc3339};
use crate::user::{UserError, check_identity, is_storable_time};

/// Counts the writes of the users item; every conditional write expects the one it read.
pub const REVISION: &str = "revision";
/// Cognito's `UserLastModifiedDate` of the state stored: the version.
pub const COGNITO_MODIFIED_AT: &str = "cognito_modified_at";
/// Set on a tombstone: when the service learnt that the user is gone (or was forgotten).
pub const DELETED_AT: &str = "deleted_at";
/// Set on the tombstone of a user erased on request (`ops forget`): their profile is erased,
/// whatever `ProfileOnDeletion` says, and stays deleted.
pub const FORGOTTEN_AT: &str = "forgotten_at";
/// The marker a profile gets when its user is deleted.
pub const PROFILE_DELETED_AT: &str = "user_deleted_at";

/// Cognito's `UserStatus` of the state stored.
pub const COGNITO_STATUS: &str = "cognito_status";
/// Whether the user is enabled in the pool, in the state stored.
pub const ENABLED: &str = "enabled";
/// The fields only a mirror of the user's state has (an item written by a confirmation has
/// none of them until its first refresh).
pub const MIRROR_FIELDS: [&str; 3] = [COGNITO_STATUS, ENABLED, COGNITO_MODIFIED_AT];
/// Fields of the users item that say when this service wrote it, not what the user is.
pub const WRITE_STAMPS: [&str; 2] = [REVISION, "updated_at"];
/// Fields of the users item set once and carried over by every later write.
pub const CARRIED: [&str; 2] = ["created_at", "confirmed_at"];

/// The welcome email's record on the users item (the welcomer's), each write of it conditional
/// and bumping [`REVISION`]: which delivery claimed the send, when, until when its claim keeps
/// others off (epoch milliseconds), when SES accepted it and its message id, SES's error code
/// when it refused for good, and the latest problem SES reported after accepting it (a bounce,
/// a complaint, a rejection, a rendering failure, a delay) with when (epoch milliseconds), and
/// when an operator last reopened a welcome SES had not delivered (epoch milliseconds: a report
/// of the mail before it is no longer recorded).
pub const WELCOME_CLAIM: &str = "welcome_claim";
pub const WELCOME_CLAIMED_AT: &str = "welcome_claimed_at";
pub const WELCOME_LEASE_UNTIL: &str = "welcome_lease_until";
pub const WELCOME_SENT_AT: &str = "welcome_sent_at";
pub const WELCOME_MESSAGE_ID: &str = "welcome_message_id";
pub const WELCOME_FAILED: &str = "welcome_failed";
pub const WELCOME_PROBLEM: &str = "welcome_problem";
pub const WELCOME_PROBLEM_AT: &str = "welcome_problem_at";
pub const WELCOME_REOPENED_AT: &str = "welcome_reopened_at";
/// Carried over by every mirror write: a refresh never forgets that a welcome was claimed or
/// sent (else a redelivered confirmation would greet the user again), nor what became of it.
pub const WELCOME_FIELDS: [&str; 9] = [
    WELCOME_CLAIM,
    WELCOME_CLAIMED_AT,
    WELCOME_LEASE_UNTIL,
    WELCOME_SENT_AT,
    WELCOME_MESSAGE_ID,
    WELCOME_FAILED,
    WELCOME_PROBLEM,
    WELCOME_PROBLEM_AT,
    WELCOME_REOPENED_AT,
];

/// Whether a user of this Cognito status has been confirmed at least once, and so belongs in the
/// tables (see `ops`'s `must_be_synced` for what each status means). A user not yet confirmed
/// (`UNCONFIRMED`, or `FORCE_CHANGE_PASSWORD`: created by an administrator, never signed in) is
/// not written until they are; once written, a user is mirrored whatever their status.
pub fn confirmed_at_least_once(status: &str) -> bool {
    matches!(
        status,
        "CONFIRMED" | "EXTERNAL_PROVIDER" | "RESET_REQUIRED" | "COMPROMISED"
    )
}

/// A user as Cognito holds them now (`AdminGetUser`, or one user of `ListUsers`).
#[derive(Clone, PartialEq)]
pub struct PoolUser {
    user_pool_id: String,
    sub: String,
    username: String,
    attributes: BTreeMap<String, String>,
    status: String,
    enabled: bool,
    last_modified: OffsetDateTime,
}

impl PoolUser {
    /// Validates a user read from Cognito: the sub is the `sub` attribute, which Cognito always
    /// returns.
    pub fn new(
        user_pool_id: &str,
        username: &str,
        attributes: BTreeMap<String, String>,
        status: &str,
        enabled: bool,
        last_modified: OffsetDateTime,
    ) -> Result<Self, UserError> {
        let sub = attributes.get("sub").ok_or(UserError::MissingSub)?;
        let sub = check_identity(user_pool_id, sub, username)?;
        if status.trim().is_empty() || status.len() > 64 {
            return Err(UserError::InvalidStatus);
        }
        if !is_storable_time(last_modified) {
            return Err(UserError::LastModifiedOutOfRange);
        }
        Ok(Self {
            user_pool_id: user_pool_id.to_owned(),
            sub,
            username: username.to_owned(),
            attributes,
            status: status.to_owned(),
            enabled,
            last_modified,
        })
    }

    pub fn sub(&self) -> &str {
        &self.sub
    }

    pub fn username(&self) -> &str {
        &self.username
    }

    pub fn user_pool_id(&self) -> &str {
        &self.user_pool_id
    }

    pub fn attributes(&self) -> &BTreeMap<String, String> {
        &self.attributes
    }

    /// Cognito's `UserStatus` (`CONFIRMED`, `FORCE_CHANGE_PASSWORD`, ...).
    pub fn status(&self) -> &str {
        &self.status
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    pub fn last_modified(&self) -> OffsetDateTime {
        self.last_modified
    }
}

/// Identifiers only: a stray `?user` in a log line must not leak PII.
impl fmt::Debug for PoolUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolUser")
            .field("user_pool_id", &self.user_pool_id)
            .field("sub", &self.sub)
            .field("status", &self.status)
            .field("enabled", &self.enabled)
            .field(
                "attributes",
                &format_args!("<{} redacted>", self.attributes.len()),
            )
            .finish_non_exhaustive()
    }
}

/// An item as read back from DynamoDB.
pub type StoredItem = BTreeMap<String, ItemValue>;

/// The users item as read, before a decision.
#[derive(Clone, Debug, PartialEq)]
pub enum StoredUser {
    Absent,
    Live(StoredItem),
    Tombstone(StoredItem),
}

impl StoredUser {
    pub fn from_item(item: Option<StoredItem>) -> Self {
        match item {
            None => Self::Absent,
            Some(item) if item.contains_key(DELETED_AT) => Self::Tombstone(item),
            Some(item) => Self::Live(item),
        }
    }

    fn item(&self) -> Option<&StoredItem> {
        match self {
            Self::Absent => None,
            Self::Live(item) | Self::Tombstone(item) => Some(item),
        }
    }

    /// What a conditional write of this item expects to find.
    fn expected(&self) -> Expected {
        match self.item() {
            None => Expected::Absent,
            Some(item) => Expected::Revision(match item.get(REVISION) {
                Some(ItemValue::N(revision)) => Some(*revision),
                _ => None,
            }),
        }
    }

    /// The revision the next write carries.
    fn next_revision(&self) -> i64 {
        match self.expected() {
            Expected::Revision(Some(revision)) => revision.saturating_add(1),
            _ => 1,
        }
    }

    fn version(&self) -> Option<OffsetDateTime> {
        match self.item()?.get(COGNITO_MODIFIED_AT)? {
            ItemValue::S(text) => parse_rfc3339(text),
            _ => None,
        }
    }

    /// The username the pool knows this user by, when the item says.
    pub fn username(&self) -> Option<&str> {
        match self.item()?.get("username")? {
            ItemValue::S(text) => Some(text),
            _ => None,
        }
    }

    pub fn is_tombstone(&self) -> bool {
        matches!(self, Self::Tombstone(_))
    }

    /// A tombstone left by `ops forget`.
    pub fn is_forgotten(&self) -> bool {
        matches!(self, Self::Tombstone(item) if item.contains_key(FORGOTTEN_AT))
    }
}

/// The profile item as read: only whether it exists and carries the deletion marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoredProfile {
    Absent,
    Present {
        marked_deleted: bool,
    },
    /// A profile tombstone: its key and `user_deleted_at`, nothing else.
    Erased,
}

impl StoredProfile {
    pub fn from_item(item: Option<&StoredItem>) -> Self {
        match item {
            None => Self::Absent,
            Some(item)
                if item.contains_key(PROFILE_DELETED_AT)
                    && item.len() == 2
                    && item.contains_key(PROFILES_KEY) =>
            {
                Self::Erased
            }
            Some(item) => Self::Present {
                marked_deleted: item.contains_key(PROFILE_DELETED_AT),
            },
        }
    }
}

/// What stands in for a deleted profile: its key and when the user was deleted. Deleting the
/// item instead would let a late confirmation create it again (the create-only put finds
/// nothing); this makes that put fail, without a read.
pub fn profile_tombstone_item(profile_id: &str, at: &str) -> Item {
    let mut item = Item::new();
    item.insert(PROFILES_KEY, ItemValue::S(profile_id.to_owned()));
    item.insert(PROFILE_DELETED_AT, ItemValue::S(at.to_owned()));
    item
}

/// What Cognito says about the user now.
#[derive(Clone, Debug, PartialEq)]
pub enum Observed {
    Present(PoolUser),
    /// The pool has no user with this sub, and a recorded deletion of them in this pool says
    /// why: even with nothing stored, a tombstone is written, so that a confirmation still on its
    /// way cannot create the user afterwards. (A sub is never reused.)
    Deleted {
        user_pool_id: String,
        sub: String,
    },
    /// The pool has no user with this sub.
    Gone,
}

/// What happens to the profile when its user is deleted (the `ProfileOnDeletion` parameter).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProfileOnDeletion {
    /// Only the marker (`user_deleted_at`); the application decides what to keep.
    #[default]
    Mark,
    /// The profile's data goes too: it is replaced by a profile tombstone.
    Delete,
}

impl ProfileOnDeletion {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "mark" => Some(Self::Mark),
            "delete" => Some(Self::Delete),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mark => "mark",
            Self::Delete => "delete",
        }
    }
}

/// What a conditional write of the users item expects to find there: what was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    Absent,
    /// An item with this `revision` (`None`: one written before revisions, by a confirmation).
    Revision(Option<i64>),
}

/// The write to the users table.
#[derive(Clone, Debug, PartialEq)]
pub enum UsersWrite {
    Nothing,
    /// Replace the whole item with `item` if the table still holds what was read.
    Put {
        item: Item,
        expected: Expected,
    },
}

/// The write to the profiles table.
#[derive(Clone, Debug, PartialEq)]
pub enum ProfileWrite {
    Nothing,
    /// Create the profile unless an item with its key exists (a profile, or the profile
    /// tombstone a deletion left).
    CreateIfAbsent(Item),
    /// Set the deletion marker unless it is set; where there is no profile this leaves a profile
    /// tombstone, so that no late confirmation creates one afterwards.
    MarkDeleted {
        at: String,
    },
    /// Replace the profile with a profile tombstone: the application's data goes.
    Erase {
        at: String,
    },
}

/// What a decision does to the user, for logs and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// First item for this user.
    Created,
    /// The stored state replaced by the current one.
    Updated,
    /// The stored state is the current one (a profile may still be created).
    Unchanged,
    /// The state read is older than the one stored: nothing written.
    Stale,
    /// The user is gone from the pool: the item becomes a tombstone.
    Deleted,
    /// The item is a tombstone already: nothing but the profile's deletion is ever written.
    AlreadyDeleted,
    /// The pool does not have the user and nothing is stored: nothing written.
    NotInPool,
    /// The user has never been confirmed and nothing is stored: nothing written yet.
    NotConfirmed,
    /// Erased on request (`ops forget`).
    Forgotten,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Unchanged => "unchanged",
            Self::Stale => "stale",
            Self::Deleted => "deleted",
            Self::AlreadyDeleted => "already_deleted",
            Self::NotInPool => "not_in_pool",
            Self::NotConfirmed => "not_confirmed",
            Self::Forgotten => "forgotten",
        }
    }
}

/// The writes one signal leads to.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub users: UsersWrite,
    pub profile: ProfileWrite,
    pub change: Change,
}

impl Decision {
    /// The users item this decision writes, when it is over DynamoDB's size limit: its size.
    /// Checked before any write, as a confirmation's items are (`SyncItems::oversized`), so a
    /// state too large to store leaves nothing half-written (the profile is never larger than
    /// the confirmation that created it).
    pub fn oversized(&self) -> Option<usize> {
        match &self.users {
            UsersWrite::Put { item, .. } => {
                Some(crate::mapping::item_size(item)).filter(|bytes| *bytes > crate::mapping::MAX_ITEM_BYTES)
            }
            UsersWrite::Nothing => None,
        }
    }

    fn nothing(change: Change) -> Self {
        Self {
            users: UsersWrite::Nothing,
            profile: ProfileWrite::Nothing,
            change,
        }
    }
}

/// Given the items as read and then the user as Cognito has them, what to write.
pub fn decide(
    stored: &StoredUser,
    profile: StoredProfile,
    observed: &Observed,
    on_deletion: ProfileOnDeletion,
    now: OffsetDateTime,
) -> Decision {
    match (stored, observed) {
        (StoredUser::Tombstone(_), _) => Decision {
            users: UsersWrite::Nothing,
            profile: match stored.is_forgotten() {
                true => erase(profile, now),
                false => profile_on_deletion(profile, on_deletion, now),
            },
            change: Change::AlreadyDeleted,
        },
        (StoredUser::Absent, Observed::Gone) => Decision::nothing(Change::NotInPool),
        (StoredUser::Absent | StoredUser::Live(_), Observed::Deleted { user_pool_id, sub }) => Decision {
            users: UsersWrite::Put {
                item: tombstone_item(stored, Some((user_pool_id, sub)), now, false),
                expected: stored.expected(),
            },
            profile: profile_on_deletion(profile, on_deletion, now),
            change: Change::Deleted,
        },
        (StoredUser::Live(_), Observed::Gone) => Decision {
            users: UsersWrite::Put {
                item: tombstone_item(stored, None, now, false),
                expected: stored.expected(),
            },
            profile: profile_on_deletion(profile, on_deletion, now),
            change: Change::Deleted,
        },
        (StoredUser::Absent, Observed::Present(user)) if !confirmed_at_least_once(user.status()) => {
            Decision::nothing(Change::NotConfirmed)
        }
        (StoredUser::Absent | StoredUser::Live(_), Observed::Present(user)) => {
            let create_profile = match profile {
                StoredProfile::Absent => ProfileWrite::CreateIfAbsent(profile_item(
                    user.user_pool_id(),
                    user.sub(),
                    user.username(),
                    user.attributes(),
                    now,
                )),
                StoredProfile::Present { .. } | StoredProfile::Erased => ProfileWrite::Nothing,
            };
            if stored
                .version()
                .is_some_and(|stored_version| truncated(user.last_modified()) < stored_version)
            {
                return Decision::nothing(Change::Stale);
            }
            let item = mirror_item(user, stored, now);
            let change = match stored.item() {
                None => Change::Created,
                Some(current) if holds_state(current, &item) => {
                    return Decision {
                        users: UsersWrite::Nothing,
                        profile: create_profile,
                        change: Change::Unchanged,
                    };
                }
                Some(_) => Change::Updated,
            };
            Decision {
                users: UsersWrite::Put {
                    item,
                    expected: stored.expected(),
                },
                profile: create_profile,
                change,
            }
        }
    }
}

/// The erasure of a data subject (`ops forget`): whatever the pool says, the users item becomes
/// a tombstone marked `forgotten_at` and the profile is replaced by a profile tombstone, for good.
pub fn forget(
    stored: &StoredUser,
    profile: StoredProfile,
    user_pool_id: &str,
    sub: &str,
    now: OffsetDateTime,
) -> Decision {
    let profile = erase(profile, now);
    // A deleted user's tombstone is rewritten once, to say they were forgotten too.
    let users = if stored.is_forgotten() {
        UsersWrite::Nothing
    } else {
        UsersWrite::Put {
            item: tombstone_item(stored, Some((user_pool_id, sub)), now, true),
            expected: stored.expected(),
        }
    };
    Decision {
        users,
        profile,
        change: Change::Forgotten,
    }
}

fn profile_on_deletion(
    profile: StoredProfile,
    on_deletion: ProfileOnDeletion,
    now: OffsetDateTime,
) -> ProfileWrite {
    match (on_deletion, profile) {
        (ProfileOnDeletion::Delete, _) => erase(profile, now),
        (
            ProfileOnDeletion::Mark,
            StoredProfile::Absent
            | StoredProfile::Present {
                marked_deleted: false,
            },
        ) => ProfileWrite::MarkDeleted {
            at: format_rfc3339(now),
        },
        (
            ProfileOnDeletion::Mark,
            StoredProfile::Present { marked_deleted: true } | StoredProfile::Erased,
        ) => ProfileWrite::Nothing,
    }
}

/// The profile replaced by a profile tombstone, unless it is one.
fn erase(profile: StoredProfile, now: OffsetDateTime) -> ProfileWrite {
    match profile {
        StoredProfile::Erased => ProfileWrite::Nothing,
        StoredProfile::Absent | StoredProfile::Present { .. } => ProfileWrite::Erase {
            at: format_rfc3339(now),
        },
    }
}

/// The users item for `user`'s current state, carrying over what never changes from `stored`.
pub fn mirror_item(user: &PoolUser, stored: &StoredUser, now: OffsetDateTime) -> Item {
    let stamp = format_rfc3339(now);
    let mut item = Item::new();
    insert_user_fields(
        &mut item,
        user.user_pool_id(),
        user.sub(),
        user.username(),
        user.attributes(),
    );
    item.insert(COGNITO_STATUS, ItemValue::S(user.status().to_owned()));
    item.insert(ENABLED, ItemValue::Bool(user.enabled()));
    item.insert(
        COGNITO_MODIFIED_AT,
        ItemValue::S(format_rfc3339(user.last_modified())),
    );
    carry_over(&mut item, stored);
    item.entry("created_at")
        .or_insert_with(|| ItemValue::S(stamp.clone()));
    item.insert("updated_at", ItemValue::S(stamp));
    item.insert(REVISION, ItemValue::N(stored.next_revision()));
    item
}

/// The tombstone that replaces `stored`: key, pool, profile id and creation time only.
/// `identity` (pool id, sub) names the user when nothing is stored.
fn tombstone_item(
    stored: &StoredUser,
    identity: Option<(&str, &str)>,
    now: OffsetDateTime,
    forgotten: bool,
) -> Item {
    let stored_string = |name: &str| match stored.item().and_then(|item| item.get(name)) {
        Some(ItemValue::S(text)) => Some(text.clone()),
        _ => None,
    };
    let pool = stored_string("user_pool_id").or_else(|| identity.map(|(pool, _)| pool.to_owned()));
    let sub = stored_string(USERS_KEY)
        .or_else(|| identity.map(|(_, sub)| sub.to_owned()))
        .unwrap_or_default();
    let stamp = format_rfc3339(now);
    let mut item = Item::new();
    item.insert(USERS_KEY, ItemValue::S(sub.clone()));
    let profile_id = stored_string(PROFILES_KEY).or_else(|| {
        pool.as_deref()
            .map(|pool| ProfileId::derive(pool, &sub).to_string())
    });
    if let Some(profile_id) = profile_id {
        item.insert(PROFILES_KEY, ItemValue::S(profile_id));
    }
    if let Some(pool) = pool {
        item.insert("user_pool_id", ItemValue::S(pool));
    }
    if let Some(created_at) = stored_string("created_at") {
        item.insert("created_at", ItemValue::S(created_at));
    }
    // A tombstone rewritten by `ops forget` keeps when the user was deleted.
    let deleted_at = stored_string(DELETED_AT).unwrap_or_else(|| stamp.clone());
    item.insert(DELETED_AT, ItemValue::S(deleted_at));
    if forgotten {
        item.insert(FORGOTTEN_AT, ItemValue::S(stamp.clone()));
    }
    item.insert("updated_at", ItemValue::S(stamp));
    item.insert(REVISION, ItemValue::N(stored.next_revision()));
    item
}

fn carry_over(item: &mut Item, stored: &StoredUser) {
    let Some(current) = stored.item() else {
        return;
    };
    for name in CARRIED {
        if let Some(value @ ItemValue::S(_)) = current.get(name) {
            item.insert(name, value.clone());
        }
    }
    for name in WELCOME_FIELDS {
        if let Some(value @ (ItemValue::S(_) | ItemValue::N(_))) = current.get(name) {
            item.insert(name, value.clone());
        }
    }
    // Derived the same way every time; carried so that it can never change.
    if let Some(value @ ItemValue::S(_)) = current.get(PROFILES_KEY) {
        item.insert(PROFILES_KEY, value.clone());
    }
}

/// Whether `stored` already holds the state `next` would write (write stamps aside).
pub fn holds_state(stored: &StoredItem, next: &Item) -> bool {
    let stored_fields = stored
        .iter()
        .filter(|(name, _)| !WRITE_STAMPS.contains(&name.as_str()));
    let next_fields = next.iter().filter(|(name, _)| !WRITE_STAMPS.contains(name));
    stored_fields
        .map(|(name, value)| (name.as_str(), value))
        .eq(next_fields.map(|(name, value)| (*name, value)))
}

/// `at` as stored: to the millisecond.
pub fn truncated(at: OffsetDateTime) -> OffsetDateTime {
    parse_rfc3339(&format_rfc3339(at)).unwrap_or(at)
}

pub mod lookup;

#[cfg(test)]
mod tests;
