//! The signing keys: rotation on the test clock, a change of algorithm, pepper rotation, no
//! private material at rest, the operator's commands, processes racing to rotate, and a key
//! ring read again while a sign-in holds its connection.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use codeward::core::keys::Rotate;
use entity::signing_keys;
use sea_orm::EntityTrait;
use serde_json::Value;

use crate::helpers::{PASSWORD, spawn_app, spawn_app_with};
use crate::tokens::{access, login, me_status, part, secs};

fn kids(set: &jsonwebtoken::jwk::JwkSet) -> Vec<String> {
    set.keys
        .iter()
        .map(|key| key.common.key_id.clone().unwrap())
        .collect()
}

#[tokio::test]
async fn rotation_publishes_the_next_key_before_it_signs_and_keeps_the_retired_one_until_its_tokens_expired()
 {
    let app = spawn_app().await;
    app.signed_up("ada@example.com", PASSWORD).await;
    let (keys, clock) = (&app.instance.keys, &app.instance.clock);
    let first = keys.signer().await.unwrap().kid.clone();
    assert_eq!(
        kids(&keys.key_set(clock.now()).await.unwrap()),
        [first.as_str()]
    );

    // Not due yet: nothing changes.
    // Margins of 20 s each side: the clock also runs on by itself, slowly on a loaded machine.
    clock.advance(secs(30 * 86_400 - 3600 - 20));
    let done = keys.maintain(clock.now(), Rotate::Scheduled).await.unwrap();
    assert_eq!(done, Default::default());

    // Due: the next key is published, the first one still signs.
    clock.advance(secs(40));
    let done = keys.maintain(clock.now(), Rotate::Scheduled).await.unwrap();
    let (next, slot) = done.created.expect("a next key");
    assert_eq!(slot, "next");
    assert_eq!(
        kids(&keys.key_set(clock.now()).await.unwrap()),
        [first.clone(), next.clone()]
    );
    let before = access(&login(&app, "ada@example.com").await);
    assert_eq!(part(&before, 0)["kid"], first.as_str());

    // Published for less than the pre-publication time: it does not sign yet.
    clock.advance(secs(3600 - 60));
    let done = keys.maintain(clock.now(), Rotate::Scheduled).await.unwrap();
    assert_eq!(done.promoted, None);
    let last_of_first = access(&login(&app, "ada@example.com").await);
    assert_eq!(part(&last_of_first, 0)["kid"], first.as_str());

    // An hour after it was published, it signs; the retired key stays published.
    clock.advance(secs(80));
    let done = keys.maintain(clock.now(), Rotate::Scheduled).await.unwrap();
    assert_eq!(done.promoted.as_deref(), Some(next.as_str()));
    let after = access(&login(&app, "ada@example.com").await);
    assert_eq!(part(&after, 0)["kid"], next.as_str());
    // The token the retired key signed just before the hand-over verifies while it lives.
    assert_eq!(me_status(&app, &last_of_first).await, 200);
    assert_eq!(me_status(&app, &before).await, 401, "expired an hour ago");
    assert_eq!(
        kids(&keys.key_set(clock.now()).await.unwrap()),
        [first.clone(), next.clone()]
    );

    // Once every token the retired key signed has expired (access TTL plus the time an
    // instance may still sign with it), it leaves the key set.
    clock.advance(secs(900 + 30 + 30 - 20));
    keys.maintain(clock.now(), Rotate::Scheduled).await.unwrap();
    assert_eq!(
        kids(&keys.key_set(clock.now()).await.unwrap()),
        [first.clone(), next.clone()]
    );
    clock.advance(secs(40));
    let done = keys.maintain(clock.now(), Rotate::Scheduled).await.unwrap();
    assert_eq!(done.purged, 1);
    assert_eq!(
        kids(&keys.key_set(clock.now()).await.unwrap()),
        [next.as_str()]
    );
    assert_eq!(me_status(&app, &after).await, 401, "expired by now");
}

