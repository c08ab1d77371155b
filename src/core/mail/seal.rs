//! Codes waiting in the outbox are sealed, never stored in clear: AES-256-GCM under a key
//! derived from the pepper (HMAC-SHA256(pepper, "codeward outbox code")), with the recipient
//! and template as associated data, so a sealed code opens only for the row it was made for.
//! Stored as `v1.<key id>.<base64url(nonce ‖ ciphertext and tag)>`; an older pepper still
//! opens what it sealed while it is listed in `CODEWARD_PREVIOUS_PEPPERS`.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use crate::config::Pepper;

const VERSION: &str = "v1";
const KEY_LABEL: &[u8] = b"codeward outbox code";
const NONCE_BYTES: usize = 12;

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
pub struct CodeSeal {
    keys: Vec<(String, Aes256Gcm)>,
}

impl std::fmt::Debug for CodeSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeSeal(<secret>)")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    #[error("the sealed code is malformed")]
    Malformed,
    #[error("no configured pepper has key id {0:?}")]
    UnknownKey(String),
    #[error("the sealed code does not open for this row")]
    Forged,
}

impl CodeSeal {
    /// Keys for every pepper, the current one first (`Peppers::all`).
    pub fn new<'a>(peppers: impl IntoIterator<Item = &'a Pepper>) -> Self {
        let keys = peppers
            .into_iter()
            .map(|pepper| {
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(pepper.key())
                    .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
                mac.update(KEY_LABEL);
                let key = mac.finalize().into_bytes();
                let cipher = Aes256Gcm::new_from_slice(&key)
                    .unwrap_or_else(|_| unreachable!("SHA-256 gives the 32 bytes AES-256 takes"));
                (pepper.key_id.clone(), cipher)
            })
            .collect();
        Self { keys }
    }

    /// Seals `code` for the email to `recipient` from `template`; `None` without a pepper.
    pub fn seal(&self, code: &SecretString, recipient: &str, template: &str) -> Option<SealedCode> {
        let (key_id, cipher) = self.keys.first()?;
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        let aad = associated_data(recipient, template);
        let payload = Payload {
            msg: code.expose_secret().as_bytes(),
            aad: &aad,
        };
        let sealed = cipher.encrypt(Nonce::from_slice(&nonce), payload).ok()?;
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        Some(SealedCode(format!(
            "{VERSION}.{key_id}.{}",
            URL_SAFE_NO_PAD.encode(bytes)
        )))
    }

    /// Opens what `seal` made for the same recipient and template.
    pub fn open(
        &self,
        stored: &str,
        recipient: &str,
        template: &str,
    ) -> Result<SecretString, OpenError> {
        let mut parts = stored.splitn(3, '.');
        let (Some(VERSION), Some(key_id), Some(encoded)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(OpenError::Malformed);
        };
        let (_, cipher) = self
            .keys
            .iter()
            .find(|(id, _)| id == key_id)
            .ok_or_else(|| OpenError::UnknownKey(key_id.to_owned()))?;
        let bytes = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| OpenError::Malformed)?;
        if bytes.len() <= NONCE_BYTES {
            return Err(OpenError::Malformed);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_BYTES);
        let aad = associated_data(recipient, template);
        let payload = Payload {
            msg: sealed,
            aad: &aad,
        };
        let code = cipher
            .decrypt(Nonce::from_slice(nonce), payload)
            .map_err(|_| OpenError::Forged)?;
        String::from_utf8(code)
            .map(SecretString::from)
            .map_err(|_| OpenError::Forged)
    }
}

/// Recipient and template, each length-prefixed so that no two pairs give the same bytes.
fn associated_data(recipient: &str, template: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(recipient.len() + template.len() + 16);
    for part in [recipient, template] {
        aad.extend_from_slice(&(part.len() as u64).to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad
}

#[cfg(test)]
mod tests {
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
