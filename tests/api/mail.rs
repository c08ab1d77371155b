//! Email delivery against a real SMTP server: arrival, retries while SMTP is down, permanent
//! rejection, restarts, several workers on one database, codes scrubbed at rest.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use clap::Parser;
use codeward::core::mail::outbox::{self, Email};
use codeward::core::mail::{CodeSeal, Message, OutboxSignal};
use entity::email_outbox::{self, Status};
use mail_parser::MimeHeaders;
use migration::MigratorTrait;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection, EntityTrait,
    FromQueryResult, JsonValue, PaginatorTrait, QueryFilter, Statement, TransactionTrait,
};
use secrecy::SecretString;

use crate::helpers::{
    PASSWORD, TEST_PEPPER, eventually, fresh_database, run_codeward_on, spawn_app, spawn_app_with,
    start_instance,
};
use crate::smtp::{SmtpSink, unused_port};

const WAIT: Duration = Duration::from_secs(20);

/// Seals as the test servers do: with the test pepper.
fn test_seal() -> CodeSeal {
    let pepper = format!("--pepper={TEST_PEPPER}");
    let mut config = codeward::cli::Cli::try_parse_from(["codeward", pepper.as_str()])
        .expect("defaults")
        .config;
    config.validate().expect("valid defaults");
    CodeSeal::new(config.peppers.all())
}

fn code_email(to: &str, code: &str, locale: &str) -> Email {
    let message = Message::VerifyEmail;
    Email {
        to: to.to_owned(),
        message,
        locale: locale.to_owned(),
        context: serde_json::json!({"expires_in_minutes": 10}),
        code: test_seal().seal(&SecretString::from(code), to, message.name()),
        expires_at: Utc::now() + chrono::Duration::minutes(10),
    }
}

fn notice(to: &str) -> Email {
    Email {
        to: to.to_owned(),
        message: Message::AccountExists,
        locale: "en".to_owned(),
        context: serde_json::json!({}),
        code: None,
        expires_at: Utc::now() + chrono::Duration::hours(24),
    }
}

async fn enqueue_and_wake(
    db: &DatabaseConnection,
    signal: &OutboxSignal,
    email: Email,
) -> uuid::Uuid {
    let id = outbox::enqueue(db, email, Utc::now())
        .await
        .expect("enqueued");
    signal.wake();
    id
}

async fn row(db: &DatabaseConnection, id: uuid::Uuid) -> email_outbox::Model {
    email_outbox::Entity::find_by_id(id)
        .one(db)
        .await
        .unwrap()
        .expect("outbox row")
}

/// Waits until the row reaches `status`.
async fn wait_for_status(
    db: &DatabaseConnection,
    id: uuid::Uuid,
    status: Status,
) -> email_outbox::Model {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let current = row(db, id).await;
        if current.status == status {
            return current;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still {:?}, never {status:?}",
            current.status
        );
        // Polling: the worker moves the row on its own time.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_enqueued_message_arrives_with_headers_both_parts_and_its_locale() {
    let app = spawn_app_with(&["--app-name=Acme", "--mail-from=Acme <auth@acme.test>"]).await;
    let db = app.connect_db().await;

    let id = enqueue_and_wake(
        &db,
        &app.instance.outbox,
        code_email("ada@example.com", "042917", "es-MX"),
    )
    .await;
    let received = app.smtp.wait_for_message_to("ada@example.com", WAIT).await;

    let parsed = received.parsed();
    let from = parsed.from().and_then(|f| f.first()).expect("From");
    assert_eq!(from.address(), Some("auth@acme.test"));
    assert_eq!(from.name(), Some("Acme"));
    let to = parsed.to().and_then(|t| t.first()).expect("To");
    assert_eq!(to.address(), Some("ada@example.com"));
    assert_eq!(
        received.subject(),
        "042917 es tu código de verificación de Acme"
    );
    let content_type = parsed.content_type().expect("Content-Type");
    assert_eq!(content_type.c_type, "multipart");
    assert_eq!(content_type.subtype(), Some("alternative"));
    assert!(
        received.text().starts_with("042917 es tu código"),
        "{}",
        received.text()
    );
    assert!(
        received.html().contains(">042917</span>"),
        "{}",
        received.html()
    );
    assert!(received.html().contains("Acme"));
    let sent = wait_for_status(&db, id, Status::Sent).await;
    assert!(sent.sent_at.is_some());
    assert_eq!(sent.attempts, 1);
}

