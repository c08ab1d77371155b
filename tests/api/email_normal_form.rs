//! The normal form of addresses (docs/api.md, "Email addresses"): every spelling of one
//! mailbox is one address for accounts, cooldowns and per-address limits; spellings the rules
//! refuse never reach the database or the mail; and migration 12 brings the addresses stored
//! before it to the normal form.

use entity::{email_outbox, otp_codes, users};
use migration::{Migrator, MigratorTrait};
use sea_orm::{ActiveModelTrait, Database, EntityTrait, PaginatorTrait, Set};
use serde_json::Value;

use crate::helpers::{
    PASSWORD, assert_problem, assert_rate_limited, fresh_database, run_codeward, spawn_app_with,
};

/// The real resend cooldown and hourly cap: what one address is allowed.
const ONE_ADDRESS_LIMITS: [&str; 2] = [
    "--code-resend-cooldown-secs=60",
    "--codes-per-address-per-hour=5",
];

/// `bücher.example` as its IDNA A-label: the form the server stores, sends to and echoes.
const BOB: &str = "bob@xn--bcher-kva.example";

/// Asserts a 422 that refuses the `email` field with `code`.
async fn assert_email_refused(response: reqwest::Response, code: &str, sent: &str) {
    let body = assert_problem(response, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "email", "{sent:?}: {body}");
    assert_eq!(body["errors"][0]["code"], code, "{sent:?}: {body}");
}

async fn outbox_rows(app: &crate::helpers::TestApp) -> u64 {
    email_outbox::Entity::find()
        .count(&app.connect_db().await)
        .await
        .expect("outbox readable")
}

#[tokio::test]
async fn quoted_and_escaped_spellings_of_an_address_are_refused_and_never_sent_an_email() {
    let app = spawn_app_with(&ONE_ADDRESS_LIMITS).await;
    let first = app.signup("alice@example.com", PASSWORD).await;
    assert_eq!(first.status().as_u16(), 202);
    app.smtp
        .wait_for_nth_message_to("alice@example.com", 1)
        .await;

    // Each of these reached alice's mailbox as a new address, with a budget of its own.
    let spellings = [
        r#""alice"@example.com"#,
        r#""\alice"@example.com"#,
        r#""al\ice"@example.com"#,
        r#""alice"@EXAMPLE.COM"#,
        r#""alice@example.com"@example.com"#,
        r"al\ice@example.com",
    ];
    for spelling in spellings {
        let signup = app.signup(spelling, PASSWORD).await;
        assert_email_refused(signup, "quoted_local_part", spelling).await;
        let resend = app.resend_signup_code(spelling).await;
        assert_email_refused(resend, "quoted_local_part", spelling).await;
        let forgot = app.forgot_password(spelling).await;
        assert_email_refused(forgot, "quoted_local_part", spelling).await;
    }

    // Every request has been answered, so every email there will be is queued by now.
    assert_eq!(outbox_rows(&app).await, 1, "only the first sign-up's code");
    assert_eq!(app.smtp.received().len(), 1);
}

#[tokio::test]
async fn the_nfc_nfd_and_a_label_spellings_of_an_international_domain_are_one_account() {
    let app = spawn_app_with(&ONE_ADDRESS_LIMITS).await;
    let nfc = "bob@b\u{fc}cher.example";
    let nfd = "bob@bu\u{308}cher.example";

    let first = app.signup(nfc, PASSWORD).await;
    assert_eq!(first.status().as_u16(), 202);
    let sent: Value = first.json().await.unwrap();
    assert_eq!(sent["email"], BOB, "the answer echoes the normal form");
    for spelling in [
        nfd,
        BOB,
        "BOB@B\u{dc}CHER.EXAMPLE",
        " Bob@XN--BCHER-KVA.example ",
    ] {
        let again = app.signup(spelling, PASSWORD).await;
        assert_rate_limited(again, "resend-cooldown").await;
    }

    let code = app.smtp.wait_for_nth_message_to(BOB, 1).await.code();
    let verified = app.verify_signup(nfd, &code, PASSWORD).await;
    assert_eq!(verified.status().as_u16(), 200);
    let session: Value = verified.json().await.unwrap();
    assert_eq!(session["user"]["email"], BOB);
    let login = app.login(nfc, PASSWORD).await;
    assert_eq!(login.status().as_u16(), 200);
    let accounts = users::Entity::find()
        .count(&app.connect_db().await)
        .await
        .unwrap();
    assert_eq!(accounts, 1);
    assert_eq!(app.smtp.received().len(), 1, "one code, to the A-label");
}

