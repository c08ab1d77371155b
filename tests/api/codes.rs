//! The code engine under attack and over time: concurrent guesses, single use, purposes,
//! users, resends, expiry, the daily budget and pepper rotation.

use std::time::Duration;

use codeward::core::codes::{CodeEngine, Guesser};
use codeward::domain::{EmailAddress, OtpCode, Purpose};
use entity::{otp_budgets, otp_codes, otp_network_budgets, users};
use futures::future::join_all;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

use crate::helpers::{
    PASSWORD, assert_problem, fresh_database, other_code, signup_code_via, spawn_app,
    start_instance, test_config,
};
use crate::smtp::SmtpSink;

async fn live_code(db: &DatabaseConnection, email: &str) -> otp_codes::Model {
    otp_codes::Entity::find()
        .filter(otp_codes::Column::Email.eq(email))
        .filter(otp_codes::Column::RevokedAt.is_null())
        .one(db)
        .await
        .unwrap()
        .expect("a live code")
}

async fn user_id(db: &DatabaseConnection, email: &str) -> uuid::Uuid {
    users::Entity::find()
        .filter(users::Column::Email.eq(email))
        .one(db)
        .await
        .unwrap()
        .expect("user")
        .id
}

#[tokio::test]
async fn a_hundred_concurrent_wrong_guesses_leave_exactly_five_attempts_and_the_code_dead() {
    let app = spawn_app().await;
    let code = app.signup_code("ada@example.com", PASSWORD).await;
    let wrong = other_code(&code);

    let responses =
        join_all((0..100).map(|_| app.verify_signup("ada@example.com", &wrong, PASSWORD))).await;

    assert!(responses.iter().all(|r| r.status().as_u16() == 400));
    let db = app.connect_db().await;
    assert_eq!(
        live_code(&db, "ada@example.com").await.attempts,
        5,
        "exactly the limit"
    );
    let right = app.verify_signup("ada@example.com", &code, PASSWORD).await;
    assert_problem(right, 400, "invalid_code").await;
}

#[tokio::test]
async fn fifty_concurrent_submissions_of_the_right_code_give_exactly_one_session() {
    let app = spawn_app().await;
    let code = app.signup_code("ada@example.com", PASSWORD).await;

    let responses =
        join_all((0..50).map(|_| app.verify_signup("ada@example.com", &code, PASSWORD))).await;

    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|&s| s == 200 || s == 400),
        "{statuses:?}"
    );
    let db = app.connect_db().await;
    let sessions = entity::sessions::Entity::find().all(&db).await.unwrap();
    assert_eq!(sessions.len(), 1);
}

#[tokio::test]
async fn a_code_never_works_for_another_user_or_another_purpose() {
    let app = spawn_app().await;
    let ada_code = app.signup_code("ada@example.com", PASSWORD).await;
    app.signup_code("bob@example.com", PASSWORD).await;
    let db = app.connect_db().await;
    let config = test_config(&app.database.url, &tempfile::tempdir().unwrap(), &[]);
    let engine = CodeEngine::from_config(&config);
    let ada = user_id(&db, "ada@example.com").await;
    let now = app.instance.clock.now();

    let ada_email = EmailAddress::parse("ada@example.com").unwrap();
    let guesser = Guesser {
        user_id: Some(ada),
        email: &ada_email,
        network: None,
    };
    let as_reset = engine
        .attempt(
            &db,
            now,
            Purpose::ResetPassword,
            &OtpCode::parse(&ada_code).unwrap(),
            guesser,
        )
        .await
        .unwrap();
    let as_bob = app
        .verify_signup("bob@example.com", &ada_code, PASSWORD)
        .await;

    assert!(
        as_reset.is_none(),
        "a verify_email code is not a reset_password code"
    );
    assert_problem(as_bob, 400, "invalid_code").await;
    let as_ada = app
        .verify_signup("ada@example.com", &ada_code, PASSWORD)
        .await;
    assert_eq!(
        as_ada.status().as_u16(),
        200,
        "it still works for its own user and purpose"
    );
}