#[tokio::test]
async fn an_enqueued_message_is_sent_at_once_without_waiting_for_a_poll() {
    // A poll only every minute: arrival within seconds proves the wake-up.
    let app = spawn_app_with(&["--email-poll-ms=60000"]).await;
    let db = app.connect_db().await;
    // A real wait: the start-up pass (nothing marks its end) must be over before the enqueue.
    tokio::time::sleep(Duration::from_millis(200)).await;

    enqueue_and_wake(&db, &app.instance.outbox, notice("quick@example.com")).await;

    app.smtp
        .wait_for_message_to("quick@example.com", Duration::from_secs(5))
        .await;
}

#[tokio::test]
async fn a_code_request_wakes_the_worker_after_its_answer_without_waiting_for_a_poll() {
    // The equal-time grid, not the handler, wakes the worker; a poll only every minute.
    let app = spawn_app_with(&["--email-poll-ms=60000"]).await;
    // A real wait, as above: the start-up pass must be over before the request.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let response = app.signup("woken@example.com", PASSWORD).await;
    assert_eq!(response.status(), 202);

    app.smtp
        .wait_for_message_to("woken@example.com", Duration::from_secs(5))
        .await;
}

#[tokio::test]
async fn messages_enqueued_while_smtp_is_down_all_arrive_exactly_once_when_it_returns() {
    let database = fresh_database().await;
    let port = unused_port();
    let smtp_url = format!("smtp://127.0.0.1:{port}");
    let instance = start_instance(&database.url, &smtp_url, &["--email-max-attempts=100"]).await;
    let db = sea_orm::Database::connect(&database.url).await.unwrap();
    let mut ids = Vec::new();
    for n in 0..50 {
        ids.push(
            enqueue_and_wake(
                &db,
                &instance.outbox,
                notice(&format!("user{n}@example.com")),
            )
            .await,
        );
    }
    eventually("a delivery attempted and failed", async || {
        email_outbox::Entity::find()
            .filter(email_outbox::Column::LastError.is_not_null())
            .count(&db)
            .await
            .unwrap()
            > 0
    })
    .await;
    let rows = email_outbox::Entity::find().all(&db).await.unwrap();
    assert_eq!(rows.len(), 50);
    assert!(
        rows.iter()
            .all(|r| r.status != Status::Sent && r.status != Status::Dead),
        "none sent or given up while down"
    );
    assert!(
        rows.iter()
            .any(|r| r.attempts >= 1 && r.last_error.is_some()),
        "delivery was attempted"
    );

    let sink = SmtpSink::start_on(port);
    sink.wait_for(50, WAIT).await;
    for id in &ids {
        wait_for_status(&db, *id, Status::Sent).await;
    }
    // A later message: the one worker claims it only after every send before it has ended,
    // so once it is in, nothing sent earlier (a duplicate included) is still on its way.
    enqueue_and_wake(&db, &instance.outbox, notice("later@example.com")).await;
    sink.wait_for_message_to("later@example.com", WAIT).await;

    let received: Vec<_> = sink
        .received()
        .into_iter()
        .filter(|m| m.to != ["later@example.com"])
        .collect();
    assert_eq!(sink.received().len(), 51, "the 50 and the later one");
    assert_eq!(received.len(), 50, "exactly 50 deliveries");
    let mut per_recipient: HashMap<String, usize> = HashMap::new();
    for message in &received {
        *per_recipient.entry(message.to[0].clone()).or_default() += 1;
    }
    assert_eq!(per_recipient.len(), 50, "every message arrived");
    assert!(per_recipient.values().all(|&n| n == 1), "none duplicated");
}

/// The Message-ID header of a received message, brackets included.
fn message_id_of(data: &[u8]) -> String {
    let parsed = mail_parser::MessageParser::default()
        .parse(data)
        .expect("a parseable message");
    let id = parsed.message_id().expect("a Message-ID header");
    // mail-parser drops the angle brackets; the header carries them.
    format!("<{id}>")
}

