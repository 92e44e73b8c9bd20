//! From a [`ConfirmedUser`] to the users item and the profile item.
//!
//! A pure function of the user and the write time: the consumer's DynamoDB code only executes
//! what this decides. Items are described with [`ItemValue`], not SDK types, so the mapping is
//! tested without AWS and the trigger does not link the DynamoDB SDK.
//!
//! Absent and blank attributes are omitted, never stored as empty strings and never an error.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use crate::ProfileId;
use crate::timestamp::format_rfc3339;
use crate::user::{ConfirmedUser, non_blank};

/// One attribute value of a DynamoDB item, as far as this product stores them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ItemValue {
    S(String),
    /// A whole number (`revision`).
    N(i64),
    Bool(bool),
    Null,
    /// A map of strings (`attributes`).
    M(BTreeMap<String, String>),
}

/// A DynamoDB item: attribute name to value.
pub type Item = BTreeMap<&'static str, ItemValue>;

/// Partition key of the users table.
pub const USERS_KEY: &str = "user_id";
/// Partition key of the profiles table.
pub const PROFILES_KEY: &str = "profile_id";

/// DynamoDB's limit on the size of one item.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// An item's size as DynamoDB counts it: attribute names and string values in UTF-8 bytes,
/// 1 byte per BOOL or NULL, a byte per two digits of a number plus one, and for a map 3 bytes plus 1 per entry besides its names and values.
pub fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(name, value)| {
            name.len()
                + match value {
                    ItemValue::S(text) => text.len(),
                    // DynamoDB: one byte per two significant digits, plus one.
                    ItemValue::N(number) => number.unsigned_abs().to_string().len().div_ceil(2) + 1,
                    ItemValue::Bool(_) | ItemValue::Null => 1,
                    ItemValue::M(map) => 3 + map.iter().map(|(k, v)| k.len() + v.len() + 1).sum::<usize>(),
                }
        })
        .sum()
}

/// What the consumer writes for one confirmation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncItems {
    pub user: Item,
    pub profile: Item,
}

/// Cognito attributes copied to their own top-level string attribute of the users item.
const COPIED_STRINGS: [&str; 5] = ["email", "phone_number", "given_name", "family_name", "name"];
/// Cognito attributes that arrive as `"true"`/`"false"` strings and are stored as BOOL.
const COPIED_BOOLS: [&str; 2] = ["email_verified", "phone_number_verified"];

impl SyncItems {
    /// The first item over DynamoDB's size limit, as (table, bytes). Checked before any write,
    /// so that a user too large to store leaves nothing half-written behind.
    pub fn oversized(&self) -> Option<(&'static str, usize)> {
        [("users", &self.user), ("profiles", &self.profile)]
            .into_iter()
            .map(|(table, item)| (table, item_size(item)))
            .find(|(_, bytes)| *bytes > MAX_ITEM_BYTES)
    }
}

/// Maps a confirmed user to the two items, stamped with `now` as `created_at`/`updated_at`.
pub fn sync_items(user: &ConfirmedUser, now: OffsetDateTime) -> SyncItems {
    let stamp = format_rfc3339(now);
    let mut item = Item::new();
    insert_user_fields(
        &mut item,
        user.user_pool_id(),
        user.sub(),
        user.username(),
        user.attributes(),
    );
    item.insert("confirmed_at", ItemValue::S(format_rfc3339(user.confirmed_at())));
    item.insert("created_at", ItemValue::S(stamp.clone()));
    item.insert("updated_at", ItemValue::S(stamp));
    let profile = profile_item(
        user.user_pool_id(),
        user.sub(),
        user.username(),
        user.attributes(),
        now,
    );
    SyncItems { user: item, profile }
}

/// The users item's fields that come from the user's identity and attributes (key, username,
/// pool, profile id, the copied attributes and the `attributes` map), shared by the confirmation
/// and the mirror of a user's current state.
pub fn insert_user_fields(
    item: &mut Item,
    user_pool_id: &str,
    sub: &str,
    username: &str,
    attributes: &BTreeMap<String, String>,
) {
    let present = |name: &str| non_blank(attributes, name);
    item.insert(USERS_KEY, ItemValue::S(sub.to_owned()));
    item.insert("username", ItemValue::S(username.to_owned()));
    item.insert("user_pool_id", ItemValue::S(user_pool_id.to_owned()));
    item.insert(
        PROFILES_KEY,
        ItemValue::S(ProfileId::derive(user_pool_id, sub).to_string()),
    );
    for name in COPIED_STRINGS {
        if let Some(value) = present(name) {
            item.insert(name, ItemValue::S(value.to_owned()));
        }
    }
    for name in COPIED_BOOLS {
        if let Some(flag) = present(name).and_then(parse_cognito_bool) {
            item.insert(name, ItemValue::Bool(flag));
        }
    }
    let kept: BTreeMap<String, String> = attributes
        .iter()
        .filter(|(_, value)| !value.trim().is_empty())
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    if !kept.is_empty() {
        item.insert("attributes", ItemValue::M(kept));
    }
}

