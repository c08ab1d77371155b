//! Key material: new key pairs for each algorithm, their public JWK, and the private half as
//! the DER bytes the JOSE library signs with (PKCS#8 for Ed25519 and P-256, PKCS#1 for RSA).

use jsonwebtoken::jwk::{Jwk, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey};

use crate::config::TokenAlgorithm;

/// RSA modulus size: what RFC 7518 requires at least, and what every gateway takes.
const RSA_BITS: usize = 2048;

/// The private half of a signing key, as DER; wiped on drop, never printed.
pub struct PrivateDer(zeroize::Zeroizing<Vec<u8>>);

impl PrivateDer {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(zeroize::Zeroizing::new(bytes))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for PrivateDer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

/// A new key pair: its id (the JWK thumbprint), public JWK and private DER.
#[derive(Debug)]
pub struct KeyPair {
    pub kid: String,
    pub jwk: Jwk,
    pub private: PrivateDer,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot generate a key: {0}")]
    Generate(String),
    #[error("stored key is unusable: {0}")]
    Unusable(String),
}

pub fn jose_algorithm(algorithm: TokenAlgorithm) -> Algorithm {
    match algorithm {
        TokenAlgorithm::EdDsa => Algorithm::EdDSA,
        TokenAlgorithm::Es256 => Algorithm::ES256,
        TokenAlgorithm::Rs256 => Algorithm::RS256,
    }
}

/// Generates a key pair from the operating system's randomness. RSA takes a while (tens to
/// hundreds of milliseconds): call it off the async runtime.
pub fn generate(algorithm: TokenAlgorithm) -> Result<KeyPair, KeyError> {
    use rand_core_06::OsRng;
    let generate_error = |e: &dyn std::fmt::Display| KeyError::Generate(e.to_string());
    let der = match algorithm {
        TokenAlgorithm::EdDsa => {
            use ed25519_dalek::pkcs8::{EncodePrivateKey, KeypairBytes};
            // PKCS#8 v1 (the 32-byte seed alone), the form the JOSE library reads a JWK from.
            let key = ed25519_dalek::SigningKey::generate(&mut OsRng);
            let bytes = KeypairBytes {
                secret_key: key.to_bytes(),
                public_key: None,
            };
            bytes
                .to_pkcs8_der()
                .map_err(|e| generate_error(&e))?
                .as_bytes()
                .to_vec()
        }
        TokenAlgorithm::Es256 => {
            use p256::pkcs8::EncodePrivateKey;
            let key = p256::SecretKey::random(&mut OsRng);
            key.to_pkcs8_der()
                .map_err(|e| generate_error(&e))?
                .as_bytes()
                .to_vec()
        }
        TokenAlgorithm::Rs256 => {
            use rsa::pkcs1::EncodeRsaPrivateKey;
            let key =
                rsa::RsaPrivateKey::new(&mut OsRng, RSA_BITS).map_err(|e| generate_error(&e))?;
            key.to_pkcs1_der()
                .map_err(|e| generate_error(&e))?
                .as_bytes()
                .to_vec()
        }
    };
    let private = PrivateDer::new(der);
    let mut jwk = public_jwk(algorithm, &private)?;
    let kid = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(|e| generate_error(&e))?;
    jwk.common.key_id = Some(kid.clone());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    Ok(KeyPair { kid, jwk, private })
}

/// The key the JOSE library signs with.
pub fn encoding_key(algorithm: TokenAlgorithm, private: &PrivateDer) -> EncodingKey {
    match algorithm {
        TokenAlgorithm::EdDsa => EncodingKey::from_ed_der(private.expose()),
        TokenAlgorithm::Es256 => EncodingKey::from_ec_der(private.expose()),
        TokenAlgorithm::Rs256 => EncodingKey::from_rsa_der(private.expose()),
    }
}

/// The public half as a JWK (no private member: built from the public components only).
fn public_jwk(algorithm: TokenAlgorithm, private: &PrivateDer) -> Result<Jwk, KeyError> {
    Jwk::from_encoding_key(&encoding_key(algorithm, private), jose_algorithm(algorithm))
        .map_err(|e| KeyError::Generate(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_makes_a_key_whose_jwk_verifies_what_it_signs_and_holds_no_private_member() {
        for algorithm in TokenAlgorithm::ALL {
            let pair = generate(algorithm).unwrap();
            let json = serde_json::to_value(&pair.jwk).unwrap();
            assert_eq!(json["kid"], pair.kid.as_str());
            assert_eq!(json["alg"], algorithm.name());
            assert_eq!(json["use"], "sig");
            for private_member in ["d", "p", "q", "dp", "dq", "qi", "k"] {
                assert!(json.get(private_member).is_none(), "{algorithm:?}: {json}");
            }
            let header = jsonwebtoken::Header::new(jose_algorithm(algorithm));
            let claims = serde_json::json!({"sub": "x", "exp": 4_000_000_000u64});
            let token =
                jsonwebtoken::encode(&header, &claims, &encoding_key(algorithm, &pair.private))
                    .unwrap();
            let validation = jsonwebtoken::Validation::new(jose_algorithm(algorithm));
            let key = jsonwebtoken::DecodingKey::from_jwk(&pair.jwk).unwrap();
            jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation).unwrap();
            // Another key of the same algorithm does not verify it.
            let other =
                jsonwebtoken::DecodingKey::from_jwk(&generate(algorithm).unwrap().jwk).unwrap();
            assert!(
                jsonwebtoken::decode::<serde_json::Value>(&token, &other, &validation).is_err()
            );
            assert_eq!(format!("{:?}", pair.private), "<secret>");
        }
    }
}
