//! Account deletion through HTTP: everything naming the user goes at once, the notice still
//! goes out, the address can sign up again, and it needs a recent authentication.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{PASSWORD, assert_problem, assert_unauthorized, spawn_app};
use crate::mail::every_row;

#[tokio::test]
async fn deleting_the_account_kills_its_tokens_and_leaves_no_row_naming_it_but_the_notice() {
    let app = spawn_app().await;
    let email = "leaving@example.com";
    let session = app.signed_up(email, PASSWORD).await;
    let token = session["access_token"].as_str().unwrap().to_owned();
    let refresh = session["refresh_token"].as_str().unwrap().to_owned();
    let user_id = session["user"]["id"].as_str().unwrap().to_owned();
    // A second session, a failed sign-in, a live code and a wrong guess at it: rows of every
    // kind that name the user or the address.
    let other: Value = app.login(email, PASSWORD).await.json().await.unwrap();
    let other_token = other["access_token"].as_str().unwrap().to_owned();
    app.login(email, "not the password at all").await;
    assert_eq!(
        app.request_email_change(&token, "next@example.com")
            .await
            .status()
            .as_u16(),
        202
    );
    app.verify_email_change(&token, "000000").await;
    app.forgot_password(email).await;

    let response = app.delete_account(&token).await;

    assert_eq!(response.status().as_u16(), 204);
    assert_unauthorized(app.me(&token).await, "this session's token").await;
    assert_unauthorized(app.me(&other_token).await, "the other session's token").await;
    assert_eq!(app.refresh(&refresh).await.status().as_u16(), 401);
    assert_problem(app.login(email, PASSWORD).await, 401, "invalid_credentials").await;
    // The notice goes out though no user row is left, and carries no code.
    app.wait_until_sent(email).await;
    let notice = app
        .smtp
        .messages_to(email)
        .into_iter()
        .find(|m| m.subject().contains("was deleted"))
        .expect("the deletion notice");
    assert!(
        !notice.text().chars().take(6).all(|c| c.is_ascii_digit()),
        "{}",
        notice.text()
    );
    // No row names the user; the address is only in the notice's outbox row.
    let rows = every_row(&app.connect_db().await).await;
    let naming_user: Vec<_> = rows
        .iter()
        .filter(|(_, row)| row.contains(&user_id))
        .collect();
    assert!(naming_user.is_empty(), "{naming_user:#?}");
    let naming_address: Vec<_> = rows.iter().filter(|(_, row)| row.contains(email)).collect();
    assert_eq!(naming_address.len(), 1, "{naming_address:#?}");
    assert_eq!(naming_address[0].0, "email_outbox");
    assert!(naming_address[0].1.contains("account_deleted"));
    // One anonymous event is kept for counts: no user, IP, user agent or session.
    let db = app.connect_db().await;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let events = entity::audit_events::Entity::find()
        .filter(entity::audit_events::Column::Event.eq("account_deleted"))
        .all(&db)
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].user_id, None);
    assert_eq!(events[0].ip, None);
    assert_eq!(events[0].user_agent, None);
    assert_eq!(events[0].session_id, None);
}

#[tokio::test]
async fn a_deleted_address_can_sign_up_again_as_a_new_account() {
    let app = spawn_app().await;
    let email = "again@example.com";
    let first = app.signed_up(email, PASSWORD).await;
    let token = first["access_token"].as_str().unwrap();
    assert_eq!(app.delete_account(token).await.status().as_u16(), 204);
    app.smtp.wait_for_nth_message_to(email, 2).await;
    // Past the sign-up code's resend cooldown.
    app.instance.clock.advance(Duration::from_secs(61));

    let second = app.signed_up(email, PASSWORD).await;

    assert_ne!(second["user"]["id"], first["user"]["id"]);
    assert_eq!(second["user"]["email"], email);
    let activity: Value = app
        .activity(second["access_token"].as_str().unwrap(), "")
        .await
        .json()
        .await
        .unwrap();
    let events: Vec<&str> = activity["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        ["verification", "signup"],
        "nothing of the old account"
    );
}

#[tokio::test]
async fn deleting_needs_a_recent_authentication_and_changes_nothing_without_it() {
    let app = spawn_app().await;
    let session = app.signed_up("stale@example.com", PASSWORD).await;
    let token = session["access_token"].as_str().unwrap();

    app.instance.clock.advance(Duration::from_secs(601));
    let response = app.delete_account(token).await;

    assert_problem(response, 403, "reauthentication_required").await;
    assert_eq!(app.me(token).await.status().as_u16(), 200, "still there");
    assert_unauthorized(app.delete_account("not-a-token").await, "no token").await;
}
