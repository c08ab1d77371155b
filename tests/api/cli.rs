//! The `codeward` binary as an operator runs it: check-config, refusals, openapi, shutdown.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{Api, NEW_PASSWORD, PASSWORD, codeward_command, run_codeward as codeward};
use sea_orm::EntityTrait as _;

const KEY_A: &str = "k1:rH7SbhbevAP6130em5tpHN2Z6bhrDge6BKP1CusuIlQ=";
const KEY_A_SECRET: &str = "rH7SbhbevAP6130em5tpHN2Z6bhrDge6BKP1CusuIlQ=";
const KEY_B: &str = "k0:af0vwBWD3rB1MxphEQnO7kzTfg4UWKuUWzVf7lnZiis=";
const KEY_B_SECRET: &str = "af0vwBWD3rB1MxphEQnO7kzTfg4UWKuUWzVf7lnZiis=";
/// 32 zero bytes: valid base64 and long enough, but not random.
const ZERO_KEY: &str = "z1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_config_prints_the_effective_settings_with_every_secret_masked() {
    let output = codeward(
        &["check-config"],
        &[
            ("CODEWARD_ENV", "production"),
            ("CODEWARD_MAIL_FROM", "Example <no-reply@example.com>"),
            ("CODEWARD_PEPPER", KEY_A),
            ("CODEWARD_PREVIOUS_PEPPERS", KEY_B),
            (
                "CODEWARD_SMTP_URL",
                "smtp://mailer:smtp-hunter2@mail.example.com:587",
            ),
            (
                "CODEWARD_DATABASE_URL",
                "postgres://app:db-hunter2@db.example.com/codeward",
            ),
        ],
    );

    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "stderr: {stderr}");
    for secret in [KEY_A_SECRET, KEY_B_SECRET, "smtp-hunter2", "db-hunter2"] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{secret} printed"
        );
    }
    assert!(stdout.contains("CODEWARD_PEPPER=k1:<secret>"), "{stdout}");
    assert!(
        stdout.contains("CODEWARD_PREVIOUS_PEPPERS=k0:<secret>"),
        "{stdout}"
    );
    assert!(
        stdout.contains("CODEWARD_SMTP_URL=smtp://mailer:<secret>@mail.example.com:587"),
        "{stdout}"
    );
    assert!(
        stdout.contains("CODEWARD_DATABASE_URL=postgres://app:<secret>@db.example.com/codeward"),
        "{stdout}"
    );
    assert!(stdout.contains("CODEWARD_CODE_TTL_SECS=600"), "{stdout}");
    assert!(
        stdout.contains("CODEWARD_ARGON2_MEMORY_KIB=19456"),
        "{stdout}"
    );
}

#[test]
fn production_refuses_missing_or_weak_secrets_with_a_clear_message() {
    let smtp = ("CODEWARD_SMTP_URL", "smtp://mail.example.com:587");
    let production = ("CODEWARD_ENV", "production");
    let dev_key = "dev:Y29kZXdhcmQtaW5zZWN1cmUtZGV2LXBlcHBlci0zMmI=";
    type Vars<'a> = Vec<(&'a str, &'a str)>;
    let cases: Vec<(&str, Vars, &str)> = vec![
        (
            "no pepper",
            vec![production, smtp],
            "CODEWARD_PEPPER is required in production",
        ),
        (
            "the dev pepper",
            vec![production, smtp, ("CODEWARD_PEPPER", dev_key)],
            "insecure development pepper",
        ),
        (
            "a zero key",
            vec![production, smtp, ("CODEWARD_PEPPER", ZERO_KEY)],
            "too little variety",
        ),
        (
            "a weak previous key",
            vec![
                production,
                smtp,
                ("CODEWARD_PEPPER", KEY_A),
                ("CODEWARD_PREVIOUS_PEPPERS", ZERO_KEY),
            ],
            "too little variety",
        ),
        (
            "no SMTP server",
            vec![production, ("CODEWARD_PEPPER", KEY_A)],
            "CODEWARD_SMTP_URL is required in production",
        ),
        (
            "a short key",
            vec![production, smtp, ("CODEWARD_PEPPER", "k1:c2hvcnQ=")],
            "at least 32 are required",
        ),
        (
            "a key without id",
            vec![production, smtp, ("CODEWARD_PEPPER", KEY_A_SECRET)],
            "CODEWARD_PEPPER",
        ),
        (
            "a key id used twice",
            vec![
                production,
                smtp,
                ("CODEWARD_PEPPER", KEY_A),
                ("CODEWARD_PREVIOUS_PEPPERS", KEY_A),
            ],
            "used twice",
        ),
    ];
    for (why, vars, message) in cases {
        let output = codeward(&["check-config"], &vars);

        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{why}: {stderr}");
        assert!(
            stderr.contains(message),
            "{why}: expected {message:?} in {stderr}"
        );
        assert!(!stderr.contains(KEY_A_SECRET), "{why}: the key was printed");
    }
}

