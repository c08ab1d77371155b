//! Load: closed loops (N workers, each sending its next request when the last one answered)
//! and open loops (requests sent at a fixed rate whatever the answers), with their latencies
//! and the CPU each party used while they were measured.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::server::{CpuSnapshot, CpuUse};

/// What one measured window saw.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Requests that got the expected answer.
    pub ok: u64,
    /// Requests that got anything else (status or transport error).
    pub unexpected: u64,
    /// Open loop only: requests not sent because too many were in flight.
    pub dropped: u64,
    latencies_us: Vec<u32>,
    pub secs: f64,
    pub cpu: CpuUse,
}

impl Stats {
    /// Completed requests per second (expected or not).
    pub fn throughput(&self) -> f64 {
        (self.ok + self.unexpected) as f64 / self.secs
    }

    /// Adds another measured window of the same load to this one.
    pub fn merge(&mut self, other: Stats) {
        let secs = self.secs + other.secs;
        if secs > 0.0 {
            let mix = |a: f64, b: f64| (a * self.secs + b * other.secs) / secs;
            self.cpu = CpuUse {
                server: mix(self.cpu.server, other.cpu.server),
                loadgen: mix(self.cpu.loadgen, other.cpu.loadgen),
                database: mix(self.cpu.database, other.cpu.database),
                other: mix(self.cpu.other, other.cpu.other),
            };
        }
        self.ok += other.ok;
        self.unexpected += other.unexpected;
        self.dropped += other.dropped;
        self.latencies_us.extend(other.latencies_us);
        self.secs = secs;
    }

    /// The `q` quantile of latency (0.5, 0.99), in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        let index = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
        f64::from(sorted[index]) / 1000.0
    }
}

#[derive(Clone, Copy)]
pub struct Window {
    pub warmup: Duration,
    pub measure: Duration,
}

struct Recorder {
    from: Instant,
    until: Instant,
    ok: AtomicU64,
    unexpected: AtomicU64,
    latencies: std::sync::Mutex<Vec<u32>>,
}

impl Recorder {
    fn new(window: Window) -> Arc<Self> {
        let from = Instant::now() + window.warmup;
        Arc::new(Self {
            from,
            until: from + window.measure,
            ok: AtomicU64::new(0),
            unexpected: AtomicU64::new(0),
            latencies: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Counts a request that ended inside the measured window. (Counting only those that also
    /// started inside it would miss the last latency's worth of answers: a third of them when
    /// logins take 500 ms and a slice lasts 1.7 s.)
    fn record(&self, sent: Instant, expected: bool, local: &mut Vec<u32>) {
        let done = Instant::now();
        if done < self.from || done > self.until {
            return;
        }
        let counter = if expected { &self.ok } else { &self.unexpected };
        counter.fetch_add(1, Ordering::Relaxed);
        local.push(u32::try_from((done - sent).as_micros()).unwrap_or(u32::MAX));
    }

    fn merge(&self, local: Vec<u32>) {
        if let Ok(mut all) = self.latencies.lock() {
            all.extend(local);
        }
    }

    /// Samples CPU at the window's edges, in the background.
    fn watch_cpu(&self, server_pid: Option<u32>) -> tokio::task::JoinHandle<CpuUse> {
        let (from, until) = (self.from, self.until);
        tokio::spawn(async move {
            tokio::time::sleep_until(from.into()).await;
            let start = CpuSnapshot::take(server_pid);
            tokio::time::sleep_until(until.into()).await;
            start.until(&CpuSnapshot::take(server_pid))
        })
    }

    async fn finish(self: Arc<Self>, cpu: tokio::task::JoinHandle<CpuUse>, dropped: u64) -> Stats {
        let cpu = cpu.await.unwrap_or_default();
        let latencies = self
            .latencies
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default();
        Stats {
            ok: self.ok.load(Ordering::Relaxed),
            unexpected: self.unexpected.load(Ordering::Relaxed),
            dropped,
            latencies_us: latencies,
            secs: (self.until - self.from).as_secs_f64(),
            cpu,
        }
    }
}

/// Runs `a` and `b` in turns, `rounds` times each, splitting the window's measured time
/// between the rounds: on a shared machine the load of others drifts, and alternating short
/// slices exposes both sides to the same drift, so their ratio holds where their absolute
/// figures do not. The first slice of each side gets the whole warm-up, later ones 200 ms.
pub async fn interleaved<A, FA, B, FB>(
    rounds: usize,
    window: Window,
    mut a: A,
    mut b: B,
) -> (Stats, Stats)
where
    A: FnMut(Window) -> FA,
    FA: Future<Output = Stats>,
    B: FnMut(Window) -> FB,
    FB: Future<Output = Stats>,
{
    let rounds = rounds.max(1);
    let measure = window.measure / u32::try_from(rounds).unwrap_or(1);
    let (mut sa, mut sb) = (Stats::default(), Stats::default());
    for round in 0..rounds {
        let warmup = if round == 0 {
            window.warmup
        } else {
            window.warmup.min(Duration::from_millis(200))
        };
        let slice = Window { warmup, measure };
        sa.merge(a(slice).await);
        sb.merge(b(slice).await);
    }
    (sa, sb)
}

/// `concurrency` workers each run `op(i)` back to back (i counts up across workers) through
/// warm-up and the measured window. `op` answers whether the outcome was the expected one.
pub async fn closed_loop<F, Fut>(
    concurrency: usize,
    window: Window,
    server_pid: Option<u32>,
    op: F,
) -> Stats
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let recorder = Recorder::new(window);
    let cpu = recorder.watch_cpu(server_pid);
    let op = Arc::new(op);
    let next = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (op, next, recorder) = (op.clone(), next.clone(), recorder.clone());
            tokio::spawn(async move {
                let mut local = Vec::new();
                while Instant::now() < recorder.until {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let sent = Instant::now();
                    let expected = op(i).await;
                    recorder.record(sent, expected, &mut local);
                }
                recorder.merge(local);
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
    recorder.finish(cpu, 0).await
}

/// Sends `op(i)` at `rate` per second whatever the answers (no coordinated omission), with at
/// most `max_in_flight` outstanding; requests past that are counted as dropped.
pub async fn open_loop<F, Fut>(
    rate: f64,
    max_in_flight: usize,
    window: Window,
    server_pid: Option<u32>,
    op: F,
) -> Stats
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let recorder = Recorder::new(window);
    let cpu = recorder.watch_cpu(server_pid);
    let op = Arc::new(op);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut sent = 0u64;
    let mut dropped = 0u64;
    let mut tasks = tokio::task::JoinSet::new();
    while Instant::now() < recorder.until {
        let due = (started.elapsed().as_secs_f64() * rate) as u64;
        while sent < due {
            let i = sent;
            sent += 1;
            if in_flight.load(Ordering::Relaxed) >= max_in_flight {
                dropped += u64::from(Instant::now() >= recorder.from);
                continue;
            }
            in_flight.fetch_add(1, Ordering::Relaxed);
            let (op, recorder, in_flight) = (op.clone(), recorder.clone(), in_flight.clone());
            tasks.spawn(async move {
                let mut local = Vec::with_capacity(1);
                let at = Instant::now();
                let expected = op(i).await;
                recorder.record(at, expected, &mut local);
                in_flight.fetch_sub(1, Ordering::Relaxed);
                recorder.merge(local);
            });
        }
        while tasks.try_join_next().is_some() {}
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    while tasks.join_next().await.is_some() {}
    recorder.finish(cpu, dropped).await
}