#[tokio::test]
async fn a_resend_within_the_ttl_emails_the_same_code_with_its_attempts_and_a_renewed_life() {
    let app = spawn_app().await;
    let first = app.signup_code("ada@example.com", PASSWORD).await;
    for _ in 0..3 {
        let wrong = app
            .verify_signup("ada@example.com", &other_code(&first), PASSWORD)
            .await;
        assert_eq!(wrong.status().as_u16(), 400);
    }
    let db = app.connect_db().await;
    let before = live_code(&db, "ada@example.com").await;
    assert!(before.code_sealed.is_some(), "a live code is kept sealed");
    assert!(
        !before.code_sealed.as_deref().unwrap().contains(&first),
        "sealed, not in clear"
    );

    // Nine minutes on (the code still lives), a slow first email makes the user ask again.
    app.instance
        .clock
        .advance(std::time::Duration::from_secs(9 * 60));
    let resend = app.resend_signup_code("ada@example.com").await;
    assert_eq!(resend.status().as_u16(), 202);
    let second = app
        .smtp
        .wait_for_nth_message_to("ada@example.com", 2)
        .await
        .code();

    assert_eq!(second, first, "the same code again");
    let after = live_code(&db, "ada@example.com").await;
    assert_eq!(after.id, before.id, "the same row");
    assert_eq!(after.attempts, 3, "its attempts stay");
    assert_eq!(
        (after.expires_at - before.expires_at).num_seconds(),
        9 * 60,
        "a full TTL from the re-send"
    );
    let ada = user_id(&db, "ada@example.com").await;
    let budget = otp_budgets::Entity::find()
        .filter(otp_budgets::Column::UserId.eq(ada))
        .filter(otp_budgets::Column::Purpose.eq("verify_email"))
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        budget.failures, 3,
        "the failure budget is the user's, whatever the code"
    );

    // Past the first TTL it would have expired: the renewed code still works, once.
    app.instance
        .clock
        .advance(std::time::Duration::from_secs(2 * 60));
    let used = app.verify_signup("ada@example.com", &first, PASSWORD).await;
    assert_eq!(used.status().as_u16(), 200);
    let spent = otp_codes::Entity::find_by_id(before.id)
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(spent.code_sealed, None, "erased once used");
}

#[tokio::test]
async fn a_code_older_than_one_ttl_is_replaced_so_none_lives_past_two() {
    let app = spawn_app().await;
    let first = app.signup_code("ada@example.com", PASSWORD).await;
    // Re-sent at 9 minutes (renewed to 19), then asked again at 11: older than one TTL.
    app.instance
        .clock
        .advance(std::time::Duration::from_secs(9 * 60));
    assert_eq!(
        app.resend_signup_code("ada@example.com").await.status(),
        202
    );
    app.instance
        .clock
        .advance(std::time::Duration::from_secs(2 * 60));
    assert_eq!(
        app.resend_signup_code("ada@example.com").await.status(),
        202
    );
    // Delivery order is not request order: the new code is the one that is not the first.
    let mut sent = Vec::new();
    for n in 2..=3 {
        sent.push(
            app.smtp
                .wait_for_nth_message_to("ada@example.com", n)
                .await
                .code(),
        );
    }
    let third = sent
        .iter()
        .find(|code| **code != first)
        .cloned()
        .unwrap_or(first.clone());

    let db = app.connect_db().await;
    let replaced = otp_codes::Entity::find()
        .filter(otp_codes::Column::Email.eq("ada@example.com"))
        .filter(otp_codes::Column::RevokedAt.is_not_null())
        .all(&db)
        .await
        .unwrap();
    assert_eq!(replaced.len(), 1, "the first code was replaced");
    assert_eq!(replaced[0].code_sealed, None, "and its sealed copy erased");
    assert_eq!(live_code(&db, "ada@example.com").await.attempts, 0);
    if third != first {
        let old = app.verify_signup("ada@example.com", &first, PASSWORD).await;
        assert_problem(old, 400, "invalid_code").await;
    }
    let new = app.verify_signup("ada@example.com", &third, PASSWORD).await;
    assert_eq!(new.status().as_u16(), 200);
}

#[tokio::test]
async fn an_expired_code_fails_even_with_the_right_digits() {
    let app = spawn_app().await;
    let code = app.signup_code("ada@example.com", PASSWORD).await;

    app.instance.clock.advance(Duration::from_secs(601));
    let late = app.verify_signup("ada@example.com", &code, PASSWORD).await;

    assert_problem(late, 400, "invalid_code").await;
}

