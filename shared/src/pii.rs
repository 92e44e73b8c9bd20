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

/// Cognito attributes that identify a person and must never be logged.
pub const PII_ATTRIBUTES: [&str; 11] = [
    "email",
    "phone_number",
    "given_name",
    "family_name",
    "middle_name",
    "name",
    "nickname",
    "preferred_username",
    "address",
    "birthdate",
    "cognito:email_alias",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_hides_the_value_in_every_format() {
        let secret = Redacted("ana@example.com");
        assert_eq!(format!("{secret}"), "[redacted]");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(format!("{secret:#?}"), "[redacted]");
    }
}
