//! [`ConfirmedUser`]: a user whose sign-up Cognito confirmed, validated once at the edge.
//!
//! Parse, don't validate: the only ways to get a `ConfirmedUser` are [`ConfirmedUser::new`]
//! (the trigger, from a Cognito event) and [`crate::envelope::decode`] (the consumer, from a
//! message), and both check the same rules. Code downstream never re-checks.

use std::collections::BTreeMap;
use std::fmt;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::profile_id::ProfileId;

/// Longest username Cognito allows is 128 characters; anything far beyond that is not Cognito's.
const MAX_USERNAME_CHARS: usize = 1024;
/// Cognito pool ids are `<region>_<id>`, at most 55 characters.
const MAX_USER_POOL_ID_CHARS: usize = 55;

/// Where a confirmation came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfirmationSource {
    /// The Post Confirmation trigger, for a sign-up confirmation (`PostConfirmation_ConfirmSignUp`,
    /// also a federated user's first sign-in).
    PostConfirmation,
    /// The Post Confirmation trigger, for a confirmed password reset
    /// (`PostConfirmation_ConfirmForgotPassword`). For a user synced before, a no-op; for one
    /// whose first confirmation this is (imported, or migrated by a migrate-user trigger), their
    /// sync.
    PostConfirmationForgotPassword,
    /// An operator's backfill of users who confirmed before the trigger was attached.
    Backfill,
}

impl ConfirmationSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PostConfirmation => "post_confirmation",
            Self::PostConfirmationForgotPassword => "post_confirmation_forgot_password",
            Self::Backfill => "backfill",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "post_confirmation" => Some(Self::PostConfirmation),
            "post_confirmation_forgot_password" => Some(Self::PostConfirmationForgotPassword),
            "backfill" => Some(Self::Backfill),
            _ => None,
        }
    }
}

/// Why a confirmation is not a valid [`ConfirmedUser`]. Messages name the field, never its value,
/// so they are safe to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("user pool id is not of the form <region>_<id>")]
    InvalidUserPoolId,
    #[error("sub is not a UUID")]
    InvalidSub,
    #[error("username is blank or longer than {MAX_USERNAME_CHARS} characters")]
    InvalidUsername,
    #[error("attribute `sub` disagrees with the user's sub")]
    SubAttributeMismatch,
    #[error("confirmation time is not between 1970 and 9999 (UTC)")]
    ConfirmedAtOutOfRange,
    #[error("the user has no `sub` attribute")]
    MissingSub,
    #[error("user status is blank or longer than 64 characters")]
    InvalidStatus,
    #[error("last-modified time is not between 1970 and 9999 (UTC)")]
    LastModifiedOutOfRange,
}

/// A confirmed Cognito user: identity plus every user attribute Cognito sent.
#[derive(Clone, PartialEq)]
pub struct ConfirmedUser {
    user_pool_id: String,
    sub: String,
    username: String,
    attributes: BTreeMap<String, String>,
    confirmed_at: OffsetDateTime,
    source: ConfirmationSource,
}

impl ConfirmedUser {
    /// Validates and builds a confirmed user. `attributes` are Cognito's user attributes
    /// (`custom:*` included); if they carry `sub`, it must equal `sub`.
    pub fn new(
        user_pool_id: &str,
        sub: &str,
        username: &str,
        attributes: BTreeMap<String, String>,
        confirmed_at: OffsetDateTime,
        source: ConfirmationSource,
    ) -> Result<Self, UserError> {
        let sub = check_identity(user_pool_id, sub, username)?;
        if !is_storable_time(confirmed_at) {
            return Err(UserError::ConfirmedAtOutOfRange);
        }
        if let Some(attr_sub) = attributes.get("sub")
            && !attr_sub.eq_ignore_ascii_case(&sub)
        {
            return Err(UserError::SubAttributeMismatch);
        }
        Ok(Self {
            user_pool_id: user_pool_id.to_owned(),
            sub,
            username: username.to_owned(),
            attributes,
            confirmed_at,
            source,
        })
    }

