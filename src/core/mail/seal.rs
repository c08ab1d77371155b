//! Codes waiting in the outbox are sealed, never stored in clear (`core::seal`, under the label
//! "codeward outbox code"), with the recipient and template as associated data, so a sealed code
//! opens only for the row it was made for.

use secrecy::SecretString;

use crate::config::Pepper;
pub use crate::core::seal::OpenError;
use crate::core::seal::{Seal, associated_data};

const KEY_LABEL: &[u8] = b"codeward outbox code";

/// A sealed code, as the outbox stores it. Holds nothing readable without the pepper.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedCode(String);

impl SealedCode {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The keys that seal and open codes: the current pepper's first.
#[derive(Clone)]
pub struct CodeSeal(Seal);

impl std::fmt::Debug for CodeSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeSeal(<secret>)")
    }
}

impl CodeSeal {
    /// Keys for every pepper, the current one first (`Peppers::all`).
    pub fn new<'a>(peppers: impl IntoIterator<Item = &'a Pepper>) -> Self {
        Self(Seal::new(peppers, KEY_LABEL))
    }

    /// Seals `code` for the email to `recipient` from `template`; `None` without a pepper.
    pub fn seal(&self, code: &SecretString, recipient: &str, template: &str) -> Option<SealedCode> {
        use secrecy::ExposeSecret;
        let aad = associated_data(&[recipient, template]);
        self.0
            .seal(code.expose_secret().as_bytes(), &aad)
            .map(SealedCode)
    }

    /// Opens what `seal` made for the same recipient and template.
    pub fn open(
        &self,
        stored: &str,
        recipient: &str,
        template: &str,
    ) -> Result<SecretString, OpenError> {
        let code = self
            .0
            .open(stored, &associated_data(&[recipient, template]))?;
        String::from_utf8(code)
            .map(SecretString::from)
            .map_err(|_| OpenError::Forged)
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn pepper(spec: &str) -> Pepper {
        Pepper::parse(spec).unwrap()
    }

    const OLD: &str = "2025-old:b2xkLW9sZC1vbGQtb2xkLW9sZC1vbGQtb2xkLW9sZC1vbGQtb2xk";
    const NEW: &str = "2026-new:bmV3LW5ldy1uZXctbmV3LW5ldy1uZXctbmV3LW5ldy1uZXctbmV3";

    #[test]
    fn a_sealed_code_opens_only_for_its_own_row_and_shows_nothing() {
        let seal = CodeSeal::new(&[pepper(NEW)]);
        let code = SecretString::from("042917");
        let sealed = seal.seal(&code, "ada@example.com", "verify_email").unwrap();
        assert!(sealed.as_str().starts_with("v1.2026-new."), "{sealed:?}");
        assert!(!sealed.as_str().contains("042917"));
        let opened = seal
            .open(sealed.as_str(), "ada@example.com", "verify_email")
            .unwrap();
        assert_eq!(opened.expose_secret(), "042917");
        // Another recipient or template, or a changed byte: refused.
        assert_eq!(
            seal.open(sealed.as_str(), "eve@example.com", "verify_email")
                .unwrap_err(),
            OpenError::Forged
        );
        assert_eq!(
            seal.open(sealed.as_str(), "ada@example.com", "reset_password")
                .unwrap_err(),
            OpenError::Forged
        );
        let mut tampered = sealed.as_str().to_owned();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(
            seal.open(&tampered, "ada@example.com", "verify_email")
                .is_err()
        );
        // The same code sealed twice looks different (a fresh nonce each time).
        let again = seal.seal(&code, "ada@example.com", "verify_email").unwrap();
        assert_ne!(sealed, again);
        assert_eq!(format!("{seal:?}"), "CodeSeal(<secret>)");
    }

    #[test]
    fn an_older_pepper_opens_what_it_sealed_until_it_is_removed() {
        let before = CodeSeal::new(&[pepper(OLD)]);
        let sealed = before
            .seal(
                &SecretString::from("111222"),
                "a@example.com",
                "verify_email",
            )
            .unwrap();
        let rotated = CodeSeal::new(&[pepper(NEW), pepper(OLD)]);
        let opened = rotated
            .open(sealed.as_str(), "a@example.com", "verify_email")
            .unwrap();
        assert_eq!(opened.expose_secret(), "111222");
        let new_sealed = rotated
            .seal(
                &SecretString::from("333444"),
                "a@example.com",
                "verify_email",
            )
            .unwrap();
        assert!(new_sealed.as_str().starts_with("v1.2026-new."));
        let removed = CodeSeal::new(&[pepper(NEW)]);
        assert_eq!(
            removed
                .open(sealed.as_str(), "a@example.com", "verify_email")
                .unwrap_err(),
            OpenError::UnknownKey("2025-old".into())
        );
        assert_eq!(
            removed
                .open("042917", "a@example.com", "verify_email")
                .unwrap_err(),
            OpenError::Malformed
        );
    }
}
