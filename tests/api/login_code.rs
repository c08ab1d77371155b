//! Sign-in by emailed code through HTTP, codes read from the SMTP sink.

use entity::users;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::Value;

use crate::helpers::{PASSWORD, TestApp, assert_problem, other_code, spawn_app, spawn_app_with};
use crate::signup::observable;
use crate::tokens::part;

/// Asks for a login code for `email` and returns the code the email carried.
async fn login_code(app: &TestApp, email: &str, create_account: Option<bool>) -> String {
    let before = app.smtp.messages_to(email).len();
    let response = app.request_login_code(email, create_account).await;
    assert_eq!(response.status().as_u16(), 202);
    app.smtp
        .wait_for_nth_message_to(email, before + 1)
        .await
        .code()
}

/// The account row of `email`, if there is one.
async fn user_row(app: &TestApp, email: &str) -> Option<users::Model> {
    users::Entity::find()
        .filter(users::Column::Email.eq(email))
        .one(&app.connect_db().await)
        .await
        .unwrap()
}

async fn signed_in(response: reqwest::Response) -> Value {
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_verified_account_signs_in_with_a_login_code_and_the_token_says_otp() {
    let app = spawn_app().await;
    app.signed_up("ada@example.com", PASSWORD).await;

    let response = app.request_login_code("ada@example.com", None).await;
    assert_eq!(response.status().as_u16(), 202);
    let sent: Value = response.json().await.unwrap();
    assert_eq!(sent["purpose"], "login");
    let code = app
        .smtp
        .wait_for_nth_message_to("ada@example.com", 2)
        .await
        .code();
    let session = signed_in(app.verify_login_code("ada@example.com", &code).await).await;

    let claims = part(session["access_token"].as_str().unwrap(), 1);
    assert_eq!(claims["amr"], serde_json::json!(["otp"]));
    assert_eq!(session["user"]["email_verified"], true);
    assert_eq!(session["user"]["has_password"], true);
}

#[tokio::test]
async fn an_unverified_account_gets_a_login_code_and_using_it_verifies_the_address() {
    let app = spawn_app().await;
    app.signup_code("ada@example.com", PASSWORD).await;

    let code = login_code(&app, "ada@example.com", None).await;
    let session = signed_in(app.verify_login_code("ada@example.com", &code).await).await;

    assert_eq!(session["user"]["email_verified"], true);
    assert_eq!(
        session["user"]["has_password"], false,
        "signup binds no password"
    );
    let row = user_row(&app, "ada@example.com").await.unwrap();
    assert!(row.email_verified_at.is_some());
    assert!(row.password_hash.is_none());
}

#[tokio::test]
async fn an_unknown_address_with_create_account_gets_a_verified_account_without_a_password() {
    let app = spawn_app().await;

    let code = login_code(&app, "new@example.com", Some(true)).await;
    let pending = user_row(&app, "new@example.com").await.unwrap();
    assert!(
        pending.email_verified_at.is_none(),
        "unverified until the code is used"
    );
    let session = signed_in(app.verify_login_code("new@example.com", &code).await).await;

    assert_eq!(session["user"]["email_verified"], true);
    assert_eq!(session["user"]["has_password"], false);
    let me: Value = app
        .me(session["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["has_password"], false);
    let row = user_row(&app, "new@example.com").await.unwrap();
    assert!(row.password_hash.is_none());
    assert!(row.email_verified_at.is_some());
}

#[tokio::test]
async fn password_login_for_an_account_without_a_password_is_a_wrong_password() {
    let app = spawn_app().await;
    let code = login_code(&app, "new@example.com", Some(true)).await;
    signed_in(app.verify_login_code("new@example.com", &code).await).await;

    let response = app.login("new@example.com", PASSWORD).await;
    let without_password = observable_problem(response, 401).await;
    app.signed_up("ada@example.com", PASSWORD).await;
    let response = app
        .login("ada@example.com", "not the password at all")
        .await;
    let wrong_password = observable_problem(response, 401).await;

    assert_eq!(without_password, wrong_password);
    assert_eq!(without_password.2["code"], "invalid_credentials");
}

/// A problem answer as a client sees it, after checking its status.
async fn observable_problem(
    response: reqwest::Response,
    status: u16,
) -> (u16, Vec<(String, String)>, Value) {
    assert_eq!(response.status().as_u16(), status);
    observable(response).await
}

#[tokio::test]
async fn an_unknown_address_without_create_account_gets_nothing_and_the_same_202() {
    let app = spawn_app().await;
    app.signed_up("ada@example.com", PASSWORD).await;

    for create_account in [None, Some(false)] {
        let known = app
            .request_login_code("ada@example.com", create_account)
            .await;
        let unknown = app
            .request_login_code("bob@example.com", create_account)
            .await;
        assert_eq!(
            observable(known).await,
            observable(unknown).await,
            "create_account {create_account:?}"
        );
    }
    // And with create_account, a known and an unknown address look alike too.
    let known = app.request_login_code("ada@example.com", Some(true)).await;
    let unknown = app
        .request_login_code("carol@example.com", Some(true))
        .await;
    assert_eq!(observable(known).await, observable(unknown).await);

    assert!(
        app.outbox_to("bob@example.com").await.is_empty(),
        "nothing sent"
    );
    assert!(
        user_row(&app, "bob@example.com").await.is_none(),
        "nothing created"
    );
    let code = app
        .smtp
        .wait_for_nth_message_to("carol@example.com", 1)
        .await
        .code();
    let response = app.verify_login_code("bob@example.com", &code).await;
    assert_problem(response, 400, "invalid_code").await;
}

#[tokio::test]
async fn while_signups_are_closed_neither_signup_nor_create_account_sends_or_creates_anything() {
    let app = spawn_app_with(&["--signup-open=false"]).await;

    let signup = app.signup("ada@example.com", PASSWORD).await;
    let create = app.request_login_code("bob@example.com", Some(true)).await;

    assert_eq!(signup.status().as_u16(), 202);
    assert_eq!(create.status().as_u16(), 202);
    let create: Value = create.json().await.unwrap();
    assert_eq!(create["purpose"], "login");
    for email in ["ada@example.com", "bob@example.com"] {
        assert!(
            app.outbox_to(email).await.is_empty(),
            "nothing sent to {email}"
        );
        assert!(
            user_row(&app, email).await.is_none(),
            "no account for {email}"
        );
    }
    let users = users::Entity::find()
        .count(&app.connect_db().await)
        .await
        .unwrap();
    assert_eq!(users, 0);
}

#[tokio::test]
async fn while_signups_are_closed_existing_accounts_still_sign_in_by_code() {
    let app = spawn_app().await;
    app.signed_up("ada@example.com", PASSWORD).await;
    let closed = crate::helpers::start_instance(
        &app.database.url,
        &app.smtp.url(),
        &["--signup-open=false"],
    )
    .await;
    let api = closed.api();

    let response = api.request_login_code("ada@example.com", Some(true)).await;
    assert_eq!(response.status().as_u16(), 202);
    let code = app
        .smtp
        .wait_for_nth_message_to("ada@example.com", 2)
        .await
        .code();

    signed_in(api.verify_login_code("ada@example.com", &code).await).await;
}

#[tokio::test]
async fn a_wrong_an_expired_or_a_used_login_code_is_an_invalid_code() {
    let app = spawn_app().await;
    app.signed_up("ada@example.com", PASSWORD).await;

    let code = login_code(&app, "ada@example.com", None).await;
    let wrong = app
        .verify_login_code("ada@example.com", &other_code(&code))
        .await;
    assert_problem(wrong, 400, "invalid_code").await;
    let malformed = app.verify_login_code("ada@example.com", "12ab").await;
    assert_problem(malformed, 400, "invalid_code").await;
    signed_in(app.verify_login_code("ada@example.com", &code).await).await;
    let used = app.verify_login_code("ada@example.com", &code).await;
    assert_problem(used, 400, "invalid_code").await;

    let code = login_code(&app, "ada@example.com", None).await;
    app.instance
        .clock
        .advance(std::time::Duration::from_secs(601));
    let expired = app.verify_login_code("ada@example.com", &code).await;
    assert_problem(expired, 400, "invalid_code").await;
}

#[tokio::test]
async fn a_signup_code_is_not_a_login_code() {
    let app = spawn_app().await;
    let code = app.signup_code("ada@example.com", PASSWORD).await;

    let response = app.verify_login_code("ada@example.com", &code).await;

    assert_problem(response, 400, "invalid_code").await;
}

#[tokio::test]
async fn fifty_concurrent_right_verifications_sign_in_exactly_once() {
    let app = spawn_app().await;
    app.signed_up("ada@example.com", PASSWORD).await;
    let code = login_code(&app, "ada@example.com", None).await;

    let attempts = (0..50).map(|_| app.verify_login_code("ada@example.com", &code));
    let answers = futures::future::join_all(attempts).await;

    let statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 400).count(),
        49,
        "{statuses:?}"
    );
}
