//! Sealing secrets the database must keep but never hold in clear (codes waiting in the outbox,
//! private signing keys): AES-256-GCM under a key derived from the pepper,
//! HMAC-SHA256(pepper, label), so each use has a key of its own, with associated data that ties
//! a sealed value to the row it was made for. Stored as
//! `v1.<pepper key id>.<base64url(nonce ‖ ciphertext and tag)>`; an older pepper still opens
//! what it sealed while it is listed in `CODEWARD_PREVIOUS_PEPPERS`.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::config::Pepper;

const VERSION: &str = "v1";
const NONCE_BYTES: usize = 12;

/// The keys one kind of secret is sealed with: the current pepper's first.
#[derive(Clone)]
pub struct Seal {
    keys: Vec<(String, Aes256Gcm)>,
}

impl std::fmt::Debug for Seal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Seal(<secret>)")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    #[error("the sealed value is malformed")]
    Malformed,
    #[error("no configured pepper has key id {0:?}")]
    UnknownKey(String),
    #[error("the sealed value does not open for this row")]
    Forged,
}

impl Seal {
    /// Keys for every pepper, the current one first (`Peppers::all`), for secrets of the kind
    /// `label` names (each label gets keys of its own).
    pub fn new<'a>(peppers: impl IntoIterator<Item = &'a Pepper>, label: &[u8]) -> Self {
        let keys = peppers
            .into_iter()
            .map(|pepper| {
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(pepper.key())
                    .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
                mac.update(label);
                let key = mac.finalize().into_bytes();
                let cipher = Aes256Gcm::new_from_slice(&key)
                    .unwrap_or_else(|_| unreachable!("SHA-256 gives the 32 bytes AES-256 takes"));
                (pepper.key_id.clone(), cipher)
            })
            .collect();
        Self { keys }
    }

    /// The key id of the pepper `seal` uses.
    pub fn current_key_id(&self) -> Option<&str> {
        self.keys.first().map(|(id, _)| id.as_str())
    }

    /// Seals `secret` for the row `aad` describes; `None` without a pepper.
    pub fn seal(&self, secret: &[u8], aad: &[u8]) -> Option<String> {
        let (key_id, cipher) = self.keys.first()?;
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        let payload = Payload { msg: secret, aad };
        let sealed = cipher.encrypt(Nonce::from_slice(&nonce), payload).ok()?;
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        Some(format!(
            "{VERSION}.{key_id}.{}",
            URL_SAFE_NO_PAD.encode(bytes)
        ))
    }

    /// Opens what `seal` made with the same associated data.
    pub fn open(&self, stored: &str, aad: &[u8]) -> Result<Vec<u8>, OpenError> {
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
        let payload = Payload { msg: sealed, aad };
        cipher
            .decrypt(Nonce::from_slice(nonce), payload)
            .map_err(|_| OpenError::Forged)
    }
}

/// Associated data from several parts, each length-prefixed so that no two lists of parts give
/// the same bytes.
pub fn associated_data(parts: &[&str]) -> Vec<u8> {
    let mut aad = Vec::new();
    for part in parts {
        aad.extend_from_slice(&(part.len() as u64).to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "2025-old:b2xkLW9sZC1vbGQtb2xkLW9sZC1vbGQtb2xkLW9sZC1vbGQtb2xk";
    const NEW: &str = "2026-new:bmV3LW5ldy1uZXctbmV3LW5ldy1uZXctbmV3LW5ldy1uZXctbmV3";

    fn pepper(spec: &str) -> Pepper {
        Pepper::parse(spec).unwrap()
    }

    #[test]
    fn each_label_has_keys_of_its_own() {
        let codes = Seal::new(&[pepper(NEW)], b"one");
        let keys = Seal::new(&[pepper(NEW)], b"two");
        let sealed = codes.seal(b"secret", b"row").unwrap();
        assert_eq!(codes.open(&sealed, b"row").unwrap(), b"secret");
        assert_eq!(keys.open(&sealed, b"row").unwrap_err(), OpenError::Forged);
        assert_eq!(codes.current_key_id(), Some("2026-new"));
        assert_eq!(format!("{codes:?}"), "Seal(<secret>)");
    }

    #[test]
    fn an_older_pepper_opens_what_it_sealed_until_it_is_removed() {
        let before = Seal::new(&[pepper(OLD)], b"label");
        let sealed = before.seal(b"111222", b"row").unwrap();
        let rotated = Seal::new(&[pepper(NEW), pepper(OLD)], b"label");
        assert_eq!(rotated.open(&sealed, b"row").unwrap(), b"111222");
        assert!(
            rotated
                .seal(b"x", b"row")
                .unwrap()
                .starts_with("v1.2026-new.")
        );
        let removed = Seal::new(&[pepper(NEW)], b"label");
        assert_eq!(
            removed.open(&sealed, b"row").unwrap_err(),
            OpenError::UnknownKey("2025-old".into())
        );
        assert_eq!(
            removed.open("042917", b"row").unwrap_err(),
            OpenError::Malformed
        );
    }

    #[test]
    fn associated_data_parts_cannot_be_shifted_between_each_other() {
        assert_ne!(associated_data(&["ab", "c"]), associated_data(&["a", "bc"]));
    }
}
