//! The equal-time grid of the operations that must not reveal whether an account exists.

use std::time::{Duration, Instant};

use poem::{Endpoint, Request, Response, Result};

use crate::http::AppState;
use crate::http::middleware::{WakeOutbox, wake_outbox};

/// The `transform` of every operation whose answer must not reveal whether an account exists.
/// They run the same statements for known and unknown addresses, yet not on equally warm data:
/// a real account's rows are colder in the CPU and database caches than the decoys', and a
/// pending account's resend revokes the code it had. Tens to hundreds of microseconds, which a
/// few hundred samples can pick up. So the answer waits for the next multiple of
/// `CODEWARD_EQUAL_TIME_STEP_MS` since the operation began, on `infra::timer`: below the
/// step, how long the work took does not show.
///
/// The email worker is woken only after the wait (`wake_outbox` around it): woken during the
/// wait, it kept the machine busy and woke the waiting request sooner than an idle machine did.
pub fn equal_time<E: Endpoint<Output = Response>>(next: E) -> WakeOutbox<EqualTime<E>> {
    wake_outbox(EqualTime { next })
}

pub struct EqualTime<E> {
    next: E,
}

impl<E: Endpoint<Output = Response>> Endpoint for EqualTime<E> {
    type Output = Response;

    async fn call(&self, request: Request) -> Result<Self::Output> {
        let started = Instant::now();
        let state = request.data::<AppState>().cloned();
        let step = state.as_ref().map_or(Duration::ZERO, |state| {
            Duration::from_millis(state.config.equal_time_step_ms)
        });
        let result = self.next.call(request).await;
        if let Some(state) = &state {
            // Not tokio's timer: see `infra::timer` for why its wake-up time gives the work away.
            let deadline = started + on_grid(started.elapsed(), step);
            state.timer.sleep_until(deadline).await;
        }
        result
    }
}

/// `elapsed` rounded up to a whole number of `step`s, at least one; `elapsed` itself when the
/// step is zero.
fn on_grid(elapsed: Duration, step: Duration) -> Duration {
    if step.is_zero() {
        return elapsed;
    }
    let steps = elapsed.as_nanos().div_ceil(step.as_nanos()).max(1);
    step.saturating_mul(u32::try_from(steps).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_land_on_the_next_step() {
        let ms = Duration::from_millis;
        let step = ms(10);
        assert_eq!(on_grid(Duration::ZERO, step), ms(10));
        assert_eq!(on_grid(Duration::from_micros(830), step), ms(10));
        assert_eq!(on_grid(ms(10), step), ms(10));
        assert_eq!(on_grid(Duration::from_micros(10_001), step), ms(20));
        assert_eq!(on_grid(ms(57), step), ms(60));
        assert_eq!(on_grid(ms(57), Duration::ZERO), ms(57));
    }
}
