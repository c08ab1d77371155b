//! A real SMTP server in this process (mailin-embedded) that the server under test delivers to.
//! It counts every message and keeps the text of those sent to addresses starting with
//! `keep_prefix`, so a flow can read its code as a user would.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mailin_embedded::response::OK;
use mailin_embedded::{Handler, Response, Server, SslConfig};

type Kept = Arc<Mutex<HashMap<String, Vec<Vec<u8>>>>>;

#[derive(Clone)]
struct Receiver {
    keep_prefix: &'static str,
    kept: Kept,
    count: Arc<AtomicU64>,
    to: Vec<String>,
    data: Vec<u8>,
}

impl Handler for Receiver {
    fn mail(&mut self, _ip: std::net::IpAddr, _domain: &str, _from: &str) -> Response {
        self.to.clear();
        self.data.clear();
        OK
    }

    fn rcpt(&mut self, to: &str) -> Response {
        self.to.push(to.to_owned());
        OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if self.to.iter().any(|to| to.starts_with(self.keep_prefix)) {
            self.data.extend_from_slice(buf);
        }
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        self.count.fetch_add(1, Ordering::Relaxed);
        let data = std::mem::take(&mut self.data);
        if !data.is_empty()
            && let Ok(mut kept) = self.kept.lock()
        {
            for to in self.to.drain(..) {
                kept.entry(to).or_default().push(data.clone());
            }
        }
        OK
    }
}

#[derive(Clone)]
pub struct SmtpSink {
    pub port: u16,
    kept: Kept,
    count: Arc<AtomicU64>,
}

impl SmtpSink {
    pub fn start(keep_prefix: &'static str) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let kept = Kept::default();
        let count = Arc::new(AtomicU64::new(0));
        let receiver = Receiver {
            keep_prefix,
            kept: kept.clone(),
            count: count.clone(),
            to: Vec::new(),
            data: Vec::new(),
        };
        let mut server = Server::new(receiver);
        server
            .with_name("sink.bench")
            // A thread per connection: room for the server's pooled connections.
            .with_num_threads(32)
            .with_ssl(SslConfig::None)
            .map_err(|e| anyhow::anyhow!("SMTP sink: {e}"))?
            .with_tcp_listener(listener);
        std::thread::spawn(move || {
            // Runs until the process exits; a failure shows up as codes that never arrive.
            let _ = server.serve();
        });
        Ok(Self { port, kept, count })
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Messages received so far, to any address.
    pub fn received(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Waits until no message arrived for `quiet` (at most `limit`).
    pub async fn wait_until_quiet(&self, quiet: Duration, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut last = self.received();
        while Instant::now() < deadline {
            tokio::time::sleep(quiet).await;
            let now = self.received();
            if now == last {
                return;
            }
            last = now;
        }
    }

    /// Messages kept for `to` so far.
    pub fn count_for(&self, to: &str) -> usize {
        self.kept
            .lock()
            .map(|kept| kept.get(to).map_or(0, Vec::len))
            .unwrap_or(0)
    }

    /// Waits for the `(seen + 1)`th message to `to` and returns the code it carries (the
    /// digits its text part starts with).
    pub async fn code_after(&self, to: &str, seen: usize, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let message = self
                .kept
                .lock()
                .ok()
                .and_then(|kept| kept.get(to).and_then(|all| all.get(seen).cloned()));
            if let Some(data) = message {
                let parsed = mail_parser::MessageParser::default().parse(&data)?;
                let text = parsed.body_text(0)?;
                let code: String = text.chars().take_while(char::is_ascii_digit).collect();
                return (code.len() == 6).then_some(code);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}
