//! Sessions: rotation, replay, revocation, expiry, and what is left at rest.

use std::time::Duration;

use entity::sessions;
use futures::future::join_all;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::Value;

use crate::helpers::{PASSWORD, TestApp, assert_problem, spawn_app, spawn_app_with};

fn token(session: &Value, name: &str) -> String {
    session[name].as_str().expect("token").to_owned()
}

#[tokio::test]
async fn replaying_a_rotated_refresh_token_revokes_the_whole_session() {
    let app = spawn_app().await;
    let first = app.signed_up("ada@example.com", PASSWORD).await;
    let rotated: Value = app
        .refresh(&token(&first, "refresh_token"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        app.me(&token(&rotated, "access_token"))
            .await
            .status()
            .as_u16(),
        200
    );

    // The stolen first refresh token comes back, past the reuse grace of its rotation.
    app.instance.clock.advance(Duration::from_secs(11));
    let replay = app.refresh(&token(&first, "refresh_token")).await;

    assert_problem(replay, 401, "invalid_token").await;
    let newest_access = app.me(&token(&rotated, "access_token")).await;
    assert_problem(newest_access, 401, "unauthorized").await;
    let newest_refresh = app.refresh(&token(&rotated, "refresh_token")).await;
    assert_problem(newest_refresh, 401, "invalid_token").await;
}

#[tokio::test]
async fn without_a_reuse_grace_concurrent_refreshes_with_one_token_give_exactly_one_success() {
    let app = spawn_app_with(&["--refresh-reuse-grace-secs=0"]).await;
    let session = app.signed_up("ada@example.com", PASSWORD).await;
    let refresh = token(&session, "refresh_token");

    let responses = join_all((0..20).map(|_| app.refresh(&refresh))).await;

    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    let successes = statuses.iter().filter(|&&s| s == 200).count();
    assert_eq!(successes, 1, "{successes} successes: {statuses:?}");
    for response in responses {
        if response.status().as_u16() != 200 {
            assert_problem(response, 401, "invalid_token").await;
        }
    }
}

#[tokio::test]
async fn racing_refreshes_with_one_token_all_succeed_within_the_grace_and_the_session_lives() {
    let app = spawn_app().await;
    let session = app.signed_up("ada@example.com", PASSWORD).await;
    let refresh = token(&session, "refresh_token");

    let responses = join_all((0..10).map(|_| app.refresh(&refresh))).await;

    let mut pairs = Vec::new();
    for response in responses {
        assert_eq!(response.status().as_u16(), 200);
        let pair: Value = response.json().await.unwrap();
        assert_eq!(
            pair["session_id"], session["session_id"],
            "the same session"
        );
        pairs.push(pair);
    }
    // Every racer's new refresh token carries the session on (each rotates once).
    for pair in &pairs {
        let next = app.refresh(&token(pair, "refresh_token")).await;
        assert_eq!(next.status().as_u16(), 200, "the session lives");
    }
}

#[tokio::test]
async fn a_rotated_refresh_token_reused_within_the_grace_gets_a_new_pair_and_after_it_ends_the_session()
 {
    let app = spawn_app().await;
    let session = app.signed_up("ada@example.com", PASSWORD).await;
    let first = token(&session, "refresh_token");
    let rotated: Value = app.refresh(&first).await.json().await.unwrap();

    // The answer was lost on the way; the app tries again 9 s later with the same token.
    app.instance.clock.advance(Duration::from_secs(9));
    let retried = app.refresh(&first).await;

    assert_eq!(retried.status().as_u16(), 200);
    let retried: Value = retried.json().await.unwrap();
    assert_eq!(retried["session_id"], session["session_id"]);
    // Past the grace of its rotation, the same token is a replay: the session ends.
    app.instance.clock.advance(Duration::from_secs(2));
    let replay = app.refresh(&first).await;
    assert_problem(replay, 401, "invalid_token").await;
    for pair in [&rotated, &retried] {
        let next = app.refresh(&token(pair, "refresh_token")).await;
        assert_problem(next, 401, "invalid_token").await;
    }
}

#[tokio::test]
async fn logout_and_revocations_take_effect_at_once() {
    let app = spawn_app().await;
    let phone = app.signed_up("ada@example.com", PASSWORD).await;
    let login = |device: &str| app.login_on_device("ada@example.com", PASSWORD, device);
    let laptop: Value = login("laptop").await.json().await.unwrap();
    let tablet: Value = login("tablet").await.json().await.unwrap();
    let phone_access = token(&phone, "access_token");
    let listed: Value = app.list_sessions(&phone_access).await.json().await.unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 3);
    assert_eq!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["current"] == true)
            .count(),
        1
    );

    // Revoke the laptop from the phone.
    let laptop_id = laptop["session_id"].as_str().unwrap();
    let revoked = app.revoke_session(&phone_access, laptop_id).await;
    assert_eq!(revoked.status().as_u16(), 204);
    assert_problem(
        app.me(&token(&laptop, "access_token")).await,
        401,
        "unauthorized",
    )
    .await;
    let again = app.revoke_session(&phone_access, laptop_id).await;
    assert_problem(again, 404, "not_found").await;
    let unknown = app
        .revoke_session(&phone_access, &uuid::Uuid::new_v4().to_string())
        .await;
    assert_problem(unknown, 404, "not_found").await;
    let not_a_uuid = app.revoke_session(&phone_access, "not-a-uuid").await;
    assert_problem(not_a_uuid, 400, "invalid_request").await;

    // Revoke every other session: the tablet goes, the phone stays.
    let others = app.revoke_other_sessions(&phone_access).await;
    assert_eq!(others.status().as_u16(), 204);
    assert_problem(
        app.me(&token(&tablet, "access_token")).await,
        401,
        "unauthorized",
    )
    .await;
    let refresh_tablet = app.refresh(&token(&tablet, "refresh_token")).await;
    assert_problem(refresh_tablet, 401, "invalid_token").await;
    assert_eq!(app.me(&phone_access).await.status().as_u16(), 200);
}

