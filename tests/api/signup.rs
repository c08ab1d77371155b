//! Sign-up, verification and login through HTTP, codes read from the SMTP sink.

use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

use crate::helpers::{
    PASSWORD, assert_problem, assert_unauthenticated, assert_unauthorized, spawn_app,
};

/// What a response reveals: status, the headers a client sees (without per-request ones and
/// `content-length`, which follows the length of the echoed address) and the body with the
/// echoed address removed.
pub async fn observable(response: reqwest::Response) -> (u16, Vec<(String, String)>, Value) {
    let status = response.status().as_u16();
    let mut headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "x-request-id" | "date" | "content-length"))
        .map(|(name, value)| {
            (
                name.to_string(),
                value.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    headers.sort();
    let mut body: Value = response.json().await.unwrap();
    if let Some(object) = body.as_object_mut() {
        object.remove("email");
    }
    (status, headers, body)
}

#[tokio::test]
async fn the_whole_flow_works_signup_email_verify_me_refresh_sessions_logout() {
    let app = crate::helpers::spawn_app_with(&["--code-resend-cooldown-secs=60"]).await;

    // signup → email
    let response = app
        .signup_in_locale("  Ada@Example.COM ", PASSWORD, "es")
        .await;
    assert_eq!(response.status().as_u16(), 202);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let sent: Value = response.json().await.unwrap();
    assert_eq!(
        sent,
        json!({"email": "ada@example.com", "purpose": "verify_email", "code_length": 6, "expires_in": 600, "resend_after": 60})
    );
    let email = app.smtp.wait_for_nth_message_to("ada@example.com", 1).await;
    assert!(
        email.subject().contains("código"),
        "the locale picked the template: {}",
        email.subject()
    );
    let code = email.code();

    // verify → session
    let response = app
        .verify_signup_on_device("ada@example.com", &code, PASSWORD, "Ada's Pixel")
        .await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let session: Value = response.json().await.unwrap();
    let access = session["access_token"].as_str().unwrap().to_owned();
    let refresh = session["refresh_token"].as_str().unwrap().to_owned();
    assert!(
        access.starts_with("eyJ") && access.split('.').count() == 3,
        "a JWS: {access}"
    );
    assert!(refresh.starts_with("cwr_"));
    assert_eq!(session["token_type"], "Bearer");
    assert_eq!(session["expires_in"], 900);
    assert_eq!(session["refresh_expires_in"], 30 * 86_400);
    assert_eq!(session["user"]["email"], "ada@example.com");
    assert_eq!(session["user"]["email_verified"], true);
    assert_eq!(session["user"]["locale"], "es");

    // me
    let me: Value = app.me(&access).await.json().await.unwrap();
    assert_eq!(me, session["user"]);

    // refresh
    let response = app.refresh(&refresh).await;
    assert_eq!(response.status().as_u16(), 200);
    let rotated: Value = response.json().await.unwrap();
    let access = rotated["access_token"].as_str().unwrap().to_owned();
    assert_ne!(rotated["refresh_token"], session["refresh_token"]);
    assert_eq!(rotated["session_id"], session["session_id"]);

    // list sessions
    let sessions: Value = app.list_sessions(&access).await.json().await.unwrap();
    let sessions = sessions.as_array().unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["id"], session["session_id"]);
    assert_eq!(sessions[0]["current"], true);
    assert_eq!(sessions[0]["device_name"], "Ada's Pixel");
    assert_eq!(sessions[0]["ip"], "127.0.0.1");

    // logout
    let response = app.logout(&access).await;
    assert_eq!(response.status().as_u16(), 204);
    let after = app.me(&access).await;
    assert_unauthorized(after, "the access token of a session logged out").await;
    let refresh_after_logout = app
        .refresh(rotated["refresh_token"].as_str().unwrap())
        .await;
    assert_problem(refresh_after_logout, 401, "invalid_token").await;
}

#[tokio::test]
async fn signup_answers_the_same_for_new_unverified_and_verified_addresses() {
    let app = spawn_app().await;
    app.signed_up("verified@example.com", PASSWORD).await;
    app.signup_code("unverified@example.com", PASSWORD).await;

    let mut answers = Vec::new();
    for email in [
        "new@example.com",
        "unverified@example.com",
        "verified@example.com",
    ] {
        let response = app.signup(email, PASSWORD).await;
        answers.push(observable(response).await);
    }

    assert_eq!(answers[0], answers[1], "new vs unverified");
    assert_eq!(answers[0], answers[2], "new vs verified");
    assert_eq!(answers[0].0, 202);
    // What the mailboxes got: codes for the first two, a notice without a code for the third.
    let new = app.smtp.wait_for_nth_message_to("new@example.com", 1).await;
    let unverified = app
        .smtp
        .wait_for_nth_message_to("unverified@example.com", 2)
        .await;
    let verified = app
        .smtp
        .wait_for_nth_message_to("verified@example.com", 2)
        .await;
    assert_eq!(new.code().len(), 6);
    assert_eq!(unverified.code().len(), 6);
    assert!(
        verified.subject().contains("tried to sign up"),
        "{}",
        verified.subject()
    );
    assert!(
        !verified.text().chars().take(6).all(|c| c.is_ascii_digit()),
        "no code for a verified account"
    );
}

#[tokio::test]
async fn resend_answers_the_same_for_any_address_and_only_an_unverified_one_gets_a_code() {
    let app = spawn_app().await;
    app.signed_up("verified@example.com", PASSWORD).await;
    let first_code = app.signup_code("pending@example.com", PASSWORD).await;

    let mut answers = Vec::new();
    for email in [
        "nobody@example.com",
        "pending@example.com",
        "verified@example.com",
    ] {
        let response = app.resend_signup_code(email).await;
        answers.push(observable(response).await);
    }

    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0], answers[2]);
    assert_eq!(answers[0].0, 202);
    let second_code = app
        .smtp
        .wait_for_nth_message_to("pending@example.com", 2)
        .await
        .code();
    // The answers came after the outbox rows were committed: what is not queued now never goes.
    assert!(
        app.outbox_to("nobody@example.com").await.is_empty(),
        "nothing queued for an unknown address"
    );
    assert_eq!(
        app.outbox_to("verified@example.com").await.len(),
        1,
        "a verified account gets nothing on resend"
    );
    assert!(app.smtp.messages_to("nobody@example.com").is_empty());
    assert_eq!(app.smtp.messages_to("verified@example.com").len(), 1);
    // The resend killed the first code.
    if first_code != second_code {
        let old = app
            .verify_signup("pending@example.com", &first_code, PASSWORD)
            .await;
        assert_problem(old, 400, "invalid_code").await;
    }
    let new = app
        .verify_signup("pending@example.com", &second_code, PASSWORD)
        .await;
    assert_eq!(new.status().as_u16(), 200);
}

