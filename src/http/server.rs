//! The HTTP server under the endpoint: accepts TCP connections, at most `max_connections` at
//! once, serves HTTP/1.1 and HTTP/2 without TLS (h2c, prior knowledge) through hyper, and closes
//! a connection whose request head arrives too slowly or that sits idle.
//!
//! poem's own `Server` sets neither a deadline for request heads nor a cap on connections, nor
//! the size of an HTTP/1.1 head, and its idle timeout waits forever for a request that stalls
//! mid-way; so codeward drives hyper-util itself, as poem does, with these limits.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use poem::endpoint::BoxEndpoint;
use poem::http::uri::Scheme;
use poem::http::{Request as HttpRequest, Version};
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Addr, Endpoint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::config::Config;
use crate::infra::metrics::Metrics;

/// What one listener allows each connection, from the `CODEWARD_*` settings.
#[derive(Clone, Debug)]
pub struct ConnectionLimits {
    /// How long a request head may take to arrive in full.
    pub header_read_timeout: Duration,
    /// How long a connection may stay open with no request in progress, or, during one, with
    /// nothing read or written.
    pub idle_timeout: Duration,
    /// Connections open at once; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// SETTINGS_MAX_CONCURRENT_STREAMS of an HTTP/2 connection.
    pub http2_max_streams: u32,
    /// Largest request head (HTTP/1.1) or header list (HTTP/2), in bytes.
    pub max_header_bytes: usize,
}

