//! Builds the application from a `Config`: listeners, database, migrations, routes; runs it
//! until SIGTERM or Ctrl-C, letting in-flight requests finish.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use poem::middleware::CatchPanic;
use poem::{Endpoint, EndpointExt, IntoEndpoint, Route};
use tokio::net::TcpListener;

use crate::app::Services;
use crate::config::Config;
use crate::core::codes::CodeEngine;
use crate::core::keys::{Keys, Maintenance, RING_TTL, Rotate};
use crate::core::limits::{AddressLimits, IpLimits};
use crate::core::mail::worker::{Worker, WorkerSettings};
use crate::core::mail::{OutboxSignal, Templates, Transport};
use crate::core::passwords::Passwords;
use crate::core::tokens::Tokens;
use crate::core::webhooks::Webhooks;
use crate::core::webhooks::worker::{WebhookSettings, WebhookWorker};
use crate::http::middleware::{BodyLimit, RequestContext, RequestMetrics, UniqueJsonMembers};
use crate::http::problem::{error_to_problem, panic_to_problem};
use crate::http::server::{ConnectionLimits, HttpServer};
use crate::http::{self, AppState};
use crate::infra::clock::Clock;
use crate::infra::db;

pub struct Application {
    listener: TcpListener,
    local_addr: std::net::SocketAddr,
    endpoint: poem::endpoint::BoxEndpoint<'static>,
    limits: ConnectionLimits,
    shutdown_grace: Duration,
    worker: Worker,
    /// Present when `CODEWARD_WEBHOOK_URL` is set.
    webhook_worker: Option<WebhookWorker>,
    services: AppState,
    metrics_listener: Option<(TcpListener, std::net::SocketAddr)>,
}

