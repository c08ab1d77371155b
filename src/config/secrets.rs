//! The secrets among the settings, typed so that `Debug` and `check-config` never print them:
//! the peppers, and the URLs that may carry a password.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretBox, SecretString};

/// Key id of the built-in development pepper; production refuses it.
pub const DEV_PEPPER_KEY_ID: &str = "dev";
const DEV_PEPPER_BYTES: &[u8; 32] = b"codeward-insecure-dev-pepper-32b";

/// The HMAC keys: the current one, which hashes everything new, then the retired ones, which
/// still verify what they hashed. Never empty.
#[derive(Clone, Debug)]
pub struct Peppers {
    keys: Vec<Pepper>,
}

impl Default for Peppers {
    fn default() -> Self {
        Self {
            keys: vec![Pepper::development()],
        }
    }
}

impl Peppers {
    /// The keys in order, current first; `None` when there are none.
    pub(super) fn new(keys: Vec<Pepper>) -> Option<Self> {
        (!keys.is_empty()).then_some(Self { keys })
    }

    pub fn current(&self) -> &Pepper {
        &self.keys[0]
    }

    /// The current key first, then the retired ones.
    pub fn all(&self) -> impl Iterator<Item = &Pepper> {
        self.keys.iter()
    }

    pub fn retired(&self) -> impl Iterator<Item = &Pepper> {
        self.keys.iter().skip(1)
    }
}

/// A named HMAC key. The key bytes never print: `Debug` shows only the key id.
#[derive(Clone)]
pub struct Pepper {
    pub key_id: String,
    key: Arc<SecretBox<[u8]>>,
}

impl Pepper {
    /// Parses `<key id>:<base64 of ≥32 bytes>`.
    pub fn parse(value: &str) -> Result<Self, String> {
        let (key_id, encoded) = value
            .trim()
            .split_once(':')
            .ok_or("expected `<key id>:<base64 key>`")?;
        let valid_id = !key_id.is_empty()
            && key_id.len() <= 32
            && key_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid_id {
            return Err("the key id must be 1 to 32 characters of A-Z, a-z, 0-9, - or _".into());
        }
        let key = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(encoded))
            .map_err(|_| "the key is not valid base64")?;
        if key.len() < 32 {
            return Err(format!(
                "the key is {} bytes; at least 32 are required",
                key.len()
            ));
        }
        Ok(Self::new(key_id, key))
    }

    fn new(key_id: &str, key: Vec<u8>) -> Self {
        Self {
            key_id: key_id.to_owned(),
            key: Arc::new(SecretBox::new(key.into_boxed_slice())),
        }
    }

    pub(super) fn development() -> Self {
        Self::new(DEV_PEPPER_KEY_ID, DEV_PEPPER_BYTES.to_vec())
    }

    /// Whether this is the built-in development pepper (its bytes or its key id): a key anyone
    /// can read in this repository.
    pub(super) fn is_development(&self) -> bool {
        self.key.expose_secret() == DEV_PEPPER_BYTES || self.key_id == DEV_PEPPER_KEY_ID
    }

    /// Why production must not use this key, if it must not.
    pub(super) fn weakness(&self) -> Option<&'static str> {
        let key = self.key.expose_secret();
        let mut distinct = [false; 256];
        key.iter().for_each(|&b| distinct[usize::from(b)] = true);
        if self.is_development() {
            Some("is the insecure development pepper")
        } else if distinct.iter().filter(|&&seen| seen).count() < 16 {
            Some("has too little variety to be random: generate it with `openssl rand -base64 32`")
        } else {
            None
        }
    }

    pub fn key(&self) -> &[u8] {
        self.key.expose_secret()
    }

    pub fn masked(&self) -> String {
        format!("{}:<secret>", self.key_id)
    }
}

impl fmt::Debug for Pepper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// The key that signs webhooks (`CODEWARD_WEBHOOK_SECRET`): `whsec_` + base64 of 24 to 64
/// random bytes, as the Standard Webhooks specification has it. Only the decoded bytes are
/// kept; they never print.
#[derive(Clone)]
pub struct WebhookSecret(Arc<SecretBox<[u8]>>);

