//! Abuse controls with their real defaults: per-IP quotas (per client network), the resend
//! cooldown, the hourly cap on codes, the daily failure budgets, the delay after password
//! failures, and the shape of every 429.

use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, join_all};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::Value;

use crate::helpers::{
    PASSWORD, assert_problem, assert_rate_limited, eventually, fresh_database, other_code,
    spawn_app_with, start_instance,
};
use crate::smtp::SmtpSink;

/// The defaults under test, on top of the fast test settings.
const REAL_LIMITS: [&str; 7] = [
    "--code-resend-cooldown-secs=60",
    "--codes-per-address-per-hour=5",
    "--login-failures-before-delay=5",
    "--ip-rate-send-code=10/min",
    "--ip-rate-verify-code=30/min",
    "--ip-rate-login=20/min",
    "--ip-rate-refresh=60/min",
];

fn with_real_limits(extra: &[&'static str]) -> Vec<&'static str> {
    let mut flags = REAL_LIMITS.to_vec();
    flags.extend_from_slice(extra);
    flags
}

#[tokio::test]
async fn code_guessing_from_many_ips_stops_at_the_code_limit_and_leaves_the_owner_their_code() {
    let app = spawn_app_with(&with_real_limits(&["--trusted-proxies=127.0.0.1/32"])).await;
    let clock = &app.instance.clock;
    let mut code = app.signup_code("ada@example.com", PASSWORD).await;
    let mut ip = 0u32;
    let mut next_ip = || {
        ip += 1;
        format!("198.51.{}.{}", ip / 250, ip % 250 + 1)
    };
    for round in 1..=5 {
        // Ten guessers from ten addresses: only five attempts count on a code.
        for _ in 0..10 {
            let response = app
                .forwarded_for(&next_ip())
                .verify_signup("ada@example.com", &other_code(&code), PASSWORD)
                .await;
            assert_problem(response, 400, "invalid_code").await;
        }
        assert_problem(
            app.forwarded_for(&next_ip())
                .verify_signup("ada@example.com", &code, PASSWORD)
                .await,
            400,
            "invalid_code",
        )
        .await;
        if round < 5 {
            clock.advance(Duration::from_secs(61));
            let resend = app
                .forwarded_for(&next_ip())
                .resend_signup_code("ada@example.com")
                .await;
            assert_eq!(resend.status().as_u16(), 202, "round {round}");
            code = app
                .smtp
                .wait_for_nth_message_to("ada@example.com", round + 1)
                .await
                .code();
        }
    }
    // Five codes in the hour: the sixth request is refused whatever the IP.
    clock.advance(Duration::from_secs(61));
    let sixth = app
        .forwarded_for(&next_ip())
        .resend_signup_code("ada@example.com")
        .await;
    assert_rate_limited(sixth, "codes-per-address").await;

    let db = app.connect_db().await;
    let codes = entity::otp_codes::Entity::find()
        .filter(entity::otp_codes::Column::Email.eq("ada@example.com"))
        .all(&db)
        .await
        .unwrap();
    assert_eq!(codes.len(), 5);
    assert!(
        codes.iter().all(|c| c.attempts == 5),
        "five counted attempts on every code"
    );
    // 25 failures, but each from a network of its own: every network has spent one of its
    // 25 and the account 25 of its 100, so the owner's fresh code still works. (One network
    // spending its budget, and the ceiling over all networks: tests/api/codes.rs.)
    clock.advance(Duration::from_secs(3600));
    let resend = app
        .forwarded_for(&next_ip())
        .resend_signup_code("ada@example.com")
        .await;
    assert_eq!(resend.status().as_u16(), 202);
    let fresh = app
        .smtp
        .wait_for_nth_message_to("ada@example.com", 6)
        .await
        .code();
    let owner = app
        .forwarded_for(&next_ip())
        .verify_signup("ada@example.com", &fresh, PASSWORD)
        .await;
    assert_eq!(owner.status().as_u16(), 200);
}

#[tokio::test]
async fn a_flood_of_resend_and_forgot_for_one_address_sends_at_most_five_emails_an_hour() {
    let app = spawn_app_with(&with_real_limits(&["--ip-rate-send-code=100000/s"])).await;
    app.signup_code("ada@example.com", PASSWORD).await;
    let clock = &app.instance.clock;

    // Every request waits out the cooldown; forty of them span 41 minutes.
    let mut accepted = 1;
    for n in 0..40 {
        clock.advance(Duration::from_secs(61));
        let response = if n % 2 == 0 {
            app.resend_signup_code("ada@example.com").await
        } else {
            app.forgot_password("ada@example.com").await
        };
        if response.status().as_u16() == 202 {
            accepted += 1;
            // Let it go out before the clock jumps past its expiry.
            app.smtp
                .wait_for_nth_message_to("ada@example.com", accepted)
                .await;
        } else {
            assert_rate_limited(response, "codes-per-address").await;
        }
    }

    assert_eq!(accepted, 5);
    // The refused requests queued nothing, so no sixth email can still be on its way.
    assert_eq!(
        app.outbox_to("ada@example.com").await.len(),
        5,
        "at most five emails queued"
    );
    assert_eq!(
        app.smtp.messages_to("ada@example.com").len(),
        5,
        "at most five emails"
    );

    // Once the hour is over, a new window starts with this request's unit taken.
    clock.advance(Duration::from_secs(3600));
    assert_eq!(
        app.forgot_password("ada@example.com")
            .await
            .status()
            .as_u16(),
        202
    );
    clock.advance(Duration::from_secs(61));
    assert_eq!(
        app.resend_signup_code("ada@example.com")
            .await
            .status()
            .as_u16(),
        202,
        "the second of the new hour"
    );
}

#[tokio::test]
async fn concurrent_requests_for_one_address_send_one_code_per_cooldown() {
    let app = spawn_app_with(&with_real_limits(&["--ip-rate-send-code=100000/s"])).await;
    app.signed_up("ada@example.com", PASSWORD).await;
    app.instance.clock.advance(Duration::from_secs(61));

    let responses = join_all((0..30).map(|_| app.forgot_password("ada@example.com"))).await;

    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 202).count(),
        1,
        "{statuses:?}"
    );
    assert!(statuses.iter().all(|&s| s == 202 || s == 429));
    // Every request has been answered, so every email there will be is queued by now.
    let queued = app.outbox_to("ada@example.com").await;
    let templates: Vec<&str> = queued.iter().map(|row| row.template.as_str()).collect();
    assert_eq!(
        templates,
        ["verify_email", "reset_password"],
        "the sign-up code and one reset code"
    );
    app.smtp.wait_for_nth_message_to("ada@example.com", 2).await;
    assert_eq!(
        app.smtp.messages_to("ada@example.com").len(),
        2,
        "the sign-up code and one reset code"
    );
}

