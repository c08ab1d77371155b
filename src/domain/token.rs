//! Tokens. Refresh tokens and API keys are opaque: 256 random bits, base64url, with a prefix
//! that makes leaked ones easy to scan for; only their SHA-256 is stored. Access tokens are
//! signed JWTs (`core::tokens`), never stored; here they are only a string that does not print.

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

token_type!(RefreshToken, "cwr_");
token_type!(ApiKey, "cwk_");

/// A signed access token (a JWT) as handed to a client.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(String);

impl AccessToken {
    pub fn new(jwt: String) -> Self {
        Self(jwt)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

/// How a session's latest authentication was made: the access token's `amr` (RFC 8176).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// A password: sign-in or re-authentication.
    Password,
    /// An emailed code: code sign-in, sign-up verification, re-authentication by code.
    Code,
}

impl AuthMethod {
    pub fn amr(self) -> &'static str {
        match self {
            Self::Password => "pwd",
            Self::Code => "otp",
        }
    }

    pub fn from_amr(value: &str) -> Option<Self> {
        [Self::Password, Self::Code]
            .into_iter()
            .find(|method| method.amr() == value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_their_prefix_256_bits_and_parse_back() {
        let refresh = RefreshToken::generate();

        assert!(refresh.expose().starts_with("cwr_") && refresh.expose().len() == 47);
        assert_eq!(RefreshToken::parse(refresh.expose()), Some(refresh.clone()));
        assert_ne!(refresh.hash(), RefreshToken::generate().hash());
        assert_eq!(refresh.hash().0.len(), 64);
        assert_eq!(format!("{refresh:?}"), "<secret>");
        assert_eq!(
            format!("{:?}", AccessToken::new("a.b.c".into())),
            "<secret>"
        );
    }

    #[test]
    fn api_keys_have_their_own_prefix_and_no_other_token_passes_for_one() {
        let key = ApiKey::generate();

        assert!(key.expose().starts_with("cwk_") && key.expose().len() == 47);
        assert_eq!(ApiKey::parse(key.expose()), Some(key.clone()));
        assert_eq!(key.hash().0, hex::encode(Sha256::digest(key.expose())));
        assert_ne!(key, ApiKey::generate());
        assert_eq!(format!("{key:?}"), "<secret>");
        let refresh = RefreshToken::generate();
        let jwt = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln";
        for other in [jwt, refresh.expose()] {
            assert!(
                ApiKey::parse(other).is_none(),
                "{other} parsed as an API key"
            );
        }
        assert!(
            RefreshToken::parse(key.expose()).is_none(),
            "an API key parsed as a refresh token"
        );
    }

    #[test]
    fn malformed_tokens_do_not_parse() {
        for bad in [
            "",
            "cwr_",
            "cwr_short",
            "Bearer cwr_x",
            &format!("cwr_{}", "!".repeat(43)),
            &format!("cwa_{}", "a".repeat(43)),
        ] {
            assert!(RefreshToken::parse(bad).is_none(), "{bad:?}");
        }
        for bad in ["cwk_", "cwk_short", &format!("cwk_{}=", "A".repeat(42))] {
            assert!(ApiKey::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn auth_methods_round_trip_through_their_amr_value() {
        for method in [AuthMethod::Password, AuthMethod::Code] {
            assert_eq!(AuthMethod::from_amr(method.amr()), Some(method));
        }
        assert_eq!(AuthMethod::from_amr("mfa"), None);
    }
}
