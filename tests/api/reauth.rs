//! Re-authentication: `request_reauth_code` and `reauthenticate` renew a session's
//! `auth_time` in place, and the recent-authentication window they reopen (seen through
//! `change_password` without `current_password`, for an account without a password).

use entity::users;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use crate::helpers::{
    NEW_PASSWORD, PASSWORD, TestApp, assert_problem, assert_rate_limited, assert_unauthenticated,
    assert_unauthorized, other_code, spawn_app, spawn_app_with,
};
use crate::tokens::{access, part, secs};

const EMAIL: &str = "ada@example.com";

fn refresh_token(session: &Value) -> String {
    session["refresh_token"].as_str().unwrap().to_owned()
}

/// The access token's `auth_time` claim.
fn auth_time(session: &Value) -> i64 {
    part(&access(session), 1)["auth_time"].as_i64().unwrap()
}

/// The server's clock now, in seconds, as the claims count.
fn now_secs(app: &TestApp) -> i64 {
    app.instance.clock.now().timestamp()
}

/// Asserts `claims`' `auth_time` lies within the request's lifetime: between the second taken
/// before it was sent and the one after the answer (a test clock still ticks, and a request
/// may straddle a second).
fn assert_authenticated_during(claims: &Value, before: i64, app: &TestApp) {
    let auth_time = claims["auth_time"].as_i64().expect("auth_time");
    let after = now_secs(app);
    assert!(
        (before..=after).contains(&auth_time),
        "auth_time {auth_time} not within the request, {before}..={after}"
    );
}

