//! Webhooks against a real HTTP receiver in the test process: every event a user causes,
//! signed as the Standard Webhooks specification says (checked here with an HMAC of our own),
//! retries through a failing receiver, dead events and `retry-dead`, the order per user,
//! delivery after a SIGKILL, two processes on one PostgreSQL, and no secret in the table or
//! in what the receiver got.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use entity::webhook_outbox;
use hmac::{Hmac, Mac};
use poem::listener::TcpAcceptor;
use poem::web::Data;
use poem::{EndpointExt, Route, Server};
use sea_orm::{DatabaseConnection, EntityTrait, PaginatorTrait};
use serde_json::Value;
use sha2::Sha256;

use crate::helpers::{
    NEW_PASSWORD, PASSWORD, TEST_PEPPER, TestApp, eventually, run_codeward, run_codeward_on,
    spawn_app, spawn_app_with,
};

/// The receiver's secret, in the form the specification's examples use.
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// How the receiver answers one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Status(u16),
    /// Never answers (the sender times out, or is killed meanwhile).
    Hang,
}

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub content_type: String,
    pub body: String,
    pub answer: Answer,
}

impl Delivery {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }

    pub fn event_type(&self) -> String {
        self.json()["type"].as_str().unwrap_or_default().to_owned()
    }

    pub fn user_id(&self) -> String {
        self.json()["data"]["user_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn delivered(&self) -> bool {
        matches!(self.answer, Answer::Status(200..=299))
    }
}

#[derive(Default)]
struct ReceiverState {
    /// Answers for the next requests, in order; then `otherwise`.
    script: Mutex<VecDeque<Answer>>,
    otherwise: Mutex<Option<Answer>>,
    requests: Mutex<Vec<Delivery>>,
}

/// A small HTTP server that records every webhook it gets and answers as told (200 unless
/// scripted otherwise).
pub struct Receiver {
    pub url: String,
    state: Arc<ReceiverState>,
}

#[poem::handler]
async fn receive(
    request: &poem::Request,
    body: String,
    Data(state): Data<&Arc<ReceiverState>>,
) -> poem::http::StatusCode {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let answer = state
        .script
        .lock()
        .unwrap()
        .pop_front()
        .or(*state.otherwise.lock().unwrap())
        .unwrap_or(Answer::Status(200));
    state.requests.lock().unwrap().push(Delivery {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        content_type: header("content-type"),
        body,
        answer,
    });
    match answer {
        Answer::Status(status) => poem::http::StatusCode::from_u16(status).unwrap(),
        Answer::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            poem::http::StatusCode::OK
        }
    }
}

impl Receiver {
    pub async fn start() -> Self {
        Self::serve(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap())
    }

    /// A receiver on `port` (one that was down until now).
    pub async fn start_on(port: u16) -> Self {
        Self::serve(
            tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .unwrap(),
        )
    }

    fn serve(listener: tokio::net::TcpListener) -> Self {
        let address = listener.local_addr().unwrap();
        let state = Arc::new(ReceiverState::default());
        let app = Route::new()
            .at("/hook", poem::post(receive))
            .data(state.clone());
        let acceptor = TcpAcceptor::from_tokio(listener).unwrap();
        tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
        Self {
            url: format!("http://{address}/hook"),
            state,
        }
    }

    /// The next requests get these answers, in order.
    pub fn script(&self, answers: &[Answer]) {
        self.state.script.lock().unwrap().extend(answers);
    }

    /// Every request after the script gets `answer`.
    pub fn answer_otherwise(&self, answer: Answer) {
        *self.state.otherwise.lock().unwrap() = Some(answer);
    }

    pub fn requests(&self) -> Vec<Delivery> {
        self.state.requests.lock().unwrap().clone()
    }

    /// The requests answered with a 2xx.
    pub fn delivered(&self) -> Vec<Delivery> {
        self.requests()
            .into_iter()
            .filter(Delivery::delivered)
            .collect()
    }

    pub async fn wait_for_delivered(&self, count: usize) -> Vec<Delivery> {
        eventually(&format!("{count} webhooks delivered"), async || {
            self.delivered().len() >= count
        })
        .await;
        self.delivered()
    }
}

/// The flags that send webhooks to `url`: quick polls, and retries far apart (tests move the
/// clock to skip the waits).
pub fn webhook_flags(url: &str) -> Vec<String> {
    vec![
        format!("--webhook-url={url}"),
        format!("--webhook-secret={SECRET}"),
        "--webhook-poll-ms=50".to_owned(),
        "--webhook-retry-base-ms=60000".to_owned(),
    ]
}