    pub fn user_pool_id(&self) -> &str {
        &self.user_pool_id
    }

    /// The Cognito `sub`, lower-case hyphenated UUID: the users table's key.
    pub fn sub(&self) -> &str {
        &self.sub
    }

    pub fn username(&self) -> &str {
        &self.username
    }

    pub fn attributes(&self) -> &BTreeMap<String, String> {
        &self.attributes
    }

    /// A user attribute, `None` when absent or blank (blank values are never stored).
    pub fn attribute(&self, name: &str) -> Option<&str> {
        non_blank(&self.attributes, name)
    }

    pub fn confirmed_at(&self) -> OffsetDateTime {
        self.confirmed_at
    }

    pub fn source(&self) -> ConfirmationSource {
        self.source
    }

    pub fn profile_id(&self) -> ProfileId {
        ProfileId::derive(&self.user_pool_id, &self.sub)
    }
}

/// Checks a user's pool id, sub and username as every way into the tables does; returns the sub
/// in its one stored form (lower-case hyphenated).
pub(crate) fn check_identity(user_pool_id: &str, sub: &str, username: &str) -> Result<String, UserError> {
    if !is_user_pool_id(user_pool_id) {
        return Err(UserError::InvalidUserPoolId);
    }
    let sub = normalise_sub(sub)?;
    // Cognito usernames never contain white space; a blank one would be stored as a blank
    // string, which the data model rules out.
    if username.trim().is_empty() || username.chars().count() > MAX_USERNAME_CHARS {
        return Err(UserError::InvalidUsername);
    }
    Ok(sub)
}

/// Cognito's sub is always a UUID; refusing anything else keeps keys well-formed and guarantees
/// a message cannot smuggle an arbitrary string into a partition key.
pub fn normalise_sub(sub: &str) -> Result<String, UserError> {
    Ok(Uuid::try_parse(sub)
        .map_err(|_| UserError::InvalidSub)?
        .hyphenated()
        .to_string())
}

/// Stored times are RFC 3339 in UTC, which only years 0 to 9999 can be written in; an offset can
/// push a valid-looking time outside them. Nothing real predates 1970.
pub(crate) fn is_storable_time(at: OffsetDateTime) -> bool {
    at.checked_to_offset(time::UtcOffset::UTC)
        .map(|t| t.year())
        .is_some_and(|year| (1970..=9999).contains(&year))
}

/// The attribute `name`, unless absent or blank (Cognito sends absent attributes as blanks).
pub(crate) fn non_blank<'a>(attributes: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    attributes
        .get(name)
        .map(String::as_str)
        .filter(|value| !value.trim().is_empty())
}

/// Redacts everything but identifiers: a stray `?user` in a log line must not leak PII.
impl fmt::Debug for ConfirmedUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfirmedUser")
            .field("user_pool_id", &self.user_pool_id)
            .field("sub", &self.sub)
            .field("username", &"[redacted]")
            .field("attribute_names", &self.attributes.keys().collect::<Vec<_>>())
            .field("confirmed_at", &self.confirmed_at)
            .field("source", &self.source)
            .finish()
    }
}