#[tokio::test]
async fn every_message_has_a_message_id_on_the_sender_domain_derived_from_its_outbox_row() {
    let app = spawn_app_with(&["--mail-from=Acme <auth@mail.acme.test>"]).await;
    let db = app.connect_db().await;

    let first = enqueue_and_wake(&db, &app.instance.outbox, notice("one@example.com")).await;
    let second = enqueue_and_wake(&db, &app.instance.outbox, notice("two@example.com")).await;
    let one = app.smtp.wait_for_message_to("one@example.com", WAIT).await;
    let two = app.smtp.wait_for_message_to("two@example.com", WAIT).await;

    // The ids are read back from the database, not taken on trust from the enqueue.
    let first_row = row(&db, first).await;
    let second_row = row(&db, second).await;
    assert_eq!(
        message_id_of(&one.data),
        format!("<{}@mail.acme.test>", first_row.id)
    );
    assert_eq!(
        message_id_of(&two.data),
        format!("<{}@mail.acme.test>", second_row.id)
    );
    assert_ne!(message_id_of(&one.data), message_id_of(&two.data));
}

/// An SMTP server that answers the end of the first `refuse` messages' data with a transient
/// 421 and closes the connection (after reading all of it), then accepts; it keeps every
/// attempt it read. (421, not 451: after a 451 mailin stays in its data state and hangs.)
#[derive(Clone)]
struct FlakySmtp {
    attempts: std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
    refuse: usize,
    data: Vec<u8>,
}