async fn spawn_with_receiver(receiver: &Receiver, extra: &[&str]) -> TestApp {
    let mut flags = webhook_flags(&receiver.url);
    flags.extend(extra.iter().map(|s| (*s).to_owned()));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    spawn_app_with(&flags).await
}

/// Checks the signature as a receiver following the Standard Webhooks specification does,
/// independently of codeward's code: HMAC-SHA256 under the base64-decoded part after
/// `whsec_`, over `id.timestamp.body`, compared with each `v1,` signature of the header.
pub fn signature_is_valid(secret: &str, delivery: &Delivery) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.{}", delivery.id, delivery.timestamp, delivery.body).as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    delivery
        .signature
        .split(' ')
        .any(|signature| signature == format!("v1,{expected}"))
}

async fn rows(db: &DatabaseConnection) -> Vec<webhook_outbox::Model> {
    webhook_outbox::Entity::find().all(db).await.unwrap()
}

fn session(value: &Value, member: &str) -> String {
    value[member].as_str().unwrap().to_owned()
}

/// The code of the message `request` makes codeward send to `email` (once the messages
/// before it were sent, so it is the next one).
async fn next_code(
    app: &TestApp,
    email: &str,
    request: impl Future<Output = reqwest::Response>,
) -> String {
    if !app.outbox_to(email).await.is_empty() {
        app.wait_until_sent(email).await;
    }
    let before = app.smtp.messages_to(email).len();
    let response = request.await;
    assert_eq!(response.status().as_u16(), 202, "a code request");
    app.smtp
        .wait_for_nth_message_to(email, before + 1)
        .await
        .code()
}

async fn signed_in(response: reqwest::Response) -> Value {
    assert_eq!(response.status().as_u16(), 200, "a sign-in");
    response.json().await.unwrap()
}

/// What `every_flow` did, to compare with what the receiver got.
struct Flows {
    ada: String,
    bob: String,
    /// The sessions of Ada's sign-ins, in order.
    ada_sessions: Vec<String>,
    replayed_session: String,
    bob_session: String,
    /// Every secret the flows saw: codes, tokens, passwords.
    secrets: Vec<String>,
}

/// Every flow that emits an event a user can cause: sign-up, password sign-in, password
/// change, reset, refresh replay, email change and deletion (Ada); sign-in by code that
/// creates the account (Bob). Needs `--refresh-reuse-grace-secs=0`.
async fn every_flow(app: &TestApp) -> Flows {
    let (ada, ada_new, bob) = ("ada@example.com", "ada.new@example.com", "bob@example.com");
    let mut secrets = vec![PASSWORD.to_owned(), NEW_PASSWORD.to_owned()];
    let mut ada_sessions = Vec::new();

    let signup_code = app.signup_code(ada, PASSWORD).await;
    let first = signed_in(app.verify_signup(ada, &signup_code, PASSWORD).await).await;
    ada_sessions.push(session(&first, "session_id"));
    let second = signed_in(app.login(ada, PASSWORD).await).await;
    ada_sessions.push(session(&second, "session_id"));
    let changed = app
        .change_password(&session(&first, "access_token"), PASSWORD, NEW_PASSWORD)
        .await;
    assert_eq!(changed.status().as_u16(), 204, "change_password");
    let reset_code = next_code(app, ada, app.forgot_password(ada)).await;
    let reset = app.reset_password(ada, &reset_code, PASSWORD).await;
    assert_eq!(reset.status().as_u16(), 204, "reset_password");
    let third = signed_in(app.login(ada, PASSWORD).await).await;
    ada_sessions.push(session(&third, "session_id"));
    let refresh = session(&third, "refresh_token");
    let rotated = signed_in(app.refresh(&refresh).await).await;
    let replay = app.refresh(&refresh).await;
    assert_eq!(replay.status().as_u16(), 401, "the replay is refused");
    let fourth = signed_in(app.login(ada, PASSWORD).await).await;
    ada_sessions.push(session(&fourth, "session_id"));
    let token = session(&fourth, "access_token");
    let change = app.request_email_change(&token, ada_new).await;
    assert_eq!(change.status().as_u16(), 202, "request_email_change");
    let change_code = app.smtp.wait_for_nth_message_to(ada_new, 1).await.code();
    let verified = app.verify_email_change(&token, &change_code).await;
    assert_eq!(verified.status().as_u16(), 200, "verify_email_change");
    let deleted = app.delete_account(&token).await;
    assert_eq!(deleted.status().as_u16(), 204, "delete_account");

    let login_code = next_code(app, bob, app.request_login_code(bob, Some(true))).await;
    let bob_session = signed_in(app.verify_login_code(bob, &login_code).await).await;

    secrets.extend([signup_code, reset_code, change_code, login_code]);
    for session in [&first, &second, &third, &rotated, &fourth, &bob_session] {
        secrets.push(session["access_token"].as_str().unwrap().to_owned());
        secrets.push(session["refresh_token"].as_str().unwrap().to_owned());
    }
    Flows {
        ada: session(&first["user"], "id"),
        bob: session(&bob_session["user"], "id"),
        replayed_session: session(&third, "session_id"),
        bob_session: session(&bob_session, "session_id"),
        ada_sessions,
        secrets,
    }
}

