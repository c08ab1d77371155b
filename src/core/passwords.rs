//! Password work off the async runtime: argon2id, at most one hash per core at a time, with a
//! bounded queue; and the strength estimate of a new password, at most one per core at a time.
//! Unknown users verify a dummy hash so that they cost the same time; it is made with the
//! current parameters, and so is every account's hash after its next sign-in (`needs_rehash`),
//! so a new cost setting does not leave old accounts timing differently.

use std::sync::Arc;

use std::cell::RefCell;

use argon2::password_hash::{
    Decimal, Ident, Output, ParamsString, PasswordHash, PasswordHasher, PasswordVerifier, Salt,
    SaltString,
};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Config;
use crate::domain::{EmailAddress, NewPassword, PasswordProblem, PendingPassword};

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
    argon2: Arc<InPlace>,
    /// Hashes running or waiting; past this, requests are refused rather than queued. As
    /// many run at once as there are hashing threads (one per core).
    queued: Arc<Semaphore>,
    /// A real hash of a random password, verified when there is no user to verify against.
    dummy_hash: Arc<str>,
    queue_capacity: usize,
    metrics: crate::infra::metrics::Metrics,
    threads: HashThreads,
    /// Strength estimates running at once: one per core. The others wait their turn rather
    /// than being refused: an estimate needs no memory worth bounding, and the operations
    /// that judge a password are under per-IP quotas.
    estimating: Arc<Semaphore>,
}

impl Passwords {
    pub fn from_config(
        config: &Config,
        metrics: crate::infra::metrics::Metrics,
    ) -> anyhow::Result<Self> {
        let params = Params::new(config.argon2_memory_kib, config.argon2_iterations, 1, None)
            .map_err(|e| anyhow::anyhow!("invalid argon2 parameters: {e}"))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let dummy_hash = hash_with(&argon2, &uuid::Uuid::new_v4().to_string())?;
        Ok(Self {
            argon2: Arc::new(InPlace::new(Algorithm::Argon2id, Version::V0x13, params)),
            queued: Arc::new(Semaphore::new(config.password_hash_queue as usize)),
            dummy_hash: dummy_hash.into(),
            queue_capacity: config.password_hash_queue as usize,
            metrics,
            threads: HashThreads::start(cores),
            estimating: Arc::new(Semaphore::new(cores)),
        })
    }

    /// The policy's verdict on a new password (`PendingPassword::judge`), computed on tokio's
    /// blocking pool. zxcvbn takes up to ~100 ms of CPU on a long password (it reads the first
    /// 100 characters); run on the async workers, a few such requests at once would stall
    /// every other request. It does not take a place in the hashing queue, so a flood of
    /// estimates never makes a sign-in answer 503.
    pub async fn judge(
        &self,
        password: &PendingPassword,
        email: Option<&EmailAddress>,
        field: &'static str,
    ) -> Result<Result<NewPassword, PasswordProblem>, HashError> {
        let _turn = self
            .estimating
            .acquire()
            .await
            .map_err(|_| HashError::Failed("strength estimates stopped".into()))?;
        let password = password.clone();
        let email = email.cloned();
        tokio::task::spawn_blocking(move || password.judge(email.as_ref(), field))
            .await
            .map_err(|error| HashError::Failed(format!("strength estimate failed: {error}")))
    }

    /// Hashes at most `cores` passwords at a time, on the hashing threads.
    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let password = secrecy::SecretString::from(password);
        let argon2 = self.argon2.clone();
        self.run(move || {
            use secrecy::ExposeSecret;
            hash_with(argon2.as_ref(), password.expose_secret())
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

    /// Whether `stored` was made otherwise than a new hash would be (other argon2 memory,
    /// iterations or lanes, another algorithm or version). Verifying such a hash takes another
    /// time than the dummy's, so a wrong password would tell that account from an unknown
    /// address; the caller rehashes it once the password is known to be right. A hash that does
    /// not even parse verified nothing, so it is left to the caller's failure path.
    pub fn needs_rehash(&self, stored: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(stored) else {
            return false;
        };
        let current = self.argon2.as_ref();
        let same_params = Params::try_from(&parsed).is_ok_and(|params| {
            params.m_cost() == current.params.m_cost()
                && params.t_cost() == current.params.t_cost()
                && params.p_cost() == current.params.p_cost()
        });
        let same_kind = parsed.algorithm == current.algorithm.ident()
            && parsed.version == Some(u32::from(current.version));
        !(same_params && same_kind)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, HashError> + Send + 'static,
    ) -> Result<T, HashError> {
        let slot = self
            .queued
            .clone()
            .try_acquire_owned()
            .map_err(|_| Overloaded)?;
        let depth = self.queue_capacity - self.queued.available_permits();
        self.metrics.hash_queue_depth(depth);
        let metrics = self.metrics.clone();
        let queued_at = std::time::Instant::now();
        let work = move || {
            metrics.hash_waited(queued_at.elapsed());
            work()
        };
        self.threads.run(work, slot).await
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// One thread per core that does nothing but argon2. Not tokio's blocking pool: its threads
/// come and go by the dozen, and each kept a freed 19 MiB argon2 buffer in a malloc arena of
/// its own (the load benchmark saw 830 MiB of peak RSS that way; with these threads it is
/// the base plus one buffer per core). The threads end when the last `Passwords` is dropped.
#[derive(Clone)]
struct HashThreads {
    jobs: std::sync::mpsc::Sender<Job>,
}

impl HashThreads {
    fn start(count: usize) -> Self {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = Arc::new(std::sync::Mutex::new(queue));
        for i in 0..count {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        // The lock is held only while waiting for the next job.
                        let next = queue
                            .lock()
                            .map_err(drop)
                            .and_then(|q| q.recv().map_err(drop));
                        match next {
                            // A panicking job loses its answer, not the thread.
                            Ok(job) => {
                                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                            }
                            Err(()) => break,
                        }
                    }
                });
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start an argon2 thread");
            }
        }
        Self { jobs }
    }

