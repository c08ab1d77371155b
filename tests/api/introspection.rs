//! `POST /v1/token/introspect` with real access tokens: the claims of a live one, and exactly
//! `{"active":false}` for everything else, at once when a session ends, while the same token
//! still verifies locally until its `exp`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::api_keys::create_key;
use crate::helpers::{PASSWORD, TestApp, spawn_app};

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWS");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

async fn introspected(app: &TestApp, key: &str, token: &str) -> Value {
    let response = app.introspect(key, token).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.json().await.unwrap()
}

async fn session(app: &TestApp, email: &str) -> Value {
    let response = app.login(email, PASSWORD).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn access(session: &Value) -> &str {
    session["access_token"].as_str().unwrap()
}

#[tokio::test]
async fn a_live_access_token_is_active_with_the_claims_it_carries() {
    let app = spawn_app().await;
    let key = create_key(&app, "backend", &["introspect"]);
    app.signed_up("ada@example.com", PASSWORD).await;
    let signed_in = session(&app, "ada@example.com").await;
    let token = access(&signed_in);
    let jwt = claims(token);

    let answer = introspected(&app, &key, token).await;

    let mut expected = json!({"active": true, "token_type": "Bearer"});
    for member in [
        "sub",
        "sid",
        "iss",
        "aud",
        "exp",
        "iat",
        "auth_time",
        "amr",
        "email",
        "email_verified",
    ] {
        expected[member] = jwt[member].clone();
    }
    assert_eq!(answer, expected);
    assert_eq!(answer["sid"], signed_in["session_id"]);
    assert_eq!(answer["sub"], signed_in["user"]["id"]);
    assert_eq!(answer["amr"], json!(["pwd"]));
}

#[tokio::test]
async fn anything_but_a_live_access_token_is_exactly_inactive() {
    let app = spawn_app().await;
    let key = create_key(&app, "backend", &["introspect"]);
    let first = app.signed_up("ada@example.com", PASSWORD).await;
    let inactive = json!({"active": false});

    // A refresh token, a forged signature and an expired token are not live access tokens.
    let refresh = first["refresh_token"].as_str().unwrap();
    assert_eq!(introspected(&app, &key, refresh).await, inactive);
    let mut forged = access(&first).to_owned();
    forged.pop();
    forged.push(if access(&first).ends_with('A') {
        'B'
    } else {
        'A'
    });
    assert_eq!(introspected(&app, &key, &forged).await, inactive);

    // Ending the session makes its tokens inactive at once, though they still verify locally.
    let second = session(&app, "ada@example.com").await;
    assert_eq!(
        introspected(&app, &key, access(&second)).await["active"],
        true
    );
    assert_eq!(app.logout(access(&second)).await.status(), 204);
    assert_eq!(introspected(&app, &key, access(&second)).await, inactive);
    let third = session(&app, "ada@example.com").await;
    assert_eq!(
        app.revoke_other_sessions(access(&third)).await.status(),
        204
    );
    assert_eq!(introspected(&app, &key, access(&first)).await, inactive);
    assert_eq!(
        introspected(&app, &key, access(&third)).await["active"],
        true
    );

    // Expiry is codeward's clock: the token that was active no longer is.
    app.instance
        .clock
        .advance(std::time::Duration::from_secs(905));
    assert_eq!(introspected(&app, &key, access(&third)).await, inactive);
}
