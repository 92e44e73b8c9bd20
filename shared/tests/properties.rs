//! Properties of the contract, checked over generated input rather than chosen examples.
//!
//! - The envelope decoder is total: any string, any JSON value, any object with the envelope's
//!   field names and the wrong types gives an error, never a panic, and no error quotes a value.
//! - Every valid user survives `decode(encode(user))`, whatever its Unicode, blanks, lengths or
//!   number of `custom:*` attributes.
//! - The mapping is a total, deterministic function that keeps every non-blank attribute
//!   verbatim, stores no empty or blank string, and keys both items by `sub` and
//!   `ProfileId::derive(pool, sub)`.
//!
//! Case counts are kept small enough for the whole file to run in seconds; `PROPTEST_CASES`
//! overrides them all (e.g. `PROPTEST_CASES=5000 cargo test -p shared --test properties`).

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::FileFailurePersistence;
use serde_json::{Value, json};
use shared::envelope::{decode, encode};
use shared::mapping::{Item, ItemValue, PROFILES_KEY, USERS_KEY, sync_items};
use shared::{ConfirmationSource, ConfirmedUser, EnvelopeError, ProfileId, UserError};
use time::{OffsetDateTime, UtcOffset};

/// The envelope's fields, in the order `decode` checks them.
const FIELDS: [&str; 7] = [
    "version",
    "source",
    "user_pool_id",
    "sub",
    "username",
    "confirmed_at",
    "attributes",
];

/// Attributes the mapping treats specially, plus the ones Cognito always sends.
const KNOWN_ATTRIBUTES: [&str; 9] = [
    "email",
    "phone_number",
    "given_name",
    "family_name",
    "name",
    "email_verified",
    "phone_number_verified",
    "cognito:user_status",
    "custom:plan",
];

/// Characters that `str::trim` removes: a value made only of these is blank.
const WHITESPACE: [char; 15] = [
    ' ', '\t', '\n', '\r', '\u{0B}', '\u{0C}', '\u{85}', '\u{A0}', '\u{1680}', '\u{2000}', '\u{2028}',
    '\u{2029}', '\u{202F}', '\u{205F}', '\u{3000}',
];

/// Values that try to be read as something other than data.
const HOSTILE: [&str; 11] = [
    "attribute_not_exists(user_id) OR #k = :v",
    ":v",
    "#key",
    "\"; DROP TABLE users; --",
    "${jndi:ldap://x}",
    "{\"S\": \"injected\"}",
    "\u{0}\u{1}\u{1b}[31m\u{7f}",
    "\u{202E}gnp.exe\u{202C} مرحبا שלום",
    "👩\u{200D}👩\u{200D}👧\u{200D}👦🏳\u{FE0F}\u{200D}🌈",
    "\u{FEFF}\u{200B}",
    // Noncharacters: valid Unicode that SQS refuses in a message body unless escaped.
    "a\u{FFFE}b\u{FFFF}",
];

/// Marks a value so a test can tell whether an error message quotes it.
const SECRET: &str = "SECRET-5f1d";

/// `default` cases, unless `PROPTEST_CASES` is set: proptest's default configuration reads it,
/// and a count fixed here would override it.
/// A failing case is saved beside this file (`properties.proptest-regressions`) and replayed
/// first on every later run.
fn cases(default: u32) -> ProptestConfig {
    let config = if std::env::var_os("PROPTEST_CASES").is_some() {
        ProptestConfig::default()
    } else {
        ProptestConfig::with_cases(default)
    };
    ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..config
    }
}

// ------------------------------------------------------------------------------ strategies --

fn text(len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), len).prop_map(String::from_iter)
}

fn blank(len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    prop::collection::vec(select(&WHITESPACE[..]), len).prop_map(String::from_iter)
}

/// Very long: one character repeated, so that size costs nothing to generate.
fn long(len: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = String> {
    (any::<char>(), len).prop_map(|(c, n)| c.to_string().repeat(n))
}

fn attribute_value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => text(0..40),
        1 => Just(String::new()),
        1 => blank(1..8),
        1 => long(2_000..=50_000),
        1 => select(&HOSTILE[..]).prop_map(str::to_owned),
        1 => select(&["true", "false", "TRUE", " False ", "yes", "0"][..]).prop_map(str::to_owned),
    ]
}