/// The profile item the application starts from, stamped with `now`.
pub fn profile_item(
    user_pool_id: &str,
    sub: &str,
    username: &str,
    attributes: &BTreeMap<String, String>,
    now: OffsetDateTime,
) -> Item {
    let stamp = format_rfc3339(now);
    let mut profile = Item::new();
    profile.insert(
        PROFILES_KEY,
        ItemValue::S(ProfileId::derive(user_pool_id, sub).to_string()),
    );
    // Under the users table's key name: the profiles table's index is on it.
    profile.insert(USERS_KEY, ItemValue::S(sub.to_owned()));
    profile.insert("full_name", ItemValue::S(full_name_of(attributes, username)));
    // The application fills these in; NULL says "known to be unknown" rather than absent.
    profile.insert("id_type", ItemValue::Null);
    profile.insert("id_number", ItemValue::Null);
    profile.insert("created_at", ItemValue::S(stamp.clone()));
    profile.insert("updated_at", ItemValue::S(stamp));
    profile
}

/// Given and family name; else `name`; else the username (never empty: usernames are not).
pub fn full_name(user: &ConfirmedUser) -> String {
    full_name_of(user.attributes(), user.username())
}

/// [`full_name`] from a user's attributes and username.
pub fn full_name_of(attributes: &BTreeMap<String, String>, username: &str) -> String {
    let present = |name: &str| non_blank(attributes, name);
    let parts: Vec<&str> = ["given_name", "family_name"]
        .into_iter()
        .filter_map(present)
        .map(str::trim)
        .collect();
    if !parts.is_empty() {
        return parts.join(" ");
    }
    match present("name") {
        Some(name) => name.trim().to_owned(),
        None => username.to_owned(),
    }
}

