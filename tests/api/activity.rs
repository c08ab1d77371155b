//! The audit trail as its owner sees it: `GET /v1/me/activity`, newest first, paginated.

use serde_json::Value;

use crate::helpers::{NEW_PASSWORD, PASSWORD, assert_problem, spawn_app};

#[tokio::test]
async fn the_owner_sees_their_security_events_newest_first_page_by_page() {
    let app = spawn_app().await;
    let first: Value = app.signed_up("ada@example.com", PASSWORD).await;
    app.signed_up("bob@example.com", PASSWORD).await;
    let wrong = app.login("ada@example.com", "not it at all").await;
    assert_eq!(wrong.status().as_u16(), 401);
    let second: Value = app
        .login("ada@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    // A stolen refresh token replayed after rotation (and its reuse grace) ends the second
    // session.
    let stolen = second["refresh_token"].as_str().unwrap();
    app.refresh(stolen).await;
    app.instance
        .clock
        .advance(std::time::Duration::from_secs(11));
    app.refresh(stolen).await;
    let access = first["access_token"].as_str().unwrap();

    let mut events = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &cursor {
            Some(cursor) => format!("limit=2&cursor={cursor}"),
            None => "limit=2".to_owned(),
        };
        let page: Value = app.activity(access, &query).await.json().await.unwrap();
        pages += 1;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        events.extend(items.iter().map(|e| {
            format!(
                "{}:{}",
                e["event"].as_str().unwrap(),
                e["outcome"].as_str().unwrap()
            )
        }));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }

    assert_eq!(
        events,
        [
            "refresh_replay:session_revoked",
            "login:success",
            "login:failure",
            "verification:success",
            "signup:code_sent",
        ],
        "newest first, only this account's events"
    );
    assert_eq!(pages, 3);
}

#[tokio::test]
async fn activity_refuses_bad_cursors_limits_and_missing_tokens() {
    let app = spawn_app().await;
    let session: Value = app.signed_up("ada@example.com", PASSWORD).await;
    let access = session["access_token"].as_str().unwrap();

    for (query, status, code) in [
        ("cursor=bm9wZQ", 400, "invalid_request"),
        ("cursor=%%%", 400, "invalid_request"),
        ("limit=0", 400, "invalid_request"),
        ("limit=101", 400, "invalid_request"),
        ("limit=ten", 400, "invalid_request"),
    ] {
        assert_problem(app.activity(access, query).await, status, code).await;
    }
    assert_problem(app.get("/v1/me/activity").await, 401, "unauthorized").await;
}

#[tokio::test]
async fn logout_password_changes_and_revocations_are_recorded() {
    let app = spawn_app().await;
    let this: Value = app.signed_up("ada@example.com", PASSWORD).await;
    let other: Value = app
        .login("ada@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let third: Value = app
        .login("ada@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let access = this["access_token"].as_str().unwrap();
    let revoke = app
        .revoke_session(access, other["session_id"].as_str().unwrap())
        .await;
    assert_eq!(revoke.status().as_u16(), 204);
    let change = app
        .change_password(access, "wrong one here", NEW_PASSWORD)
        .await;
    assert_eq!(change.status().as_u16(), 403);
    let logout = app.logout(third["access_token"].as_str().unwrap()).await;
    assert_eq!(logout.status().as_u16(), 204);

    let page: Value = app.activity(access, "").await.json().await.unwrap();

    let events: Vec<String> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["event"].as_str().unwrap(),
                e["outcome"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        events[..3],
        [
            "logout:success",
            "password_change:wrong_password",
            "session_revoked:success"
        ]
    );
    assert_eq!(page["items"][0]["session_id"], third["session_id"]);
    assert_eq!(page["items"][0]["ip"], "127.0.0.1");
}
