use super::*;

const POOL: &str = "us-east-1_AbCdEf123";
const SUB: &str = "0b5e4a3c-1f2d-4e6a-9b8c-7d6e5f4a3b2c";

fn at(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_795_000_000 + seconds).unwrap()
}

fn pool_user(pairs: &[(&str, &str)], enabled: bool, modified: OffsetDateTime) -> PoolUser {
    let mut attributes: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    attributes.insert("sub".into(), SUB.into());
    PoolUser::new(POOL, "ana", attributes, "CONFIRMED", enabled, modified).unwrap()
}

/// The item as DynamoDB would hand it back after `item` was written.
fn stored(item: &Item) -> StoredItem {
    item.iter()
        .map(|(name, value)| ((*name).to_owned(), value.clone()))
        .collect()
}

fn written(decision: &Decision) -> &Item {
    match &decision.users {
        UsersWrite::Put { item, .. } => item,
        UsersWrite::Nothing => panic!("expected a users write: {decision:?}"),
    }
}

/// The users item after the signals that saw `user`, starting from nothing.
fn live(user: &PoolUser, now: OffsetDateTime) -> StoredUser {
    let decision = decide(
        &StoredUser::Absent,
        StoredProfile::Absent,
        &Observed::Present(user.clone()),
        ProfileOnDeletion::Mark,
        now,
    );
    StoredUser::from_item(Some(stored(written(&decision))))
}

fn s(text: &str) -> ItemValue {
    ItemValue::S(text.to_owned())
}

const PRESENT: StoredProfile = StoredProfile::Present {
    marked_deleted: false,
};

#[test]
fn absent_item_and_a_user_in_the_pool_creates_the_mirror_and_the_profile() {
    let user = pool_user(
        &[("email", "ana@example.com"), ("custom:plan", "pro")],
        true,
        at(10),
    );
    let decision = decide(
        &StoredUser::Absent,
        StoredProfile::Absent,
        &Observed::Present(user),
        ProfileOnDeletion::Mark,
        at(20),
    );
    assert_eq!(decision.change, Change::Created);
    let UsersWrite::Put { item, expected } = &decision.users else {
        panic!("{decision:?}")
    };
    assert_eq!(*expected, Expected::Absent);
    assert_eq!(item[USERS_KEY], s(SUB));
    assert_eq!(item["email"], s("ana@example.com"));
    assert_eq!(item["cognito_status"], s("CONFIRMED"));
    assert_eq!(item["enabled"], ItemValue::Bool(true));
    assert_eq!(item[COGNITO_MODIFIED_AT], s(&format_rfc3339(at(10))));
    assert_eq!(item["created_at"], s(&format_rfc3339(at(20))));
    assert_eq!(item[REVISION], ItemValue::N(1));
    let ProfileWrite::CreateIfAbsent(profile) = &decision.profile else {
        panic!("{decision:?}")
    };
    assert_eq!(
        profile[PROFILES_KEY],
        s(&ProfileId::derive(POOL, SUB).to_string())
    );
}

#[test]
fn a_newer_state_replaces_the_stored_one_removing_what_cognito_removed() {
    let before = pool_user(
        &[("email", "ana@example.com"), ("phone_number", "+15550100")],
        true,
        at(10),
    );
    let item = live(&before, at(11));
    let after = pool_user(&[("email", "ana@new.example.com")], true, at(30));
    let decision = decide(
        &item,
        PRESENT,
        &Observed::Present(after),
        ProfileOnDeletion::Mark,
        at(40),
    );
    assert_eq!(decision.change, Change::Updated);
    assert_eq!(
        decision.profile,
        ProfileWrite::Nothing,
        "the profile is the application's"
    );
    let UsersWrite::Put { item: next, expected } = &decision.users else {
        panic!("{decision:?}")
    };
    assert_eq!(
        *expected,
        Expected::Revision(Some(1)),
        "conditional on what was read"
    );
    assert_eq!(next["email"], s("ana@new.example.com"));
    assert!(
        !next.contains_key("phone_number"),
        "removed in Cognito, removed here"
    );
    assert_eq!(next[REVISION], ItemValue::N(2));
    assert_eq!(
        next["created_at"],
        s(&format_rfc3339(at(11))),
        "created_at never changes"
    );
    assert_eq!(next[COGNITO_MODIFIED_AT], s(&format_rfc3339(at(30))));
    assert_eq!(next["updated_at"], s(&format_rfc3339(at(40))));
}

