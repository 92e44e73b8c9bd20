//! How one user of the pool, as `ListUsers` lists them, differs from their two items.
//!
//! Only real differences count. An item written by a confirmation has none of the mirror's
//! fields (status, enabled, version) until its first refresh: it stands for a confirmed,
//! enabled user, and is compared on what it holds. Flagging it for the fields it lacks would
//! refresh every such user on the first run (ten million `AdminGetUser` calls at 50 a second
//! is more than two days).
//!
//! A listing can lag behind a change; a difference it shows is only a reason to refresh, and
//! the consumer then reads the user with `AdminGetUser` before it writes anything. So a
//! lagging listing costs one refresh that changes nothing, never a wrong write.

use shared::ItemValue;
use shared::lifecycle::{
    CARRIED, COGNITO_MODIFIED_AT, COGNITO_STATUS, DELETED_AT, ENABLED, MIRROR_FIELDS, PoolUser, StoredItem,
    StoredUser, WRITE_STAMPS, confirmed_at_least_once, mirror_item, truncated,
};
use shared::timestamp::parse_rfc3339;
use time::OffsetDateTime;

/// A way the tables can differ from the pool. Every kind is repaired the same way, by a refresh
/// signal for the user; the kinds say what upstream missed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DriftKind {
    /// Confirmed at least once, in neither table: never passed Post Confirmation (created by an
    /// administrator, imported, migrated, or confirmed before the trigger was attached) or lost
    /// (`enqueue_failed`, a message purged from the DLQ).
    Missing,
    /// A profile and no users item.
    NoUsersItem,
    /// A users item and no profile.
    NoProfile,
    /// The attributes, the status or the version differ: a change no signal brought.
    Stale,
    /// Disabled or enabled without a signal.
    EnabledDiffers,
    /// A live users item whose `sub` the pool no longer has: deleted without a signal.
    Deleted,
    /// A federated user's attributes differ. Cognito rewrites the attributes an identity
    /// provider maps at every sign-in of the user, with no API call and so no signal: this is
    /// how such changes arrive, not a sign that anything upstream is broken.
    FederatedAttributes,
}

impl DriftKind {
    pub const ALL: [Self; 7] = [
        Self::Missing,
        Self::NoUsersItem,
        Self::NoProfile,
        Self::Stale,
        Self::EnabledDiffers,
        Self::Deleted,
        Self::FederatedAttributes,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::NoUsersItem => "no_users_item",
            Self::NoProfile => "no_profile",
            Self::Stale => "stale",
            Self::EnabledDiffers => "enabled_differs",
            Self::Deleted => "deleted",
            Self::FederatedAttributes => "federated_attributes",
        }
    }

    /// Whether this drift means that a change was missed: what the drift alarm counts. A
    /// federated user's attributes change at their sign-ins without any event, so a pool of
    /// such users would find them in every run and keep the alarm firing for nothing.
    pub fn means_a_missed_change(self) -> bool {
        self != Self::FederatedAttributes
    }
}

/// One user to refresh, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drift {
    pub kind: DriftKind,
    pub sub: String,
    /// When known: saves the consumer a `ListUsers` lookup.
    pub username: Option<String>,
}

/// What the walk learnt about one listed user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub drift: Option<DriftKind>,
    /// The user has a users item that takes part in the deletion check ([`takes_part`]): the
    /// walk adds the sub to the set difference.
    pub listed_with_item: bool,
}

/// Compares `user` with their users item (`None`: absent) and whether their profile exists.
/// `run_started_at` is when the run began (see [`takes_part`]).
pub fn compare(
    user: &PoolUser,
    item: Option<&StoredItem>,
    has_profile: bool,
    run_started_at: OffsetDateTime,
) -> Seen {
    let listed_with_item = item.is_some_and(|item| takes_part(item, run_started_at));
    let drift = match item {
        // Nothing is ever written over a tombstone, and a sub is never reused: a user the pool
        // lists under a tombstone was erased on request (`ops forget`) and stays so.
        Some(item) if item.contains_key(DELETED_AT) => None,
        None if !confirmed_at_least_once(user.status()) => None,
        None if has_profile => Some(DriftKind::NoUsersItem),
        None => Some(DriftKind::Missing),
        Some(item) => state_drift(user, item).or((!has_profile).then_some(DriftKind::NoProfile)),
    };
    Seen {
        drift,
        listed_with_item,
    }
}

/// Whether a users item takes part in the deletion check: live, of this run's era. An item
/// created after the run began may have been written after the walk passed its user, so it is
/// left out on both sides (a missing or unreadable `created_at` counts as old).
pub fn takes_part(item: &StoredItem, run_started_at: OffsetDateTime) -> bool {
    if item.contains_key(DELETED_AT) {
        return false;
    }
    match item.get("created_at") {
        Some(ItemValue::S(text)) => parse_rfc3339(text).is_none_or(|created| created < run_started_at),
        _ => true,
    }
}