#[tokio::test]
async fn the_daily_failure_budget_holds_across_codes_until_the_window_ends() {
    let app = spawn_app().await;
    let mut code = app.signup_code("ada@example.com", PASSWORD).await;
    // Five codes, five wrong attempts each: the 25 failures of the day.
    for round in 1..=5 {
        for _ in 0..5 {
            let wrong = app
                .verify_signup("ada@example.com", &other_code(&code), PASSWORD)
                .await;
            assert_eq!(wrong.status().as_u16(), 400);
        }
        app.resend_signup_code("ada@example.com").await;
        code = app
            .smtp
            .wait_for_nth_message_to("ada@example.com", round + 1)
            .await
            .code();
    }

    let exhausted = app.verify_signup("ada@example.com", &code, PASSWORD).await;
    assert_problem(exhausted, 400, "invalid_code").await;

    app.instance
        .clock
        .advance(Duration::from_secs(24 * 3600 + 60));
    app.resend_signup_code("ada@example.com").await;
    let fresh = app
        .smtp
        .wait_for_nth_message_to("ada@example.com", 7)
        .await
        .code();
    let next_day = app.verify_signup("ada@example.com", &fresh, PASSWORD).await;
    assert_eq!(next_day.status().as_u16(), 200);
}

#[tokio::test]
async fn codes_hashed_under_a_previous_pepper_verify_while_they_live() {
    let database = fresh_database().await;
    let sink = SmtpSink::start();
    let old = "--pepper=k1:rH7SbhbevAP6130em5tpHN2Z6bhrDge6BKP1CusuIlQ=";
    let mut before = start_instance(&database.url, &sink.url(), &[old]).await;
    let code = signup_code_via(&before.api(), &sink, "ada@example.com", PASSWORD).await;
    before.stop().await;

    // Rotate: a new current key, the old one kept as previous.
    let after = start_instance(
        &database.url,
        &sink.url(),
        &[
            "--pepper=k2:af0vwBWD3rB1MxphEQnO7kzTfg4UWKuUWzVf7lnZiis=",
            "--previous-peppers=k1:rH7SbhbevAP6130em5tpHN2Z6bhrDge6BKP1CusuIlQ=",
        ],
    )
    .await;
    let verify = after
        .api()
        .verify_signup("ada@example.com", &code, PASSWORD)
        .await;

    assert_eq!(verify.status().as_u16(), 200);
    let reset = after.api().signup("bob@example.com", PASSWORD).await;
    assert_eq!(reset.status().as_u16(), 202);
    let db = sea_orm::Database::connect(&database.url).await.unwrap();
    let bob_code = live_code(&db, "bob@example.com").await;
    assert_eq!(bob_code.key_id, "k2", "new codes use the current key");
}

#[test]
fn codes_are_uniform_six_digits_with_leading_zeros_about_a_tenth_of_the_time() {
    let codes: Vec<OtpCode> = (0..10_000).map(|_| OtpCode::generate()).collect();

    assert!(
        codes
            .iter()
            .all(|c| c.expose().len() == 6 && c.expose().bytes().all(|b| b.is_ascii_digit()))
    );
    let leading_zero = codes.iter().filter(|c| c.expose().starts_with('0')).count();
    // Binomial(10000, 0.1): mean 1000, sd 30; four sd either side.
    assert!(
        (880..=1120).contains(&leading_zero),
        "{leading_zero} of 10000 start with 0"
    );
    let mut per_digit = [0usize; 10];
    for code in &codes {
        for b in code.expose().bytes() {
            per_digit[usize::from(b - b'0')] += 1;
        }
    }
    // 60000 digits: 6000 each, sd about 73.
    assert!(
        per_digit.iter().all(|&n| (5700..=6300).contains(&n)),
        "{per_digit:?}"
    );
}

/// Signs `email` up and verifies it, then asks for a reset code; returns the code.
async fn reset_code_for(app: &crate::helpers::TestApp, email: &str) -> String {
    app.signed_up(email, PASSWORD).await;
    next_reset_code(app, email).await
}

/// Asks for another reset code for `email` (from the owner's own network) and returns it.
async fn next_reset_code(app: &crate::helpers::TestApp, email: &str) -> String {
    let before = app.smtp.messages_to(email).len();
    let owner = app.forwarded_for("192.0.2.1");
    assert_eq!(owner.forgot_password(email).await.status().as_u16(), 202);
    app.smtp
        .wait_for_nth_message_to(email, before + 1)
        .await
        .code()
}