impl Application {
    /// Binds the listeners, connects to the database and applies pending migrations (unless
    /// told not to); port 0 picks a free port, which `port()` then tells.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Clock::default()).await
    }

    /// `build` with a clock the caller may move (tests expire codes without sleeping).
    pub async fn build_with_clock(config: Config, clock: Clock) -> anyhow::Result<Self> {
        // The ports first: a busy one is a mistake found in a millisecond, and finding it after
        // the database was created and migrated leaves a half-done start-up behind.
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let local_addr = listener.local_addr()?;
        let metrics_listener = match config.metrics_listen {
            Some(addr) => {
                let listener = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen for metrics on {addr}"))?;
                let bound = listener.local_addr()?;
                Some((listener, bound))
            }
            None => None,
        };
        let connections = db::connect_for_serving(&config).await?;
        // Migrations, the delivery workers and the signing keys write: all through the writer.
        let writer = connections.writer.clone();
        if config.skip_migrations {
            tracing::info!("not applying migrations (CODEWARD_SKIP_MIGRATIONS)");
        } else {
            db::migrate_up(&writer, &config)
                .await
                .context("cannot apply migrations")?;
        }
        let templates = Templates::load(config.template_dir.as_deref())?;
        let transport = Transport::from_config(&config)?;
        let outbox = OutboxSignal::default();
        let metrics = crate::infra::metrics::Metrics::new(config.metrics_cache());
        let worker = Worker {
            db: writer.clone(),
            transport: Arc::new(transport),
            templates: Arc::new(templates),
            settings: WorkerSettings::from_config(&config)?,
            signal: outbox.clone(),
            clock: clock.clone(),
            metrics: metrics.clone(),
            seal: crate::core::mail::CodeSeal::new(config.peppers.all()),
        };
        let webhook_settings = WebhookSettings::from_config(&config);
        let webhooks = Webhooks::new(webhook_settings.is_some());
        let webhook_worker = webhook_settings.map(|settings| WebhookWorker {
            db: writer.clone(),
            settings: Arc::new(settings),
            signal: webhooks.signal().clone(),
            clock: clock.clone(),
            metrics: metrics.clone(),
        });
        let keys = Arc::new(Keys::new(connections.clone(), &config));
        match keys.maintain(clock.now(), Rotate::Scheduled).await {
            Ok(done) => log_key_maintenance(&done),
            // Not ready yet (`/readyz` says so); the rotation loop tries again every minute.
            Err(error) if config.skip_migrations => tracing::warn!(
                %error,
                "signing keys not ready (migrations pending?); sign-ins fail until they are"
            ),
            Err(error) => return Err(error).context("cannot prepare the signing keys"),
        }
        let tokens = Tokens::new(keys, &config, config.tokens.issuer(local_addr));
        let limits = ConnectionLimits::from_config(&config);
        let shutdown_grace = Duration::from_secs(config.shutdown_grace_secs);
        let max_body_bytes = usize::try_from(config.max_body_bytes).unwrap_or(usize::MAX);
        let state: AppState = Arc::new(Services {
            transactions: crate::infra::writes::Transactions::new(&connections),
            lookups: crate::infra::lookups::Lookups::new(&connections),
            reads: connections.reads,
            writer: connections.writer,
            codes: CodeEngine::from_config(&config).with_metrics(metrics.clone()),
            passwords: Passwords::from_config(&config, metrics.clone())?,
            sessions: crate::core::sessions::Lifetimes::from_config(&config),
            tokens,
            ip_limits: IpLimits::from_config(&config),
            address_limits: AddressLimits::from_config(&config),
            metrics: metrics.clone(),
            config: Arc::new(config),
            clock,
            outbox,
            webhooks,
            timer: crate::infra::timer::PreciseTimer::start()?,
        });
        let operations = Arc::new(crate::infra::metrics::OperationIndex::from_spec(
            &http::spec_json(),
        ));
        let endpoint = with_middleware(routes().data(state.clone()), max_body_bytes)
            .with(RequestMetrics::new(metrics, operations))
            .boxed();
        release_freed_heap();
        Ok(Self {
            listener,
            local_addr,
            endpoint,
            limits,
            shutdown_grace,
            worker,
            webhook_worker,
            services: state,
            metrics_listener,
        })
    }

    /// Wakes this instance's email worker; for callers outside a request (tests, tools).
    pub fn outbox_signal(&self) -> OutboxSignal {
        self.worker.signal.clone()
    }

    /// Wakes this instance's webhook worker; for callers outside a request (tests, tools).
    pub fn webhook_signal(&self) -> crate::core::queue::Signal {
        self.services.webhooks.signal().clone()
    }

    /// This instance's signing keys (tests rotate them on the test clock).
    pub fn keys(&self) -> Arc<Keys> {
        self.services.tokens.keys.clone()
    }

    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    /// The port of the metrics listener, when `CODEWARD_METRICS_LISTEN` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_listener.as_ref().map(|(_, addr)| addr.port())
    }

    /// Serves until SIGTERM or Ctrl-C.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let signal = shutdown_signal()?;
        self.run_until(signal).await
    }

    /// Serves until `signal` completes, then gives in-flight requests the grace period and lets
    /// the email and webhook workers finish the batch they are sending. Unsent emails and
    /// events stay in their outbox for the next start (or another instance).
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> std::io::Result<()> {
        let (stop_worker, stop) = tokio::sync::watch::channel(false);
        let housekeeping = tokio::spawn(housekeeping_loop(self.services.clone(), stop.clone()));
        let ip_quota_pruning =
            tokio::spawn(ip_quota_prune_loop(self.services.clone(), stop.clone()));
        let key_rotation = tokio::spawn(key_rotation_loop(self.services.clone(), stop.clone()));
        let key_ring = tokio::spawn(key_ring_refresh_loop(self.services.clone(), stop.clone()));
        let heap_trim = tokio::spawn(heap_trim_loop(stop.clone()));
        let metrics_server = self.metrics_listener.map(|(listener, addr)| {
            tracing::info!(%addr, "metrics listening");
            let services = self.services.clone();
            let endpoint = poem::endpoint::make(move |_| {
                let services = services.clone();
                async move {
                    crate::app::ops::metrics(&services).await.map_err(|e| {
                        poem::Error::from(crate::http::problem::InternalError::from(e))
                    })
                }
            });
            let route = Route::new().at("/metrics", poem::get(endpoint));
            let server = HttpServer {
                listener,
                endpoint: route.boxed(),
                limits: self.limits.clone(),
                metrics: None,
            };
            tokio::spawn(server.run(std::future::pending(), Duration::ZERO))
        });
        let webhook_worker = self
            .webhook_worker
            .map(|worker| tokio::spawn(worker.run(stop.clone())));
        let worker = tokio::spawn(self.worker.run(stop));
        tracing::info!(addr = %self.local_addr, "codeward listening");
        let server = HttpServer {
            listener: self.listener,
            endpoint: self.endpoint,
            limits: self.limits,
            metrics: Some(self.services.metrics.clone()),
        };
        server.run(signal, self.shutdown_grace).await;
        // The receiver may already be gone if the worker panicked; nothing to stop then.
        let _ = stop_worker.send(true);
        // A purge in progress is cut short; it deletes in batches, so nothing is half done.
        housekeeping.abort();
        ip_quota_pruning.abort();
        key_rotation.abort();
        key_ring.abort();
        heap_trim.abort();
        if let Some(metrics_server) = metrics_server {
            metrics_server.abort();
        }
        if tokio::time::timeout(self.shutdown_grace, worker)
            .await
            .is_err()
        {
            tracing::warn!(
                "email worker still busy after the grace period; its claims will be retried"
            );
        }
        if let Some(webhook_worker) = webhook_worker
            && tokio::time::timeout(self.shutdown_grace, webhook_worker)
                .await
                .is_err()
        {
            tracing::warn!(
                "webhook worker still busy after the grace period; its claims will be retried"
            );
        }
        Ok(())
    }
}

