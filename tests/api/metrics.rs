//! `/metrics` in the Prometheus text format, on the main listener or a listener of its own.

use prometheus_parse::{LineInfo, Scrape, Value};

use crate::helpers::{PASSWORD, assert_problem, spawn_app, spawn_app_with};

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

type Labels<'a> = &'a [(&'a str, &'a str)];

/// The value of the sample named `metric` with exactly `labels`, if there is one.
fn value(scrape: &Scrape, metric: &str, labels: Labels) -> Option<f64> {
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

async fn scrape(app: &crate::helpers::TestApp) -> Scrape {
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