#[test]
fn an_older_state_than_the_stored_one_writes_nothing() {
    let newer = pool_user(&[("email", "ana@new.example.com")], true, at(30));
    let item = live(&newer, at(31));
    let older = pool_user(&[("email", "ana@example.com")], true, at(10));
    let decision = decide(
        &item,
        StoredProfile::Absent,
        &Observed::Present(older),
        ProfileOnDeletion::Mark,
        at(40),
    );
    assert_eq!(decision, Decision::nothing(Change::Stale));
}

#[test]
fn the_same_state_again_writes_nothing_but_repairs_a_missing_profile() {
    let user = pool_user(&[("email", "ana@example.com")], true, at(10));
    let item = live(&user, at(11));
    let decision = decide(
        &item,
        PRESENT,
        &Observed::Present(user.clone()),
        ProfileOnDeletion::Mark,
        at(50),
    );
    assert_eq!(decision, Decision::nothing(Change::Unchanged));

    let half_synced = decide(
        &item,
        StoredProfile::Absent,
        &Observed::Present(user),
        ProfileOnDeletion::Mark,
        at(50),
    );
    assert_eq!(half_synced.change, Change::Unchanged);
    assert_eq!(half_synced.users, UsersWrite::Nothing);
    assert!(matches!(half_synced.profile, ProfileWrite::CreateIfAbsent(_)));
}

#[test]
fn a_different_state_within_the_same_tick_is_written_as_the_later_read() {
    // Two changes within one tick of UserLastModifiedDate (or a change Cognito does not version,
    // such as disabling): same version, different state. The item was read before Cognito, so
    // the state read is the newer one.
    let first = pool_user(&[("email", "ana@example.com")], true, at(10));
    let item = live(&first, at(10));
    let disabled = pool_user(&[("email", "ana@example.com")], false, at(10));
    let decision = decide(
        &item,
        PRESENT,
        &Observed::Present(disabled),
        ProfileOnDeletion::Mark,
        at(10),
    );
    assert_eq!(decision.change, Change::Updated);
    assert_eq!(written(&decision)["enabled"], ItemValue::Bool(false));
    assert!(matches!(
        decision.users,
        UsersWrite::Put {
            expected: Expected::Revision(Some(1)),
            ..
        }
    ));
}

#[test]
fn an_item_written_by_a_confirmation_is_replaced_by_the_first_state_read() {
    let user = crate::ConfirmedUser::new(
        POOL,
        SUB,
        "ana",
        BTreeMap::from([("email".to_owned(), "ana@example.com".to_owned())]),
        at(5),
        crate::ConfirmationSource::PostConfirmation,
    )
    .unwrap();
    let confirmation = crate::mapping::sync_items(&user, at(6)).user;
    let item = StoredUser::from_item(Some(stored(&confirmation)));
    let read = pool_user(&[("email", "ana@example.com")], true, at(5));
    let decision = decide(
        &item,
        PRESENT,
        &Observed::Present(read),
        ProfileOnDeletion::Mark,
        at(60),
    );
    assert_eq!(
        decision.change,
        Change::Updated,
        "status, enabled and version were unknown"
    );
    assert!(matches!(
        decision.users,
        UsersWrite::Put {
            expected: Expected::Revision(None),
            ..
        }
    ));
    let next = written(&decision);
    assert_eq!(next["confirmed_at"], confirmation["confirmed_at"], "carried over");
    assert_eq!(next["created_at"], confirmation["created_at"]);
    assert_eq!(next[PROFILES_KEY], confirmation[PROFILES_KEY]);
}