#[tokio::test]
async fn a_new_algorithm_is_pre_published_like_any_rotation() {
    let mut app = spawn_app().await;
    app.signed_up("ada@example.com", PASSWORD).await;
    let eddsa = app.instance.keys.signer().await.unwrap().kid.clone();
    app.instance.stop().await;

    let smtp = app.smtp.url();
    app.instance =
        crate::helpers::start_instance(&app.database.url, &smtp, &["--token-algorithm=ES256"])
            .await;
    app.api = app.instance.api();
    let (keys, clock) = (&app.instance.keys, &app.instance.clock);
    let set = keys.key_set(clock.now()).await.unwrap();
    assert_eq!(set.keys.len(), 2, "the ES256 key is published at start-up");
    let token = access(&login(&app, "ada@example.com").await);
    assert_eq!(
        part(&token, 0)["kid"],
        eddsa.as_str(),
        "the old key signs until then"
    );

    clock.advance(secs(3600));
    keys.maintain(clock.now(), Rotate::Scheduled).await.unwrap();
    let token = access(&login(&app, "ada@example.com").await);
    assert_eq!(part(&token, 0)["alg"], "ES256");
    assert_eq!(me_status(&app, &token).await, 200);
}

#[tokio::test]
async fn a_pepper_rotation_reseals_the_keys_and_their_tokens_keep_working() {
    const NEW_PEPPER: &str = "next:Wm9vbS16b29tLXpvb20tem9vbS16b29tLXpvb20tem9vbS16b28=";
    let mut app = spawn_app().await;
    app.signed_up("ada@example.com", PASSWORD).await;
    let token = access(&login(&app, "ada@example.com").await);
    let db = app.connect_db().await;
    // Every instance here issues and accepts one `iss`, whatever port it listens on.
    let issuer = format!("--issuer={}", app.address);
    let sealed_under = |keys: Vec<signing_keys::Model>| -> Vec<String> {
        keys.into_iter().map(|k| k.pepper_key_id).collect()
    };
    assert_eq!(
        sealed_under(signing_keys::Entity::find().all(&db).await.unwrap()),
        ["test"]
    );
    app.instance.stop().await;

    // The new pepper, the old one still listed: the key is sealed again under the new one.
    let smtp = app.smtp.url();
    let pepper = format!("--pepper={NEW_PEPPER}");
    let previous = format!("--previous-peppers={}", crate::helpers::TEST_PEPPER);
    let mut instance =
        crate::helpers::start_instance(&app.database.url, &smtp, &[&pepper, &previous, &issuer])
            .await;
    assert_eq!(
        sealed_under(signing_keys::Entity::find().all(&db).await.unwrap()),
        ["next"]
    );
    assert_eq!(me_status_at(&instance, &token).await, 200);
    instance.stop().await;

    // The old pepper gone: the key still opens, and signs.
    let instance =
        crate::helpers::start_instance(&app.database.url, &smtp, &[&pepper, &issuer]).await;
    assert_eq!(me_status_at(&instance, &token).await, 200);
    let response = instance.api().login("ada@example.com", PASSWORD).await;
    assert_eq!(response.status(), 200);
}

async fn me_status_at(instance: &crate::helpers::Instance, token: &str) -> u16 {
    instance.api().me(token).await.status().as_u16()
}

