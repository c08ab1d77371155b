//! Password recovery by code and password change, codes read from the SMTP sink.

use std::time::Duration;

use entity::{otp_codes, users};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use crate::helpers::{
    NEW_PASSWORD, PASSWORD, TestApp, assert_problem, fresh_database, other_code, signup_code_via,
    spawn_app, start_instance,
};
use crate::smtp::SmtpSink;

/// Asks for a reset code for `email` and returns it, read from the email.
async fn reset_code(app: &TestApp, email: &str) -> String {
    let before = app.smtp.messages_to(email).len();
    let response = app.forgot_password(email).await;
    assert_eq!(response.status().as_u16(), 202);
    let message = app.smtp.wait_for_nth_message_to(email, before + 1).await;
    assert!(
        message.subject().contains("password reset code"),
        "{}",
        message.subject()
    );
    message.code()
}

#[tokio::test]
async fn forgot_check_reset_then_login_with_the_new_password_and_old_tokens_die() {
    let app = spawn_app().await;
    let before: Value = app.signed_up("ada@example.com", PASSWORD).await;
    let second_device: Value = app
        .login("ada@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();

    let code = reset_code(&app, "ada@example.com").await;
    let check = app.check_reset_code("ada@example.com", &code).await;
    assert_eq!(check.status().as_u16(), 204);
    let check_again = app.check_reset_code("ada@example.com", &code).await;
    assert_eq!(
        check_again.status().as_u16(),
        204,
        "checking does not use the code up"
    );
    let response = app
        .reset_password("ada@example.com", &code, NEW_PASSWORD)
        .await;
    assert_eq!(response.status().as_u16(), 204);
    assert_eq!(response.headers()["cache-control"], "no-store");

    assert_eq!(
        app.login("ada@example.com", NEW_PASSWORD)
            .await
            .status()
            .as_u16(),
        200
    );
    assert_problem(
        app.login("ada@example.com", PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
    for session in [&before, &second_device] {
        let access = session["access_token"].as_str().unwrap();
        assert_problem(app.me(access).await, 401, "unauthorized").await;
        let refresh = app
            .refresh(session["refresh_token"].as_str().unwrap())
            .await;
        assert_problem(refresh, 401, "invalid_token").await;
    }
    let notice = app.smtp.wait_for_nth_message_to("ada@example.com", 3).await;
    assert!(
        notice.subject().contains("password was changed"),
        "{}",
        notice.subject()
    );
    assert!(
        notice.text().contains("IP address: 127.0.0.1"),
        "{}",
        notice.text()
    );
}

#[tokio::test]
async fn a_reset_code_works_once() {
    let app = spawn_app().await;
    app.signed_up("ada@example.com", PASSWORD).await;
    let code = reset_code(&app, "ada@example.com").await;

    let first = app
        .reset_password("ada@example.com", &code, NEW_PASSWORD)
        .await;
    let second = app
        .reset_password("ada@example.com", &code, "yet another quiet harbor")
        .await;

    assert_eq!(first.status().as_u16(), 204);
    assert_problem(second, 400, "invalid_code").await;
    assert_eq!(
        app.login("ada@example.com", NEW_PASSWORD)
            .await
            .status()
            .as_u16(),
        200
    );
}

#[tokio::test]
async fn after_five_wrong_codes_the_reset_code_is_dead() {
    let app = spawn_app().await;
    app.signed_up("ada@example.com", PASSWORD).await;
    let code = reset_code(&app, "ada@example.com").await;
    let wrong = other_code(&code);
    for attempt in 0..5 {
        // Wrong codes count whether they are checked or used.
        let response = if attempt % 2 == 0 {
            app.check_reset_code("ada@example.com", &wrong).await
        } else {
            app.reset_password("ada@example.com", &wrong, NEW_PASSWORD)
                .await
        };
        assert_problem(response, 400, "invalid_code").await;
    }

    let right = app
        .reset_password("ada@example.com", &code, NEW_PASSWORD)
        .await;

    assert_problem(right, 400, "invalid_code").await;
    assert_eq!(
        app.login("ada@example.com", PASSWORD)
            .await
            .status()
            .as_u16(),
        200,
        "password unchanged"
    );
}

#[tokio::test]
async fn a_verify_email_code_never_resets_a_password() {
    let app = spawn_app().await;
    let signup_code = app.signup_code("ada@example.com", PASSWORD).await;

    let response = app
        .reset_password("ada@example.com", &signup_code, NEW_PASSWORD)
        .await;

    assert_problem(response, 400, "invalid_code").await;
    let check = app.check_reset_code("ada@example.com", &signup_code).await;
    assert_problem(check, 400, "invalid_code").await;
}

#[tokio::test]
async fn user_a_s_code_with_user_b_s_email_fails() {
    let app = spawn_app().await;
    app.signed_up("ada@example.com", PASSWORD).await;
    app.signed_up("bob@example.com", PASSWORD).await;
    let ada_code = reset_code(&app, "ada@example.com").await;
    reset_code(&app, "bob@example.com").await;

    let response = app
        .reset_password("bob@example.com", &ada_code, NEW_PASSWORD)
        .await;

    assert_problem(response, 400, "invalid_code").await;
    assert_eq!(
        app.login("bob@example.com", PASSWORD)
            .await
            .status()
            .as_u16(),
        200
    );
}

#[tokio::test]
async fn an_expired_reset_code_fails() {
    let app = spawn_app().await;
    app.signed_up("ada@example.com", PASSWORD).await;
    let code = reset_code(&app, "ada@example.com").await;

    app.instance.clock.advance(Duration::from_secs(601));

    assert_problem(
        app.reset_password("ada@example.com", &code, NEW_PASSWORD)
            .await,
        400,
        "invalid_code",
    )
    .await;
}

#[tokio::test]
async fn a_new_reset_code_kills_the_older_one() {
    let app = spawn_app().await;
    app.signed_up("ada@example.com", PASSWORD).await;
    let first = reset_code(&app, "ada@example.com").await;
    let second = reset_code(&app, "ada@example.com").await;

    if first != second {
        assert_problem(
            app.reset_password("ada@example.com", &first, NEW_PASSWORD)
                .await,
            400,
            "invalid_code",
        )
        .await;
    }
    assert_eq!(
        app.reset_password("ada@example.com", &second, NEW_PASSWORD)
            .await
            .status()
            .as_u16(),
        204
    );
}

#[tokio::test]
async fn an_unknown_address_gets_the_same_answer_and_no_code_or_email() {
    let app = spawn_app().await;
    app.signed_up("known@example.com", PASSWORD).await;

    let known = app.forgot_password("known@example.com").await;
    let unknown = app.forgot_password("ghost@example.com").await;

    let shape = |response: &reqwest::Response| {
        let mut headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .filter(|(name, _)| !matches!(name.as_str(), "x-request-id" | "date"))
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        headers.sort();
        (response.status().as_u16(), headers)
    };
    // Same length on purpose, so even Content-Length must match.
    assert_eq!(shape(&known), shape(&unknown));
    let mut known: Value = known.json().await.unwrap();
    let mut unknown: Value = unknown.json().await.unwrap();
    assert_eq!(known["email"], "known@example.com");
    assert_eq!(unknown["email"], "ghost@example.com");
    known["email"] = Value::Null;
    unknown["email"] = Value::Null;
    assert_eq!(known, unknown);
    assert_eq!(known["purpose"], "reset_password");

    app.smtp
        .wait_for_nth_message_to("known@example.com", 2)
        .await;
    let db = app.connect_db().await;
    let ghost_codes = otp_codes::Entity::find()
        .filter(otp_codes::Column::Email.eq("ghost@example.com"))
        .all(&db)
        .await
        .unwrap();
    assert!(ghost_codes.is_empty());
    let ghost = entity::users::Entity::find()
        .filter(entity::users::Column::Email.eq("ghost@example.com"))
        .one(&db)
        .await
        .unwrap();
    assert!(
        ghost.is_none(),
        "no account was created for the unknown address"
    );
    let outbox = entity::email_outbox::Entity::find()
        .filter(entity::email_outbox::Column::Recipient.eq("ghost@example.com"))
        .all(&db)
        .await
        .unwrap();
    assert!(
        outbox.is_empty(),
        "no email was queued for the unknown address"
    );
    // Nothing queued, nothing sent: this holds now, not only after a wait.
    assert!(app.smtp.messages_to("ghost@example.com").is_empty());
    // What the request wrote instead, so that it cost what the known one did: a void outbox
    // row and a code born revoked, neither holding the address or a code.
    let void = entity::email_outbox::Entity::find()
        .filter(entity::email_outbox::Column::Status.eq(entity::email_outbox::Status::Void))
        .all(&db)
        .await
        .unwrap();
    assert_eq!(void.len(), 1);
    assert_eq!((void[0].recipient.as_str(), &void[0].code), ("", &None));
    let void_codes = otp_codes::Entity::find()
        .filter(otp_codes::Column::Email.eq(""))
        .filter(otp_codes::Column::UserId.is_not_in(codeward::core::codes::decoy_user_ids()))
        .all(&db)
        .await
        .unwrap();
    assert_eq!(void_codes.len(), 1);
    assert!(void_codes[0].revoked_at.is_some(), "born revoked");
}

#[tokio::test]
async fn a_reset_also_verifies_an_unverified_address() {
    let app = spawn_app().await;
    app.signup_code("ada@example.com", PASSWORD).await;
    let code = reset_code(&app, "ada@example.com").await;

    assert_eq!(
        app.reset_password("ada@example.com", &code, NEW_PASSWORD)
            .await
            .status()
            .as_u16(),
        204
    );

    let session: Value = app
        .login("ada@example.com", NEW_PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(session["user"]["email_verified"], true);
}

#[tokio::test]
async fn weak_passwords_are_refused_with_reasons_at_reset_and_the_code_survives() {
    let app = spawn_app().await;
    app.signed_up("ada.lovelace@example.com", PASSWORD).await;
    let code = reset_code(&app, "ada.lovelace@example.com").await;
    let too_long = "correct horse ".repeat(80);
    let cases = [
        ("weak", "password1", "too_weak"),
        ("all-numeric", "20261122", "too_weak"),
        ("common", "iloveyou", "too_weak"),
        ("the email itself", "ada.lovelace@example.com", "too_weak"),
        ("too short", "x7#Kq", "too_short"),
        ("empty", "", "too_short"),
        ("over-long", too_long.as_str(), "too_long"),
    ];
    for (why, password, reason) in cases {
        let response = app
            .reset_password("ada.lovelace@example.com", &code, password)
            .await;

        let body = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(body["errors"][0]["field"], "new_password", "{why}");
        assert_eq!(body["errors"][0]["code"], reason, "{why}: {body}");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| m.len() > 10),
            "{why}"
        );
    }

    let accepted = app
        .reset_password("ada.lovelace@example.com", &code, NEW_PASSWORD)
        .await;
    assert_eq!(
        accepted.status().as_u16(),
        204,
        "the code survived every refused reset"
    );
}

#[tokio::test]
async fn change_password_checks_the_current_one_keeps_this_session_and_ends_the_others() {
    let app = spawn_app().await;
    let this: Value = app.signed_up("ada@example.com", PASSWORD).await;
    let other: Value = app
        .login("ada@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let access = this["access_token"].as_str().unwrap();
    let change = |current: &str, new: &str| app.change_password(access, current, new);

    let wrong = change("not my password", NEW_PASSWORD).await;
    assert_problem(wrong, 403, "wrong_password").await;
    for (new, reason) in [
        ("12345678", "too_weak"),
        ("short", "too_short"),
        ("ada@example.com", "too_weak"),
    ] {
        let body = assert_problem(change(PASSWORD, new).await, 422, "validation_failed").await;
        assert_eq!(body["errors"][0]["field"], "new_password");
        assert_eq!(body["errors"][0]["code"], reason, "{new}");
    }
    let changed = change(PASSWORD, NEW_PASSWORD).await;

    assert_eq!(changed.status().as_u16(), 204);
    assert_eq!(
        app.me(access).await.status().as_u16(),
        200,
        "this session stays"
    );
    let other_access = other["access_token"].as_str().unwrap();
    assert_problem(app.me(other_access).await, 401, "unauthorized").await;
    assert_eq!(
        app.login("ada@example.com", NEW_PASSWORD)
            .await
            .status()
            .as_u16(),
        200
    );
    let notice = app.smtp.wait_for_nth_message_to("ada@example.com", 2).await;
    assert!(notice.subject().contains("password was changed"));
    let unauthenticated = app
        .post(
            "/v1/password/change",
            &json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
        )
        .await;
    assert_problem(unauthenticated, 401, "unauthorized").await;
}

#[tokio::test]
async fn a_reset_code_issued_before_a_password_change_no_longer_works() {
    let app = spawn_app().await;
    let session: Value = app.signed_up("ada@example.com", PASSWORD).await;
    let code = reset_code(&app, "ada@example.com").await;
    let changed = app
        .change_password(
            session["access_token"].as_str().unwrap(),
            PASSWORD,
            NEW_PASSWORD,
        )
        .await;
    assert_eq!(changed.status().as_u16(), 204);

    let response = app
        .reset_password("ada@example.com", &code, "yet another quiet harbor")
        .await;

    assert_problem(response, 400, "invalid_code").await;
    assert_eq!(
        app.login("ada@example.com", NEW_PASSWORD)
            .await
            .status()
            .as_u16(),
        200
    );
}

#[tokio::test]
async fn reset_requests_with_missing_or_malformed_parts_are_refused() {
    let app = spawn_app().await;
    app.signed_up("ada@example.com", PASSWORD).await;
    let code = reset_code(&app, "ada@example.com").await;
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "missing code",
            json!({"email": "ada@example.com", "new_password": NEW_PASSWORD}),
            400,
            "invalid_request",
        ),
        (
            "missing password",
            json!({"email": "ada@example.com", "code": code}),
            400,
            "invalid_request",
        ),
        (
            "missing email",
            json!({"code": code, "new_password": NEW_PASSWORD}),
            400,
            "invalid_request",
        ),
        (
            "null code",
            json!({"email": "ada@example.com", "code": null, "new_password": NEW_PASSWORD}),
            400,
            "invalid_request",
        ),
        (
            "numeric code",
            json!({"email": "ada@example.com", "code": 123456, "new_password": NEW_PASSWORD}),
            400,
            "invalid_request",
        ),
        (
            "letters",
            json!({"email": "ada@example.com", "code": "12ab56", "new_password": NEW_PASSWORD}),
            400,
            "invalid_code",
        ),
        (
            "five digits",
            json!({"email": "ada@example.com", "code": "12345", "new_password": NEW_PASSWORD}),
            400,
            "invalid_code",
        ),
        (
            "seven digits",
            json!({"email": "ada@example.com", "code": "1234567", "new_password": NEW_PASSWORD}),
            400,
            "invalid_code",
        ),
        (
            "spaces",
            json!({"email": "ada@example.com", "code": " 12345", "new_password": NEW_PASSWORD}),
            400,
            "invalid_code",
        ),
        (
            "inner space",
            json!({"email": "ada@example.com", "code": "123 456", "new_password": NEW_PASSWORD}),
            400,
            "invalid_code",
        ),
        (
            "bad email",
            json!({"email": "ada", "code": code, "new_password": NEW_PASSWORD}),
            422,
            "validation_failed",
        ),
        (
            "check without code",
            json!({"email": "ada@example.com"}),
            400,
            "invalid_request",
        ),
    ];
    for (why, body, status, problem) in cases {
        let path = if why.starts_with("check") {
            "/v1/password/reset/check"
        } else {
            "/v1/password/reset"
        };

        let response = app.post(path, &body).await;

        assert_eq!(response.status().as_u16(), status, "{why}");
        assert_problem(response, status, problem).await;
    }
    // None of that used up or locked the code: malformed codes are not attempts.
    assert_eq!(
        app.reset_password("ada@example.com", &code, NEW_PASSWORD)
            .await
            .status()
            .as_u16(),
        204
    );
}

/// The stored password hash (a PHC string) of the account with this address.
async fn stored_hash(db: &DatabaseConnection, email: &str) -> String {
    users::Entity::find()
        .filter(users::Column::Email.eq(email))
        .one(db)
        .await
        .unwrap()
        .and_then(|user| user.password_hash)
        .expect("a password hash")
}

#[tokio::test]
async fn a_hash_made_with_other_argon2_parameters_is_rehashed_at_the_next_sign_in() {
    let database = fresh_database().await;
    let sink = SmtpSink::start();
    let cheap = ["--argon2-memory-kib=8", "--argon2-iterations=1"];
    let mut before = start_instance(&database.url, &sink.url(), &cheap).await;
    let code = signup_code_via(&before.api(), &sink, "ada@example.com", PASSWORD).await;
    let verified = before
        .api()
        .verify_signup("ada@example.com", &code, PASSWORD)
        .await;
    assert_eq!(verified.status().as_u16(), 200);
    before.stop().await;
    let db = sea_orm::Database::connect(&database.url).await.unwrap();
    let old = stored_hash(&db, "ada@example.com").await;
    assert!(old.contains("$m=8,t=1,p=1$"), "{old}");

    // The operator raises the cost: the next instance runs other parameters.
    let stronger = ["--argon2-memory-kib=1024", "--argon2-iterations=2"];
    let after = start_instance(&database.url, &sink.url(), &stronger).await;
    let login = after.api().login("ada@example.com", PASSWORD).await;

    assert_eq!(login.status().as_u16(), 200);
    let new = stored_hash(&db, "ada@example.com").await;
    assert!(new.contains("$m=1024,t=2,p=1$"), "{new}");
    let again = after.api().login("ada@example.com", PASSWORD).await;
    assert_eq!(
        again.status().as_u16(),
        200,
        "the new hash holds the password"
    );
    let wrong = after.api().login("ada@example.com", NEW_PASSWORD).await;
    assert_problem(wrong, 401, "invalid_credentials").await;
}

/// How many passwords the server has hashed or verified so far, from `/metrics`.
async fn hashes_so_far(app: &TestApp) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix("codeward_password_hash_wait_seconds_count "))
        .map_or(0.0, |n| n.trim().parse().unwrap())
}

#[tokio::test]
async fn a_flood_of_wrong_reset_codes_never_hashes_and_never_fills_the_hashing_queue() {
    let app = crate::helpers::spawn_app_with(&[
        "--password-hash-queue=1",
        "--argon2-memory-kib=19456",
        "--argon2-iterations=2",
    ])
    .await;
    let code = {
        app.signed_up("ada@example.com", PASSWORD).await;
        reset_code(&app, "ada@example.com").await
    };
    let before = hashes_so_far(&app).await;

    let flood =
        (0..30).map(|_| app.reset_password("ada@example.com", &other_code(&code), NEW_PASSWORD));
    let responses = futures::future::join_all(flood).await;

    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert!(statuses.iter().all(|&s| s == 400), "{statuses:?}");
    assert_eq!(
        hashes_so_far(&app).await,
        before,
        "a wrong code costs no hash"
    );
}