impl mailin_embedded::Handler for FlakySmtp {
    fn mail(
        &mut self,
        _ip: std::net::IpAddr,
        _domain: &str,
        _from: &str,
    ) -> mailin_embedded::Response {
        self.data.clear();
        mailin_embedded::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> mailin_embedded::Response {
        let mut attempts = self.attempts.lock().unwrap();
        attempts.push(std::mem::take(&mut self.data));
        if attempts.len() <= self.refuse {
            mailin_embedded::response::NO_SERVICE
        } else {
            mailin_embedded::response::OK
        }
    }
}

#[tokio::test]
async fn a_retried_message_carries_the_message_id_of_its_failed_attempt() {
    let attempts = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut server = mailin_embedded::Server::new(FlakySmtp {
        attempts: attempts.clone(),
        refuse: 1,
        data: Vec::new(),
    });
    server
        .with_name("flaky.test")
        .with_num_threads(8)
        .with_ssl(mailin_embedded::SslConfig::None)
        .unwrap()
        .with_tcp_listener(listener);
    std::thread::spawn(move || {
        // Runs until the process exits; an error here shows up as missing attempts.
        let _ = server.serve();
    });
    let database = fresh_database().await;
    let instance = start_instance(
        &database.url,
        &format!("smtp://127.0.0.1:{port}"),
        &["--mail-from=Acme <auth@acme.test>"],
    )
    .await;
    let db = sea_orm::Database::connect(&database.url).await.unwrap();

    let id = enqueue_and_wake(&db, &instance.outbox, notice("retried@example.com")).await;
    let sent = wait_for_status(&db, id, Status::Sent).await;

    let attempts = attempts.lock().unwrap().clone();
    assert_eq!(sent.attempts, 2, "refused once, then accepted");
    assert_eq!(attempts.len(), 2, "both attempts reached the server");
    let expected = format!("<{id}@acme.test>");
    assert_eq!(message_id_of(&attempts[0]), expected, "the refused attempt");
    assert_eq!(message_id_of(&attempts[1]), expected, "the accepted retry");
}

#[tokio::test]
async fn a_permanently_rejected_message_ends_dead_with_the_smtp_error_and_is_not_retried() {
    let app = spawn_app().await;
    let db = app.connect_db().await;

    let id = enqueue_and_wake(
        &db,
        &app.instance.outbox,
        code_email("reject-me@example.com", "555111", "en"),
    )
    .await;
    let dead = wait_for_status(&db, id, Status::Dead).await;
    // Past any retry it could have had, the worker delivers a later message; a row it would
    // retry would have gone out in that pass or before it.
    app.instance.clock.advance(Duration::from_secs(3600));
    enqueue_and_wake(&db, &app.instance.outbox, notice("later@example.com")).await;
    app.smtp
        .wait_for_message_to("later@example.com", WAIT)
        .await;

    let later = row(&db, id).await;
    assert!(
        dead.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("550"),
        "{:?}",
        dead.last_error
    );
    assert_eq!(later.attempts, 1, "not retried");
    assert_eq!(later.status, Status::Dead);
    assert_eq!(later.code, None, "a dead message keeps no code");
    assert_eq!(
        app.smtp.received().len(),
        1,
        "only the later message arrived"
    );
}

#[tokio::test]
async fn a_message_enqueued_before_a_stop_is_delivered_after_the_restart() {
    let database = fresh_database().await;
    let port = unused_port();
    let smtp_url = format!("smtp://127.0.0.1:{port}");
    let mut first = start_instance(&database.url, &smtp_url, &[]).await;
    let db = sea_orm::Database::connect(&database.url).await.unwrap();
    let id = enqueue_and_wake(&db, &first.outbox, notice("restart@example.com")).await;
    eventually("the first instance tried to deliver", async || {
        row(&db, id).await.last_error.is_some()
    })
    .await;

    first.stop().await;
    assert_ne!(
        row(&db, id).await.status,
        Status::Sent,
        "not delivered before the stop"
    );
    let sink = SmtpSink::start_on(port);
    let _second = start_instance(&database.url, &smtp_url, &[]).await;

    sink.wait_for_message_to("restart@example.com", WAIT).await;
    wait_for_status(&db, id, Status::Sent).await;
    assert_eq!(sink.received().len(), 1);
}

#[tokio::test]
async fn a_claim_whose_worker_died_is_retried_when_its_lease_runs_out() {
    let database = fresh_database().await;
    let db = sea_orm::Database::connect(&database.url).await.unwrap();
    migration::Migrator::up(&db, None).await.unwrap();
    let id = outbox::enqueue(&db, notice("orphan@example.com"), Utc::now())
        .await
        .unwrap();
    // A worker claims the row for four seconds and dies without a word. (Long enough that a
    // busy machine still starts the rescuer well inside the lease.)
    let now = Utc::now();
    let claimed = outbox::claim(&db, now, now + chrono::Duration::seconds(4), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let sink = SmtpSink::start();
    let rescuer = start_instance(&database.url, &sink.url(), &[]).await;

    // The rescuer delivers a later message while the lease holds: it has claimed since, and
    // left the orphan alone.
    enqueue_and_wake(&db, &rescuer.outbox, notice("later@example.com")).await;
    sink.wait_for_message_to("later@example.com", WAIT).await;
    assert!(
        Utc::now() < now + chrono::Duration::seconds(3),
        "the machine took over 3 s to start a server and send; the checks below would mean nothing"
    );
    assert!(
        sink.messages_to("orphan@example.com").is_empty(),
        "not taken while the lease holds"
    );
    assert_eq!(
        row(&db, id).await.attempts,
        1,
        "not claimed while the lease holds"
    );
    sink.wait_for_message_to("orphan@example.com", WAIT).await;

    let sent = wait_for_status(&db, id, Status::Sent).await;
    assert_eq!(sent.attempts, 2, "the dead claim counted as an attempt");
}

#[tokio::test]
async fn two_workers_on_one_database_deliver_200_messages_each_exactly_once() {
    let database = fresh_database().await;
    let sink = SmtpSink::start();
    let first = start_instance(&database.url, &sink.url(), &["--email-batch-size=4"]).await;
    let second = start_instance(&database.url, &sink.url(), &["--email-batch-size=4"]).await;
    let db = sea_orm::Database::connect(&database.url).await.unwrap();
    let txn = db.begin().await.unwrap();
    for n in 0..200 {
        outbox::enqueue(&txn, notice(&format!("bulk{n}@example.com")), Utc::now())
            .await
            .unwrap();
    }
    txn.commit().await.unwrap();

    first.outbox.wake();
    second.outbox.wake();
    sink.wait_for(200, Duration::from_secs(60)).await;
    // Wait until both workers have recorded every delivery.
    let deadline = tokio::time::Instant::now() + WAIT;
    while email_outbox::Entity::find()
        .filter(email_outbox::Column::Status.ne(Status::Sent))
        .count(&db)
        .await
        .unwrap()
        > 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "deliveries never all recorded"
        );
        // Polling: the two workers record their deliveries on their own time.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every row is sent after a single claim, so each was handed to SMTP once and every
    // hand-over has ended: what the sink holds now is all it will ever get.
    let sent = email_outbox::Entity::find()
        .filter(email_outbox::Column::Status.eq(Status::Sent))
        .all(&db)
        .await
        .unwrap();
    assert_eq!(sent.len(), 200);
    assert!(
        sent.iter().all(|r| r.attempts == 1),
        "no row was claimed twice"
    );

    let received = sink.received();
    let mut per_recipient: HashMap<String, usize> = HashMap::new();
    for message in &received {
        *per_recipient.entry(message.to[0].clone()).or_default() += 1;
    }
    assert_eq!(per_recipient.len(), 200, "every message arrived");
    let twice: Vec<_> = per_recipient.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    assert_eq!(received.len(), 200);
}

#[tokio::test]
async fn after_delivery_no_table_contains_the_code() {
    let app = spawn_app().await;
    let db = app.connect_db().await;

    let id = enqueue_and_wake(
        &db,
        &app.instance.outbox,
        code_email("ada@example.com", "918273", "en"),
    )
    .await;
    let received = app.smtp.wait_for_message_to("ada@example.com", WAIT).await;
    wait_for_status(&db, id, Status::Sent).await;

    assert_eq!(received.code(), "918273", "the email carried the code");
    let dump = dump_every_table(&db).await;
    assert!(
        dump.contains("ada@example.com"),
        "the dump sees the outbox row"
    );
    assert!(!dump.contains("918273"), "a code is at rest: {dump}");
}

#[tokio::test]
async fn a_code_waiting_in_the_outbox_is_sealed_never_in_clear() {
    // SMTP is down, so the sign-up's code email waits in the outbox.
    let database = fresh_database().await;
    let port = unused_port();
    let smtp_url = format!("smtp://127.0.0.1:{port}");
    let instance = start_instance(&database.url, &smtp_url, &["--email-max-attempts=100"]).await;
    let db = sea_orm::Database::connect(&database.url).await.unwrap();
    let response = instance.api().signup("ada@example.com", PASSWORD).await;
    assert_eq!(response.status(), 202);
    let waiting = email_outbox::Entity::find()
        .filter(email_outbox::Column::Recipient.eq("ada@example.com"))
        .one(&db)
        .await
        .unwrap()
        .expect("the code email waits");
    let sealed = waiting.code.clone().expect("a code email carries its code");
    let key_id = TEST_PEPPER.split(':').next().unwrap();
    assert!(sealed.starts_with(&format!("v1.{key_id}.")), "{sealed}");
    let dump_while_waiting = dump_every_table(&db).await;

    // SMTP returns; the email carries the digits, which were nowhere while it waited.
    let sink = SmtpSink::start_on(port);
    let received = sink.wait_for_message_to("ada@example.com", WAIT).await;
    let code = received.code();
    assert_eq!(code.len(), 6);
    assert!(
        !dump_while_waiting.contains(&code),
        "the code was at rest in clear: {dump_while_waiting}"
    );
}

/// Enqueues a code email whose stored code is then replaced by `stored`, in one transaction.
async fn enqueue_with_stored_code(
    app: &crate::helpers::TestApp,
    to: &str,
    stored: &str,
) -> uuid::Uuid {
    let db = app.connect_db().await;
    let txn = db.begin().await.unwrap();
    let id = outbox::enqueue(&txn, code_email(to, "111111", "en"), Utc::now())
        .await
        .unwrap();
    email_outbox::Entity::update_many()
        .col_expr(
            email_outbox::Column::Code,
            sea_orm::sea_query::Expr::value(stored),
        )
        .filter(email_outbox::Column::Id.eq(id))
        .exec(&txn)
        .await
        .unwrap();
    txn.commit().await.unwrap();
    app.instance.outbox.wake();
    id
}

#[tokio::test]
async fn a_code_stored_before_sealing_is_sent_and_one_that_does_not_open_is_dead() {
    let app = spawn_app().await;
    let db = app.connect_db().await;

    // A row from before codes were sealed: six digits in clear, sent as they are.
    enqueue_with_stored_code(&app, "legacy@example.com", "654321").await;
    let received = app
        .smtp
        .wait_for_message_to("legacy@example.com", WAIT)
        .await;
    assert_eq!(received.code(), "654321");

    // Sealed under a pepper this server does not have, or moved to another recipient: dead,
    // never sent with a wrong code.
    let other = test_seal()
        .seal(
            &SecretString::from("222333"),
            "eve@example.com",
            "verify_email",
        )
        .unwrap();
    for (to, stored) in [
        (
            "gone@example.com",
            "v1.retired.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ),
        ("moved@example.com", other.as_str()),
    ] {
        let id = enqueue_with_stored_code(&app, to, stored).await;
        let dead = wait_for_status(&db, id, Status::Dead).await;
        let error = dead.last_error.unwrap_or_default();
        assert!(error.contains("cannot open the sealed code"), "{error}");
        assert_eq!(dead.code, None, "a dead message keeps no code");
    }
    assert!(app.smtp.messages_to("gone@example.com").is_empty());
    assert!(app.smtp.messages_to("moved@example.com").is_empty());
}

#[tokio::test]
async fn an_expired_message_is_dropped_as_dead_not_sent() {
    let app = spawn_app().await;
    let db = app.connect_db().await;
    let mut email = code_email("late@example.com", "424242", "en");
    email.expires_at = Utc::now() - chrono::Duration::seconds(1);

    let id = enqueue_and_wake(&db, &app.instance.outbox, email).await;
    let dead = wait_for_status(&db, id, Status::Dead).await;

    assert!(dead.last_error.unwrap_or_default().contains("expired"));
    assert_eq!(dead.code, None);
    // A later message to the same mailbox is the first one it gets.
    enqueue_and_wake(&db, &app.instance.outbox, notice("late@example.com")).await;
    let first = app.smtp.wait_for_message_to("late@example.com", WAIT).await;
    assert!(
        first.subject().contains("tried to sign up"),
        "{}",
        first.subject()
    );
    assert!(!first.text().contains("424242"), "{}", first.text());
    assert_eq!(app.smtp.received().len(), 1, "the expired one never went");
}

#[tokio::test]
async fn an_email_enqueued_in_a_rolled_back_transaction_never_exists() {
    let app = spawn_app().await;
    let db = app.connect_db().await;

    let txn = db.begin().await.unwrap();
    outbox::enqueue(&txn, notice("ghost@example.com"), Utc::now())
        .await
        .unwrap();
    txn.rollback().await.unwrap();
    let txn = db.begin().await.unwrap();
    outbox::enqueue(&txn, notice("real@example.com"), Utc::now())
        .await
        .unwrap();
    txn.commit().await.unwrap();
    app.instance.outbox.wake();

    app.smtp.wait_for_message_to("real@example.com", WAIT).await;
    let rows = email_outbox::Entity::find().all(&db).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].recipient, "real@example.com");
}

