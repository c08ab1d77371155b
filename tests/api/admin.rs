//! The admin API as operators' tools use it (an API key with the `admin` scope), and
//! `codeward users` as an operator types it: what each operation answers, that a disabled
//! account is an unknown address everywhere, that the user list pages by cursor without
//! duplicates or gaps, that deletion leaves nothing naming the user, and that every action is
//! an audit event naming its API key.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::{audit_events, users};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, Set};
use serde_json::Value;

use crate::api_keys::create_key;
use crate::helpers::{
    PASSWORD, TestApp, assert_problem, assert_unauthenticated, assert_unauthorized,
    run_codeward_on, spawn_app,
};
use crate::mail::every_row;

/// A new key with the `admin` scope, and its id.
pub fn admin_key(app: &TestApp, name: &str) -> (String, String) {
    let key = create_key(app, name, &["admin"]);
    let listed: Value = serde_json::from_str(&run_codeward_on(
        &app.database.url,
        &["api-key", "list", "--json"],
    ))
    .unwrap();
    let id = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|listed| listed["name"] == name)
        .and_then(|listed| listed["id"].as_str())
        .expect("the key is listed")
        .to_owned();
    (key, id)
}

/// A signed-up, verified user: its session body and id.
async fn user(app: &TestApp, email: &str) -> (Value, String) {
    let session = app.signed_up(email, PASSWORD).await;
    let id = session["user"]["id"].as_str().unwrap().to_owned();
    (session, id)
}

fn token(session: &Value, name: &str) -> String {
    session[name].as_str().unwrap().to_owned()
}

/// Each admin operation, by name, sent with `key` for the account `id`.
async fn every_operation(
    app: &TestApp,
    key: &str,
    id: &str,
) -> Vec<(&'static str, reqwest::Response)> {
    vec![
        ("list_users", app.list_users(key, "").await),
        ("get_user", app.get_user(key, id).await),
        ("disable_user", app.disable_user(key, id).await),
        ("enable_user", app.enable_user(key, id).await),
        ("list_user_sessions", app.list_user_sessions(key, id).await),
        (
            "revoke_user_sessions",
            app.revoke_user_sessions(key, id).await,
        ),
        (
            "list_user_activity",
            app.list_user_activity(key, id, "").await,
        ),
        ("delete_user", app.delete_user(key, id).await),
    ]
}

#[tokio::test]
async fn every_admin_operation_refuses_a_missing_unknown_or_revoked_key_and_one_without_the_scope()
{
    let app = spawn_app().await;
    let (session, id) = user(&app, "kept@example.com").await;
    let introspect_only = create_key(&app, "backend", &["introspect"]);
    let (revoked, revoked_id) = admin_key(&app, "old tool");
    run_codeward_on(&app.database.url, &["api-key", "revoke", &revoked_id]);
    let unknown = format!("cwk_{}", "A".repeat(43));
    let access_token = token(&session, "access_token");

    for path in [
        "/v1/admin/users".to_owned(),
        format!("/v1/admin/users/{id}"),
    ] {
        assert_unauthenticated(app.get(&path).await, "no Authorization").await;
    }
    for (operation, response) in every_operation(&app, "", &id).await {
        assert_unauthenticated(response, &format!("{operation} with an empty key")).await;
    }
    for (why, key) in [
        ("an unknown key", unknown.as_str()),
        ("a revoked key", revoked.as_str()),
        ("a user's access token", access_token.as_str()),
    ] {
        for (operation, response) in every_operation(&app, key, &id).await {
            assert_unauthorized(response, &format!("{operation} with {why}")).await;
        }
    }
    for (operation, response) in every_operation(&app, &introspect_only, &id).await {
        let body = assert_problem(response, 403, "forbidden").await;
        assert!(
            body["detail"].as_str().unwrap().contains("admin"),
            "{operation}: {body}"
        );
    }

    // Nothing happened to the account.
    assert_eq!(app.me(&access_token).await.status(), 200);
}