#[test]
fn a_user_gone_from_the_pool_becomes_a_tombstone_without_personal_data() {
    let user = pool_user(
        &[
            ("email", "ana@example.com"),
            ("name", "Ána"),
            ("custom:plan", "pro"),
        ],
        true,
        at(10),
    );
    let item = live(&user, at(11));
    for (mode, profile) in [
        (
            ProfileOnDeletion::Mark,
            ProfileWrite::MarkDeleted {
                at: format_rfc3339(at(70)),
            },
        ),
        (
            ProfileOnDeletion::Delete,
            ProfileWrite::Erase {
                at: format_rfc3339(at(70)),
            },
        ),
    ] {
        let decision = decide(&item, PRESENT, &Observed::Gone, mode, at(70));
        assert_eq!(decision.change, Change::Deleted);
        assert_eq!(decision.profile, profile, "{mode:?}");
        let UsersWrite::Put {
            item: tombstone,
            expected,
        } = &decision.users
        else {
            panic!("{decision:?}")
        };
        assert_eq!(*expected, Expected::Revision(Some(1)));
        let names: Vec<&str> = tombstone.keys().copied().collect();
        assert_eq!(
            names,
            [
                "created_at",
                DELETED_AT,
                PROFILES_KEY,
                REVISION,
                "updated_at",
                USERS_KEY,
                "user_pool_id"
            ]
        );
        assert_eq!(
            tombstone[PROFILES_KEY],
            s(&ProfileId::derive(POOL, SUB).to_string())
        );
        assert!(StoredUser::from_item(Some(stored(tombstone))).is_tombstone());
    }
}

#[test]
fn a_tombstone_is_never_written_over_and_only_the_profiles_deletion_is_completed() {
    let user = pool_user(&[("email", "ana@example.com")], true, at(10));
    let gone = decide(
        &live(&user, at(11)),
        PRESENT,
        &Observed::Gone,
        ProfileOnDeletion::Mark,
        at(20),
    );
    let tombstone = StoredUser::from_item(Some(stored(written(&gone))));
    let back = pool_user(&[("email", "ana@example.com")], true, at(90));
    for observed in [Observed::Present(back), Observed::Gone] {
        for profile in [
            StoredProfile::Absent,
            PRESENT,
            StoredProfile::Present { marked_deleted: true },
            StoredProfile::Erased,
        ] {
            let decision = decide(&tombstone, profile, &observed, ProfileOnDeletion::Mark, at(99));
            assert_eq!(decision.change, Change::AlreadyDeleted);
            assert_eq!(decision.users, UsersWrite::Nothing);
            // Where no profile is, the marker leaves a profile tombstone: a late confirmation
            // then finds an item under the profile's key and creates nothing.
            let expected = match profile {
                StoredProfile::Absent
                | StoredProfile::Present {
                    marked_deleted: false,
                } => ProfileWrite::MarkDeleted {
                    at: format_rfc3339(at(99)),
                },
                _ => ProfileWrite::Nothing,
            };
            assert_eq!(decision.profile, expected, "{profile:?}");
        }
        let deleting = decide(&tombstone, PRESENT, &observed, ProfileOnDeletion::Delete, at(99));
        assert_eq!(
            deleting.profile,
            ProfileWrite::Erase {
                at: format_rfc3339(at(99))
            }
        );
        let erased = decide(
            &tombstone,
            StoredProfile::Erased,
            &observed,
            ProfileOnDeletion::Delete,
            at(99),
        );
        assert_eq!(erased.profile, ProfileWrite::Nothing, "erased once");
    }
}

#[test]
fn a_profile_tombstone_reads_as_erased_and_a_marked_profile_as_present() {
    let tombstone = profile_tombstone_item("p1", "2026-12-02T00:00:00.000Z");
    assert_eq!(
        StoredProfile::from_item(Some(&stored(&tombstone))),
        StoredProfile::Erased
    );
    let mut marked = stored(&tombstone);
    marked.insert("full_name".into(), s("Ána"));
    assert_eq!(
        StoredProfile::from_item(Some(&marked)),
        StoredProfile::Present { marked_deleted: true }
    );
}