impl ConnectionLimits {
    pub fn from_config(config: &Config) -> Self {
        Self {
            header_read_timeout: Duration::from_secs(config.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(config.idle_timeout_secs),
            max_connections: usize::try_from(config.max_connections).unwrap_or(usize::MAX),
            http2_max_streams: config.http2_max_streams,
            max_header_bytes: usize::try_from(config.max_header_bytes).unwrap_or(usize::MAX),
        }
    }
}

/// One listener and what it serves.
pub struct HttpServer {
    pub listener: TcpListener,
    pub endpoint: BoxEndpoint<'static>,
    pub limits: ConnectionLimits,
    /// Where open connections and deadline closes are counted (the main listener's only).
    pub metrics: Option<Metrics>,
}

impl HttpServer {
    /// Serves until `signal` completes; then stops accepting, lets every connection finish
    /// the requests it has in progress (HTTP/1.1 closes after its answer, HTTP/2 sends
    /// GOAWAY), and after `grace` drops the connections still open.
    pub async fn run(self, signal: impl Future<Output = ()>, grace: Duration) {
        let Self {
            listener,
            endpoint,
            limits,
            metrics,
        } = self;
        let endpoint = Arc::new(endpoint);
        let limits = Arc::new(limits);
        let slots = Arc::new(Semaphore::new(limits.max_connections));
        let (stop, stopping) = watch::channel(false);
        let mut connections = JoinSet::new();
        tokio::pin!(signal);
        loop {
            while let Some(ended) = connections.try_join_next() {
                log_panic(ended);
            }
            // A free slot first: until one is free, new connections wait in the backlog,
            // and those already open keep being served.
            let slot = tokio::select! {
                () = &mut signal => break,
                slot = slots.clone().acquire_owned() => slot,
            };
            let Ok(slot) = slot else { break };
            let accepted = tokio::select! {
                () = &mut signal => break,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "cannot accept a connection");
                    // Out of file descriptors, say: retrying at once would spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let connection = Connection {
                endpoint: endpoint.clone(),
                limits: limits.clone(),
                metrics: metrics.clone(),
                stopping: stopping.clone(),
                peer,
            };
            connections.spawn(async move {
                connection.serve(stream).await;
                drop(slot);
            });
        }
        drop(listener);
        // No receiver left means no connection left to tell.
        let _ = stop.send(true);
        let drained = tokio::time::timeout(grace, async {
            while let Some(ended) = connections.join_next().await {
                log_panic(ended);
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                open = connections.len(),
                "connections still open after the grace period; closing them"
            );
            connections.shutdown().await;
        }
    }
}

/// A connection's task ended; hyper or a body may have panicked, which the handlers' own
/// panic catching does not see.
fn log_panic(ended: Result<(), tokio::task::JoinError>) {
    if let Err(error) = ended
        && error.is_panic()
    {
        tracing::error!(%error, "a connection's task panicked");
    }
}

/// One accepted connection and what it needs to serve it.
struct Connection {
    endpoint: Arc<BoxEndpoint<'static>>,
    limits: Arc<ConnectionLimits>,
    metrics: Option<Metrics>,
    stopping: watch::Receiver<bool>,
    peer: SocketAddr,
}

impl Connection {
    async fn serve(mut self, stream: TcpStream) {
        let Ok(local) = stream.local_addr() else {
            return;
        };
        let _open = self.metrics.clone().map(OpenConnection::new);
        let clock = Arc::new(ConnectionClock::new(&self.limits));
        let service = {
            let endpoint = self.endpoint.clone();
            let clock = clock.clone();
            let (local, remote) = (
                LocalAddr(Addr::SocketAddr(local)),
                RemoteAddr(Addr::SocketAddr(self.peer)),
            );
            hyper::service::service_fn(move |request: HttpRequest<Incoming>| {
                // Here, not in the future: hyper calls this as soon as a head is parsed, on
                // the connection's own task, before it reads on.
                let in_progress = clock.request_started(request.version());
                let endpoint = endpoint.clone();
                let request =
                    poem::Request::from((request, local.clone(), remote.clone(), Scheme::HTTP));
                async move {
                    let response = endpoint.get_response(request).await;
                    drop(in_progress);
                    Ok::<hyper::Response<_>, Infallible>(response.into())
                }
            })
        };
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // The read buffer bounds an HTTP/1.1 head: hyper answers 431 when a head fills it.
        // hyper panics under 8 KiB, which the setting's range never goes below.
        builder
            .http1()
            .max_buf_size(self.limits.max_header_bytes.max(8192));
        builder
            .http2()
            .max_concurrent_streams(self.limits.http2_max_streams)
            .max_header_list_size(u32::try_from(self.limits.max_header_bytes).unwrap_or(u32::MAX));
        let io = TokioIo::new(Clocked {
            inner: stream,
            clock: clock.clone(),
        });
        let connection = builder.serve_connection(io, service);
        tokio::pin!(connection);
        let mut draining = false;
        loop {
            let (deadline, _) = clock.deadline();
            tokio::select! {
                served = connection.as_mut() => {
                    if let Err(error) = served {
                        tracing::debug!(peer = %self.peer, %error, "connection ended with an error");
                    }
                    break;
                }
                () = tokio::time::sleep_until(deadline) => {
                    // The deadline may have moved on while this slept.
                    let (deadline, reason) = clock.deadline();
                    if deadline <= Instant::now() {
                        tracing::debug!(peer = %self.peer, reason, "closing the connection");
                        if let Some(metrics) = &self.metrics {
                            metrics.connection_closed(reason);
                        }
                        // Dropping the connection closes the socket.
                        break;
                    }
                }
                () = clock.head_started.notified() => {}
                _ = self.stopping.changed(), if !draining => {
                    draining = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Counts a connection as open until dropped, however its task ends (aborted included).
struct OpenConnection(Metrics);

impl OpenConnection {
    fn new(metrics: Metrics) -> Self {
        metrics.connection(true);
        Self(metrics)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connection(false);
    }
}

/// A moment of one connection, in milliseconds since it was accepted.
type Millis = u64;
const NEVER: Millis = Millis::MAX;

/// What a connection has been doing, and so when it must be closed. Updated by its reads and
/// writes and by the service as requests start and end; read by the connection's task.
struct ConnectionClock {
    accepted: Instant,
    header_read_timeout: Millis,
    idle_timeout: Millis,
    /// The last byte read or written.
    last_io: AtomicU64,
    /// Since when a request head has been arriving; `NEVER` while none is. A new connection's
    /// first head is due from the moment it was accepted.
    head_since: AtomicU64,
    /// When the last request in progress ended (or the connection was accepted).
    idle_since: AtomicU64,
    in_progress: AtomicUsize,
    /// HTTP/2: streams interleave, so a read says nothing about where a request head begins;
    /// only the first request's deadline and the idle timeout apply.
    multiplexed: AtomicBool,
    /// Wakes the connection's task when a head starts, whose deadline may come first.
    head_started: Notify,
}

impl ConnectionClock {
    fn new(limits: &ConnectionLimits) -> Self {
        let millis = |duration: Duration| Millis::try_from(duration.as_millis()).unwrap_or(NEVER);
        Self {
            accepted: Instant::now(),
            header_read_timeout: millis(limits.header_read_timeout),
            idle_timeout: millis(limits.idle_timeout),
            last_io: AtomicU64::new(0),
            head_since: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
            in_progress: AtomicUsize::new(0),
            multiplexed: AtomicBool::new(false),
            head_started: Notify::new(),
        }
    }

    fn now(&self) -> Millis {
        Millis::try_from(self.accepted.elapsed().as_millis()).unwrap_or(NEVER - 1)
    }

    fn at(&self, millis: Millis) -> Instant {
        self.accepted + Duration::from_millis(millis)
    }

    fn read(&self) {
        let now = self.now();
        self.last_io.store(now, Ordering::Relaxed);
        // Between HTTP/1.1 requests, the first byte read begins the next head.
        if !self.multiplexed.load(Ordering::Relaxed)
            && self.in_progress.load(Ordering::Relaxed) == 0
            && self
                .head_since
                .compare_exchange(NEVER, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.head_started.notify_one();
        }
    }

    fn wrote(&self) {
        self.last_io.store(self.now(), Ordering::Relaxed);
    }

    /// A whole head has arrived; the request is in progress until the guard is dropped.
    fn request_started(self: &Arc<Self>, version: Version) -> InProgress {
        if version >= Version::HTTP_2 {
            self.multiplexed.store(true, Ordering::Relaxed);
        }
        self.in_progress.fetch_add(1, Ordering::Relaxed);
        self.head_since.store(NEVER, Ordering::Relaxed);
        InProgress(self.clone())
    }

    /// When the connection must be closed if nothing changes, and why.
    fn deadline(&self) -> (Instant, &'static str) {
        let head_since = self.head_since.load(Ordering::Relaxed);
        if head_since != NEVER {
            let due = head_since.saturating_add(self.header_read_timeout);
            return (self.at(due), "header_timeout");
        }
        let quiet_since = if self.in_progress.load(Ordering::Relaxed) == 0 {
            self.idle_since.load(Ordering::Relaxed)
        } else {
            // A request in progress: only a connection on which nothing moves is idle.
            self.last_io.load(Ordering::Relaxed)
        };
        let due = quiet_since.saturating_add(self.idle_timeout);
        (self.at(due), "idle_timeout")
    }
}

/// A request in progress on a connection; dropping it (answered or abandoned) ends it.
struct InProgress(Arc<ConnectionClock>);

impl Drop for InProgress {
    fn drop(&mut self) {
        let clock = &self.0;
        if clock.in_progress.fetch_sub(1, Ordering::Relaxed) == 1 {
            clock.idle_since.store(clock.now(), Ordering::Relaxed);
        }
    }
}

/// A socket that tells its connection's clock about every read and write.
struct Clocked {
    inner: TcpStream,
    clock: Arc<ConnectionClock>,
}

impl AsyncRead for Clocked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.clock.read();
        }
        polled
    }
}

impl AsyncWrite for Clocked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(written)) if written > 0) {
            self.clock.wrote();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(written)) if written > 0) {
            self.clock.wrote();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock() -> Arc<ConnectionClock> {
        Arc::new(ConnectionClock::new(&ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            max_connections: 1,
            http2_max_streams: 1,
            max_header_bytes: 8192,
        }))
    }

    /// Which deadline is next, and about how far from the connection's start (the test runs
    /// in well under a second).
    fn next(clock: &ConnectionClock) -> (u64, &'static str) {
        let (at, reason) = clock.deadline();
        ((at - clock.accepted).as_secs(), reason)
    }

    #[test]
    fn an_http1_connection_owes_a_head_then_may_idle_then_owes_the_next_head() {
        let clock = clock();
        assert_eq!(
            next(&clock),
            (10, "header_timeout"),
            "a new connection's first head"
        );
        clock.read();
        assert_eq!(
            next(&clock),
            (10, "header_timeout"),
            "its first byte changes nothing"
        );

        let request = clock.request_started(Version::HTTP_11);
        assert_eq!(
            next(&clock),
            (75, "idle_timeout"),
            "in progress: only silence counts"
        );
        clock.read();
        assert_eq!(
            next(&clock),
            (75, "idle_timeout"),
            "body bytes begin no head"
        );
        drop(request);
        assert_eq!(next(&clock), (75, "idle_timeout"), "between requests");

        clock.read();
        assert_eq!(
            next(&clock),
            (10, "header_timeout"),
            "the next head's first byte"
        );
    }

    #[test]
    fn an_http2_connection_owes_only_its_first_head() {
        let clock = clock();
        let request = clock.request_started(Version::HTTP_2);
        let concurrent = clock.request_started(Version::HTTP_2);
        drop(request);
        assert_eq!(
            next(&clock),
            (75, "idle_timeout"),
            "a stream still in progress"
        );
        drop(concurrent);

        clock.read();
        clock.wrote();

        assert_eq!(
            next(&clock),
            (75, "idle_timeout"),
            "frames between requests (pings, settings) begin no head"
        );
    }
}