/// Waits `interval`: `true` when it has passed, `false` once `stop` has changed (the
/// background loops below run `while tick(…)`).
async fn tick(interval: Duration, stop: &mut tokio::sync::watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(interval) => true,
        _ = stop.changed() => false,
    }
}

/// Purges finished rows every `CODEWARD_HOUSEKEEPING_INTERVAL_SECS` (never when 0), until
/// `stop`.
async fn housekeeping_loop(services: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let interval = services.config.housekeeping_interval_secs;
    if interval == 0 {
        return;
    }
    let retention = crate::core::housekeeping::Retention::from_config(&services.config);
    while tick(Duration::from_secs(interval), &mut stop).await {
        match crate::core::housekeeping::purge(&services.writer, services.clock.now(), &retention)
            .await
        {
            Ok(purged) if purged.total() > 0 => tracing::info!(?purged, "housekeeping"),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "housekeeping failed; retrying next time"),
        }
    }
}

/// Forgets client IPs whose per-IP quota is full again, every `CODEWARD_IP_QUOTA_PRUNE_SECS`,
/// until `stop`. A timer of its own: the map lives in this process's memory and grows with
/// every new client IP, whether or not housekeeping runs here (it may be off, with
/// `codeward purge` run from cron, which cannot reach this memory).
async fn ip_quota_prune_loop(services: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let interval = Duration::from_secs(services.config.ip_quota_prune_secs);
    while tick(interval, &mut stop).await {
        services.ip_limits.retain_recent();
    }
}

/// Rotates the signing keys when due, every `KEY_MAINTENANCE_INTERVAL`, until `stop`. Every
/// instance runs it; the conditional updates in `keys::store` let one of them do each step.
async fn key_rotation_loop(services: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    while tick(KEY_MAINTENANCE_INTERVAL, &mut stop).await {
        let keys = &services.tokens.keys;
        match keys.maintain(services.clock.now(), Rotate::Scheduled).await {
            Ok(done) => log_key_maintenance(&done),
            Err(error) => tracing::error!(%error, "signing key maintenance failed; retrying"),
        }
    }
}

