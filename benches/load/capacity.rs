//! Capacity, open loop: requests started on a fixed schedule whatever the answers, in steps of
//! increasing rate, and the highest rate a line holds for a whole step within the criteria.
//!
//! A closed loop of N connections measures latency: when each answer takes at least 10 ms (the
//! equal-time grid), N / 10 ms is all it can send, however fast the server. Here request `i` of
//! a step is due at `t0 + i / rate`; it is started then whether or not earlier ones have been
//! answered, and its latency runs from that scheduled time, not from when it was actually sent,
//! so a slow answer cannot hide the requests queued behind it (no coordinated omission) and a
//! client that falls behind its schedule counts against the step, never in its favour.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::drive::Window;
use crate::server::{CPU_TICKS_PER_SEC, CpuSnapshot, CpuUse, process_cpu_ticks};

pub type BoxedBool = Pin<Box<dyn Future<Output = bool> + Send>>;
/// One request: `op(i)` sends the `i`-th and answers whether the outcome was the expected one.
pub type Op = Arc<dyn Fn(u64) -> BoxedBool + Send + Sync>;

/// What a step must hold to pass.
#[derive(Clone, Copy, Debug)]
pub struct Criteria {
    /// Highest 99th-percentile latency, from each request's scheduled start.
    pub p99_ms: f64,
    /// The answers per second in the measured window may fall short of the offered rate by
    /// this fraction at most (more means a backlog grew).
    pub rate_tolerance: f64,
    /// Requests outstanding at once; a request due while this many are outstanding is not
    /// sent, counted, and fails the step.
    pub max_in_flight: usize,
}

impl Criteria {
    /// The client is behind when more than 1% of its requests started later than this after
    /// their scheduled time.
    pub fn lag_limit_ms(&self) -> f64 {
        (self.p99_ms / 10.0).max(1.0)
    }

    /// How long a step waits for its last answers after its window, before giving up on them.
    fn grace(&self) -> Duration {
        Duration::from_secs_f64((self.p99_ms * 10.0 / 1000.0).max(1.0))
    }
}

/// The rates tried: `start`, then × `factor` while steps pass (÷ while they fail), up to
/// `max`; then bisection (geometric mean) between the last passing and the first failing rate
/// until they are within `resolution` of each other.
#[derive(Clone, Copy, Debug)]
pub struct Ladder {
    pub start: f64,
    pub max: f64,
    pub factor: f64,
    pub resolution: f64,
}

/// The lowest rate tried: a line that cannot hold one request per second has no capacity.
const MIN_RATE: f64 = 1.0;
/// A search stops after this many steps whatever it found.
const MAX_STEPS: usize = 24;

/// Slot value of a request not answered (not sent, or no answer by the end of the grace).
const NOT_DONE: u32 = u32::MAX;
/// Flag bit of a slot: the answer was not the expected one.
const UNEXPECTED: u32 = 1 << 31;

/// One step: `rate` requests per second offered for the measured window.
#[derive(Clone, Debug, Default)]
pub struct Step {
    pub rate: f64,
    pub secs: f64,
    /// Requests due in the measured window.
    pub scheduled: u64,
    /// Of those: the expected answer, another answer (or a transport error), no answer by the
    /// end of the grace period, not sent because `max_in_flight` were outstanding.
    pub ok: u64,
    pub unexpected: u64,
    pub unanswered: u64,
    pub over_cap: u64,
    /// Answers per second received inside the measured window (whenever their requests were
    /// due): falls short of `rate` when a backlog grows.
    pub achieved: f64,
    /// Latency quantiles of the requests due in the window, from their scheduled start, in
    /// ms; infinite when more than 1% (50%) were not answered.
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// How late the client started its requests, after their scheduled time: 99th percentile
    /// and maximum, in ms.
    pub lag_p99_ms: f64,
    pub lag_max_ms: f64,
    pub cpu: CpuUse,
    /// Why the step failed; empty if it passed.
    pub failures: Vec<String>,
    /// The client fell behind its schedule (lag p99 over `Criteria::lag_limit_ms`).
    pub client_behind: bool,
    /// The in-flight cap may have limited this step rather than the server: it is less than
    /// twice what the rate needs at the p99 limit (Little's law).
    pub cap_suspect: bool,
    /// This is the second run of its rate: the first failed with the client behind.
    pub rerun: bool,
}