#[tokio::test]
async fn an_unknown_id_is_404_and_a_malformed_one_400_on_every_operation_on_one_account() {
    let app = spawn_app().await;
    let (key, _) = admin_key(&app, "tool");
    let unknown = uuid::Uuid::new_v4().to_string();

    for (operation, response) in every_operation(&app, &key, &unknown).await {
        if operation == "list_users" {
            assert_eq!(response.status(), 200);
            continue;
        }
        let body = assert_problem(response, 404, "not_found").await;
        assert!(body["detail"].is_string(), "{operation}: {body}");
    }
    for (operation, response) in every_operation(&app, &key, "not-a-uuid").await {
        if operation == "list_users" {
            continue;
        }
        assert_problem(response, 400, "invalid_request").await;
    }
}

#[tokio::test]
async fn get_user_shows_the_account_with_its_live_sessions_and_last_sign_in() {
    let app = spawn_app().await;
    let (key, _) = admin_key(&app, "tool");
    let (first, id) = user(&app, "ada@example.com").await;
    let second: Value = app
        .login("ada@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();

    let response = app.get_user(&key, &id).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let shown: Value = response.json().await.unwrap();
    assert_eq!(shown["id"], id.as_str());
    assert_eq!(shown["email"], "ada@example.com");
    assert_eq!(shown["email_verified"], true);
    assert_eq!(shown["has_password"], true);
    assert_eq!(shown["locale"], "en");
    assert_eq!(shown["created_at"], first["user"]["created_at"]);
    assert_eq!(shown["disabled"], false);
    assert_eq!(shown["active_sessions"], 2);
    assert!(shown["last_sign_in_at"].is_string(), "{shown}");
    // A sign-up never verified has no session: its last sign-in is absent, not null.
    app.signup_code("fresh@example.com", PASSWORD).await;
    let page: Value = app
        .list_users(&key, "email=fresh")
        .await
        .json()
        .await
        .unwrap();
    let fresh = &page["items"][0];
    assert_eq!(fresh["email"], "fresh@example.com");
    assert!(fresh.get("last_sign_in_at").is_none(), "{fresh}");
    assert_eq!(fresh["active_sessions"], 0);
    assert_eq!(fresh["email_verified"], false);
    // Ending one session counts at once.
    app.logout(&token(&second, "access_token")).await;
    let shown: Value = app.get_user(&key, &id).await.json().await.unwrap();
    assert_eq!(shown["active_sessions"], 1);
}

#[tokio::test]
async fn a_disabled_user_loses_every_token_at_once_and_is_answered_like_an_unknown_address() {
    let app = spawn_app().await;
    let (key, _) = admin_key(&app, "tool");
    let email = "mallory@example.com";
    let (session, id) = user(&app, email).await;
    let (access, refresh) = (
        token(&session, "access_token"),
        token(&session, "refresh_token"),
    );
    let unknown = "nobody-at-all@example.com";
    let introspector = create_key(&app, "backend", &["introspect"]);
    let emails_before = app.outbox_to(email).await.len();

    let response = app.disable_user(&key, &id).await;

    assert_eq!(response.status(), 200);
    let shown: Value = response.json().await.unwrap();
    assert_eq!(shown["disabled"], true);
    assert_eq!(shown["active_sessions"], 0);
    assert_unauthorized(app.me(&access).await, "a disabled user's access token").await;
    assert_problem(app.refresh(&refresh).await, 401, "invalid_token").await;
    let introspected: Value = app
        .introspect(&introspector, &access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(introspected, serde_json::json!({"active": false}));
    // Sign-in: the very answer an unknown address gets.
    let as_disabled = app.login(email, PASSWORD).await;
    let as_unknown = app.login(unknown, PASSWORD).await;
    assert_eq!(as_disabled.status(), as_unknown.status());
    let (disabled_body, unknown_body): (Value, Value) = (
        as_disabled.json().await.unwrap(),
        as_unknown.json().await.unwrap(),
    );
    assert_eq!(disabled_body, unknown_body);
    assert_eq!(disabled_body["code"], "invalid_credentials");
    // Codes: the same 202 an unknown address gets, and nothing sent. Past the cooldown of
    // the sign-up code first, which holds for a disabled address as for any.
    app.instance.clock.advance(Duration::from_secs(61));
    for (operation, disabled, unknown) in [
        (
            "signup",
            app.signup(email, PASSWORD).await,
            app.signup(unknown, PASSWORD).await,
        ),
        (
            "request_login_code",
            app.request_login_code(email, Some(true)).await,
            app.request_login_code(unknown, None).await,
        ),
        (
            "forgot_password",
            app.forgot_password(email).await,
            app.forgot_password(unknown).await,
        ),
    ] {
        assert_eq!(disabled.status(), 202, "{operation}");
        assert_eq!(unknown.status(), 202, "{operation}");
        let disabled: Value = disabled.json().await.unwrap();
        let mut unknown: Value = unknown.json().await.unwrap();
        unknown["email"] = Value::from(email);
        assert_eq!(disabled, unknown, "{operation}");
    }
    // Rows are committed before the answer: what is not in the outbox now is never sent.
    assert_eq!(
        app.outbox_to(email).await.len(),
        emails_before,
        "an email went to a disabled address"
    );
    let db = app.connect_db().await;
    let accounts = users::Entity::find()
        .filter(users::Column::Email.eq(email))
        .count(&db)
        .await
        .unwrap();
    assert_eq!(accounts, 1, "create_account made a second account");
    // Codes sent before: dead.
    assert_problem(
        app.verify_login_code(email, "000000").await,
        400,
        "invalid_code",
    )
    .await;
}

#[tokio::test]
async fn a_code_sent_before_the_account_was_disabled_no_longer_signs_in() {
    let app = spawn_app().await;
    let (key, _) = admin_key(&app, "tool");
    let email = "coded@example.com";
    let (_, id) = user(&app, email).await;
    let before = app.smtp.messages_to(email).len();
    assert_eq!(app.request_login_code(email, None).await.status(), 202);
    let code = app
        .smtp
        .wait_for_nth_message_to(email, before + 1)
        .await
        .code();

    assert_eq!(app.disable_user(&key, &id).await.status(), 200);

    assert_problem(
        app.verify_login_code(email, &code).await,
        400,
        "invalid_code",
    )
    .await;
}

#[tokio::test]
async fn enabling_a_disabled_user_restores_sign_in_but_not_the_ended_sessions() {
    let app = spawn_app().await;
    let (key, _) = admin_key(&app, "tool");
    let email = "back@example.com";
    let (session, id) = user(&app, email).await;
    assert_eq!(app.disable_user(&key, &id).await.status(), 200);
    assert_eq!(
        app.disable_user(&key, &id).await.status(),
        200,
        "twice is fine"
    );

    let response = app.enable_user(&key, &id).await;

    assert_eq!(response.status(), 200);
    let shown: Value = response.json().await.unwrap();
    assert_eq!(shown["disabled"], false);
    let signed_in = app.login(email, PASSWORD).await;
    assert_eq!(signed_in.status(), 200);
    let signed_in: Value = signed_in.json().await.unwrap();
    assert_eq!(
        app.me(&token(&signed_in, "access_token")).await.status(),
        200
    );
    assert_unauthorized(
        app.me(&token(&session, "access_token")).await,
        "a session disabling ended",
    )
    .await;
}

#[tokio::test]
async fn list_and_revoke_user_sessions_show_and_end_the_users_sessions_only() {
    let app = spawn_app().await;
    let (key, _) = admin_key(&app, "tool");
    let (first, id) = user(&app, "two@example.com").await;
    let second: Value = app
        .login("two@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let (other, _) = user(&app, "bystander@example.com").await;

    let listed: Value = app
        .list_user_sessions(&key, &id)
        .await
        .json()
        .await
        .unwrap();

    let listed = listed.as_array().unwrap();
    let ids: HashSet<&str> = listed.iter().map(|s| s["id"].as_str().unwrap()).collect();
    let expected: HashSet<&str> = [&first, &second]
        .iter()
        .map(|s| s["session_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, expected);
    assert!(listed.iter().all(|s| s["current"] == false), "{listed:?}");

    let response = app.revoke_user_sessions(&key, &id).await;

    assert_eq!(response.status(), 204);
    for session in [&first, &second] {
        assert_unauthorized(app.me(&token(session, "access_token")).await, "ended").await;
    }
    assert_eq!(app.me(&token(&other, "access_token")).await.status(), 200);
    let listed: Value = app
        .list_user_sessions(&key, &id)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed, serde_json::json!([]));
    // Revoking only ends sessions: the user signs in again.
    assert_eq!(app.login("two@example.com", PASSWORD).await.status(), 200);
}

/// Inserts a verified account created at `created_at`.
async fn insert_user(
    db: &sea_orm::DatabaseConnection,
    email: &str,
    created_at: DateTime<Utc>,
) -> String {
    let id = uuid::Uuid::new_v4();
    users::ActiveModel {
        id: Set(id),
        email: Set(email.to_owned()),
        password_hash: Set(None),
        email_verified_at: Set(Some(created_at)),
        password_changed_at: Set(None),
        locale: Set("en".to_owned()),
        created_at: Set(created_at),
        updated_at: Set(created_at),
        disabled_at: Set(None),
    }
    .insert(db)
    .await
    .unwrap();
    id.to_string()
}

#[tokio::test]
async fn list_users_pages_newest_first_without_duplicates_or_gaps_while_users_are_added() {
    let app = spawn_app().await;
    let (key, _) = admin_key(&app, "tool");
    let db = app.connect_db().await;
    let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    // 250 accounts, five at each instant: the id breaks the ties.
    let mut existing = Vec::new();
    for n in 0..250i64 {
        let at = start + chrono::Duration::seconds(n / 5);
        let id = insert_user(&db, &format!("user{n:03}@example.com"), at).await;
        existing.push((at, id));
    }
    existing.sort();
    existing.reverse();
    let expected: Vec<String> = existing.into_iter().map(|(_, id)| id).collect();

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut added = 0;
    loop {
        let query = match &cursor {
            None => "limit=100".to_owned(),
            Some(cursor) => format!("limit=100&cursor={cursor}"),
        };
        let response = app.list_users(&key, &query).await;
        assert_eq!(response.status(), 200);
        let page: Value = response.json().await.unwrap();
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|user| user["id"].as_str().unwrap().to_owned()),
        );
        // Accounts made between pages are newer than every listed one: never on a later page.
        for _ in 0..3 {
            added += 1;
            insert_user(&db, &format!("late{added}@example.com"), Utc::now()).await;
        }
        match page.get("next_cursor") {
            Some(next) => cursor = Some(next.as_str().unwrap().to_owned()),
            None => break,
        }
    }

    assert_eq!(seen.len(), 250, "no duplicates, no gaps");
    assert_eq!(seen, expected, "newest first, ties by id");
}

#[tokio::test]
async fn list_users_matches_the_start_of_the_address_trimmed_and_lowercased_taking_wildcards_literally()
 {
    let app = spawn_app().await;
    let (key, _) = admin_key(&app, "tool");
    let db = app.connect_db().await;
    let now = Utc::now();
    for email in [
        "ada@example.com",
        "adam@example.com",
        "bada@example.com",
        "a_b@example.com",
        "axb@example.com",
        "a%c@example.com",
    ] {
        insert_user(&db, email, now).await;
    }
    let listed = async |query: &str| -> Vec<String> {
        let response = app.list_users(&key, query).await;
        assert_eq!(response.status(), 200, "{query}");
        let page: Value = response.json().await.unwrap();
        let mut emails: Vec<String> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|user| user["email"].as_str().unwrap().to_owned())
            .collect();
        emails.sort();
        emails
    };

    assert_eq!(
        listed("email=%20AdA").await,
        ["ada@example.com", "adam@example.com"],
        "trimmed, lowercased, the start only"
    );
    assert_eq!(
        listed("email=a_").await,
        ["a_b@example.com"],
        "_ is literal"
    );
    assert_eq!(
        listed("email=a%25").await,
        ["a%c@example.com"],
        "% is literal"
    );
    assert_eq!(listed("email=").await.len(), 6, "empty: every account");
    assert!(listed("email=zz").await.is_empty());
}

#[tokio::test]
async fn list_users_and_list_user_activity_refuse_a_bad_cursor_or_limit_as_list_activity_does() {
    let app = spawn_app().await;
    let (key, _) = admin_key(&app, "tool");
    let (session, id) = user(&app, "paged@example.com").await;
    let access = token(&session, "access_token");

    for query in ["cursor=not-a-cursor", "limit=0", "limit=101", "limit=ten"] {
        let own = assert_problem(app.activity(&access, query).await, 400, "invalid_request").await;
        let users = assert_problem(app.list_users(&key, query).await, 400, "invalid_request").await;
        let activity = assert_problem(
            app.list_user_activity(&key, &id, query).await,
            400,
            "invalid_request",
        )
        .await;
        assert_eq!(users["detail"], own["detail"], "{query}");
        assert_eq!(activity["detail"], own["detail"], "{query}");
    }
}

#[tokio::test]
async fn delete_user_sends_the_notice_and_leaves_no_row_naming_the_user() {
    let app = spawn_app().await;
    let (key, key_id) = admin_key(&app, "tool");
    let email = "removed@example.com";
    let (session, id) = user(&app, email).await;
    app.login(email, "not the password at all").await;
    assert_eq!(app.get_user(&key, &id).await.status(), 200);
    assert_eq!(app.disable_user(&key, &id).await.status(), 200);

    let response = app.delete_user(&key, &id).await;

    assert_eq!(response.status(), 204);
    assert_unauthorized(app.me(&token(&session, "access_token")).await, "deleted").await;
    assert_problem(app.get_user(&key, &id).await, 404, "not_found").await;
    app.wait_until_sent(email).await;
    assert!(
        app.smtp
            .messages_to(email)
            .iter()
            .any(|message| message.subject().contains("was deleted")),
        "the deletion notice"
    );
    let rows = every_row(&app.connect_db().await).await;
    let naming_user: Vec<_> = rows.iter().filter(|(_, row)| row.contains(&id)).collect();
    assert!(naming_user.is_empty(), "{naming_user:#?}");
    let naming_address: Vec<_> = rows.iter().filter(|(_, row)| row.contains(email)).collect();
    assert_eq!(naming_address.len(), 1, "{naming_address:#?}");
    assert_eq!(naming_address[0].0, "email_outbox");
    // The one event kept names the API key and nobody else.
    let db = app.connect_db().await;
    let kept = audit_events::Entity::find()
        .filter(audit_events::Column::Event.eq("admin_delete"))
        .all(&db)
        .await
        .unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].user_id, None);
    assert_eq!(kept[0].api_key_id.map(|id| id.to_string()), Some(key_id));
    assert_eq!(kept[0].ip, None);
    // Deleting again: the account is unknown.
    assert_problem(app.delete_user(&key, &id).await, 404, "not_found").await;
}

