//! The welcome email, sent by the consumer after a first confirmation from sign-up is synced.
//!
//! The decisions are plain functions: who is greeted ([`eligibility`]), what the mail says
//! ([`template`], checked when read so that no greeting renders as "Hello ,"), and the
//! settings ([`config`]). [`ses`] is the one SES call. The claim that makes the send happen
//! once lives with the users item's other writes (`tables`).

pub mod config;
pub mod eligibility;
pub mod ses;
pub mod template;

pub use config::{Content, WelcomeConfig};
pub use eligibility::{Skip, recipient};
pub use template::{Template, TemplateError, Values};

#[cfg(test)]
mod test_support {
    use std::collections::BTreeMap;

    /// A user's attributes, from pairs.
    pub fn attributes(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }
}
