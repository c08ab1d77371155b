//! `/metrics` in the Prometheus text format, on the main listener or a listener of its own.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use entity::email_outbox;
use futures::future::join_all;
use prometheus_parse::{LineInfo, Scrape, Value};
use sea_orm::{ActiveModelTrait, Set};

use crate::helpers::{PASSWORD, TestApp, assert_problem, other_code, spawn_app, spawn_app_with};

/// A strong pepper, for production mode.
const PEPPER: &str = "--pepper=k1:rH7SbhbevAP6130em5tpHN2Z6bhrDge6BKP1CusuIlQ=";

/// Parses a scrape with a Prometheus text-format parser, after checking that the parser
/// understood every line (it skips what it cannot read, which must be nothing here).
fn parse(text: &str) -> Scrape {
    for line in text.lines() {
        let understood = match LineInfo::parse(line) {
            LineInfo::Ignored => ["# EOF", "# UNIT "].iter().any(|c| line.starts_with(c)),
            _ => true,
        };
        assert!(understood, "not in the text format: {line}");
    }
    Scrape::parse(text.lines().map(|line| Ok(line.to_owned()))).expect("a scrape")
}

pub type Labels<'a> = &'a [(&'a str, &'a str)];

/// The value of the sample named `metric` with exactly `labels`, if there is one.
pub fn value(scrape: &Scrape, metric: &str, labels: Labels) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == metric
                && labels.len() == s.labels.len()
                && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
        })
        .and_then(|s| match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(v),
            _ => None,
        })
}

/// `GET /metrics` on the app's main listener, parsed.
pub async fn scrape(app: &TestApp) -> Scrape {
    let response = app.get("/metrics").await;
    assert_eq!(response.status().as_u16(), 200);
    parse(&response.text().await.unwrap())
}

#[tokio::test]
async fn metrics_parse_and_move_as_requests_codes_emails_sessions_and_hashing_happen() {
    let app = spawn_app().await;
    let before = scrape(&app).await;

    app.signed_up("ada@example.com", PASSWORD).await;
    let wrong = app.login("ada@example.com", "nope nope nope").await;
    assert_eq!(wrong.status().as_u16(), 401);
    app.smtp.wait_for_nth_message_to("ada@example.com", 1).await;
    // The worker counts the delivery and then records it: the outbox empties after both.
    app.wait_until_sent("ada@example.com").await;
    // The database gauges are read at most once per window: step past the one `before` began.
    app.instance.clock.advance(Duration::from_secs(5));
    let after = scrape(&app).await;

    // (metric, labels, value before, value after); a series not yet seen counts as 0.
    let moved: [(&str, Labels, f64, f64); 9] = [
        (
            "codeward_http_requests_total",
            &[("operation", "signup"), ("status", "202")],
            0.0,
            1.0,
        ),
        (
            "codeward_http_requests_total",
            &[("operation", "verify_signup"), ("status", "200")],
            0.0,
            1.0,
        ),
        (
            "codeward_http_requests_total",
            &[("operation", "login"), ("status", "401")],
            0.0,
            1.0,
        ),
        (
            "codeward_codes_total",
            &[("purpose", "verify_email"), ("outcome", "issued")],
            0.0,
            1.0,
        ),
        (
            "codeward_codes_total",
            &[("purpose", "verify_email"), ("outcome", "verified")],
            0.0,
            1.0,
        ),
        ("codeward_emails_total", &[("outcome", "sent")], 0.0, 1.0),
        ("codeward_outbox_depth", &[], 0.0, 0.0),
        ("codeward_active_sessions", &[], 0.0, 1.0),
        (
            "codeward_http_request_duration_seconds_count",
            &[("operation", "login")],
            0.0,
            1.0,
        ),
    ];
    for (metric, labels, was, is) in moved {
        assert_eq!(
            value(&before, metric, labels).unwrap_or(0.0),
            was,
            "{metric}{labels:?} before"
        );
        assert_eq!(
            value(&after, metric, labels),
            Some(is),
            "{metric}{labels:?} after"
        );
    }
    let hashed = value(&after, "codeward_password_hash_wait_seconds_count", &[]);
    assert!(hashed.is_some_and(|n| n >= 2.0), "{hashed:?}");
}

