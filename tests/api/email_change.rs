//! Email change through HTTP: a code to the new address, the switch, the notices, the race
//! for one address, and the recent authentication it needs. Codes come from the SMTP sink.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{
    PASSWORD, TestApp, assert_problem, assert_unauthorized, spawn_app, spawn_app_with,
};

/// What a response shows a client: status, headers (without per-request ones and
/// `content-length`, which follows the echoed address) and the body without the address.
async fn observable(response: reqwest::Response) -> (u16, Vec<(String, String)>, Value) {
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

fn access_token(session: &Value) -> String {
    session["access_token"].as_str().unwrap().to_owned()
}

/// Asks for a change of `token`'s account to `new_email` and returns the code the new address
/// got (its `n`th message).
async fn change_code(app: &TestApp, token: &str, new_email: &str, n: usize) -> String {
    let response = app.request_email_change(token, new_email).await;
    assert_eq!(response.status().as_u16(), 202, "request_email_change");
    app.smtp.wait_for_nth_message_to(new_email, n).await.code()
}

fn starts_with_a_code(text: &str) -> bool {
    text.chars().take(6).filter(char::is_ascii_digit).count() == 6
}

#[tokio::test]
async fn a_verified_change_moves_the_account_and_tells_the_old_address_with_the_new_one_masked() {
    let app = spawn_app().await;
    let session = app.signed_up("old@example.com", PASSWORD).await;
    let token = access_token(&session);

    let response = app
        .request_email_change(&token, "new.person@example.com")
        .await;
    assert_eq!(response.status().as_u16(), 202);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["purpose"], "change_email");
    assert_eq!(body["email"], "new.person@example.com");
    let message = app
        .smtp
        .wait_for_nth_message_to("new.person@example.com", 1)
        .await;
    let code = message.code();
    let response = app.verify_email_change(&token, &code).await;

    assert_eq!(response.status().as_u16(), 200);
    let user: Value = response.json().await.unwrap();
    assert_eq!(user["email"], "new.person@example.com");
    assert_eq!(user["email_verified"], true);
    let activity: Value = app.activity(&token, "").await.json().await.unwrap();
    assert_eq!(activity["items"][0]["event"], "email_change");
    assert_eq!(activity["items"][0]["outcome"], "success");
    // The old address hears of it, with the new one masked and no code.
    let notice = app.smtp.wait_for_nth_message_to("old@example.com", 2).await;
    let text = notice.text();
    assert!(text.contains("n•••@example.com"), "{text}");
    assert!(!text.contains("new.person@example.com"), "{text}");
    assert!(!notice.html().contains("new.person@example.com"));
    assert!(
        !starts_with_a_code(&text),
        "a notice carries no code: {text}"
    );
    // The session stays and sees the new address; the new address signs in, the old one not.
    let me: Value = app.me(&token).await.json().await.unwrap();
    assert_eq!(me["email"], "new.person@example.com");
    let refreshed = app
        .refresh(session["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(refreshed.status().as_u16(), 200, "the session stays");
    assert_eq!(
        app.login("new.person@example.com", PASSWORD)
            .await
            .status()
            .as_u16(),
        200
    );
    assert_problem(
        app.login("old@example.com", PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
    // The code was used up.
    assert_problem(
        app.verify_email_change(&token, &code).await,
        400,
        "invalid_code",
    )
    .await;
}

#[tokio::test]
async fn a_taken_address_gets_a_notice_and_no_code_with_the_same_answer_as_a_free_one() {
    let app = spawn_app().await;
    let token = access_token(&app.signed_up("mover@example.com", PASSWORD).await);
    app.signed_up("taken@example.com", PASSWORD).await;

    let free = observable(app.request_email_change(&token, "free@example.com").await).await;
    let taken = observable(app.request_email_change(&token, "taken@example.com").await).await;

    assert_eq!(free, taken, "free vs taken");
    assert_eq!(free.0, 202);
    let notice = app
        .smtp
        .wait_for_nth_message_to("taken@example.com", 2)
        .await;
    assert!(
        notice.subject().contains("tried to move"),
        "{}",
        notice.subject()
    );
    assert!(!starts_with_a_code(&notice.text()), "{}", notice.text());
    // No code to the taken address exists: the only live code is the free address's.
    let free_code = app
        .smtp
        .wait_for_nth_message_to("free@example.com", 1)
        .await
        .code();
    let db = app.connect_db().await;
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    let codes_to_taken = entity::otp_codes::Entity::find()
        .filter(entity::otp_codes::Column::Email.eq("taken@example.com"))
        .filter(entity::otp_codes::Column::Purpose.eq("change_email"))
        .count(&db)
        .await
        .unwrap();
    assert_eq!(codes_to_taken, 0, "no code row names the taken address");
    let response = app.verify_email_change(&token, &free_code).await;
    assert_eq!(response.status().as_u16(), 200);
}

#[tokio::test]
async fn a_wrong_code_is_an_invalid_code_and_changes_nothing() {
    let app = spawn_app().await;
    let token = access_token(&app.signed_up("stays@example.com", PASSWORD).await);
    let code = change_code(&app, &token, "elsewhere@example.com", 1).await;

    let response = app
        .verify_email_change(&token, &crate::helpers::other_code(&code))
        .await;

    assert_problem(response, 400, "invalid_code").await;
    let me: Value = app.me(&token).await.json().await.unwrap();
    assert_eq!(me["email"], "stays@example.com");
    // Without any code asked for, too.
    let other = access_token(&app.signed_up("nocode@example.com", PASSWORD).await);
    assert_problem(
        app.verify_email_change(&other, "123456").await,
        400,
        "invalid_code",
    )
    .await;
}

#[tokio::test]
async fn two_accounts_verifying_the_same_new_address_at_once_get_one_200_and_one_409() {
    let app = spawn_app().await;
    let first = access_token(&app.signed_up("first@example.com", PASSWORD).await);
    let second = access_token(&app.signed_up("second@example.com", PASSWORD).await);
    let first_code = change_code(&app, &first, "contested@example.com", 1).await;
    // Past the address's resend cooldown.
    app.instance.clock.advance(Duration::from_secs(61));
    let second_code = change_code(&app, &second, "contested@example.com", 2).await;

    let (a, b) = tokio::join!(
        app.verify_email_change(&first, &first_code),
        app.verify_email_change(&second, &second_code),
    );

    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409]);
    let loser = if a.status().as_u16() == 409 { a } else { b };
    assert_problem(loser, 409, "email_taken").await;
    let emails = [
        app.me(&first).await.json::<Value>().await.unwrap()["email"].clone(),
        app.me(&second).await.json::<Value>().await.unwrap()["email"].clone(),
    ];
    assert_eq!(
        emails
            .iter()
            .filter(|email| *email == "contested@example.com")
            .count(),
        1,
        "{emails:?}"
    );
}

#[tokio::test]
async fn asking_for_a_change_needs_a_recent_authentication() {
    // A window shorter than a code's life, so the code asked for in time is still good.
    let app = spawn_app_with(&["--reauth-max-age-secs=60"]).await;
    let token = access_token(&app.signed_up("late@example.com", PASSWORD).await);
    let code = change_code(&app, &token, "fresh@example.com", 1).await;

    app.instance.clock.advance(Duration::from_secs(61));

    assert_problem(
        app.request_email_change(&token, "later@example.com").await,
        403,
        "reauthentication_required",
    )
    .await;
    assert!(app.outbox_to("later@example.com").await.is_empty());
    // Verifying the code asked for in time does not need it.
    assert_eq!(
        app.verify_email_change(&token, &code)
            .await
            .status()
            .as_u16(),
        200
    );
    assert_unauthorized(
        app.request_email_change("not-a-token", "x@example.com")
            .await,
        "no token",
    )
    .await;
}