#[tokio::test]
async fn unknown_addresses_are_limited_exactly_like_known_ones() {
    let app = spawn_app_with(&with_real_limits(&["--ip-rate-send-code=100000/s"])).await;
    app.signed_up("known@example.com", PASSWORD).await;
    app.instance.clock.advance(Duration::from_secs(61));

    let mut answers = Vec::new();
    for email in ["known@example.com", "ghost@example.com"] {
        let first = app.forgot_password(email).await.status().as_u16();
        let second = app.forgot_password(email).await;
        let retry = assert_rate_limited(second, "resend-cooldown").await;
        answers.push((first, retry));
    }

    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0].0, 202);
}

#[tokio::test]
async fn a_spoofed_forwarded_for_from_an_untrusted_peer_does_not_change_the_client_ip() {
    let untrusted = spawn_app_with(&with_real_limits(&["--ip-rate-login=3/min"])).await;
    let trusted = spawn_app_with(&with_real_limits(&[
        "--ip-rate-login=3/min",
        "--trusted-proxies=127.0.0.1/32",
    ]))
    .await;
    let mut untrusted_statuses = Vec::new();
    let mut trusted_statuses = Vec::new();
    for n in 0..6 {
        // A new address each time, so only the per-IP quota is in play.
        let email = format!("user{n}@example.com");
        let spoofed = format!("203.0.113.{}", n + 1);
        untrusted_statuses.push(
            untrusted
                .forwarded_for(&spoofed)
                .login(&email, PASSWORD)
                .await
                .status()
                .as_u16(),
        );
        trusted_statuses.push(
            trusted
                .forwarded_for(&spoofed)
                .login(&email, PASSWORD)
                .await
                .status()
                .as_u16(),
        );
    }

    assert_eq!(
        untrusted_statuses,
        [401, 401, 401, 429, 429, 429],
        "one bucket: the socket peer"
    );
    assert_eq!(
        trusted_statuses, [401; 6],
        "behind a trusted proxy each client has its own bucket"
    );
    let limited = untrusted
        .forwarded_for("203.0.113.99")
        .login("other@example.com", PASSWORD)
        .await;
    assert_rate_limited(limited, "login-per-ip").await;
}