#[test]
fn a_recorded_deletion_of_a_user_never_synced_leaves_a_tombstone_and_a_profile_tombstone() {
    let deleted = Observed::Deleted {
        user_pool_id: POOL.into(),
        sub: SUB.into(),
    };
    let decision = decide(
        &StoredUser::Absent,
        StoredProfile::Absent,
        &deleted,
        ProfileOnDeletion::Mark,
        at(5),
    );
    assert_eq!(decision.change, Change::Deleted);
    let UsersWrite::Put { item, expected } = &decision.users else {
        panic!("{decision:?}")
    };
    assert_eq!(*expected, Expected::Absent, "only if nothing arrived meanwhile");
    assert_eq!(item[USERS_KEY], s(SUB));
    assert_eq!(item[PROFILES_KEY], s(&ProfileId::derive(POOL, SUB).to_string()));
    assert!(item.contains_key(DELETED_AT));
    // The marker where no profile is: a profile tombstone, which a late confirmation finds.
    assert_eq!(
        decision.profile,
        ProfileWrite::MarkDeleted {
            at: format_rfc3339(at(5))
        }
    );
}

#[test]
fn a_user_neither_stored_nor_in_the_pool_writes_nothing() {
    let decision = decide(
        &StoredUser::Absent,
        StoredProfile::Absent,
        &Observed::Gone,
        ProfileOnDeletion::Delete,
        at(1),
    );
    assert_eq!(decision, Decision::nothing(Change::NotInPool));
}

#[test]
fn a_user_never_confirmed_is_not_written_until_confirmed_and_then_mirrored_whatever_their_status() {
    let mut attributes = BTreeMap::from([("sub".to_owned(), SUB.to_owned())]);
    attributes.insert("email".into(), "ana@example.com".into());
    let invited = PoolUser::new(
        POOL,
        "ana",
        attributes.clone(),
        "FORCE_CHANGE_PASSWORD",
        true,
        at(1),
    )
    .unwrap();
    let decision = decide(
        &StoredUser::Absent,
        StoredProfile::Absent,
        &Observed::Present(invited),
        ProfileOnDeletion::Mark,
        at(2),
    );
    assert_eq!(decision, Decision::nothing(Change::NotConfirmed));

    let item = live(&pool_user(&[("email", "ana@example.com")], true, at(3)), at(3));
    let reset = PoolUser::new(POOL, "ana", attributes, "RESET_REQUIRED", true, at(4)).unwrap();
    let decision = decide(
        &item,
        PRESENT,
        &Observed::Present(reset),
        ProfileOnDeletion::Mark,
        at(5),
    );
    assert_eq!(written(&decision)["cognito_status"], s("RESET_REQUIRED"));
}

#[test]
fn forget_tombstones_whatever_is_stored_and_deletes_the_profile() {
    let user = pool_user(&[("email", "ana@example.com")], true, at(10));
    let cases = [
        (StoredUser::Absent, Expected::Absent),
        (live(&user, at(11)), Expected::Revision(Some(1))),
    ];
    for (item, expected_condition) in cases {
        let decision = forget(&item, PRESENT, POOL, SUB, at(80));
        assert_eq!(decision.change, Change::Forgotten);
        assert_eq!(
            decision.profile,
            ProfileWrite::Erase {
                at: format_rfc3339(at(80))
            }
        );
        let UsersWrite::Put {
            item: tombstone,
            expected,
        } = &decision.users
        else {
            panic!("{decision:?}")
        };
        assert_eq!(*expected, expected_condition);
        assert_eq!(tombstone[USERS_KEY], s(SUB));
        assert_eq!(
            tombstone[PROFILES_KEY],
            s(&ProfileId::derive(POOL, SUB).to_string())
        );
        assert!(!tombstone.contains_key("email") && !tombstone.contains_key("username"));
    }
    let tombstone = StoredUser::from_item(Some(stored(written(&forget(
        &StoredUser::Absent,
        StoredProfile::Absent,
        POOL,
        SUB,
        at(80),
    )))));
    assert!(tombstone.is_forgotten());
    let again = forget(&tombstone, PRESENT, POOL, SUB, at(81));
    assert_eq!(
        again.users,
        UsersWrite::Nothing,
        "a forgotten user's tombstone stays as it is"
    );
    assert_eq!(
        again.profile,
        ProfileWrite::Erase {
            at: format_rfc3339(at(81))
        },
        "a profile left meanwhile is erased too"
    );
    // Whatever ProfileOnDeletion says, a forgotten user's profile is erased, not marked.
    let refreshed = decide(
        &tombstone,
        PRESENT,
        &Observed::Gone,
        ProfileOnDeletion::Mark,
        at(82),
    );
    assert_eq!(
        refreshed.profile,
        ProfileWrite::Erase {
            at: format_rfc3339(at(82))
        }
    );

    // A user deleted earlier and then forgotten: the tombstone says so, and keeps deleted_at.
    let user = pool_user(&[("email", "ana@example.com")], true, at(10));
    let gone = decide(
        &live(&user, at(11)),
        PRESENT,
        &Observed::Gone,
        ProfileOnDeletion::Mark,
        at(20),
    );
    let deleted = StoredUser::from_item(Some(stored(written(&gone))));
    assert!(!deleted.is_forgotten());
    let forgotten = forget(&deleted, PRESENT, POOL, SUB, at(90));
    let rewritten = written(&forgotten);
    assert_eq!(rewritten[DELETED_AT], s(&format_rfc3339(at(20))));
    assert_eq!(rewritten[FORGOTTEN_AT], s(&format_rfc3339(at(90))));
    assert!(matches!(
        forgotten.users,
        UsersWrite::Put {
            expected: Expected::Revision(Some(2)),
            ..
        }
    ));
}