#[tokio::test]
async fn full_width_letters_are_the_ascii_domain_but_are_refused_in_the_local_part() {
    let app = spawn_app_with(&ONE_ADDRESS_LIMITS).await;
    let first = app.signup("alice@example.com", PASSWORD).await;
    assert_eq!(first.status().as_u16(), 202);

    let full_width_domain = app
        .signup(
            "alice@\u{ff45}\u{ff58}\u{ff41}\u{ff4d}\u{ff50}\u{ff4c}\u{ff45}.com",
            PASSWORD,
        )
        .await;
    let full_width_local = "\u{ff41}\u{ff4c}\u{ff49}\u{ff43}\u{ff45}@example.com";
    let full_width_local_answer = app.signup(full_width_local, PASSWORD).await;

    assert_rate_limited(full_width_domain, "resend-cooldown").await;
    assert_email_refused(
        full_width_local_answer,
        "non_ascii_local_part",
        full_width_local,
    )
    .await;
    assert_eq!(outbox_rows(&app).await, 1);
}

#[tokio::test]
async fn ip_address_domains_and_domain_literals_are_refused() {
    let app = spawn_app_with(&ONE_ADDRESS_LIMITS).await;
    let addresses = [
        "user@127.0.0.1",
        "user@[10.0.0.5]",
        "user@[IPv6:2001:db8::1]",
        "user@127.1",
        "user@0x7f.0.0.1",
        // Full-width digits and an ideographic full stop: 127.0.0.1 once mapped.
        "user@\u{ff11}\u{ff12}\u{ff17}\u{3002}0.0.1",
    ];
    for address in addresses {
        let response = app.signup(address, PASSWORD).await;
        assert_email_refused(response, "ip_domain", address).await;
    }
    assert_eq!(outbox_rows(&app).await, 0);
}

#[tokio::test]
async fn a_250_character_address_that_grows_past_254_octets_when_normalized_is_a_422_never_a_500() {
    let app = spawn_app_with(&ONE_ADDRESS_LIMITS).await;
    // Normalized, `bücher` becomes `xn--bcher-kva` and `İİİİİ` (lowercased to five `i`
    // with a combining dot each) `xn--iiiii-7fdbbbb`: each domain stays a valid DNS name of
    // 252 or 253 octets, and each address outgrows 254 octets (the İ one also outgrows 254
    // characters, more than a varchar(254) holds).
    let labels = |last: usize| {
        format!(
            "{}.{}.{}.{}.example",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(last)
        )
    };
    let umlaut = format!("bob@b\u{fc}cher.{}", labels(39));
    let dotted = format!("robertson@{}.{}", "\u{130}".repeat(5), labels(34));
    for address in [dotted, umlaut] {
        assert_eq!(address.chars().count(), 250, "{address}");

        let signup = app.signup(&address, PASSWORD).await;
        let login = app.login(&address, PASSWORD).await;

        assert_email_refused(signup, "too_long", &address).await;
        assert_email_refused(login, "too_long", &address).await;
    }
    assert_eq!(outbox_rows(&app).await, 0);
}

