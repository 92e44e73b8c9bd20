//! The welcome email of a first confirmation from sign-up: the consumer asks for it on the
//! welcome queue once the user's two items are written, and the welcomer sends it.
//!
//! The decisions are plain functions: who is greeted ([`eligibility`]), what the mail says
//! ([`template`], checked when read so that no greeting renders as "Hello ,"), what the welcome
//! queue carries ([`message`]), when a welcome that could not go out is tried again
//! ([`backoff`]), SES's limits and the welcome's share of them ([`quota`]), and the settings
//! ([`config`]). [`ses`] holds the SES calls. The claim that makes the send happen once lives
//! with the users item's other writes (`tables`).

pub mod backoff;
pub mod config;
pub mod eligibility;
pub mod message;
pub mod quota;
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