/// Spends `count` wrong guesses at `email`'s reset codes from `from(i)`, five per code (a code
/// dies after five), asking for a new code after each five; returns the live code.
async fn guess_wrong(
    app: &crate::helpers::TestApp,
    email: &str,
    mut code: String,
    count: usize,
    from: impl Fn(usize) -> String,
) -> String {
    for i in 0..count {
        let response = app
            .forwarded_for(&from(i))
            .check_reset_code(email, &other_code(&code))
            .await;
        assert_problem(response, 400, "invalid_code").await;
        if i % 5 == 4 {
            code = next_reset_code(app, email).await;
        }
    }
    code
}

#[tokio::test]
async fn a_stranger_guessing_from_one_network_cannot_lock_the_owner_out_of_the_code() {
    let app = crate::helpers::spawn_app_with(&["--trusted-proxies=127.0.0.1/32"]).await;
    let code = reset_code_for(&app, "ada@example.com").await;
    // 25 wrong guesses from one IPv6 host, a new address of its /64 for each.
    let stranger = |i: usize| format!("2001:db8:1:2::{:x}", i + 1);
    let code = guess_wrong(&app, "ada@example.com", code, 25, stranger).await;

    let stranger_right = app
        .forwarded_for("2001:db8:1:2::ffff")
        .check_reset_code("ada@example.com", &code)
        .await;
    let owner = app.forwarded_for("198.51.100.7");
    let owner_check = owner.check_reset_code("ada@example.com", &code).await;
    let owner_reset = owner
        .reset_password("ada@example.com", &code, "a brand new lantern orbit")
        .await;

    assert_problem(stranger_right, 400, "invalid_code").await;
    assert_eq!(
        owner_check.status().as_u16(),
        204,
        "the stranger spent only their own network's budget"
    );
    assert_eq!(owner_reset.status().as_u16(), 204);
}

#[tokio::test]
async fn a_hundred_wrong_attempts_across_networks_block_even_the_right_code_for_a_day() {
    let app = crate::helpers::spawn_app_with(&["--trusted-proxies=127.0.0.1/32"]).await;
    let mut code = reset_code_for(&app, "ada@example.com").await;
    let networks = [
        "203.0.113.9",
        "2001:db8:aa:1::",
        "198.51.100.20",
        "2001:db8:bb:2::",
    ];
    for (n, network) in networks.iter().enumerate() {
        let from = |i: usize| {
            if network.contains(':') {
                format!("{network}{:x}", i + 1)
            } else {
                (*network).to_owned()
            }
        };
        code = guess_wrong(&app, "ada@example.com", code, 25, from).await;
        let owner = app
            .forwarded_for(&format!("192.0.2.{}", 100 + n))
            .check_reset_code("ada@example.com", &code)
            .await;
        if n < 3 {
            assert_eq!(
                owner.status().as_u16(),
                204,
                "{} wrong attempts are under the ceiling",
                25 * (n + 1)
            );
        } else {
            assert_problem(owner, 400, "invalid_code").await;
        }
    }

    app.instance
        .clock
        .advance(Duration::from_secs(24 * 3600 + 60));
    let fresh = next_reset_code(&app, "ada@example.com").await;
    let next_day = app
        .forwarded_for("192.0.2.200")
        .check_reset_code("ada@example.com", &fresh)
        .await;
    assert_eq!(next_day.status().as_u16(), 204, "a new day, a new ceiling");
}

