//! `/metrics` in the Prometheus text format, on the main listener or a listener of its own.

use serde_json::json;

use crate::helpers::{assert_problem, spawn_app, spawn_app_with};

const PASSWORD: &str = "correct horse battery staple";

/// The value of the sample whose line starts with `series` (name and labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[tokio::test]
async fn metrics_count_requests_codes_emails_sessions_and_hashing() {
    let app = spawn_app().await;
    app.signed_up("ada@example.com", PASSWORD).await;
    let wrong = app
        .post(
            "/v1/login",
            &json!({"email": "ada@example.com", "password": "nope nope nope"}),
        )
        .await;
    assert_eq!(wrong.status().as_u16(), 401);
    app.smtp.wait_for_nth_message_to("ada@example.com", 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let response = app.get("/metrics").await;

    assert_eq!(response.status().as_u16(), 200);
    let text = response.text().await.unwrap();
    let expect = |series: &str, value: f64| {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    };
    expect(
        r#"codeward_http_requests_total{operation="signup",status="202"}"#,
        1.0,
    );
    expect(
        r#"codeward_http_requests_total{operation="verify_signup",status="200"}"#,
        1.0,
    );
    expect(
        r#"codeward_http_requests_total{operation="login",status="401"}"#,
        1.0,
    );
    expect(
        r#"codeward_codes_total{purpose="verify_email",outcome="issued"}"#,
        1.0,
    );
    expect(
        r#"codeward_codes_total{purpose="verify_email",outcome="verified"}"#,
        1.0,
    );
    expect(r#"codeward_emails_total{outcome="sent"}"#, 1.0);
    expect("codeward_outbox_depth", 0.0);
    expect("codeward_active_sessions", 1.0);
    expect(
        r#"codeward_http_request_duration_seconds_count{operation="login"}"#,
        1.0,
    );
    assert!(
        sample(&text, "codeward_password_hash_wait_seconds_count").is_some_and(|n| n >= 2.0),
        "{text}"
    );
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
    assert!(
        own.text()
            .await
            .unwrap()
            .contains("codeward_active_sessions")
    );
}