#[tokio::test]
async fn private_key_material_is_nowhere_in_the_database_or_the_key_set() {
    for setting in ["EdDSA", "ES256", "RS256"] {
        let app = spawn_app_with(&[&format!("--token-algorithm={setting}")]).await;
        app.signed_up("ada@example.com", PASSWORD).await;
        let db = app.connect_db().await;
        let stored = signing_keys::Entity::find().all(&db).await.unwrap();
        assert_eq!(stored.len(), 1);

        // Open the private half the way codeward does, with the pepper, to know what to
        // look for.
        let pepper = codeward::config::Pepper::parse(crate::helpers::TEST_PEPPER).unwrap();
        let seal = codeward::core::seal::Seal::new([&pepper], codeward::core::keys::SEAL_LABEL);
        let private = codeward::core::keys::store::open_private(&seal, &stored[0]).expect("opens");
        let der = private.expose();
        let dump = crate::mail::dump_every_table(&db).await;
        let mut needles = vec![
            hex::encode(der),
            STANDARD.encode(der),
            URL_SAFE_NO_PAD.encode(der),
        ];
        // The private scalar alone, as a JWK's `d` member would carry it.
        let scalar = match setting {
            "EdDSA" => Some(der[der.len() - 32..].to_vec()), // PKCS#8 v1: the seed comes last
            "ES256" => {
                use p256::pkcs8::DecodePrivateKey;
                Some(
                    p256::SecretKey::from_pkcs8_der(der)
                        .unwrap()
                        .to_bytes()
                        .to_vec(),
                )
            }
            _ => None,
        };
        if let Some(scalar) = scalar {
            needles.push(URL_SAFE_NO_PAD.encode(&scalar));
            needles.push(hex::encode(&scalar));
        }
        for needle in &needles {
            assert!(
                !dump.contains(needle.as_str()),
                "{setting}: private key in the database"
            );
        }
        let set =
            serde_json::to_value(app.instance.keys.key_set(chrono::Utc::now()).await.unwrap())
                .unwrap();
        for member in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(set["keys"][0].get(member).is_none(), "{setting}: {set}");
        }
        let public: Value = serde_json::from_str(&stored[0].public_jwk).unwrap();
        assert!(public.get("d").is_none());
    }
}

#[tokio::test]
async fn keys_from_the_command_line_list_and_rotate() {
    let app = spawn_app().await;
    app.signed_up("ada@example.com", PASSWORD).await;
    let first = app.instance.keys.signer().await.unwrap().kid.clone();
    let vars = [
        ("CODEWARD_DATABASE_URL", app.database.url.as_str()),
        ("CODEWARD_PEPPER", crate::helpers::TEST_PEPPER),
    ];
    let listed = crate::helpers::run_codeward(&["keys", "list", "--json"], &vars);
    assert!(listed.status.success());
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed[0]["kid"], first.as_str());
    assert_eq!(listed[0]["state"], "current");
    assert_eq!(listed[0]["published"], true);
    assert!(listed[0].get("retired_at").is_none(), "absent, not null");
    assert!(!listed.to_string().contains("sealed") && !listed.to_string().contains("v1."));

    let rotated = crate::helpers::run_codeward(&["keys", "rotate"], &vars);
    assert!(rotated.status.success());
    assert!(String::from_utf8_lossy(&rotated.stdout).contains("published"));
    let listed = crate::helpers::run_codeward(&["keys", "list", "--json"], &vars);
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert_eq!(listed[1]["state"], "next");

    let now = crate::helpers::run_codeward(&["keys", "rotate", "--now"], &vars);
    assert!(now.status.success());
    let listed = crate::helpers::run_codeward(&["keys", "list", "--json"], &vars);
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed[0]["state"], "retired");
    assert_eq!(listed[1]["state"], "current");
    assert!(listed[0]["published_until"].is_string());
}

