//! The normal form of addresses (docs/api.md, "Email addresses"): every spelling of one
//! mailbox is one address for accounts, cooldowns and per-address limits, and spellings the
//! rules refuse never reach the database or the mail.

use entity::{email_outbox, users};
use sea_orm::{ActiveModelTrait, EntityTrait, PaginatorTrait, Set};
use serde_json::Value;

use crate::helpers::{PASSWORD, assert_problem, assert_rate_limited, spawn_app_with};

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
