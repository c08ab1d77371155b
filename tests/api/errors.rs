//! Every error is problem+json: the framework's own (404, 405, 400, 413, 415), panics and
//! internal errors. JSON-body cases run against a probe API served through the very same
//! middleware stack as codeward, over a real socket.

use poem::listener::TcpAcceptor;
use poem::{Route, Server};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, OpenApiService};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use codeward::http::body::JsonBody;
use codeward::http::problem::InternalError;
use codeward::startup::with_middleware;

use crate::helpers::{PASSWORD, assert_problem, spawn_app};

const LIMIT: usize = 16 * 1024;

#[derive(Object)]
struct EchoBody {
    email: String,
    count: u32,
}

#[derive(ApiResponse)]
enum EchoResponse {
    #[oai(status = 200)]
    Ok(Json<EchoBody>),
}

struct ProbeApi;

#[OpenApi]
impl ProbeApi {
    #[oai(path = "/echo", method = "post")]
    async fn echo(&self, body: JsonBody<EchoBody>) -> EchoResponse {
        EchoResponse::Ok(Json(body.0))
    }

    #[oai(path = "/panic", method = "get")]
    async fn panic(&self) -> EchoResponse {
        panic!("boom with secret-in-panic")
    }

    #[oai(path = "/internal", method = "get")]
    async fn internal(&self) -> Result<EchoResponse, InternalError> {
        Err(anyhow::anyhow!("connection to postgres://app:hunter2@db failed").into())
    }
}

/// Serves the probe API behind codeward's middleware on a free port; returns its address.
async fn spawn_probe() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let api = OpenApiService::new(ProbeApi, "probe", "1");
    let endpoint = with_middleware(Route::new().nest("/", api), LIMIT);
    let acceptor = TcpAcceptor::from_tokio(listener).unwrap();
    tokio::spawn(Server::new_with_acceptor(acceptor).run(endpoint));
    format!("http://{address}")
}

fn email_of_length(total_body: usize) -> String {
    // {"email":"…","count":1} has 22 bytes besides the email.
    "a".repeat(total_body - 22)
}

#[tokio::test]
async fn bad_json_bodies_get_their_problem_answers() {
    let address = spawn_probe().await;
    let client = reqwest::Client::new();
    let big = format!(r#"{{"email":"{}","count":1}}"#, email_of_length(LIMIT + 1));
    let cases: Vec<(&str, Option<&str>, String, u16, &str)> = vec![
        (
            "malformed JSON",
            Some("application/json"),
            r#"{"email":"#.into(),
            400,
            "invalid_request",
        ),
        (
            "missing field",
            Some("application/json"),
            r#"{"email":"a@b.c"}"#.into(),
            400,
            "invalid_request",
        ),
        (
            "mistyped field",
            Some("application/json"),
            r#"{"email":"a@b.c","count":"x"}"#.into(),
            400,
            "invalid_request",
        ),
        (
            "JSON array instead of object",
            Some("application/json"),
            "[]".into(),
            400,
            "invalid_request",
        ),
        (
            "empty body",
            Some("application/json"),
            String::new(),
            400,
            "invalid_request",
        ),
        (
            "text/plain body",
            Some("text/plain"),
            r#"{"email":"a@b.c","count":1}"#.into(),
            415,
            "unsupported_media_type",
        ),
        (
            "form body",
            Some("application/x-www-form-urlencoded"),
            "email=a".into(),
            415,
            "unsupported_media_type",
        ),
        (
            "no content type",
            None,
            r#"{"email":"a@b.c","count":1}"#.into(),
            415,
            "unsupported_media_type",
        ),
        (
            "one byte over 16 KiB",
            Some("application/json"),
            big,
            413,
            "payload_too_large",
        ),
    ];
    for (why, content_type, body, status, code) in cases {
        let mut request = client.post(format!("{address}/echo")).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }

        let response = request.send().await.unwrap();

        assert_eq!(response.status().as_u16(), status, "{why}");
        assert_problem(response, status, code).await;
    }
}

