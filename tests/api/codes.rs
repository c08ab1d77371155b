//! The code engine under attack and over time: concurrent guesses, single use, purposes,
//! users, resends, expiry, the daily budget and pepper rotation.

use std::time::Duration;

use codeward::core::codes::CodeEngine;
use codeward::domain::{OtpCode, Purpose};
use entity::{otp_budgets, otp_codes, users};
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

    let as_reset = engine
        .attempt(
            &db,
            now,
            Some(ada),
            Purpose::ResetPassword,
            &OtpCode::parse(&ada_code).unwrap(),
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
async fn a_resend_kills_the_older_code_and_keeps_the_failure_budget() {
    let app = spawn_app().await;
    let first = app.signup_code("ada@example.com", PASSWORD).await;
    for _ in 0..3 {
        let wrong = app
            .verify_signup("ada@example.com", &other_code(&first), PASSWORD)
            .await;
        assert_eq!(wrong.status().as_u16(), 400);
    }

    let resend = app.resend_signup_code("ada@example.com").await;
    assert_eq!(resend.status().as_u16(), 202);
    let second = app
        .smtp
        .wait_for_nth_message_to("ada@example.com", 2)
        .await
        .code();

    let db = app.connect_db().await;
    let ada = user_id(&db, "ada@example.com").await;
    let budget = otp_budgets::Entity::find()
        .filter(otp_budgets::Column::UserId.eq(ada))
        .filter(otp_budgets::Column::Purpose.eq("verify_email"))
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(budget.failures, 3, "a new code does not reset the budget");
    assert_eq!(
        live_code(&db, "ada@example.com").await.attempts,
        0,
        "the new code has its own attempts"
    );
    if first != second {
        let old = app.verify_signup("ada@example.com", &first, PASSWORD).await;
        assert_problem(old, 400, "invalid_code").await;
    }
    let new = app
        .verify_signup("ada@example.com", &second, PASSWORD)
        .await;
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
