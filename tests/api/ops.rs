//! Operations endpoints: probes, Swagger UI, the served spec, request ids.

use sea_orm::ConnectionTrait;

use crate::helpers::{assert_problem, spawn_app, spawn_app_with};

#[tokio::test]
async fn healthz_answers_ok() {
    let app = spawn_app().await;

    let response = app.get("/healthz").await;

    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"status": "ok"}));
}

#[tokio::test]
async fn readyz_is_ready_once_migrations_are_applied() {
    let app = spawn_app().await;

    let response = app.get("/readyz").await;

    assert_eq!(response.status().as_u16(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ready");
}

#[tokio::test]
async fn readyz_is_503_while_migrations_are_pending() {
    let app = spawn_app_with(&["--skip-migrations"]).await;

    let response = app.get("/readyz").await;

    let body = assert_problem(response, 503, "not_ready").await;
    assert!(
        body["detail"].as_str().unwrap().contains("pending"),
        "detail names the reason: {body}"
    );
}

#[tokio::test]
async fn readyz_is_503_without_a_migration_table_and_does_not_create_one() {
    let app = spawn_app().await;
    let db = app.connect_db().await;
    db.execute_unprepared("DROP TABLE seaql_migrations")
        .await
        .unwrap();

    let response = app.get("/readyz").await;

    assert_problem(response, 503, "not_ready").await;
    let recreated = db
        .execute_unprepared("SELECT 1 FROM seaql_migrations")
        .await
        .is_ok();
    assert!(!recreated, "a probe must not write to the database");
}

#[tokio::test]
async fn docs_serves_swagger_ui_pointing_at_the_spec() {
    let app = spawn_app().await;

    let response = app.get("/docs").await;

    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let html = response.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "Swagger UI page");
    assert!(
        html.contains("SwaggerUIBundle"),
        "Swagger UI script is inlined"
    );
}

#[tokio::test]
async fn served_yaml_spec_equals_the_committed_file() {
    let app = spawn_app().await;
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml"))
        .expect("openapi.yaml is committed");

    let served = app.get("/openapi.yaml").await.text().await.unwrap();

    assert!(
        served.trim_end() == committed.trim_end(),
        "/openapi.yaml differs from openapi.yaml; regenerate with `cargo run -q -- openapi > openapi.yaml`"
    );
}

#[tokio::test]
async fn served_json_spec_describes_the_same_api() {
    let app = spawn_app().await;

    let json: serde_json::Value = app.get("/openapi.json").await.json().await.unwrap();

    let expected: serde_json::Value = serde_json::from_str(&codeward::http::spec_json()).unwrap();
    assert_eq!(json, expected);
    assert!(json["paths"]["/healthz"]["get"]["operationId"] == "healthz");
}

#[tokio::test]
async fn a_sane_client_request_id_is_echoed() {
    let app = spawn_app().await;

    let response = app
        .client
        .get(app.url("/healthz"))
        .header("X-Request-Id", "mobile-1234")
        .send()
        .await
        .unwrap();

    assert_eq!(response.headers()["x-request-id"], "mobile-1234");
}

#[tokio::test]
async fn an_insane_client_request_id_is_replaced() {
    let app = spawn_app().await;
    let cases = [
        ("x".repeat(200), "over 128 characters"),
        ("two words".to_owned(), "contains a space"),
    ];
    for (sent, why) in cases {
        let response = app
            .client
            .get(app.url("/healthz"))
            .header("X-Request-Id", &sent)
            .send()
            .await
            .unwrap();

        let echoed = response.headers()["x-request-id"].to_str().unwrap();
        assert_ne!(echoed, sent, "{why}");
        assert!(
            uuid::Uuid::parse_str(echoed).is_ok(),
            "{why}: a fresh UUID, got {echoed}"
        );
    }
}

#[tokio::test]
async fn every_response_without_a_client_id_gets_a_distinct_one() {
    let app = spawn_app().await;

    let first = app.get("/healthz").await;
    let second = app.get("/no-such-path").await;

    let first = first.headers()["x-request-id"].to_str().unwrap().to_owned();
    let second = second.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(first, second);
}