#[tokio::test]
async fn the_client_ip_behind_a_trusted_proxy_is_the_one_recorded() {
    let app = spawn_app_with(&["--trusted-proxies=127.0.0.1/32"]).await;
    app.signed_up("ada@example.com", PASSWORD).await;

    let session: Value = app
        .forwarded_for("192.0.2.77")
        .login("ada@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();

    let listed: Value = app
        .list_sessions(session["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    let current = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .unwrap()
        .clone();
    assert_eq!(current["ip"], "192.0.2.77");
}

#[tokio::test]
async fn behind_a_trusted_proxy_every_forwarded_for_line_is_read_and_hops_may_carry_ports() {
    let app = spawn_app_with(&["--trusted-proxies=127.0.0.1/32"]).await;
    app.signed_up("ada@example.com", PASSWORD).await;
    // Each client wrote a line of its own (6.6.6.6, spoofed); the proxy appended its line.
    let cases: [(&[&str], &str); 4] = [
        (&["6.6.6.6", "198.51.100.7"], "198.51.100.7"),
        (&["6.6.6.6", "203.0.113.9:1234"], "203.0.113.9"),
        (&["6.6.6.6", "[2001:db8::5]:4444"], "2001:db8::5"),
        (
            &["6.6.6.6, 127.0.0.1", "[2001:db8::6], 127.0.0.1"],
            "2001:db8::6",
        ),
    ];

    for (lines, client) in cases {
        let session: Value = app
            .forwarded_for_lines(lines)
            .login("ada@example.com", PASSWORD)
            .await
            .json()
            .await
            .unwrap();

        let listed: Value = app
            .list_sessions(session["access_token"].as_str().unwrap())
            .await
            .json()
            .await
            .unwrap();
        let current = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["current"] == true)
            .unwrap()
            .clone();
        assert_eq!(current["ip"], client, "{lines:?}");
    }
}

#[tokio::test]
async fn two_instances_on_one_database_share_the_per_address_limits() {
    let database = fresh_database().await;
    let sink = SmtpSink::start();
    let mut flags = crate::helpers::FAST.to_vec();
    flags.extend(with_real_limits(&["--ip-rate-send-code=100000/s"]));
    let first = start_instance(&database.url, &sink.url(), &flags).await;
    let second = start_instance(&database.url, &sink.url(), &flags).await;
    let instances = [first.api(), second.api()];

    let mut statuses = Vec::new();
    for n in 0..10 {
        let response = instances[n % 2].forgot_password("shared@example.com").await;
        statuses.push(response.status().as_u16());
    }

    assert_eq!(statuses[0], 202);
    assert!(
        statuses[1..].iter().all(|&s| s == 429),
        "the cooldown holds across instances: {statuses:?}"
    );
}

#[tokio::test]
async fn login_failures_delay_the_address_growingly_success_clears_it_and_recovery_still_works() {
    let app = spawn_app_with(&with_real_limits(&[
        "--ip-rate-login=100000/s",
        "--ip-rate-send-code=100000/s",
    ]))
    .await;
    app.signed_up("ada@example.com", PASSWORD).await;
    let clock = &app.instance.clock;
    let wrong = |email: &str| app.login(email, "definitely not it");
    let mut delays = Vec::new();
    for email in ["ada@example.com", "ghost@example.com"] {
        for _ in 0..5 {
            assert_problem(wrong(email).await, 401, "invalid_credentials").await;
        }
        let first = assert_rate_limited(wrong(email).await, "login-failures-per-address").await;
        clock.advance(Duration::from_secs(first));
        assert_problem(wrong(email).await, 401, "invalid_credentials").await;
        let second = assert_rate_limited(wrong(email).await, "login-failures-per-address").await;
        delays.push((first, second));
        clock.advance(Duration::from_secs(second));
    }

    assert_eq!(
        delays[0], delays[1],
        "an unknown address is delayed exactly like a known one"
    );
    assert!(
        delays[0].0 <= 30 && delays[0].1 > delays[0].0,
        "growing: {delays:?}"
    );
    // Recovery is never blocked by login failures.
    assert_problem(wrong("ada@example.com").await, 401, "invalid_credentials").await;
    let forgot = app.forgot_password("ada@example.com").await;
    assert_eq!(forgot.status().as_u16(), 202);
    // A success clears the count: after the delay, the right password works and the next
    // failures start from zero.
    clock.advance(Duration::from_secs(901));
    let right = app.login("ada@example.com", PASSWORD).await;
    assert_eq!(right.status().as_u16(), 200);
    for _ in 0..4 {
        assert_problem(wrong("ada@example.com").await, 401, "invalid_credentials").await;
    }
    let still_free = app.login("ada@example.com", PASSWORD).await;
    assert_eq!(still_free.status().as_u16(), 200);
}

#[tokio::test]
async fn every_public_operation_answers_429_with_the_headers_when_its_ip_quota_is_spent() {
    let app = spawn_app_with(&[
        "--ip-rate-send-code=1/min",
        "--ip-rate-verify-code=1/min",
        "--ip-rate-login=1/min",
        "--ip-rate-refresh=1/min",
    ])
    .await;
    let email = "a@example.com";
    let request = |operation: &str| match operation {
        "signup" => app.signup(email, PASSWORD).boxed(),
        "resend_signup_code" => app.resend_signup_code(email).boxed(),
        "forgot_password" => app.forgot_password(email).boxed(),
        "verify_signup" => app.verify_signup(email, "123456", PASSWORD).boxed(),
        "check_reset_code" => app.check_reset_code(email, "123456").boxed(),
        "reset_password" => app.reset_password(email, "123456", PASSWORD).boxed(),
        "login" => app.login(email, PASSWORD).boxed(),
        "refresh_token" => app.refresh("cwr_x").boxed(),
        other => unreachable!("{other}"),
    };
    let cases = [
        ("signup", "send-code-per-ip"),
        ("resend_signup_code", "send-code-per-ip"),
        ("forgot_password", "send-code-per-ip"),
        ("verify_signup", "verify-code-per-ip"),
        ("check_reset_code", "verify-code-per-ip"),
        ("reset_password", "verify-code-per-ip"),
        ("login", "login-per-ip"),
        ("refresh_token", "refresh-per-ip"),
    ];
    // The first request of each group uses its quota of one.
    for operation in ["signup", "verify_signup", "login", "refresh_token"] {
        let status = request(operation).await.status().as_u16();
        assert_ne!(status, 429, "{operation}");
    }

    for (operation, policy) in cases {
        let response = request(operation).await;

        assert_eq!(response.status().as_u16(), 429, "{operation}");
        assert_rate_limited(response, policy).await;
    }
}

#[tokio::test]
async fn operations_that_could_reveal_an_account_answer_on_the_equal_time_grid() {
    let app = spawn_app_with(&["--equal-time-step-ms=1000"]).await;
    let email = "grid@example.com";
    let requests = [
        ("signup", app.signup(email, PASSWORD).boxed()),
        ("resend_signup_code", app.resend_signup_code(email).boxed()),
        (
            "verify_signup",
            app.verify_signup(email, "000000", PASSWORD).boxed(),
        ),
        ("login", app.login(email, PASSWORD).boxed()),
        ("forgot_password", app.forgot_password(email).boxed()),
        (
            "check_reset_code",
            app.check_reset_code(email, "000000").boxed(),
        ),
        (
            "reset_password",
            app.reset_password(email, "000000", PASSWORD).boxed(),
        ),
    ];
    let timed = |request: BoxFuture<'static, reqwest::Response>| async move {
        let started = std::time::Instant::now();
        let response = request.await;
        let status = response.status();
        response.bytes().await.unwrap();
        (status, started.elapsed())
    };
    let (operations, requests): (Vec<_>, Vec<_>) = requests.into_iter().unzip();
    let answers = join_all(requests.into_iter().map(timed)).await;
    for (operation, (status, elapsed)) in operations.iter().zip(answers) {
        assert!(status.as_u16() < 500, "{operation}: {status}");
        assert!(
            elapsed >= Duration::from_secs(1),
            "{operation} answered after {elapsed:?}, before its first step"
        );
    }
    // Operations that reveal nothing about an account are not held back.
    let (status, elapsed) = timed(app.get("/healthz").boxed()).await;
    assert_eq!(status, 200);
    assert!(elapsed < Duration::from_secs(1), "healthz took {elapsed:?}");
}

#[tokio::test]
async fn per_ip_quotas_forget_idle_clients_on_their_own_timer_without_housekeeping() {
    let app = spawn_app_with(&[
        "--housekeeping-interval-secs=0",
        "--ip-quota-prune-secs=1",
        "--trusted-proxies=127.0.0.1/32",
        // One request takes 2 s of quota: the entry outlives the first scrape.
        "--ip-rate-send-code=30/min",
    ])
    .await;
    for ip in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
        let response = app.forwarded_for(ip).forgot_password("x@example.com").await;
        assert_eq!(response.status().as_u16(), 202);
    }
    let entries = async || {
        let scrape = crate::metrics::scrape(&app).await;
        crate::metrics::value(&scrape, "codeward_ip_quota_entries", &[])
    };
    assert_eq!(entries().await, Some(3.0));

    // Housekeeping never runs here; the quotas' own sweep forgets the three once they are full.
    eventually("the idle client IPs are forgotten", async || {
        entries().await == Some(0.0)
    })
    .await;
}