#[tokio::test]
async fn every_admin_action_is_an_audit_event_naming_its_api_key() {
    let app = spawn_app().await;
    let (key, key_id) = admin_key(&app, "tool");
    let email = "watched@example.com";
    let (_, id) = user(&app, email).await;

    app.get_user(&key, &id).await;
    app.list_user_sessions(&key, &id).await;
    app.revoke_user_sessions(&key, &id).await;
    app.disable_user(&key, &id).await;
    app.enable_user(&key, &id).await;
    let response = app.list_user_activity(&key, &id, "limit=100").await;

    assert_eq!(response.status(), 200);
    let page: Value = response.json().await.unwrap();
    let items = page["items"].as_array().unwrap();
    let by_key: Vec<&str> = items
        .iter()
        .filter(|item| item["api_key_id"] == key_id.as_str())
        .map(|item| item["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        by_key,
        [
            "admin_enable",
            "admin_disable",
            "admin_revoke_sessions",
            "admin_read",
            "admin_read"
        ]
    );
    let by_user: Vec<&Value> = items
        .iter()
        .filter(|item| !item["event"].as_str().unwrap().starts_with("admin_"))
        .collect();
    assert!(!by_user.is_empty());
    assert!(
        by_user.iter().all(|item| item.get("api_key_id").is_none()),
        "absent on the user's own events: {by_user:?}"
    );
    // The owner sees them too, once signed in again.
    let session: Value = app.login(email, PASSWORD).await.json().await.unwrap();
    let own: Value = app
        .activity(&token(&session, "access_token"), "limit=100")
        .await
        .json()
        .await
        .unwrap();
    let own_by_key = own["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|item| item["api_key_id"] == key_id.as_str())
        .count();
    assert_eq!(own_by_key, 6, "the five above and the activity read");
    // Listing users is recorded without a user.
    app.list_users(&key, "").await;
    let db = app.connect_db().await;
    let listing = audit_events::Entity::find()
        .filter(audit_events::Column::Event.eq("admin_read"))
        .filter(audit_events::Column::UserId.is_null())
        .all(&db)
        .await
        .unwrap();
    assert_eq!(listing.len(), 1);
    assert_eq!(listing[0].api_key_id.map(|id| id.to_string()), Some(key_id));
}

#[tokio::test]
async fn codeward_users_lists_disables_and_enables_through_the_same_use_cases() {
    let app = spawn_app().await;
    let email = "cli@example.com";
    let (session, id) = user(&app, email).await;
    user(&app, "other@example.com").await;
    let url = app.database.url.clone();

    let listed: Value =
        serde_json::from_str(&run_codeward_on(&url, &["users", "list", "--json"])).unwrap();
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["email"], "other@example.com", "newest first");
    assert_eq!(items[1]["id"], id.as_str());
    assert_eq!(items[1]["disabled"], false);
    assert!(listed.get("next_cursor").is_none());
    let filtered: Value = serde_json::from_str(&run_codeward_on(
        &url,
        &["users", "list", "--json", "--email", " CLI@"],
    ))
    .unwrap();
    assert_eq!(filtered["items"].as_array().unwrap().len(), 1);
    let table = run_codeward_on(&url, &["users", "list"]);
    assert!(table.starts_with("ID "), "{table}");
    assert!(table.contains(email), "{table}");

    let disabled: Value =
        serde_json::from_str(&run_codeward_on(&url, &["users", "disable", &id, "--json"])).unwrap();

    assert_eq!(disabled["disabled"], true);
    assert!(disabled["disabled_at"].is_string());
    assert_unauthorized(app.me(&token(&session, "access_token")).await, "disabled").await;
    assert_problem(app.login(email, PASSWORD).await, 401, "invalid_credentials").await;

    let enabled: Value =
        serde_json::from_str(&run_codeward_on(&url, &["users", "enable", &id, "--json"])).unwrap();

    assert_eq!(enabled["disabled"], false);
    assert!(enabled.get("disabled_at").is_none());
    assert_eq!(app.login(email, PASSWORD).await.status(), 200);
    // Recorded without an API key, as the command line's.
    let db = app.connect_db().await;
    let events = audit_events::Entity::find()
        .filter(audit_events::Column::Event.is_in(["admin_disable", "admin_enable"]))
        .all(&db)
        .await
        .unwrap();
    assert_eq!(events.len(), 2);
    for event in events {
        assert_eq!(event.api_key_id, None);
        assert_eq!(event.user_agent.as_deref(), Some("codeward-cli"));
        assert_eq!(event.user_id.map(|id| id.to_string()), Some(id.clone()));
    }
    // An unknown id is said on stderr, with a failing exit code.
    let output = crate::helpers::run_codeward(
        &["users", "disable", &uuid::Uuid::new_v4().to_string()],
        &[("CODEWARD_DATABASE_URL", &url)],
    );
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no account"));
}
