//! Codes and what they are for.

use std::fmt;

/// What a code proves. Stored as its name; one engine serves every purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Proves the address at sign-up.
    VerifyEmail,
    /// Lets the holder of the mailbox choose a new password.
    ResetPassword,
    /// Signs in without a password (and verifies an unverified address).
    Login,
    /// Proves the new address of an email change; sent to that address.
    ChangeEmail,
    /// Renews a session's authentication before a sensitive operation.
    Reauthenticate,
}

impl Purpose {
    pub const ALL: [Purpose; 5] = [
        Self::VerifyEmail,
        Self::ResetPassword,
        Self::Login,
        Self::ChangeEmail,
        Self::Reauthenticate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
            Self::Login => "login",
            Self::ChangeEmail => "change_email",
            Self::Reauthenticate => "reauthenticate",
        }
    }
}

/// Six ASCII digits, exactly. Never printed: `Debug` shows `<secret>`.
#[derive(Clone, PartialEq, Eq)]
pub struct OtpCode(String);

pub const CODE_LENGTH: usize = 6;

impl OtpCode {
    /// `None` for anything but six digits; no trimming, so `" 123456"` is refused too.
    pub fn parse(raw: &str) -> Option<Self> {
        (raw.len() == CODE_LENGTH && raw.bytes().all(|b| b.is_ascii_digit()))
            .then(|| Self(raw.to_owned()))
    }

    /// A fresh code from the operating system's CSPRNG: uniform over 000000..=999999.
    pub fn generate() -> Self {
        use rand::{Rng, TryRngCore, rngs::OsRng};
        // `random_range` rejects out-of-range draws, so no digit is more likely than another.
        let n: u32 = OsRng.unwrap_err().random_range(0..1_000_000);
        Self(format!("{n:06}"))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for OtpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_six_digits_parse() {
        for good in ["000000", "123456", "999999"] {
            assert!(OtpCode::parse(good).is_some(), "{good}");
        }
        for bad in [
            "",
            "12345",
            "1234567",
            "12345a",
            "123 456",
            " 123456",
            "１２３４５６",
            "-12345",
        ] {
            assert!(OtpCode::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn generated_codes_are_six_digits_and_never_print() {
        let code = OtpCode::generate();
        assert!(OtpCode::parse(code.expose()).is_some());
        assert_eq!(format!("{code:?}"), "<secret>");
    }
}