#[tokio::test]
async fn an_ipv6_host_gets_one_quota_for_its_whole_64_not_one_per_address() {
    let app = spawn_app_with(&with_real_limits(&["--trusted-proxies=127.0.0.1/32"])).await;
    // One ordinary IPv6 host owns a /64: fourteen of its addresses, fourteen new addresses to
    // ask for (so only the per-IP quota is in play).
    let mut statuses = Vec::new();
    for n in 1..=14 {
        let response = app
            .forwarded_for(&format!("2001:db8:1:2::{n:x}"))
            .forgot_password(&format!("user{n}@example.com"))
            .await;
        statuses.push(response.status().as_u16());
    }

    assert_eq!(statuses[..10], [202; 10], "{statuses:?}");
    assert_eq!(statuses[10..], [429; 4], "{statuses:?}");
    let limited = app
        .forwarded_for("2001:db8:1:2:ffff:ffff:ffff:ffff")
        .forgot_password("last@example.com")
        .await;
    assert_rate_limited(limited, "send-code-per-ip").await;
    let next_network = app
        .forwarded_for("2001:db8:1:3::1")
        .forgot_password("next@example.com")
        .await;
    assert_eq!(
        next_network.status().as_u16(),
        202,
        "another /64 is another client"
    );
}

#[tokio::test]
async fn parallel_wrong_logins_cannot_beat_the_delay_and_the_right_password_still_works() {
    let app = spawn_app_with(&with_real_limits(&["--ip-rate-login=100000/s"])).await;
    app.signed_up("ada@example.com", PASSWORD).await;

    let responses = join_all((0..30).map(|_| app.login("ada@example.com", "not it at all"))).await;

    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    let wrong = statuses.iter().filter(|&&s| s == 401).count();
    assert!(wrong <= 5, "{wrong} passwords were verified: {statuses:?}");
    assert!(
        statuses.iter().all(|&s| s == 401 || s == 429),
        "{statuses:?}"
    );
    // The fifth failure set a 30 s delay; after it, the right password works, and a success
    // gives the unit back: the next sign-in works too.
    app.instance.clock.advance(Duration::from_secs(31));
    for _ in 0..2 {
        let right = app.login("ada@example.com", PASSWORD).await;
        assert_eq!(right.status().as_u16(), 200);
    }
}