#[test]
fn a_pool_user_is_validated_like_a_confirmed_one_and_never_debug_prints_pii() {
    let attributes = |sub: &str| BTreeMap::from([("sub".to_owned(), sub.to_owned())]);
    let new =
        |pool: &str, attributes, status: &str| PoolUser::new(pool, "ana", attributes, status, true, at(0));
    assert_eq!(
        new(POOL, BTreeMap::new(), "CONFIRMED"),
        Err(UserError::MissingSub)
    );
    assert_eq!(
        new(POOL, attributes("nope"), "CONFIRMED"),
        Err(UserError::InvalidSub)
    );
    assert_eq!(
        new("pool", attributes(SUB), "CONFIRMED"),
        Err(UserError::InvalidUserPoolId)
    );
    assert_eq!(new(POOL, attributes(SUB), " "), Err(UserError::InvalidStatus));
    let user = pool_user(&[("email", "ana@example.com")], true, at(0));
    let printed = format!("{user:?}");
    assert!(!printed.contains("ana"), "{printed}");
}

#[test]
fn a_refresh_keeps_the_welcome_record() {
    let before = pool_user(&[("email", "ana@example.com")], true, at(10));
    let StoredUser::Live(mut item) = live(&before, at(11)) else {
        panic!("a live users item")
    };
    item.insert(WELCOME_CLAIM.to_owned(), s("claim-1"));
    item.insert(WELCOME_CLAIMED_AT.to_owned(), s(&format_rfc3339(at(12))));
    item.insert(WELCOME_LEASE_UNTIL.to_owned(), ItemValue::N(1_795_000_060_000));
    item.insert(WELCOME_SENT_AT.to_owned(), s(&format_rfc3339(at(13))));
    item.insert(WELCOME_MESSAGE_ID.to_owned(), s("ses-message-1"));
    item.insert(WELCOME_FAILED.to_owned(), s("MessageRejected"));
    item.insert(WELCOME_PROBLEM.to_owned(), s("bounce"));
    item.insert(WELCOME_PROBLEM_AT.to_owned(), ItemValue::N(1_795_000_014_000));
    item.insert(WELCOME_REOPENED_AT.to_owned(), ItemValue::N(1_795_000_013_500));
    let stored = StoredUser::from_item(Some(item.clone()));
    let after = pool_user(&[("email", "ana@new.example.com")], true, at(30));
    let decision = decide(
        &stored,
        PRESENT,
        &Observed::Present(after),
        ProfileOnDeletion::Mark,
        at(40),
    );
    let UsersWrite::Put { item: next, .. } = &decision.users else {
        panic!("{decision:?}")
    };
    for name in WELCOME_FIELDS {
        assert_eq!(Some(&next[name]), item.get(name), "{name}");
    }
}
