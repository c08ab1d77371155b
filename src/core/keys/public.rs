//! The public half of a signing key, decoded once from its JWK when the ring is read, and the
//! signature check itself. Every request that carries a token checks its signature: keeping
//! the Ed25519 key parsed spares the point decompression the JOSE library's `DecodingKey`
//! redoes on every call, and RS256 and ES256 are checked with `ring`, whose arithmetic is
//! several times faster than the RustCrypto crates' (which still generate the keys).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::Verifier;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents, UnparsedPublicKey,
};

use super::material::KeyError;
use crate::config::TokenAlgorithm;

/// A public key, ready to check JWS signatures of its algorithm.
pub enum PublicKey {
    Ed25519(ed25519_dalek::VerifyingKey),
    /// The uncompressed SEC1 point (checked to be on the curve when decoded).
    P256(UnparsedPublicKey<Vec<u8>>),
    /// The modulus and exponent, big-endian.
    Rsa(RsaPublicKeyComponents<Vec<u8>>),
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Ed25519(_) => "PublicKey(Ed25519)",
            Self::P256(_) => "PublicKey(P-256)",
            Self::Rsa(_) => "PublicKey(RSA)",
        })
    }
}

impl PublicKey {
    /// The key of a stored public JWK, which must be of `algorithm`'s key type.
    pub fn from_jwk(algorithm: TokenAlgorithm, jwk: &Jwk) -> Result<Self, KeyError> {
        let unusable = |what: &str| KeyError::Unusable(format!("{}: {what}", algorithm.name()));
        let bytes = |member: &str| {
            URL_SAFE_NO_PAD
                .decode(member)
                .map_err(|_| unusable("a member is not base64url"))
        };
        match (algorithm, &jwk.algorithm) {
            (TokenAlgorithm::EdDsa, AlgorithmParameters::OctetKeyPair(okp))
                if okp.curve == EllipticCurve::Ed25519 =>
            {
                let x: [u8; 32] = bytes(&okp.x)?
                    .try_into()
                    .map_err(|_| unusable("x is not 32 bytes"))?;
                ed25519_dalek::VerifyingKey::from_bytes(&x)
                    .map(Self::Ed25519)
                    .map_err(|_| unusable("x is not a curve point"))
            }
            (TokenAlgorithm::Es256, AlgorithmParameters::EllipticCurve(ec))
                if ec.curve == EllipticCurve::P256 =>
            {
                let (x, y) = (bytes(&ec.x)?, bytes(&ec.y)?);
                if x.len() != 32 || y.len() != 32 {
                    return Err(unusable("x or y is not 32 bytes"));
                }
                let point = p256::EncodedPoint::from_affine_coordinates(
                    x.as_slice().into(),
                    y.as_slice().into(),
                    false,
                );
                p256::ecdsa::VerifyingKey::from_encoded_point(&point)
                    .map_err(|_| unusable("not a curve point"))?;
                Ok(Self::P256(UnparsedPublicKey::new(
                    &ECDSA_P256_SHA256_FIXED,
                    point.as_bytes().to_vec(),
                )))
            }
            (TokenAlgorithm::Rs256, AlgorithmParameters::RSA(params)) => {
                let (n, e) = (bytes(&params.n)?, bytes(&params.e)?);
                rsa::RsaPublicKey::new(
                    rsa::BigUint::from_bytes_be(&n),
                    rsa::BigUint::from_bytes_be(&e),
                )
                .map_err(|_| unusable("not an RSA public key"))?;
                Ok(Self::Rsa(RsaPublicKeyComponents { n, e }))
            }
            _ => Err(unusable("the JWK is not a key of this algorithm")),
        }
    }

    /// Whether `signature` (as JWS encodes it: Ed25519's 64 bytes, ECDSA's `r ‖ s`, RSA's
    /// PKCS#1 v1.5 block) signs `message` under this key.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            Self::Ed25519(key) => ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|signature| key.verify(message, &signature).is_ok()),
            Self::P256(key) => key.verify(message, signature).is_ok(),
            Self::Rsa(key) => key
                .verify(&RSA_PKCS1_2048_8192_SHA256, message, signature)
                .is_ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::keys::material::{encoding_key, generate, jose_algorithm};

    #[test]
    fn each_algorithm_verifies_what_the_jose_library_signs_and_nothing_else() {
        for algorithm in TokenAlgorithm::ALL {
            let pair = generate(algorithm).unwrap();
            let key = PublicKey::from_jwk(algorithm, &pair.jwk).unwrap();
            let message = b"header.payload";
            let signed = jsonwebtoken::crypto::sign(
                message,
                &encoding_key(algorithm, &pair.private),
                jose_algorithm(algorithm),
            )
            .unwrap();
            let signature = URL_SAFE_NO_PAD.decode(signed).unwrap();
            assert!(key.verifies(message, &signature), "{algorithm:?}");
            assert!(
                !key.verifies(b"header.payloaD", &signature),
                "{algorithm:?}"
            );
            let mut flipped = signature.clone();
            flipped[10] ^= 1;
            assert!(!key.verifies(message, &flipped), "{algorithm:?}");
            assert!(!key.verifies(message, &signature[1..]), "{algorithm:?}");
            assert!(!key.verifies(message, &[]), "{algorithm:?}");
            let other = PublicKey::from_jwk(algorithm, &generate(algorithm).unwrap().jwk).unwrap();
            assert!(!other.verifies(message, &signature), "{algorithm:?}");
        }
    }

    #[test]
    fn a_jwk_of_another_key_type_is_refused() {
        let ed = generate(TokenAlgorithm::EdDsa).unwrap();
        let es = generate(TokenAlgorithm::Es256).unwrap();
        assert!(PublicKey::from_jwk(TokenAlgorithm::Es256, &ed.jwk).is_err());
        assert!(PublicKey::from_jwk(TokenAlgorithm::Rs256, &es.jwk).is_err());
        assert!(PublicKey::from_jwk(TokenAlgorithm::EdDsa, &es.jwk).is_err());
    }
}