async fn json_of(response: reqwest::Response, status: u16, what: &str) -> Value {
    let code = response.status().as_u16();
    let body = response.text().await.unwrap();
    assert_eq!(code, status, "{what}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Asks for a reauthenticate code and returns the one the email carried.
async fn reauth_code(app: &TestApp, session: &Value) -> String {
    let before = app.smtp.messages_to(EMAIL).len();
    let sent = json_of(
        app.request_reauth_code(&access(session)).await,
        202,
        "request_reauth_code",
    )
    .await;
    assert_eq!(sent["purpose"], "reauthenticate");
    assert_eq!(sent["email"], EMAIL);
    app.smtp
        .wait_for_nth_message_to(EMAIL, before + 1)
        .await
        .code()
}

/// Makes the verified account an account without a password, as sign-in by code creates.
async fn remove_password(app: &TestApp) {
    let db = app.connect_db().await;
    users::Entity::update_many()
        .col_expr(
            users::Column::PasswordHash,
            Expr::value(Option::<String>::None),
        )
        .filter(users::Column::Email.eq(EMAIL))
        .exec(&db)
        .await
        .unwrap();
}

#[tokio::test]
async fn reauthenticating_with_the_password_renews_the_same_session_with_a_rotated_pair() {
    // Arrange: signed up by code two minutes ago.
    let app = spawn_app().await;
    let signed_up = app.signed_up(EMAIL, PASSWORD).await;
    let signed_up_at = auth_time(&signed_up);
    app.instance.clock.advance(secs(120));

    // Act
    let before = now_secs(&app);
    let response = app
        .reauthenticate(&access(&signed_up), &json!({"password": PASSWORD}))
        .await;

    // Assert
    let renewed = json_of(response, 200, "reauthenticate").await;
    assert_eq!(
        renewed["session_id"], signed_up["session_id"],
        "same session"
    );
    assert_ne!(refresh_token(&renewed), refresh_token(&signed_up));
    assert_eq!(renewed["token_type"], "Bearer");
    let claims = part(&access(&renewed), 1);
    assert_authenticated_during(&claims, before, &app);
    assert!(auth_time(&renewed) >= signed_up_at + 120);
    assert_eq!(claims["amr"], json!(["pwd"]), "by password");
    assert_eq!(claims["sid"], signed_up["session_id"]);
    // The new refresh token rotates, and keeps the fresh authentication.
    let rotated = json_of(app.refresh(&refresh_token(&renewed)).await, 200, "refresh").await;
    assert_eq!(auth_time(&rotated), auth_time(&renewed), "refresh keeps it");
    assert_eq!(part(&access(&rotated), 1)["amr"], json!(["pwd"]));
    // The old refresh token was used up like a refresh: past the reuse grace it is a replay.
    app.instance.clock.advance(secs(11));
    let replayed = app.refresh(&refresh_token(&signed_up)).await;
    assert_problem(replayed, 401, "invalid_token").await;
}

#[tokio::test]
async fn reauthenticating_with_an_emailed_code_renews_the_session_by_code() {
    // Arrange: signed in by password a while ago.
    let app = spawn_app().await;
    app.signed_up(EMAIL, PASSWORD).await;
    let signed_in = json_of(app.login(EMAIL, PASSWORD).await, 200, "login").await;
    app.instance.clock.advance(secs(300));
    let code = reauth_code(&app, &signed_in).await;

    // Act
    let before = now_secs(&app);
    let response = app
        .reauthenticate(&access(&signed_in), &json!({"code": code}))
        .await;

    // Assert
    let renewed = json_of(response, 200, "reauthenticate").await;
    assert_eq!(renewed["session_id"], signed_in["session_id"]);
    assert_ne!(refresh_token(&renewed), refresh_token(&signed_in));
    let claims = part(&access(&renewed), 1);
    assert_authenticated_during(&claims, before, &app);
    assert_eq!(claims["amr"], json!(["otp"]), "by code");
    let again = app
        .reauthenticate(&access(&renewed), &json!({"code": code}))
        .await;
    assert_problem(again, 400, "invalid_code").await;
    let email = app.smtp.messages_to(EMAIL).pop().unwrap();
    assert!(email.text().contains(&code), "the code went to the account");
}

#[tokio::test]
async fn a_wrong_code_is_invalid_code_and_the_right_one_still_works_after() {
    let app = spawn_app().await;
    let session = app.signed_up(EMAIL, PASSWORD).await;
    let code = reauth_code(&app, &session).await;
    let token = access(&session);

    for (body, why) in [
        (json!({"code": other_code(&code)}), "wrong digits"),
        (json!({"code": "12ab56"}), "not digits"),
        (json!({"code": "1234567"}), "too long"),
    ] {
        let refused = app.reauthenticate(&token, &body).await;
        let problem = assert_problem(refused, 400, "invalid_code").await;
        assert!(
            !problem.to_string().contains(&code),
            "{why}: no code echoed"
        );
    }
    let renewed = app.reauthenticate(&token, &json!({"code": code})).await;

    assert_eq!(
        renewed.status(),
        200,
        "three wrong tries leave the code usable"
    );
}

#[tokio::test]
async fn a_wrong_password_is_wrong_password_and_counts_toward_the_password_delay() {
    let app = spawn_app_with(&["--login-failures-before-delay=5"]).await;
    let session = app.signed_up(EMAIL, PASSWORD).await;
    let token = access(&session);
    let wrong = json!({"password": "not my password at all"});

    // The free failures (5 by default) answer 403 each.
    for attempt in 1..=5 {
        let refused = app.reauthenticate(&token, &wrong).await;
        let problem = assert_problem(refused, 403, "wrong_password").await;
        assert!(problem["detail"].is_string(), "attempt {attempt}");
    }
    let delayed = app
        .reauthenticate(&token, &json!({"password": PASSWORD}))
        .await;

    // Past them, even the right password waits, and so does change_password: one counter.
    assert_rate_limited(delayed, "change-password-failures-per-account").await;
    let change = app.change_password(&token, PASSWORD, NEW_PASSWORD).await;
    assert_rate_limited(change, "change-password-failures-per-account").await;
    app.instance.clock.advance(secs(31));
    let renewed = app
        .reauthenticate(&token, &json!({"password": PASSWORD}))
        .await;
    assert_eq!(
        renewed.status(),
        200,
        "after the delay the right password works"
    );
}

#[tokio::test]
async fn both_or_neither_proof_is_a_validation_failure_naming_both_fields() {
    let app = spawn_app().await;
    let session = app.signed_up(EMAIL, PASSWORD).await;
    let token = access(&session);

    for (body, code, why) in [
        (json!({}), "required", "neither"),
        (
            json!({"password": PASSWORD, "code": "123456"}),
            "conflict",
            "both",
        ),
    ] {
        let refused = app.reauthenticate(&token, &body).await;
        let problem = assert_problem(refused, 422, "validation_failed").await;
        let fields: Vec<&str> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, ["password", "code"], "{why}");
        assert_eq!(problem["errors"][0]["code"], code, "{why}");
    }
    let not_a_string = app.reauthenticate(&token, &json!({"password": 42})).await;
    assert_problem(not_a_string, 400, "invalid_request").await;
}

#[tokio::test]
async fn both_operations_need_an_access_token() {
    let app = spawn_app().await;
    let none = app.post("/v1/reauth/code", &json!({})).await;
    assert_unauthenticated(none, "request_reauth_code without a token").await;
    let forged = app
        .reauthenticate("not-a-token", &json!({"password": PASSWORD}))
        .await;
    assert_unauthorized(forged, "reauthenticate with a bad token").await;
}

#[tokio::test]
async fn a_second_reauth_code_request_within_the_cooldown_is_rate_limited() {
    let app = spawn_app_with(&["--code-resend-cooldown-secs=60"]).await;
    let session = app.signed_up(EMAIL, PASSWORD).await;
    reauth_code(&app, &session).await;

    let again = app.request_reauth_code(&access(&session)).await;

    assert_rate_limited(again, "resend-cooldown").await;
}

#[tokio::test]
async fn the_reauthentication_window_closes_after_the_max_age_and_reauthentication_reopens_it() {
    // Arrange: an account without a password, signed in (by code, at sign-up) 601 s ago.
    let app = spawn_app().await;
    let session = app.signed_up(EMAIL, PASSWORD).await;
    remove_password(&app).await;
    let token = access(&session);
    app.instance.clock.advance(secs(601));

    // Act and assert: too old.
    let stale = app
        .change_password_without_current(&token, NEW_PASSWORD)
        .await;
    assert_problem(stale, 403, "reauthentication_required").await;
    let no_password = app
        .reauthenticate(&token, &json!({"password": PASSWORD}))
        .await;
    assert_problem(no_password, 403, "wrong_password").await;

    // Re-authenticated by code: the window is open again, for this session's tokens.
    let code = reauth_code(&app, &session).await;
    let renewed = json_of(
        app.reauthenticate(&token, &json!({"code": code})).await,
        200,
        "reauthenticate",
    )
    .await;
    app.instance.clock.advance(secs(590));
    let set = app
        .change_password_without_current(&access(&renewed), NEW_PASSWORD)
        .await;
    assert_eq!(set.status(), 204, "{}", set.text().await.unwrap());
    let login = app.login(EMAIL, NEW_PASSWORD).await;
    assert_eq!(login.status(), 200, "the first password works");
}

#[tokio::test]
async fn a_recent_sign_in_is_enough_to_set_a_first_password() {
    let app = spawn_app().await;
    let session = app.signed_up(EMAIL, PASSWORD).await;
    remove_password(&app).await;
    // Just inside the window (the real clock runs on during the test too).
    app.instance.clock.advance(secs(590));

    let set = app
        .change_password_without_current(&access(&session), NEW_PASSWORD)
        .await;

    assert_eq!(set.status(), 204, "{}", set.text().await.unwrap());
}

#[tokio::test]
async fn change_password_without_the_current_one_for_an_account_with_a_password_names_it() {
    let app = spawn_app().await;
    let session = app.signed_up(EMAIL, PASSWORD).await;

    let refused = app
        .change_password_without_current(&access(&session), NEW_PASSWORD)
        .await;

    let problem = assert_problem(refused, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "current_password");
    assert_eq!(problem["errors"][0]["code"], "required");
    let login = app.login(EMAIL, PASSWORD).await;
    assert_eq!(login.status(), 200, "the password did not change");
}