#[test]
fn development_runs_without_a_pepper_but_warns_loudly() {
    let output = codeward(&["check-config"], &[]);

    assert!(output.status.success());
    assert!(text(&output.stderr).contains("INSECURE development pepper"));
    assert!(text(&output.stdout).contains("CODEWARD_PEPPER=dev:<secret>"));
}

#[test]
fn a_real_smtp_server_with_the_development_pepper_is_refused_naming_both_settings() {
    let smtp = ("CODEWARD_SMTP_URL", "smtp://mail.example.com:25");
    let dev_key = (
        "CODEWARD_PEPPER",
        "dev:Y29kZXdhcmQtaW5zZWN1cmUtZGV2LXBlcHBlci0zMmI=",
    );
    for (why, vars) in [
        ("no pepper", vec![smtp]),
        ("the development pepper given", vec![smtp, dev_key]),
        (
            "the development pepper kept as a previous one",
            vec![
                smtp,
                ("CODEWARD_PEPPER", KEY_A),
                ("CODEWARD_PREVIOUS_PEPPERS", dev_key.1),
            ],
        ),
    ] {
        let output = codeward(&["check-config"], &vars);

        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{why}: {stderr}");
        let line = stderr
            .lines()
            .find(|line| line.contains("CODEWARD_PEPPER"))
            .unwrap_or_else(|| panic!("{why}: no line names CODEWARD_PEPPER in {stderr}"));
        assert!(line.contains("CODEWARD_ENV"), "{why}: {line}");
    }

    let with_a_pepper = codeward(&["check-config"], &[smtp, ("CODEWARD_PEPPER", KEY_A)]);
    assert!(
        with_a_pepper.status.success(),
        "{}",
        text(&with_a_pepper.stderr)
    );
}

#[test]
fn malformed_settings_are_refused_naming_the_setting_and_never_echoing_secrets() {
    let cases = [
        ("CODEWARD_LISTEN", "nowhere", "CODEWARD_LISTEN"),
        ("CODEWARD_ENV", "staging", "CODEWARD_ENV"),
        ("CODEWARD_LOG_FORMAT", "xml", "CODEWARD_LOG_FORMAT"),
        ("CODEWARD_CODE_TTL_SECS", "5", "CODEWARD_CODE_TTL_SECS"),
        (
            "CODEWARD_CODE_MAX_ATTEMPTS",
            "0",
            "CODEWARD_CODE_MAX_ATTEMPTS",
        ),
        (
            "CODEWARD_ARGON2_MEMORY_KIB",
            "lots",
            "CODEWARD_ARGON2_MEMORY_KIB",
        ),
        (
            "CODEWARD_TRUSTED_PROXIES",
            "10.0.0.0/33",
            "CODEWARD_TRUSTED_PROXIES",
        ),
        ("CODEWARD_LOG", "info,[[[", "CODEWARD_LOG"),
        (
            "CODEWARD_DATABASE_URL",
            "redis://u:pw-hunter2@cache",
            "CODEWARD_DATABASE_URL",
        ),
        (
            "CODEWARD_SMTP_URL",
            "http://u:pw-hunter2@mail",
            "CODEWARD_SMTP_URL",
        ),
        ("CODEWARD_PEPPER", "k1:pw-hunter2", "CODEWARD_PEPPER"),
        ("CODEWARD_MAIL_FROM", "not an address", "CODEWARD_MAIL_FROM"),
        (
            "CODEWARD_EMAIL_LEASE_SECS",
            "10",
            "CODEWARD_EMAIL_LEASE_SECS",
        ),
        (
            "CODEWARD_TEMPLATE_DIR",
            "/no/such/folder",
            "CODEWARD_TEMPLATE_DIR",
        ),
        (
            "CODEWARD_CODE_DAILY_FAILURE_CEILING",
            "24",
            "CODEWARD_CODE_DAILY_FAILURE_CEILING",
        ),
    ];
    for (name, value, mentioned) in cases {
        let output = codeward(&["check-config"], &[(name, value)]);

        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{name}={value}: {stderr}");
        assert!(
            stderr.contains(mentioned),
            "{name}: expected {mentioned:?} in {stderr}"
        );
        assert!(
            !stderr.contains("hunter2"),
            "{name}: the secret was echoed: {stderr}"
        );
    }
}