const ADA_EVENTS: [&str; 10] = [
    "user.created",
    "user.signed_in",
    "user.signed_in",
    "user.password_changed",
    "user.password_changed",
    "user.signed_in",
    "session.replay_detected",
    "user.signed_in",
    "user.email_changed",
    "user.deleted",
];

#[tokio::test]
async fn every_event_a_user_causes_is_delivered_once_signed_and_in_order() {
    let receiver = Receiver::start().await;
    let app = spawn_with_receiver(&receiver, &["--refresh-reuse-grace-secs=0"]).await;

    let flows = every_flow(&app).await;

    let delivered = receiver.wait_for_delivered(12).await;
    let db = app.connect_db().await;
    eventually("every event recorded as delivered", async || {
        rows(&db)
            .await
            .iter()
            .all(|row| row.status == webhook_outbox::Status::Delivered)
    })
    .await;
    assert_eq!(rows(&db).await.len(), 12, "one row per event");
    let requests = receiver.requests();
    assert_eq!(requests.len(), 12, "no retry, no duplicate: {requests:#?}");
    let mut ids: Vec<&str> = requests.iter().map(|d| d.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 12, "each webhook-id once");
    for delivery in &delivered {
        assert!(signature_is_valid(SECRET, delivery), "{delivery:#?}");
        assert_eq!(delivery.content_type, "application/json");
        let body = delivery.json();
        let timestamp = body["timestamp"].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(timestamp).is_ok(),
            "{timestamp}"
        );
        assert!(
            delivery.timestamp.parse::<i64>().is_ok(),
            "webhook-timestamp in seconds"
        );
    }
    let of = |user: &str| -> Vec<Delivery> {
        delivered
            .iter()
            .filter(|d| d.user_id() == user)
            .cloned()
            .collect()
    };
    let ada = of(&flows.ada);
    let types: Vec<String> = ada.iter().map(Delivery::event_type).collect();
    assert_eq!(
        types, ADA_EVENTS,
        "Ada's events, in the order they happened"
    );
    let data: Vec<Value> = ada.iter().map(|d| d.json()["data"].clone()).collect();
    assert_eq!(data[0]["email"], "ada@example.com");
    let signed_in_sessions: Vec<&str> = [1, 2, 5, 7]
        .iter()
        .map(|&i| data[i]["session_id"].as_str().unwrap())
        .collect();
    assert_eq!(signed_in_sessions, flows.ada_sessions);
    assert_eq!(data[3], serde_json::json!({"user_id": flows.ada}));
    assert_eq!(data[6]["session_id"], flows.replayed_session.as_str());
    assert_eq!(data[8]["email"], "ada.new@example.com");
    assert_eq!(data[8]["previous_email"], "ada@example.com");
    assert_eq!(data[9]["email"], "ada.new@example.com");
    let bob = of(&flows.bob);
    let types: Vec<String> = bob.iter().map(Delivery::event_type).collect();
    assert_eq!(
        types,
        ["user.created", "user.signed_in"],
        "Bob's account made by code"
    );
    assert_eq!(bob[0].json()["data"]["email"], "bob@example.com");
    assert_eq!(
        bob[1].json()["data"]["session_id"],
        flows.bob_session.as_str()
    );
}

