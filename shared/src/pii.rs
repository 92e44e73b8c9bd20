//! Keeping personal data out of logs.
//!
//! The rule: a log line may carry the user pool id, the `sub`, the profile id and message ids;
//! never an email address, a phone number, a name or a username. Types that hold PII implement
//! `Debug` by hand (see [`crate::ConfirmedUser`]); anything else that must pass through a log
//! statement is wrapped in [`Redacted`].

use std::fmt;

/// Wraps a value so that `Debug` and `Display` print `[redacted]`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Redacted<T>(pub T);

impl<T> fmt::Debug for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T> fmt::Display for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The attributes known to carry no personal data: the only ones an operator's tool may show in
/// clear. An allow-list, not a deny-list: `custom:*` attributes, `identities` (often an email
/// address or a SAML NameID), `picture`, `gender`, `address`, `birthdate`, `locale`, ... and any
/// attribute Cognito adds later are masked unless the operator asks for them.
pub const NON_PERSONAL_ATTRIBUTES: [&str; 6] = [
    "sub",
    "email_verified",
    "phone_number_verified",
    "cognito:user_status",
    "cognito:mfa_enabled",
    "updated_at",
];

/// Whether an attribute may be shown in clear (see [`NON_PERSONAL_ATTRIBUTES`]).
pub fn is_non_personal(attribute: &str) -> bool {
    NON_PERSONAL_ATTRIBUTES.contains(&attribute)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_allow_list_is_non_personal() {
        for clear in NON_PERSONAL_ATTRIBUTES {
            assert!(is_non_personal(clear));
        }
        for personal in [
            "email",
            "identities",
            "custom:national_id",
            "picture",
            "gender",
            "address",
            "username",
            "",
        ] {
            assert!(!is_non_personal(personal), "{personal}");
        }
    }

    #[test]
    fn redacted_hides_the_value_in_every_format() {
        let secret = Redacted("ana@example.com");
        assert_eq!(format!("{secret}"), "[redacted]");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(format!("{secret:#?}"), "[redacted]");
    }
}