#[tokio::test]
async fn a_strangers_earlier_signup_never_lets_the_stranger_into_the_account_the_owner_verifies() {
    let app = spawn_app().await;
    let stranger_password = "stranger's own secret phrase 42";
    let owner_password = "the owner's real passphrase";
    // The stranger signs up first with the owner's address; the code goes to the owner's mailbox.
    let response = app.signup("owner@example.com", stranger_password).await;
    assert_eq!(response.status().as_u16(), 202);
    app.smtp
        .wait_for_nth_message_to("owner@example.com", 1)
        .await;
    let stranger_login_before = app.login("owner@example.com", stranger_password).await;
    assert_problem(stranger_login_before, 401, "invalid_credentials").await;

    // The owner signs up and verifies with their own password.
    let code = app.signup_code("owner@example.com", owner_password).await;
    let verified = app
        .verify_signup("owner@example.com", &code, owner_password)
        .await;
    assert_eq!(verified.status().as_u16(), 200);

    let stranger = app.login("owner@example.com", stranger_password).await;
    let owner = app.login("owner@example.com", owner_password).await;
    assert_problem(stranger, 401, "invalid_credentials").await;
    assert_eq!(owner.status().as_u16(), 200);
}

#[tokio::test]
async fn verify_signup_answers_invalid_code_for_every_failure() {
    let app = spawn_app().await;
    app.signed_up("done@example.com", PASSWORD).await;
    let code = app.signup_code("ada@example.com", PASSWORD).await;
    let wrong = if code == "000000" { "000001" } else { "000000" };
    let cases = [
        ("unknown address", "nobody@example.com", code.as_str()),
        (
            "already verified account",
            "done@example.com",
            code.as_str(),
        ),
        ("wrong code", "ada@example.com", wrong),
        ("letters", "ada@example.com", "12a456"),
        ("five digits", "ada@example.com", "12345"),
        ("seven digits", "ada@example.com", "1234567"),
        ("spaces", "ada@example.com", "123 456"),
        ("empty", "ada@example.com", ""),
    ];
    let mut bodies = Vec::new();
    for (why, email, code) in cases {
        let response = app.verify_signup(email, code, PASSWORD).await;

        assert_eq!(response.status().as_u16(), 400, "{why}");
        bodies.push(assert_problem(response, 400, "invalid_code").await);
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "one answer for all: {bodies:?}"
    );
    // The right code still works (a wrong one counted, but the limit is 5).
    let right = app.verify_signup("ada@example.com", &code, PASSWORD).await;
    assert_eq!(right.status().as_u16(), 200);
    let again = app.verify_signup("ada@example.com", &code, PASSWORD).await;
    assert_problem(again, 400, "invalid_code").await;
}

