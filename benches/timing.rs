//! Equal-time check: do operations take the same time for known and unknown addresses?
//!
//! Starts codeward in-process (release profile: `cargo bench --bench timing`), prepares known
//! accounts, then sends `--samples` requests of each kind for known and unknown addresses,
//! interleaved, and prints the medians and a two-sample Kolmogorov–Smirnov test per pair. A
//! p-value above 0.01 means the two timing distributions are indistinguishable at that level.
//!
//! ```text
//! cargo bench --bench timing                        # SQLite in a temporary folder
//! cargo bench --bench timing -- --database-url postgres://postgres@127.0.0.1/codeward_timing
//! cargo bench --bench timing -- --samples 500
//! cargo bench --bench timing -- --equal-time-step-ms 0   # the raw work, without the grid
//! ```
//! A PostgreSQL or MySQL database is used as given (create an empty one first).

use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{Value, json};

#[derive(Parser)]
struct Args {
    /// Database to run against; default: a temporary SQLite file.
    #[arg(long)]
    database_url: Option<String>,
    /// Requests per kind and side.
    #[arg(long, default_value_t = 300)]
    samples: usize,
    /// The server's `--equal-time-step-ms`; default: the server's default. 0 shows how long the
    /// work itself takes on each side.
    #[arg(long)]
    equal_time_step_ms: Option<u64>,
    /// Accepted for `cargo bench` compatibility.
    #[arg(long, hide = true)]
    bench: bool,
}