#[tokio::test]
async fn a_body_of_exactly_the_limit_is_accepted() {
    let address = spawn_probe().await;
    let body = format!(r#"{{"email":"{}","count":1}}"#, email_of_length(LIMIT));
    assert_eq!(body.len(), LIMIT);

    let response = reqwest::Client::new()
        .post(format!("{address}/echo"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status().as_u16(), 200);
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_refused_without_reading_it_all() {
    let address = spawn_probe().await;
    let host = address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let head = format!(
        "POST /echo HTTP/1.1\r\nHost: {host}\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = "a".repeat(4096);
    // 8 chunks of 4 KiB = 32 KiB, never terminated: the server must answer anyway.
    for _ in 0..8 {
        let framed = format!("{:x}\r\n{chunk}\r\n", chunk.len());
        if stream.write_all(framed.as_bytes()).await.is_err() {
            break; // the server already answered and closed
        }
    }

    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await;

    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "got: {answer}");
    assert!(answer.contains("application/problem+json"), "got: {answer}");
    assert!(answer.contains("payload_too_large"), "got: {answer}");
}

#[tokio::test]
async fn a_panicking_handler_gives_a_generic_500_problem() {
    let address = spawn_probe().await;

    let response = reqwest::get(format!("{address}/panic")).await.unwrap();

    let body = assert_problem(response, 500, "internal_error").await;
    assert!(!body.to_string().contains("secret-in-panic"), "{body}");
}

#[tokio::test]
async fn an_internal_error_gives_a_500_problem_that_reveals_nothing() {
    let address = spawn_probe().await;

    let response = reqwest::get(format!("{address}/internal")).await.unwrap();

    let body = assert_problem(response, 500, "internal_error").await;
    let text = body.to_string();
    assert!(
        !text.contains("hunter2") && !text.contains("postgres"),
        "{text}"
    );
}

#[tokio::test]
async fn the_real_app_answers_unknown_paths_wrong_methods_and_big_bodies_with_problems() {
    let app = spawn_app().await;
    let cases = [
        ("GET", "/no-such-path", String::new(), 404, "not_found"),
        ("GET", "/v1/nothing/here", String::new(), 404, "not_found"),
        ("POST", "/healthz", String::new(), 405, "method_not_allowed"),
        (
            "DELETE",
            "/readyz",
            String::new(),
            405,
            "method_not_allowed",
        ),
        (
            "POST",
            "/healthz",
            "x".repeat(LIMIT + 1),
            413,
            "payload_too_large",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();

        let response = app
            .client
            .request(method.clone(), app.url(path))
            .body(body)
            .send()
            .await
            .unwrap();

        assert_eq!(response.status().as_u16(), status, "{method} {path}");
        let body = assert_problem(response, status, code).await;
        assert!(body["detail"].is_string(), "{method} {path}: {body}");
    }
}

/// A body that means one thing to a reader keeping the first of two equal members and another
/// to one keeping the last is refused, at any depth, before any work.
#[tokio::test]
async fn a_body_with_a_member_given_twice_is_refused_and_nothing_is_sent() {
    let app = spawn_app().await;
    let password = format!("\"password\":\"{PASSWORD}\"");
    let bodies = [
        format!(r#"{{"email":"a@example.com","email":"b@example.com",{password}}}"#),
        format!(r#"{{"email":"a@example.com","\u0065mail":"b@example.com",{password}}}"#),
        format!(r#"{{"email":"a@example.com",{password},"locale":"en","locale":"es"}}"#),
        format!(r#"{{"email":"a@example.com",{password},"extra":{{"k":1,"k":2}}}}"#),
        format!(r#"{{"email":"a@example.com",{password},"extra":[[{{"k":[],"k":{{}}}}]]}}"#),
    ];

    for body in &bodies {
        let response = app
            .client
            .post(app.url("/v1/signup"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();

        let problem = assert_problem(response, 400, "invalid_request").await;
        assert!(problem["detail"].is_string(), "{body}: {problem}");
    }
    for email in ["a@example.com", "b@example.com"] {
        assert!(app.outbox_to(email).await.is_empty(), "an email to {email}");
    }
    let distinct =
        format!(r#"{{"email":"a@example.com",{password},"extra":{{"k":1,"K":[{{"k":2}}]}}}}"#);
    let response = app
        .client
        .post(app.url("/v1/signup"))
        .header("content-type", "application/json")
        .body(distinct)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        202,
        "equal names in different objects"
    );
}