#[tokio::test]
async fn processes_rotating_at_once_never_hold_two_current_keys() {
    let database = crate::helpers::fresh_database().await;
    let vars = [
        ("CODEWARD_DATABASE_URL", database.url.as_str()),
        ("CODEWARD_PEPPER", crate::helpers::TEST_PEPPER),
    ];
    let migrated = crate::helpers::run_codeward(&["migrate", "up"], &vars);
    assert!(migrated.status.success());
    let db = sea_orm::Database::connect(&database.url).await.unwrap();
    // Round 0 starts on an empty table (the first key); each later round races rotations.
    for round in 0..4 {
        let racers: Vec<_> = (0..6)
            .map(|_| {
                crate::helpers::codeward_command()
                    .args(["keys", "rotate", "--now"])
                    .envs(vars.iter().copied())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for racer in racers {
            let output = racer.wait_with_output().unwrap();
            assert!(
                output.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let keys = signing_keys::Entity::find().all(&db).await.unwrap();
        let in_state = |state: &str| keys.iter().filter(|k| k.state == state).count();
        assert_eq!(in_state("current"), 1, "round {round}: {keys:#?}");
        assert!(in_state("next") <= 1, "round {round}");
        if round > 0 {
            assert!(
                in_state("retired") >= round,
                "round {round}: each round rotated"
            );
        }
    }
}

/// A sign-in asks for the signing key inside its write transaction. Once the instance's key
/// ring is older than `RING_TTL`, reading it again must not need the connection that
/// transaction holds: on SQLite the writer is one connection, and with a pool of one the
/// other databases are the same. Before the fix, the first sign-in after 30 quiet seconds
/// waited 10 s for its own connection and answered 500, and every write waited behind it.
#[tokio::test]
async fn sign_ins_after_a_quiet_spell_longer_than_the_key_rings_lifetime_answer_at_once() {
    let app = spawn_app_with(&["--database-max-connections=1"]).await;
    let session = app.signed_up("ada@example.com", PASSWORD).await;
    let code = app.signup_code("grace@example.com", PASSWORD).await;

    tokio::time::sleep(codeward::core::keys::RING_TTL + std::time::Duration::from_secs(3)).await;

    let refresh_token = session["refresh_token"].as_str().unwrap();
    let started = std::time::Instant::now();
    let (login, refreshed, verified) = tokio::join!(
        app.login("ada@example.com", PASSWORD),
        app.refresh(refresh_token),
        app.verify_signup("grace@example.com", &code, PASSWORD),
    );
    let took = started.elapsed();
    for (what, response) in [
        ("login", login),
        ("refresh", refreshed),
        ("verify", verified),
    ] {
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        assert_eq!(status, 200, "{what}: {body}");
        let token = serde_json::from_str::<Value>(&body).unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(me_status(&app, &token).await, 200, "{what}'s access token");
    }
    // The pool's acquire timeout is 10 s: a sign-in that waited for itself takes that long.
    assert!(took < std::time::Duration::from_secs(5), "took {took:?}");
}

/// The same at the level of the key ring: with the writer's one connection held by an open
/// transaction, a ring that has never been read (as stale as one can be) is read through the
/// read pool, on every database.
#[tokio::test]
async fn the_key_ring_is_read_while_a_write_transaction_holds_the_writer() {
    use sea_orm::{ConnectOptions, Database};
    let app = spawn_app().await;
    let connect = |max: u32| {
        let mut options = ConnectOptions::new(app.database.url.clone());
        options
            .max_connections(max)
            .acquire_timeout(std::time::Duration::from_secs(3));
        Database::connect(options)
    };
    let connections = codeward::infra::db::Connections {
        reads: connect(2).await.unwrap(),
        writer: connect(1).await.unwrap(),
        direct: None,
        direct_reads: None,
    };
    let mailbox = tempfile::tempdir().unwrap();
    let config = crate::helpers::test_config(&app.database.url, &mailbox, &[]);
    let keys = codeward::core::keys::Keys::new(connections.clone(), &config);

    let txn = codeward::infra::db::begin_write(&connections.writer)
        .await
        .unwrap();
    let signer = tokio::time::timeout(std::time::Duration::from_secs(2), keys.signer())
        .await
        .expect("the signer, without waiting for the writer")
        .expect("a signer");
    assert_eq!(signer.kid, app.instance.keys.signer().await.unwrap().kid);
    txn.rollback().await.unwrap();
}