#[test]
fn help_never_shows_the_values_of_secret_variables() {
    let output = codeward(
        &["--help"],
        &[
            ("CODEWARD_PEPPER", KEY_A),
            ("CODEWARD_SMTP_URL", "smtp://u:smtp-hunter2@m"),
        ],
    );

    let stdout = text(&output.stdout);
    assert!(stdout.contains("CODEWARD_PEPPER"), "{stdout}");
    assert!(
        !stdout.contains(KEY_A_SECRET) && !stdout.contains("smtp-hunter2"),
        "{stdout}"
    );
}

#[test]
fn flags_work_as_well_as_variables() {
    let output = codeward(
        &[
            "check-config",
            "--code-ttl-secs",
            "900",
            "--app-name",
            "Acme",
        ],
        &[],
    );

    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(stdout.contains("CODEWARD_CODE_TTL_SECS=900"), "{stdout}");
    assert!(stdout.contains("CODEWARD_APP_NAME=Acme"), "{stdout}");
}

#[test]
fn openapi_prints_yaml_and_json_of_the_same_spec() {
    let yaml = codeward(&["openapi"], &[]);
    let json = codeward(&["openapi", "--json"], &[]);

    assert!(yaml.status.success() && json.status.success());
    let from_yaml: serde_json::Value = serde_yaml::from_slice(&yaml.stdout).expect("YAML");
    let from_json: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(from_yaml, from_json);
    assert_eq!(from_json["info"]["title"], "codeward");
}

#[test]
fn serve_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}?mode=rwc", dir.path().join("c.db").display());
    let mut child = codeward_command()
        .arg("serve")
        .env("CODEWARD_LISTEN", "127.0.0.1:0")
        .env("CODEWARD_DATABASE_URL", &database)
        .env("CODEWARD_LOG_FORMAT", "json")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let listening = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|line| line.contains("codeward listening"))
        .expect("a start-up line");
    let log: serde_json::Value = serde_json::from_str(&listening).expect("JSON log line");
    assert_eq!(log["level"], "INFO");
    let addr = log["addr"].as_str().unwrap().to_owned();
    let health = std::net::TcpStream::connect(&addr);
    assert!(health.is_ok(), "listening on {addr}");

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "still running after SIGTERM"
        );
        // Polling: std has no wait with a timeout, and the exit comes on the child's own time.
        std::thread::sleep(Duration::from_millis(50));
    };

    assert!(status.success(), "exit status {status}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        rest.iter().any(|l| l.contains("shutdown requested")),
        "{rest:?}"
    );
}