fn attribute_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(&KNOWN_ATTRIBUTES[..]).prop_map(str::to_owned),
        2 => "custom:[a-z_]{1,20}",
        1 => text(0..20),
        1 => select(&HOSTILE[..]).prop_map(str::to_owned),
    ]
}

fn attributes(count: std::ops::Range<usize>) -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(attribute_name(), attribute_value(), count)
}

/// Usernames `ConfirmedUser::new` accepts: 1 to 1024 characters of anything.
fn username() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => text(1..40),
        1 => blank(1..4),
        1 => long(1000..=1024),
        1 => select(&HOSTILE[..]).prop_map(str::to_owned),
    ]
}

fn user_pool_id() -> impl Strategy<Value = String> {
    "[a-z]{2}(-[a-z]{2,9})?-[0-9]{1,2}_[A-Za-z0-9]{1,30}"
}

/// A UUID in Cognito's form, in either case (the user normalises it to lower case).
fn sub() -> impl Strategy<Value = String> {
    (any::<u128>(), any::<bool>()).prop_map(|(n, upper)| {
        let text = uuid::Uuid::from_u128(n).hyphenated().to_string();
        if upper { text.to_uppercase() } else { text }
    })
}

/// Any instant from 1970 to 9999 (UTC, the years a confirmation may have), to the nanosecond,
/// seen from any offset, the first and last ones favoured.
fn instant() -> impl Strategy<Value = OffsetDateTime> {
    const YEAR_10000: i64 = 253_402_300_800;
    let seconds = prop_oneof![
        1 => Just(0),
        1 => Just(YEAR_10000 - 1),
        6 => 0..YEAR_10000,
    ];
    (seconds, 0..1_000_000_000u32, -86_399..=86_399i32).prop_filter_map(
        "the local time must be representable too",
        |(s, nanos, offset)| {
            OffsetDateTime::from_unix_timestamp(s)
                .and_then(|t| t.replace_nanosecond(nanos))
                .ok()?
                .checked_to_offset(UtcOffset::from_whole_seconds(offset).ok()?)
        },
    )
}

/// The parts of a valid user, kept so a test can rebuild the user it expects.
#[derive(Clone)]
struct Parts {
    pool: String,
    sub: String,
    username: String,
    attributes: BTreeMap<String, String>,
    confirmed_at: OffsetDateTime,
    source: ConfirmationSource,
}

/// Shows every attribute of a small user, and a sample of a user with thousands, so that a
/// failing case stays readable.
impl std::fmt::Debug for Parts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const SHOWN: usize = 24;
        let sample: BTreeMap<&String, &String> = self.attributes.iter().take(SHOWN).collect();
        f.debug_struct("Parts")
            .field("pool", &self.pool)
            .field("sub", &self.sub)
            .field("username", &self.username)
            .field("attribute_count", &self.attributes.len())
            .field("attributes (first 24)", &sample)
            .field("confirmed_at", &self.confirmed_at)
            .field("source", &self.source)
            .finish()
    }
}

impl Parts {
    fn user(&self) -> ConfirmedUser {
        self.user_at(self.confirmed_at)
    }

    fn user_at(&self, confirmed_at: OffsetDateTime) -> ConfirmedUser {
        self.try_user_at(confirmed_at)
            .expect("the strategy keeps valid users only")
    }

    fn try_user_at(&self, confirmed_at: OffsetDateTime) -> Result<ConfirmedUser, UserError> {
        ConfirmedUser::new(
            &self.pool,
            &self.sub,
            &self.username,
            self.attributes.clone(),
            confirmed_at,
            self.source,
        )
    }
}

