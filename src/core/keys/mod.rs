//! The keys that sign access tokens: stored in the database (`store`), generated and encoded
//! by `material`, and held here, per instance, as a ring: the key that signs and the keys that
//! verify. The ring is read again from the database every `RING_TTL` (so an instance learns of
//! a rotation another made) and when a token names a key it does not know yet.
//!
//! The ring is read through the read pool, never the writer: a sign-in asks for the signer
//! inside its write transaction, and on SQLite the writer is that transaction's one
//! connection, so a read through it would wait for itself (`infra::db::Connections`).

pub mod material;
pub mod public;
pub mod store;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use jsonwebtoken::EncodingKey;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use sea_orm::DbErr;

use crate::config::{Config, TokenAlgorithm};
use crate::core::seal::Seal;
use crate::infra::db::Connections;
use public::PublicKey;
pub use store::{KeysError, Maintenance, Rotate, RotationPolicy};

/// How long an instance signs with the key it last read, at most, before reading the keys
/// again. A retired key stays published this much longer than its tokens live.
pub const RING_TTL: Duration = Duration::from_secs(30);
/// How soon a token naming an unknown key may make the instance read the keys again.
const UNKNOWN_KID_RELOAD: Duration = Duration::from_secs(1);
/// Clock skew between instances, added to how long a retired key stays published.
const CLOCK_SKEW: chrono::Duration = chrono::Duration::seconds(30);

/// What private signing keys are sealed under (`core::seal`): a key of their own per pepper.
pub const SEAL_LABEL: &[u8] = b"codeward signing key";

/// The key that signs: its id and algorithm, and the private key (never printed).
pub struct Signer {
    pub kid: String,
    pub algorithm: TokenAlgorithm,
    pub key: EncodingKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Signer({}, {}, <secret>)",
            self.kid,
            self.algorithm.name()
        )
    }
}

/// A key that verifies: what algorithm it is for, and the public key.
#[derive(Clone)]
pub struct Verifier {
    pub algorithm: TokenAlgorithm,
    pub key: Arc<PublicKey>,
}

struct Ring {
    loaded_at: Instant,
    signer: Option<Arc<Signer>>,
    verifiers: HashMap<String, Verifier>,
}

/// The signing keys of this instance, shared by every request.
pub struct Keys {
    db: Connections,
    seal: Seal,
    policy: RotationPolicy,
    ring: RwLock<Arc<Ring>>,
    reload: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(<secret>)")
    }
}

impl RotationPolicy {
    pub fn from_config(config: &Config) -> Self {
        let ring_ttl = chrono::Duration::from_std(RING_TTL).unwrap_or_default();
        Self {
            algorithm: config.tokens.token_algorithm,
            rotation: config.signing_key_rotation(),
            prepublish: config.signing_key_prepublish(),
            retired_publication: config.access_token_ttl() + ring_ttl + CLOCK_SKEW,
        }
    }
}

impl Keys {
    pub fn new(db: Connections, config: &Config) -> Self {
        Self {
            db,
            seal: Seal::new(config.peppers.all(), SEAL_LABEL),
            policy: RotationPolicy::from_config(config),
            ring: RwLock::new(Arc::new(Ring {
                // Stale from the start: the first use reads the keys.
                loaded_at: Instant::now() - RING_TTL - RING_TTL,
                signer: None,
                verifiers: HashMap::new(),
            })),
            reload: tokio::sync::Mutex::new(()),
        }
    }

    /// Rotates as the schedule (or `rotate`) says, then reads the keys again.
    pub async fn maintain(
        &self,
        now: DateTime<Utc>,
        rotate: Rotate,
    ) -> Result<Maintenance, KeysError> {
        let done = store::maintain(&self.db.writer, now, &self.seal, &self.policy, rotate).await?;
        self.load().await?;
        Ok(done)
    }

    /// Reads the keys again now (the server does so twice per `RING_TTL`).
    pub async fn refresh(&self) -> Result<(), KeysError> {
        self.load().await.map(drop)
    }

    /// The key that signs now; an error if no key can (none stored, or its pepper is gone).
    pub async fn signer(&self) -> Result<Arc<Signer>, KeysError> {
        let ring = self.fresh_ring().await?;
        match &ring.signer {
            Some(signer) => Ok(signer.clone()),
            None => Err(KeysError::NoCurrentKey),
        }
    }

    /// The key that verifies tokens naming `kid`, if it is published.
    pub async fn verifier(&self, kid: &str) -> Result<Option<Verifier>, KeysError> {
        let ring = self.fresh_ring().await?;
        if let Some(verifier) = ring.verifiers.get(kid) {
            return Ok(Some(verifier.clone()));
        }
        if ring.loaded_at.elapsed() < UNKNOWN_KID_RELOAD {
            return Ok(None);
        }
        Ok(self.load().await?.verifiers.get(kid).cloned())
    }

    /// The key set as published at `now`, read from the database (so it is exact across
    /// instances: a key is published from the moment it is stored).
    pub async fn key_set(&self, now: DateTime<Utc>) -> Result<JwkSet, DbErr> {
        let keys = store::all(&self.db.reads).await?;
        let keys = keys
            .iter()
            .filter(|key| store::is_published(key, now))
            .filter_map(|key| serde_json::from_str::<Jwk>(&key.public_jwk).ok())
            .collect();
        Ok(JwkSet { keys })
    }

    async fn fresh_ring(&self) -> Result<Arc<Ring>, KeysError> {
        let ring = self.current_ring();
        if ring.loaded_at.elapsed() < RING_TTL {
            return Ok(ring);
        }
        self.load().await
    }

    fn current_ring(&self) -> Arc<Ring> {
        self.ring
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Reads the keys; one read at a time, and a caller that waited for another's read uses it.
    async fn load(&self) -> Result<Arc<Ring>, KeysError> {
        let asked_at = Instant::now();
        let _one_at_a_time = self.reload.lock().await;
        let ring = self.current_ring();
        if ring.loaded_at >= asked_at {
            return Ok(ring);
        }
        let mut signer = None;
        let mut verifiers = HashMap::new();
        for key in store::all(&self.db.reads).await? {
            let Some(algorithm) = TokenAlgorithm::from_name(&key.algorithm) else {
                continue;
            };
            if key.slot.as_deref() == Some(store::SLOT_CURRENT) {
                let private = store::open_private(&self.seal, &key)?;
                signer = Some(Arc::new(Signer {
                    kid: key.id.clone(),
                    algorithm,
                    key: material::encoding_key(algorithm, &private),
                }));
            }
            // Every stored key verifies: a retired one is deleted once no token it signed can
            // be alive, and each token's own expiry is checked besides.
            let jwk: Jwk = serde_json::from_str(&key.public_jwk)
                .map_err(|e| material::KeyError::Unusable(e.to_string()))?;
            let public = PublicKey::from_jwk(algorithm, &jwk)?;
            verifiers.insert(
                key.id,
                Verifier {
                    algorithm,
                    key: Arc::new(public),
                },
            );
        }
        let ring = Arc::new(Ring {
            loaded_at: Instant::now(),
            signer,
            verifiers,
        });
        *self
            .ring
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = ring.clone();
        Ok(ring)
    }
}