impl WebhookSecret {
    /// Parses `whsec_<base64>`. The reason of a refusal never quotes the value.
    pub fn parse(value: &str) -> Result<Self, String> {
        let encoded = value
            .trim()
            .strip_prefix("whsec_")
            .ok_or("must start with `whsec_` (Standard Webhooks secret format)")?;
        let key = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| "the part after `whsec_` is not valid base64")?;
        if !(24..=64).contains(&key.len()) {
            return Err(format!(
                "the key is {} bytes; 24 to 64 are required, e.g. \
                 `echo \"whsec_$(openssl rand -base64 32)\"`",
                key.len()
            ));
        }
        Ok(Self(Arc::new(SecretBox::new(key.into_boxed_slice()))))
    }

    pub fn key(&self) -> &[u8] {
        self.0.expose_secret()
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

/// A database URL whose password, if any, never prints.
#[derive(Clone)]
pub struct DatabaseUrl(SecretString);

/// Wraps a secret-bearing value as it is; clap echoes a refused value in its error, so the
/// checks that could refuse it run in `Config::validate`, whose messages never quote it.
pub(super) fn wrap_secret<T: From<SecretString>>(
    value: &str,
) -> Result<T, std::convert::Infallible> {
    Ok(T::from(SecretString::from(value)))
}

impl From<SecretString> for DatabaseUrl {
    fn from(value: SecretString) -> Self {
        Self(value)
    }
}

impl DatabaseUrl {
    pub(super) fn check(&self) -> Result<(), String> {
        let url = url::Url::parse(self.expose()).map_err(|e| format!("is not a URL ({e})"))?;
        match url.scheme() {
            "sqlite" | "postgres" | "postgresql" | "mysql" | "mariadb" => Ok(()),
            other => Err(format!(
                "has the unsupported scheme {other:?}: use sqlite://, postgres:// or mysql://"
            )),
        }
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    pub fn masked(&self) -> String {
        mask_url_password(self.expose())
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// The SMTP relay URL; carries a password, so it never prints.
#[derive(Clone)]
pub struct SmtpUrl(SecretString);

impl From<SecretString> for SmtpUrl {
    fn from(value: SecretString) -> Self {
        Self(value)
    }
}

impl SmtpUrl {
    pub(super) fn check(&self) -> Result<(), String> {
        let url = url::Url::parse(self.expose()).map_err(|e| format!("is not a URL ({e})"))?;
        if !matches!(url.scheme(), "smtp" | "smtps") {
            return Err("must start with smtp:// or smtps://".into());
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("needs a host".into());
        }
        Ok(())
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    pub fn masked(&self) -> String {
        mask_url_password(self.expose())
    }
}

impl fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

pub(super) fn mask_url_password(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) if url.password().is_some() => {
            // Cannot fail: a URL that has a password can hold one. The placeholder is swapped
            // afterwards because `Url` would percent-encode `<` and `>`.
            let _ = url.set_password(Some("SECRET"));
            url.to_string().replacen(":SECRET@", ":<secret>@", 1)
        }
        Ok(url) => url.to_string(),
        Err(_) => "<secret>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pepper_prints_only_its_key_id() {
        let pepper = Pepper::parse("k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
        assert_eq!(format!("{pepper:?}"), "k1:<secret>");
        assert_eq!(pepper.key().len(), 32);
    }

    #[test]
    fn bad_peppers_are_refused_with_a_reason() {
        let cases = [
            ("", "no separator"),
            ("k1", "no separator"),
            (
                ":AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
                "empty key id",
            ),
            (
                "k 1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
                "space in key id",
            ),
            ("k1:not base64!", "not base64"),
            ("k1:AAECAwQFBgcICQoLDA0ODw==", "16 bytes only"),
        ];
        for (value, why) in cases {
            assert!(
                Pepper::parse(value).is_err(),
                "{why}: {value:?} was accepted"
            );
        }
    }

    #[test]
    fn a_webhook_secret_parses_the_standard_form_and_never_prints() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(secret.key().len(), 24);
        assert_eq!(format!("{secret:?}"), "<secret>");
        let refused = [
            ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "no whsec_ prefix"),
            ("whsec_not base64!", "not base64"),
            ("whsec_AAECAwQFBgcICQoLDA0ODw==", "16 bytes only"),
            ("whsec_", "empty"),
        ];
        for (value, why) in refused {
            let error = WebhookSecret::parse(value)
                .err()
                .unwrap_or_else(|| panic!("{why}"));
            assert!(
                !error.contains(value.trim_start_matches("whsec_")) || value == "whsec_",
                "{why}: {error}"
            );
        }
    }

    #[test]
    fn urls_print_without_their_password() {
        assert_eq!(
            mask_url_password("postgres://app:hunter2@db:5432/codeward"),
            "postgres://app:<secret>@db:5432/codeward"
        );
        assert_eq!(
            mask_url_password("sqlite://codeward.db?mode=rwc"),
            "sqlite://codeward.db?mode=rwc"
        );
    }
}