fn valid_user(attribute_count: std::ops::Range<usize>) -> impl Strategy<Value = Parts> {
    let source = select(
        &[
            ConfirmationSource::PostConfirmation,
            ConfirmationSource::PostConfirmationForgotPassword,
            ConfirmationSource::Backfill,
        ][..],
    );
    (
        user_pool_id(),
        sub(),
        username(),
        attributes(attribute_count),
        any::<bool>(),
        instant(),
        source,
    )
        .prop_map(
            |(pool, sub, username, mut attributes, with_sub, confirmed_at, source)| {
                // Cognito sends `sub` as an attribute too; when present it must agree.
                if with_sub {
                    attributes.insert("sub".to_owned(), sub.clone());
                } else {
                    attributes.remove("sub");
                }
                Parts {
                    pool,
                    sub,
                    username,
                    attributes,
                    confirmed_at,
                    source,
                }
            },
        )
        // Valid is what `ConfirmedUser::new` accepts, whatever its rules are today.
        .prop_filter("ConfirmedUser::new refuses it", |parts| {
            parts.try_user_at(parts.confirmed_at).is_ok()
        })
}

/// A user with up to thousands of `custom:*` attributes on top of the usual ones.
fn user_with_many_custom_attributes() -> impl Strategy<Value = Parts> {
    let custom = prop::collection::vec(
        prop_oneof![3 => text(0..12), 1 => blank(1..3), 1 => select(&HOSTILE[..]).prop_map(str::to_owned)],
        1000..4000,
    );
    (valid_user(0..8), custom).prop_map(|(mut parts, values)| {
        for (i, value) in values.into_iter().enumerate() {
            parts.attributes.insert(format!("custom:attr_{i:04}"), value);
        }
        parts
    })
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("JSON has no NaN or infinity", |f| {
            serde_json::Number::from_f64(f).map(Value::Number)
        }),
        text(0..20).prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        let key = prop_oneof![select(&FIELDS[..]).prop_map(str::to_owned), text(0..10)];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..8)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// A JSON value that is not of the type `field` must have (null counts as missing).
fn wrong_type_for(field: &'static str) -> BoxedStrategy<Value> {
    let is_wrong = move |value: &Value| match field {
        "version" => !value.is_u64(),
        "attributes" => !value.is_object(),
        _ => !value.is_string(),
    };
    let wrong = json_value().prop_filter("of the wrong type", is_wrong);
    if field == "attributes" {
        // Also an object whose values are not all strings.
        let bad_entry = json_value().prop_filter("not a string", |v| !v.is_string());
        let object = (attributes(0..4), attribute_name(), bad_entry).prop_map(|(good, name, bad)| {
            let mut map: serde_json::Map<String, Value> =
                good.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
            map.insert(name, bad);
            Value::Object(map)
        });
        prop_oneof![wrong, object].boxed()
    } else {
        wrong.boxed()
    }
}

/// An RFC 3339 timestamp as a producer could write one: any year `parse_rfc3339` accepts, any
/// offset, with or without a fraction. The days around the limits (years 0, 1970 and 9999) are
/// favoured: there a local time and its UTC instant can be on different sides of a limit.
fn rfc3339_text() -> impl Strategy<Value = String> {
    let date = prop_oneof![
        1 => Just((0u16, 1u8, 1u8)),
        1 => Just((1969, 12, 31)),
        1 => Just((1970, 1, 1)),
        1 => Just((9999, 12, 31)),
        4 => (0..=9999u16, 1..=12u8, 1..=28u8),
    ];
    let offset = prop_oneof![
        1 => Just("Z".to_owned()),
        3 => (select(&['+', '-'][..]), 0..=23u8, 0..=59u8)
            .prop_map(|(sign, h, m)| format!("{sign}{h:02}:{m:02}")),
    ];
    let fraction = prop_oneof![
        Just(String::new()),
        "[0-9]{1,9}".prop_map(|digits| format!(".{digits}")),
    ];
    (date, 0..=23u8, 0..=59u8, 0..=59u8, fraction, offset).prop_map(
        |((y, mo, d), h, mi, s, fraction, offset)| {
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{fraction}{offset}")
        },
    )
}

fn envelope_value(parts: &Parts) -> Value {
    serde_json::from_str(&encode(&parts.user())).expect("encode writes JSON")
}

