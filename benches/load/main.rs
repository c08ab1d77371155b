//! Load benchmark: codeward (the release binary, a separate process) against its own physical
//! limits, measured side by side in one run. See benches/README.md.
//!
//! ```text
//! cargo bench --bench load                              # SQLite, then PostgreSQL if reachable
//! cargo bench --bench load -- --db sqlite --secs 10 --concurrency 64
//! cargo bench --bench load -- --db sqlite --mode open   # capacity, open loop
//! ```

mod capacity;
mod ceiling;
mod direct;
mod drive;
mod prepare;
mod raw;
mod server;
mod sink;
mod unexpected;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use reqwest::Client;
use serde_json::json;

use capacity::{Criteria, Ladder, Line, Op, Search};
use drive::{Stats, Window, closed_loop, interleaved, open_loop};
use prepare::{PASSWORD, Prepared};
use server::{CpuUse, Server};
use sink::SmtpSink;

#[derive(Parser, Clone)]
struct Args {
    /// Databases to run against, in order: sqlite, postgres.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    db: Vec<String>,
    /// A PostgreSQL server the benchmark may create (and drop) a database on.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    postgres_url: String,
    /// Requests in flight at once (closed-loop workers) in every scenario and ceiling.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds measured per scenario and per ceiling.
    #[arg(long, default_value_t = 5.0)]
    secs: f64,
    /// Turns the time is split into: scenario and ceiling alternate this many times.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds of load before each measurement starts.
    #[arg(long, default_value_t = 1.0)]
    warmup_secs: f64,
    /// Accounts prepared per kind (unverified with a live code; verified with a session).
    #[arg(long, default_value_t = 10_000)]
    accounts: usize,
    /// Scenarios to run: s1, s2, s3, s4, s5, isolation, floor (closed loop: `GET /healthz`).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "floor,s1,s2,s3,s4,s5,isolation"
    )]
    scenarios: Vec<String>,
    /// The server's log filter (its log goes to a file in the run's temporary folder).
    #[arg(long, default_value = "info")]
    server_log: String,
    /// Extra server flag, e.g. `--server-arg=--database-max-connections=20` (repeatable).
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// The codeward binary to run; default: the one cargo built with this benchmark.
    #[arg(long)]
    binary: Option<String>,
    /// closed: the closed-loop table (throughput at `--concurrency`, ceilings, S5, isolation);
    /// open: the capacity table (open loop, rate steps; S1 to S4 and their ceilings);
    /// both: the one, then the other.
    #[arg(long, value_enum, default_value_t = Mode::Closed)]
    mode: Mode,
    /// Open loop: the highest p99 latency (from each request's scheduled start), in ms, with
    /// which a step still passes.
    #[arg(long, default_value_t = 50.0)]
    p99_ms: f64,
    /// Open loop: the first rate tried, requests per second.
    #[arg(long, default_value_t = 100.0)]
    start_rate: f64,
    /// Open loop: the highest rate tried; a line that holds it is reported as "≥" it.
    #[arg(long, default_value_t = 50_000.0)]
    max_rate: f64,
    /// Open loop: each step's rate is the last one's times this while steps pass (divided by
    /// it while they fail), until one passes and one fails.
    #[arg(long, default_value_t = 2.0)]
    ladder_factor: f64,
    /// Open loop: bisection between the last passing and the first failing rate stops when
    /// they are this close (0.1: within 10%).
    #[arg(long, default_value_t = 0.1)]
    resolution: f64,
    /// Open loop: a step fails if the answers per second in its window fall short of the
    /// offered rate by more than this fraction (a growing backlog).
    #[arg(long, default_value_t = 0.03)]
    rate_tolerance: f64,
    /// Open loop: requests outstanding at once at most (one connection each; the server is
    /// started with `--max-connections` at least this); a request due past it is not sent and
    /// fails its step.
    #[arg(long, default_value_t = 4096)]
    max_in_flight: usize,
    /// Accepted for `cargo bench` compatibility.
    #[arg(long, hide = true)]
    bench: bool,
}

impl Args {
    fn window(&self) -> Window {
        Window {
            warmup: Duration::from_secs_f64(self.warmup_secs),
            measure: Duration::from_secs_f64(self.secs),
        }
    }

    fn closed(&self) -> bool {
        matches!(self.mode, Mode::Closed | Mode::Both)
    }

    fn open(&self) -> bool {
        matches!(self.mode, Mode::Open | Mode::Both)
    }

    fn criteria(&self) -> Criteria {
        Criteria {
            p99_ms: self.p99_ms,
            rate_tolerance: self.rate_tolerance,
            max_in_flight: self.max_in_flight.max(1),
        }
    }

    fn ladder(&self) -> Ladder {
        Ladder {
            start: self.start_rate,
            max: self.max_rate,
            factor: self.ladder_factor.max(1.05),
            resolution: self.resolution.max(0.001),
        }
    }