    /// Queues `work` for the next free hashing thread, which takes it the moment it is done
    /// with the one before: no hand-off through an async task between two hashes. `slot` is
    /// the job's place in the queue, given back when the job leaves it; a job whose caller
    /// has gone (a dropped request) is skipped, not computed.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, HashError> + Send + 'static,
        slot: OwnedSemaphorePermit,
    ) -> Result<T, HashError> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            if done.is_closed() {
                return;
            }
            let result = work();
            // The place is free before the caller hears: the next request may queue at once.
            drop(slot);
            let _ = done.send(result);
        });
        self.jobs
            .send(job)
            .map_err(|_| HashError::Failed("argon2 threads stopped".into()))?;
        result
            .await
            .map_err(|_| HashError::Failed("argon2 thread failed".into()))?
    }
}

/// Makes the calling thread yield the CPU to everything else in the process. A login flood
/// keeps every hashing thread busy; at the default priority they take turns with the request
/// threads, and a token check waits behind them (the load benchmark's isolation test: get_me
/// p99 from 12 to 45 ms during the flood). At nice 10 the scheduler gives a request thread
/// that wakes up the core at once, and argon2 still gets whatever is left.
fn lower_priority() {
    // SAFETY: setpriority only reads its arguments; on Linux, PRIO_PROCESS with id 0 is the
    // calling thread. Failing (another OS, a sandbox) only leaves the default priority.
    #[cfg(target_os = "linux")]
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}

/// argon2 computed in a buffer that each hashing thread keeps, instead of allocating and
/// zeroing m KiB (19 MiB by default) for every hash and freeing it again: the memory is then
/// exactly one buffer per hashing thread, whatever malloc would have kept of the freed ones.
struct InPlace {
    algorithm: Algorithm,
    version: Version,
    params: Params,
}

thread_local! {
    static BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

impl InPlace {
    fn new(algorithm: Algorithm, version: Version, params: Params) -> Self {
        Self {
            algorithm,
            version,
            params,
        }
    }
}

impl PasswordHasher for InPlace {
    type Params = Params;

    fn hash_password<'a>(
        &self,
        password: &[u8],
        salt: impl Into<Salt<'a>>,
    ) -> argon2::password_hash::Result<PasswordHash<'a>> {
        let salt = salt.into();
        let mut salt_bytes = [0u8; 64];
        let salt_bytes = salt.decode_b64(&mut salt_bytes)?;
        let argon2 = Argon2::new(self.algorithm, self.version, self.params.clone());
        let length = self
            .params
            .output_len()
            .unwrap_or(Params::DEFAULT_OUTPUT_LEN);
        let blocks = self.params.block_count();
        let output = BLOCKS.with_borrow_mut(|memory| {
            if memory.len() < blocks {
                memory.resize(blocks, Block::new());
            }
            Output::init_with(length, |out| {
                argon2
                    .hash_password_into_with_memory(password, salt_bytes, out, &mut memory[..])
                    .map_err(Into::into)
            })
        })?;
        Ok(PasswordHash {
            algorithm: self.algorithm.ident(),
            version: Some(self.version.into()),
            params: ParamsString::try_from(&self.params)?,
            salt: Some(salt),
            hash: Some(output),
        })
    }

    /// What `verify_password` calls, with the stored hash's own algorithm and parameters.
    fn hash_password_customized<'a>(
        &self,
        password: &[u8],
        algorithm: Option<Ident<'a>>,
        version: Option<Decimal>,
        params: Params,
        salt: impl Into<Salt<'a>>,
    ) -> argon2::password_hash::Result<PasswordHash<'a>> {
        let algorithm = algorithm.map(Algorithm::try_from).transpose()?;
        let version = version.map(Version::try_from).transpose()?;
        Self::new(
            algorithm.unwrap_or_default(),
            version.unwrap_or_default(),
            params,
        )
        .hash_password(password, salt)
    }
}

