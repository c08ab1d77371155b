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
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::Instant;

use tokio::sync::oneshot;

/// A handle to the timer thread; the thread ends when the last handle is dropped.
#[derive(Clone)]
pub struct PreciseTimer {
    requests: Sender<Wake>,
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
        let (requests, received) = mpsc::channel();
        std::thread::Builder::new()
            .name("codeward-timer".to_owned())
            .spawn(move || run(&received))?;
        Ok(Self { requests })
    }

    /// Resolves at `deadline` (at once if it has passed).
    pub async fn sleep_until(&self, deadline: Instant) {
        if deadline <= Instant::now() {
            return;
        }
        let (done, woken) = oneshot::channel();
        let wake = Wake { at: deadline, done };
        // Without the thread nobody would wake us, so a failed send goes on at once.
        if self.requests.send(wake).is_ok() {
            let _ = woken.await;
        }
    }
}

fn run(received: &Receiver<Wake>) {
    let mut due: BinaryHeap<Reverse<Wake>> = BinaryHeap::new();
    loop {
        let next = due.peek().map(|Reverse(wake)| wake.at);
        let request = match next {
            Some(at) => received.recv_timeout(at.saturating_duration_since(Instant::now())),
            None => received.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match request {
            Ok(wake) => due.push(Reverse(wake)),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                // No handle is left, so no one is sleeping either: release what remains.
                for Reverse(wake) in due.drain() {
                    let _ = wake.done.send(());
                }
                return;
            }
        }
        let now = Instant::now();
        while due.peek().is_some_and(|Reverse(wake)| wake.at <= now) {
            if let Some(Reverse(wake)) = due.pop() {
                // The sleeper may have gone (a dropped request); nothing to do then.
                let _ = wake.done.send(());
            }
        }
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
        // The 30 ms sleeper woke last, the 20 ms one third, after both 10 ms ones.
        let order: Vec<usize> = woke.iter().map(|(_, ticket)| *ticket).collect();
        assert_eq!((order[0], order[2]), (3, 2), "wake order {order:?}");
    }
}
