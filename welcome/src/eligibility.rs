//! Who is greeted: a user's first confirmation from sign-up, with a verified email address.

use shared::ConfirmationSource;
use std::collections::BTreeMap;

/// Why a confirmation gets no welcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Not a sign-up: a confirmed password reset, a backfill (or any repair or refresh, which
    /// never reach this decision). Not counted: these were never candidates.
    NotASignUp,
    /// The users item is a tombstone: the user was deleted or forgotten.
    UserDeleted,
    NoEmail,
    /// An address nobody proved is theirs may be someone else's (a typo at sign-up): mail to it
    /// would greet a stranger and, bounced, hurt the sender's reputation with SES.
    EmailNotVerified,
}

impl Skip {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotASignUp => "not_a_sign_up",
            Self::UserDeleted => "user_deleted",
            Self::NoEmail => "no_email",
            Self::EmailNotVerified => "email_not_verified",
        }
    }

    /// Whether the skip counts as `WelcomeSkipped`: a sign-up that was not greeted.
    pub fn is_counted(self) -> bool {
        self != Self::NotASignUp
    }
}

/// The address to greet, or why none.
pub fn recipient(
    source: ConfirmationSource,
    attributes: &BTreeMap<String, String>,
    user_deleted: bool,
) -> Result<&str, Skip> {
    if source != ConfirmationSource::PostConfirmation {
        return Err(Skip::NotASignUp);
    }
    if user_deleted {
        return Err(Skip::UserDeleted);
    }
    let email = attributes
        .get("email")
        .map(|e| e.trim())
        .filter(|e| !e.is_empty())
        .ok_or(Skip::NoEmail)?;
    if attributes.get("email_verified").map(String::as_str) != Some("true") {
        return Err(Skip::EmailNotVerified);
    }
    Ok(email)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::attributes;

    #[test]
    fn a_sign_up_with_a_verified_address_is_greeted() {
        let a = attributes(&[("email", "a@example.com"), ("email_verified", "true")]);
        assert_eq!(
            recipient(ConfirmationSource::PostConfirmation, &a, false),
            Ok("a@example.com")
        );
    }

    #[test]
    fn anything_else_is_not() {
        let verified = attributes(&[("email", "a@example.com"), ("email_verified", "true")]);
        for source in [
            ConfirmationSource::PostConfirmationForgotPassword,
            ConfirmationSource::Backfill,
        ] {
            assert_eq!(recipient(source, &verified, false), Err(Skip::NotASignUp));
        }
        let sign_up = ConfirmationSource::PostConfirmation;
        assert_eq!(recipient(sign_up, &verified, true), Err(Skip::UserDeleted));
        assert_eq!(recipient(sign_up, &attributes(&[]), false), Err(Skip::NoEmail));
        let blank = attributes(&[("email", " "), ("email_verified", "true")]);
        assert_eq!(recipient(sign_up, &blank, false), Err(Skip::NoEmail));
        for flag in [None, Some("false"), Some("TRUE ")] {
            let mut a = attributes(&[("email", "a@example.com")]);
            if let Some(flag) = flag {
                a.insert("email_verified".into(), flag.into());
            }
            assert_eq!(
                recipient(sign_up, &a, false),
                Err(Skip::EmailNotVerified),
                "{flag:?}"
            );
        }
        assert!(!Skip::NotASignUp.is_counted());
        assert!(Skip::NoEmail.is_counted());
    }
}