#[tokio::test]
async fn no_secret_is_in_the_webhook_table_or_in_what_the_receiver_got() {
    let receiver = Receiver::start().await;
    let app = spawn_with_receiver(&receiver, &["--refresh-reuse-grace-secs=0"]).await;

    let flows = every_flow(&app).await;

    receiver.wait_for_delivered(12).await;
    app.wait_until_sent("bob@example.com").await;
    let db = app.connect_db().await;
    let table: String = crate::mail::every_row(&db)
        .await
        .into_iter()
        .filter(|(table, _)| table == "webhook_outbox")
        .map(|(_, row)| row)
        .collect();
    assert!(table.contains(&flows.ada), "the scan sees the webhook rows");
    let received: String = receiver
        .requests()
        .iter()
        .map(|d| format!("{} {} {} {}\n", d.id, d.timestamp, d.signature, d.body))
        .collect();
    let dump = crate::mail::dump_every_table(&db).await;
    let pepper = TEST_PEPPER.split_once(':').unwrap().1;
    let webhook_key = SECRET.strip_prefix("whsec_").unwrap();
    let long_secrets = flows
        .secrets
        .iter()
        .map(String::as_str)
        .filter(|s| s.len() > 6)
        .chain([pepper, webhook_key]);
    for secret in long_secrets {
        assert!(!table.contains(secret), "{secret} in the webhook table");
        assert!(
            !received.contains(secret),
            "{secret} in what the receiver got"
        );
        assert!(!dump.contains(secret), "{secret} at rest");
    }
    for code in flows.secrets.iter().filter(|s| s.len() == 6) {
        assert!(
            !table.contains(code.as_str()),
            "code {code} in the webhook table"
        );
        assert!(
            !received.contains(code.as_str()),
            "code {code} sent to the receiver"
        );
    }
}

#[tokio::test]
async fn without_a_url_no_event_is_recorded() {
    let app = spawn_app().await;

    app.signed_up("ada@example.com", PASSWORD).await;

    let db = app.connect_db().await;
    assert_eq!(webhook_outbox::Entity::find().count(&db).await.unwrap(), 0);
}