/// The log an auditor reads: every account operation says what happened, to whom and from
/// where, and no password, code or token ever appears in it.
#[tokio::test]
async fn the_log_records_each_security_event_and_never_a_secret() {
    let sink = crate::smtp::SmtpSink::start();
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}?mode=rwc", dir.path().join("c.db").display());
    let mut child = codeward_command()
        .arg("serve")
        .env("CODEWARD_LISTEN", "127.0.0.1:0")
        .env("CODEWARD_DATABASE_URL", &database)
        .env("CODEWARD_SMTP_URL", sink.url())
        .env("CODEWARD_PEPPER", KEY_A)
        .env("CODEWARD_LOG_FORMAT", "json")
        .env("CODEWARD_LOG", "debug")
        .env("CODEWARD_ARGON2_MEMORY_KIB", "1024")
        .env("CODEWARD_ARGON2_ITERATIONS", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut log = Vec::new();
    let addr = loop {
        let line = lines_rx
            .recv_timeout(Duration::from_secs(20))
            .expect("start-up line");
        let found = line.contains("codeward listening").then(|| {
            serde_json::from_str::<serde_json::Value>(&line).unwrap()["addr"]
                .as_str()
                .unwrap()
                .to_owned()
        });
        log.push(line);
        if let Some(addr) = found {
            break addr;
        }
    };
    let api = Api::new(&format!("http://{addr}"));

    api.signup("ada@example.com", PASSWORD).await;
    let code = sink
        .wait_for_nth_message_to("ada@example.com", 1)
        .await
        .code();
    let session: serde_json::Value = api
        .verify_signup("ada@example.com", &code, PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    api.login("ada@example.com", "wrong password here").await;
    api.forgot_password("ada@example.com").await;
    let reset_code = sink
        .wait_for_nth_message_to("ada@example.com", 2)
        .await
        .code();
    let reset = api
        .reset_password("ada@example.com", &reset_code, NEW_PASSWORD)
        .await;
    assert_eq!(reset.status().as_u16(), 204);
    sink.wait_for_nth_message_to("ada@example.com", 3).await;
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
    log.extend(lines_rx.try_iter());
    let log = log.join("\n");

    let secrets = [
        PASSWORD,
        NEW_PASSWORD,
        "wrong password here",
        code.as_str(),
        reset_code.as_str(),
        session["access_token"].as_str().unwrap(),
        session["refresh_token"].as_str().unwrap(),
    ];
    for secret in secrets {
        assert!(!log.contains(secret), "{secret:?} is in the log");
    }
    // Nor the private signing key the server made at its first start (opened here with the
    // pepper, to know what to look for), in any encoding a careless line could use.
    let db = sea_orm::Database::connect(&database).await.unwrap();
    let stored = entity::signing_keys::Entity::find().all(&db).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert!(
        log.contains(&stored[0].id),
        "the key's creation is logged by its kid"
    );
    let pepper = codeward::config::Pepper::parse(KEY_A).unwrap();
    let seal = codeward::core::seal::Seal::new([&pepper], codeward::core::keys::SEAL_LABEL);
    let private = codeward::core::keys::store::open_private(&seal, &stored[0]).unwrap();
    let der = private.expose();
    use base64::Engine as _;
    for encoded in [
        hex::encode(der),
        hex::encode(&der[der.len() - 32..]),
        base64::engine::general_purpose::STANDARD.encode(der),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&der[der.len() - 32..]),
    ] {
        assert!(!log.contains(&encoded), "private key material in the log");
    }
    for (operation, outcome) in [
        ("signup", "code_sent"),
        ("verify_signup", "verified"),
        ("login", "invalid_credentials"),
        ("forgot_password", "code_sent"),
        ("reset_password", "reset"),
    ] {
        let line = log
            .lines()
            .find(|l| {
                l.contains(&format!("\"message\":\"{operation}\""))
                    && l.contains(&format!("\"outcome\":\"{outcome}\""))
            })
            .unwrap_or_else(|| panic!("no {operation} {outcome} line in\n{log}"));
        assert!(line.contains("127.0.0.1"), "{operation}: no IP in {line}");
        if operation != "login" {
            assert!(
                line.contains("user_id"),
                "{operation}: no user id in {line}"
            );
        }
    }
}