/// Every bidirectional-text control: embeddings and overrides, isolates, marks.
const BIDI_CONTROLS: [char; 12] = [
    '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}', '\u{2068}',
    '\u{2069}', '\u{200E}', '\u{200F}', '\u{061C}',
];

#[tokio::test]
async fn device_names_and_locales_with_bidirectional_controls_are_refused() {
    let app = spawn_app().await;
    let code = app.signup_code("ada@example.com", PASSWORD).await;
    let refused = app
        .verify_signup_on_device("ada@example.com", &code, PASSWORD, "Ada\u{202E}gpj.exe")
        .await;
    let body = assert_problem(refused, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "device_name", "{body}");
    assert_eq!(body["errors"][0]["code"], "invalid", "{body}");
    let verified = app
        .verify_signup_on_device("ada@example.com", &code, PASSWORD, "Ada's phone")
        .await;
    assert_eq!(verified.status().as_u16(), 200, "the code is still usable");

    for control in BIDI_CONTROLS {
        let device = format!("laptop{control}x");
        let login = app
            .login_on_device("ada@example.com", PASSWORD, &device)
            .await;
        let body = assert_problem(login, 422, "validation_failed").await;
        assert_eq!(body["errors"][0]["field"], "device_name", "{control:?}");

        let locale = format!("en{control}");
        let signup = app
            .signup_in_locale("bob@example.com", PASSWORD, &locale)
            .await;
        let body = assert_problem(signup, 422, "validation_failed").await;
        assert_eq!(body["errors"][0]["field"], "locale", "{control:?}");
    }
}

