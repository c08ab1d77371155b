//! Real `codeward` processes on one database: two of them behaving as one server, one killed
//! with SIGKILL in the middle of a load and started again, one stopped with SIGTERM while it is
//! answering a request and sending an email. On PostgreSQL (`.ci/run`'s second suite) this is
//! the scale-out an operator runs; on SQLite and MariaDB the same guarantees hold.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use entity::{email_outbox, otp_codes, users, webhook_outbox};
use futures::StreamExt;
use futures::future::join_all;
use sea_orm::{
    ColumnTrait, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, Statement,
};
use serde_json::{Value, json};

use crate::helpers::{
    Api, FAST, PASSWORD, TEST_PEPPER, codeward_command, eventually, fresh_database, http_client,
    last_of_each_flag, other_code, outbox_to, signup_code_via,
};
use crate::smtp::SmtpSink;
use crate::webhooks::{Answer, Receiver, SECRET, signature_is_valid, webhook_flags};

/// A `codeward serve` child process logging JSON to a buffer the test can read.
struct Server {
    child: Child,
    /// A client of this process.
    api: Api,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts the binary with the test defaults (`FAST`, then `extra`) and waits until it
    /// listens.
    fn start(database_url: &str, smtp_url: &str, extra: &[&str]) -> Server {
        let mut args: Vec<String> = vec![
            "--listen=127.0.0.1:0".into(),
            format!("--database-url={database_url}"),
            format!("--smtp-url={smtp_url}"),
            format!("--pepper={TEST_PEPPER}"),
            "--log-format=json".into(),
            "--database-max-connections=8".into(),
        ];
        args.extend(FAST.iter().chain(extra).map(|s| (*s).to_owned()));
        let mut child = codeward_command()
            .args(last_of_each_flag(&args))
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("codeward starts");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (listening_tx, listening_rx) = std::sync::mpsc::channel::<String>();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("codeward listening")
                    && let Ok(entry) = serde_json::from_str::<Value>(&line)
                    && let Some(addr) = entry["addr"].as_str()
                {
                    let _ = listening_tx.send(addr.to_owned());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let addr = listening_rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                panic!("no start-up line; log:\n{}", log.lock().unwrap().join("\n"))
            });
        Server {
            child,
            api: Api::new(&format!("http://{addr}")),
            log,
        }
    }

    /// The log lines so far that contain `text`.
    fn log_lines(&self, text: &str) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|line| line.contains(text))
            .cloned()
            .collect()
    }

    fn kill_9(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }

    fn send_sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits for the process to exit on its own (panics after `timeout`).
    fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "still running after {timeout:?}"
            );
            // Polling: std has no wait with a timeout, and the exit comes on the child's own time.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts `n` servers at the same moment (each in a thread of its own).
fn start_at_once(n: usize, database_url: &str, smtp_url: &str, extra: &[&str]) -> Vec<Server> {
    std::thread::scope(|scope| {
        let starting: Vec<_> = (0..n)
            .map(|_| scope.spawn(|| Server::start(database_url, smtp_url, extra)))
            .collect();
        starting
            .into_iter()
            .map(|handle| handle.join().expect("server started"))
            .collect()
    })
}

async fn code_row(db: &DatabaseConnection, email: &str) -> otp_codes::Model {
    otp_codes::Entity::find()
        .filter(otp_codes::Column::Email.eq(email))
        .one(db)
        .await
        .unwrap()
        .expect("a code row")
}

