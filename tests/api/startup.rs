//! Start-up as an operator meets it: settings production refuses, a database that cannot be
//! reached, a port already taken, a malformed variable named as the variable.

use std::io::Read as _;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{codeward_command, run_codeward};

const PEPPER: &str = "k1:rH7SbhbevAP6130em5tpHN2Z6bhrDge6BKP1CusuIlQ=";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// What a production configuration needs besides the setting under test.
fn production(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut vars = vec![
        ("CODEWARD_ENV", "production"),
        ("CODEWARD_PEPPER", PEPPER),
        (
            "CODEWARD_SMTP_URL",
            "smtp://mail.example.com:587?tls=required",
        ),
        ("CODEWARD_METRICS_LISTEN", "127.0.0.1:0"),
        ("CODEWARD_PUBLIC_URL", "https://auth.example.com"),
    ];
    vars.extend_from_slice(extra);
    vars
}

/// Runs `codeward <args>` like `run_codeward`, but kills it after 30 s, so a start-up that
/// wrongly succeeds fails the test instead of hanging it. Returns how long it ran too.
fn run_to_exit(args: &[&str], vars: &[(&str, &str)]) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = codeward_command()
        .args(args)
        .envs(vars.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("codeward binary runs");
    let status = loop {
        if let Some(status) = child.try_wait().expect("child status") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            child.kill().expect("kill codeward");
            panic!("codeward {args:?} still running after 30 s");
        }
        // Polling a child process: there is no event to wait on without a thread per pipe.
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    if let Some(mut pipe) = child.stdout.take() {
        pipe.read_to_end(&mut stdout).expect("stdout");
    }
    if let Some(mut pipe) = child.stderr.take() {
        pipe.read_to_end(&mut stderr).expect("stderr");
    }
    (
        Output {
            status,
            stdout,
            stderr,
        },
        elapsed,
    )
}

/// A port nothing listens on: bound by the OS for us, then let go.
fn refused_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

#[test]
fn production_refuses_a_sender_at_localhost_a_local_name_or_an_ip_address() {
    let cases = [
        ("the default sender", None, "no-reply@localhost"),
        (
            "a name under localhost",
            Some("App <no-reply@app.localhost>"),
            "no-reply@app.localhost",
        ),
        (
            "an mDNS name",
            Some("App <no-reply@printer.local>"),
            "no-reply@printer.local",
        ),
        (
            "an IP address",
            Some("App <no-reply@192.0.2.1>"),
            "no-reply@192.0.2.1",
        ),
    ];
    for (why, sender, named) in cases {
        let vars = match sender {
            Some(sender) => production(&[("CODEWARD_MAIL_FROM", sender)]),
            None => production(&[]),
        };

        let output = run_codeward(&["check-config"], &vars);

        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{why}: {stderr}");
        let line = stderr
            .lines()
            .find(|line| line.contains("CODEWARD_MAIL_FROM"))
            .unwrap_or_else(|| panic!("{why}: no line names CODEWARD_MAIL_FROM in {stderr}"));
        assert!(line.contains(named), "{why}: {line}");
    }
}

#[test]
fn production_accepts_a_sender_at_a_real_domain_and_development_keeps_the_default() {
    let real = run_codeward(
        &["check-config"],
        &production(&[
            ("CODEWARD_MAIL_FROM", "Example <no-reply@example.com>"),
            ("CODEWARD_APP_NAME", "Example"),
        ]),
    );
    let development = run_codeward(&["check-config"], &[]);

    assert!(real.status.success(), "{}", text(&real.stderr));
    assert!(
        !text(&real.stderr).contains("CODEWARD_MAIL_FROM"),
        "{}",
        text(&real.stderr)
    );
    assert!(
        development.status.success(),
        "{}",
        text(&development.stderr)
    );
    assert!(
        text(&development.stdout).contains("CODEWARD_MAIL_FROM=codeward <no-reply@localhost>"),
        "{}",
        text(&development.stdout)
    );
}

#[test]
fn production_warns_while_emails_carry_the_default_app_name() {
    let sender = ("CODEWARD_MAIL_FROM", "Example <no-reply@example.com>");

    let default_name = run_codeward(&["check-config"], &production(&[sender]));
    let own_name = run_codeward(
        &["check-config"],
        &production(&[sender, ("CODEWARD_APP_NAME", "Example")]),
    );
    let development = run_codeward(&["check-config"], &[sender]);

    assert!(
        default_name.status.success(),
        "{}",
        text(&default_name.stderr)
    );
    let warning = text(&default_name.stderr);
    assert!(
        warning
            .lines()
            .any(|line| line.contains("WARN") && line.contains("CODEWARD_APP_NAME")),
        "{warning}"
    );
    assert!(own_name.status.success(), "{}", text(&own_name.stderr));
    assert!(
        !text(&own_name.stderr).contains("CODEWARD_APP_NAME"),
        "{}",
        text(&own_name.stderr)
    );
    assert!(
        !text(&development.stderr).contains("CODEWARD_APP_NAME"),
        "{}",
        text(&development.stderr)
    );
}