#[tokio::test]
async fn user_agents_are_stored_without_bidirectional_controls() {
    let app = spawn_app().await;
    app.signed_up("ada@example.com", PASSWORD).await;
    let login = |agent: Vec<u8>| {
        app.client
            .post(app.url("/v1/login"))
            .header(
                "user-agent",
                reqwest::header::HeaderValue::from_bytes(&agent).unwrap(),
            )
            .json(&serde_json::json!({"email": "ada@example.com", "password": PASSWORD}))
            .send()
    };
    let mut agents = vec![b"Mozilla/5.0 (X11)\tok".to_vec()];
    for control in BIDI_CONTROLS {
        agents.push(format!("App/1.0 ({control}exe.gpj)").into_bytes());
    }

    let mut access = String::new();
    for agent in agents {
        let session: Value = login(agent).await.unwrap().json().await.unwrap();
        access = token(&session, "access_token");
    }

    let listed: Value = app.list_sessions(&access).await.json().await.unwrap();
    let stored: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["user_agent"].as_str())
        .collect();
    assert!(stored.contains(&"Mozilla/5.0 (X11)ok"), "{stored:?}");
    for agent in stored {
        assert!(
            !agent.chars().any(|c| BIDI_CONTROLS.contains(&c)),
            "{agent:?}"
        );
    }
}

#[tokio::test]
async fn a_user_cannot_revoke_another_users_session() {
    let app = spawn_app().await;
    let ada = app.signed_up("ada@example.com", PASSWORD).await;
    let bob = app.signed_up("bob@example.com", PASSWORD).await;

    let attempt = app
        .revoke_session(
            &token(&ada, "access_token"),
            bob["session_id"].as_str().unwrap(),
        )
        .await;

    assert_problem(attempt, 404, "not_found").await;
    assert_eq!(
        app.me(&token(&bob, "access_token")).await.status().as_u16(),
        200
    );
}

#[tokio::test]
async fn access_tokens_expire_after_their_ttl_and_refresh_tokens_after_idle_and_absolute_limits() {
    let app = spawn_app().await;
    let clock = &app.instance.clock;
    let session = app.signed_up("ada@example.com", PASSWORD).await;

    clock.advance(Duration::from_secs(901));
    assert_problem(
        app.me(&token(&session, "access_token")).await,
        401,
        "unauthorized",
    )
    .await;
    // Refreshing inside the idle window keeps the session going past any single window...
    let mut refresh = token(&session, "refresh_token");
    for _ in 0..4 {
        clock.advance(Duration::from_secs(20 * 86_400));
        let response = app.refresh(&refresh).await;
        assert_eq!(response.status().as_u16(), 200);
        let rotated: Value = response.json().await.unwrap();
        assert!(rotated["refresh_expires_in"].as_i64().unwrap() <= 30 * 86_400);
        refresh = token(&rotated, "refresh_token");
    }
    // ...but not past the absolute limit of 90 days (now at 80 days and a bit).
    clock.advance(Duration::from_secs(10 * 86_400));
    let late = app.refresh(&refresh).await;
    assert_problem(late, 401, "invalid_token").await;

    // Idle: a session left alone for more than 30 days cannot be refreshed.
    let idle = app.login("ada@example.com", PASSWORD).await;
    let idle: Value = idle.json().await.unwrap();
    clock.advance(Duration::from_secs(30 * 86_400 + 1));
    let response = app.refresh(&token(&idle, "refresh_token")).await;
    assert_problem(response, 401, "invalid_token").await;
}

