//! The welcome email's subject and body: text with placeholders, checked when it is read so
//! that a greeting can never render as "Hello ," or with a raw `{placeholder}` left in it.
//!
//! - `{given_name}` is the user's attribute; `{given_name|name|username}` the first of them
//!   that the user has.
//! - `[ ... ]` is an optional part: dropped whole when a placeholder in it has nothing, so
//!   `Hello[ {given_name}],` greets a user without a name with `Hello,`.
//! - A placeholder outside `[ ]` must be one that always has a value: its chain ends with
//!   `username`, which every user has. Anything else is refused when the text is read.
//! - `{{`, `}}`, `[[` and `]]` are the characters themselves.

use std::collections::BTreeMap;

/// The attributes a placeholder may name, besides `username`. Standard attributes only: a
/// welcome has no business with custom ones.
pub const ATTRIBUTES: [&str; 7] = [
    "given_name",
    "family_name",
    "middle_name",
    "name",
    "nickname",
    "preferred_username",
    "email",
];

/// The one value every user has.
pub const ALWAYS_PRESENT: &str = "username";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("line {line}: unknown placeholder {{{name}}} (known: username, {})", ATTRIBUTES.join(", "))]
    UnknownPlaceholder { line: usize, name: String },
    #[error("line {line}: an empty placeholder {{}}")]
    EmptyPlaceholder { line: usize },
    #[error("line {line}: a {{ without its }} (write {{{{ for the character)")]
    UnclosedPlaceholder { line: usize },
    #[error("line {line}: a [ without its ] (write [[ for the character)")]
    UnclosedOptional { line: usize },
    #[error("line {line}: a {found} that opens nothing (write {found}{found} for the character)")]
    Unopened { line: usize, found: char },
    #[error("line {line}: [ ] inside [ ]")]
    NestedOptional { line: usize },
    #[error("line {line}: [ ] without a placeholder in it is never dropped: write the text alone")]
    OptionalWithoutPlaceholder { line: usize },
    #[error(
        "line {line}: {{{name}}} can have no value for a user and is outside [ ]: put it in [ ] or end it with |username"
    )]
    MayBeEmpty { line: usize, name: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    /// The first of these names with a value.
    Field(Vec<String>),
    /// Rendered only if every field in it has a value.
    Optional(Vec<Part>),
}

/// A checked template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// What a template renders from: the user's username and attributes.
#[derive(Debug, Clone, Copy)]
pub struct Values<'a> {
    pub username: &'a str,
    pub attributes: &'a BTreeMap<String, String>,
}

impl Values<'_> {
    /// The value of `name`, cleaned for a mail: control characters (a newline would end a
    /// subject header) become spaces, runs of spaces one, the ends trimmed; `None` if nothing
    /// is left.
    pub fn value(&self, name: &str) -> Option<String> {
        let raw = if name == ALWAYS_PRESENT {
            self.username
        } else {
            self.attributes.get(name).map(String::as_str)?
        };
        let cleaned = raw
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect::<String>()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        (!cleaned.is_empty()).then_some(cleaned)
    }

    fn first(&self, names: &[String]) -> Option<String> {
        names.iter().find_map(|name| self.value(name))
    }
}