#[tokio::test]
async fn a_metrics_listener_of_its_own_takes_metrics_off_the_main_one() {
    let app = spawn_app_with(&["--metrics-listen=127.0.0.1:0"]).await;
    let port = app.instance.metrics_port.expect("a metrics listener");

    let main = app.get("/metrics").await;
    let own = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap();

    assert_problem(main, 404, "not_found").await;
    assert_eq!(own.status().as_u16(), 200);
    let own = parse(&own.text().await.unwrap());
    assert_eq!(value(&own, "codeward_active_sessions", &[]), Some(0.0));
}

/// Series that are not counted while a request runs: deliveries (the worker's, after the
/// answer) and the gauges read from the database or memory at scrape time. A request about an
/// address must move every other series the same way whether or not an account has it.
const NOT_REQUEST_TIME: [&str; 8] = [
    "codeward_emails_total",
    "codeward_webhooks_total",
    "codeward_webhook_queue_depth",
    "codeward_webhook_oldest_pending_seconds",
    "codeward_outbox_depth",
    "codeward_outbox_oldest_pending_seconds",
    "codeward_active_sessions",
    "codeward_ip_quota_entries",
];

/// Every counted sample of a scrape, keyed `name{label="value",…}` (labels sorted). Histogram
/// buckets and sums are left out: they record how long requests took, which is the equal-time
/// step's business (security.md), not what was counted; their `_count` stays in.
fn counted(scrape: &Scrape) -> BTreeMap<String, f64> {
    scrape
        .samples
        .iter()
        .filter(|s| !NOT_REQUEST_TIME.contains(&s.metric.as_str()))
        .filter(|s| !s.metric.ends_with("_sum"))
        .filter_map(|s| {
            let value = match s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
                _ => return None,
            };
            let labels: BTreeMap<&String, &String> = s.labels.iter().collect();
            Some((format!("{}{labels:?}", s.metric), value))
        })
        .collect()
}

/// What moved between two scrapes: every series whose value changed, by how much.
fn moved(before: &Scrape, after: &Scrape) -> BTreeMap<String, f64> {
    let (before, after) = (counted(before), counted(after));
    let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    keys.into_iter()
        .filter_map(|key| {
            let delta = after.get(key).unwrap_or(&0.0) - before.get(key).unwrap_or(&0.0);
            (delta != 0.0).then(|| (key.clone(), delta))
        })
        .collect()
}

/// Runs `first`, then `second`, each between two scrapes, and asserts that they moved the
/// very same request-time series by the very same amounts.
async fn assert_same_series_move(
    app: &TestApp,
    first: impl AsyncFnOnce(),
    second: impl AsyncFnOnce(),
    what: &str,
) {
    let start = scrape(app).await;
    first().await;
    let middle = scrape(app).await;
    second().await;
    let end = scrape(app).await;

    let by_first = moved(&start, &middle);
    let by_second = moved(&middle, &end);
    assert!(
        by_first
            .keys()
            .any(|key| key.contains("http_requests_total")),
        "the scrapes saw the requests: {by_first:?}"
    );
    assert_eq!(by_first, by_second, "{what}");
}

#[tokio::test]
async fn a_reset_code_request_moves_the_same_metrics_for_an_unknown_address_as_for_an_account() {
    let app = spawn_app().await;
    app.signed_up("alice@example.com", PASSWORD).await;
    app.wait_until_sent("alice@example.com").await;

    assert_same_series_move(
        &app,
        async || {
            assert_eq!(
                app.forgot_password("nobody@example.com").await.status(),
                202
            )
        },
        async || assert_eq!(app.forgot_password("alice@example.com").await.status(), 202),
        "forgot_password: unknown address, then alice's",
    )
    .await;
}

#[tokio::test]
async fn a_sign_up_moves_the_same_metrics_for_a_verified_address_as_for_a_new_one() {
    let app = spawn_app().await;
    app.signed_up("alice@example.com", PASSWORD).await;
    app.wait_until_sent("alice@example.com").await;

    assert_same_series_move(
        &app,
        async || assert_eq!(app.signup("new@example.com", PASSWORD).await.status(), 202),
        async || {
            assert_eq!(
                app.signup("alice@example.com", PASSWORD).await.status(),
                202
            )
        },
        "signup: a new address, then alice's verified one",
    )
    .await;
}

