//! Opaque bearer tokens and API keys: 256 random bits, base64url, with a prefix that makes
//! leaked ones easy to scan for. Only their SHA-256 is stored.

use std::fmt;

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// Hex SHA-256 of a token: what the database holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenHash(pub String);

fn generate(prefix: &str) -> String {
    use rand::{RngCore, TryRngCore, rngs::OsRng};
    let mut bytes = [0u8; 32];
    OsRng.unwrap_err().fill_bytes(&mut bytes);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

fn hash(token: &str) -> TokenHash {
    TokenHash(hex::encode(Sha256::digest(token.as_bytes())))
}

/// The well-formed shape of a token: prefix plus 43 base64url characters.
fn well_formed(raw: &str, prefix: &str) -> bool {
    raw.strip_prefix(prefix).is_some_and(|rest| {
        rest.len() == 43
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

macro_rules! token_type {
    ($name:ident, $prefix:literal) => {
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub fn generate() -> Self {
                Self(generate(Self::PREFIX))
            }

            /// `None` unless the value has the shape of such a token.
            pub fn parse(raw: &str) -> Option<Self> {
                well_formed(raw, Self::PREFIX).then(|| Self(raw.to_owned()))
            }

            pub fn hash(&self) -> TokenHash {
                hash(&self.0)
            }

            pub fn expose(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("<secret>")
            }
        }
    };
}

token_type!(AccessToken, "cwa_");
token_type!(RefreshToken, "cwr_");
token_type!(ApiKey, "cwk_");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_their_prefix_256_bits_and_parse_back() {
        let access = AccessToken::generate();
        let refresh = RefreshToken::generate();

        assert!(access.expose().starts_with("cwa_") && access.expose().len() == 47);
        assert!(refresh.expose().starts_with("cwr_"));
        assert_eq!(AccessToken::parse(access.expose()), Some(access.clone()));
        assert!(
            AccessToken::parse(refresh.expose()).is_none(),
            "prefixes are not interchangeable"
        );
        assert_ne!(access.hash(), AccessToken::generate().hash());
        assert_eq!(access.hash().0.len(), 64);
        assert_eq!(format!("{access:?}"), "<secret>");
    }

    #[test]
    fn api_keys_have_their_own_prefix_and_no_other_token_passes_for_one() {
        let key = ApiKey::generate();

        assert!(key.expose().starts_with("cwk_") && key.expose().len() == 47);
        assert_eq!(ApiKey::parse(key.expose()), Some(key.clone()));
        assert_eq!(key.hash().0, hex::encode(Sha256::digest(key.expose())));
        assert_ne!(key, ApiKey::generate());
        assert_eq!(format!("{key:?}"), "<secret>");
        let access = AccessToken::generate();
        let refresh = RefreshToken::generate();
        for other in [access.expose(), refresh.expose()] {
            assert!(
                ApiKey::parse(other).is_none(),
                "{other} parsed as an API key"
            );
        }
        assert!(
            AccessToken::parse(key.expose()).is_none(),
            "an API key parsed as an access token"
        );
        assert!(
            RefreshToken::parse(key.expose()).is_none(),
            "an API key parsed as a refresh token"
        );
    }

    #[test]
    fn malformed_tokens_do_not_parse() {
        for bad in [
            "",
            "cwa_",
            "cwa_short",
            "Bearer cwa_x",
            &format!("cwa_{}", "!".repeat(43)),
        ] {
            assert!(AccessToken::parse(bad).is_none(), "{bad:?}");
        }
        for bad in ["cwk_", "cwk_short", &format!("cwk_{}=", "A".repeat(42))] {
            assert!(ApiKey::parse(bad).is_none(), "{bad:?}");
        }
    }
}