/// How a live users item differs from the user's state as listed.
fn state_drift(user: &PoolUser, item: &StoredItem) -> Option<DriftKind> {
    let is_mirror = item.contains_key(COGNITO_MODIFIED_AT);
    let (stored_status, stored_enabled) = if is_mirror {
        let status = match item.get(COGNITO_STATUS) {
            Some(ItemValue::S(status)) => Some(status.as_str()),
            _ => None,
        };
        let enabled = match item.get(ENABLED) {
            Some(ItemValue::Bool(enabled)) => Some(*enabled),
            _ => None,
        };
        (status, enabled)
    } else {
        // What a confirmation stands for: an enabled user, confirmed by sign-up or by a
        // password reset (`CONFIRMED`), or federated and signed in (`EXTERNAL_PROVIDER`).
        let status = ["CONFIRMED", FEDERATED]
            .into_iter()
            .find(|status| *status == user.status());
        (status, Some(true))
    };
    if stored_enabled != Some(user.enabled()) {
        return Some(DriftKind::EnabledDiffers);
    }
    if stored_status != Some(user.status()) {
        return Some(DriftKind::Stale);
    }
    // A federated user's version moves at every sign-in (Cognito rewrites each mapped attribute,
    // changed or not): only a stored field that differs counts, and as their own kind.
    let federated = user.status() == FEDERATED;
    if is_mirror && !federated {
        let stored_version = match item.get(COGNITO_MODIFIED_AT) {
            Some(ItemValue::S(text)) => parse_rfc3339(text),
            _ => None,
        };
        if stored_version.is_none_or(|version| truncated(user.last_modified()) > version) {
            return Some(DriftKind::Stale);
        }
    }
    let expected = mirror_item(user, &StoredUser::Live(item.clone()), user.last_modified());
    let not_compared =
        |name: &str| WRITE_STAMPS.contains(&name) || CARRIED.contains(&name) || MIRROR_FIELDS.contains(&name);
    let stored_fields = item
        .iter()
        .filter(|(name, _)| !not_compared(name))
        .map(|(name, value)| (name.as_str(), comparable(value)));
    let expected_fields = expected
        .iter()
        .filter(|(name, _)| !not_compared(name))
        .map(|(name, value)| (*name, comparable(value)));
    let same = stored_fields.eq(expected_fields);
    match (same, federated) {
        (true, _) => None,
        (false, true) => Some(DriftKind::FederatedAttributes),
        (false, false) => Some(DriftKind::Stale),
    }
}

/// Cognito's status of a user who signs in through an identity provider.
const FEDERATED: &str = "EXTERNAL_PROVIDER";

