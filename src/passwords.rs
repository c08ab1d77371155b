//! Password hashing: argon2id off the async runtime, at most one hash per core at a time, with
//! a bounded queue. Unknown users verify a dummy hash so that they cost the same time.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::config::Config;

/// The hashing queue is full; the caller answers 503 `overloaded`.
#[derive(Debug, thiserror::Error)]
#[error("the password hashing queue is full")]
pub struct Overloaded;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error(transparent)]
    Overloaded(#[from] Overloaded),
    #[error("password hashing failed: {0}")]
    Failed(String),
}

#[derive(Clone)]
pub struct Passwords {
    argon2: Arc<Argon2<'static>>,
    /// Hashes running at once: one per core.
    running: Arc<Semaphore>,
    /// Hashes running or waiting; past this, requests are refused rather than queued.
    queued: Arc<Semaphore>,
    /// A real hash of a random password, verified when there is no user to verify against.
    dummy_hash: Arc<str>,
    queue_capacity: usize,
    metrics: crate::metrics::Metrics,
}

impl Passwords {
    pub fn from_config(config: &Config, metrics: crate::metrics::Metrics) -> anyhow::Result<Self> {
        let params = Params::new(config.argon2_memory_kib, config.argon2_iterations, 1, None)
            .map_err(|e| anyhow::anyhow!("invalid argon2 parameters: {e}"))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let dummy_hash = hash_with(&argon2, &uuid::Uuid::new_v4().to_string())?;
        Ok(Self {
            argon2: Arc::new(argon2),
            running: Arc::new(Semaphore::new(cores)),
            queued: Arc::new(Semaphore::new(config.password_hash_queue as usize)),
            dummy_hash: dummy_hash.into(),
            queue_capacity: config.password_hash_queue as usize,
            metrics,
        })
    }

    /// Hashes at most `cores` passwords at a time, on the blocking pool.
    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let password = secrecy::SecretString::from(password);
        let argon2 = self.argon2.clone();
        self.run(move || {
            use secrecy::ExposeSecret;
            hash_with(&argon2, password.expose_secret())
                .map_err(|e| HashError::Failed(e.to_string()))
        })
        .await
    }

    /// Verifies `password` against `stored`, or against the dummy hash when there is none, so
    /// both cost one argon2 computation. `false` for the dummy, whatever the password.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> Result<bool, HashError> {
        let password = secrecy::SecretString::from(password);
        let real = stored.is_some();
        let stored: String = stored.map_or_else(|| self.dummy_hash.to_string(), str::to_owned);
        let argon2 = self.argon2.clone();
        self.run(move || {
            use secrecy::ExposeSecret;
            let parsed =
                PasswordHash::new(&stored).map_err(|e| HashError::Failed(e.to_string()))?;
            let matches = argon2
                .verify_password(password.expose_secret().as_bytes(), &parsed)
                .is_ok();
            Ok(matches && real)
        })
        .await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, HashError> + Send + 'static,
    ) -> Result<T, HashError> {
        let _slot = self
            .queued
            .clone()
            .try_acquire_owned()
            .map_err(|_| Overloaded)?;
        let depth = self.queue_capacity - self.queued.available_permits();
        self.metrics.hash_queue_depth(depth);
        let waiting = std::time::Instant::now();
        let _core = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Overloaded)?;
        self.metrics.hash_waited(waiting.elapsed());
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| HashError::Failed(e.to_string()))?
    }
}

fn hash_with(argon2: &Argon2<'_>, password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    argon2
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))
}
