//! Any bytes as an SQS message body, as the consumer reads it.
//!
//! Never a panic. When the body decodes, the user must map to the two items, and the envelope
//! the trigger would write for it must decode to the same user (to the millisecond, which is
//! what the envelope carries) and map to the same items.

#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::envelope::{decode, encode};
use shared::mapping::{ItemValue, PROFILES_KEY, USERS_KEY, sync_items};
use shared::{ConfirmedUser, ProfileId};
use time::OffsetDateTime;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(user) = decode(body) else {
        return;
    };
    let now = OffsetDateTime::UNIX_EPOCH;
    let items = sync_items(&user, now);
    let profile_id = ProfileId::derive(user.user_pool_id(), user.sub()).to_string();
    assert_eq!(items.user[USERS_KEY], ItemValue::S(user.sub().to_owned()));
    assert_eq!(items.profile[PROFILES_KEY], ItemValue::S(profile_id));

    let again = decode(&encode(&user)).expect("an encoded user decodes");
    assert!(again == to_the_millisecond(&user), "decode(encode(user)) != user");
    assert_eq!(sync_items(&again, now), items);
});

fn to_the_millisecond(user: &ConfirmedUser) -> ConfirmedUser {
    let at = user.confirmed_at();
    let at = at
        .replace_nanosecond(u32::from(at.millisecond()) * 1_000_000)
        .expect("a whole millisecond is a valid nanosecond");
    ConfirmedUser::new(
        user.user_pool_id(),
        user.sub(),
        user.username(),
        user.attributes().clone(),
        at,
        user.source(),
    )
    .expect("the same user with a truncated time is valid")
}