impl Step {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// One line for the progress log.
    pub fn summary(&self) -> String {
        let verdict = if self.passed() {
            "pass".to_owned()
        } else {
            format!("FAIL ({})", self.failures.join(", "))
        };
        format!(
            "{:.0}/s: {verdict}; {} of {} due in {:.1} s answered as expected, p50 {} p99 {} ms, \
             achieved {:.0}/s ({:.1}%), client lag p99 {:.1} max {:.1} ms{}",
            self.rate,
            self.ok,
            self.scheduled,
            self.secs,
            ms(self.p50_ms),
            ms(self.p99_ms),
            self.achieved,
            100.0 * self.achieved / self.rate,
            self.lag_p99_ms,
            self.lag_max_ms,
            if self.client_behind {
                " (client behind)"
            } else {
                ""
            },
        )
    }
}

/// A latency for tables: two decimals, or "∞" when requests went unanswered.
pub fn ms(value: f64) -> String {
    if value.is_nan() {
        "–".to_owned()
    } else if value.is_infinite() {
        "∞".to_owned()
    } else {
        format!("{value:.2}")
    }
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros())
        .unwrap_or(UNEXPECTED - 1)
        .min(UNEXPECTED - 1)
}

/// `q` quantile of sorted microseconds, in ms (infinite if it falls on an unanswered request).
fn quantile_ms(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    match sorted[index] {
        NOT_DONE => f64::INFINITY,
        us => f64::from(us) / 1000.0,
    }
}

