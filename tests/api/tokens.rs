//! Access tokens as JWTs: their claims, what codeward refuses, every algorithm. The keys that
//! sign them are `signing_keys.rs`'s.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use codeward::config::TokenAlgorithm;
use codeward::core::keys::material;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};

use crate::helpers::{
    PASSWORD, TestApp, assert_problem, assert_unauthorized, spawn_app, spawn_app_with,
};

pub fn secs(seconds: u64) -> std::time::Duration {
    std::time::Duration::from_secs(seconds)
}

/// The decoded JSON of one part (0: header, 1: claims) of a compact JWS.
pub fn part(token: &str, index: usize) -> Value {
    let encoded = token.split('.').nth(index).expect("three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(encoded).expect("base64url")).expect("JSON")
}

fn encode_part(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

pub async fn login(app: &TestApp, email: &str) -> Value {
    let response = app.login(email, PASSWORD).await;
    assert_eq!(response.status(), 200, "login");
    response.json().await.unwrap()
}

pub fn access(session: &Value) -> String {
    session["access_token"].as_str().unwrap().to_owned()
}

pub async fn me_status(app: &TestApp, token: &str) -> u16 {
    app.me(token).await.status().as_u16()
}

/// Signs `claims` with this instance's current key, under `header` (its `alg` and `kid` are
/// the key's): a token only a holder of codeward's key could make.
async fn sign_with_codeward_key(app: &TestApp, mut header: Header, claims: &Value) -> String {
    let signer = app.instance.keys.signer().await.unwrap();
    header.alg = material::jose_algorithm(signer.algorithm);
    header.kid = Some(signer.kid.clone());
    jsonwebtoken::encode(&header, claims, &signer.key).unwrap()
}

/// Signs `claims` with this instance's current key under `header` exactly as given.
async fn sign_raw_with_codeward_key(app: &TestApp, header: &Value, claims: &Value) -> String {
    let signer = app.instance.keys.signer().await.unwrap();
    let input = format!("{}.{}", encode_part(header), encode_part(claims));
    let signature = jsonwebtoken::crypto::sign(
        input.as_bytes(),
        &signer.key,
        material::jose_algorithm(signer.algorithm),
    )
    .unwrap();
    format!("{input}.{signature}")
}

fn at_jwt_header() -> Header {
    let mut header = Header::new(Algorithm::EdDSA);
    header.typ = Some("at+jwt".into());
    header
}

#[tokio::test]
async fn claims_describe_the_session_and_how_it_was_authenticated() {
    let app = spawn_app().await;
    let session = app.signed_up("ada@example.com", PASSWORD).await;
    let token = access(&session);

    let header = part(&token, 0);
    let signer = app.instance.keys.signer().await.unwrap();
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["kid"], signer.kid.as_str());
    let claims = part(&token, 1);
    assert_eq!(
        claims["iss"],
        app.address.as_str(),
        "iss defaults to http:// + the listener"
    );
    assert_eq!(claims["aud"], "codeward");
    assert_eq!(claims["sub"], session["user"]["id"]);
    assert_eq!(claims["sid"], session["session_id"]);
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, session["expires_in"].as_i64().unwrap());
    assert_eq!(claims["auth_time"], iat, "a sign-in is the authentication");
    assert_eq!(
        claims["amr"],
        json!(["otp"]),
        "sign-up verification is a code"
    );
    assert_eq!(claims["email"], "ada@example.com");
    assert_eq!(claims["email_verified"], true);
    assert!(uuid::Uuid::parse_str(claims["jti"].as_str().unwrap()).is_ok());
    assert_eq!(me_status(&app, &token).await, 200);

    // A password sign-in says so; a refresh keeps the authentication it came from.
    let signed_in = login(&app, "ada@example.com").await;
    let login_claims = part(&access(&signed_in), 1);
    assert_eq!(login_claims["amr"], json!(["pwd"]));
    app.instance.clock.advance(secs(120));
    let refreshed = app
        .refresh(signed_in["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(refreshed.status(), 200);
    let refreshed: Value = refreshed.json().await.unwrap();
    let refreshed_claims = part(&access(&refreshed), 1);
    assert_eq!(refreshed_claims["auth_time"], login_claims["auth_time"]);
    assert_eq!(refreshed_claims["amr"], json!(["pwd"]));
    assert_eq!(refreshed_claims["sid"], login_claims["sid"]);
    // Whole seconds, and the real clock runs on besides the 120 s it was moved.
    let later = refreshed_claims["iat"].as_i64().unwrap() - login_claims["iat"].as_i64().unwrap();
    assert!((120..=121).contains(&later), "iat moved by {later} s");
    assert_ne!(refreshed_claims["jti"], login_claims["jti"]);
}

#[tokio::test]
async fn forged_foreign_and_altered_tokens_are_refused() {
    let app = spawn_app().await;
    let session = app.signed_up("ada@example.com", PASSWORD).await;
    let token = access(&session);
    let claims = part(&token, 1);
    assert_eq!(
        me_status(&app, &token).await,
        200,
        "the genuine token works"
    );

    let mut forgeries: Vec<(&str, String)> = Vec::new();

    // Signed by a key codeward never made, named by its own kid or by codeward's.
    let foreign = material::generate(TokenAlgorithm::EdDsa).unwrap();
    let foreign_key = material::encoding_key(TokenAlgorithm::EdDsa, &foreign.private);
    let mut header = at_jwt_header();
    header.kid = Some(foreign.kid.clone());
    forgeries.push((
        "another key, its kid",
        jsonwebtoken::encode(&header, &claims, &foreign_key).unwrap(),
    ));
    header.kid = part(&token, 0)["kid"].as_str().map(str::to_owned);
    forgeries.push((
        "another key, codeward's kid",
        jsonwebtoken::encode(&header, &claims, &foreign_key).unwrap(),
    ));

    // `alg: none`, unsigned.
    let mut none_header = part(&token, 0);
    none_header["alg"] = json!("none");
    forgeries.push((
        "alg none",
        format!("{}.{}.", encode_part(&none_header), encode_part(&claims)),
    ));

    // HS256 keyed with the public key's bytes (algorithm confusion).
    let jwk = app
        .instance
        .keys
        .key_set(chrono::Utc::now())
        .await
        .unwrap()
        .keys
        .remove(0);
    let public_x = serde_json::to_value(&jwk).unwrap()["x"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.typ = Some("at+jwt".into());
    hs_header.kid = jwk.common.key_id.clone();
    forgeries.push((
        "HS256 under the public key",
        jsonwebtoken::encode(
            &hs_header,
            &claims,
            &EncodingKey::from_secret(public_x.as_bytes()),
        )
        .unwrap(),
    ));

    // The genuine signature over a changed payload.
    let mut altered = claims.clone();
    altered["sub"] = json!(uuid::Uuid::new_v4());
    let pieces: Vec<&str> = token.split('.').collect();
    forgeries.push((
        "changed payload",
        format!("{}.{}.{}", pieces[0], encode_part(&altered), pieces[2]),
    ));

    // Signed by codeward's own key, but not an access token for this issuer and audience.
    for (name, member, value) in [
        ("wrong aud", "aud", json!("someone-else")),
        ("wrong iss", "iss", json!("https://evil.example")),
        ("expired", "exp", json!(claims["iat"].as_i64().unwrap() - 1)),
        ("no aud", "aud", Value::Null),
    ] {
        let mut changed = claims.clone();
        if value.is_null() {
            changed.as_object_mut().unwrap().remove(member);
        } else {
            changed[member] = value;
        }
        let forged = sign_with_codeward_key(&app, at_jwt_header(), &changed).await;
        forgeries.push((name, forged));
    }
    let mut untyped = at_jwt_header();
    untyped.typ = Some("JWT".into());
    forgeries.push((
        "typ JWT (an ID token, say)",
        sign_with_codeward_key(&app, untyped, &claims).await,
    ));
    // Signed by codeward's key under a header it did not write: a critical extension it does
    // not know, or another algorithm named than the key's own.
    let mut crit_header = part(&token, 0);
    crit_header["crit"] = json!(["exp"]);
    crit_header["exp"] = json!(0);
    forgeries.push((
        "a critical extension",
        sign_raw_with_codeward_key(&app, &crit_header, &claims).await,
    ));
    let mut other_alg = part(&token, 0);
    other_alg["alg"] = json!("ES256");
    forgeries.push((
        "alg not the key's",
        sign_raw_with_codeward_key(&app, &other_alg, &claims).await,
    ));
    let mut no_kid = part(&token, 0);
    no_kid.as_object_mut().unwrap().remove("kid");
    forgeries.push((
        "no kid",
        sign_raw_with_codeward_key(&app, &no_kid, &claims).await,
    ));
    // The genuine token, reshaped: a fourth part, a padded signature, no signature.
    forgeries.push(("four parts", format!("{token}.{}", pieces[2])));
    forgeries.push(("padded signature", format!("{token}==")));
    forgeries.push(("no signature", format!("{}.{}.", pieces[0], pieces[1])));
    // Control: the same path with nothing changed is accepted.
    assert_eq!(
        me_status(
            &app,
            &sign_raw_with_codeward_key(&app, &part(&token, 0), &claims).await
        )
        .await,
        200,
        "the raw signing path is sound"
    );
    let resigned = sign_with_codeward_key(&app, at_jwt_header(), &claims).await;
    assert_eq!(
        me_status(&app, &resigned).await,
        200,
        "the forging path is sound"
    );

    for (name, forged) in forgeries {
        assert_unauthorized(app.me(&forged).await, name).await;
    }
}

#[tokio::test]
async fn an_expired_token_is_refused_while_its_session_lives_on() {
    let app = spawn_app().await;
    let session = app.signed_up("ada@example.com", PASSWORD).await;
    let token = access(&session);

    // `exp` is in whole seconds while the clock also runs on by itself: a margin each side.
    app.instance.clock.advance(secs(895));
    assert_eq!(me_status(&app, &token).await, 200);
    app.instance.clock.advance(secs(6));
    assert_problem(app.me(&token).await, 401, "unauthorized").await;

    let refreshed = app
        .refresh(session["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(
        refreshed.status(),
        200,
        "the session outlives its access tokens"
    );
    let refreshed: Value = refreshed.json().await.unwrap();
    assert_eq!(me_status(&app, &access(&refreshed)).await, 200);
}

#[tokio::test]
async fn refreshing_leaves_the_previous_token_to_expire_and_ending_the_session_ends_both() {
    let app = spawn_app().await;
    let session = app.signed_up("ada@example.com", PASSWORD).await;
    let first = access(&session);
    let refreshed: Value = app
        .refresh(session["refresh_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    let second = access(&refreshed);
    assert_eq!(
        me_status(&app, &first).await,
        200,
        "refresh does not end it"
    );
    assert_eq!(me_status(&app, &second).await, 200);

    assert_eq!(app.logout(&second).await.status(), 204);
    for token in [&first, &second] {
        assert_problem(app.me(token).await, 401, "unauthorized").await;
        // A backend verifying locally still accepts it until its exp: the trade-off that
        // introspection answers.
        let set: Value = app
            .client
            .get(format!("{}/.well-known/jwks.json", app.address))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(set["keys"][0].clone()).unwrap();
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_audience(&["codeward"]);
        validation.set_issuer(&[app.address.as_str()]);
        let key = DecodingKey::from_jwk(&jwk).unwrap();
        assert!(jsonwebtoken::decode::<Value>(token, &key, &validation).is_ok());
    }
}

#[tokio::test]
async fn every_algorithm_signs_tokens_that_codeward_and_its_key_set_verify() {
    for (algorithm, setting) in [
        (Algorithm::EdDSA, "EdDSA"),
        (Algorithm::ES256, "ES256"),
        (Algorithm::RS256, "RS256"),
    ] {
        let app = spawn_app_with(&[&format!("--token-algorithm={setting}")]).await;
        let session = app.signed_up("ada@example.com", PASSWORD).await;
        let token = access(&session);
        assert_eq!(part(&token, 0)["alg"], setting);
        assert_eq!(me_status(&app, &token).await, 200, "{setting}");

        // What a backend does: fetch the key set over HTTP and verify with the key it names.
        let response = app
            .client
            .get(format!("{}/.well-known/jwks.json", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "public, max-age=300");
        let set: Value = response.json().await.unwrap();
        let published = &set["keys"][0];
        assert_eq!(published["kid"], part(&token, 0)["kid"]);
        assert_eq!(published["alg"], setting);
        assert_eq!(published["use"], "sig");
        let expected_members: &[&str] = match setting {
            "EdDSA" => &["alg", "crv", "kid", "kty", "use", "x"],
            "ES256" => &["alg", "crv", "kid", "kty", "use", "x", "y"],
            _ => &["alg", "e", "kid", "kty", "n", "use"],
        };
        let mut members: Vec<&str> = published
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        members.sort_unstable();
        assert_eq!(
            members, expected_members,
            "public members only: {published}"
        );
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(published.clone()).unwrap();
        let mut validation = Validation::new(algorithm);
        validation.set_audience(&["codeward"]);
        let key = DecodingKey::from_jwk(&jwk).unwrap();
        jsonwebtoken::decode::<Value>(&token, &key, &validation).expect(setting);

        let mut tampered = token.clone();
        tampered.pop();
        tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert_problem(app.me(&tampered).await, 401, "unauthorized").await;
    }
}
