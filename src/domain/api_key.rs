//! What an API key may do (its scopes) and the name an operator gives it.

use crate::domain::is_bidi_control;

/// One thing an API key may do; an operation that needs a scope refuses a key without it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Ask `POST /v1/token/introspect` about access tokens.
    Introspect,
    /// Use the admin API.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 2] = [Scope::Introspect, Scope::Admin];

    /// The scope named `name` exactly (`introspect`, `admin`).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scope| scope.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Introspect => "introspect",
            Self::Admin => "admin",
        }
    }
}

/// The most characters an API key's name may have.
const NAME_MAX_CHARS: usize = 100;

/// The name an operator gives an API key, to recognise it in lists: trimmed, 1 to 100
/// characters, no control characters nor bidirectional-text controls (it is printed in a
/// terminal table).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKeyName(String);

impl ApiKeyName {
    /// The name, or a sentence saying why it is refused.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let name = raw.trim();
        if name.is_empty() {
            return Err("the name of an API key must not be empty");
        }
        if name.chars().count() > NAME_MAX_CHARS {
            return Err("the name of an API key has at most 100 characters");
        }
        if name.chars().any(|c| c.is_control() || is_bidi_control(c)) {
            return Err("the name of an API key must not contain control characters");
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_back_from_their_names_and_nothing_else() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.name()), Some(scope));
        }
        for bad in ["", "Admin", " admin", "introspect admin", "read"] {
            assert_eq!(Scope::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn names_are_trimmed_and_refused_when_empty_long_or_with_controls() {
        assert_eq!(
            ApiKeyName::parse("  billing backend ").map(|n| n.as_str().to_owned()),
            Ok("billing backend".to_owned())
        );
        assert!(
            ApiKeyName::parse(&"é".repeat(100)).is_ok(),
            "100 characters"
        );
        let cases = [
            ("", "empty"),
            ("   ", "empty"),
            (&*"a".repeat(101), "at most 100"),
            ("line\nbreak", "control"),
            ("evil\u{202E}txt", "control"),
        ];
        for (raw, why) in cases {
            let refusal = ApiKeyName::parse(raw).expect_err(raw);
            assert!(refusal.contains(why), "{raw:?}: {refusal}");
        }
    }
}