#[tokio::test]
async fn a_weak_password_with_a_wrong_code_is_an_invalid_code_not_a_judged_password() {
    let app = spawn_app().await;
    let code = app.signup_code("ada@example.com", PASSWORD).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };

    let response = app
        .verify_signup("ada@example.com", wrong, "password1")
        .await;

    assert_problem(response, 400, "invalid_code").await;
}

#[tokio::test]
async fn a_password_refused_at_verify_does_not_use_up_the_code() {
    let app = spawn_app().await;
    let code = app.signup_code("ada@example.com", PASSWORD).await;

    let weak = app
        .verify_signup("ada@example.com", &code, "password1")
        .await;
    let body = assert_problem(weak, 422, "validation_failed").await;
    let strong = app.verify_signup("ada@example.com", &code, PASSWORD).await;

    assert_eq!(body["errors"][0]["field"], "password");
    assert_eq!(body["errors"][0]["code"], "too_weak");
    assert_eq!(strong.status().as_u16(), 200);
}

#[tokio::test]
async fn login_answers_the_same_for_unknown_unverified_and_wrong_password() {
    let app = spawn_app().await;
    app.signed_up("ada@example.com", PASSWORD).await;
    app.signup_code("pending@example.com", PASSWORD).await;

    let mut answers = Vec::new();
    for (email, password) in [
        ("nobody@example.com", PASSWORD),
        ("pending@example.com", PASSWORD),
        ("ada@example.com", "not the password at all"),
    ] {
        let response = app.login(email, password).await;
        answers.push(observable(response).await);
    }

    assert_eq!(answers[0].0, 401);
    assert_eq!(answers[0].2["code"], "invalid_credentials");
    assert_eq!(answers[0], answers[1], "unknown vs never verified");
    assert_eq!(answers[0], answers[2], "unknown vs wrong password");
    let right = app.login("ADA@example.com ", PASSWORD).await;
    assert_eq!(right.status().as_u16(), 200);
}