    fn wants(&self, scenario: &str) -> bool {
        self.scenarios
            .iter()
            .any(|s| s.eq_ignore_ascii_case(scenario))
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Closed,
    Open,
    Both,
}

/// One line of the capacity table: a scenario, or a ceiling.
struct CapacityRow {
    name: String,
    search: Search,
    /// A scenario's: its ceiling's capacity, if it has one, and whether that ceiling held
    /// even `--max-rate` (so its capacity is only a lower bound).
    ceiling: Option<(f64, bool)>,
    /// A ceiling's: its work is the benchmark process's own (no codeward in it).
    is_ceiling: bool,
}

/// One line of the results table.
struct Row {
    name: String,
    stats: Stats,
    peak_rss_kib: Option<u64>,
    ceiling: Option<f64>,
    target: Option<f64>,
}

struct Isolation {
    quiet_s4: Stats,
    quiet_health: Stats,
    flood_s4: Stats,
    flood_health: Stats,
    flood: Stats,
    flood_rate: f64,
    peak_rss_kib: u64,
}

struct Report {
    database: String,
    cold_start: Duration,
    warm_start: Duration,
    idle_rss_kib: u64,
    idle_rss_after_kib: u64,
    prepare_time: Duration,
    sizes: Option<prepare::Sizes>,
    rows: Vec<Row>,
    capacity: Vec<CapacityRow>,
    isolation: Option<Isolation>,
    rss_limit_kib: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let binary = args
        .binary
        .clone()
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_codeward").to_owned());
    let sink = SmtpSink::start(FLOW_PREFIX)?;
    let started = chrono::Utc::now();
    let mut reports = Vec::new();
    for database in &args.db {
        match run(database, &args, &binary, &sink).await {
            Ok(report) => reports.push(report),
            Err(error) => eprintln!("{database}: skipped: {error:#}"),
        }
    }
    println!();
    println!(
        "codeward load benchmark, {} UTC; {}",
        started.format("%Y-%m-%d %H:%M"),
        server::machine_description()
    );
    if args.closed() {
        println!(
            "concurrency {}, {} s measured after {} s warm-up per line; {} accounts per kind",
            args.concurrency, args.secs, args.warmup_secs, args.accounts
        );
    } else {
        println!("{} accounts per kind", args.accounts);
    }
    for report in &reports {
        print_report(report, &args);
    }
    println!();
    println!("emails delivered to the SMTP sink: {}", sink.received());
    Ok(())
}

const FLOW_PREFIX: &str = "flow-";
const CEILING_BUDGET: i32 = 1000;

async fn run(database: &str, args: &Args, binary: &str, sink: &SmtpSink) -> anyhow::Result<Report> {
    let dir = tempfile::tempdir()?;
    let (database_url, drop_afterwards) = match database {
        "sqlite" => (
            format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("bench.db").display()
            ),
            None,
        ),
        "postgres" => {
            let name = format!(
                "codeward_bench_{}",
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            );
            let admin = sea_orm::Database::connect(&args.postgres_url).await?;
            use sea_orm::ConnectionTrait as _;
            admin
                .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                .await?;
            admin.close().await?;
            let mut url = url::Url::parse(&args.postgres_url)?;
            url.set_path(&format!("/{name}"));
            (url.to_string(), Some(name))
        }
        other => anyhow::bail!("unknown database {other:?} (sqlite or postgres)"),
    };
    let result = run_on(database, &database_url, args, binary, sink, dir.path()).await;
    if let Some(name) = drop_afterwards {
        use sea_orm::ConnectionTrait as _;
        let admin = sea_orm::Database::connect(&args.postgres_url).await?;
        admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .await?;
        admin.close().await?;
    }
    result
}

/// The server's flags: production defaults, except that no limit refuses the benchmark's
/// traffic (the statements that enforce them still run).
fn server_flags(args: &Args, database_url: &str, smtp_url: &str) -> Vec<String> {
    let pepper: [u8; 32] = rand::random();
    use base64::Engine as _;
    let pepper = base64::engine::general_purpose::STANDARD.encode(pepper);
    let mut flags = vec![
        format!("--database-url={database_url}"),
        format!("--pepper=bench:{pepper}"),
        format!("--smtp-url={smtp_url}"),
        format!("--log={}", args.server_log),
        // One issuer whatever port the server gets, so tokens signed beforehand verify.
        "--issuer=http://codeward.bench".into(),
        // One second instead of 60: each address is asked again only after thousands of
        // others, so the cooldown's statements run and never refuse.
        "--code-resend-cooldown-secs=1".into(),
        "--codes-per-address-per-hour=1000".into(),
        "--code-daily-failure-budget=1000".into(),
        // At least the per-network budget, or the server refuses to start.
        "--code-daily-failure-ceiling=1000".into(),
        "--login-failures-before-delay=1000".into(),
        "--ip-rate-send-code=1000000/s".into(),
        "--ip-rate-verify-code=1000000/s".into(),
        "--ip-rate-login=1000000/s".into(),
        "--ip-rate-refresh=1000000/s".into(),
    ];
    if args.open() {
        // Open loop: one connection per request in flight, as many as the client may open.
        flags.push(format!(
            "--max-connections={}",
            args.max_in_flight.max(1024)
        ));
    }
    flags.extend(args.server_args.iter().cloned());
    // A later `--flag=value` replaces an earlier one (clap refuses a repeated flag).
    let name = |flag: &String| flag.split('=').next().unwrap_or_default().to_owned();
    let mut kept: Vec<String> = Vec::new();
    for flag in flags.into_iter().rev() {
        if !kept.iter().any(|k| name(k) == name(&flag)) {
            kept.push(flag);
        }
    }
    kept.reverse();
    kept
}