#[tokio::test]
async fn without_smtp_the_dev_mailbox_receives_an_eml_file() {
    let database = fresh_database().await;
    let mailbox = tempfile::tempdir().unwrap();
    let dir = format!("--mailbox-dir={}", mailbox.path().display());
    let config =
        crate::helpers::test_config(&database.url, &mailbox, &[&dir, "--email-poll-ms=50"]);
    let app = codeward::startup::Application::build(config).await.unwrap();
    let signal = app.outbox_signal();
    tokio::spawn(app.run_until(std::future::pending()));
    let db = sea_orm::Database::connect(&database.url).await.unwrap();

    enqueue_and_wake(&db, &signal, code_email("dev@example.com", "123456", "en")).await;

    let deadline = tokio::time::Instant::now() + WAIT;
    let file = loop {
        let found = std::fs::read_dir(mailbox.path())
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "eml"));
        if let Some(found) = found {
            break found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no .eml file written"
        );
        // Polling: the worker writes the file on its own time.
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let bytes = std::fs::read(&file).unwrap();
    let parsed = mail_parser::MessageParser::default().parse(&bytes).unwrap();
    assert_eq!(
        parsed.subject(),
        Some("123456 is your codeward verification code")
    );
    assert!(parsed.body_html(0).is_some() && parsed.body_text(0).is_some());
}

