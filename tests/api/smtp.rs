//! A real SMTP server in-process (mailin-embedded) that keeps what it receives. Recipients
//! whose address contains `reject` are refused with a permanent 550.

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailin_embedded::response::{NO_MAILBOX, OK};
use mailin_embedded::{Handler, Response, Server, SslConfig};

/// One message as the server received it.
#[derive(Clone, Debug)]
pub struct Received {
    pub to: Vec<String>,
    pub data: Vec<u8>,
}

impl Received {
    pub fn parsed(&self) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default()
            .parse(&self.data)
            .expect("a parseable message")
    }

    pub fn subject(&self) -> String {
        self.parsed().subject().unwrap_or_default().to_owned()
    }

    pub fn text(&self) -> String {
        self.parsed()
            .body_text(0)
            .map(|t| t.into_owned())
            .unwrap_or_default()
    }

    pub fn html(&self) -> String {
        self.parsed()
            .body_html(0)
            .map(|t| t.into_owned())
            .unwrap_or_default()
    }

    /// The six-digit code a code email carries (the first word of its text part).
    pub fn code(&self) -> String {
        let text = self.text();
        let code: String = text.chars().take_while(char::is_ascii_digit).collect();
        assert_eq!(code.len(), 6, "no code at the start of: {text}");
        code
    }
}

#[derive(Clone)]
struct Sink {
    store: Arc<Mutex<Vec<Received>>>,
    started: Arc<AtomicUsize>,
    /// How long the end of each message's data waits before it is accepted.
    delay: Duration,
    to: Vec<String>,
    data: Vec<u8>,
}

impl Handler for Sink {
    fn mail(&mut self, _ip: std::net::IpAddr, _domain: &str, _from: &str) -> Response {
        self.started.fetch_add(1, Ordering::SeqCst);
        self.to.clear();
        self.data.clear();
        OK
    }

    fn rcpt(&mut self, to: &str) -> Response {
        if to.contains("reject") {
            return NO_MAILBOX;
        }
        self.to.push(to.to_owned());
        OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        // A real wait on purpose: a slow server, so a test can act while a message is sent.
        std::thread::sleep(self.delay);
        let received = Received {
            to: std::mem::take(&mut self.to),
            data: std::mem::take(&mut self.data),
        };
        self.store.lock().unwrap().push(received);
        OK
    }
}

pub struct SmtpSink {
    pub port: u16,
    store: Arc<Mutex<Vec<Received>>>,
    started: Arc<AtomicUsize>,
}

impl SmtpSink {
    /// Starts on a free port.
    pub fn start() -> Self {
        Self::start_on(0)
    }

    /// Starts on `port` (0: any free one). The server runs until the test process exits.
    pub fn start_on(port: u16) -> Self {
        Self::start_with(port, Duration::ZERO)
    }

    /// Starts on a free port; each message is accepted only `delay` after its data ended, so a
    /// test can act while a message is being sent.
    pub fn start_slow(delay: Duration) -> Self {
        Self::start_with(0, delay)
    }

    fn start_with(port: u16, delay: Duration) -> Self {
        // A given port (a sink coming back up) may still be held for a moment by another
        // socket of this busy test process: try for a few seconds before giving up.
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", port)) {
                Ok(listener) => break listener,
                Err(error) if port != 0 && tries < 50 => {
                    tries += 1;
                    eprintln!("SMTP port {port}: {error}; trying again");
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(error) => panic!("SMTP port {port}: {error}"),
            }
        };
        let port = listener.local_addr().unwrap().port();
        let store = Arc::new(Mutex::new(Vec::new()));
        let started = Arc::new(AtomicUsize::new(0));
        let handler = Sink {
            store: store.clone(),
            started: started.clone(),
            delay,
            to: Vec::new(),
            data: Vec::new(),
        };
        let mut server = Server::new(handler);
        server
            .with_name("sink.test")
            // lettre pools connections and mailin blocks a thread per connection: room for both.
            .with_num_threads(64)
            .with_ssl(SslConfig::None)
            .expect("plain SMTP")
            .with_tcp_listener(listener);
        std::thread::spawn(move || {
            // Runs until the process exits; an error here shows up as missing messages.
            let _ = server.serve();
        });
        Self {
            port,
            store,
            started,
        }
    }

    /// How many messages a client has begun to send (MAIL FROM seen), finished or not.
    pub fn started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn received(&self) -> Vec<Received> {
        self.store.lock().unwrap().clone()
    }

    /// Waits until at least `count` messages arrived (panics after `timeout`).
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} of {count} messages arrived within {timeout:?}",
                received.len()
            );
            // Polling: messages arrive on the sender's own time.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every message to `address` so far, oldest first.
    pub fn messages_to(&self, address: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|m| m.to.iter().any(|to| to == address))
            .collect()
    }

    /// Waits until `address` has received `n` messages and returns the `n`th.
    pub async fn wait_for_nth_message_to(&self, address: &str, n: usize) -> Received {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(found) = self.messages_to(address).into_iter().nth(n - 1) {
                return found;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "message {n} to {address} never arrived"
            );
            // Polling: messages arrive on the sender's own time.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits for the first message to `address`.
    pub async fn wait_for_message_to(&self, address: &str, timeout: Duration) -> Received {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(found) = self
                .received()
                .into_iter()
                .find(|m| m.to.iter().any(|to| to == address))
            {
                return found;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no message to {address} within {timeout:?}"
            );
            // Polling: messages arrive on the sender's own time.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A port with nothing listening, to play an SMTP server that is down.
pub fn unused_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