async fn run_on(
    database: &str,
    database_url: &str,
    args: &Args,
    binary: &str,
    sink: &SmtpSink,
    dir: &std::path::Path,
) -> anyhow::Result<Report> {
    let flags = server_flags(args, database_url, &sink.url());
    let mut cli_args = vec!["codeward".to_owned()];
    cli_args.extend(flags.iter().cloned());
    let mut config = codeward::cli::Cli::try_parse_from(cli_args)?.config;
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("server flags: {e}"))?;
    let key_id = config.peppers.current().key_id.clone();
    let log = dir.join("codeward.log");
    eprintln!("[{database}] server log: {}", log.display());

    // A first start on the empty database applies the migrations.
    let cold = Server::start(binary, &flags, &log).await?;
    let cold_start = cold.start_to_ready;
    cold.stop()?;

    eprintln!(
        "[{database}] preparing {} accounts of each kind…",
        args.accounts
    );
    // The server's own split (on SQLite: one writer connection, a read pool), which the
    // ceilings use as the server does.
    let db = codeward::infra::db::connect_for_serving(&config).await?;
    let passwords = codeward::core::passwords::Passwords::from_config(
        &config,
        codeward::infra::metrics::Metrics::default(),
    )?;
    let password_hash = passwords.hash(PASSWORD).await?;
    // The tokens are signed with the key the server made at its first start, for the issuer
    // the flags name.
    let keys = Arc::new(codeward::core::keys::Keys::new(db.clone(), &config));
    let tokens = Arc::new(codeward::core::tokens::Tokens::new(
        keys,
        &config,
        config.issuer(),
    ));
    let preparing = std::time::Instant::now();
    let prepared =
        prepare::prepare(&db.writer, args.accounts, &key_id, &password_hash, &tokens).await?;
    let prepare_time = preparing.elapsed();
    let prepared = Arc::new(prepared);
    let sizes = prepare::sizes(&db.writer)
        .await
        .inspect_err(|error| eprintln!("[{database}] database size not measured: {error:#}"))
        .ok();

    let server = Server::start(binary, &flags, &log).await?;
    let warm_start = server.start_to_ready;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss_kib = server.rss_kib();
    let pid = Some(server.pid());
    let client = Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(1024)
        .timeout(Duration::from_secs(30))
        .build()?;
    let http = Http {
        client,
        base: server.base.clone(),
        prepared: prepared.clone(),
    };
    let window = args.window();
    let c = args.concurrency;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let mut rows = Vec::new();
    let mut s3_rate = None;
    let mut s4_rate = None;

    let rounds = args.rounds;
    let database_lines = [
        (
            "s4",
            "S4 token check (get_me)",
            "S4 ceiling: its 2 SELECTs",
            Ceiling::TokenCheck,
            0.5,
        ),
        (
            "s1",
            "S1 code guessing (verify_signup)",
            "S1 ceiling: its 5 statements",
            Ceiling::WrongGuess,
            0.5,
        ),
        (
            "s2",
            "S2 code issuance (forgot_password)",
            "S2 ceiling: its transaction",
            Ceiling::IssueCode,
            0.4,
        ),
    ];
    if args.closed() && args.wants("floor") {
        // What any request costs before its operation's own work: HTTP, routing and the
        // middleware, on both sides of the loopback (the server's CPU and the load generator's).
        eprintln!("[{database}] the HTTP floor: GET /healthz…");
        let stats = closed_loop(c, window, pid, http.healthz()).await;
        rows.push(Row::ceiling(
            "HTTP floor: GET /healthz (no database)",
            Some((stats.throughput(), stats)),
        ));
    }
    for (key, name, ceiling_name, which, target) in database_lines {
        if !args.closed() || !args.wants(key) {
            continue;
        }
        eprintln!("[{database}] {name}, side by side with its ceiling…");
        server.reset_peak();
        let (stats, ceiling) = interleaved(
            rounds,
            window,
            |w| closed_loop(c, w, pid, http.op(which)),
            |w| run_ceiling(c, w, pid, &db, prepared.clone(), which, &key_id),
        )
        .await;
        let peak = server.peak_rss_kib();
        if which == Ceiling::TokenCheck {
            s4_rate = Some(stats.throughput());
        }
        let ceiling = Some((ceiling.throughput(), ceiling));
        rows.push(Row::scenario(name, stats, peak, &ceiling, target));
        rows.push(Row::ceiling(ceiling_name, ceiling));
        if which == Ceiling::WrongGuess && database == "sqlite" {
            for (grouping, line) in DIRECT_LINES {
                eprintln!("[{database}] {line}…");
                let writer = direct::DirectWriter::start(&dir.join("bench.db"), grouping)?;
                let op = direct_op(&db, prepared.clone(), writer);
                let stats = closed_loop(c, window, pid, move |i| op(i)).await;
                rows.push(Row::ceiling(line, Some((stats.throughput(), stats))));
            }
        }
        if which == Ceiling::TokenCheck {
            eprintln!("[{database}] S4's signature check alone, in this process…");
            let verified = closed_loop(c, window, None, verify_alone(&tokens, &prepared)).await;
            rows.push(Row::ceiling(
                &format!("S4 signature check alone ({cores} cores)"),
                Some((verified.throughput(), verified)),
            ));
        }
    }
    if args.closed() && (args.wants("s3") || args.wants("isolation")) {
        eprintln!("[{database}] S3 login, side by side with raw argon2…");
        server.reset_peak();
        let (m, t) = (config.argon2_memory_kib, config.argon2_iterations);
        let (stats, raw) = interleaved(
            rounds,
            window,
            |w| closed_loop(c, w, pid, http.login()),
            |w| async move {
                tokio::task::spawn_blocking(move || ceiling::argon2_rate(m, t, cores, w, pid))
                    .await
                    .unwrap_or_default()
            },
        )
        .await;
        let peak = server.peak_rss_kib();
        s3_rate = Some(stats.throughput());
        let raw_rate = raw.throughput();
        let ceiling = Some((raw_rate, raw));
        rows.push(Row::scenario(
            "S3 login (argon2id default)",
            stats,
            peak,
            &ceiling,
            0.9,
        ));
        rows.push(Row::ceiling(
            &format!("S3 ceiling: argon2id on {cores} threads"),
            ceiling,
        ));
        if args.wants("s5") {
            // S2's emails may still be on their way; a flow's code must not queue behind them.
            sink.wait_until_quiet(Duration::from_secs(1), Duration::from_secs(120))
                .await;
            eprintln!("[{database}] S5 mixed flows…");
            server.reset_peak();
            let stats = closed_loop(c, window, pid, http.flows(sink.clone())).await;
            let peak = server.peak_rss_kib();
            // Each flow hashes two passwords (verify_signup and reset_password).
            let ceiling = Some((raw_rate / 2.0, Stats::default()));
            rows.push(Row::scenario(
                "S5 sign-up + reset flows (flows/s)",
                stats,
                peak,
                &ceiling,
                0.0,
            ));
        }
    }
    let isolation = if args.closed() && args.wants("isolation") {
        eprintln!("[{database}] isolation: login flood during S4…");
        let s4 = s4_rate.unwrap_or(1000.0);
        let s3 = s3_rate.unwrap_or(100.0);
        Some(isolation(&http, &server, window, s4, s3).await)
    } else {
        None
    };
    let mut capacity = Vec::new();
    if args.open() {
        let (ladder, criteria) = (args.ladder(), args.criteria());
        let raw = Arc::new(raw::RawClient::new(&server.base)?);
        let argon2_name = format!("S3 ceiling: argon2id on {cores} threads");
        let mut pairs: Vec<(&str, Line, Line)> = Vec::new();
        for (key, name, ceiling_name, which, _) in database_lines {
            if args.wants(key) {
                let ceiling = ceiling_op(&db, prepared.clone(), which, &key_id);
                let op = http.raw_op(&raw, Some(which));
                pairs.push((
                    key,
                    Line {
                        name,
                        op,
                        server_pid: pid,
                    },
                    Line {
                        name: ceiling_name,
                        op: ceiling,
                        server_pid: pid,
                    },
                ));
            }
        }
        if args.wants("s3") {
            let (m, t) = (config.argon2_memory_kib, config.argon2_iterations);
            pairs.push((
                "s3",
                Line {
                    name: "S3 login (argon2id default)",
                    op: http.raw_op(&raw, None),
                    server_pid: pid,
                },
                Line {
                    name: &argon2_name,
                    op: ceiling::argon2_op(m, t, cores),
                    server_pid: pid,
                },
            ));
        }
        for (key, line, ceiling) in pairs {
            eprintln!(
                "[{database}] {}: capacity, open loop, steps taking turns with its ceiling's…",
                line.name
            );
            let label = format!("{database} {key}");
            let lines = [line, ceiling];
            let mut searches = capacity::search(&lines, ladder, window, &criteria, &label)
                .await
                .into_iter();
            let (Some(scenario), Some(ceiling)) = (searches.next(), searches.next()) else {
                continue;
            };
            let [line, ceiling_line] = lines;
            capacity.push(CapacityRow {
                name: line.name.to_owned(),
                ceiling: ceiling.capacity().map(|s| (s.rate, ceiling.reached_max())),
                search: scenario,
                is_ceiling: false,
            });
            capacity.push(CapacityRow {
                name: ceiling_line.name.to_owned(),
                search: ceiling,
                ceiling: None,
                is_ceiling: true,
            });
        }
    }
    if args.open() && args.wants("s1") && database == "sqlite" {
        let mut lines = Vec::new();
        for (grouping, name) in DIRECT_LINES {
            let writer = direct::DirectWriter::start(&dir.join("bench.db"), grouping)?;
            let op = direct_op(&db, prepared.clone(), writer);
            lines.push(Line {
                name,
                op,
                server_pid: pid,
            });
        }
        eprintln!("[{database}] S1's transaction on the writer's own thread: capacity…");
        let label = format!("{database} s1 direct");
        let criteria = args.criteria();
        let searches = capacity::search(&lines, args.ladder(), window, &criteria, &label).await;
        for (line, search) in lines.iter().zip(searches) {
            capacity.push(CapacityRow {
                name: line.name.to_owned(),
                search,
                ceiling: None,
                is_ceiling: true,
            });
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss_after_kib = server.rss_kib();
    server.stop()?;
    db.reads.close().await?;
    db.writer.close().await?;
    let argon2_kib = u64::from(config.argon2_memory_kib);
    Ok(Report {
        database: database.to_owned(),
        cold_start,
        warm_start,
        idle_rss_kib,
        idle_rss_after_kib,
        prepare_time,
        sizes,
        rows,
        capacity,
        isolation,
        rss_limit_kib: 2 * argon2_kib * cores as u64 + 40 * 1024,
    })
}

impl Row {
    fn scenario(
        name: &str,
        stats: Stats,
        peak_rss_kib: u64,
        ceiling: &Option<(f64, Stats)>,
        target: f64,
    ) -> Self {
        Self {
            name: name.to_owned(),
            stats,
            peak_rss_kib: Some(peak_rss_kib),
            ceiling: ceiling.as_ref().map(|(rate, _)| *rate),
            target: (target > 0.0).then_some(target),
        }
    }

    fn ceiling(name: &str, ceiling: Option<(f64, Stats)>) -> Self {
        Self {
            name: name.to_owned(),
            stats: ceiling.map(|(_, stats)| stats).unwrap_or_default(),
            peak_rss_kib: None,
            ceiling: None,
            target: None,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ceiling {
    WrongGuess,
    IssueCode,
    TokenCheck,
}

async fn run_ceiling(
    concurrency: usize,
    window: Window,
    pid: Option<u32>,
    db: &codeward::infra::db::Connections,
    prepared: Arc<Prepared>,
    which: Ceiling,
    key_id: &str,
) -> Stats {
    let op = ceiling_op(db, prepared, which, key_id);
    closed_loop(concurrency, window, pid, move |i| op(i)).await
}

/// The S1 ceiling with its write transaction run whole on the writer connection's own thread
/// (`direct`), one transaction per request and with group commit: SQLite only.
const DIRECT_LINES: [(direct::Grouping, &str); 2] = [
    (
        direct::Grouping::Single,
        "S1 ceiling, its transaction in one call to the writer's thread",
    ),
    (
        direct::Grouping::Grouped,
        "S1 ceiling, the same with group commit",
    ),
];

/// S1's read on the read pool, then its writes on `writer`'s thread (the `i`-th account).
fn direct_op(
    db: &codeward::infra::db::Connections,
    prepared: Arc<Prepared>,
    writer: direct::DirectWriter,
) -> Op {
    let reported = Arc::new(AtomicBool::new(false));
    let db = db.clone();
    Arc::new(move |i| -> BoxedBool {
        let (db, prepared, writer, reported) = (
            db.clone(),
            prepared.clone(),
            writer.clone(),
            reported.clone(),
        );
        Box::pin(async move {
            let now = chrono::Utc::now();
            let account = &prepared.pending[i as usize % prepared.pending.len()];
            let result = match ceiling::find_user(&db, &account.email).await {
                Ok(user_id) => writer.wrong_guess(user_id, now, CEILING_BUDGET).await,
                Err(error) => Err(error.to_string()),
            };
            if let Err(error) = &result
                && !reported.swap(true, Ordering::Relaxed)
            {
                eprintln!("direct writer statement failed: {error}");
            }
            result.is_ok()
        })
    })
}

/// One run of a ceiling's statements (the `i`-th account or session in turn).
fn ceiling_op(
    db: &codeward::infra::db::Connections,
    prepared: Arc<Prepared>,
    which: Ceiling,
    key_id: &str,
) -> Op {
    let reported = Arc::new(AtomicBool::new(false));
    let (db, key_id) = (db.clone(), Arc::<str>::from(key_id));
    Arc::new(move |i| -> BoxedBool {
        let (db, prepared, key_id, reported) = (
            db.clone(),
            prepared.clone(),
            key_id.clone(),
            reported.clone(),
        );
        Box::pin(async move {
            let now = chrono::Utc::now();
            let result = match which {
                Ceiling::WrongGuess => {
                    let account = &prepared.pending[i as usize % prepared.pending.len()];
                    ceiling::wrong_guess(&db, now, &account.email, CEILING_BUDGET).await
                }
                Ceiling::IssueCode => {
                    let account = &prepared.members[i as usize % prepared.members.len()];
                    ceiling::issue_code(&db, now, &account.email, &key_id).await
                }
                Ceiling::TokenCheck => {
                    let session = prepared.sessions[i as usize % prepared.sessions.len()];
                    ceiling::token_check(&db.reads, now, session).await
                }
            };
            if let Err(error) = &result
                && !reported.swap(true, Ordering::Relaxed)
            {
                eprintln!("ceiling statement failed: {error}");
            }
            result.is_ok()
        })
    })
}

/// What S4 adds to its statements: the access token's signature, `typ`, `iss`, `aud` and
/// `exp` checked by codeward's own token service (the key already read, as in the server).
fn verify_alone(
    tokens: &Arc<codeward::core::tokens::Tokens>,
    prepared: &Arc<Prepared>,
) -> impl Fn(u64) -> std::pin::Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync + 'static {
    let (tokens, prepared) = (tokens.clone(), prepared.clone());
    move |i| {
        let (tokens, prepared) = (tokens.clone(), prepared.clone());
        Box::pin(async move {
            let token = &prepared.access_tokens[i as usize % prepared.access_tokens.len()];
            let verified = matches!(tokens.verify(chrono::Utc::now(), token).await, Ok(Some(_)));
            // `verify` never waits (the keys are in memory), so without this a worker would
            // keep its thread for the whole window, and the CPU sampler's timers would fire
            // only after it: the line's CPU figures were nonsense (0, or 9.8 cores of 2).
            tokio::task::yield_now().await;
            verified
        })
    }
}

impl Http {
    /// The open loop's requests: those of `op` (`which`) or of `login` (`None`), the same
    /// method, path, body and expected status, sent by the minimal client.
    fn raw_op(&self, raw: &Arc<raw::RawClient>, which: Option<Ceiling>) -> Op {
        let (raw, prepared) = (raw.clone(), self.prepared.clone());
        Arc::new(move |i| -> BoxedBool {
            let i = i as usize;
            let json = |value: serde_json::Value| serde_json::to_vec(&value).unwrap_or_default();
            let (request, expected) = match which {
                Some(Ceiling::WrongGuess) => {
                    let account = &prepared.pending[i % prepared.pending.len()];
                    let code = format!("{:06}", rand::random_range(0..1_000_000u32));
                    let body =
                        json(json!({"email": account.email, "code": code, "password": PASSWORD}));
                    (
                        raw.request("POST", "/v1/signup/verify", "", Some(&body)),
                        400,
                    )
                }
                Some(Ceiling::IssueCode) => {
                    let account = &prepared.members[i % prepared.members.len()];
                    let body = json(json!({"email": account.email}));
                    (
                        raw.request("POST", "/v1/password/forgot", "", Some(&body)),
                        202,
                    )
                }
                Some(Ceiling::TokenCheck) => {
                    let auth = &prepared.authorizations[i % prepared.authorizations.len()];
                    let header = format!("authorization: {auth}\r\n");
                    (raw.request("GET", "/v1/me", &header, None), 200)
                }
                None => {
                    let account = &prepared.members[i % prepared.members.len()];
                    let body = json(json!({"email": account.email, "password": PASSWORD}));
                    (raw.request("POST", "/v1/login", "", Some(&body)), 200)
                }
            };
            let raw = raw.clone();
            Box::pin(async move { raw.send(&request, expected).await })
        })
    }
}

/// The HTTP side of every scenario.
#[derive(Clone)]
struct Http {
    client: Client,
    base: String,
    prepared: Arc<Prepared>,
}

async fn answered(request: reqwest::RequestBuilder, expected: u16) -> bool {
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let whole = response.bytes().await.is_ok();
            if status != expected {
                unexpected::note(status.to_string());
            } else if !whole {
                unexpected::note("body cut off");
            }
            whole && status == expected
        }
        Err(error) => {
            unexpected::note(unexpected::no_answer(&error));
            false
        }
    }
}

impl Http {
    fn op(&self, which: Ceiling) -> Box<dyn Fn(u64) -> BoxedBool + Send + Sync + 'static> {
        match which {
            Ceiling::WrongGuess => Box::new(self.wrong_guess()),
            Ceiling::IssueCode => Box::new(self.forgot()),
            Ceiling::TokenCheck => Box::new(self.get_me()),
        }
    }

    /// S1: a wrong six-digit guess for an unverified account with a live code (400).
    fn wrong_guess(&self) -> impl Fn(u64) -> BoxedBool + Send + Sync + 'static {
        let this = self.clone();
        let url = format!("{}/v1/signup/verify", self.base);
        move |i| {
            let account = &this.prepared.pending[i as usize % this.prepared.pending.len()];
            let code = format!("{:06}", rand::random_range(0..1_000_000u32));
            let body = json!({"email": account.email, "code": code, "password": PASSWORD});
            Box::pin(answered(this.client.post(&url).json(&body), 400))
        }
    }

    /// S2: a reset code for an existing account (202).
    fn forgot(&self) -> impl Fn(u64) -> BoxedBool + Send + Sync + 'static {
        let this = self.clone();
        let url = format!("{}/v1/password/forgot", self.base);
        move |i| {
            let account = &this.prepared.members[i as usize % this.prepared.members.len()];
            let body = json!({"email": account.email});
            Box::pin(answered(this.client.post(&url).json(&body), 202))
        }
    }

    /// S3: a successful password login (200).
    fn login(&self) -> impl Fn(u64) -> BoxedBool + Send + Sync + 'static {
        self.login_expecting(200)
    }

    fn login_expecting(&self, status: u16) -> impl Fn(u64) -> BoxedBool + Send + Sync + 'static {
        let this = self.clone();
        let url = format!("{}/v1/login", self.base);
        move |i| {
            let account = &this.prepared.members[i as usize % this.prepared.members.len()];
            let body = json!({"email": account.email, "password": PASSWORD});
            Box::pin(answered(this.client.post(&url).json(&body), status))
        }
    }

    /// S4: the signed-in user, with a valid access token (200).
    fn get_me(&self) -> impl Fn(u64) -> BoxedBool + Send + Sync + 'static {
        let this = self.clone();
        let url = format!("{}/v1/me", self.base);
        move |i| {
            let auth =
                &this.prepared.authorizations[i as usize % this.prepared.authorizations.len()];
            Box::pin(answered(
                this.client.get(&url).header("authorization", auth),
                200,
            ))
        }
    }

    fn healthz(&self) -> impl Fn(u64) -> BoxedBool + Send + Sync + 'static {
        let this = self.clone();
        let url = format!("{}/healthz", self.base);
        move |_| Box::pin(answered(this.client.get(&url), 200))
    }

    /// S5: a whole sign-up (signup, code from the mailbox, verify_signup) and a whole reset
    /// (forgot_password, code, reset_password) for a new address; true if every step worked.
    fn flows(&self, sink: SmtpSink) -> impl Fn(u64) -> BoxedBool + Send + Sync + 'static {
        let this = self.clone();
        let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
        move |i| {
            let (this, sink) = (this.clone(), sink.clone());
            let email = format!("{FLOW_PREFIX}{run}-{i}@bench.test");
            Box::pin(async move {
                let post = |path: &str, body: serde_json::Value| {
                    this.client.post(format!("{}{path}", this.base)).json(&body)
                };
                let wait = Duration::from_secs(10);
                let seen = sink.count_for(&email);
                if !answered(
                    post("/v1/signup", json!({"email": email, "password": PASSWORD})),
                    202,
                )
                .await
                {
                    return false;
                }
                let Some(code) = sink.code_after(&email, seen, wait).await else {
                    return false;
                };
                let body = json!({"email": email, "code": code, "password": PASSWORD});
                if !answered(post("/v1/signup/verify", body), 200).await {
                    return false;
                }
                let seen = sink.count_for(&email);
                if !answered(post("/v1/password/forgot", json!({"email": email})), 202).await {
                    return false;
                }
                let Some(code) = sink.code_after(&email, seen, wait).await else {
                    return false;
                };
                let new_password = "quartz meadow violin harbor 82";
                let body = json!({"email": email, "code": code, "new_password": new_password});
                answered(post("/v1/password/reset", body), 204).await
            })
        }
    }
}