/// Cognito sends booleans as strings; anything but true/false is kept only in `attributes`.
fn parse_cognito_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ProfileId;
    use crate::user::ConfirmationSource;

    const POOL: &str = "us-east-1_AbCdEf123";
    const SUB: &str = "0b5e4a3c-1f2d-4e6a-9b8c-7d6e5f4a3b2c";

    fn user_with(pairs: &[(&str, &str)]) -> ConfirmedUser {
        let attributes = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ConfirmedUser::new(
            POOL,
            SUB,
            "ana.user",
            attributes,
            OffsetDateTime::from_unix_timestamp(1_795_457_000).unwrap(),
            ConfirmationSource::PostConfirmation,
        )
        .unwrap()
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(1_795_457_327_123_000_000).unwrap()
    }

    fn s(text: &str) -> ItemValue {
        ItemValue::S(text.to_owned())
    }

    #[test]
    fn full_sign_up_maps_every_field() {
        let user = user_with(&[
            ("sub", SUB),
            ("email", "ana@example.com"),
            ("email_verified", "true"),
            ("phone_number", "+15550100"),
            ("phone_number_verified", "False"),
            ("given_name", "Ána"),
            ("family_name", "Łopez"),
            ("name", "Ána Ł."),
            ("custom:plan", "pro"),
        ]);
        let items = sync_items(&user, now());
        let profile_id = ProfileId::derive(POOL, SUB).to_string();

        let u = &items.user;
        assert_eq!(u[USERS_KEY], s(SUB));
        assert_eq!(u["username"], s("ana.user"));
        assert_eq!(u["user_pool_id"], s(POOL));
        assert_eq!(u[PROFILES_KEY], s(&profile_id));
        assert_eq!(u["email"], s("ana@example.com"));
        assert_eq!(u["email_verified"], ItemValue::Bool(true));
        assert_eq!(u["phone_number"], s("+15550100"));
        assert_eq!(u["phone_number_verified"], ItemValue::Bool(false));
        assert_eq!(u["given_name"], s("Ána"));
        assert_eq!(u["family_name"], s("Łopez"));
        assert_eq!(u["name"], s("Ána Ł."));
        let ItemValue::M(attributes) = &u["attributes"] else {
            panic!("attributes is not a map")
        };
        assert_eq!(attributes.len(), 9);
        assert_eq!(attributes["custom:plan"], "pro");
        assert_eq!(u["confirmed_at"], s("2026-11-23T18:03:20Z"));
        assert_eq!(u["created_at"], s("2026-11-23T18:08:47.123Z"));
        assert_eq!(u["updated_at"], s("2026-11-23T18:08:47.123Z"));
        assert_eq!(u.len(), 15);

        let p = &items.profile;
        assert_eq!(p[PROFILES_KEY], s(&profile_id));
        assert_eq!(p[USERS_KEY], s(SUB));
        assert_eq!(p["full_name"], s("Ána Łopez"));
        assert_eq!(p["id_type"], ItemValue::Null);
        assert_eq!(p["id_number"], ItemValue::Null);
        assert_eq!(p["created_at"], s("2026-11-23T18:08:47.123Z"));
        assert_eq!(p.len(), 7);
    }

    #[test]
    fn missing_and_empty_attributes_are_omitted() {
        let user = user_with(&[
            ("email", ""),
            ("phone_number", "   "),
            ("given_name", "Ana"),
            ("email_verified", ""),
        ]);
        let u = sync_items(&user, now()).user;
        for absent in [
            "email",
            "phone_number",
            "family_name",
            "name",
            "email_verified",
            "phone_number_verified",
        ] {
            assert!(!u.contains_key(absent), "{absent} should be omitted");
        }
        let ItemValue::M(attributes) = &u["attributes"] else {
            panic!()
        };
        assert_eq!(attributes.keys().collect::<Vec<_>>(), ["given_name"]);
        assert!(u.values().all(|v| v != &s("")));
    }

    #[test]
    fn no_attributes_at_all_gives_a_minimal_item() {
        let items = sync_items(&user_with(&[]), now());
        assert!(!items.user.contains_key("attributes"));
        assert_eq!(items.profile["full_name"], s("ana.user"));
    }

    #[test]
    fn a_verified_flag_that_is_not_a_boolean_stays_only_in_attributes() {
        let u = sync_items(&user_with(&[("email_verified", "yes")]), now()).user;
        assert!(!u.contains_key("email_verified"));
        let ItemValue::M(attributes) = &u["attributes"] else {
            panic!()
        };
        assert_eq!(attributes["email_verified"], "yes");
    }

    #[test]
    fn full_name_falls_back_from_given_family_to_name_to_username() {
        assert_eq!(
            full_name(&user_with(&[("given_name", " Ana "), ("family_name", "Ruiz")])),
            "Ana Ruiz"
        );
        assert_eq!(
            full_name(&user_with(&[("family_name", "Ruiz"), ("name", "Ana R")])),
            "Ruiz"
        );
        assert_eq!(
            full_name(&user_with(&[("name", "Ana R"), ("given_name", "")])),
            "Ana R"
        );
        assert_eq!(full_name(&user_with(&[("name", " ")])), "ana.user");
    }

    #[test]
    fn item_size_follows_dynamodbs_rules() {
        let mut item = Item::new();
        item.insert("ab", ItemValue::S("ü".into())); // 2 + 2
        item.insert("f", ItemValue::Bool(true)); // 1 + 1
        item.insert("n", ItemValue::Null); // 1 + 1
        item.insert(
            "m",
            ItemValue::M(BTreeMap::from([("k".to_owned(), "vv".to_owned())])),
        ); // 1 + 3 + (1 + 2 + 1)
        assert_eq!(item_size(&item), 4 + 2 + 2 + 8);
    }

    #[test]
    fn a_user_too_large_to_store_is_flagged_before_any_write() {
        let big = "x".repeat(1000);
        let pairs: Vec<(String, String)> = (0..450).map(|i| (format!("custom:a{i}"), big.clone())).collect();
        let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let items = sync_items(&user_with(&refs), now());
        let (table, bytes) = items.oversized().expect("over 400 KB");
        assert_eq!(table, "users");
        assert!(bytes > MAX_ITEM_BYTES);
        assert_eq!(sync_items(&user_with(&refs[..10]), now()).oversized(), None);
    }

    #[test]
    fn mapping_is_deterministic() {
        let user = user_with(&[("email", "ana@example.com"), ("custom:x", "1")]);
        assert_eq!(sync_items(&user, now()), sync_items(&user, now()));
    }
}
