//! The deterministic profile id.
//!
//! The profile id is a UUID v5 of the user pool id and the user's `sub` under a fixed project
//! namespace. Every retry, redelivery and redrive of the same confirmation therefore yields the
//! same id, which is what lets the consumer's conditional put recognise "already synced".
//! A random id per invocation (what the articles this grew out of did) makes a second, different
//! profile on every retry.

use std::fmt;

use uuid::Uuid;

/// The project namespace. Changing it would give every existing user a new profile id: never do.
pub const PROFILE_ID_NAMESPACE: Uuid = Uuid::from_u128(0xe347_6787_93f9_477f_b475_a294_5fbc_9e3d);

/// A profile id that can only be derived, never invented.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProfileId(Uuid);

impl ProfileId {
    /// Derives the profile id of user `sub` in pool `user_pool_id`.
    ///
    /// The name is `"{user_pool_id}/{sub}"`; a pool id never contains `/`, so no two
    /// (pool, sub) pairs share a name.
    pub fn derive(user_pool_id: &str, sub: &str) -> Self {
        let name = format!("{user_pool_id}/{sub}");
        Self(Uuid::new_v5(&PROFILE_ID_NAMESPACE, name.as_bytes()))
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl fmt::Display for ProfileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl fmt::Debug for ProfileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProfileId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POOL: &str = "us-east-1_AbCdEf123";
    const SUB: &str = "0b5e4a3c-1f2d-4e6a-9b8c-7d6e5f4a3b2c";

    #[test]
    fn same_pool_and_sub_give_the_same_id() {
        assert_eq!(ProfileId::derive(POOL, SUB), ProfileId::derive(POOL, SUB));
    }

    #[test]
    fn id_is_a_version_5_uuid_in_the_project_namespace() {
        let id = ProfileId::derive(POOL, SUB).as_uuid();
        assert_eq!(id.get_version_num(), 5);
        let expected = Uuid::new_v5(&PROFILE_ID_NAMESPACE, format!("{POOL}/{SUB}").as_bytes());
        assert_eq!(id, expected);
    }

    /// Pinned so that a change of namespace or name layout, which would orphan every existing
    /// profile, fails loudly.
    #[test]
    fn id_is_stable_across_releases() {
        assert_eq!(
            ProfileId::derive(POOL, SUB).to_string(),
            Uuid::new_v5(
                &Uuid::parse_str("e3476787-93f9-477f-b475-a2945fbc9e3d").unwrap(),
                b"us-east-1_AbCdEf123/0b5e4a3c-1f2d-4e6a-9b8c-7d6e5f4a3b2c"
            )
            .to_string()
        );
    }

    #[test]
    fn different_pools_or_subs_give_different_ids() {
        let a = ProfileId::derive(POOL, SUB);
        assert_ne!(a, ProfileId::derive("eu-west-1_Other1", SUB));
        assert_ne!(a, ProfileId::derive(POOL, "1b5e4a3c-1f2d-4e6a-9b8c-7d6e5f4a3b2c"));
    }
}