// ------------------------------------------------------------------------------- checks --

fn strings_of(item: &Item) -> Vec<(String, &str)> {
    let mut strings = Vec::new();
    for (name, value) in item {
        match value {
            ItemValue::S(text) => strings.push(((*name).to_owned(), text.as_str())),
            ItemValue::M(map) => strings.extend(map.iter().map(|(k, v)| (format!("{name}.{k}"), v.as_str()))),
            ItemValue::N(_) | ItemValue::Bool(_) | ItemValue::Null => {}
        }
    }
    strings
}

fn s(text: &str) -> ItemValue {
    ItemValue::S(text.to_owned())
}

/// Truncates to the millisecond, which is what the envelope carries.
fn to_millis(at: OffsetDateTime) -> OffsetDateTime {
    at.replace_nanosecond(u32::from(at.millisecond()) * 1_000_000)
        .expect("a whole millisecond is a valid nanosecond")
}

/// The user as the envelope carries it: `confirmed_at` to the millisecond.
fn to_the_millisecond(user: &ConfirmedUser) -> ConfirmedUser {
    ConfirmedUser::new(
        user.user_pool_id(),
        user.sub(),
        user.username(),
        user.attributes().clone(),
        to_millis(user.confirmed_at()),
        user.source(),
    )
    .expect("the same user with a truncated time is valid")
}

