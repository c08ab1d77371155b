//! A normalized email address.

use std::fmt;

use super::FieldProblem;

/// Trimmed, lowercased, at most 254 characters, syntactically an address.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(raw: &str) -> Result<Self, FieldProblem> {
        let problem = |code, message: &str| FieldProblem {
            field: "email",
            code,
            message: message.to_owned(),
        };
        // Length first, before any other work on a possibly huge input.
        if raw.len() > 1024 || raw.trim().chars().count() > 254 {
            return Err(problem(
                "too_long",
                "The email address has more than 254 characters.",
            ));
        }
        let normalized = raw.trim().to_lowercase();
        if normalized.is_empty() {
            return Err(problem("required", "The email address is empty."));
        }
        let well_formed = normalized.parse::<lettre::Address>().is_ok_and(|address| {
            // A mailbox the world can reach: the domain has a dot and no empty label.
            let domain = address.domain();
            domain.contains('.') && domain.split('.').all(|label| !label.is_empty())
        });
        if !well_formed {
            return Err(problem("invalid", "This is not an email address."));
        }
        Ok(Self(normalized))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EmailAddress({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_trimmed_and_lowercased() {
        assert_eq!(
            EmailAddress::parse("  Ada@Example.COM ").unwrap().as_str(),
            "ada@example.com"
        );
    }

    #[test]
    fn bad_addresses_are_refused_with_a_reason() {
        let long = format!("{}@example.com", "a".repeat(250));
        let cases = [
            ("", "required"),
            ("   ", "required"),
            ("ada", "invalid"),
            ("ada@", "invalid"),
            ("@example.com", "invalid"),
            ("ada@example", "invalid"),
            ("ada@@example.com", "invalid"),
            ("ada @example.com", "invalid"),
            ("ada@exa..mple.com", "invalid"),
            (long.as_str(), "too_long"),
        ];
        for (raw, code) in cases {
            let problem = EmailAddress::parse(raw).expect_err(raw);
            assert_eq!(problem.code, code, "{raw:?}");
            assert_eq!(problem.field, "email");
        }
    }
}