#[tokio::test]
async fn an_account_whose_stored_address_the_rules_now_refuse_can_still_change_its_password() {
    let app = spawn_app_with(&[]).await;
    let session = app.signed_up("eve@example.com", PASSWORD).await;
    let access = session["access_token"].as_str().unwrap();
    // An address an earlier release accepted and stored, which the normal form refuses.
    let db = app.connect_db().await;
    let mut row: users::ActiveModel = users::Entity::find()
        .one(&db)
        .await
        .unwrap()
        .expect("eve's account")
        .into();
    row.email = Set(r#""eve"@example.com"#.to_owned());
    row.update(&db).await.unwrap();

    let me = app.me(access).await;
    let change = app
        .change_password(access, PASSWORD, crate::helpers::NEW_PASSWORD)
        .await;

    assert_eq!(me.status().as_u16(), 200);
    assert_eq!(change.status().as_u16(), 204);
    let notices = app.outbox_to(r#""eve"@example.com"#).await;
    assert_eq!(
        notices.last().map(|row| row.template.as_str()),
        Some("password_changed"),
        "the notice goes to the address the account has"
    );
}

/// A user row as any release before the normal form could have stored it.
fn user(id: u128, email: &str) -> users::ActiveModel {
    let now = chrono::Utc::now();
    users::ActiveModel {
        id: Set(uuid::Uuid::from_u128(id)),
        email: Set(email.to_owned()),
        password_hash: Set(None),
        email_verified_at: Set(Some(now)),
        password_changed_at: Set(None),
        locale: Set("en".to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
        // Migration 19 adds the column; these rows are stored before it.
        disabled_at: sea_orm::ActiveValue::NotSet,
    }
}

fn code(id: u128, user_id: u128, email: &str) -> otp_codes::ActiveModel {
    let now = chrono::Utc::now();
    otp_codes::ActiveModel {
        id: Set(uuid::Uuid::from_u128(id)),
        user_id: Set(uuid::Uuid::from_u128(user_id)),
        purpose: Set("verify_email".to_owned()),
        code_hash: Set("0".repeat(64)),
        key_id: Set("k1".to_owned()),
        email: Set(email.to_owned()),
        attempts: Set(0),
        max_attempts: Set(5),
        created_at: Set(now),
        expires_at: Set(now + chrono::Duration::minutes(10)),
        consumed_at: Set(None),
        revoked_at: Set(None),
        ip: Set(None),
        user_agent: Set(None),
        // Added by migration 18, after the one this test inserts at: not written.
        code_sealed: sea_orm::ActiveValue::NotSet,
    }
}

#[tokio::test]
async fn migration_12_rewrites_stored_addresses_to_the_normal_form_and_reports_what_it_leaves() {
    let database = fresh_database().await;
    let db = Database::connect(&database.url).await.unwrap();
    Migrator::up(&db, Some(11))
        .await
        .expect("up to migration 11");
    let ada = "ada@example.com";
    let carol = "carol@b\u{fc}cher.example";
    let dave = "dave@\u{ff45}\u{ff58}\u{ff41}\u{ff4d}\u{ff50}\u{ff4c}\u{ff45}.com";
    // Two accounts of one mailbox: merging them is the operator's call, not a migration's.
    let bob_nfc = "bob@b\u{fc}cher.example";
    let bob_nfd = "bob@bu\u{308}cher.example";
    let quoted = r#""eve"@example.com"#;
    let ip = "mallory@127.0.0.1";
    // MySQL/MariaDB's collation takes `jose@example.com` for `jösé@example.com`, and
    // `carol@bucher.example` for carol's row until that one has become its A-label.
    let jose_accented = "j\u{f6}s\u{e9}@example.com";
    let jose = "jose@\u{ff45}\u{ff58}\u{ff41}\u{ff4d}\u{ff50}\u{ff4c}\u{ff45}.com";
    let carol_plain = "carol@bucher.\u{ff45}xample";
    let stored = [
        (1, ada),
        (2, carol),
        (3, dave),
        (4, bob_nfc),
        (5, bob_nfd),
        (6, quoted),
        (7, ip),
        (8, jose_accented),
        (9, jose),
        (10, carol_plain),
    ];
    for (id, email) in stored {
        // Without RETURNING: the entity knows columns later migrations add.
        users::Entity::insert(user(id, email))
            .exec_without_returning(&db)
            .await
            .expect(email);
    }
    for (id, user_id, email) in [(11, 2, carol), (13, 6, quoted), (14, 0, "")] {
        // Without RETURNING: the entity knows columns later migrations add.
        otp_codes::Entity::insert(code(id, user_id, email))
            .exec_without_returning(&db)
            .await
            .expect(email);
    }

    let run = run_codeward(
        &["migrate", "up"],
        &[("CODEWARD_DATABASE_URL", database.url.as_str())],
    );

    let log = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{log}");
    let email_of = async |id: u128| {
        users::Entity::find_by_id(uuid::Uuid::from_u128(id))
            .one(&db)
            .await
            .unwrap()
            .expect("the row is still there")
            .email
    };
    let folds_accents = matches!(crate::helpers::backend(), crate::helpers::Backend::MySql(_));
    let expected = [
        (1, "ada@example.com"),
        (2, "carol@xn--bcher-kva.example"),
        (3, "dave@example.com"),
        (4, bob_nfc),
        (5, bob_nfd),
        (6, quoted),
        (7, ip),
        (8, jose_accented),
        (
            9,
            if folds_accents {
                jose
            } else {
                "jose@example.com"
            },
        ),
        (10, "carol@bucher.example"),
    ];
    for (id, email) in expected {
        assert_eq!(email_of(id).await, email, "user {id}");
    }
    let code_email = async |id: u128| {
        otp_codes::Entity::find_by_id(uuid::Uuid::from_u128(id))
            .one(&db)
            .await
            .unwrap()
            .expect("the code is still there")
            .email
    };
    assert_eq!(code_email(11).await, "carol@xn--bcher-kva.example");
    assert_eq!(code_email(13).await, quoted);
    assert_eq!(code_email(14).await, "", "a void code stays void");
    // What the operator reads: each collision and each refused address, by user id only.
    let line_naming = |id: u128| {
        let id = uuid::Uuid::from_u128(id).to_string();
        log.lines()
            .find(|line| line.contains(&id))
            .unwrap_or_else(|| panic!("no log line names {id}:\n{log}"))
            .to_owned()
    };
    let collision = line_naming(4);
    assert!(collision.contains("WARN"), "{collision}");
    assert!(
        collision.contains(&uuid::Uuid::from_u128(5).to_string()),
        "one line names both accounts: {collision}"
    );
    assert!(line_naming(6).contains("quoted_local_part"), "{log}");
    assert!(line_naming(7).contains("ip_domain"), "{log}");
    assert!(line_naming(8).contains("non_ascii_local_part"), "{log}");
    if folds_accents {
        let collation = line_naming(9);
        assert!(
            collation.contains(&uuid::Uuid::from_u128(8).to_string()),
            "a collision in the database's eyes is one too: {collation}"
        );
    }
    assert!(
        !log.contains("b\u{fc}cher"),
        "addresses stay out of the log: {log}"
    );
}

#[tokio::test]
async fn an_address_that_differs_only_by_accents_from_a_stored_one_does_not_reach_its_account() {
    let app = crate::helpers::spawn_app().await;
    let db = app.connect_db().await;
    // An address an earlier release stored, with accents the normal form now refuses; MySQL's
    // default collation would have found it for the plain spelling.
    let now = chrono::Utc::now();
    users::ActiveModel {
        id: Set(uuid::Uuid::new_v4()),
        email: Set("jösé@example.com".to_owned()),
        password_hash: Set(None),
        email_verified_at: Set(Some(now)),
        password_changed_at: Set(None),
        locale: Set("en".to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
        disabled_at: Set(None),
    }
    .insert(&db)
    .await
    .unwrap();

    let response = app.forgot_password("jose@example.com").await;

    assert_eq!(response.status().as_u16(), 202);
    assert!(
        app.outbox_to("jose@example.com").await.is_empty(),
        "no reset code for jösé's account went to jose@"
    );
}