// -------------------------------------------------------------------------------- tests --

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn decoding_any_string_gives_a_result_never_a_panic(body in text(0..200)) {
        let _ = decode(&body);
    }

    #[test]
    fn decoding_any_json_value_that_is_not_an_object_is_refused(value in json_value()) {
        let result = decode(&value.to_string());
        if !value.is_object() {
            prop_assert!(
                matches!(result, Err(EnvelopeError::NotAnObject { .. })),
                "{result:?}"
            );
        }
    }

    #[test]
    fn every_proper_prefix_of_a_valid_envelope_is_refused(
        parts in valid_user(0..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let body = encode(&parts.user());
        let boundaries: Vec<usize> = body.char_indices().map(|(i, _)| i).collect();
        let prefix = &body[..boundaries[cut.index(boundaries.len())]];
        prop_assert!(decode(prefix).is_err());
    }

    #[test]
    fn an_envelope_field_of_the_wrong_type_is_refused_naming_that_field(
        (field, bad) in select(&FIELDS[..]).prop_flat_map(|f| (Just(f), wrong_type_for(f))),
        parts in valid_user(0..4),
    ) {
        let mut value = envelope_value(&parts);
        value[field] = bad.clone();
        let err = decode(&value.to_string()).expect_err("a wrongly typed field must be refused");
        let named = match &err {
            EnvelopeError::MissingField { field: named } => bad.is_null() && *named == field,
            EnvelopeError::WrongType { field: named, .. } => {
                named == field || (field == "attributes" && named.starts_with("attributes"))
            }
            _ => false,
        };
        prop_assert!(named, "{field} = {bad}: {err:?}");
    }

    #[test]
    fn any_mix_of_envelope_fields_and_arbitrary_values_is_decoded_or_refused_never_a_panic(
        parts in valid_user(0..4),
        // Per field: kept (None), removed (Some(None)) or replaced (Some(Some(value))).
        changes in prop::collection::vec(prop::option::of(prop::option::of(json_value())), FIELDS.len()),
        extra in prop::collection::btree_map(text(0..10), json_value(), 0..3),
    ) {
        let mut value = envelope_value(&parts);
        let object = value.as_object_mut().expect("an envelope is an object");
        for (key, replacement) in extra {
            object.entry(key).or_insert(replacement);
        }
        for (field, change) in FIELDS.iter().zip(changes) {
            match change {
                None => {}
                Some(None) => {
                    object.remove(*field);
                }
                Some(Some(replacement)) => {
                    object.insert((*field).to_owned(), replacement);
                }
            }
        }
        if let Ok(user) = decode(&value.to_string()) {
            // Whatever decodes is a user like any other.
            let _ = sync_items(&user, OffsetDateTime::UNIX_EPOCH);
            prop_assert_eq!(decode(&encode(&user)), Ok(to_the_millisecond(&user)));
        }
    }

    #[test]
    fn envelope_errors_never_quote_a_value_from_the_body(
        field in select(&FIELDS[..]),
        shape in 0..3u8,
        parts in valid_user(0..4),
    ) {
        let secret = Value::String(format!("{SECRET} ana@example.com"));
        let bad = match (field, shape) {
            // Inside a value of the wrong type...
            ("attributes", 0) => json!({ "email": [secret] }),
            (_, 0) => json!([secret]),
            // ...as the value itself, refused for its content (source, pool id, sub, time)...
            (_, 1) => secret,
            // ...or inside an object.
            _ => json!({ "value": secret }),
        };
        let mut value = envelope_value(&parts);
        value[field] = bad;
        if let Err(err) = decode(&value.to_string()) {
            prop_assert!(!err.to_string().contains(SECRET), "{err}");
            prop_assert!(!format!("{err:?}").contains(SECRET), "{err:?}");
        }
    }

    #[test]
    fn an_attribute_name_from_the_body_is_never_quoted_in_an_error(
        parts in valid_user(0..4),
        bad in json_value(),
    ) {
        let mut value = envelope_value(&parts);
        value["attributes"][format!("custom:{SECRET}")] = bad;
        if let Err(err) = decode(&value.to_string()) {
            prop_assert!(!err.to_string().contains(SECRET), "{err}");
            prop_assert!(!format!("{err:?}").contains(SECRET), "{err:?}");
        }
    }

    #[test]
    fn every_encoded_body_holds_only_characters_sqs_accepts_and_decodes_to_the_same_user(
        parts in valid_user(0..12),
    ) {
        let body = encode(&parts.user());
        let refused: Vec<char> = body.chars().filter(|c| !shared::envelope::sqs_accepts(*c)).collect();
        prop_assert!(refused.is_empty(), "SQS would refuse {refused:?}");
        prop_assert_eq!(decode(&body), Ok(parts.user_at(to_millis(parts.confirmed_at))));
    }

    #[test]
    fn decode_reverses_encode_for_every_valid_user(parts in valid_user(0..12)) {
        let user = parts.user();
        // The envelope carries confirmed_at to the millisecond, in UTC.
        let expected = parts.user_at(to_millis(parts.confirmed_at));
        prop_assert_eq!(decode(&encode(&user)), Ok(expected));
    }

    #[test]
    fn every_envelope_that_decodes_can_be_mapped_and_re_encoded(
        parts in valid_user(0..4),
        confirmed_at in rfc3339_text(),
    ) {
        let mut value = envelope_value(&parts);
        value["confirmed_at"] = Value::String(confirmed_at.clone());
        // A timestamp may be refused; one that is accepted must be usable downstream.
        if let Ok(user) = decode(&value.to_string()) {
            let items = sync_items(&user, OffsetDateTime::UNIX_EPOCH);
            prop_assert!(items.user.contains_key("confirmed_at"));
            prop_assert_eq!(
                decode(&encode(&user)),
                Ok(to_the_millisecond(&user)),
                "confirmed_at {}",
                confirmed_at
            );
        }
    }

    #[test]
    fn mapping_the_same_user_twice_gives_the_same_items(
        parts in valid_user(0..12),
        now in instant(),
    ) {
        let user = parts.user();
        prop_assert_eq!(sync_items(&user, now), sync_items(&user.clone(), now));
    }

    #[test]
    fn mapping_never_stores_an_empty_or_blank_string(parts in valid_user(0..12), now in instant()) {
        let items = sync_items(&parts.user(), now);
        for item in [&items.user, &items.profile] {
            for (name, text) in strings_of(item) {
                prop_assert!(!text.trim().is_empty(), "{name} is stored as {text:?}");
            }
        }
    }

    #[test]
    fn both_items_are_keyed_by_sub_and_the_derived_profile_id(
        parts in valid_user(0..6),
        now in instant(),
    ) {
        let items = sync_items(&parts.user(), now);
        // The sub is a key in lower case, so its case never changes the profile id.
        let sub = parts.sub.to_lowercase();
        let profile_id = ProfileId::derive(&parts.pool, &sub).to_string();
        prop_assert_eq!(&items.user[USERS_KEY], &s(&sub));
        prop_assert_eq!(&items.user[PROFILES_KEY], &s(&profile_id));
        prop_assert_eq!(&items.profile[PROFILES_KEY], &s(&profile_id));
        prop_assert_eq!(&items.profile[USERS_KEY], &s(&sub));
    }

    #[test]
    fn full_name_is_never_empty_and_falls_back_to_the_username(
        parts in valid_user(0..12),
        now in instant(),
    ) {
        let user = parts.user();
        let ItemValue::S(full_name) = &sync_items(&user, now).profile["full_name"] else {
            panic!("full_name is not a string");
        };
        prop_assert!(!full_name.is_empty());
        let named = ["given_name", "family_name", "name"]
            .iter()
            .any(|name| user.attribute(name).is_some());
        if !named {
            prop_assert_eq!(full_name, user.username());
        }
    }

    #[test]
    fn every_non_blank_attribute_is_stored_verbatim_and_blank_ones_are_left_out(
        parts in valid_user(0..12),
        now in instant(),
    ) {
        let item = sync_items(&parts.user(), now).user;
        let expected: BTreeMap<String, String> = parts
            .attributes
            .iter()
            .filter(|(_, value)| !value.trim().is_empty())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        match item.get("attributes") {
            Some(ItemValue::M(stored)) => prop_assert_eq!(stored, &expected),
            None => prop_assert!(expected.is_empty()),
            Some(other) => prop_assert!(false, "attributes is {other:?}"),
        }
        for name in ["email", "phone_number", "given_name", "family_name", "name"] {
            prop_assert_eq!(item.get(name).cloned(), expected.get(name).map(|v| s(v)), "{}", name);
        }
    }
}