fn hash_with(argon2: &impl PasswordHasher, password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    argon2
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stock(m_kib: u32, t: u32) -> Argon2<'static> {
        Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(m_kib, t, 1, None).unwrap(),
        )
    }

    fn in_place(m_kib: u32, t: u32) -> InPlace {
        InPlace::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(m_kib, t, 1, None).unwrap(),
        )
    }

    fn passwords(m_kib: u32, t: u32) -> Passwords {
        let config = crate::config::tests::test_config(&[
            &format!("--argon2-memory-kib={m_kib}"),
            &format!("--argon2-iterations={t}"),
        ]);
        Passwords::from_config(&config, crate::infra::metrics::Metrics::default()).unwrap()
    }

    #[test]
    fn only_a_hash_made_otherwise_than_a_new_one_needs_rehashing() {
        let current = passwords(1024, 2);
        let same = hash_with(&stock(1024, 2), "correct horse").unwrap();
        let fewer_iterations = hash_with(&stock(1024, 1), "correct horse").unwrap();
        let less_memory = hash_with(&stock(512, 2), "correct horse").unwrap();
        let argon2i = hash_with(
            &Argon2::new(
                Algorithm::Argon2i,
                Version::V0x13,
                Params::new(1024, 2, 1, None).unwrap(),
            ),
            "correct horse",
        )
        .unwrap();

        assert!(!current.needs_rehash(&same), "{same}");
        for other in [&fewer_iterations, &less_memory, &argon2i] {
            assert!(current.needs_rehash(other), "{other}");
        }
        assert!(!current.needs_rehash("not a hash"));
    }

    /// The kept-buffer hasher is argon2id itself: its hashes verify with the argon2 crate and
    /// the crate's verify with it, whatever size the thread's buffer had from before.
    #[test]
    fn in_place_hashes_are_standard_argon2id_both_ways() {
        for (m_kib, t) in [(4096, 2), (1024, 1), (2048, 3)] {
            let mine = hash_with(&in_place(m_kib, t), "correct horse").unwrap();
            let theirs = hash_with(&stock(m_kib, t), "correct horse").unwrap();

            let parsed = PasswordHash::new(&mine).unwrap();
            assert!(
                stock(8, 1)
                    .verify_password(b"correct horse", &parsed)
                    .is_ok()
            );
            assert!(
                stock(8, 1)
                    .verify_password(b"wrong horse", &parsed)
                    .is_err()
            );
            let parsed = PasswordHash::new(&theirs).unwrap();
            assert!(
                in_place(8, 1)
                    .verify_password(b"correct horse", &parsed)
                    .is_ok()
            );
            assert!(
                in_place(8, 1)
                    .verify_password(b"wrong horse", &parsed)
                    .is_err()
            );
        }
    }

    /// A queued job whose caller went away (a dropped request) is skipped, not computed, and
    /// its place in the queue comes back once it leaves the queue.
    #[tokio::test]
    async fn a_job_whose_caller_left_is_skipped_and_its_place_returned() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let threads = HashThreads::start(1);
        let places = Arc::new(Semaphore::new(3));
        let place = || places.clone().try_acquire_owned().unwrap();
        // Holds the only thread until told to go on.
        let (go_on, wait) = std::sync::mpsc::channel::<()>();
        let (started, has_started) = std::sync::mpsc::channel::<()>();
        let (holder, held) = (threads.clone(), place());
        let hold = move || {
            started.send(()).ok();
            wait.recv().ok();
            Ok(())
        };
        let busy = tokio::spawn(async move { holder.run(hold, held).await });
        while has_started.try_recv().is_err() {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        let computed = Arc::new(AtomicUsize::new(0));
        let counted = computed.clone();
        let left = threads.run(
            move || {
                counted.fetch_add(1, Ordering::SeqCst);
                Ok(())
            },
            place(),
        );
        // Queued on its first poll, then dropped: the caller left.
        let left = tokio::time::timeout(std::time::Duration::from_millis(50), left).await;
        assert!(
            left.is_err(),
            "the thread was busy: the job could not have finished"
        );
        assert_eq!(places.available_permits(), 1, "two jobs hold places");
        go_on.send(()).unwrap();
        busy.await.unwrap().unwrap();
        let counted = computed.clone();
        threads
            .run(
                move || {
                    counted.fetch_add(10, Ordering::SeqCst);
                    Ok(())
                },
                place(),
            )
            .await
            .unwrap();
        assert_eq!(
            computed.load(Ordering::SeqCst),
            10,
            "only the awaited job ran"
        );
        assert_eq!(places.available_permits(), 3, "every place came back");
    }
}