/// How often each instance checks whether the signing keys are due to rotate: well inside
/// the pre-publication time, so a new key never waits long to be made or to take over.
const KEY_MAINTENANCE_INTERVAL: Duration = Duration::from_secs(60);

/// Reads the key ring again twice per `RING_TTL`, until `stop`, so a request finds it fresh:
/// a sign-in asks for the signer inside its write transaction, where reading the keys would
/// take a second connection from the pool while it holds one.
async fn key_ring_refresh_loop(services: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    while tick(RING_TTL / 2, &mut stop).await {
        if let Err(error) = services.tokens.keys.refresh().await {
            tracing::warn!(%error, "cannot read the signing keys; retrying");
        }
    }
}

fn log_key_maintenance(done: &Maintenance) {
    if *done != Maintenance::default() {
        tracing::info!(?done, "signing keys maintained");
    }
}

/// Hands the heap start-up used and freed (the spec parsed and written, migrations) back to
/// the system: after start-up the server allocates in small, short-lived pieces that need
/// none of it.
fn release_freed_heap() {
    let trimmed = crate::infra::memory::release_freed_heap();
    tracing::debug!(
        released_kib = trimmed.released_kib(),
        "start-up heap returned"
    );
}

/// Returns freed heap to the system every `HEAP_TRIM_INTERVAL` while resident memory is not
/// growing, until `stop`, so a burst's memory (connections and their buffers) does not stay
/// resident once the server is quiet again. While it grows (a burst in progress) the trim
/// waits: it would return pages the burst is about to take again, and it holds glibc's
/// arena locks while it runs (8–20 ms for 50–90 MiB in a debug build).
async fn heap_trim_loop(mut stop: tokio::sync::watch::Receiver<bool>) {
    use crate::infra::memory;
    let mut previous = memory::resident_kib();
    while tick(HEAP_TRIM_INTERVAL, &mut stop).await {
        let resident = memory::resident_kib();
        let growing = resident > previous;
        previous = resident;
        if growing {
            continue;
        }
        // Off the async workers: trimming a large heap takes milliseconds.
        let Ok(trimmed) = tokio::task::spawn_blocking(memory::release_freed_heap).await else {
            continue;
        };
        previous = trimmed.resident_after_kib;
        if trimmed.released_kib() >= 1024 {
            tracing::debug!(
                released_kib = trimmed.released_kib(),
                resident_kib = trimmed.resident_after_kib,
                took_us = trimmed.took.as_micros(),
                "freed heap returned to the system"
            );
        }
    }
}

/// How often freed heap is returned: soon after a burst ends, seldom enough that the pages a
/// steady load reuses are not returned and faulted in again all the time.
const HEAP_TRIM_INTERVAL: Duration = Duration::from_secs(10);

/// Every path codeward serves.
pub fn routes() -> Route {
    let service = http::service();
    Route::new()
        .nest("/docs", service.swagger_ui())
        .at("/openapi.json", service.spec_endpoint())
        .at("/openapi.yaml", service.spec_endpoint_yaml())
        .nest("/", service)
}

/// The layers every request passes through, innermost first: panics become a 500 problem, a
/// JSON body naming a member twice is refused, the body limit applies before any handler work
/// (and before that check), every error becomes problem+json, and the request gets its id,
/// access log line and `Cache-Control`.
pub fn with_middleware(
    endpoint: impl IntoEndpoint,
    max_body_bytes: usize,
) -> impl Endpoint<Output = poem::Response> {
    endpoint
        .into_endpoint()
        .with(CatchPanic::new().with_handler(panic_to_problem))
        .with(UniqueJsonMembers)
        .with(BodyLimit {
            max_bytes: max_body_bytes,
        })
        .catch_all_error(error_to_problem)
        .with(RequestContext)
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C). The handlers are installed before this returns, so
/// a signal that arrives right after start-up is not lost.
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {},
            _ = interrupt.recv() => {},
        }
        tracing::info!("shutdown requested; finishing in-flight requests");
    })
}
