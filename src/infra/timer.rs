//! A timer that wakes a task at its deadline, whenever the task went to sleep.
//!
//! Tokio's timer cannot do this: an idle runtime parks in `epoll_wait`, whose timeout is whole
//! milliseconds counted from the moment it parks, so a task sleeping until a fixed deadline
//! wakes a whole number of milliseconds after the runtime last went idle. The sub-millisecond
//! part of its wake-up time is then the sub-millisecond part of when the work before the sleep
//! ended, which is what the equal-time grid must hide. This timer's thread waits on a futex
//! with a nanosecond timeout instead, and wakes the task at the deadline plus the kernel's
//! timer slack, whatever happened before.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use tokio::sync::oneshot;

/// A handle to the timer thread; the thread ends when the last handle is dropped.
#[derive(Clone)]
pub struct PreciseTimer {
    shared: Arc<Shared>,
    _alive: Arc<Alive>,
}

/// What the thread and the sleepers share. A new sleeper wakes the thread only when it is due
/// before every other one: sleepers of the equal-time grid mostly come in deadline order, so
/// most go to sleep without a wake-up of the thread (a futex call and a context switch each).
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    due: BinaryHeap<Reverse<Wake>>,
    /// When the thread wakes next by itself (`None`: it waits for a sleeper).
    armed: Option<Instant>,
    closed: bool,
}

/// Dropped with the last handle: tells the thread to end.
struct Alive(Arc<Shared>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.lock().closed = true;
        self.0.changed.notify_one();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding it; and the heap is whole whatever happened.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Ordered by deadline alone: wake-ups due at the same instant go in any order.
struct Wake {
    at: Instant,
    done: oneshot::Sender<()>,
}

impl PartialEq for Wake {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}

impl Eq for Wake {}

impl PartialOrd for Wake {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Wake {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.at.cmp(&other.at)
    }
}

impl PreciseTimer {
    pub fn start() -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::default(),
            changed: Condvar::new(),
        });
        let thread = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("codeward-timer".to_owned())
            .spawn(move || run(&thread))?;
        Ok(Self {
            _alive: Arc::new(Alive(Arc::clone(&shared))),
            shared,
        })
    }

    /// Resolves at `deadline` (at once if it has passed).
    pub async fn sleep_until(&self, deadline: Instant) {
        if deadline <= Instant::now() {
            return;
        }
        let (done, woken) = oneshot::channel();
        self.enqueue(Wake { at: deadline, done });
        let _ = woken.await;
    }

    fn enqueue(&self, wake: Wake) {
        let deadline = wake.at;
        let mut state = self.shared.lock();
        state.due.push(Reverse(wake));
        let first = state.armed.is_none_or(|armed| deadline < armed);
        if first {
            // The thread sleeps past this deadline: it sets its alarm again.
            state.armed = Some(deadline);
        }
        drop(state);
        if first {
            self.shared.changed.notify_one();
        }
    }
}

fn run(shared: &Shared) {
    let mut state = shared.lock();
    loop {
        if state.closed {
            // No handle is left, so no one is sleeping either: release what remains.
            for Reverse(wake) in state.due.drain() {
                let _ = wake.done.send(());
            }
            return;
        }
        let now = Instant::now();
        while state.due.peek().is_some_and(|Reverse(wake)| wake.at <= now) {
            if let Some(Reverse(wake)) = state.due.pop() {
                // The sleeper may have gone (a dropped request); nothing to do then.
                let _ = wake.done.send(());
            }
        }
        let next = state.due.peek().map(|Reverse(wake)| wake.at);
        state.armed = next;
        state = match next {
            Some(at) => {
                let timeout = at.saturating_duration_since(Instant::now());
                let waited = shared.changed.wait_timeout(state, timeout);
                waited.map_or_else(|poisoned| poisoned.into_inner().0, |(state, _)| state)
            }
            None => shared
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner),
        };
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn sleepers_wake_at_their_deadlines_in_order() {
        let timer = PreciseTimer::start().unwrap();
        let start = Instant::now();
        let deadlines = [30, 10, 20, 10].map(|ms| start + Duration::from_millis(ms));
        // Each sleeper is a task of its own, taking a ticket when it wakes: the tickets give
        // the order the timer woke them in. (Timestamps taken by futures polled together
        // would give the order they were polled in, which a busy machine can change.)
        let tickets = Arc::new(AtomicUsize::new(0));
        let sleepers: Vec<_> = deadlines
            .iter()
            .map(|&deadline| {
                let timer = timer.clone();
                let tickets = tickets.clone();
                tokio::spawn(async move {
                    timer.sleep_until(deadline).await;
                    let woke = Instant::now();
                    (woke, tickets.fetch_add(1, Ordering::SeqCst))
                })
            })
            .collect();
        let mut woke = Vec::new();
        for sleeper in sleepers {
            woke.push(sleeper.await.unwrap());
        }
        for (deadline, (woke, _)) in deadlines.iter().zip(&woke) {
            assert!(woke >= deadline, "woke {:?} early", *deadline - *woke);
        }
        // A sleeper due before the one the thread waited for is not held up to it.
        assert!(
            woke[1].0 < deadlines[0],
            "the 10 ms sleeper waited for the 30 ms one"
        );
        // The 30 ms sleeper woke last, the 20 ms one third, after both 10 ms ones.
        let order: Vec<usize> = woke.iter().map(|(_, ticket)| *ticket).collect();
        assert_eq!((order[0], order[2]), (3, 2), "wake order {order:?}");
    }
}