#[test]
fn an_unreachable_database_server_is_reported_at_once_with_its_cause_named_once() {
    let port = refused_port();
    for scheme in ["postgres", "mysql"] {
        let url = format!("{scheme}://codeward:db-hunter2@127.0.0.1:{port}/codeward");
        for args in [&["serve"][..], &["migrate", "status"][..]] {
            let (output, elapsed) = run_to_exit(
                args,
                &[
                    ("CODEWARD_DATABASE_URL", &url),
                    ("CODEWARD_LISTEN", "127.0.0.1:0"),
                ],
            );

            let stderr = text(&output.stderr);
            let what = format!("{scheme}, codeward {args:?}");
            assert!(!output.status.success(), "{what}: {stderr}");
            // The pool alone waited 10.6 s before saying it timed out.
            assert!(elapsed < Duration::from_secs(8), "{what}: took {elapsed:?}");
            assert_eq!(
                stderr.matches("Connection refused").count(),
                1,
                "{what}: {stderr}"
            );
            assert!(!stderr.contains("pool timed out"), "{what}: {stderr}");
            assert!(
                stderr.contains(&format!("running at 127.0.0.1:{port}")),
                "{what}: no hint in {stderr}"
            );
            assert!(!stderr.contains("hunter2"), "{what}: password printed");
        }
    }
}

#[test]
fn a_fresh_sqlite_path_without_a_mode_becomes_a_new_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fresh.db");
    let url = format!("sqlite://{}", path.display());

    let output = run_codeward(&["migrate", "up"], &[("CODEWARD_DATABASE_URL", &url)]);

    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(path.exists(), "{} was not created", path.display());
}

#[test]
fn a_sqlite_file_that_cannot_be_opened_is_reported_once_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    // Read-only asks for an existing file: that intent stays, so nothing is created.
    let read_only = dir.path().join("missing.db");
    let missing_folder = dir.path().join("no-such-folder").join("fresh.db");
    for (why, path, url, hint) in [
        (
            "read-only",
            &read_only,
            format!("sqlite://{}?mode=ro", read_only.display()),
            "with mode=ro the file must exist already",
        ),
        (
            "a missing folder",
            &missing_folder,
            format!("sqlite://{}", missing_folder.display()),
            "does the folder of",
        ),
    ] {
        let output = run_codeward(&["migrate", "status"], &[("CODEWARD_DATABASE_URL", &url)]);

        let stderr = text(&output.stderr);
        assert!(!output.status.success(), "{why}: {stderr}");
        assert_eq!(
            stderr.matches("unable to open database file").count(),
            1,
            "{why}: {stderr}"
        );
        assert!(stderr.contains(hint), "{why}: no hint in {stderr}");
        assert!(!path.exists(), "{why}: {} was created", path.display());
    }
}

#[test]
fn a_busy_port_is_reported_before_the_database_is_created() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_address = busy.local_addr().unwrap().to_string();
    for (why, listen, metrics_listen, message) in [
        (
            "the main port",
            busy_address.as_str(),
            "127.0.0.1:0",
            format!("cannot listen on {busy_address}"),
        ),
        (
            "the metrics port",
            "127.0.0.1:0",
            busy_address.as_str(),
            format!("cannot listen for metrics on {busy_address}"),
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fresh.db");
        let url = format!("sqlite://{}", path.display());

        let (output, _) = run_to_exit(
            &["serve"],
            &[
                ("CODEWARD_DATABASE_URL", &url),
                ("CODEWARD_LISTEN", listen),
                ("CODEWARD_METRICS_LISTEN", metrics_listen),
            ],
        );

        let stderr = text(&output.stderr);
        assert!(!output.status.success(), "{why}: {stderr}");
        assert!(stderr.contains(&message), "{why}: {stderr}");
        assert!(!path.exists(), "{why}: the database was created first");
    }
    drop(busy);
}

#[test]
fn a_malformed_variable_is_reported_by_its_name_and_a_malformed_flag_by_the_flag() {
    let from_variable = run_codeward(&["check-config"], &[("CODEWARD_LISTEN", "8080")]);
    let from_flag = run_codeward(&["check-config", "--listen=8080"], &[]);
    // The flag wins over the variable, so the flag's value is the one refused.
    let both = run_codeward(
        &["check-config", "--listen", "8080"],
        &[("CODEWARD_LISTEN", "127.0.0.1:8080")],
    );
    let an_enum = run_codeward(&["check-config"], &[("CODEWARD_ENV", "staging")]);

    let stderr = text(&from_variable.stderr);
    assert_eq!(from_variable.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("invalid value '8080' for 'CODEWARD_LISTEN': invalid socket address"),
        "{stderr}"
    );
    assert!(!stderr.contains("--listen"), "{stderr}");
    for (why, output) in [("a flag", &from_flag), ("flag and variable", &both)] {
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{why}: {stderr}");
        assert!(
            stderr.contains("invalid value '8080' for '--listen <LISTEN>'"),
            "{why}: {stderr}"
        );
    }
    let stderr = text(&an_enum.stderr);
    assert_eq!(an_enum.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("for 'CODEWARD_ENV'") && stderr.contains("development, production"),
        "{stderr}"
    );
}