#[tokio::test]
async fn a_failing_receiver_gets_every_event_once_it_recovers() {
    let receiver = Receiver::start().await;
    receiver.answer_otherwise(Answer::Status(500));
    let app = spawn_with_receiver(&receiver, &[]).await;

    let session = app.signed_up("ada@example.com", PASSWORD).await;
    let ada = session["user"]["id"].as_str().unwrap().to_owned();
    eventually("a first attempt refused", async || {
        !receiver.requests().is_empty()
    })
    .await;
    let db = app.connect_db().await;
    eventually("the refused attempt recorded for a retry", async || {
        rows(&db)
            .await
            .iter()
            .any(|row| row.status == webhook_outbox::Status::Pending && row.attempts == 1)
    })
    .await;
    // Failing twice more, the receiver then recovers; the clock skips each backoff wait.
    receiver.script(&[Answer::Status(503), Answer::Status(502)]);
    receiver.answer_otherwise(Answer::Status(204));
    for _ in 0..20 {
        if receiver.delivered().len() == 2 {
            break;
        }
        app.instance.clock.advance(Duration::from_secs(15 * 60));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let delivered = receiver.wait_for_delivered(2).await;
    let types: Vec<String> = delivered.iter().map(Delivery::event_type).collect();
    assert_eq!(types, ["user.created", "user.signed_in"]);
    assert!(delivered.iter().all(|d| d.user_id() == ada));
    assert!(delivered.iter().all(|d| signature_is_valid(SECRET, d)));
    let refused = receiver
        .requests()
        .iter()
        .filter(|d| !d.delivered())
        .count();
    assert_eq!(refused, 3, "500, 503 and 502 were retried");
    eventually("both recorded as delivered", async || {
        rows(&db)
            .await
            .iter()
            .all(|row| row.status == webhook_outbox::Status::Delivered)
    })
    .await;
    let attempts: i32 = rows(&db).await.iter().map(|row| row.attempts).sum();
    assert_eq!(
        attempts, 5,
        "four attempts for the first event, one for the second"
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for sample in [
        "codeward_webhooks_total{outcome=\"retried\"} 3",
        "codeward_webhooks_total{outcome=\"delivered\"} 2",
        "codeward_webhook_queue_depth 0",
        "codeward_webhook_oldest_pending_seconds 0",
    ] {
        assert!(metrics.contains(sample), "{sample} in\n{metrics}");
    }
}

#[tokio::test]
async fn a_receiver_that_is_down_gets_the_events_once_it_is_up() {
    let port = crate::smtp::unused_port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let mut flags = webhook_flags(&url);
    flags.push("--webhook-retry-base-ms=50".to_owned());
    flags.push("--webhook-retry-max-secs=1".to_owned());
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let app = spawn_app_with(&flags).await;
    app.signed_up("ada@example.com", PASSWORD).await;
    let db = app.connect_db().await;
    eventually("a refused connection retried", async || {
        rows(&db).await.iter().any(|row| row.attempts >= 2)
    })
    .await;

    let receiver = Receiver::start_on(port).await;

    let delivered = receiver.wait_for_delivered(2).await;
    let types: Vec<String> = delivered.iter().map(Delivery::event_type).collect();
    assert_eq!(types, ["user.created", "user.signed_in"]);
}

#[tokio::test]
async fn spent_attempts_make_an_event_dead_and_retry_dead_requeues_it() {
    let receiver = Receiver::start().await;
    receiver.answer_otherwise(Answer::Status(500));
    let app = spawn_with_receiver(&receiver, &["--webhook-max-attempts=3"]).await;
    let db = app.connect_db().await;

    app.signed_up("ada@example.com", PASSWORD).await;
    for _ in 0..20 {
        if rows(&db)
            .await
            .iter()
            .any(|row| row.status == webhook_outbox::Status::Dead)
        {
            break;
        }
        app.instance.clock.advance(Duration::from_secs(15 * 60));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let dead: Vec<_> = rows(&db)
        .await
        .into_iter()
        .filter(|row| row.status == webhook_outbox::Status::Dead)
        .collect();
    assert_eq!(dead.len(), 1, "the first event died");
    assert_eq!(dead[0].event_type, "user.created");
    assert_eq!(dead[0].attempts, 3);
    assert!(dead[0].last_error.as_deref().unwrap().contains("500"));
    // The user's next event was held behind it, then went ahead once it died.
    eventually(
        "the second event attempted once the first died",
        async || {
            receiver
                .requests()
                .iter()
                .any(|d| d.event_type() == "user.signed_in")
        },
    )
    .await;
    let status = run_codeward_on(&app.database.url, &["webhooks", "status"]);
    assert!(status.contains("dead\t1\n"), "{status}");

    receiver.answer_otherwise(Answer::Status(200));
    let requeued = run_codeward_on(&app.database.url, &["webhooks", "retry-dead"]);
    assert!(requeued.contains("requeued 1 dead event(s)"), "{requeued}");
    for _ in 0..20 {
        if receiver.delivered().len() == 2 {
            break;
        }
        app.instance.clock.advance(Duration::from_secs(15 * 60));
        app.instance.webhooks.wake();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let delivered = receiver.wait_for_delivered(2).await;
    let types: Vec<String> = delivered.iter().map(Delivery::event_type).collect();
    assert!(types.contains(&"user.created".to_owned()), "{types:?}");
    let status = run_codeward_on(&app.database.url, &["webhooks", "status"]);
    assert!(
        status.contains("dead\t0\n") && status.contains("delivered\t2\n"),
        "{status}"
    );
}

#[tokio::test]
async fn one_users_events_are_never_attempted_before_an_earlier_one_is_delivered() {
    let receiver = Receiver::start().await;
    // The first attempt of each of the first three requests fails.
    receiver.script(&[
        Answer::Status(500),
        Answer::Status(500),
        Answer::Status(500),
    ]);
    let app = spawn_with_receiver(&receiver, &[]).await;

    let session = app.signed_up("ada@example.com", PASSWORD).await;
    let ada = session["user"]["id"].as_str().unwrap().to_owned();
    app.login("ada@example.com", PASSWORD).await;
    app.login("ada@example.com", PASSWORD).await;
    let other = app.signed_up("bob@example.com", PASSWORD).await;
    let bob = other["user"]["id"].as_str().unwrap().to_owned();
    for _ in 0..40 {
        if receiver.delivered().len() == 6 {
            break;
        }
        app.instance.clock.advance(Duration::from_secs(15 * 60));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    receiver.wait_for_delivered(6).await;
    let db = app.connect_db().await;
    let mut created: HashMap<String, (chrono::DateTime<chrono::Utc>, uuid::Uuid)> = HashMap::new();
    for row in rows(&db).await {
        created.insert(row.id.to_string(), (row.created_at, row.id));
    }
    for user in [&ada, &bob] {
        let attempts: Vec<Delivery> = receiver
            .requests()
            .into_iter()
            .filter(|d| &d.user_id() == user)
            .collect();
        // Every attempt is at an event no older than the last one attempted: an event is
        // retried until delivered before the next one is tried.
        let order: Vec<_> = attempts.iter().map(|d| created[&d.id]).collect();
        assert!(
            order.windows(2).all(|w| w[0] <= w[1]),
            "out of order for {user}: {attempts:#?}"
        );
        let delivered: Vec<&Delivery> = attempts.iter().filter(|d| d.delivered()).collect();
        let mut ids: Vec<_> = delivered.iter().map(|d| created[&d.id]).collect();
        let sorted = {
            let mut sorted = ids.clone();
            sorted.sort();
            sorted
        };
        assert_eq!(ids, sorted, "delivered in order of creation");
        ids.dedup();
        assert_eq!(ids.len(), delivered.len(), "each delivered once");
    }
}

#[test]
fn a_malformed_webhook_secret_refuses_to_start_with_a_clear_message() {
    let cases = [
        (
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "must start with `whsec_`",
        ),
        ("whsec_***not-base64***", "not valid base64"),
        ("whsec_AAECAwQFBgcICQoLDA0ODw==", "24 to 64 are required"),
    ];
    for (secret, reason) in cases {
        let output = run_codeward(
            &["check-config"],
            &[
                ("CODEWARD_WEBHOOK_URL", "http://127.0.0.1:9/hook"),
                ("CODEWARD_WEBHOOK_SECRET", secret),
            ],
        );

        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{secret}: {stderr}");
        assert!(stderr.contains("CODEWARD_WEBHOOK_SECRET"), "{stderr}");
        assert!(stderr.contains(reason), "{secret}: {stderr}");
        assert!(
            !stderr.contains(secret.trim_start_matches("whsec_")),
            "{stderr}"
        );
    }
    let without = run_codeward(
        &["check-config"],
        &[("CODEWARD_WEBHOOK_URL", "http://127.0.0.1:9/hook")],
    );
    assert_eq!(without.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&without.stderr).contains("CODEWARD_WEBHOOK_SECRET is not"));
    let shown = run_codeward(
        &["check-config"],
        &[
            ("CODEWARD_WEBHOOK_URL", "http://127.0.0.1:9/hook"),
            ("CODEWARD_WEBHOOK_SECRET", SECRET),
        ],
    );
    let stdout = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    assert!(
        stdout.contains("CODEWARD_WEBHOOK_SECRET=<secret>"),
        "{stdout}"
    );
    assert!(
        !stdout.contains(SECRET.trim_start_matches("whsec_")),
        "{stdout}"
    );
}

#[tokio::test]
async fn operators_disabling_enabling_and_deleting_are_reported_naming_the_key_or_the_command_line()
{
    let receiver = Receiver::start().await;
    let app = spawn_with_receiver(&receiver, &[]).await;
    let (key, key_id) = crate::admin::admin_key(&app, "support tool");
    let session = app.signed_up("ada@example.com", PASSWORD).await;
    let ada = session["user"]["id"].as_str().unwrap().to_owned();
    // Sign-up: user.created and user.signed_in.
    receiver.wait_for_delivered(2).await;

    assert_eq!(app.disable_user(&key, &ada).await.status(), 200);
    assert_eq!(app.enable_user(&key, &ada).await.status(), 200);
    // From the command line, with the server's webhook settings: no key to name.
    let output = run_codeward(
        &["users", "disable", &ada],
        &[
            ("CODEWARD_DATABASE_URL", &app.database.url),
            ("CODEWARD_PEPPER", TEST_PEPPER),
            ("CODEWARD_WEBHOOK_URL", &receiver.url),
            ("CODEWARD_WEBHOOK_SECRET", SECRET),
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(app.delete_user(&key, &ada).await.status(), 204);

    let delivered = receiver.wait_for_delivered(6).await;
    let operator_events: Vec<(String, Value)> = delivered[2..]
        .iter()
        .map(|d| (d.event_type(), d.json()["data"].clone()))
        .collect();
    let with_key = |kind: &str| {
        (
            kind.to_owned(),
            serde_json::json!({"user_id": ada, "email": "ada@example.com", "api_key_id": key_id}),
        )
    };
    assert_eq!(
        operator_events,
        [
            with_key("user.disabled"),
            with_key("user.enabled"),
            (
                "user.disabled".to_owned(),
                serde_json::json!({"user_id": ada, "email": "ada@example.com"})
            ),
            with_key("user.deleted"),
        ],
        "in order, each once, the key named where one acted"
    );
    for delivery in &delivered {
        assert!(signature_is_valid(SECRET, delivery), "{delivery:#?}");
    }
}