#[tokio::test]
async fn a_disabled_account_moves_the_same_metrics_as_an_unknown_address() {
    let app = spawn_app().await;
    let session = app.signed_up("alice@example.com", PASSWORD).await;
    app.wait_until_sent("alice@example.com").await;
    let key = crate::api_keys::create_key(&app, "tool", &["admin"]);
    let id = session["user"]["id"].as_str().unwrap();
    assert_eq!(app.disable_user(&key, id).await.status(), 200);
    let requests = async |email: &str| {
        assert_problem(app.login(email, PASSWORD).await, 401, "invalid_credentials").await;
        assert_eq!(app.forgot_password(email).await.status(), 202);
        assert_eq!(app.request_login_code(email, None).await.status(), 202);
    };

    assert_same_series_move(
        &app,
        async || requests("nobody@example.com").await,
        async || requests("alice@example.com").await,
        "login, forgot_password, request_login_code: unknown address, then alice's disabled one",
    )
    .await;
}

#[tokio::test]
async fn a_wrong_code_moves_the_same_metrics_for_an_unknown_address_as_for_an_expired_code() {
    let app = spawn_app().await;
    let code = app.signup_code("pending@example.com", PASSWORD).await;
    // The pending account's code expires; a guess at it then counts no attempt.
    app.instance.clock.advance(Duration::from_secs(601));
    let wrong = other_code(&code);

    assert_same_series_move(
        &app,
        async || {
            let response = app
                .verify_signup("nobody@example.com", &wrong, PASSWORD)
                .await;
            assert_eq!(response.status(), 400);
        },
        async || {
            let response = app
                .verify_signup("pending@example.com", &wrong, PASSWORD)
                .await;
            assert_eq!(response.status(), 400);
        },
        "verify_signup with a wrong code: unknown address, then a pending account's",
    )
    .await;
}

#[tokio::test]
async fn in_production_metrics_are_served_on_the_metrics_listener_only() {
    let public = spawn_app_with(&["--env=production", PEPPER]).await;
    let private =
        spawn_app_with(&["--env=production", PEPPER, "--metrics-listen=127.0.0.1:0"]).await;
    let port = private.instance.metrics_port.expect("a metrics listener");

    let without_listener = public.get("/metrics").await;
    let main = private.get("/metrics").await;
    let own = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap();

    assert_problem(without_listener, 404, "not_found").await;
    assert_problem(main, 404, "not_found").await;
    assert_eq!(own.status().as_u16(), 200);
    parse(&own.text().await.unwrap());
}

#[tokio::test]
async fn scrapes_within_the_gauge_window_read_the_database_once() {
    let app = spawn_app().await;
    app.signed_up("ada@example.com", PASSWORD).await;
    app.wait_until_sent("ada@example.com").await;
    let first = scrape(&app).await;
    assert_eq!(value(&first, "codeward_active_sessions", &[]), Some(1.0));
    assert_eq!(value(&first, "codeward_outbox_depth", &[]), Some(0.0));

    // Between scrapes, within the window: a second session and an email waiting for a day.
    let login = app.login("ada@example.com", PASSWORD).await;
    assert_eq!(login.status().as_u16(), 200);
    let now = app.instance.clock.now();
    email_outbox::ActiveModel {
        id: Set(uuid::Uuid::new_v4()),
        recipient: Set("ada@example.com".to_owned()),
        template: Set("account_exists".to_owned()),
        locale: Set("en".to_owned()),
        context: Set("{}".to_owned()),
        code: Set(None),
        status: Set(email_outbox::Status::Pending),
        attempts: Set(0),
        next_attempt_at: Set(now + chrono::Duration::days(1)),
        claim_token: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        sent_at: Set(None),
        expires_at: Set(now + chrono::Duration::days(2)),
    }
    .insert(&app.connect_db().await)
    .await
    .unwrap();
    let within = join_all((0..5).map(|_| scrape(&app))).await;

    for scrape in &within {
        assert_eq!(value(scrape, "codeward_active_sessions", &[]), Some(1.0));
        assert_eq!(value(scrape, "codeward_outbox_depth", &[]), Some(0.0));
    }
    app.instance.clock.advance(Duration::from_secs(5));
    let after = scrape(&app).await;
    assert_eq!(value(&after, "codeward_active_sessions", &[]), Some(2.0));
    assert_eq!(value(&after, "codeward_outbox_depth", &[]), Some(1.0));
    let oldest = value(&after, "codeward_outbox_oldest_pending_seconds", &[]);
    assert!(oldest.is_some_and(|age| age >= 5.0), "{oldest:?}");
}