impl Template {
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        // The optional part being read, and the line it opened on.
        let mut optional: Option<(Vec<Part>, usize)> = None;
        let mut text_run = String::new();
        let mut line = 1;
        let mut chars = text.chars().peekable();
        let flush = |run: &mut String, into: &mut Vec<Part>| {
            if !run.is_empty() {
                into.push(Part::Text(std::mem::take(run)));
            }
        };
        while let Some(c) = chars.next() {
            match c {
                '{' | '}' | '[' | ']' if chars.peek() == Some(&c) => {
                    chars.next();
                    text_run.push(c);
                }
                '{' => {
                    let mut inside = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some('\n') | None => return Err(TemplateError::UnclosedPlaceholder { line }),
                            Some(c) => inside.push(c),
                        }
                    }
                    let names: Vec<String> = inside.split('|').map(|n| n.trim().to_owned()).collect();
                    if names.iter().any(String::is_empty) {
                        return Err(TemplateError::EmptyPlaceholder { line });
                    }
                    if let Some(unknown) = names
                        .iter()
                        .find(|n| n.as_str() != ALWAYS_PRESENT && !ATTRIBUTES.contains(&n.as_str()))
                    {
                        return Err(TemplateError::UnknownPlaceholder {
                            line,
                            name: unknown.clone(),
                        });
                    }
                    match &mut optional {
                        Some((inner, _)) => {
                            flush(&mut text_run, inner);
                            inner.push(Part::Field(names));
                        }
                        None => {
                            if !names.iter().any(|n| n == ALWAYS_PRESENT) {
                                return Err(TemplateError::MayBeEmpty { line, name: inside });
                            }
                            flush(&mut text_run, &mut parts);
                            parts.push(Part::Field(names));
                        }
                    }
                }
                '[' => {
                    if optional.is_some() {
                        return Err(TemplateError::NestedOptional { line });
                    }
                    flush(&mut text_run, &mut parts);
                    optional = Some((Vec::new(), line));
                }
                ']' => {
                    let Some((mut inner, _)) = optional.take() else {
                        return Err(TemplateError::Unopened { line, found: ']' });
                    };
                    flush(&mut text_run, &mut inner);
                    if !inner.iter().any(|p| matches!(p, Part::Field(_))) {
                        return Err(TemplateError::OptionalWithoutPlaceholder { line });
                    }
                    parts.push(Part::Optional(inner));
                }
                '}' => return Err(TemplateError::Unopened { line, found: '}' }),
                c => {
                    if c == '\n' {
                        line += 1;
                    }
                    text_run.push(c);
                }
            }
        }
        if let Some((_, opened)) = optional {
            return Err(TemplateError::UnclosedOptional { line: opened });
        }
        flush(&mut text_run, &mut parts);
        Ok(Self { parts })
    }

    /// The text for one user. Never contains a placeholder: a field outside `[ ]` always has
    /// `username` to fall back on.
    pub fn render(&self, values: &Values<'_>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Field(names) => out.push_str(&values.first(names).unwrap_or_default()),
                Part::Optional(inner) => {
                    let rendered: Option<Vec<String>> = inner
                        .iter()
                        .map(|part| match part {
                            Part::Text(text) => Some(text.clone()),
                            Part::Field(names) => values.first(names),
                            Part::Optional(_) => None,
                        })
                        .collect();
                    if let Some(pieces) = rendered {
                        out.push_str(&pieces.concat());
                    }
                }
            }
        }
        out
    }

    /// Every attribute any placeholder names (for an SES template's data).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        fn walk<'a>(parts: &'a [Part], out: &mut Vec<&'a str>) {
            for part in parts {
                match part {
                    Part::Text(_) => {}
                    Part::Field(names) => out.extend(names.iter().map(String::as_str)),
                    Part::Optional(inner) => walk(inner, out),
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.parts, &mut out);
        out.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::attributes;

    fn render(template: &str, username: &str, pairs: &[(&str, &str)]) -> String {
        let attributes = attributes(pairs);
        Template::parse(template).unwrap().render(&Values {
            username,
            attributes: &attributes,
        })
    }

    #[test]
    fn a_user_without_a_name_is_greeted_without_one() {
        let greeting = "Hello[ {given_name}],";
        assert_eq!(render(greeting, "u1", &[("given_name", "Ýrr")]), "Hello Ýrr,");
        assert_eq!(render(greeting, "u1", &[]), "Hello,");
        // Blank is absent too.
        assert_eq!(render(greeting, "u1", &[("given_name", "  \t ")]), "Hello,");
    }

    #[test]
    fn a_chain_takes_the_first_value_the_user_has() {
        let t = "Hi {given_name|name|username}!";
        assert_eq!(
            render(t, "u1", &[("name", "Zoë Ó"), ("given_name", "Zoë")]),
            "Hi Zoë!"
        );
        assert_eq!(render(t, "u1", &[("name", "Zoë Ó")]), "Hi Zoë Ó!");
        assert_eq!(render(t, "u1", &[]), "Hi u1!");
    }

    #[test]
    fn unicode_and_escapes_render_as_written() {
        let t = "{{literal}} [[x]] — 你好[ {family_name}], 👋 {username}";
        assert_eq!(
            render(t, "ünïcode", &[("family_name", "山田")]),
            "{literal} [x] — 你好 山田, 👋 ünïcode"
        );
    }

    #[test]
    fn a_value_cannot_break_a_header_or_smuggle_a_placeholder() {
        let t = "Welcome[, {given_name}]";
        assert_eq!(
            render(t, "u", &[("given_name", "Ann\r\nBcc: x@example.com")]),
            "Welcome, Ann Bcc: x@example.com"
        );
        // A value is never read as a template.
        assert_eq!(render(t, "u", &[("given_name", "{email}")]), "Welcome, {email}");
    }

    #[test]
    fn a_template_that_could_render_badly_is_refused_with_its_line() {
        for (text, expected) in [
            (
                "Hello {given_name},",
                TemplateError::MayBeEmpty {
                    line: 1,
                    name: "given_name".into(),
                },
            ),
            (
                "ok\n{phone_number|username}",
                TemplateError::UnknownPlaceholder {
                    line: 2,
                    name: "phone_number".into(),
                },
            ),
            (
                "Hello {given_name",
                TemplateError::UnclosedPlaceholder { line: 1 },
            ),
            (
                "Hello [ {given_name}",
                TemplateError::UnclosedOptional { line: 1 },
            ),
            ("Hello }", TemplateError::Unopened { line: 1, found: '}' }),
            ("Hello ]", TemplateError::Unopened { line: 1, found: ']' }),
            ("[a [{name}]]", TemplateError::NestedOptional { line: 1 }),
            (
                "[ just text ]",
                TemplateError::OptionalWithoutPlaceholder { line: 1 },
            ),
            ("{ | username}", TemplateError::EmptyPlaceholder { line: 1 }),
            (
                "{custom:plan|username}",
                TemplateError::UnknownPlaceholder {
                    line: 1,
                    name: "custom:plan".into(),
                },
            ),
        ] {
            assert_eq!(Template::parse(text), Err(expected), "{text}");
        }
    }

    #[test]
    fn names_lists_every_placeholder() {
        let t = Template::parse("[{given_name}] {name|username}").unwrap();
        assert_eq!(t.names().collect::<Vec<_>>(), ["given_name", "name", "username"]);
    }
}
