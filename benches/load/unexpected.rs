//! What the unexpected answers were: a tally by status (or "no answer"), so a failed step says
//! whether the server shed load (503), refused (429) or failed (500).

use std::collections::BTreeMap;
use std::sync::Mutex;

static TALLY: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());

/// Counts one unexpected answer: its status, or why there was none.
pub fn note(what: impl Into<String>) {
    if let Ok(mut tally) = TALLY.lock() {
        *tally.entry(what.into()).or_default() += 1;
    }
}

/// Why a request got no answer, as the tally says it: `no answer (timeout)`, or the kind of
/// failure and its innermost cause (`no answer (request: connection reset by peer)`).
pub fn no_answer(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        return "no answer (timeout)".to_owned();
    } else if error.is_connect() {
        "connect"
    } else if error.is_body() || error.is_decode() {
        "body"
    } else {
        "request"
    };
    let mut cause: &dyn std::error::Error = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    format!("no answer ({kind}: {cause})")
}

/// The tally since the last call (`503 × 17, no answer × 2`), and a fresh one.
pub fn take() -> String {
    let tally = TALLY
        .lock()
        .map(|mut t| std::mem::take(&mut *t))
        .unwrap_or_default();
    tally
        .iter()
        .map(|(what, n)| format!("{what} × {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}