/// `<region>_<id>`: region letters, digits and dashes; id letters and digits.
pub fn is_user_pool_id(text: &str) -> bool {
    if text.len() > MAX_USER_POOL_ID_CHARS {
        return false;
    }
    let Some((region, id)) = text.split_once('_') else {
        return false;
    };
    !region.is_empty()
        && !id.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    const POOL: &str = "us-east-1_AbCdEf123";
    const SUB: &str = "0b5e4a3c-1f2d-4e6a-9b8c-7d6e5f4a3b2c";

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn user(pool: &str, sub: &str, username: &str) -> Result<ConfirmedUser, UserError> {
        ConfirmedUser::new(
            pool,
            sub,
            username,
            attrs(&[("email", "ana@example.com")]),
            OffsetDateTime::UNIX_EPOCH,
            ConfirmationSource::PostConfirmation,
        )
    }

    #[test]
    fn accepts_a_cognito_user() {
        let u = user(POOL, SUB, "ana").unwrap();
        assert_eq!(u.sub(), SUB);
        assert_eq!(u.profile_id(), ProfileId::derive(POOL, SUB));
    }

    #[test]
    fn normalises_sub_to_lower_case() {
        let u = user(POOL, &SUB.to_uppercase(), "ana").unwrap();
        assert_eq!(u.sub(), SUB);
    }

    #[test]
    fn refuses_bad_pool_ids() {
        for pool in [
            "",
            "us-east-1",
            "_abc",
            "us-east-1_",
            "us east_1",
            "us-east-1_a/b",
            "a_b}",
        ] {
            assert_eq!(
                user(pool, SUB, "ana"),
                Err(UserError::InvalidUserPoolId),
                "{pool}"
            );
        }
    }

    #[test]
    fn refuses_a_sub_that_is_not_a_uuid() {
        for sub in ["", "abc", "attribute_not_exists(user_id)", "0b5e4a3c"] {
            assert_eq!(user(POOL, sub, "ana"), Err(UserError::InvalidSub), "{sub}");
        }
    }

    #[test]
    fn refuses_empty_or_huge_usernames() {
        assert_eq!(user(POOL, SUB, ""), Err(UserError::InvalidUsername));
        assert_eq!(user(POOL, SUB, " \t "), Err(UserError::InvalidUsername));
        assert_eq!(
            user(POOL, SUB, &"x".repeat(1025)),
            Err(UserError::InvalidUsername)
        );
    }

    #[test]
    fn refuses_confirmation_times_that_cannot_be_stored() {
        let at = |text: &str| crate::timestamp::parse_rfc3339(text).unwrap();
        for bad in ["0000-01-01T00:00:00+00:01", "1969-12-31T23:59:59Z"] {
            let result = ConfirmedUser::new(
                POOL,
                SUB,
                "ana",
                BTreeMap::new(),
                at(bad),
                ConfirmationSource::Backfill,
            );
            assert_eq!(result, Err(UserError::ConfirmedAtOutOfRange), "{bad}");
        }
        let ok = ConfirmedUser::new(
            POOL,
            SUB,
            "ana",
            BTreeMap::new(),
            at("9999-12-31T23:59:59Z"),
            ConfirmationSource::Backfill,
        );
        assert!(ok.is_ok());
    }

    #[test]
    fn refuses_a_sub_attribute_that_disagrees() {
        let result = ConfirmedUser::new(
            POOL,
            SUB,
            "ana",
            attrs(&[("sub", "1b5e4a3c-1f2d-4e6a-9b8c-7d6e5f4a3b2c")]),
            OffsetDateTime::UNIX_EPOCH,
            ConfirmationSource::PostConfirmation,
        );
        assert_eq!(result, Err(UserError::SubAttributeMismatch));
    }

    #[test]
    fn blank_attributes_read_as_absent() {
        let u = ConfirmedUser::new(
            POOL,
            SUB,
            "ana",
            attrs(&[("email", "  "), ("given_name", "Ana")]),
            OffsetDateTime::UNIX_EPOCH,
            ConfirmationSource::PostConfirmation,
        )
        .unwrap();
        assert_eq!(u.attribute("email"), None);
        assert_eq!(u.attribute("phone_number"), None);
        assert_eq!(u.attribute("given_name"), Some("Ana"));
    }

    #[test]
    fn debug_output_carries_no_pii() {
        let u = ConfirmedUser::new(
            POOL,
            SUB,
            "ana.lopez",
            attrs(&[
                ("email", "ana@example.com"),
                ("given_name", "Ana"),
                ("phone_number", "+15550100"),
            ]),
            OffsetDateTime::UNIX_EPOCH,
            ConfirmationSource::PostConfirmation,
        )
        .unwrap();
        let debug = format!("{u:?}");
        for secret in ["ana@example.com", "Ana\"", "+15550100", "ana.lopez"] {
            assert!(!debug.contains(secret), "{secret} leaked: {debug}");
        }
        assert!(debug.contains(SUB));
    }
}
