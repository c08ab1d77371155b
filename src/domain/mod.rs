//! Parse-don't-validate types: values are checked once, at the edge, and trusted after.

mod api_key;
mod code;
mod email;
mod network;
mod password;
mod requester;
mod token;

pub use api_key::{ApiKeyName, Scope};
pub use code::{CODE_LENGTH, OtpCode, Purpose};
pub use email::EmailAddress;
pub use network::ClientNetwork;
pub use password::{NewPassword, PasswordAttempt, PasswordProblem, PendingPassword};
pub use requester::Requester;
pub use token::{AccessToken, ApiKey, AuthMethod, RefreshToken, TokenHash};

/// Why a field was refused; becomes one entry of a 422's `errors[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    pub field: &'static str,
    pub code: &'static str,
    pub message: String,
}

/// The bidirectional-text controls: embeddings and overrides (U+202A–U+202E), isolates
/// (U+2066–U+2069) and marks (U+200E, U+200F, U+061C). They are format characters, not
/// `char::is_control`, yet they reorder what a person reads: `Ada\u{202E}gpj.exe` shows as
/// `Adaexe.jpg`.
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
    )
}

/// A device name as the client gave it: trimmed, empty means none, at most 128 characters, no
/// control characters nor bidirectional-text controls (it is shown in session lists).
pub fn parse_device_name(raw: Option<&str>) -> Result<Option<String>, FieldProblem> {
    let Some(name) = raw.map(str::trim).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    if name.chars().count() > 128 {
        return Err(FieldProblem {
            field: "device_name",
            code: "too_long",
            message: "The device name has more than 128 characters.".into(),
        });
    }
    if name.chars().any(|c| c.is_control() || is_bidi_control(c)) {
        return Err(FieldProblem {
            field: "device_name",
            code: "invalid",
            message: "The device name contains control or bidirectional-text characters.".into(),
        });
    }
    Ok(Some(name.to_owned()))
}

/// A locale tag like `en`, `es-MX`: ASCII letters, digits and `-` (so no control or
/// bidirectional-text character), at most 35 characters; `en` when absent.
pub fn parse_locale(raw: Option<&str>) -> Result<String, FieldProblem> {
    let Some(tag) = raw.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok("en".to_owned());
    };
    let valid = tag.len() <= 35
        && tag.split('-').all(|part| {
            !part.is_empty() && part.len() <= 8 && part.bytes().all(|b| b.is_ascii_alphanumeric())
        });
    if valid {
        Ok(tag.to_owned())
    } else {
        Err(FieldProblem {
            field: "locale",
            code: "invalid",
            message: "The locale must be a language tag such as en or es-MX.".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BIDI_CONTROLS: [char; 12] = [
        '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}',
        '\u{2068}', '\u{2069}', '\u{200E}', '\u{200F}', '\u{061C}',
    ];

    #[test]
    fn device_names_and_locales_refuse_every_bidirectional_control() {
        for control in BIDI_CONTROLS {
            assert!(is_bidi_control(control), "{control:?}");
            let device = parse_device_name(Some(&format!("phone{control}x")));
            assert_eq!(device.map_err(|p| p.code), Err("invalid"), "{control:?}");
            let locale = parse_locale(Some(&format!("es{control}")));
            assert_eq!(locale.map_err(|p| p.field), Err("locale"), "{control:?}");
        }
    }

    #[test]
    fn other_format_characters_stay_allowed_in_device_names() {
        // A zero-width joiner holds emoji sequences together; a non-breaking space is text.
        for name in ["👩\u{200D}💻 laptop", "Ada\u{00A0}phone", "Zoë's iPad"] {
            assert_eq!(parse_device_name(Some(name)), Ok(Some(name.to_owned())));
        }
        assert!(!is_bidi_control('\u{200D}'));
    }
}