#[test]
fn the_outbox_command_reports_and_requeues_only_what_can_still_help() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let database = runtime.block_on(fresh_database());
    let url = database.url.clone();
    let run = |args: &[&str]| run_codeward_on(&url, args);
    run(&["migrate", "up"]);
    let (dead_notice, dead_code, expired) = runtime.block_on(async {
        let db = sea_orm::Database::connect(&url).await.unwrap();
        let now = Utc::now();
        let mut old_notice = notice("expired@example.com");
        old_notice.expires_at = now - chrono::Duration::seconds(5);
        let ids = (
            outbox::enqueue(&db, notice("notice@example.com"), now)
                .await
                .unwrap(),
            outbox::enqueue(&db, code_email("code@example.com", "111222", "en"), now)
                .await
                .unwrap(),
            outbox::enqueue(&db, old_notice, now).await.unwrap(),
        );
        outbox::enqueue(&db, notice("pending@example.com"), now)
            .await
            .unwrap();
        let claimed = outbox::claim(&db, now, now + chrono::Duration::minutes(5), 10)
            .await
            .unwrap();
        for row in claimed
            .iter()
            .filter(|r| r.recipient != "pending@example.com")
        {
            outbox::mark_dead(&db, row.id, row.claim_token.unwrap(), "550 test")
                .await
                .unwrap();
        }
        for row in claimed
            .iter()
            .filter(|r| r.recipient == "pending@example.com")
        {
            outbox::mark_retry(&db, row.id, row.claim_token.unwrap(), now, "421 test")
                .await
                .unwrap();
        }
        ids
    });

    let status = run(&["outbox", "status"]);
    let retried = run(&["outbox", "retry-dead"]);

    assert!(
        status.contains("pending\t1\n") && status.contains("dead\t3\n"),
        "{status}"
    );
    assert!(status.contains("oldest unsent\t"), "{status}");
    assert!(retried.contains("requeued 1 dead message(s)"), "{retried}");
    assert!(retried.contains("left 1 dead code message(s)"), "{retried}");
    assert!(retried.contains("left 1 expired message(s)"), "{retried}");
    runtime.block_on(async {
        let db = sea_orm::Database::connect(&url).await.unwrap();
        assert_eq!(row(&db, dead_notice).await.status, Status::Pending);
        assert_eq!(row(&db, dead_code).await.status, Status::Dead);
        assert_eq!(row(&db, expired).await.status, Status::Dead);
    });
}