#[tokio::test]
async fn weak_passwords_are_refused_at_signup_with_reasons_and_send_nothing() {
    let app = spawn_app().await;
    let cases = [
        ("short1!", "too_short"),
        ("password", "too_weak"),
        ("12345678", "too_weak"),
        ("ada@example.com", "too_weak"),
        (&*"x".repeat(1025), "too_long"),
    ];
    for (password, code) in cases {
        let response = app.signup("ada@example.com", password).await;

        let body = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(body["errors"][0]["field"], "password", "{password}");
        assert_eq!(body["errors"][0]["code"], code, "{password}: {body}");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    // Answered after any outbox row would have been committed: an empty outbox sends nothing.
    let queued = entity::email_outbox::Entity::find()
        .count(&app.connect_db().await)
        .await
        .unwrap();
    assert_eq!(queued, 0, "no email queued, not even a void one");
    assert!(app.smtp.received().is_empty());
}

/// Bad input of every kind gets its documented 4xx, never a 500.
#[tokio::test]
async fn bad_input_gets_its_documented_4xx_and_never_a_500() {
    let app = spawn_app().await;
    let long_email = format!("{}@example.com", "a".repeat(1988));
    let big_password = "p".repeat(10 * 1024);
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        ("/v1/signup", json!({}), 400, "invalid_request"),
        (
            "/v1/signup",
            json!({"email": "ada@example.com"}),
            400,
            "invalid_request",
        ),
        (
            "/v1/signup",
            json!({"email": 42, "password": PASSWORD}),
            400,
            "invalid_request",
        ),
        (
            "/v1/signup",
            json!({"email": null, "password": PASSWORD}),
            400,
            "invalid_request",
        ),
        (
            "/v1/signup",
            json!({"email": "ada@example.com", "password": null}),
            400,
            "invalid_request",
        ),
        (
            "/v1/signup",
            json!({"email": ["a"], "password": PASSWORD}),
            400,
            "invalid_request",
        ),
        (
            "/v1/signup",
            json!({"email": long_email, "password": PASSWORD}),
            422,
            "validation_failed",
        ),
        (
            "/v1/signup",
            json!({"email": "ada@example.com", "password": big_password}),
            422,
            "validation_failed",
        ),
        (
            "/v1/signup",
            json!({"email": "", "password": ""}),
            422,
            "validation_failed",
        ),
        (
            "/v1/signup",
            json!({"email": "ada@example.com", "password": PASSWORD, "locale": "x".repeat(100)}),
            422,
            "validation_failed",
        ),
        (
            "/v1/signup",
            json!({"email": "ada@exämple.com", "password": "🦀🔐 crab guards the vault 🌙"}),
            202,
            "",
        ),
        (
            "/v1/signup",
            json!({"email": "ädä@exämple.com", "password": PASSWORD}),
            422,
            "validation_failed",
        ),
        (
            "/v1/signup",
            json!({"email": "not-an-address", "password": PASSWORD}),
            422,
            "validation_failed",
        ),
        (
            "/v1/signup/resend",
            json!({"email": null}),
            400,
            "invalid_request",
        ),
        (
            "/v1/signup/resend",
            json!({"email": ""}),
            422,
            "validation_failed",
        ),
        (
            "/v1/signup/verify",
            json!({"email": "ada@example.com", "password": PASSWORD}),
            400,
            "invalid_request",
        ),
        (
            "/v1/signup/verify",
            json!({"email": "ada@example.com", "code": 123456, "password": PASSWORD}),
            400,
            "invalid_request",
        ),
        (
            "/v1/signup/verify",
            json!({"email": "ada@example.com", "code": "123456", "password": PASSWORD, "device_name": "d".repeat(129)}),
            422,
            "validation_failed",
        ),
        (
            "/v1/signup/verify",
            json!({"email": "ada@example.com", "code": "１２３４５６", "password": PASSWORD}),
            400,
            "invalid_code",
        ),
        (
            "/v1/login",
            json!({"email": "ada@example.com"}),
            400,
            "invalid_request",
        ),
        (
            "/v1/login",
            json!({"email": "ada@example.com", "password": big_password}),
            422,
            "validation_failed",
        ),
        (
            "/v1/login",
            json!({"email": long_email, "password": PASSWORD}),
            422,
            "validation_failed",
        ),
        (
            "/v1/login",
            json!({"email": "ada@example.com", "password": ""}),
            401,
            "invalid_credentials",
        ),
        ("/v1/token/refresh", json!({}), 400, "invalid_request"),
        (
            "/v1/token/refresh",
            json!({"refresh_token": null}),
            400,
            "invalid_request",
        ),
        (
            "/v1/token/refresh",
            json!({"refresh_token": ""}),
            401,
            "invalid_token",
        ),
        (
            "/v1/token/refresh",
            json!({"refresh_token": "cwa_not-a-refresh-token"}),
            401,
            "invalid_token",
        ),
    ];
    for (path, body, status, code) in cases {
        let response = app.post(path, &body).await;

        let got = response.status().as_u16();
        assert_eq!(got, status, "{path} {body}");
        if !code.is_empty() {
            assert_problem(response, status, code).await;
        }
    }
}

#[tokio::test]
async fn authenticated_operations_refuse_missing_and_malformed_tokens() {
    let app = spawn_app().await;
    // No bearer token (nothing, an empty one, another scheme) is told to sign in; a token that
    // is not valid is told so (`error="invalid_token"`), so the app knows to refresh.
    let sent = true;
    let cases: [(&str, &str, Option<&str>, bool); 5] = [
        ("GET", "/v1/me", None, !sent),
        ("GET", "/v1/me", Some("Bearer"), !sent),
        ("GET", "/v1/sessions", Some("Bearer cwa_garbage"), sent),
        ("POST", "/v1/logout", Some("Basic YWRhOnB3"), !sent),
        (
            "DELETE",
            "/v1/sessions",
            Some("Bearer cwr_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            sent,
        ),
    ];
    for (method, path, authorization, token_sent) in cases {
        let mut request = app.client.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            app.url(path),
        );
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }

        let response = request.send().await.unwrap();

        if token_sent {
            assert_unauthorized(response, path).await;
        } else {
            assert_unauthenticated(response, path).await;
        }
    }
}

#[tokio::test]
async fn passwords_are_stored_as_argon2id_with_the_configured_parameters() {
    // The real parameters, since they are what is under test here.
    let app =
        crate::helpers::spawn_app_with(&["--argon2-memory-kib=19456", "--argon2-iterations=2"])
            .await;
    app.signed_up("ada@example.com", PASSWORD).await;
    let db = app.connect_db().await;

    let user = entity::users::Entity::find()
        .filter(entity::users::Column::Email.eq("ada@example.com"))
        .one(&db)
        .await
        .unwrap()
        .expect("user");

    let hash = user.password_hash.expect("a bound password");
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert!(!hash.contains(PASSWORD));
}
