//! API keys as an operator makes them (`codeward api-key`) and as the app's backend uses them:
//! their own security scheme at `POST /v1/token/introspect`, never interchangeable with a
//! user's access token.

use entity::api_keys;
use sea_orm::EntityTrait;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{
    PASSWORD, TestApp, assert_problem, assert_unauthenticated, assert_unauthorized, run_codeward,
    run_codeward_on, spawn_app,
};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `codeward api-key create --name NAME --scope …` on `app`'s database; returns the key, the
/// one line of its standard output.
pub fn create_key(app: &TestApp, name: &str, scopes: &[&str]) -> String {
    let mut args = vec!["api-key", "create", "--name", name];
    for scope in scopes {
        args.extend(["--scope", scope]);
    }
    let stdout = run_codeward_on(&app.database.url, &args);
    stdout.trim_end_matches('\n').to_owned()
}

/// `codeward api-key list --json` on `app`'s database.
fn list_keys(app: &TestApp) -> Vec<Value> {
    let stdout = run_codeward_on(&app.database.url, &["api-key", "list", "--json"]);
    let listed: Value = serde_json::from_str(&stdout).expect("list --json prints JSON");
    listed.as_array().expect("a JSON array").clone()
}

/// The listed key named `name`.
fn listed<'a>(keys: &'a [Value], name: &str) -> &'a Value {
    keys.iter()
        .find(|key| key["name"] == name)
        .unwrap_or_else(|| panic!("{name} not listed in {keys:?}"))
}

fn key_id(app: &TestApp, name: &str) -> String {
    listed(&list_keys(app), name)["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

#[tokio::test]
async fn create_prints_the_key_alone_on_one_line_and_the_database_holds_only_its_hash() {
    let app = spawn_app().await;

    let output = run_codeward(
        &[
            "api-key",
            "create",
            "--name",
            "billing backend",
            "--scope",
            "introspect",
        ],
        &[("CODEWARD_DATABASE_URL", &app.database.url)],
    );

    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line on stdout: {stdout:?}");
    let key = lines[0];
    let secret = key.strip_prefix("cwk_").expect("a cwk_ key");
    assert_eq!(secret.len(), 43, "256 bits in base64url: {key}");
    assert!(
        secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{key}"
    );
    assert!(!stderr.contains(secret), "the key went to stderr too");
    let rows = api_keys::Entity::find()
        .all(&app.connect_db().await)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].key_hash, hex::encode(Sha256::digest(key)));
    assert_eq!(rows[0].name, "billing backend");
    assert_eq!(rows[0].scopes, "introspect");
    assert!(stderr.contains(&rows[0].id.to_string()), "{stderr}");
    let stored = format!("{rows:?}");
    assert!(
        !stored.contains(secret),
        "the key is stored in clear: {stored}"
    );
}

#[tokio::test]
async fn list_json_shows_each_key_with_absent_times_until_it_is_used_or_revoked() {
    let app = spawn_app().await;
    let used = create_key(&app, "used", &["introspect", "admin"]);
    create_key(&app, "idle", &["admin"]);

    let before = list_keys(&app);

    assert_eq!(before.len(), 2);
    let idle = listed(&before, "idle");
    assert_eq!(idle["scopes"], json!(["admin"]));
    assert_eq!(
        listed(&before, "used")["scopes"],
        json!(["introspect", "admin"])
    );
    for key in &before {
        let members: Vec<&str> = key
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            members,
            ["created_at", "id", "name", "scopes"],
            "no null members: {key}"
        );
        assert!(key["id"].as_str().unwrap().parse::<uuid::Uuid>().is_ok());
    }

    let response = app.introspect(&used, "not-a-token").await;
    assert_eq!(response.status(), 200);
    run_codeward_on(
        &app.database.url,
        &["api-key", "revoke", idle["id"].as_str().unwrap()],
    );
    let after = list_keys(&app);

    let used_after = listed(&after, "used");
    assert!(used_after["last_used_at"].is_string(), "{used_after}");
    assert!(used_after.get("revoked_at").is_none(), "{used_after}");
    let idle_after = listed(&after, "idle");
    assert!(idle_after["revoked_at"].is_string(), "{idle_after}");
    assert!(idle_after.get("last_used_at").is_none(), "{idle_after}");
    let table = run_codeward_on(&app.database.url, &["api-key", "list"]);
    assert!(table.starts_with("ID "), "{table}");
    assert!(
        table.contains("used") && table.contains("introspect admin"),
        "{table}"
    );
    assert!(!table.contains(&used), "the table shows a key");
}

#[tokio::test]
async fn a_revoked_key_is_refused_at_once_and_revoking_it_again_changes_nothing() {
    let app = spawn_app().await;
    let key = create_key(&app, "backend", &["introspect"]);
    assert_eq!(app.introspect(&key, "x").await.status(), 200);
    let id = key_id(&app, "backend");

    let revoked = run_codeward_on(&app.database.url, &["api-key", "revoke", &id]);

    assert!(revoked.contains("revoked"), "{revoked}");
    assert_unauthorized(app.introspect(&key, "x").await, "revoked key").await;
    let again = run_codeward_on(&app.database.url, &["api-key", "revoke", &id]);
    assert!(again.contains("already revoked"), "{again}");
    let revoked_at = listed(&list_keys(&app), "backend")["revoked_at"].clone();
    assert!(revoked_at.is_string());
}