const PASSWORD: &str = "correct horse battery staple";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let database_url = args.database_url.clone().unwrap_or_else(|| {
        format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("timing.db").display()
        )
    });
    let mailbox = dir.path().join("mailbox");
    // Production parameters, but no limit in the way: every request must do its full work.
    let mut config_args = vec![
        "codeward".to_owned(),
        "--listen=127.0.0.1:0".to_owned(),
        format!("--database-url={database_url}"),
        format!("--mailbox-dir={}", mailbox.display()),
        "--log=warn".to_owned(),
        "--code-resend-cooldown-secs=0".to_owned(),
        "--codes-per-address-per-hour=1000".to_owned(),
        "--login-failures-before-delay=1000".to_owned(),
        "--ip-rate-send-code=1000000/s".to_owned(),
        "--ip-rate-verify-code=1000000/s".to_owned(),
        "--ip-rate-login=1000000/s".to_owned(),
        "--ip-rate-refresh=1000000/s".to_owned(),
    ];
    if let Some(step) = args.equal_time_step_ms {
        config_args.push(format!("--equal-time-step-ms={step}"));
    }
    let mut config = codeward::cli::Cli::try_parse_from(config_args)?.config;
    config.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    let equal_time_step_ms = config.equal_time_step_ms;
    codeward::infra::telemetry::init(&config.log, config.log_format);
    let app = codeward::startup::Application::build(config).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until(std::future::pending()));
    let client = reqwest::Client::new();
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let n = args.samples;
    let address = |kind: &str, i: usize| format!("{kind}{i}-{run}@timing.test");

    eprintln!("preparing {n} verified and {n} unverified accounts…");
    let post = |path: &str, body: Value| client.post(format!("{base}{path}")).json(&body).send();
    for i in 0..n {
        post(
            "/v1/signup",
            json!({"email": address("pending", i), "password": PASSWORD}),
        )
        .await?;
        post(
            "/v1/signup",
            json!({"email": address("verified", i), "password": PASSWORD}),
        )
        .await?;
    }
    // Verify the "verified" accounts with their emailed codes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in 0..n {
        let email = address("verified", i);
        let code = code_from_mailbox(&mailbox, &email)?;
        let response = post(
            "/v1/signup/verify",
            json!({"email": email, "code": code, "password": PASSWORD}),
        )
        .await?;
        anyhow::ensure!(response.status().is_success(), "could not verify {email}");
    }

    type Body = fn(&str) -> Value;
    let kinds: [(&str, &str, &str, Body); 9] = [
        (
            "signup (verified vs new)",
            "/v1/signup",
            "verified",
            |e| json!({"email": e, "password": PASSWORD}),
        ),
        (
            "resend (unverified vs unknown)",
            "/v1/signup/resend",
            "pending",
            |e| json!({"email": e}),
        ),
        (
            "forgot_password",
            "/v1/password/forgot",
            "verified",
            |e| json!({"email": e}),
        ),
        (
            "login failure",
            "/v1/login",
            "verified",
            |e| json!({"email": e, "password": "not the right password"}),
        ),
        (
            "verify_signup wrong code",
            "/v1/signup/verify",
            "pending",
            |e| json!({"email": e, "code": "000000", "password": PASSWORD}),
        ),
        (
            "check_reset_code wrong code",
            "/v1/password/reset/check",
            "verified",
            |e| json!({"email": e, "code": "000000"}),
        ),
        (
            "request_login_code",
            "/v1/login/code",
            "verified",
            |e| json!({"email": e}),
        ),
        (
            "request_login_code create_account",
            "/v1/login/code",
            "verified",
            |e| json!({"email": e, "create_account": true}),
        ),
        (
            "verify_login_code wrong code",
            "/v1/login/code/verify",
            "verified",
            |e| json!({"email": e, "code": "000000"}),
        ),
    ];
    println!(
        "{n} requests per side, interleaved; equal-time step {} ms; medians in ms; \
         two-sample Kolmogorov–Smirnov",
        equal_time_step_ms
    );
    println!(
        "{:<36} {:>12} {:>12} {:>8} {:>10}",
        "operation", "known", "unknown", "D", "p"
    );
    for (round, (name, path, known_kind, body)) in kinds.iter().enumerate() {
        let mut known = Vec::with_capacity(n);
        let mut unknown = Vec::with_capacity(n);
        for i in 0..n {
            let known_email = address(known_kind, i);
            let unknown_email = address(&format!("ghost{round}-"), i);
            // Alternate which side goes first, so neither profits from warm caches.
            let order: [(&str, bool); 2] = if i % 2 == 0 {
                [(&known_email, true), (&unknown_email, false)]
            } else {
                [(&unknown_email, false), (&known_email, true)]
            };
            for (email, is_known) in order {
                let started = Instant::now();
                let response = post(path, body(email)).await?;
                let status = response.status();
                response.bytes().await?;
                let elapsed = started.elapsed().as_secs_f64() * 1000.0;
                anyhow::ensure!(status.as_u16() < 500, "{name}: {status}");
                if is_known {
                    known.push(elapsed);
                } else {
                    unknown.push(elapsed);
                }
            }
        }
        let (d, p) = kolmogorov_smirnov(&mut known, &mut unknown);
        println!(
            "{:<36} {:>12.3} {:>12.3} {:>8.3} {:>10.4}{}",
            name,
            median(&known),
            median(&unknown),
            d,
            p,
            if p > 0.01 {
                ""
            } else {
                "   <-- distinguishable"
            }
        );
    }
    Ok(())
}

fn code_from_mailbox(mailbox: &std::path::Path, email: &str) -> anyhow::Result<String> {
    for entry in std::fs::read_dir(mailbox)? {
        let text = std::fs::read_to_string(entry?.path())?;
        if text.contains(&format!("To: {email}"))
            && let Some(line) = text.lines().find(|l| l.starts_with("Subject: "))
        {
            let code: String = line["Subject: ".len()..].chars().take(6).collect();
            if code.chars().all(|c| c.is_ascii_digit()) {
                return Ok(code);
            }
        }
    }
    anyhow::bail!("no code email for {email}")
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// The two-sample KS statistic D and its asymptotic p-value (Kolmogorov distribution, with
/// Stephens' small-sample correction).
fn kolmogorov_smirnov(a: &mut [f64], b: &mut [f64]) -> (f64, f64) {
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (n, m) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j, mut d) = (0, 0, 0.0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / n - j as f64 / m).abs());
    }
    let en = (n * m / (n + m)).sqrt();
    let lambda = (en + 0.12 + 0.11 / en) * d;
    let mut p = 0.0;
    for k in 1..=100 {
        let k = f64::from(k);
        let term = 2.0 * (-1.0f64).powf(k - 1.0) * (-2.0 * k * k * lambda * lambda).exp();
        p += term;
        if term.abs() < 1e-10 {
            break;
        }
    }
    (d, p.clamp(0.0, 1.0))
}
