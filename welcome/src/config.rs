//! The welcome's settings (see the README's configuration table): off unless a sender identity
//! is set; every setting checked at start-up, naming its variable.

use std::time::Duration;

use shared::config::{ConfigError, Source, optional};

use crate::template::{Template, TemplateError};

/// The repository's subject and body (`welcome/content/`), built into the consumer.
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
    /// The `From` of the mail: an address, or `Name <address>`.
    pub from_address: String,
    /// The verified SES identity the address belongs to (an address or a domain).
    pub sender_identity: String,
    pub configuration_set: Option<String>,
    pub content: Content,
    /// How long a claim keeps other deliveries of the same user from sending: longer than one
    /// consumer invocation, so that only a claimant that is surely gone is taken over.
    pub claim_lease: Duration,
    /// How long one `SendEmail` may take, retries included: a fifth of the consumer's timeout,
    /// 1 to 6 s. A delivery claims only with twice this left before its deadline, so that the
    /// send and its record both fit: a record cut off after the send is the duplicate to avoid.
    pub send_timeout: Duration,
}

/// The repository's content, checked (a unit test keeps it valid).
pub fn repository_content() -> Result<Content, TemplateError> {
    Ok(Content::Repository {
        subject: Template::parse(REPOSITORY_SUBJECT.trim_end())?,
        body: Template::parse(REPOSITORY_BODY)?,
    })
}

impl WelcomeConfig {
    /// `None` when `WELCOME_SENDER_IDENTITY` is unset: no welcome is sent. `invocation_timeout`
    /// is the consumer's; the claim lease is twice it.
    pub fn from_env(env: &dyn Source, invocation_timeout: Duration) -> Result<Option<Self>, ConfigError> {
        let Some(sender_identity) = optional(env, "WELCOME_SENDER_IDENTITY") else {
            // A half-done configuration is a mistake, not "off": named with what was set.
            for (name, expected) in [
                (
                    "WELCOME_FROM_ADDRESS",
                    "set, since WELCOME_FROM_ADDRESS is: the verified SES identity the welcome is sent from",
                ),
                (
                    "WELCOME_CONFIGURATION_SET",
                    "set, since WELCOME_CONFIGURATION_SET is: the verified SES identity the welcome is sent from",
                ),
                (
                    "WELCOME_SES_TEMPLATE",
                    "set, since WELCOME_SES_TEMPLATE is: the verified SES identity the welcome is sent from",
                ),
            ] {
                if optional(env, name).is_some() {
                    return Err(ConfigError::Missing {
                        name: "WELCOME_SENDER_IDENTITY",
                        expected,
                    });
                }
            }
            return Ok(None);
        };
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
        let Some(address) = from_parts(&from_address) else {
            return Err(ConfigError::Invalid {
                name: "WELCOME_FROM_ADDRESS",
                expected: "an address, or Name <address> whose name is ASCII letters, digits, spaces and . ! # $ % & ' * + - / = ? ^ _ ` { | } ~ (SES needs other names quoted or MIME-encoded)",
            });
        };
        let address = address.to_ascii_lowercase();
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
        let configuration_set = optional(env, "WELCOME_CONFIGURATION_SET");
        if configuration_set
            .as_deref()
            .is_some_and(|name| !is_ses_name(name))
        {
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
        Ok(Some(Self {
            from_address,
            sender_identity,
            configuration_set,
            content,
            claim_lease: invocation_timeout * 2,
            send_timeout: (invocation_timeout / 5).clamp(Duration::from_secs(1), Duration::from_secs(6)),
        }))
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

/// The address of `address` or `Name <address>`.
fn from_parts(from: &str) -> Option<&str> {
    let address = match from.rsplit_once('<') {
        Some((name, rest)) => {
            let address = rest.strip_suffix('>')?;
            // A display name SES takes unquoted: RFC 5322's atext, spaces and dots; anything
            // else (`,` `;` `:` `@` brackets, quotes) would need quoting, and SES would refuse
            // every send for it.
            let name_ok = name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || " .!#$%&'*+-/=?^_`{|}~".contains(c));
            if !name_ok {
                return None;
            }
            address
        }
        None => from,
    };
    is_address(&address.to_ascii_lowercase()).then_some(address)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<Option<WelcomeConfig>, ConfigError> {
        let vars: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let env = move |name: &str| vars.get(name).cloned();
        WelcomeConfig::from_env(&env, Duration::from_secs(30))
    }

    #[test]
    fn the_repository_content_is_valid() {
        repository_content().unwrap();
    }

    #[test]
    fn off_unless_a_sender_identity_is_set() {
        assert_eq!(load(&[]), Ok(None));
        assert_eq!(load(&[("WELCOME_SENDER_IDENTITY", "  ")]), Ok(None));
        // A half-done configuration is a mistake, not "off".
        let err = load(&[("WELCOME_SES_TEMPLATE", "welcome")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("WELCOME_SENDER_IDENTITY") && err.contains("WELCOME_SES_TEMPLATE"),
            "{err}"
        );
    }

    #[test]
    fn an_address_identity_sends_from_itself_a_domain_from_an_address_in_it() {
        let config = load(&[("WELCOME_SENDER_IDENTITY", "hello@example.com")])
            .unwrap()
            .unwrap();
        assert_eq!(config.from_address, "hello@example.com");
        assert_eq!(config.claim_lease, Duration::from_secs(60));
        assert_eq!(config.send_timeout, Duration::from_secs(6));
        assert!(matches!(config.content, Content::Repository { .. }));
        let config = load(&[
            ("WELCOME_SENDER_IDENTITY", "Example.com"),
            ("WELCOME_FROM_ADDRESS", "Example Team <team@example.com>"),
            ("WELCOME_CONFIGURATION_SET", "welcome-mail"),
            ("WELCOME_SES_TEMPLATE", "Welcome_v2"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(config.configuration_set.as_deref(), Some("welcome-mail"));
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
                    ("WELCOME_FROM_ADDRESS", "Zoë <z@example.com>"),
                ],
                "WELCOME_FROM_ADDRESS",
            ),
            (
                vec![
                    ("WELCOME_SENDER_IDENTITY", "example.com"),
                    ("WELCOME_FROM_ADDRESS", "Smith, Team <t@example.com>"),
                ],
                "WELCOME_FROM_ADDRESS",
            ),
            (
                vec![
                    ("WELCOME_SENDER_IDENTITY", "a@example.com"),
                    ("WELCOME_CONFIGURATION_SET", "has space"),
                ],
                "WELCOME_CONFIGURATION_SET",
            ),
            (
                vec![
                    ("WELCOME_SENDER_IDENTITY", "a@example.com"),
                    ("WELCOME_SES_TEMPLATE", "x/../y"),
                ],
                "WELCOME_SES_TEMPLATE",
            ),
        ] {
            let err = load(&pairs).unwrap_err().to_string();
            assert!(err.contains(name), "{pairs:?}: {err}");
        }
    }
}