type BoxedBool = std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>;

/// S4 at a quarter of its capacity and `/healthz` at 100/s, open loop, first alone, then
/// during a flood of logins at four times S3's capacity.
async fn isolation(http: &Http, server: &Server, window: Window, s4: f64, s3: f64) -> Isolation {
    let pid = Some(server.pid());
    let s4_rate = (s4 / 4.0).max(10.0);
    let quiet = tokio::join!(
        open_loop(s4_rate, 4096, window, pid, http.get_me()),
        open_loop(100.0, 1024, window, None, http.healthz()),
    );
    let flood_rate = 4.0 * s3;
    server.reset_peak();
    let flood = tokio::join!(
        open_loop(s4_rate, 4096, window, pid, http.get_me()),
        open_loop(100.0, 1024, window, None, http.healthz()),
        open_loop(flood_rate, 4096, window, None, http.login()),
    );
    Isolation {
        quiet_s4: quiet.0,
        quiet_health: quiet.1,
        flood_s4: flood.0,
        flood_health: flood.1,
        flood: flood.2,
        flood_rate,
        peak_rss_kib: server.peak_rss_kib(),
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// What limited a run, from who used the CPU while it was measured. In a ceiling run the
/// benchmark process does the ceiling's work: the database driver, on SQLite the database
/// itself, or argon2.
fn bound(cpu: &CpuUse, cores: f64, ceiling: bool) -> String {
    let busy = cpu.server + cpu.loadgen + cpu.database + cpu.other;
    if busy < 0.85 * cores {
        return format!("waiting, not CPU ({busy:.1} of {cores:.0} cores busy)");
    }
    let parties = [
        ("codeward", cpu.server),
        (
            if ceiling {
                "the ceiling's own work (driver, SQLite or argon2)"
            } else {
                "load generator"
            },
            cpu.loadgen,
        ),
        ("PostgreSQL", cpu.database),
        ("other users", cpu.other),
    ];
    let (name, share) =
        parties.iter().copied().fold(
            ("", f64::MIN),
            |best, p| if p.1 > best.1 { p } else { best },
        );
    format!("CPU, mostly {name} ({:.0}%)", 100.0 * share / busy)
}

fn print_report(report: &Report, args: &Args) {
    let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
    println!();
    println!("### {}", report.database);
    println!();
    println!(
        "start to ready: {:.0} ms on an empty database (migrations), {:.0} ms on the prepared one; \
         idle RSS {:.1} MiB before the load, {:.1} MiB after it",
        report.cold_start.as_secs_f64() * 1000.0,
        report.warm_start.as_secs_f64() * 1000.0,
        mib(report.idle_rss_kib),
        mib(report.idle_rss_after_kib),
    );
    let size = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    match &report.sizes {
        Some(sizes) => println!(
            "prepared {} accounts per kind in {:.1} s; the database then takes {:.1} MiB \
             (tables {:.1} MiB, indexes {:.1} MiB)",
            args.accounts,
            report.prepare_time.as_secs_f64(),
            size(sizes.total),
            size(sizes.tables),
            size(sizes.indexes),
        ),
        None => println!(
            "prepared {} accounts per kind in {:.1} s",
            args.accounts,
            report.prepare_time.as_secs_f64()
        ),
    }
    if !report.rows.is_empty() {
        println!();
        println!(
            "| line | req/s | p50 ms | p99 ms | unexpected | peak RSS MiB | ratio to ceiling (target) | CPU cores: codeward / load gen / PostgreSQL / others | bound |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---|---|");
    }
    for row in &report.rows {
        let s = &row.stats;
        let latency = |q| {
            let v = s.quantile_ms(q);
            if v.is_nan() {
                "–".to_owned()
            } else {
                format!("{v:.2}")
            }
        };
        let ratio = match (row.ceiling, row.target) {
            (Some(c), Some(t)) => format!("{:.2} (≥ {t:.2})", s.throughput() / c),
            (Some(c), None) => format!("{:.2}", s.throughput() / c),
            _ => String::new(),
        };
        let measured = s.cpu.server + s.cpu.loadgen + s.cpu.database + s.cpu.other > 0.0;
        println!(
            "| {} | {:.0} | {} | {} | {} | {} | {} | {} | {} |",
            row.name,
            s.throughput(),
            latency(0.5),
            latency(0.99),
            s.unexpected,
            row.peak_rss_kib
                .map(|k| format!("{:.1}", mib(k)))
                .unwrap_or_default(),
            ratio,
            if measured {
                format!(
                    "{:.2} / {:.2} / {:.2} / {:.2}",
                    s.cpu.server, s.cpu.loadgen, s.cpu.database, s.cpu.other
                )
            } else {
                String::new()
            },
            if measured {
                bound(&s.cpu, cores, row.peak_rss_kib.is_none())
            } else {
                String::new()
            },
        );
    }
    if !report.capacity.is_empty() {
        print_capacity(report, args);
    }
    if let Some(iso) = &report.isolation {
        println!();
        println!(
            "isolation: get_me at {:.0}/s and /healthz at 100/s (open loop), alone and during {:.0} logins/s (4 × S3)",
            iso.quiet_s4.throughput(),
            iso.flood_rate
        );
        println!();
        println!(
            "| phase | get_me p50 / p99 ms | /healthz p50 / p99 ms | get_me unexpected | logins 200/s | logins refused or failed | peak RSS MiB (limit) |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|");
        let line = |name: &str, s4: &Stats, health: &Stats| {
            format!(
                "| {name} | {:.2} / {:.2} | {:.2} / {:.2} | {} |",
                s4.quantile_ms(0.5),
                s4.quantile_ms(0.99),
                health.quantile_ms(0.5),
                health.quantile_ms(0.99),
                s4.unexpected + s4.dropped,
            )
        };
        println!("{} | | |", line("alone", &iso.quiet_s4, &iso.quiet_health));
        println!(
            "{} {:.0} | {} | {:.1} ({:.1}) |",
            line("login flood", &iso.flood_s4, &iso.flood_health),
            iso.flood.ok as f64 / iso.flood.secs,
            iso.flood.unexpected + iso.flood.dropped,
            mib(iso.peak_rss_kib),
            mib(report.rss_limit_kib),
        );
    }
    let _ = args;
}

/// The capacity table: per line, the highest rate held open loop, and the first one not held.
fn print_capacity(report: &Report, args: &Args) {
    let criteria = args.criteria();
    println!();
    println!(
        "capacity, open loop: the highest rate held for a whole step ({} s after {} s warm-up) \
         with p99 ≤ {} ms from the scheduled start, no unexpected or missing answer, and \
         answers/s within {}% of the rate offered; steps ×{} from {}/s up to {}/s, then \
         bisection to within {}%; a line's steps take turns with its ceiling's. \
         \"!\" marks a step where the client started more than 1% of its requests over \
         {} ms late.",
        args.secs,
        args.warmup_secs,
        criteria.p99_ms,
        100.0 * criteria.rate_tolerance,
        args.ladder().factor,
        args.start_rate,
        args.max_rate,
        100.0 * args.ladder().resolution,
        criteria.lag_limit_ms(),
    );
    println!();
    println!(
        "| line | capacity req/s | p50 ms | p99 ms | ratio to ceiling | CPU ms per request: codeward / load gen | CPU cores: codeward / load gen / PostgreSQL / others | client lag p99 ms | next step not held | steps |"
    );
    println!("|---|---:|---:|---:|---:|---:|---|---:|---|---|");
    for row in &report.capacity {
        let search = &row.search;
        let held = search.capacity();
        let capacity = match held {
            None => format!("< {:.0}", search.steps.last().map_or(0.0, |s| s.rate)),
            Some(s) if search.reached_max() => format!("≥ {:.0}", s.rate),
            Some(s) => format!("{:.0}", s.rate),
        };
        let ratio = match (held, row.ceiling) {
            (Some(s), Some((c, false))) if c > 0.0 => format!("{:.2}", s.rate / c),
            (Some(s), Some((c, true))) if c > 0.0 && !search.reached_max() => {
                format!("≤ {:.2}", s.rate / c)
            }
            _ => String::new(),
        };
        let cpu = held.map_or_else(String::new, |s| {
            format!(
                "{:.2} / {:.2} / {:.2} / {:.2}",
                s.cpu.server, s.cpu.loadgen, s.cpu.database, s.cpu.other
            )
        });
        let failure = search.first_failure().map_or_else(String::new, |f| {
            let mut why = format!("{:.0}/s: {}", f.rate, f.failures.join(", "));
            if f.client_behind {
                why.push_str(&format!(
                    "; client behind (lag p99 {:.1} ms): a lower bound",
                    f.lag_p99_ms
                ));
            }
            if f.cap_suspect {
                why.push_str("; the in-flight cap may be the limit (--max-in-flight)");
            }
            why
        });
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.name,
            capacity,
            held.map_or_else(String::new, |s| capacity::ms(s.p50_ms)),
            held.map_or_else(String::new, |s| capacity::ms(s.p99_ms)),
            ratio,
            held.map_or_else(String::new, |s| {
                let per = |cores: f64| 1000.0 * cores / s.achieved.max(1e-9);
                if row.is_ceiling {
                    format!("– / {:.3}", per(s.cpu.loadgen))
                } else {
                    format!("{:.3} / {:.3}", per(s.cpu.server), per(s.cpu.loadgen))
                }
            }),
            cpu,
            held.map_or_else(String::new, |s| format!("{:.1}", s.lag_p99_ms)),
            failure,
            search.trail(),
        );
    }
}