proptest! {
    // Thousands of attributes per case: fewer cases.
    #![proptest_config(cases(12))]

    #[test]
    fn thousands_of_custom_attributes_survive_the_envelope_and_the_mapping(
        parts in user_with_many_custom_attributes(),
    ) {
        let user = parts.user_at(to_millis(parts.confirmed_at));
        let decoded = decode(&encode(&user)).expect("a valid user decodes");
        prop_assert!(decoded == user);
        let items = sync_items(&decoded, OffsetDateTime::UNIX_EPOCH);
        let Some(ItemValue::M(stored)) = items.user.get("attributes") else {
            panic!("no attributes map");
        };
        let non_blank = parts.attributes.values().filter(|v| !v.trim().is_empty()).count();
        prop_assert_eq!(stored.len(), non_blank);
        prop_assert!(stored.values().all(|v| !v.trim().is_empty()));
    }
}

// The case the properties above found, pinned so that it is checked on every run.

#[test]
fn an_envelope_whose_confirmed_at_is_outside_years_0_to_9999_in_utc_is_refused_not_a_panic() {
    let parts = Parts {
        pool: "us-east-1_AbCdEf123".to_owned(),
        sub: "0b5e4a3c-1f2d-4e6a-9b8c-7d6e5f4a3b2c".to_owned(),
        username: "ana".to_owned(),
        attributes: BTreeMap::new(),
        confirmed_at: OffsetDateTime::UNIX_EPOCH,
        source: ConfirmationSource::Backfill,
    };
    for confirmed_at in ["0000-01-01T00:00:00+00:01", "9999-12-31T23:59:59-00:01"] {
        let mut value = envelope_value(&parts);
        value["confirmed_at"] = json!(confirmed_at);
        let body = value.to_string();
        let outcome =
            std::panic::catch_unwind(|| decode(&body).map(|user| sync_items(&user, user.confirmed_at())));
        assert!(
            matches!(outcome, Ok(Err(EnvelopeError::InvalidTimestamp))),
            "confirmed_at {confirmed_at}: {:?}",
            outcome.map(|result| result.map(|_| "accepted"))
        );
    }
}