#[tokio::test]
async fn missing_unknown_and_malformed_keys_are_401_with_a_bearer_challenge() {
    let app = spawn_app().await;
    create_key(&app, "backend", &["introspect"]);
    let unknown = format!("cwk_{}", "A".repeat(43));
    let url = app.url("/v1/token/introspect");
    let form = [("token", "x")];
    // No key (nothing, an empty bearer, another scheme) gets the plain challenge; a key that
    // is not valid gets `error="invalid_token"`.
    let sent = true;
    let cases = [
        ("no Authorization", app.client.post(&url).form(&form), !sent),
        (
            "an unknown key",
            app.client.post(&url).bearer_auth(&unknown).form(&form),
            sent,
        ),
        (
            "a malformed key",
            app.client.post(&url).bearer_auth("cwk_short").form(&form),
            sent,
        ),
        (
            "an empty bearer",
            app.client.post(&url).bearer_auth("").form(&form),
            !sent,
        ),
        (
            "another scheme",
            app.client
                .post(&url)
                .basic_auth("backend", Some("secret"))
                .form(&form),
            !sent,
        ),
    ];
    for (why, request, key_sent) in cases {
        let response = request.send().await.expect("request sent");

        if key_sent {
            assert_unauthorized(response, why).await;
        } else {
            assert_unauthenticated(response, why).await;
        }
    }
}

#[tokio::test]
async fn a_key_without_the_introspect_scope_is_403_forbidden() {
    let app = spawn_app().await;
    let admin = create_key(&app, "admin tool", &["admin"]);

    let response = app.introspect(&admin, "x").await;

    let body = assert_problem(response, 403, "forbidden").await;
    assert!(
        body["detail"].as_str().unwrap().contains("introspect"),
        "{body}"
    );
}

#[tokio::test]
async fn a_valid_key_and_a_garbage_token_get_exactly_active_false_not_to_be_cached() {
    let app = spawn_app().await;
    let key = create_key(&app, "backend", &["introspect"]);

    for token in ["garbage", "", "cwa_not-a-real-token", &key] {
        let response = app.introspect(&key, token).await;

        assert_eq!(response.status(), 200, "{token:?}");
        assert_eq!(response.headers()["cache-control"], "no-store");
        let body: String = response.text().await.unwrap();
        assert_eq!(body, r#"{"active":false}"#, "{token:?}");
    }
}

#[tokio::test]
async fn an_access_or_refresh_token_is_never_accepted_as_an_api_key() {
    let app = spawn_app().await;
    create_key(&app, "backend", &["introspect"]);
    let session = app.signed_up("ada@example.com", PASSWORD).await;

    for name in ["access_token", "refresh_token"] {
        let token = session[name].as_str().unwrap();

        let response = app.introspect(token, token).await;

        assert_unauthorized(response, name).await;
    }
}

#[tokio::test]
async fn an_api_key_is_never_accepted_as_an_access_token() {
    let app = spawn_app().await;
    let key = create_key(&app, "both", &["introspect", "admin"]);

    let response = app.me(&key).await;

    assert_unauthorized(response, "an API key at get_me").await;
}

#[tokio::test]
async fn introspect_takes_a_form_body_with_a_token() {
    let app = spawn_app().await;
    let key = create_key(&app, "backend", &["introspect"]);
    let form = "application/x-www-form-urlencoded";
    let cases = [
        (
            "a JSON body",
            "application/json",
            r#"{"token":"x"}"#,
            415,
            "unsupported_media_type",
        ),
        (
            "a text body",
            "text/plain",
            "token=x",
            415,
            "unsupported_media_type",
        ),
        (
            "no token",
            form,
            "token_type_hint=access_token",
            400,
            "invalid_request",
        ),
        ("an empty body", form, "", 400, "invalid_request"),
    ];
    for (why, content_type, body, status, code) in cases {
        let response = app.introspect_raw(&key, content_type, body).await;

        assert_eq!(response.status().as_u16(), status, "{why}");
        assert_problem(response, status, code).await;
    }
    let hinted = app
        .introspect_raw(&key, form, "token=x&token_type_hint=access_token&extra=1")
        .await;
    assert_eq!(
        hinted.status(),
        200,
        "a hint and unknown parameters are fine"
    );
}

#[tokio::test]
async fn bad_command_lines_are_refused_with_a_message_and_never_a_panic() {
    let app = spawn_app().await;
    let url = app.database.url.as_str();
    let unknown_id = uuid::Uuid::new_v4().to_string();
    let long_name = "n".repeat(101);
    let cases: [(&str, Vec<&str>, &str); 7] = [
        (
            "an unknown scope",
            vec!["api-key", "create", "--name", "x", "--scope", "root"],
            "unknown scope",
        ),
        (
            "no scope",
            vec!["api-key", "create", "--name", "x"],
            "--scope",
        ),
        (
            "an empty name",
            vec!["api-key", "create", "--name", "  ", "--scope", "admin"],
            "must not be empty",
        ),
        (
            "a long name",
            vec![
                "api-key", "create", "--name", &long_name, "--scope", "admin",
            ],
            "at most 100",
        ),
        (
            "no name",
            vec!["api-key", "create", "--scope", "admin"],
            "--name",
        ),
        (
            "an unknown id",
            vec!["api-key", "revoke", &unknown_id],
            "no API key has the id",
        ),
        (
            "not an id",
            vec!["api-key", "revoke", "nope"],
            "invalid value",
        ),
    ];
    for (why, args, message) in cases {
        let output = run_codeward(&args, &[("CODEWARD_DATABASE_URL", url)]);

        let stderr = text(&output.stderr);
        assert!(!output.status.success(), "{why}: succeeded");
        assert!(
            stderr.contains(message),
            "{why}: expected {message:?} in {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{why}: {stderr}");
        assert!(
            output.stdout.is_empty(),
            "{why}: printed {:?}",
            text(&output.stdout)
        );
    }
    assert!(
        list_keys(&app).is_empty(),
        "a refused create stored nothing"
    );
}
