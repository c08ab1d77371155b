//! Passwords: the policy a new one must meet, and the length limit every one meets before any
//! hashing. Both types keep the text secret.

use secrecy::{ExposeSecret, SecretString};
use zxcvbn::Score;

use super::{EmailAddress, FieldProblem};

pub const MIN_CHARS: usize = 8;
pub const MAX_CHARS: usize = 1024;
/// zxcvbn's "safely unguessable" (about 10^10 guesses): an eight-digit number or a common
/// password with a digit appended does not pass.
const MIN_SCORE: Score = Score::Three;

/// Why a new password was refused.
pub type PasswordProblem = FieldProblem;

/// A password that met the policy: 8..=1024 code points (any Unicode, no composition rules,
/// no truncation) and not easily guessed, also considering the email address.
pub struct NewPassword(SecretString);

impl NewPassword {
    /// `field` names the request field (`password`, `new_password`) in the problem.
    pub fn parse(
        raw: &str,
        email: Option<&EmailAddress>,
        field: &'static str,
    ) -> Result<Self, PasswordProblem> {
        let problem = |code, message: String| FieldProblem {
            field,
            code,
            message,
        };
        check_shape(raw, field)?;
        let mut user_inputs: Vec<&str> = vec!["codeward"];
        if let Some(email) = email {
            user_inputs.push(email.as_str());
            user_inputs.extend(email.as_str().split(['@', '.', '+', '_', '-']));
        }
        let estimate = zxcvbn::zxcvbn(raw, &user_inputs);
        if estimate.score() < MIN_SCORE {
            let mut reasons: Vec<String> = Vec::new();
            if let Some(feedback) = estimate.feedback() {
                reasons.extend(feedback.warning().map(|w| w.to_string()));
                reasons.extend(feedback.suggestions().iter().map(ToString::to_string));
            }
            let reason = if reasons.is_empty() {
                "It is too easy to guess.".to_owned()
            } else {
                reasons.join(" ")
            };
            return Err(problem(
                "too_weak",
                format!("The password is too easy to guess. {reason}"),
            ));
        }
        Ok(Self(SecretString::from(raw)))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

/// A new password whose length was checked at the edge but whose strength is judged later
/// (`judge`, which the server runs off its async workers): `verify_signup` and
/// `reset_password` judge it only once the code proved right, so a wrong guess does not pay
/// for the strength estimate (a third of its CPU when it came first).
#[derive(Clone)]
pub struct PendingPassword(SecretString);

impl PendingPassword {
    pub fn parse(raw: &str, field: &'static str) -> Result<Self, PasswordProblem> {
        check_shape(raw, field)?;
        Ok(Self(SecretString::from(raw)))
    }

    /// The policy's verdict, exactly as `NewPassword::parse` gives it. CPU-bound (zxcvbn):
    /// the server calls it through `core::passwords::Passwords::judge`.
    pub fn judge(
        &self,
        email: Option<&EmailAddress>,
        field: &'static str,
    ) -> Result<NewPassword, PasswordProblem> {
        NewPassword::parse(self.0.expose_secret(), email, field)
    }
}

/// The length limits of a new password, checked before anything else.
fn check_shape(raw: &str, field: &'static str) -> Result<(), PasswordProblem> {
    check_length(raw, field)?;
    if raw.chars().count() < MIN_CHARS {
        return Err(FieldProblem {
            field,
            code: "too_short",
            message: format!("The password needs at least {MIN_CHARS} characters."),
        });
    }
    Ok(())
}

/// A password offered to sign in: only the length limit applies (before any hashing).
pub struct PasswordAttempt(SecretString);

impl PasswordAttempt {
    pub fn parse(raw: &str, field: &'static str) -> Result<Self, PasswordProblem> {
        check_length(raw, field)?;
        Ok(Self(SecretString::from(raw)))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

fn check_length(raw: &str, field: &'static str) -> Result<(), PasswordProblem> {
    // Bytes bound the work of counting; 4 bytes per code point at most.
    if raw.len() > MAX_CHARS * 4 || raw.chars().count() > MAX_CHARS {
        return Err(FieldProblem {
            field,
            code: "too_long",
            message: format!("The password has more than {MAX_CHARS} characters."),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_short_long_and_guessable_passwords_are_refused_with_reasons() {
        let email = EmailAddress::parse("ada.lovelace@example.com").unwrap();
        let long = "x".repeat(1025);
        let cases = [
            ("", "too_short"),
            ("Ab1!xyz", "too_short"),
            ("password", "too_weak"),
            ("password1", "too_weak"),
            ("12345678", "too_weak"),
            ("73920184", "too_weak"),
            ("qwertyuiop", "too_weak"),
            ("adalovelace", "too_weak"),
            ("ada.lovelace@example.com", "too_weak"),
            (long.as_str(), "too_long"),
        ];
        for (raw, code) in cases {
            let problem = NewPassword::parse(raw, Some(&email), "password")
                .err()
                .unwrap_or_else(|| panic!("{raw:?} was accepted"));
            assert_eq!(problem.code, code, "{raw:?}: {}", problem.message);
            assert!(!problem.message.is_empty());
        }
    }

    #[test]
    fn strong_passwords_of_any_script_pass_at_both_length_limits() {
        let exactly_max: String = "correct horse battery staple "
            .repeat(40)
            .chars()
            .take(1024)
            .collect();
        for raw in [
            "correct horse battery staple",
            "Tr0ub4dor&3-orbit-lantern",
            "пароль-надёжный-длинный-кот",
            "🦀🔐 crab guards the vault 🌙",
            exactly_max.as_str(),
        ] {
            assert!(
                NewPassword::parse(raw, None, "password").is_ok(),
                "{raw:?} refused"
            );
        }
    }

    #[test]
    fn length_counts_code_points_not_bytes() {
        // 1024 four-byte characters are 4096 bytes but exactly the limit.
        let emoji: String = "🦀🔐🌙🍀".repeat(256);
        assert_eq!(emoji.chars().count(), 1024);
        assert!(PasswordAttempt::parse(&emoji, "password").is_ok());
        let over = format!("{emoji}a");
        assert_eq!(
            PasswordAttempt::parse(&over, "password")
                .err()
                .unwrap()
                .code,
            "too_long"
        );
    }
}
