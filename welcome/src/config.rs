//! The welcomer's settings (see the README's configuration table): every setting checked at
//! start-up, naming its variable.

use std::time::Duration;

use shared::config::{ConfigError, Source, integer_in, optional, required};

use crate::template::{Template, TemplateError};

/// The repository's subject and body (`welcome/content/`), built into the welcomer.
pub const REPOSITORY_SUBJECT: &str = include_str!("../content/subject.txt");
pub const REPOSITORY_BODY: &str = include_str!("../content/body.txt");

/// What the welcome says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// The repository's subject and body, rendered here.
    Repository { subject: Template, body: Template },
    /// An SES template of the account, rendered by SES from the user's values.
    SesTemplate { name: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WelcomeConfig {
    /// The `From` address, bare: what IAM's `ses:FromAddress` compares.
    pub from_address: String,
    /// The `From` display name, if any.
    pub from_name: Option<String>,
    /// The verified SES identity the address belongs to (an address or a domain).
    pub sender_identity: String,
    /// The configuration set every welcome is sent with: the stack's, or the team's (to which
    /// the stack adds its event destination). Always named, so that SES never falls back on
    /// the identity's default set, whose events the stack would not see.
    pub configuration_set: String,
    pub content: Content,
    /// The value of the stack tag every welcome carries (the stack's name): its events rule
    /// picks SES's events of this stack's welcomes by it.
    pub stack_tag: String,
    /// How long a claim keeps other deliveries of the same user from sending: longer than one
    /// invocation, so that only a claimant that is surely gone is taken over.
    pub claim_lease: Duration,
    /// How long one `SendEmail` may take: a fifth of the welcomer's timeout, 1 to 6 s. A
    /// delivery claims only with twice this left before its deadline, so that the send and its
    /// record both fit: a record cut off after the send is the duplicate to avoid.
    pub send_timeout: Duration,
    /// The share of the account's SES sending rate the welcome may use, in percent.
    pub send_rate_percent: u8,
    /// The most execution environments the welcome queue runs at once: each paces itself at
    /// its share of the rate divided by this.
    pub environments: u32,
    /// The delay before a deferred welcome's first retry, doubled at each receive up to an
    /// hour (`crate::backoff`).
    pub first_retry: Duration,
}

/// The repository's content, checked (a unit test keeps it valid).
pub fn repository_content() -> Result<Content, TemplateError> {
    Ok(Content::Repository {
        subject: Template::parse(REPOSITORY_SUBJECT.trim_end())?,
        body: Template::parse(REPOSITORY_BODY)?,
    })
}

impl WelcomeConfig {
    /// The welcomer's settings; `invocation_timeout` is its own (the claim lease is twice it).
    pub fn from_env(env: &dyn Source, invocation_timeout: Duration) -> Result<Self, ConfigError> {
        let sender_identity = required(
            env,
            "WELCOME_SENDER_IDENTITY",
            "the verified SES identity the welcome is sent from: an email address or a domain",
        )?;
        let identity = sender_identity.to_ascii_lowercase();
        if !(is_address(&identity) || is_domain(&identity)) {
            return Err(ConfigError::Invalid {
                name: "WELCOME_SENDER_IDENTITY",
                expected: "a verified SES identity: an email address or a domain",
            });
        }
        let from_address = match optional(env, "WELCOME_FROM_ADDRESS") {
            Some(from) => from,
            None if is_address(&identity) => sender_identity.clone(),
            None => {
                return Err(ConfigError::Missing {
                    name: "WELCOME_FROM_ADDRESS",
                    expected: "the welcome's From address, at the domain WELCOME_SENDER_IDENTITY names",
                });
            }
        };
        if !is_address(&from_address.to_ascii_lowercase()) {
            return Err(ConfigError::Invalid {
                name: "WELCOME_FROM_ADDRESS",
                expected: "an email address alone (the display name goes in WELCOME_FROM_NAME)",
            });
        }
        let address = from_address.to_ascii_lowercase();
        let belongs = address == identity
            || address
                .rsplit_once('@')
                .is_some_and(|(_, domain)| domain == identity);
        if !belongs {
            return Err(ConfigError::Invalid {
                name: "WELCOME_FROM_ADDRESS",
                expected: "an address SES lets the identity send from: the identity itself, or an address at the identity's domain",
            });
        }
        let from_name = optional(env, "WELCOME_FROM_NAME");
        if from_name.as_deref().is_some_and(|name| !is_display_name(name)) {
            return Err(ConfigError::Invalid {
                name: "WELCOME_FROM_NAME",
                expected: "a name of ASCII letters, digits, spaces and . ! # $ % & ' * + - / = ? ^ _ ` { | } ~ (SES needs other names quoted or MIME-encoded)",
            });
        }
        let configuration_set = required(
            env,
            "WELCOME_CONFIGURATION_SET",
            "the SES configuration set the welcome is sent with (the template sets the stack's, or the one given)",
        )?;
        if !is_ses_name(&configuration_set) {
            return Err(ConfigError::Invalid {
                name: "WELCOME_CONFIGURATION_SET",
                expected: "an SES configuration set name: 1 to 64 letters, digits, _ or -",
            });
        }
        let content = match optional(env, "WELCOME_SES_TEMPLATE") {
            Some(name) if is_ses_name(&name) => Content::SesTemplate { name },
            Some(_) => {
                return Err(ConfigError::Invalid {
                    name: "WELCOME_SES_TEMPLATE",
                    expected: "an SES template name: 1 to 64 letters, digits, _ or -",
                });
            }
            None => repository_content().map_err(|_| ConfigError::Invalid {
                name: "WELCOME_SES_TEMPLATE",
                expected: "set: this build's welcome/content does not parse (cargo test -p welcome says where)",
            })?,
        };
        let stack_tag = required(
            env,
            "WELCOME_STACK_TAG",
            "the value of the tag every welcome carries, the stack's name (the template sets it)",
        )?;
        if !is_tag_value(&stack_tag) {
            return Err(ConfigError::Invalid {
                name: "WELCOME_STACK_TAG",
                expected: "an SES tag value: 1 to 256 letters, digits, _ or -",
            });
        }
        let send_rate_percent = integer_in(
            env,
            "WELCOME_SEND_RATE_PERCENT",
            "a share of the account's SES sending rate in percent, 1 to 100",
            50,
            1..=100,
        )? as u8;
        let environments = integer_in(
            env,
            "WELCOME_MAX_CONCURRENCY",
            "an integer from 2 to 1000 (the welcome queue's maximum concurrency)",
            2,
            2..=1000,
        )? as u32;
        let first_retry = Duration::from_secs(integer_in(
            env,
            "WELCOME_FIRST_RETRY_SECONDS",
            "seconds before a deferred welcome's first retry, 1 to 900",
            crate::backoff::FIRST_RETRY.as_secs(),
            1..=900,
        )?);
        Ok(Self {
            first_retry,
            from_address,
            from_name,
            sender_identity,
            configuration_set,
            content,
            stack_tag,
            claim_lease: invocation_timeout * 2,
            send_timeout: (invocation_timeout / 5).clamp(Duration::from_secs(1), Duration::from_secs(6)),
            send_rate_percent,
            environments,
        })
    }

    /// The `From` header: `Name <address>`, or the address alone.
    pub fn from(&self) -> String {
        match &self.from_name {
            Some(name) => format!("{name} <{}>", self.from_address),
            None => self.from_address.clone(),
        }
    }
}

fn is_ses_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn is_domain(text: &str) -> bool {
    text.len() <= 253
        && text.contains('.')
        && text.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

fn is_address(text: &str) -> bool {
    match text.rsplit_once('@') {
        Some((local, domain)) => {
            (1..=64).contains(&local.len())
                && local
                    .chars()
                    .all(|c| c.is_ascii_graphic() && !"<>()[]\\,;:\"@".contains(c))
                && is_domain(domain)
        }
        None => false,
    }
}

/// A display name SES takes unquoted: RFC 5322's atext, spaces and dots; anything else (`,`
/// `;` `:` `@` brackets, quotes) would need quoting, and SES would refuse every send for it.
fn is_display_name(name: &str) -> bool {
    !name.trim().is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " .!#$%&'*+-/=?^_`{|}~".contains(c))
}

/// What SES takes as a message tag's value.
fn is_tag_value(text: &str) -> bool {
    (1..=256).contains(&text.len())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const ON: [(&str, &str); 3] = [
        ("WELCOME_SENDER_IDENTITY", "hello@example.com"),
        ("WELCOME_CONFIGURATION_SET", "stack-welcome"),
        ("WELCOME_STACK_TAG", "cognito-user-sync"),
    ];

    fn load(pairs: &[(&str, &str)]) -> Result<WelcomeConfig, ConfigError> {
        let mut vars: HashMap<String, String> = ON
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        vars.extend(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        vars.retain(|_, v| !v.is_empty());
        let env = move |name: &str| vars.get(name).cloned();
        WelcomeConfig::from_env(&env, Duration::from_secs(30))
    }

    #[test]
    fn the_repository_content_is_valid() {
        repository_content().unwrap();
    }

    #[test]
    fn an_address_identity_sends_from_itself_a_domain_from_an_address_in_it() {
        let config = load(&[]).unwrap();
        assert_eq!(config.from(), "hello@example.com");
        assert_eq!(config.claim_lease, Duration::from_secs(60));
        assert_eq!(config.send_timeout, Duration::from_secs(6));
        assert_eq!((config.send_rate_percent, config.environments), (50, 2));
        assert!(matches!(config.content, Content::Repository { .. }));
        let config = load(&[
            ("WELCOME_SENDER_IDENTITY", "Example.com"),
            ("WELCOME_FROM_ADDRESS", "team@example.com"),
            ("WELCOME_FROM_NAME", "Example Team"),
            ("WELCOME_CONFIGURATION_SET", "welcome-mail"),
            ("WELCOME_SES_TEMPLATE", "Welcome_v2"),
            ("WELCOME_SEND_RATE_PERCENT", "20"),
        ])
        .unwrap();
        assert_eq!(config.from_address, "team@example.com");
        assert_eq!(config.from(), "Example Team <team@example.com>");
        assert_eq!(config.configuration_set, "welcome-mail");
        assert_eq!(config.send_rate_percent, 20);
        assert_eq!(
            config.content,
            Content::SesTemplate {
                name: "Welcome_v2".into()
            }
        );
    }

    #[test]
    fn a_bad_setting_names_its_variable() {
        for (pairs, name) in [
            (vec![("WELCOME_SENDER_IDENTITY", "")], "WELCOME_SENDER_IDENTITY"),
            (
                vec![("WELCOME_SENDER_IDENTITY", "not an identity")],
                "WELCOME_SENDER_IDENTITY",
            ),
            (
                vec![("WELCOME_SENDER_IDENTITY", "example.com")],
                "WELCOME_FROM_ADDRESS",
            ),
            (
                vec![
                    ("WELCOME_SENDER_IDENTITY", "example.com"),
                    ("WELCOME_FROM_ADDRESS", "team@other.example"),
                ],
                "WELCOME_FROM_ADDRESS",
            ),
            (
                vec![
                    ("WELCOME_SENDER_IDENTITY", "example.com"),
                    ("WELCOME_FROM_ADDRESS", "Team <team@example.com>"),
                ],
                "WELCOME_FROM_ADDRESS",
            ),
            (vec![("WELCOME_FROM_NAME", "Zoë")], "WELCOME_FROM_NAME"),
            (vec![("WELCOME_FROM_NAME", "Smith, Team")], "WELCOME_FROM_NAME"),
            (
                vec![("WELCOME_CONFIGURATION_SET", "")],
                "WELCOME_CONFIGURATION_SET",
            ),
            (
                vec![("WELCOME_CONFIGURATION_SET", "has space")],
                "WELCOME_CONFIGURATION_SET",
            ),
            (vec![("WELCOME_SES_TEMPLATE", "x/../y")], "WELCOME_SES_TEMPLATE"),
            (vec![("WELCOME_STACK_TAG", "")], "WELCOME_STACK_TAG"),
            (vec![("WELCOME_STACK_TAG", "a.b")], "WELCOME_STACK_TAG"),
            (
                vec![("WELCOME_SEND_RATE_PERCENT", "0")],
                "WELCOME_SEND_RATE_PERCENT",
            ),
            (vec![("WELCOME_MAX_CONCURRENCY", "1")], "WELCOME_MAX_CONCURRENCY"),
        ] {
            let err = load(&pairs).unwrap_err().to_string();
            assert!(err.contains(name), "{pairs:?}: {err}");
        }
    }
}
