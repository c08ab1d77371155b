//! Connections as a slow or greedy client holds them, over raw TCP: request heads that never
//! end, idle keep-alive connections, more connections than the cap, oversized heads, and the
//! stream cap an HTTP/2 (h2c) client is told.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::helpers::{TestApp, spawn_app_with};

/// Longest a test waits for the server to close a connection it should close.
const CLOSE_WITHIN: Duration = Duration::from_secs(10);
/// Timer slack: a deadline of one second never fires noticeably early.
const ONE_SECOND_NEARLY: Duration = Duration::from_millis(900);

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: codeward\r\n\r\n";

async fn connect(app: &TestApp) -> TcpStream {
    let address = app.address.trim_start_matches("http://");
    TcpStream::connect(address).await.expect("connects")
}

/// Reads one HTTP/1.1 response (head and `Content-Length` body) and returns its status.
async fn read_response(stream: &mut TcpStream) -> u16 {
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            if received.len() >= end + 4 + length {
                let status = text.split(' ').nth(1).expect("a status line");
                return status.parse().expect("a status code");
            }
        }
        let read = stream.read(&mut chunk).await.expect("the response arrives");
        assert!(read > 0, "closed before a whole response: {text:?}");
        received.extend_from_slice(&chunk[..read]);
    }
}

/// `codeward_http_connections_closed_total` for `reason`, from `/metrics`.
async fn closed_for(app: &TestApp, reason: &str) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    let series = format!("codeward_http_connections_closed_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(series.as_str()))
        .map_or(0.0, |value| value.parse().expect("a number"))
}

/// Waits until the server closes `stream`, reading and discarding what it sends; returns when
/// it closed.
async fn closed_by_server(stream: &mut TcpStream) -> Instant {
    let mut sink = [0u8; 4096];
    let closing = async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return Instant::now(),
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(CLOSE_WITHIN, closing)
        .await
        .expect("the server closes the connection")
}

#[tokio::test]
async fn a_request_head_that_never_ends_is_closed_at_the_deadline_while_others_are_served() {
    let app = spawn_app_with(&["--header-read-timeout-secs=1"]).await;
    let started = Instant::now();
    // Says nothing at all.
    let mut silent = connect(&app).await;
    // Sends half a request head, then nothing.
    let mut half = connect(&app).await;
    half.write_all(b"POST /v1/signup HTTP/1.1\r\nHost: codeward\r\nX-Filler: aaaa")
        .await
        .unwrap();
    // Is answered once, then sends half of its next head.
    let mut second_half = connect(&app).await;
    second_half.write_all(HEALTHZ).await.unwrap();
    assert_eq!(read_response(&mut second_half).await, 200);
    second_half
        .write_all(b"GET /healthz HTTP/1.1\r\nHo")
        .await
        .unwrap();
    let second_started = Instant::now();

    for _ in 0..3 {
        assert_eq!(app.get("/healthz").await.status().as_u16(), 200);
    }
    let others_served = Instant::now();

    for (why, stream, since) in [
        ("silent", &mut silent, started),
        ("half a head", &mut half, started),
        ("half the next head", &mut second_half, second_started),
    ] {
        let closed = closed_by_server(stream).await;
        assert!(closed - since >= ONE_SECOND_NEARLY, "{why}: closed early");
        assert!(
            others_served < closed,
            "{why}: closed before the others were served"
        );
    }
    assert_eq!(closed_for(&app, "header_timeout").await, 3.0);
    assert_eq!(closed_for(&app, "idle_timeout").await, 0.0);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let app = spawn_app_with(&["--idle-timeout-secs=1", "--header-read-timeout-secs=30"]).await;
    let mut stream = connect(&app).await;
    // Requests more than a second apart in all keep the connection: idle time counts from
    // the last answer.
    for _ in 0..4 {
        stream.write_all(HEALTHZ).await.unwrap();
        assert_eq!(read_response(&mut stream).await, 200);
        // Pacing the requests, not waiting for something to happen.
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    stream.write_all(HEALTHZ).await.unwrap();
    assert_eq!(read_response(&mut stream).await, 200);
    let answered = Instant::now();

    let closed = closed_by_server(&mut stream).await;

    assert!(closed - answered >= ONE_SECOND_NEARLY, "closed early");
    assert!(closed_for(&app, "idle_timeout").await >= 1.0);
    assert_eq!(closed_for(&app, "header_timeout").await, 0.0);
}

#[tokio::test]
async fn a_connection_over_the_cap_waits_until_one_closes_while_open_ones_are_served() {
    let app = spawn_app_with(&["--max-connections=1"]).await;
    let mut holder = connect(&app).await;
    holder.write_all(HEALTHZ).await.unwrap();
    assert_eq!(read_response(&mut holder).await, 200);
    let mut waiting = connect(&app).await;
    waiting.write_all(HEALTHZ).await.unwrap();
    let answer = tokio::spawn(async move {
        let status = read_response(&mut waiting).await;
        (status, Instant::now())
    });

    for _ in 0..3 {
        holder.write_all(HEALTHZ).await.unwrap();
        assert_eq!(
            read_response(&mut holder).await,
            200,
            "the open one is served"
        );
    }
    let released = Instant::now();
    drop(holder);

    let (status, answered) = tokio::time::timeout(CLOSE_WITHIN, answer)
        .await
        .expect("the waiting connection is served once the slot is free")
        .unwrap();
    assert_eq!(status, 200);
    assert!(answered > released, "answered while the cap was reached");
}

#[tokio::test]
async fn a_request_head_over_the_cap_is_answered_431() {
    let app = spawn_app_with(&["--max-header-bytes=8192"]).await;
    let head = |filler: usize| {
        format!(
            "GET /healthz HTTP/1.1\r\nHost: codeward\r\nX-Filler: {}\r\n\r\n",
            "a".repeat(filler)
        )
    };
    let mut small = connect(&app).await;
    small.write_all(head(4000).as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut small).await, 200);

    let mut large = connect(&app).await;
    // The server may answer and close before it has read all of this; that is the point.
    let _ = large.write_all(head(10_000).as_bytes()).await;

    assert_eq!(read_response(&mut large).await, 431);
}

#[tokio::test]
async fn an_h2c_client_is_told_the_stream_cap_in_the_servers_settings() {
    let app = spawn_app_with(&["--http2-max-streams=7"]).await;
    let tcp = connect(&app).await;
    let (client, connection) = h2::client::handshake(tcp).await.expect("h2c handshake");
    tokio::spawn(connection);
    let request = poem::http::Request::get(format!("{}/healthz", app.address))
        .body(())
        .unwrap();

    let mut client = client.ready().await.expect("ready for a stream");
    let (response, _) = client.send_request(request, true).expect("stream opened");
    let response = response.await.expect("an answer over HTTP/2");

    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), poem::http::Version::HTTP_2);
    assert_eq!(client.current_max_send_streams(), 7);
}
