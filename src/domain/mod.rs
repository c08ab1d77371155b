//! Parse-don't-validate types: values are checked once, at the edge, and trusted after.

mod code;
mod email;
mod network;
mod password;
mod requester;
mod token;

pub use code::{CODE_LENGTH, OtpCode, Purpose};
pub use email::EmailAddress;
pub use network::ClientNetwork;
pub use password::{NewPassword, PasswordAttempt, PasswordProblem, PendingPassword};
pub use requester::Requester;
pub use token::{AccessToken, RefreshToken, TokenHash};

/// Why a field was refused; becomes one entry of a 422's `errors[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    pub field: &'static str,
    pub code: &'static str,
    pub message: String,
}

/// A device name as the client gave it: trimmed, empty means none, at most 128 characters.
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
    if name.chars().any(char::is_control) {
        return Err(FieldProblem {
            field: "device_name",
            code: "invalid",
            message: "The device name contains control characters.".into(),
        });
    }
    Ok(Some(name.to_owned()))
}

/// A locale tag like `en`, `es-MX`: letters, digits and `-`, at most 35 characters; `en` when
/// absent.
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
            message: "The locale must be a language tag such as `en` or `es-MX`.".into(),
        })
    }
}
