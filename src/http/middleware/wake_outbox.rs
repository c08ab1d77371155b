//! The one place that wakes the email worker for a request: after the answer of an operation
//! that may have enqueued an email. Use-cases only enqueue, inside their transaction.

use std::time::Duration;

use poem::{Endpoint, Request, Response, Result};
use rand::Rng;

use crate::http::AppState;

/// The email worker starts on an email at a random moment this long after the answer, so its
/// work lands on no request in particular (woken right as an answer left, it slowed that answer
/// down by 0.05–0.15 ms on the development machine, enough to tell a real email from none).
const WAKE_WITHIN: Duration = Duration::from_millis(100);

/// The `transform` of every operation that may enqueue an email (`equal_time` includes it):
/// after a success, whichever the path, the worker is woken.
pub fn wake_outbox<E: Endpoint<Output = Response>>(next: E) -> WakeOutbox<E> {
    WakeOutbox { next }
}

pub struct WakeOutbox<E> {
    next: E,
}

impl<E: Endpoint<Output = Response>> Endpoint for WakeOutbox<E> {
    type Output = Response;

    async fn call(&self, request: Request) -> Result<Self::Output> {
        let state = request.data::<AppState>().cloned();
        let result = self.next.call(request).await;
        let succeeded = result.as_ref().is_ok_and(|r| r.status().is_success());
        if let Some(state) = state.filter(|_| succeeded) {
            let delay = rand::rng().random_range(Duration::ZERO..WAKE_WITHIN);
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                state.outbox.wake();
            });
        }
        result
    }
}