async fn count(db: &DatabaseConnection, sql: &str) -> i64 {
    let row = db
        .query_one(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .expect("one row");
    row.try_get_by_index::<i64>(0).expect("a count")
}

/// What must hold in any database codeward has written, whatever was killed when: the
/// engine's own consistency check on SQLite, and codeward's invariants on every backend.
async fn assert_integrity(db: &DatabaseConnection) {
    if db.get_database_backend() == DatabaseBackend::Sqlite {
        let row = db
            .query_one(Statement::from_string(
                DatabaseBackend::Sqlite,
                "PRAGMA integrity_check",
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.try_get_by_index::<String>(0).unwrap(), "ok");
        let dangling = db
            .query_all(Statement::from_string(
                DatabaseBackend::Sqlite,
                "PRAGMA foreign_key_check",
            ))
            .await
            .unwrap();
        assert!(dangling.is_empty(), "rows whose foreign key points nowhere");
    }
    let over_limit = count(
        db,
        "SELECT COUNT(*) FROM otp_codes WHERE attempts > max_attempts",
    )
    .await;
    assert_eq!(over_limit, 0, "a code took more attempts than its limit");
    let twice_live = count(
        db,
        "SELECT COUNT(*) FROM (SELECT user_id, purpose FROM otp_codes \
         WHERE consumed_at IS NULL AND revoked_at IS NULL \
         GROUP BY user_id, purpose HAVING COUNT(*) > 1) t",
    )
    .await;
    assert_eq!(twice_live, 0, "a user with two live codes of one purpose");
    let orphans = count(
        db,
        "SELECT COUNT(*) FROM otp_codes c LEFT JOIN users u ON u.id = c.user_id \
         WHERE u.id IS NULL AND c.email LIKE '%@load.test'",
    )
    .await;
    assert_eq!(orphans, 0, "a code for a user that does not exist");
    let without_code = count(
        db,
        "SELECT COUNT(*) FROM users u WHERE u.email LIKE '%@load.test' AND NOT EXISTS \
         (SELECT 1 FROM otp_codes c WHERE c.user_id = u.id)",
    )
    .await;
    assert_eq!(without_code, 0, "a signed-up user without a code");
}

#[tokio::test]
async fn wrong_guesses_spread_over_two_processes_stop_at_the_attempt_limit() {
    let database = fresh_database().await;
    let sink = SmtpSink::start();
    let servers = start_at_once(2, &database.url, &sink.url(), &[]);
    let code = signup_code_via(&servers[0].api, &sink, "ada@example.com", PASSWORD).await;
    let wrong = other_code(&code);

    let guesses = (0..200).map(|i| {
        servers[i % 2]
            .api
            .verify_signup("ada@example.com", &wrong, PASSWORD)
    });
    let answers = join_all(guesses).await;

    for answer in answers {
        assert_eq!(answer.status().as_u16(), 400);
    }
    let db = Database::connect(&database.url).await.unwrap();
    let row = code_row(&db, "ada@example.com").await;
    assert_eq!(
        row.attempts, row.max_attempts,
        "exactly the limit was counted"
    );
    assert_eq!(row.max_attempts, 5);
    let right = servers[1]
        .api
        .verify_signup("ada@example.com", &code, PASSWORD)
        .await;
    assert_eq!(
        right.status().as_u16(),
        400,
        "a locked code is dead for good"
    );
}

#[tokio::test]
async fn a_refresh_token_rotated_on_one_process_and_replayed_on_the_other_ends_the_session() {
    let database = fresh_database().await;
    let sink = SmtpSink::start();
    // No reuse grace: the replay comes within the ten seconds a racing refresh would get.
    let no_grace = ["--refresh-reuse-grace-secs=0"];
    let servers = start_at_once(2, &database.url, &sink.url(), &no_grace);
    let code = signup_code_via(&servers[0].api, &sink, "ada@example.com", PASSWORD).await;
    let session: Value = servers[0]
        .api
        .verify_signup("ada@example.com", &code, PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let first = session["refresh_token"].as_str().unwrap();
    let rotated = servers[0].api.refresh(first).await;
    assert_eq!(rotated.status().as_u16(), 200);
    let rotated: Value = rotated.json().await.unwrap();

    let replay = servers[1].api.refresh(first).await;

    crate::helpers::assert_problem(replay, 401, "invalid_token").await;
    for server in &servers {
        let newest = server
            .api
            .refresh(rotated["refresh_token"].as_str().unwrap())
            .await;
        crate::helpers::assert_problem(newest, 401, "invalid_token").await;
        let me = server
            .api
            .me(rotated["access_token"].as_str().unwrap())
            .await;
        assert_eq!(me.status().as_u16(), 401, "the access token died with it");
    }
}

#[tokio::test]
async fn two_processes_deliver_200_queued_emails_each_exactly_once() {
    let database = fresh_database().await;
    let sink = SmtpSink::start();
    let servers = start_at_once(2, &database.url, &sink.url(), &[]);

    let signups = (0..200).map(|i| {
        servers[i % 2]
            .api
            .signup(&format!("user{i}@example.com"), PASSWORD)
    });
    for answer in join_all(signups).await {
        assert_eq!(
            answer.status().as_u16(),
            202,
            "{:?}",
            servers[0].log_lines("ERROR")
        );
    }
    sink.wait_for(200, Duration::from_secs(60)).await;
    let db = Database::connect(&database.url).await.unwrap();
    eventually("every delivery recorded", async || {
        email_outbox::Entity::find()
            .filter(email_outbox::Column::Status.ne(email_outbox::Status::Sent))
            .count(&db)
            .await
            .unwrap()
            == 0
    })
    .await;
    // Every row is sent after a single claim, so each was handed to SMTP once and every
    // hand-over has ended: what the sink holds now is all it will ever get.
    let rows = email_outbox::Entity::find().all(&db).await.unwrap();
    assert_eq!(rows.len(), 200);
    assert!(
        rows.iter().all(|row| row.attempts == 1),
        "no row was claimed twice"
    );

    let received = sink.received();
    assert_eq!(received.len(), 200);
    for i in 0..200 {
        assert_eq!(sink.messages_to(&format!("user{i}@example.com")).len(), 1);
    }
    let sent_lines = || -> Vec<usize> {
        servers
            .iter()
            .map(|server| server.log_lines("\"email sent\"").len())
            .collect()
    };
    // The log lines come through a pipe: each is written before its row is recorded, but
    // read on the reader thread's own time.
    eventually("every \"email sent\" line read", async || {
        sent_lines().iter().sum::<usize>() >= 200
    })
    .await;
    let sent_by = sent_lines();
    assert_eq!(sent_by.iter().sum::<usize>(), 200, "{sent_by:?}");
    assert!(
        sent_by.iter().all(|&n| n > 0),
        "both workers sent: {sent_by:?}"
    );
}

#[tokio::test]
async fn two_processes_starting_at_once_on_an_empty_database_migrate_it_once() {
    let database = fresh_database().await;
    let sink = SmtpSink::start();

    let servers = start_at_once(2, &database.url, &sink.url(), &[]);

    for server in &servers {
        let ready = server.api.get("/readyz").await;
        assert_eq!(ready.status().as_u16(), 200);
    }
    let applied: usize = servers
        .iter()
        .map(|server| server.log_lines("Applying migration").len())
        .sum();
    use migration::MigratorTrait;
    let migrations = migration::Migrator::migrations().len();
    assert_eq!(applied, migrations, "each migration applied by one process");
    let db = Database::connect(&database.url).await.unwrap();
    let recorded = count(&db, "SELECT COUNT(*) FROM seaql_migrations").await;
    assert_eq!(recorded, i64::try_from(migrations).unwrap());
}

/// SIGKILL in the middle of a sign-up load and of a guessing run, then a restart: every
/// sign-up that was answered 202 gets its code email, the code under attack never takes more
/// than its limit, and the database is consistent.
#[tokio::test]
async fn a_process_killed_mid_load_loses_no_answered_signup_and_no_attempt_limit() {
    let database = fresh_database().await;
    let sink = SmtpSink::start();
    // A worker killed mid-claim leaves its lease; the shortest lease lets the restart retry soon.
    let flags = ["--email-lease-secs=5", "--smtp-timeout-secs=4"];
    let mut server = Server::start(&database.url, &sink.url(), &flags);
    let client = http_client();
    let target = "target@example.com";
    let code = signup_code_via(&server.api, &sink, target, PASSWORD).await;

    // Raw requests here: the server is killed under them, and a failed send is expected.
    let base = server.api.address.clone();
    let answered = Arc::new(Mutex::new(Vec::<String>::new()));
    let load = (0..8).map(|worker| {
        let client = client.clone();
        let base = base.clone();
        let answered = answered.clone();
        let code = code.clone();
        tokio::spawn(async move {
            for i in 0.. {
                let email = format!("w{worker}-{i}@load.test");
                let signup = client
                    .post(format!("{base}/v1/signup"))
                    .json(&json!({"email": email, "password": PASSWORD}))
                    .send()
                    .await;
                match signup {
                    Ok(response) if response.status().as_u16() == 202 => {
                        answered.lock().unwrap().push(email);
                    }
                    Ok(response) => panic!("signup answered {}", response.status()),
                    Err(_) => return, // the server is gone
                }
                if i < 2 {
                    let guess = client
                        .post(format!("{base}/v1/signup/verify"))
                        .json(&json!({"email": target, "code": other_code(&code), "password": PASSWORD}))
                        .send()
                        .await;
                    if guess.is_err() {
                        return;
                    }
                }
            }
        })
    });
    let load: Vec<_> = load.collect();
    while answered.lock().unwrap().len() < 60 {
        // Polling: the load runs on its own time; the kill comes once 60 are answered.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill_9();
    for worker in load {
        worker.await.expect("load worker");
    }
    let answered = answered.lock().unwrap().clone();

    let server = Server::start(&database.url, &sink.url(), &flags);
    for email in &answered {
        sink.wait_for_message_to(email, Duration::from_secs(30))
            .await;
    }
    for _ in 0..5 {
        let guess = server
            .api
            .verify_signup(target, &other_code(&code), PASSWORD)
            .await;
        assert_eq!(guess.status().as_u16(), 400);
    }
    let right = server.api.verify_signup(target, &code, PASSWORD).await;
    assert_eq!(
        right.status().as_u16(),
        400,
        "the code is locked after its limit"
    );

    let db = Database::connect(&database.url).await.unwrap();
    let row = code_row(&db, target).await;
    assert_eq!(row.attempts, row.max_attempts);
    for email in &answered {
        let user = users::Entity::find()
            .filter(users::Column::Email.eq(email.as_str()))
            .count(&db)
            .await
            .unwrap();
        assert_eq!(user, 1, "{email} was answered 202 but has no account");
    }
    // Sign-ups that committed but whose answer the kill cut off are sent too, once their
    // claim's lease has run out.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let undelivered = email_outbox::Entity::find()
            .filter(email_outbox::Column::Status.ne(email_outbox::Status::Sent))
            .count(&db)
            .await
            .unwrap();
        if undelivered == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{undelivered} queued emails never sent after the restart"
        );
        // Polling: the restarted worker takes the killed one's claims when their leases end.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Delivery is at least once: what the killed worker had handed to SMTP but not yet marked
    // sent goes out again, at most its one claimed batch (`--email-batch-size`, 8).
    let queued = email_outbox::Entity::find().all(&db).await.unwrap();
    for row in &queued {
        assert!(
            !sink.messages_to(&row.recipient).is_empty(),
            "{}",
            row.recipient
        );
    }
    let resent = sink.received().len() - queued.len();
    assert!(resent <= 8, "{resent} emails sent twice");
    assert_integrity(&db).await;
}

/// SIGTERM while a request is still arriving and an email is being handed to SMTP: the request
/// is answered, the email is finished (and not sent again after a restart), and the process
/// exits cleanly.
#[tokio::test]
async fn sigterm_lets_the_request_in_flight_and_the_email_being_sent_finish() {
    let database = fresh_database().await;
    let sink = SmtpSink::start_slow(Duration::from_millis(1500));
    let mut server = Server::start(&database.url, &sink.url(), &[]);
    let first = server.api.signup("ada@example.com", PASSWORD).await;
    assert_eq!(first.status().as_u16(), 202);
    while sink.started() == 0 {
        // Polling: the worker begins the send on its own time.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // A second sign-up whose body arrives in two halves, the second after the SIGTERM.
    let body = json!({"email": "bob@example.com", "password": PASSWORD}).to_string();
    let (head, tail) = body.split_at(body.len() / 2);
    let (head, tail) = (head.to_owned(), tail.to_owned());
    let chunks = futures::stream::iter([head, tail]).then(|chunk| async move {
        if chunk.ends_with('}') {
            // A real wait: the tail must arrive after the SIGTERM below.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Ok::<_, std::io::Error>(chunk)
    });
    let in_flight = tokio::spawn(
        server
            .api
            .client
            .post(server.api.url("/v1/signup"))
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap_stream(chunks))
            .send(),
    );
    // A real wait: the head must have reached the server, so the request is in flight.
    tokio::time::sleep(Duration::from_millis(200)).await;

    server.send_sigterm();

    let answer = in_flight.await.unwrap().expect("answered, not cut off");
    assert_eq!(answer.status().as_u16(), 202);
    let status = tokio::task::spawn_blocking(move || {
        let status = server.wait_exit(Duration::from_secs(20));
        (status, server)
    })
    .await
    .unwrap();
    assert!(status.0.success(), "exit status {}", status.0);
    assert_eq!(
        sink.messages_to("ada@example.com").len(),
        1,
        "the email in flight was finished"
    );

    // The finished email was recorded as sent before the exit, so no restart takes it again.
    let db = Database::connect(&database.url).await.unwrap();
    let ada = outbox_to(&db, "ada@example.com").await;
    assert_eq!(ada.len(), 1);
    assert_eq!(
        ada[0].status,
        email_outbox::Status::Sent,
        "recorded as sent"
    );
    assert_eq!(ada[0].attempts, 1);

    let _restarted = Server::start(&database.url, &sink.url(), &[]);
    sink.wait_for_message_to("bob@example.com", Duration::from_secs(20))
        .await;
    assert_eq!(
        sink.messages_to("ada@example.com").len(),
        1,
        "not sent twice"
    );
    assert_eq!(sink.messages_to("bob@example.com").len(), 1);
    let bob = outbox_to(&db, "bob@example.com").await;
    assert_eq!(bob.len(), 1, "one email queued for the second sign-up");
}

/// The test's webhook flags plus `extra`, as `Server::start` takes them.
fn with_webhooks(receiver: &Receiver, extra: &[&str]) -> Vec<String> {
    let mut flags = webhook_flags(&receiver.url);
    flags.extend(extra.iter().map(|s| (*s).to_owned()));
    flags
}

/// SIGKILL while an event is being delivered (committed, claimed, its outcome not recorded):
/// the restarted process delivers it once the dead claim's lease runs out, and the user's
/// next event after it. The one duplicate attempt is the one the crash explains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_killed_while_delivering_a_webhook_delivers_it_after_the_restart() {
    let database = fresh_database().await;
    let sink = SmtpSink::start();
    let receiver = Receiver::start().await;
    receiver.script(&[Answer::Hang]);
    let flags = with_webhooks(
        &receiver,
        &[
            "--webhook-lease-secs=5",
            "--webhook-timeout-secs=4",
            "--webhook-retry-base-ms=50",
            "--webhook-retry-max-secs=1",
        ],
    );
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut server = Server::start(&database.url, &sink.url(), &flags);
    let email = "ada@example.com";
    let code = signup_code_via(&server.api, &sink, email, PASSWORD).await;
    let verified = server.api.verify_signup(email, &code, PASSWORD).await;
    assert_eq!(verified.status().as_u16(), 200);
    eventually("the first event on its way", async || {
        !receiver.requests().is_empty()
    })
    .await;

    server.kill_9();
    let db = Database::connect(&database.url).await.unwrap();
    let open = webhook_outbox::Entity::find()
        .filter(webhook_outbox::Column::Status.ne(webhook_outbox::Status::Delivered))
        .count(&db)
        .await
        .unwrap();
    assert_eq!(
        open, 2,
        "neither event recorded as delivered before the kill"
    );
    let _restarted = Server::start(&database.url, &sink.url(), &flags);

    let delivered = receiver.wait_for_delivered(2).await;
    let types: Vec<String> = delivered.iter().map(|d| d.event_type()).collect();
    assert_eq!(types, ["user.created", "user.signed_in"]);
    assert!(delivered.iter().all(|d| signature_is_valid(SECRET, d)));
    let requests = receiver.requests();
    assert_eq!(
        requests.len(),
        3,
        "the killed attempt, then one each: {requests:#?}"
    );
    assert_eq!(
        requests[0].id, delivered[0].id,
        "the killed attempt was user.created's"
    );
}

/// Two processes on one PostgreSQL: every event is delivered exactly once (at least once
/// allows duplicates only where a crash mid-delivery explains them; nothing crashes here),
/// and both workers take part. Skipped without CODEWARD_TEST_POSTGRES_URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_postgresql_deliver_each_webhook_once() {
    if !matches!(
        crate::helpers::backend(),
        crate::helpers::Backend::Postgres(_)
    ) {
        eprintln!("skipped: needs CODEWARD_TEST_POSTGRES_URL");
        return;
    }
    let database = fresh_database().await;
    let sink = SmtpSink::start();
    let receiver = Receiver::start().await;
    let flags = with_webhooks(&receiver, &[]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let servers = start_at_once(2, &database.url, &sink.url(), &flags);
    let users = 30;

    let flows = (0..users).map(|i| {
        let (signs_up, verifies) = (&servers[i % 2].api, &servers[(i + 1) % 2].api);
        let sink = &sink;
        async move {
            let email = format!("user{i}@example.com");
            let code = signup_code_via(signs_up, sink, &email, PASSWORD).await;
            let verified = verifies.verify_signup(&email, &code, PASSWORD).await;
            assert_eq!(verified.status().as_u16(), 200);
            let login = signs_up.login(&email, PASSWORD).await;
            assert_eq!(login.status().as_u16(), 200);
        }
    });
    join_all(flows).await;

    let events = users * 3;
    receiver.wait_for_delivered(events).await;
    let db = Database::connect(&database.url).await.unwrap();
    eventually("every event recorded as delivered", async || {
        webhook_outbox::Entity::find()
            .filter(webhook_outbox::Column::Status.ne(webhook_outbox::Status::Delivered))
            .count(&db)
            .await
            .unwrap()
            == 0
    })
    .await;
    let rows = webhook_outbox::Entity::find().all(&db).await.unwrap();
    assert_eq!(rows.len(), events);
    assert!(
        rows.iter().all(|row| row.attempts == 1),
        "no row claimed twice"
    );
    let requests = receiver.requests();
    let mut ids: Vec<&str> = requests.iter().map(|d| d.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(requests.len(), events, "no duplicate delivery");
    assert_eq!(ids.len(), events);
    assert!(requests.iter().all(|d| signature_is_valid(SECRET, d)));
    let delivered_by = || -> Vec<usize> {
        servers
            .iter()
            .map(|server| server.log_lines("\"webhook delivered\"").len())
            .collect()
    };
    eventually("every \"webhook delivered\" line read", async || {
        delivered_by().iter().sum::<usize>() >= events
    })
    .await;
    assert!(
        delivered_by().iter().all(|&n| n > 0),
        "both workers delivered: {:?}",
        delivered_by()
    );
}

/// The process's own (anonymous) resident memory, in KiB.
fn anonymous_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status readable");
    status
        .lines()
        .find_map(|line| line.strip_prefix("RssAnon:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("RssAnon in /proc/<pid>/status")
}

/// `connections` keep-alive connections at once, each sending `requests` requests one after
/// another (a health check, answered without the database) and reading each answer whole.
async fn burst(address: String, connections: usize, requests: usize) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let host = address.trim_start_matches("http://").to_owned();
    let one = |host: String| async move {
        let stream = tokio::net::TcpStream::connect(&host)
            .await
            .expect("connects");
        let mut stream = tokio::io::BufReader::new(stream);
        for _ in 0..requests {
            let request = format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n");
            stream
                .get_mut()
                .write_all(request.as_bytes())
                .await
                .expect("writes");
            let mut length = 0;
            loop {
                let mut line = String::new();
                stream
                    .read_line(&mut line)
                    .await
                    .expect("reads a head line");
                if line == "\r\n" {
                    break;
                }
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().expect("a length");
                }
            }
            let mut body = vec![0; length];
            stream.read_exact(&mut body).await.expect("reads the body");
        }
    };
    join_all((0..connections).map(|_| one(host.clone()))).await;
}

/// glibc keeps freed heap for reuse, so after a burst of connections (each with its buffers)
/// an idle server stayed at its peak resident size until the next burst; it now hands it back
/// within two `HEAP_TRIM_INTERVAL`s (10 s each) of the burst's end.
#[tokio::test]
async fn the_heap_a_burst_of_connections_used_is_handed_back_once_it_is_over() {
    let database = fresh_database().await;
    let sink = SmtpSink::start();
    let mut server = Server::start(&database.url, &sink.url(), &["--max-connections=4096"]);
    let pid = server.child.id();
    let before = anonymous_kib(pid);
    let flood = tokio::spawn(burst(server.api.address.clone(), 1500, 10));
    let mut peak = before;
    while !flood.is_finished() {
        peak = peak.max(anonymous_kib(pid));
        // Sampling the process's memory while the burst runs, on the burst's own time.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    flood.await.expect("every request of the burst answered");
    assert!(
        peak >= before + 8 * 1024,
        "the burst did not grow the heap enough to tell: {before} → {peak} KiB"
    );
    // The first trim after the burst may see memory still growing and wait one more interval.
    let halfway = before + (peak - before) / 2;
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    while anonymous_kib(pid) >= halfway {
        assert!(
            std::time::Instant::now() < deadline,
            "the burst's heap was not handed back: {before} → {peak} → {} KiB",
            anonymous_kib(pid)
        );
        // Polling: the trim comes on the server's own schedule.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.kill_9();
}