#[tokio::test]
async fn parallel_wrong_current_passwords_at_change_password_are_delayed_like_logins() {
    let app = spawn_app_with(&with_real_limits(&["--ip-rate-login=100000/s"])).await;
    let session = app.signed_up("ada@example.com", PASSWORD).await;
    let access = session["access_token"].as_str().unwrap();

    let responses = join_all(
        (0..30).map(|_| app.change_password(access, "not it at all", "a brand new lantern orbit")),
    )
    .await;

    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    let wrong = statuses.iter().filter(|&&s| s == 403).count();
    assert!(
        wrong <= 5,
        "{wrong} current passwords were verified: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|&s| s == 403 || s == 429),
        "{statuses:?}"
    );
    let limited = app
        .change_password(access, "not it at all", "a brand new lantern orbit")
        .await;
    assert_rate_limited(limited, "change-password-failures-per-account").await;
    app.instance.clock.advance(Duration::from_secs(31));
    let changed = app
        .change_password(access, PASSWORD, "a brand new lantern orbit")
        .await;
    assert_eq!(changed.status().as_u16(), 204);
    let back = app
        .change_password(
            access,
            "a brand new lantern orbit",
            "yet another quiet harbor",
        )
        .await;
    assert_eq!(back.status().as_u16(), 204, "a success gives the unit back");
}