#[tokio::test]
async fn concurrent_wrong_attempts_never_exceed_the_network_budget_or_the_ceiling() {
    let app = crate::helpers::spawn_app_with(&[
        "--trusted-proxies=127.0.0.1/32",
        "--code-max-attempts=20",
        "--code-daily-failure-budget=3",
        "--code-daily-failure-ceiling=7",
    ])
    .await;
    let code = reset_code_for(&app, "ada@example.com").await;
    let wrong = other_code(&code);
    let db = app.connect_db().await;
    let ada = user_id(&db, "ada@example.com").await;
    let counted = async || {
        let code = otp_codes::Entity::find()
            .filter(otp_codes::Column::UserId.eq(ada))
            .filter(otp_codes::Column::Purpose.eq("reset_password"))
            .filter(otp_codes::Column::RevokedAt.is_null())
            .one(&db)
            .await
            .unwrap()
            .expect("the live reset code")
            .attempts;
        let ceiling = otp_budgets::Entity::find()
            .filter(otp_budgets::Column::UserId.eq(ada))
            .filter(otp_budgets::Column::Purpose.eq("reset_password"))
            .one(&db)
            .await
            .unwrap()
            .unwrap()
            .failures;
        let networks: Vec<(String, i32)> = otp_network_budgets::Entity::find()
            .filter(otp_network_budgets::Column::UserId.eq(ada))
            .filter(otp_network_budgets::Column::Purpose.eq("reset_password"))
            .all(&db)
            .await
            .unwrap()
            .into_iter()
            .map(|row| (row.network, row.failures))
            .collect();
        (code, ceiling, networks)
    };

    // Forty at once from one IPv6 /64 (forty addresses): its budget of 3 holds.
    let one_network = join_all((0..40).map(|i| {
        app.forwarded_for(&format!("2001:db8:7:7::{:x}", i + 1))
            .check_reset_code("ada@example.com", &wrong)
    }))
    .await;
    assert!(one_network.iter().all(|r| r.status().as_u16() == 400));
    let (attempts, ceiling, networks) = counted().await;
    assert_eq!((attempts, ceiling), (3, 3));
    assert_eq!(networks, [("2001:db8:7:7::/64".to_owned(), 3)]);

    // Forty at once from forty networks: the ceiling of 7 holds, each network spent at most
    // one, and the refused ones took nothing.
    let many_networks = join_all((0..40).map(|i| {
        app.forwarded_for(&format!("203.0.113.{}", i + 1))
            .check_reset_code("ada@example.com", &wrong)
    }))
    .await;
    assert!(many_networks.iter().all(|r| r.status().as_u16() == 400));
    let (attempts, ceiling, networks) = counted().await;
    assert_eq!((attempts, ceiling), (7, 7));
    let spent: i32 = networks.iter().map(|(_, failures)| failures).sum();
    assert_eq!(spent, 7, "{networks:?}");
    assert!(networks.iter().all(|(_, failures)| *failures <= 3));

    let right = app
        .forwarded_for("192.0.2.99")
        .check_reset_code("ada@example.com", &code)
        .await;
    assert_problem(right, 400, "invalid_code").await;
}

#[tokio::test]
async fn an_unknown_address_fills_a_network_budget_of_its_own_as_an_account_does() {
    let app = crate::helpers::spawn_app_with(&["--trusted-proxies=127.0.0.1/32"]).await;
    let code = reset_code_for(&app, "ada@example.com").await;
    let db = app.connect_db().await;
    let ada = user_id(&db, "ada@example.com").await;
    let from = app.forwarded_for("203.0.113.5");
    let rows = async || -> Vec<otp_network_budgets::Model> {
        otp_network_budgets::Entity::find()
            .filter(otp_network_budgets::Column::Network.eq("203.0.113.5"))
            .all(&db)
            .await
            .unwrap()
    };

    // One guess at each: each has one row for the network, made by its first guess.
    let known = from
        .check_reset_code("ada@example.com", &other_code(&code))
        .await;
    let unknown = from.check_reset_code("ghost@example.com", "123456").await;
    assert_problem(known, 400, "invalid_code").await;
    assert_problem(unknown, 400, "invalid_code").await;
    let first = rows().await;
    assert_eq!(first.len(), 2, "{first:?}");
    let ghost = first.iter().find(|row| row.user_id != ada).unwrap().user_id;
    assert!(
        !codeward::core::codes::decoy_user_ids().any(|decoy| decoy == ghost),
        "not a decoy's row, shared with every other unknown address"
    );

    // Thirty more at the unknown address: the same row, capped at the network's 25.
    for _ in 0..30 {
        let wrong = from.check_reset_code("ghost@example.com", "123456").await;
        assert_problem(wrong, 400, "invalid_code").await;
    }
    let after = rows().await;
    assert_eq!(after.len(), 2, "{after:?}");
    let ghost_row = after.iter().find(|row| row.user_id == ghost).unwrap();
    assert_eq!(ghost_row.failures, 25);
}