#[test]
fn email_previews_render_for_every_message_and_locale() {
    // Written under target/ for `.ci/email-screenshots`, which looks at them in Chromium.
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/email-previews");
    std::fs::create_dir_all(&out).unwrap();
    let templates = codeward::core::mail::Templates::load(None).unwrap();
    for locale in codeward::core::mail::templates::LOCALES {
        for message in Message::ALL {
            let variables = codeward::core::mail::templates::sample_variables(message, locale);

            let rendered = templates.render(message, locale, &variables).unwrap();

            assert!(
                rendered.html.starts_with("<!DOCTYPE html>"),
                "{locale}/{}",
                message.name()
            );
            assert!(rendered.html.contains(&format!("lang=\"{locale}\"")));
            assert!(!rendered.subject.is_empty() && !rendered.text.is_empty());
            std::fs::write(
                out.join(format!("{locale}-{}.html", message.name())),
                &rendered.html,
            )
            .unwrap();
        }
    }
}

/// Every row of every table as (table, JSON text).
pub async fn every_row(db: &DatabaseConnection) -> Vec<(String, String)> {
    let backend = db.get_database_backend();
    let list = match backend {
        DatabaseBackend::Sqlite => "SELECT name AS t FROM sqlite_master WHERE type = 'table'",
        DatabaseBackend::Postgres => {
            "SELECT tablename::text AS t FROM pg_tables WHERE schemaname = 'public'"
        }
        DatabaseBackend::MySql => {
            "SELECT table_name AS t FROM information_schema.tables WHERE table_schema = DATABASE()"
        }
    };
    let tables = JsonValue::find_by_statement(Statement::from_string(backend, list))
        .all(db)
        .await
        .unwrap();
    let mut rows = Vec::new();
    for table in tables {
        let name = table["t"]
            .as_str()
            .or(table["T"].as_str())
            .or(table["TABLE_NAME"].as_str())
            .unwrap()
            .to_owned();
        let found = JsonValue::find_by_statement(Statement::from_string(
            backend,
            format!("SELECT * FROM {name}"),
        ))
        .all(db)
        .await
        .unwrap();
        rows.extend(found.into_iter().map(|row| (name.clone(), row.to_string())));
    }
    rows
}

/// Every row of every table as JSON text, to look for secrets at rest.
pub async fn dump_every_table(db: &DatabaseConnection) -> String {
    every_row(db)
        .await
        .into_iter()
        .map(|(_, row)| row)
        .collect()
}