/// Offers `rate` requests per second of `op` through `window.warmup` and then `window.measure`,
/// and judges the measured window against `criteria`.
///
/// The dispatcher wakes when the next request is due (tokio's timer: about 1 ms of
/// resolution) and spawns a task for every request due by then; each task sends one request
/// and writes its latency into the request's own slot (an atomic: no lock, no allocation per
/// request beyond the task and the request itself). The client work per request is the
/// task, the request's building and sending by reqwest (a pooled HTTP/1.1 connection per
/// request in flight), and reading the answer.
pub async fn step(
    op: &Op,
    rate: f64,
    window: Window,
    criteria: &Criteria,
    server_pid: Option<u32>,
) -> Step {
    // What earlier steps left in the tally is theirs.
    crate::unexpected::take();
    let warm = (window.warmup.as_secs_f64() * rate).round() as u64;
    let measured = ((window.measure.as_secs_f64() * rate).round() as u64).max(1);
    let total = warm + measured;
    let new_slots = || -> Arc<Vec<AtomicU32>> {
        Arc::new((0..total).map(|_| AtomicU32::new(NOT_DONE)).collect())
    };
    let (latencies, lags) = (new_slots(), new_slots());
    let t0 = Instant::now() + Duration::from_millis(5);
    let due = move |i: u64| t0 + Duration::from_secs_f64(i as f64 / rate);
    let (from, until) = (due(warm), due(total));
    // Reading /proc takes a few ms on a busy machine: off the runtime's workers, so the
    // dispatcher never waits for it.
    let snapshot = move || async move {
        tokio::task::spawn_blocking(move || CpuSnapshot::take(server_pid))
            .await
            .ok()
    };
    let cpu = tokio::spawn(async move {
        tokio::time::sleep_until(from.into()).await;
        let start = snapshot().await;
        tokio::time::sleep_until(until.into()).await;
        let end = snapshot().await;
        start.zip(end).map(|(a, b)| a.until(&b)).unwrap_or_default()
    });
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut over_cap = 0u64;
    let mut tasks = tokio::task::JoinSet::new();
    let mut i = 0u64;
    while i < total {
        tokio::time::sleep_until(due(i).into()).await;
        let now = Instant::now();
        while i < total && due(i) <= now {
            if in_flight.load(Ordering::Relaxed) >= criteria.max_in_flight {
                over_cap += u64::from(i >= warm);
                i += 1;
                continue;
            }
            in_flight.fetch_add(1, Ordering::Relaxed);
            let (op, in_flight) = (op.clone(), in_flight.clone());
            let (latencies, lags) = (latencies.clone(), lags.clone());
            let (index, scheduled) = (i, due(i));
            tasks.spawn(async move {
                let lag = scheduled.elapsed();
                let expected = op(index).await;
                let latency = micros(scheduled.elapsed());
                in_flight.fetch_sub(1, Ordering::Relaxed);
                let slot = usize::try_from(index).unwrap_or(usize::MAX);
                latencies[slot].store(
                    latency | if expected { 0 } else { UNEXPECTED },
                    Ordering::Relaxed,
                );
                lags[slot].store(micros(lag), Ordering::Relaxed);
            });
            i += 1;
        }
        while tasks.try_join_next().is_some() {}
    }
    let _ = tokio::time::timeout_at((until + criteria.grace()).into(), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    // Whatever is still outstanding is given up on: its request (and connection) dropped.
    tasks.shutdown().await;
    let cpu = cpu.await.unwrap_or_default();

    let mut answered_in_window = 0u64;
    let mut sorted = Vec::with_capacity(usize::try_from(measured).unwrap_or(0));
    let mut lag_sorted = Vec::with_capacity(sorted.capacity());
    let (mut ok, mut unexpected, mut not_done) = (0u64, 0u64, 0u64);
    for (index, slot) in latencies.iter().enumerate() {
        let value = slot.load(Ordering::Relaxed);
        let i = index as u64;
        if value != NOT_DONE {
            let answered = due(i) + Duration::from_micros(u64::from(value & !UNEXPECTED));
            answered_in_window += u64::from(answered >= from && answered <= until);
        }
        if i < warm {
            continue;
        }
        if value == NOT_DONE {
            not_done += 1;
            sorted.push(NOT_DONE);
            continue;
        }
        if value & UNEXPECTED == 0 {
            ok += 1;
        } else {
            unexpected += 1;
        }
        sorted.push(value & !UNEXPECTED);
        lag_sorted.push(lags[index].load(Ordering::Relaxed));
    }
    sorted.sort_unstable();
    lag_sorted.sort_unstable();
    let secs = (until - from).as_secs_f64();
    let mut result = Step {
        rate,
        secs,
        scheduled: measured,
        ok,
        unexpected,
        unanswered: not_done - over_cap,
        over_cap,
        achieved: answered_in_window as f64 / secs,
        p50_ms: quantile_ms(&sorted, 0.5),
        p99_ms: quantile_ms(&sorted, 0.99),
        lag_p99_ms: quantile_ms(&lag_sorted, 0.99),
        lag_max_ms: lag_sorted
            .last()
            .map_or(f64::NAN, |us| f64::from(*us) / 1000.0),
        cpu,
        ..Step::default()
    };
    judge(&mut result, criteria);
    result
}

fn judge(step: &mut Step, criteria: &Criteria) {
    let mut failures = Vec::new();
    if step.p99_ms.is_nan() || step.p99_ms > criteria.p99_ms {
        failures.push(format!("p99 {} ms", ms(step.p99_ms)));
    }
    if step.unexpected > 0 {
        failures.push(format!(
            "{} unexpected; the step's, warm-up included: {}",
            step.unexpected,
            crate::unexpected::take()
        ));
    }
    if step.unanswered > 0 {
        failures.push(format!("{} unanswered", step.unanswered));
    }
    if step.over_cap > 0 {
        failures.push(format!("{} over the in-flight cap", step.over_cap));
    }
    if step.achieved < (1.0 - criteria.rate_tolerance) * step.rate {
        failures.push(format!(
            "achieved {:.0}%",
            100.0 * step.achieved / step.rate
        ));
    }
    step.failures = failures;
    step.client_behind = step.lag_p99_ms > criteria.lag_limit_ms();
    let needed = step.rate * criteria.p99_ms / 1000.0;
    step.cap_suspect = step.over_cap > 0 && (criteria.max_in_flight as f64) < 2.0 * needed;
}

/// The steps of one line's search and where it stands.
#[derive(Debug)]
pub struct Search {
    ladder: Ladder,
    pub steps: Vec<Step>,
    /// Indices into `steps`: the highest passing rate and the lowest failing one.
    best: Option<usize>,
    failed: Option<usize>,
}

impl Search {
    pub fn new(ladder: Ladder) -> Self {
        Self {
            ladder,
            steps: Vec::new(),
            best: None,
            failed: None,
        }
    }

    /// The highest rate held: its step.
    pub fn capacity(&self) -> Option<&Step> {
        self.best.map(|i| &self.steps[i])
    }

    /// The lowest rate not held: its step.
    pub fn first_failure(&self) -> Option<&Step> {
        self.failed.map(|i| &self.steps[i])
    }

    /// Whether the search stopped at `--max-rate` with every step passing.
    pub fn reached_max(&self) -> bool {
        self.failed.is_none() && self.capacity().is_some_and(|s| s.rate >= self.ladder.max)
    }

    /// The next rate to try, or `None` when the search is done.
    pub fn next_rate(&self) -> Option<f64> {
        if self.steps.len() >= MAX_STEPS {
            return None;
        }
        let l = &self.ladder;
        let rate = |i: Option<usize>| i.map(|i| self.steps[i].rate);
        let next = match (rate(self.best), rate(self.failed)) {
            (None, None) => l.start.min(l.max).max(MIN_RATE).round(),
            (Some(low), None) => {
                if low >= l.max {
                    return None;
                }
                (low * l.factor).min(l.max).round()
            }
            (None, Some(high)) => (high / l.factor).max(MIN_RATE).round(),
            (Some(low), Some(high)) => {
                if high <= low * (1.0 + l.resolution) {
                    return None;
                }
                (low * high).sqrt().round()
            }
        };
        let tried = |r: Option<f64>| r.is_some_and(|r| (r - next).abs() < 0.5);
        if tried(rate(self.best)) || tried(rate(self.failed)) {
            return None;
        }
        Some(next)
    }

    pub fn record(&mut self, step: Step) {
        let passed = step.passed();
        self.steps.push(step);
        let index = self.steps.len() - 1;
        if passed {
            self.best = Some(index);
        } else {
            self.failed = Some(index);
        }
    }

    /// The rates tried in order, ✓ held, ✗ not (`!` when the client was behind, `r` for a
    /// rerun of a step the client fell behind in).
    pub fn trail(&self) -> String {
        self.steps
            .iter()
            .map(|s| {
                format!(
                    "{:.0}{}{}{}",
                    s.rate,
                    if s.rerun { "r" } else { "" },
                    if s.passed() { "✓" } else { "✗" },
                    if s.client_behind { "!" } else { "" }
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// After a failed step: waits until whatever it left queued has drained (the requests the
/// client gave up on are still in the server's listen backlog and handlers, and may keep it
/// busy for seconds): one second at least, then until the server's CPU use over half a second
/// is under a tenth of a core and a lone request is answered within the p99 limit, twice in a
/// row; 20 s at most. (A lone answer alone proves little: SQLite's busy handler lets a
/// newcomer take the write lock while older waiters sleep.)
async fn settle(op: &Op, criteria: &Criteria, server_pid: Option<u32>) {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let limit = Duration::from_secs_f64(criteria.p99_ms / 1000.0);
    let give_up = Instant::now() + Duration::from_secs(20);
    let (mut i, mut quiet) = (u64::MAX / 2, 0);
    while quiet < 2 && Instant::now() < give_up {
        let before = server_pid.map(process_cpu_ticks);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let busy = before
            .zip(server_pid.map(process_cpu_ticks))
            .is_some_and(|(a, b)| b.saturating_sub(a) as f64 / CPU_TICKS_PER_SEC / 0.5 > 0.1);
        let sent = Instant::now();
        let answered = tokio::time::timeout(Duration::from_secs(2), op(i)).await;
        i += 1;
        if !busy && answered.is_ok() && sent.elapsed() <= limit {
            quiet += 1;
        } else {
            quiet = 0;
        }
    }
}

/// A line to search: its name and its request.
pub struct Line<'a> {
    pub name: &'a str,
    pub op: Op,
    pub server_pid: Option<u32>,
}

/// Searches the capacity of each line, their steps taking turns (one step of the first line,
/// one of the second, …) so that the drifting load of other users of a shared machine hits
/// them alike, as the closed-loop rounds do.
pub async fn search(
    lines: &[Line<'_>],
    ladder: Ladder,
    window: Window,
    criteria: &Criteria,
    label: &str,
) -> Vec<Search> {
    let mut searches: Vec<Search> = lines.iter().map(|_| Search::new(ladder)).collect();
    loop {
        let mut progressed = false;
        for (line, search) in lines.iter().zip(searches.iter_mut()) {
            let Some(rate) = search.next_rate() else {
                continue;
            };
            progressed = true;
            let mut result = step(&line.op, rate, window, criteria, line.server_pid).await;
            eprintln!("[{label}] {}: {}", line.name, result.summary());
            // The client, not the server, may have failed this step (on a shared machine it
            // can lose its core for tens of ms); and a step failed before any has passed may
            // be one pause of the machine at a low first rate, from which the search would
            // bisect downward. Either way: run it once more, and keep the rerun.
            let doubtful = result.client_behind || search.capacity().is_none();
            if !result.passed() && doubtful {
                settle(&line.op, criteria, line.server_pid).await;
                result = step(&line.op, rate, window, criteria, line.server_pid).await;
                result.rerun = true;
                eprintln!("[{label}] {}: rerun: {}", line.name, result.summary());
            }
            let failed = !result.passed();
            search.record(result);
            if failed {
                settle(&line.op, criteria, line.server_pid).await;
            }
        }
        if !progressed {
            return searches;
        }
    }
}