#[tokio::test]
async fn a_full_hashing_queue_answers_503_overloaded_with_retry_after() {
    let app = spawn_app_with(&[
        "--password-hash-queue=1",
        "--argon2-memory-kib=19456",
        "--argon2-iterations=2",
    ])
    .await;
    let logins = (0..12).map(|_| app.login("x@example.com", PASSWORD));

    let responses = join_all(logins).await;

    let mut overloaded = 0;
    for response in responses {
        match response.status().as_u16() {
            503 => {
                overloaded += 1;
                assert_eq!(response.headers()["retry-after"], "1");
                let body = assert_problem(response, 503, "overloaded").await;
                assert_eq!(body["retry_after"], 1);
            }
            401 => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        overloaded > 0,
        "12 concurrent hashes never filled a queue of 1"
    );
}

#[tokio::test]
async fn after_the_flows_no_table_holds_a_code_a_password_or_a_token() {
    let app = spawn_app().await;
    let code = app.signup_code("ada@example.com", PASSWORD).await;
    let session: Value = app
        .verify_signup("ada@example.com", &code, PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let rotated: Value = app
        .refresh(&token(&session, "refresh_token"))
        .await
        .json()
        .await
        .unwrap();
    app.smtp.wait_for_nth_message_to("ada@example.com", 1).await;
    // Recording the delivery scrubs the outbox copy of the code.
    app.wait_until_sent("ada@example.com").await;
    let db = app.connect_db().await;

    let dump = crate::mail::dump_every_table(&db).await;

    assert!(
        dump.contains("ada@example.com"),
        "the dump reads the tables"
    );
    let secrets = [
        code.clone(),
        PASSWORD.to_owned(),
        token(&session, "access_token"),
        token(&session, "refresh_token"),
        token(&rotated, "access_token"),
        token(&rotated, "refresh_token"),
    ];
    for secret in &secrets {
        assert!(!dump.contains(secret.as_str()), "{secret} is at rest");
        // Nor the random part of a token without its prefix.
        if let Some(random) = secret.strip_prefix("cwa_").or(secret.strip_prefix("cwr_")) {
            assert!(!dump.contains(random), "{secret}'s body is at rest");
        }
    }
}

/// Signs ada up, then in on `count - 1` more devices: `count` live sessions, oldest first.
async fn sessions_of_ada(app: &TestApp, count: usize) -> Vec<Value> {
    let mut sessions = vec![app.signed_up("ada@example.com", PASSWORD).await];
    for device in 1..count {
        let response = app
            .login_on_device("ada@example.com", PASSWORD, &format!("device {device}"))
            .await;
        assert_eq!(response.status().as_u16(), 200);
        sessions.push(response.json().await.unwrap());
    }
    sessions
}

/// How many sessions are live (neither revoked nor expired) in the database.
async fn live_sessions(app: &TestApp) -> u64 {
    sessions::Entity::find()
        .filter(sessions::Column::RevokedAt.is_null())
        .count(&app.connect_db().await)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_session_past_the_cap_of_100_revokes_the_least_recently_used_one_and_says_so() {
    let app = spawn_app().await;
    let sessions = sessions_of_ada(&app, 100).await;
    // The first session is used again, so the second is now the least recently used.
    let used = app.refresh(&token(&sessions[0], "refresh_token")).await;
    assert_eq!(used.status().as_u16(), 200);
    let used: Value = used.json().await.unwrap();

    let newest = app
        .login_on_device("ada@example.com", PASSWORD, "newest")
        .await;

    assert_eq!(newest.status().as_u16(), 200);
    let newest: Value = newest.json().await.unwrap();
    let lru = &sessions[1];
    assert_problem(
        app.me(&token(lru, "access_token")).await,
        401,
        "unauthorized",
    )
    .await;
    assert_problem(
        app.refresh(&token(lru, "refresh_token")).await,
        401,
        "invalid_token",
    )
    .await;
    assert_eq!(
        app.me(&token(&used, "access_token"))
            .await
            .status()
            .as_u16(),
        200
    );
    let listed: Value = app
        .list_sessions(&token(&newest, "access_token"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 100);
    let page: Value = app
        .activity(&token(&newest, "access_token"), "limit=3")
        .await
        .json()
        .await
        .unwrap();
    let revocation = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|event| event["event"] == "session_revoked")
        .unwrap_or_else(|| panic!("the revocation is in the activity: {page}"));
    assert_eq!(revocation["outcome"], "session_limit");
    assert_eq!(revocation["session_id"], lru["session_id"]);
}

#[tokio::test]
async fn concurrent_sign_ins_at_the_cap_leave_exactly_the_cap_of_live_sessions() {
    let app = spawn_app().await;
    sessions_of_ada(&app, 100).await;

    let logins = join_all((0..10).map(|_| app.login("ada@example.com", PASSWORD))).await;

    for login in logins {
        let status = login.status().as_u16();
        assert_eq!(status, 200, "{}", login.text().await.unwrap());
    }
    assert_eq!(live_sessions(&app).await, 100);
}