/// A value as compared: Cognito's own `cognito:` pseudo-attributes (`cognito:user_status`, the
/// aliases), which the Post Confirmation event carries and `ListUsers` does not, are left out of
/// the `attributes` map; they say nothing the mirror's fields do not.
fn comparable(value: &ItemValue) -> std::borrow::Cow<'_, ItemValue> {
    match value {
        ItemValue::M(map) if map.keys().any(|name| name.starts_with("cognito:")) => {
            std::borrow::Cow::Owned(ItemValue::M(
                map.iter()
                    .filter(|(name, _)| !name.starts_with("cognito:"))
                    .map(|(name, value)| (name.clone(), value.clone()))
                    .collect(),
            ))
        }
        _ => std::borrow::Cow::Borrowed(value),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use shared::lifecycle::{Decision, Observed, ProfileOnDeletion, StoredProfile, UsersWrite, decide};
    use shared::mapping::{Item, sync_items};
    use shared::timestamp::format_rfc3339;

    use super::*;

    const POOL: &str = "us-east-1_AbCdEf123";
    const SUB: &str = "0b5e4a3c-1f2d-4e6a-9b8c-7d6e5f4a3b2c";

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_795_000_000 + seconds).unwrap()
    }

    fn user(pairs: &[(&str, &str)], status: &str, enabled: bool, modified: OffsetDateTime) -> PoolUser {
        let mut attributes: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        attributes.insert("sub".into(), SUB.into());
        PoolUser::new(POOL, "ana", attributes, status, enabled, modified).unwrap()
    }

    fn stored(item: &Item) -> StoredItem {
        item.iter()
            .map(|(name, value)| ((*name).to_owned(), value.clone()))
            .collect()
    }

    /// The item the consumer writes for `user` (a refresh of a user not yet stored).
    fn mirror_of(user: &PoolUser, now: OffsetDateTime) -> StoredItem {
        let decision: Decision = decide(
            &StoredUser::Absent,
            StoredProfile::Absent,
            &Observed::Present(user.clone()),
            ProfileOnDeletion::Mark,
            now,
        );
        match decision.users {
            UsersWrite::Put { item, .. } => stored(&item),
            UsersWrite::Nothing => panic!("{decision:?}"),
        }
    }

    /// The item a confirmation writes for `user`.
    fn confirmation_of(user: &PoolUser, now: OffsetDateTime) -> StoredItem {
        let confirmed = shared::ConfirmedUser::new(
            POOL,
            SUB,
            user.username(),
            user.attributes().clone(),
            now,
            shared::ConfirmationSource::PostConfirmation,
        )
        .unwrap();
        stored(&sync_items(&confirmed, now).user)
    }

    fn drift(user: &PoolUser, item: Option<&StoredItem>, has_profile: bool) -> Option<DriftKind> {
        compare(user, item, has_profile, at(1_000)).drift
    }

    #[test]
    fn a_user_as_stored_is_no_drift_whoever_wrote_the_item() {
        let ana = user(
            &[("email", "ana@example.com"), ("custom:plan", "pro")],
            "CONFIRMED",
            true,
            at(10),
        );
        assert_eq!(drift(&ana, Some(&mirror_of(&ana, at(20))), true), None);
        // Written by a confirmation, never refreshed: no status, enabled or version, and no
        // reason to refresh it for that.
        assert_eq!(drift(&ana, Some(&confirmation_of(&ana, at(20))), true), None);
        // The Post Confirmation event carries cognito:user_status among the attributes, and
        // ListUsers does not list it.
        let mut event_attributes = ana.attributes().clone();
        event_attributes.insert("cognito:user_status".into(), "CONFIRMED".into());
        let from_event = PoolUser::new(POOL, "ana", event_attributes, "CONFIRMED", true, at(10)).unwrap();
        assert_eq!(
            drift(&ana, Some(&confirmation_of(&from_event, at(20))), true),
            None
        );
    }

    #[test]
    fn each_half_and_both_halves_missing_are_told_apart() {
        let ana = user(&[("email", "ana@example.com")], "CONFIRMED", true, at(10));
        let item = mirror_of(&ana, at(20));
        assert_eq!(drift(&ana, None, false), Some(DriftKind::Missing));
        assert_eq!(drift(&ana, None, true), Some(DriftKind::NoUsersItem));
        assert_eq!(drift(&ana, Some(&item), false), Some(DriftKind::NoProfile));
        // Imported users are RESET_REQUIRED, federated ones EXTERNAL_PROVIDER: both belong.
        for status in ["RESET_REQUIRED", "EXTERNAL_PROVIDER"] {
            assert_eq!(
                drift(&user(&[], status, true, at(10)), None, false),
                Some(DriftKind::Missing)
            );
        }
    }

    #[test]
    fn a_federated_users_attributes_changed_at_a_sign_in_are_their_own_kind_and_no_missed_change() {
        let before = user(
            &[("email", "fed@example.com"), ("name", "Fed")],
            "EXTERNAL_PROVIDER",
            true,
            at(10),
        );
        let stored = mirror_of(&before, at(20));
        // The identity provider's claim changed: Cognito rewrote it at the sign-in.
        let renamed = user(
            &[("email", "fed@example.com"), ("name", "Fed Renamed")],
            "EXTERNAL_PROVIDER",
            true,
            at(30),
        );
        assert_eq!(
            drift(&renamed, Some(&stored), true),
            Some(DriftKind::FederatedAttributes)
        );
        assert!(!DriftKind::FederatedAttributes.means_a_missed_change());
        // Every sign-in rewrites each mapped attribute and moves the version: unchanged values
        // are no drift at all, for the item a refresh wrote and for a confirmation's.
        let signed_in_again = user(
            &[("email", "fed@example.com"), ("name", "Fed")],
            "EXTERNAL_PROVIDER",
            true,
            at(40),
        );
        assert_eq!(drift(&signed_in_again, Some(&stored), true), None);
        assert_eq!(
            drift(&signed_in_again, Some(&confirmation_of(&before, at(20))), true),
            None
        );
        assert_eq!(
            drift(&renamed, Some(&confirmation_of(&before, at(20))), true),
            Some(DriftKind::FederatedAttributes)
        );
        // What no sign-in explains still counts as a missed change.
        let disabled = user(
            &[("email", "fed@example.com"), ("name", "Fed")],
            "EXTERNAL_PROVIDER",
            false,
            at(40),
        );
        assert_eq!(
            drift(&disabled, Some(&stored), true),
            Some(DriftKind::EnabledDiffers)
        );
        assert_eq!(drift(&before, Some(&stored), false), Some(DriftKind::NoProfile));
        assert_eq!(drift(&before, None, false), Some(DriftKind::Missing));
        // A user who is not federated is stale for the same change.
        let local = user(&[("name", "Ana")], "CONFIRMED", true, at(10));
        let local_renamed = user(&[("name", "Ana Renamed")], "CONFIRMED", true, at(30));
        assert_eq!(
            drift(&local_renamed, Some(&mirror_of(&local, at(20))), true),
            Some(DriftKind::Stale)
        );
    }

    #[test]
    fn a_user_never_confirmed_and_not_stored_is_no_drift() {
        for status in ["UNCONFIRMED", "FORCE_CHANGE_PASSWORD"] {
            assert_eq!(
                drift(&user(&[], status, true, at(10)), None, false),
                None,
                "{status}"
            );
        }
    }

    #[test]
    fn changed_attributes_status_or_version_are_stale() {
        let before = user(
            &[("email", "ana@example.com"), ("custom:plan", "pro")],
            "CONFIRMED",
            true,
            at(10),
        );
        let item = mirror_of(&before, at(20));
        let confirmation = confirmation_of(&before, at(20));
        let changed = user(
            &[("email", "ana@new.example.com"), ("custom:plan", "pro")],
            "CONFIRMED",
            true,
            at(30),
        );
        let removed = user(&[("email", "ana@example.com")], "CONFIRMED", true, at(30));
        let reset = user(
            &[("email", "ana@example.com"), ("custom:plan", "pro")],
            "RESET_REQUIRED",
            true,
            at(10),
        );
        for (now, name) in [(&changed, "changed"), (&removed, "removed"), (&reset, "reset")] {
            assert_eq!(
                drift(now, Some(&item), true),
                Some(DriftKind::Stale),
                "{name}, mirror"
            );
            assert_eq!(
                drift(now, Some(&confirmation), true),
                Some(DriftKind::Stale),
                "{name}, confirmation"
            );
        }
        // Same attributes, newer version: something Cognito versions changed.
        let touched = user(
            &[("email", "ana@example.com"), ("custom:plan", "pro")],
            "CONFIRMED",
            true,
            at(40),
        );
        assert_eq!(drift(&touched, Some(&item), true), Some(DriftKind::Stale));
        // An older version than stored is a lagging listing: the values decide.
        let lagging = user(
            &[("email", "ana@example.com"), ("custom:plan", "pro")],
            "CONFIRMED",
            true,
            at(5),
        );
        assert_eq!(drift(&lagging, Some(&item), true), None);
    }

    #[test]
    fn disabled_or_enabled_without_a_signal_is_told_apart() {
        let enabled = user(&[("email", "ana@example.com")], "CONFIRMED", true, at(10));
        let disabled = user(&[("email", "ana@example.com")], "CONFIRMED", false, at(10));
        assert_eq!(
            drift(&disabled, Some(&mirror_of(&enabled, at(20))), true),
            Some(DriftKind::EnabledDiffers)
        );
        assert_eq!(
            drift(&disabled, Some(&confirmation_of(&enabled, at(20))), true),
            Some(DriftKind::EnabledDiffers)
        );
        assert_eq!(
            drift(&enabled, Some(&mirror_of(&disabled, at(20))), true),
            Some(DriftKind::EnabledDiffers)
        );
    }

    #[test]
    fn a_tombstone_is_never_drift_and_never_in_the_deletion_check() {
        let ana = user(&[], "CONFIRMED", true, at(10));
        let mut tombstone = StoredItem::new();
        tombstone.insert("user_id".into(), ItemValue::S(SUB.into()));
        tombstone.insert(DELETED_AT.into(), ItemValue::S(format_rfc3339(at(15))));
        let seen = compare(&ana, Some(&tombstone), true, at(1_000));
        assert_eq!(
            seen,
            Seen {
                drift: None,
                listed_with_item: false
            }
        );
    }

    #[test]
    fn only_items_older_than_the_run_take_part_in_the_deletion_check() {
        let ana = user(&[], "CONFIRMED", true, at(10));
        let item = mirror_of(&ana, at(20));
        assert!(compare(&ana, Some(&item), true, at(21)).listed_with_item);
        assert!(
            !compare(&ana, Some(&item), true, at(20)).listed_with_item,
            "created as the run began"
        );
        assert!(!compare(&ana, None, false, at(21)).listed_with_item);
        let mut undated = item.clone();
        undated.remove("created_at");
        assert!(takes_part(&undated, at(0)), "no created_at: old");
    }
}
